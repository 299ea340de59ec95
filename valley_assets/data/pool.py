"""The distillation pool: every usable teacher trace, cleaned, deduplicated, decontaminated, in a seeded order.

`build_pool` streams the traces twice in bounded batches, so memory stays flat however many shards there are:
1. decide: each row is checked in this order and the first failing rule names its reason;
   malformed input (kind "malformed"):
     non_utf8          a text field held bytes that are not UTF-8 (detail: the fields)
     missing_field     a required field is null or its column is absent (detail: the fields)
     invalid_pass_rate pass_rate is not a number, NaN/inf, or outside [0, 1] and not the "unknown" value -1
     empty_question / empty_generation   only whitespace
     unrecovered_question   the question is still OCR2's placeholder "-" (see ocr2.recover_questions)
     invalid_judgement judgement is not "right" or "wrong"
   pool rules (kind "filtered"):
     no_closed_think   no `<think>` ... `</think>` (science.text.has_closed_think)
     no_code           no extractable final code block (science.text.extract_code)
     too_long          prompt + generation over `max_tokens` (see "Length" below)
     contaminated      the question matches a benchmark problem (decontam.py; detail: rule and question_ids)
     duplicate_id      an earlier row had the same `id`
     exact_duplicate   an earlier row had a byte-identical r1_generation (detail: that row's id)
     near_duplicate    an earlier row's r1_generation has the same first and last 2048 characters after
                       lowercasing and deleting every character that is not an ASCII letter or digit (catches
                       whitespace, punctuation, line-ending and case variants, and copies edited only in the middle;
                       independent R1 samples diverge within their first sentences, so they do not collide)
   "Earlier" is stream order (sources in the order given, a folder's shards sorted by name, rows in file order), so
   the first copy is kept and the result does not depend on batch size. Every rejected row goes to the quarantine
   frame with its row id (`<source>:<row number>`), id, kind, reason and detail; stats count each reason.
2. write: the kept rows again, with `n_tokens`, `n_tokens_exact` and `pool_rank`, cast to POOL_SCHEMA.

Where each part lives: the per-row rules are pure functions in `pool_rules.py`; pass 1 (those rules over each source,
in this process or in spawned workers) is `pool_pass1.py`; the first-copy deduplication is `pool_dedup.py`; this
module streams the build (both passes, the quarantine, the stats) and writes the files.

Speed (1.4M OCR2 traces on 2 cores; benchmarks/RESULTS_data.md). Every rule but deduplication looks at one row
only, so pass 1 runs those rules per shard, in up to `workers` spawned processes (whole shards, results consumed
in shard order), and keeps per row only what deduplication and ranking need (row number, token count, four 64-bit
keys). Deduplication then runs once over the whole stream: rows whose id and keys are unique among the survivors
cannot be dropped nor cause a drop, so only the few rows sharing a key replay the sequential first-copy rule. The
keys (id, exact and near-duplicate; the question's, for the contamination cache) are polars `hash(seed=0)`, which
is deterministic for a given polars version in any process; they are compared within one build only and never
stored. Pass 2 reads the next batch in a background thread while the current one is compressed. The result does
not depend on `workers`, `batch_rows` or the bucket size below.

Memory is flat in the number of rows: a batch at a time per process, and the per-row values above go to raw files
in a scratch folder (spill.py), read back one source at a time; the two steps that need all rows (which key values
repeat; the rank order) run over hash buckets of at most ~64K rows on disk. The quarantine is written source by
source as deduplication completes it. What grows with the input is disk (~100 bytes a row, removed after) and
the contamination cache (one entry per distinct question, ~35K for OCR2).

Length. Byte-level BPE tokens (Qwen2.5, Llama 3.1) cover at least one byte, and code/English text averages well
over `chars_per_token_low` bytes per token, so `ceil(bytes / chars_per_token_low)` is a conservative upper bound on
the token count (bytes rather than characters keep non-ASCII text, where one character can be several tokens, on the
safe side). With `chars_per_token_high`, `floor(chars / chars_per_token_high)` is a lower bound. A row whose upper
bound fits is kept with `n_tokens` = that bound (`n_tokens_exact` False); a row whose lower bound does not fit is
too long; only the rows in between are tokenized, in batches, with `count_tokens` (`n_tokens_exact` True). The
tokenized text is `question + "\\n\\n" + r1_generation`; `prompt_overhead_tokens` adds the chat template and the
prompt wording around the question. Stats report `bound_violations`: tokenized rows whose exact count exceeded the
upper bound, i.e. evidence that `chars_per_token_low` is set too high for this tokenizer.

Order. `pool_rank` is the 0-based rank of blake2b(seed, id) over the kept rows (ties, impossible for distinct ids,
broken by stream position). The key depends only on the seed and the row's id, so when the pool grows the existing
rows keep their relative order and a subset of the first n ranks changes only by the new rows that sort among them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from valley_assets.data.decontam import ContaminationIndex
from valley_assets.data.pool_dedup import DEDUP_KEYS, Deduplicator
from valley_assets.data.pool_pass1 import (
    CANDIDATE_ARRAYS,
    CountTokens,
    RuleSettings,
    decide_sources,
    pass1_workers,
    release_freed_memory,
)
from valley_assets.data.pool_rules import FILTER_REASONS, MALFORMED_REASONS, Rejected, with_all_columns
from valley_assets.data.reading import ROW, TraceInput, TraceSource, resolve_sources
from valley_assets.data.schema import POOL_SCHEMA, QUARANTINE_SCHEMA, TRACE_SCHEMA, arrow_schema
from valley_assets.data.spill import ColumnStore, add_rank_column, repeated_values

TOKEN_HISTOGRAM_EDGES = (0, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)


@dataclass
class PoolResult:
    pool: pl.LazyFrame  # POOL_SCHEMA; scans `pool_path` when one was given
    quarantine: pl.DataFrame  # QUARANTINE_SCHEMA, one row per rejected input row
    stats: dict
    pool_path: Path | None = None
    quarantine_path: Path | None = None


def _validate_parameters(max_tokens: int, chars_per_token_low: float, chars_per_token_high: float | None,
                         batch_rows: int, token_batch_size: int) -> None:
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be > 0, got {max_tokens}")
    if not chars_per_token_low > 0:
        raise ValueError(f"chars_per_token_low must be > 0, got {chars_per_token_low}")
    if chars_per_token_high is not None and not chars_per_token_high >= chars_per_token_low:
        raise ValueError(f"chars_per_token_high ({chars_per_token_high}) must be >= chars_per_token_low "
                         f"({chars_per_token_low})")
    if batch_rows <= 0 or token_batch_size <= 0:
        raise ValueError(f"batch_rows and token_batch_size must be > 0, got {batch_rows}, {token_batch_size}")


def _histogram(values: np.ndarray) -> dict[str, int]:
    """Counts per TOKEN_HISTOGRAM_EDGES bin [lo, hi); the last bin is open."""
    edges = TOKEN_HISTOGRAM_EDGES
    labels = [f"[{lo},{hi})" for lo, hi in zip(edges, edges[1:], strict=False)] + [f"[{edges[-1]},inf)"]
    bins = np.searchsorted(np.asarray(edges[1:]), np.asarray(values, dtype=np.int64), side="right")
    return dict(zip(labels, np.bincount(bins, minlength=len(labels)).tolist(), strict=True))


class _Mix:
    """Counter(values).most_common() as a dict, streamed: count descending, ties in order of first appearance."""

    def __init__(self) -> None:
        self.counts: dict = {}

    def update(self, column: pl.Series) -> None:
        for value, n in column.to_frame("v").group_by("v", maintain_order=True).len().iter_rows():
            self.counts[value] = self.counts.get(value, 0) + n

    def result(self) -> dict:
        return dict(sorted(self.counts.items(), key=lambda item: -item[1]))  # sorted is stable


def _pool_rows(batch: pl.DataFrame, kept: pl.DataFrame) -> pl.DataFrame:
    batch = with_all_columns(batch)
    joined = batch.join(kept, on=ROW, how="inner", maintain_order="left")
    return joined.select([pl.col(c).cast(dt) for c, dt in POOL_SCHEMA.items()])


def _pool_batches(sources: Sequence[TraceSource], kept: ColumnStore, batch_rows: int) -> Iterator[pl.DataFrame]:
    """Pass 2: the kept rows of every source (store columns rows, n_tokens, exact, pool_rank; one part per source),
    in stream order, cast to POOL_SCHEMA."""
    for index, source in enumerate(sources):
        arrays = kept.part(index, ("rows", "n_tokens", "exact", "pool_rank"))
        if len(arrays["rows"]) == 0:
            continue
        kept_rows = pl.DataFrame({ROW: arrays["rows"], "n_tokens": arrays["n_tokens"],
                                  "n_tokens_exact": arrays["exact"], "pool_rank": arrays["pool_rank"]})
        del arrays
        for batch in source.batches(batch_rows, columns=list(TRACE_SCHEMA)):
            rows = _pool_rows(batch, kept_rows)
            if rows.height:
                yield rows


_END = object()
POOL_ROW_GROUP_BYTES = 64 << 20  # uncompressed bytes per row group of the pool file (~2,000 OCR2 traces)
# Batches read ahead in pass 2: about one row group's worth, so reading goes on while a row group is compressed
# (3-shard set: write 16.8 s with 1, 13.0-13.8 s with 4, +0.03 GiB).
_PASS2_READ_AHEAD = 4
# Pool columns that get parquet dictionaries and min/max statistics. The long text columns (trace, question,
# critique, solution) get neither: every value is distinct, so the dictionary encoder only hashes 30K-character
# strings before falling back, and their min/max serve no query; skipping both saves ~25% of the write CPU.
_LONG_TEXT_COLUMNS = ("question", "r1_generation", "qwq_critique", "solution")
_SHORT_COLUMNS = [c for c in POOL_SCHEMA if c not in _LONG_TEXT_COLUMNS]


def _read_ahead(items: Iterator, depth: int = 1) -> Iterator:
    """`items`, produced by a background thread up to `depth` items ahead.

    Parquet decoding (pyarrow) and polars joins release the GIL, as does zstd compression in the parquet writer,
    so reading the next batch runs on the second core while the current one is compressed.
    """
    with ThreadPoolExecutor(max_workers=1) as reader:
        ahead = deque([reader.submit(next, items, _END)])
        while True:
            item = ahead.popleft().result()
            if item is _END:
                return
            while len(ahead) < depth:
                ahead.append(reader.submit(next, items, _END))
            yield item


def build_pool(
    traces: TraceInput,
    *,
    contamination_problems: list[dict],
    count_tokens: CountTokens,
    max_tokens: int,
    seed: int,
    chars_per_token_low: float,
    chars_per_token_high: float | None = None,
    prompt_overhead_tokens: int = 0,
    ngram: int = 13,
    out_path: str | Path | None = None,
    quarantine_path: str | Path | None = None,
    batch_rows: int = 512,
    token_batch_size: int = 32,
    workers: int | None = None,
    scratch_dir: str | Path | None = None,
) -> PoolResult:
    """Build the pool from OCR2-shaped traces (parquet files/folders or polars frames); see the module docstring.

    `out_path` / `quarantine_path`: write parquet there (pool streamed row group by row group, each file written
    under a `.partial` name and renamed when complete, so a failed build leaves no truncated pool); otherwise the
    pool is kept in memory, which is right for the demo but not for 1.4M traces.
    `batch_rows`: rows per batch in both passes. 512 OCR2 traces are ~17 MB of text; a batch's working set is a
    few times that (2048 measured 0.15 GiB more per process, no faster). The pool file's row groups are gathered
    from batches up to POOL_ROW_GROUP_BYTES.
    `workers`: processes that run pass 1 over parquet shards (None: 2 when the input is large, see
    `pass1_workers`). They need a picklable `count_tokens` (a module-level function or an object whose state
    pickles); with anything else pass 1 runs in this process. The result is the same for any value.
    `scratch_dir`: where the per-row arrays are kept during the build (spill.py; ~100 bytes a row, removed after);
    default: beside `out_path`, else the system temp dir.
    """
    _validate_parameters(max_tokens, chars_per_token_low, chars_per_token_high, batch_rows, token_batch_size)
    started = time.monotonic()
    sources: list[TraceSource] = resolve_sources(traces)
    index = ContaminationIndex(contamination_problems, ngram=ngram)
    settings = RuleSettings(max_tokens=max_tokens, seed=seed, chars_per_token_low=chars_per_token_low,
                         chars_per_token_high=chars_per_token_high, overhead=prompt_overhead_tokens,
                         token_batch_size=token_batch_size, batch_rows=batch_rows)
    n_workers = pass1_workers(sources, count_tokens, workers)
    pool_path = Path(out_path) if out_path is not None else None
    q_path = Path(quarantine_path) if quarantine_path is not None else None
    if scratch_dir is None and pool_path is not None:
        scratch_dir = pool_path.parent
    if scratch_dir is not None:
        Path(scratch_dir).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".pool-build-", dir=scratch_dir))
    try:
        return _build(sources, index=index, count_tokens=count_tokens, settings=settings, workers=n_workers,
                      pool_path=pool_path, q_path=q_path, scratch=scratch, ngram=ngram, started=started)
    except BaseException:
        for path in (pool_path, q_path):  # a half-written file is no use to anyone
            if path is not None:
                _partial(path).unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def _build(sources: list[TraceSource], *, index: ContaminationIndex, count_tokens: CountTokens, settings: RuleSettings,
           workers: int, pool_path: Path | None, q_path: Path | None, scratch: Path, ngram: int,
           started: float) -> PoolResult:
    s = settings
    # Pass 1: per-row rules, per source; what deduplication and ranking need goes to disk, part by part.
    candidates = ColumnStore(scratch / "candidates", CANDIDATE_ARRAYS)
    rejected_parts: list[Path | None] = []  # per source, its rows rejected by a per-row rule (parquet), if any
    contaminated_by_problem: Counter = Counter()
    contamination_examples: list[dict] = []
    n_input = n_tokenized = bound_violations = 0
    for source_idx, decided in enumerate(decide_sources(sources, index=index, count_tokens=count_tokens,
                                                         settings=settings, workers=workers)):
        candidates.append(decided.candidates)
        rejected_parts.append(_spill_rejected(decided.rejected, scratch / f"rejected-{source_idx:06d}.parquet"))
        for ids in decided.contaminated_ids:
            contaminated_by_problem.update(ids)
        contamination_examples.extend(decided.contamination_examples[:100 - len(contamination_examples)])
        n_input += decided.n_input
        n_tokenized += decided.n_tokenized
        bound_violations += decided.bound_violations
        del decided
    release_freed_memory()

    # Deduplication, source by source in stream order; the quarantine is complete (and written) after it.
    deduplicator = Deduplicator({key: repeated_values(candidates, key) for key in DEDUP_KEYS}, s.batch_rows)
    kept = ColumnStore(scratch / "kept", {name: CANDIDATE_ARRAYS[name] for name in ("rows", "n_tokens", "exact",
                                                                                     "rank_key")})
    quarantine_file = _partial(q_path) if q_path is not None else scratch / "quarantine.parquet"
    quarantine_file.parent.mkdir(parents=True, exist_ok=True)
    reasons: Counter = Counter()
    histogram: Counter = Counter()
    n_tokens_total = 0
    with pq.ParquetWriter(quarantine_file, arrow_schema(QUARANTINE_SCHEMA), compression="zstd") as q_writer:
        for source_idx, source in enumerate(sources):
            part = candidates.part(source_idx)
            mask, dropped = deduplicator.source_kept(source, part)
            kept.append({name: part[name][mask] for name in kept.dtypes})
            histogram.update(_histogram(part["n_tokens"][mask]))
            n_tokens_total += int(part["n_tokens"][mask].sum())
            del part, mask
            quarantined = _source_quarantine(source.name, rejected_parts[source_idx], dropped)
            reasons.update(quarantined["reason"].to_list())
            if quarantined.height:
                q_writer.write_table(quarantined.to_arrow().cast(arrow_schema(QUARANTINE_SCHEMA)))
    del deduplicator, candidates
    shutil.rmtree(scratch / "candidates", ignore_errors=True)
    add_rank_column(kept, "rank_key", "pool_rank")
    kept.drop("rank_key")
    release_freed_memory()
    n_pool = kept.n_rows
    decided_at = time.monotonic()

    # Pass 2: the kept rows again, with their token counts and ranks.
    pool_frames: list[pl.DataFrame] = []
    difficulty_mix, dataset_mix = _Mix(), _Mix()  # over the pool rows as they are written, in stream order
    writer = None
    if pool_path is not None:
        pool_path.parent.mkdir(parents=True, exist_ok=True)
        writer = pq.ParquetWriter(_partial(pool_path), arrow_schema(POOL_SCHEMA), compression="zstd",
                                  use_dictionary=_SHORT_COLUMNS, write_statistics=_SHORT_COLUMNS)
    # Batches are gathered into row groups of ~POOL_ROW_GROUP_BYTES: the writer keeps every row group's metadata
    # until it closes the file (measured ~15 KB per row group), so 512-row groups would grow with the pool.
    pending: list[pa.Table] = []
    pending_bytes = 0
    try:
        for rows in _read_ahead(_pool_batches(sources, kept, s.batch_rows), depth=_PASS2_READ_AHEAD):
            difficulty_mix.update(rows["difficulty"])
            dataset_mix.update(rows["dataset"])
            if writer is None:
                pool_frames.append(rows)
                continue
            pending.append(rows.to_arrow().cast(arrow_schema(POOL_SCHEMA)))
            pending_bytes += pending[-1].nbytes
            del rows
            if pending_bytes >= POOL_ROW_GROUP_BYTES:
                writer.write_table(pa.concat_tables(pending))
                pending, pending_bytes = [], 0
        if writer is not None and pending:
            writer.write_table(pa.concat_tables(pending))
    finally:
        if writer is not None:
            writer.close()
    written_at = time.monotonic()

    quarantine = pl.read_parquet(quarantine_file)  # compact (arrow strings), and read after the passes' peaks
    if q_path is not None:
        os.replace(quarantine_file, q_path)
    if pool_path is not None:
        os.replace(_partial(pool_path), pool_path)
        pool = pl.scan_parquet(pool_path)
    else:
        pool = (pl.concat(pool_frames) if pool_frames else pl.DataFrame(schema=POOL_SCHEMA)).lazy()

    malformed = sum(reasons[r] for r in MALFORMED_REASONS)
    stats = {
        "n_input": n_input,
        "n_pool": n_pool,
        "n_quarantined": quarantine.height,
        "n_malformed": malformed,
        "n_filtered": quarantine.height - malformed,
        "reasons": {r: reasons.get(r, 0) for r in MALFORMED_REASONS + FILTER_REASONS},
        "n_tokenized_exactly": n_tokenized,
        "bound_violations": bound_violations,
        "token_histogram": {label: histogram.get(label, 0) for label in _histogram(np.empty(0, np.int64))},
        "n_tokens_total": n_tokens_total,
        "difficulty_mix": difficulty_mix.result(),
        "dataset_mix": dataset_mix.result(),
        "contamination": {
            "n_benchmark_problems": index.n_problems,
            "ngram": ngram,
            "n_rows": reasons.get("contaminated", 0),
            "rows_by_benchmark_question": dict(contaminated_by_problem.most_common()),
            "examples": contamination_examples,
        },
        "parameters": {
            "max_tokens": s.max_tokens, "seed": s.seed, "chars_per_token_low": s.chars_per_token_low,
            "chars_per_token_high": s.chars_per_token_high, "prompt_overhead_tokens": s.overhead,
        },
        "n_sources": len(sources),
        "workers": workers,
        "seconds": {"decide": round(decided_at - started, 3), "write": round(written_at - decided_at, 3)},
    }
    assert stats["n_input"] == n_pool + quarantine.height, "every input row is either pooled or quarantined"
    return PoolResult(pool=pool, quarantine=quarantine, stats=stats, pool_path=pool_path, quarantine_path=q_path)


_REJECTED_SCHEMA = {"row": pl.Int64(), "id": pl.String(), "kind": pl.String(), "reason": pl.String(),
                    "detail": pl.String()}


def _rejected_frame(rejected: Sequence[Rejected]) -> pl.DataFrame:
    return pl.DataFrame([list(column) for column in zip(*rejected, strict=True)] if rejected else None,
                        schema=_REJECTED_SCHEMA, orient="col")


def _spill_rejected(rejected: Sequence[Rejected], path: Path) -> Path | None:
    if not rejected:
        return None
    _rejected_frame(rejected).write_parquet(path, compression="lz4")
    return path


def _source_quarantine(source_name: str, rejected_path: Path | None, dropped: Sequence[Rejected]) -> pl.DataFrame:
    """One source's quarantine rows (QUARANTINE_SCHEMA) in row order: per-row rejections and duplicates."""
    parts = [_rejected_frame(dropped)]
    if rejected_path is not None:
        parts.append(pl.read_parquet(rejected_path))
        rejected_path.unlink()
    frame = pl.concat(parts).sort("row", maintain_order=True)
    return frame.select(pl.format("{}:{}", pl.lit(source_name), pl.col("row")).alias("row_id"),
                        "id", "kind", "reason", "detail")
