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

import ctypes
import hashlib
import math
import multiprocessing
import os
import pickle
import shutil
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from valley_assets.data.decontam import ContaminationIndex
from valley_assets.data.reading import BAD_UTF8, ROW, TraceInput, TraceSource, resolve_sources
from valley_assets.data.schema import (
    POOL_SCHEMA,
    QUARANTINE_SCHEMA,
    REQUIRED_TRACE_COLUMNS,
    TRACE_SCHEMA,
    arrow_schema,
)
from valley_assets.data.spill import ColumnStore, add_rank_column, repeated_values
from valley_assets.science.text import THINK_CLOSE, THINK_OPEN, extract_code

CountTokens = Callable[[list[str]], list[int]]

MALFORMED_REASONS = (
    "non_utf8",
    "missing_field",
    "invalid_pass_rate",
    "empty_question",
    "empty_generation",
    "unrecovered_question",
    "invalid_judgement",
)
FILTER_REASONS = (
    "no_closed_think",
    "no_code",
    "too_long",
    "contaminated",
    "duplicate_id",
    "exact_duplicate",
    "near_duplicate",
)
JUDGEMENTS = ("right", "wrong")
TOKEN_HISTOGRAM_EDGES = (0, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)

# Same language check as science.text: `<think>` followed later by `</think>`.
_CLOSED_THINK_RE = r"(?s)<think>.*</think>"
# Near-duplicate keys look at the opening and closing characters only: normalising whole 30K-character traces with
# a regex dominated the pool build (measured 4x slower), and independent samples never share both ends.
NEAR_DUP_WINDOW = 2048
# Below this many input rows pass 1 stays in this process: a spawned worker costs a second or two of imports.
PARALLEL_MIN_ROWS = 50_000


@dataclass
class PoolResult:
    pool: pl.LazyFrame  # POOL_SCHEMA; scans `pool_path` when one was given
    quarantine: pl.DataFrame  # QUARANTINE_SCHEMA, one row per rejected input row
    stats: dict
    pool_path: Path | None = None
    quarantine_path: Path | None = None


def rank_key(seed: int, row_id: str) -> int:
    """The seeded sort key of a row: the first 8 bytes of blake2b(seed, id), unsigned little-endian."""
    digest = hashlib.blake2b(f"{seed}\x00{row_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def token_bounds(n_bytes: int, n_chars: int, *, chars_per_token_low: float, chars_per_token_high: float | None,
                 overhead: int) -> tuple[int, int]:
    """(lower, upper) bounds on the token count of a text of that many UTF-8 bytes and characters."""
    upper = math.ceil(n_bytes / chars_per_token_low) + overhead
    lower = (math.floor(n_chars / chars_per_token_high) if chars_per_token_high else 0) + overhead
    return lower, upper


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


def _with_all_columns(batch: pl.DataFrame) -> pl.DataFrame:
    """Absent trace columns become null columns (required ones are then reported as missing_field)."""
    missing = [pl.lit(None, dtype=dt).alias(c) for c, dt in TRACE_SCHEMA.items() if c not in batch.columns]
    return batch.with_columns(missing) if missing else batch


def malformed_reasons(batch: pl.DataFrame) -> pl.DataFrame:
    """`_row`, `id`, `reason`, `detail` for every row of the batch; reason null when the row is well-formed.

    Pure and vectorised; the order of the `when` chain is the order of MALFORMED_REASONS.
    """
    batch = _with_all_columns(batch)
    missing = pl.concat_str(
        [pl.when(pl.col(c).is_null()).then(pl.lit(c)) for c in REQUIRED_TRACE_COLUMNS],
        separator=",", ignore_nulls=True,
    )
    raw_pass_rate = pl.col("pass_rate")
    pass_rate = raw_pass_rate.cast(pl.Float64, strict=False)
    pass_rate_ok = pass_rate.is_finite() & ((pass_rate == -1.0) | ((pass_rate >= 0.0) & (pass_rate <= 1.0)))
    question = pl.col("question")
    generation = pl.col("r1_generation")
    reason = (
        pl.when(pl.col(BAD_UTF8).is_not_null()).then(pl.lit("non_utf8"))
        .when(missing != "").then(pl.lit("missing_field"))
        .when(~pass_rate_ok.fill_null(False)).then(pl.lit("invalid_pass_rate"))
        .when(question.str.strip_chars() == "").then(pl.lit("empty_question"))
        # (no non-whitespace character: same as strip_chars() == "", without copying every trace)
        .when(~generation.str.contains(r"\S")).then(pl.lit("empty_generation"))
        .when(question.str.strip_chars() == "-").then(pl.lit("unrecovered_question"))
        .when(~pl.col("judgement").is_in(JUDGEMENTS)).then(pl.lit("invalid_judgement"))
    )
    detail = (
        pl.when(reason == "non_utf8").then(pl.col(BAD_UTF8))
        .when(reason == "missing_field").then(missing)
        .when(reason == "invalid_pass_rate").then(pl.format("pass_rate={}", raw_pass_rate.cast(pl.String)))
        .when(reason == "invalid_judgement").then(pl.format("judgement={}", pl.col("judgement")))
    )
    return batch.select(
        pl.col(ROW),
        pl.col("id").cast(pl.String),
        reason.alias("reason"),
        detail.cast(pl.String).fill_null("").alias("detail"),
    )


def closed_think_and_answer(generations: pl.Series) -> tuple[list[bool], list[str | None]]:
    """Vectorised `has_closed_think`, and the answer part (text after the last `</think>`) of those rows.

    The answer is a byte slice after the first `</think>` (`str.find` gives byte offsets); only when that slice holds
    another `</think>` (rare) does Python's `rfind` find the last one. Splitting or counting over every 30K-character
    trace would read it again; slicing copies only the answer.
    """
    frame = generations.to_frame("g")
    g = pl.col("g")
    close_at = g.str.find(THINK_CLOSE, literal=True)
    feats = frame.select(
        g.str.contains(_CLOSED_THINK_RE).alias("think"),
        g.cast(pl.Binary).bin.slice(close_at + len(THINK_CLOSE)).cast(pl.String).alias("answer"),
    ).with_columns(pl.col("answer").str.contains(THINK_CLOSE, literal=True).fill_null(False).alias("more"))
    think = feats["think"].to_list()
    answers = feats["answer"].to_list()
    for k in feats["more"].arg_true().to_list():
        text = generations[k]
        answers[k] = text[text.rfind(THINK_CLOSE) + len(THINK_CLOSE):]
    for k, closed in enumerate(think):
        if not closed:
            answers[k] = None
    return think, answers


def answer_has_code(answer: str) -> bool:
    """`extract_code(generation) is not None` for a generation whose answer part (after `</think>`) is `answer`.

    Prefixing an empty closed think block makes `answer_part` return exactly `answer`, so this is the shared
    definition applied to the short answer rather than to the whole trace.
    """
    return extract_code(THINK_OPEN + THINK_CLOSE + answer) is not None


# The only code points outside ASCII whose lowercase holds an ASCII letter or digit (checked over all of Unicode
# against polars' to_lowercase): KELVIN SIGN -> "k", LATIN CAPITAL LETTER I WITH DOT ABOVE -> "i" + U+0307.
_LOWERCASE_TO_ASCII = (("\u212a", "k"), ("\u0130", "i"))


def normalised_bytes(texts: pl.Series) -> pa.Array:
    """Each text lowercased with every character that is not an ASCII letter or digit deleted, as large_binary.

    Equal to `to_lowercase()` then deleting `[^0-9a-z]`, computed on the UTF-8 bytes with numpy: a regex replacing
    every run of spaces and punctuation was most of pass 1's polars time (measured 570 ms per 8K traces, numpy ~30).
    Bytes >= 0x80 belong to non-ASCII characters, which are all deleted, except the two whose lowercase is ASCII.
    """
    for source, target in _LOWERCASE_TO_ASCII:
        texts = texts.str.replace_all(source, target, literal=True)
    array = texts.cast(pl.Binary).to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_binary())
    n = len(array)
    validity, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64, count=n + 1, offset=array.offset * 8)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.empty(0, np.uint8)
    data = data[offsets[0]:offsets[-1]]
    lowered = np.where((data >= 65) & (data <= 90), data + 32, data).astype(np.uint8)
    keep = ((lowered >= 48) & (lowered <= 57)) | ((lowered >= 97) & (lowered <= 122))
    kept_before = np.concatenate([np.zeros(1, np.int64), np.cumsum(keep, dtype=np.int64)])
    new_offsets = kept_before[offsets - offsets[0]]
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [validity, pa.py_buffer(new_offsets),
                                                                   pa.py_buffer(lowered[keep])],
                                            null_count=array.null_count)


def near_duplicate_keys(generations: pl.Series) -> np.ndarray:
    """uint64 key of the normalised first and last NEAR_DUP_WINDOW characters (see the module docstring)."""
    head = pl.Series(normalised_bytes(generations.str.head(NEAR_DUP_WINDOW))).hash(seed=0).to_numpy()
    tail = pl.Series(normalised_bytes(generations.str.tail(NEAR_DUP_WINDOW))).hash(seed=0).to_numpy()
    with np.errstate(over="ignore"):  # a 64-bit mix of the two hashes: wrapping is intended
        return head * np.uint64(0x9E3779B97F4A7C15) ^ tail


def _histogram(values: np.ndarray) -> dict[str, int]:
    """Counts per TOKEN_HISTOGRAM_EDGES bin [lo, hi); the last bin is open."""
    edges = TOKEN_HISTOGRAM_EDGES
    labels = [f"[{lo},{hi})" for lo, hi in zip(edges, edges[1:], strict=False)] + [f"[{edges[-1]},inf)"]
    bins = np.searchsorted(np.asarray(edges[1:]), np.asarray(values, dtype=np.int64), side="right")
    return dict(zip(labels, np.bincount(bins, minlength=len(labels)).tolist(), strict=True))


@dataclass(frozen=True)
class _Settings:
    """The parameters of pass 1's per-row rules (picklable: worker processes get the same ones)."""

    max_tokens: int
    seed: int
    chars_per_token_low: float
    chars_per_token_high: float | None
    overhead: int
    token_batch_size: int
    batch_rows: int


_Rejected = tuple[int, str, str, str, str]  # (row, id, kind, reason, detail)
# Per candidate (a row that passed every per-row rule), what deduplication and ranking need, as fixed-width numpy
# arrays: 49 bytes a row, no Python object per row (1.4M rows: ~65 MB in the main process). Ids and the other text
# columns are not kept: the few rows deduplication has to compare by id are read back from the source.
_CANDIDATE_ARRAYS: dict[str, type] = {
    "rows": np.int64,        # row number in the source
    "n_tokens": np.int64,
    "exact": np.bool_,       # n_tokens counted by the tokenizer, not the byte bound
    "rank_key": np.uint64,   # rank_key(seed, id)
    "id_key": np.uint64,     # polars hash of id / r1_generation / its near-duplicate normalisation
    "exact_key": np.uint64,
    "near_key": np.uint64,
}


def _empty_candidates() -> dict[str, np.ndarray]:
    return {name: np.empty(0, dtype) for name, dtype in _CANDIDATE_ARRAYS.items()}


@dataclass
class _SourceDecisions:
    """What pass 1's per-row rules decided for one source: small per row, cheap to send between processes."""

    candidates: dict[str, np.ndarray] = field(default_factory=_empty_candidates)  # _CANDIDATE_ARRAYS, row order
    rejected: list[_Rejected] = field(default_factory=list)  # row order
    contaminated_ids: list[tuple[str, ...]] = field(default_factory=list)  # per contaminated row, row order
    contamination_examples: list[dict] = field(default_factory=list)  # the first 100, row order
    n_input: int = 0
    n_tokenized: int = 0
    bound_violations: int = 0


class _RowRules:
    """Pass 1's per-row rules (everything but deduplication) for one source at a time, in bounded batches.

    The rules of a row depend only on that row (the contamination cache is keyed by the question text's hash and
    holds a pure function of it), so sources can be decided in any process and in any order.
    """

    def __init__(self, *, index: ContaminationIndex, count_tokens: CountTokens, settings: _Settings):
        self.index = index
        self.count_tokens = count_tokens
        self.settings = settings
        self.question_verdicts: dict[int, tuple[str, tuple[str, ...]] | None] = {}

    def _count(self, texts: list[str]) -> list[int]:
        size = self.settings.token_batch_size
        counts: list[int] = []
        for start in range(0, len(texts), size):
            chunk = texts[start:start + size]
            got = list(self.count_tokens(chunk))
            if len(got) != len(chunk) or not all(isinstance(n, int) and n >= 0 for n in got):
                raise ValueError(f"count_tokens must return one non-negative int per text; got {len(got)} values "
                                 f"for {len(chunk)} texts")
            counts.extend(got)
        return counts

    def decide_source(self, source: TraceSource) -> _SourceDecisions:
        out = _SourceDecisions()
        parts = [self._decide_batch(source.name, batch, out) for batch in source.batches(self.settings.batch_rows)]
        if parts:
            out.candidates = {name: np.concatenate([p[name] for p in parts]) for name in _CANDIDATE_ARRAYS}
        return out

    def _decide_batch(self, source_name: str, batch: pl.DataFrame, out: _SourceDecisions) -> dict[str, np.ndarray]:
        s = self.settings
        batch = _with_all_columns(batch)
        out.n_input += batch.height
        verdict = malformed_reasons(batch)
        rejected: list[_Rejected] = [
            (r, i, "malformed", reason, detail)
            for r, i, reason, detail in verdict.filter(pl.col("reason").is_not_null()).iter_rows()
        ]
        good = batch.filter(verdict["reason"].is_null())  # same row order as the batch

        think, answers = closed_think_and_answer(good["r1_generation"])
        feats = good.select(
            pl.col(ROW), pl.col("id"),
            (pl.col("question").str.len_bytes() + pl.col("r1_generation").str.len_bytes() + 2).alias("n_bytes"),
            (pl.col("question").str.len_chars() + pl.col("r1_generation").str.len_chars() + 2).alias("n_chars"),
            pl.col("question").hash(seed=0).alias("q_key"),
            pl.col("id").hash(seed=0).alias("id_key"),
            pl.col("r1_generation").hash(seed=0).alias("exact_key"),
        ).with_columns(pl.Series("near_key", near_duplicate_keys(good["r1_generation"]), dtype=pl.UInt64))
        rows = feats.to_dict(as_series=False)
        n = feats.height
        alive = [True] * n

        def reject(k: int, reason: str, detail: str = "") -> None:
            alive[k] = False
            rejected.append((rows[ROW][k], rows["id"][k], "filtered", reason, detail))

        for k in range(n):
            if not think[k]:
                reject(k, "no_closed_think")
            elif not answer_has_code(answers[k]):
                reject(k, "no_code")

        # Length: bounds from sizes, the tokenizer only for rows between the bounds.
        n_tokens = [0] * n
        exact = [False] * n
        to_tokenize = []
        for k in range(n):
            if not alive[k]:
                continue
            lower, upper = token_bounds(rows["n_bytes"][k], rows["n_chars"][k],
                                        chars_per_token_low=s.chars_per_token_low,
                                        chars_per_token_high=s.chars_per_token_high, overhead=s.overhead)
            if upper <= s.max_tokens:
                n_tokens[k] = upper
            elif lower > s.max_tokens:
                n_tokens[k] = lower
                reject(k, "too_long", f"at least {lower} tokens (estimated) > {s.max_tokens}")
            else:
                n_tokens[k] = upper
                to_tokenize.append(k)
        if to_tokenize:
            texts = good[to_tokenize].select(pl.format("{}\n\n{}", pl.col("question"), pl.col("r1_generation")))
            for k, count in zip(to_tokenize, self._count(texts.to_series().to_list()), strict=True):
                if count + s.overhead > n_tokens[k]:
                    out.bound_violations += 1
                n_tokens[k] = count + s.overhead
                exact[k] = True
                if n_tokens[k] > s.max_tokens:
                    reject(k, "too_long", f"{n_tokens[k]} tokens > {s.max_tokens}")
            out.n_tokenized += len(to_tokenize)

        # Contamination: once per distinct question (OCR2 has dozens of traces per question).
        unseen = sorted({rows["q_key"][k] for k in range(n) if alive[k]} - self.question_verdicts.keys())
        if unseen:
            first_row = {}
            for k in range(n):
                first_row.setdefault(rows["q_key"][k], k)
            questions = good["question"]
            for q_key in unseen:
                hit = self.index.match(questions[first_row[q_key]])
                self.question_verdicts[q_key] = (hit.rule, hit.question_ids) if hit else None
        for k in range(n):
            if not alive[k]:
                continue
            hit = self.question_verdicts[rows["q_key"][k]]
            if hit is not None:
                rule, ids = hit
                reject(k, "contaminated", f"{rule}: {','.join(ids)}")
                out.contaminated_ids.append(ids)
                if len(out.contamination_examples) < 100:
                    out.contamination_examples.append(
                        {"row_id": f"{source_name}:{rows[ROW][k]}", "id": rows["id"][k], "rule": rule,
                         "lcb_question_ids": list(ids)})

        rejected.sort(key=lambda r: r[0])  # row order, whichever rule rejected the row
        out.rejected.extend(rejected)
        keep = np.flatnonzero(np.array(alive, dtype=np.bool_))
        return {
            "rows": feats[ROW].to_numpy()[keep].astype(np.int64),
            "n_tokens": np.array(n_tokens, dtype=np.int64)[keep],
            "exact": np.array(exact, dtype=np.bool_)[keep],
            "rank_key": np.array([rank_key(s.seed, rows["id"][k]) for k in keep], dtype=np.uint64),
            "id_key": feats["id_key"].to_numpy()[keep],
            "exact_key": feats["exact_key"].to_numpy()[keep],
            "near_key": feats["near_key"].to_numpy()[keep],
        }


# Pass 1 in worker processes: each builds its own _RowRules once, then decides whole sources.
_worker_rules: _RowRules | None = None


def _init_worker(index: ContaminationIndex, count_tokens: CountTokens, settings: _Settings) -> None:
    global _worker_rules
    pa.set_cpu_count(1)  # see _single_threaded_children
    _worker_rules = _RowRules(index=index, count_tokens=count_tokens, settings=settings)


def _decide_in_worker(source: TraceSource) -> _SourceDecisions:
    assert _worker_rules is not None, "worker process was not initialised"
    decided = _worker_rules.decide_source(source)
    _release_freed_memory()  # hand freed batch buffers back between shards
    return decided


def _picklable(value: object) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # lambdas, closures, objects holding locks: pickle raises several exception types
        return False
    return True


def _pass1_workers(sources: Sequence[TraceSource], count_tokens: CountTokens, workers: int | None) -> int:
    """How many processes decide the sources: more than one only for parquet files and a picklable tokenizer.

    `workers=None` picks min(2, available cores) when the input has at least PARALLEL_MIN_ROWS rows (starting a
    worker costs a second or two of imports), else 1.
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if len(sources) < 2 or any(s.path is None for s in sources) or not _picklable(count_tokens):
        return 1
    if workers is None:
        n_rows = sum(s.num_rows() for s in sources)
        workers = min(2, len(os.sched_getaffinity(0))) if n_rows >= PARALLEL_MIN_ROWS else 1
    return min(workers, len(sources))


# Thread pools that size themselves from the environment when a process imports them.
_ONE_THREAD_ENV = {"POLARS_MAX_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
                   # and arrow's allocator hands freed pages back at once (see valley_assets/__init__.py)
                   "MIMALLOC_PURGE_DELAY": os.environ.get("MIMALLOC_PURGE_DELAY", "0")}


@contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Processes started inside get 1-thread polars and tokenizers pools (both size them from the environment).

    The workers are the parallelism, one per core; a thread pool per worker on top only adds threads that spin
    while waiting for work (measured as extra system time on 2 cores).
    """
    before = {name: os.environ.get(name) for name in _ONE_THREAD_ENV}
    os.environ.update(_ONE_THREAD_ENV)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def _decide_sources(sources: Sequence[TraceSource], *, index: ContaminationIndex, count_tokens: CountTokens,
                    settings: _Settings, workers: int) -> Iterator[_SourceDecisions]:
    """Each source's decisions, in source order (workers decide ahead; results come back in order)."""
    if workers == 1:
        rules = _RowRules(index=index, count_tokens=count_tokens, settings=settings)
        for source in sources:
            yield rules.decide_source(source)
        return
    # spawn, not fork: a forked child of a process whose polars thread pool is running can deadlock. Workers live
    # for the whole pass: replacing them (max_tasks_per_child) bought no memory (a fresh worker reaches the same
    # working set within seconds) and cost 2.5x the CPU at 1.4M rows (imports and the contamination-verdict cache
    # rebuilt per replacement). ProcessPoolExecutor, not multiprocessing.Pool: a worker killed (OOM killer, SIGKILL)
    # breaks the executor and raises here, where a Pool waits forever for the lost task.
    context = multiprocessing.get_context("spawn")
    with _single_threaded_children(), ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker,
            initargs=(index, count_tokens, settings)) as executor:
        futures: list = [executor.submit(_decide_in_worker, source) for source in sources]
        for k, source in enumerate(sources):
            try:
                decided = futures[k].result()  # in source order; later shards are decided meanwhile
            except BrokenProcessPool as exc:
                for f in futures[k:]:
                    f.cancel()
                raise RuntimeError(
                    f"a pool worker process died while deciding {source.name} (killed: out of memory or a signal); "
                    "nothing was written. Rerun with workers=1, or give the job more memory") from exc
            # A finished future keeps its result: without this every shard's decisions stayed in memory until the
            # end of pass 1 (measured +70 MB at 1.4M rows).
            futures[k] = None
            yield decided
            del decided


def _ids_of_rows(source: TraceSource, rows: np.ndarray, batch_rows: int) -> dict[int, str]:
    """The `id` of the given rows of a source, read back through the same decoding as pass 1 (id column only)."""
    wanted = pl.Series(rows, dtype=pl.Int64)
    ids: dict[int, str] = {}
    for batch in source.batches(batch_rows, columns=["id"]):
        ids.update(batch.filter(pl.col(ROW).is_in(wanted)).select(ROW, "id").iter_rows())
    return ids


_DEDUP_KEYS = ("id_key", "exact_key", "near_key")


class _Deduplicator:
    """The first copy in stream order wins; sources are given to `source_kept` in stream order.

    The rule is sequential (a dropped row does not claim its keys), but a row whose id, exact key and near key are
    all unique among the candidates can neither be dropped nor cause a drop, so only the rows sharing some key
    (a few percent at most; `repeated` holds those key values, found over all candidates first) go through the
    sequential loop. Ids are compared by value (the id key only selects the suspects), read back from the sources
    for those rows alone. Memory: one source's candidates plus the keys of the suspects seen so far.
    """

    def __init__(self, repeated: dict[str, np.ndarray], batch_rows: int):
        self.repeated, self.batch_rows = repeated, batch_rows
        self.seen_ids: dict[str, str] = {}
        self.seen_exact: dict[int, str] = {}
        self.seen_near: dict[int, str] = {}

    def source_kept(self, source: TraceSource, candidates: dict[str, np.ndarray]) -> tuple[np.ndarray, list[_Rejected]]:
        """The kept mask over this source's candidates, and its dropped rows (row order)."""
        kept = np.ones(len(candidates["rows"]), dtype=np.bool_)
        shares = np.zeros(len(kept), dtype=np.bool_)
        for key in _DEDUP_KEYS:
            shares |= np.isin(candidates[key], self.repeated[key])
        local = np.flatnonzero(shares)
        dropped: list[_Rejected] = []
        if not len(local):
            return kept, dropped
        rows = candidates["rows"][local]
        ids = _ids_of_rows(source, rows, self.batch_rows)
        for k, row, exact_key, near_key in zip(local.tolist(), rows.tolist(), candidates["exact_key"][local].tolist(),
                                               candidates["near_key"][local].tolist(), strict=True):
            row_id = ids[row]
            if row_id in self.seen_ids:
                reason, detail = "duplicate_id", f"id already used by row {self.seen_ids[row_id]}"
            elif exact_key in self.seen_exact:
                reason, detail = "exact_duplicate", f"same r1_generation as id {self.seen_exact[exact_key]}"
            elif near_key in self.seen_near:
                reason, detail = "near_duplicate", f"normalised r1_generation equals id {self.seen_near[near_key]}"
            else:
                self.seen_ids[row_id] = f"{source.name}:{row}"
                self.seen_exact[exact_key] = row_id
                self.seen_near[near_key] = row_id
                continue
            kept[k] = False
            dropped.append((row, row_id, "filtered", reason, detail))
        return kept, dropped


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS: arrow's pool, and glibc's arenas (where available).

    Arrays unpickled from the workers are allocated in the executor thread's malloc arena, which glibc does not
    shrink on its own: before the per-row arrays went to disk, the main process's heap stayed at 0.12 GiB from the
    end of deduplication through pass 2 at 1.4M rows (phase probe, RESULTS_data.md).
    """
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc (macOS, musl): nothing to trim
        pass


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
    batch = _with_all_columns(batch)
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
    `_pass1_workers`). They need a picklable `count_tokens` (a module-level function or an object whose state
    pickles); with anything else pass 1 runs in this process. The result is the same for any value.
    `scratch_dir`: where the per-row arrays are kept during the build (spill.py; ~100 bytes a row, removed after);
    default: beside `out_path`, else the system temp dir.
    """
    _validate_parameters(max_tokens, chars_per_token_low, chars_per_token_high, batch_rows, token_batch_size)
    started = time.monotonic()
    sources: list[TraceSource] = resolve_sources(traces)
    index = ContaminationIndex(contamination_problems, ngram=ngram)
    settings = _Settings(max_tokens=max_tokens, seed=seed, chars_per_token_low=chars_per_token_low,
                         chars_per_token_high=chars_per_token_high, overhead=prompt_overhead_tokens,
                         token_batch_size=token_batch_size, batch_rows=batch_rows)
    n_workers = _pass1_workers(sources, count_tokens, workers)
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


def _build(sources: list[TraceSource], *, index: ContaminationIndex, count_tokens: CountTokens, settings: _Settings,
           workers: int, pool_path: Path | None, q_path: Path | None, scratch: Path, ngram: int,
           started: float) -> PoolResult:
    s = settings
    # Pass 1: per-row rules, per source; what deduplication and ranking need goes to disk, part by part.
    candidates = ColumnStore(scratch / "candidates", _CANDIDATE_ARRAYS)
    rejected_parts: list[Path | None] = []  # per source, its rows rejected by a per-row rule (parquet), if any
    contaminated_by_problem: Counter = Counter()
    contamination_examples: list[dict] = []
    n_input = n_tokenized = bound_violations = 0
    for source_idx, decided in enumerate(_decide_sources(sources, index=index, count_tokens=count_tokens,
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
    _release_freed_memory()

    # Deduplication, source by source in stream order; the quarantine is complete (and written) after it.
    deduplicator = _Deduplicator({key: repeated_values(candidates, key) for key in _DEDUP_KEYS}, s.batch_rows)
    kept = ColumnStore(scratch / "kept", {name: _CANDIDATE_ARRAYS[name] for name in ("rows", "n_tokens", "exact",
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
    _release_freed_memory()
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


def _rejected_frame(rejected: Sequence[_Rejected]) -> pl.DataFrame:
    return pl.DataFrame([list(column) for column in zip(*rejected, strict=True)] if rejected else None,
                        schema=_REJECTED_SCHEMA, orient="col")


def _spill_rejected(rejected: Sequence[_Rejected], path: Path) -> Path | None:
    if not rejected:
        return None
    _rejected_frame(rejected).write_parquet(path, compression="lz4")
    return path


def _source_quarantine(source_name: str, rejected_path: Path | None, dropped: Sequence[_Rejected]) -> pl.DataFrame:
    """One source's quarantine rows (QUARANTINE_SCHEMA) in row order: per-row rejections and duplicates."""
    parts = [_rejected_frame(dropped)]
    if rejected_path is not None:
        parts.append(pl.read_parquet(rejected_path))
        rejected_path.unlink()
    frame = pl.concat(parts).sort("row", maintain_order=True)
    return frame.select(pl.format("{}:{}", pl.lit(source_name), pl.col("row")).alias("row_id"),
                        "id", "kind", "reason", "detail")
