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

import hashlib
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
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
_NEAR_DUP_STRIP_RE = r"[^0-9a-z]+"
# Near-duplicate keys look at the opening and closing characters only: normalising whole 30K-character traces with
# a regex dominated the pool build (measured 4x slower), and independent samples never share both ends.
NEAR_DUP_WINDOW = 2048


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
        .when(generation.str.strip_chars() == "").then(pl.lit("empty_generation"))
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

    The common case, one `</think>`, is a byte slice after `str.find` (byte offsets); rows with several closing tags
    (rare) take Python's `rfind`. Splitting every 30K-character trace would copy it; slicing copies only the answer.
    """
    frame = generations.to_frame("g")
    g = pl.col("g")
    close_at = g.str.find(THINK_CLOSE, literal=True)
    feats = frame.select(
        g.str.contains(_CLOSED_THINK_RE).alias("think"),
        g.str.count_matches(THINK_CLOSE, literal=True).alias("n_close"),
        pl.when(g.str.count_matches(THINK_CLOSE, literal=True) == 1)
        .then(g.cast(pl.Binary).bin.slice(close_at + len(THINK_CLOSE)).cast(pl.String)).alias("answer"),
    )
    think = feats["think"].to_list()
    answers = feats["answer"].to_list()
    for k, n_close in enumerate(feats["n_close"]):
        if think[k] and n_close > 1:
            text = generations[k]
            answers[k] = text[text.rfind(THINK_CLOSE) + len(THINK_CLOSE):]
        elif not think[k]:
            answers[k] = None
    return think, answers


def answer_has_code(answer: str) -> bool:
    """`extract_code(generation) is not None` for a generation whose answer part (after `</think>`) is `answer`.

    Prefixing an empty closed think block makes `answer_part` return exactly `answer`, so this is the shared
    definition applied to the short answer rather than to the whole trace.
    """
    return extract_code(THINK_OPEN + THINK_CLOSE + answer) is not None


def near_duplicate_key(generation: pl.Expr) -> pl.Expr:
    """Hash of the normalised first and last NEAR_DUP_WINDOW characters (see the module docstring)."""
    def normalised(part: pl.Expr) -> pl.Expr:
        return part.str.to_lowercase().str.replace_all(_NEAR_DUP_STRIP_RE, "")

    return pl.concat_str([normalised(generation.str.head(NEAR_DUP_WINDOW)), pl.lit("|"),
                          normalised(generation.str.tail(NEAR_DUP_WINDOW))]).hash(seed=0)


def _histogram(values: Sequence[int]) -> dict[str, int]:
    edges = TOKEN_HISTOGRAM_EDGES
    labels = [f"[{lo},{hi})" for lo, hi in zip(edges, edges[1:], strict=False)] + [f"[{edges[-1]},inf)"]
    counts = Counter()
    for v in values:
        i = next((k for k, hi in enumerate(edges[1:]) if v < hi), len(edges) - 1)
        counts[labels[i]] += 1
    return {label: counts.get(label, 0) for label in labels}


@dataclass
class _Decisions:
    """What pass 1 learned, small per row: which rows stay and their token counts and sort keys."""

    source: list[int] = field(default_factory=list)
    row: list[int] = field(default_factory=list)
    n_tokens: list[int] = field(default_factory=list)
    exact: list[bool] = field(default_factory=list)
    key: list[int] = field(default_factory=list)
    quarantine: list[pl.DataFrame] = field(default_factory=list)


class _PoolDecider:
    """Pass 1 state: dedup keys seen so far, the contamination cache, counters."""

    def __init__(self, *, index: ContaminationIndex, count_tokens: CountTokens, max_tokens: int, seed: int,
                 chars_per_token_low: float, chars_per_token_high: float | None, prompt_overhead_tokens: int,
                 token_batch_size: int):
        self.index = index
        self.count_tokens = count_tokens
        self.max_tokens = max_tokens
        self.seed = seed
        self.cpt_low = chars_per_token_low
        self.cpt_high = chars_per_token_high
        self.overhead = prompt_overhead_tokens
        self.token_batch_size = token_batch_size
        self.seen_ids: dict[str, str] = {}
        self.seen_exact: dict[int, str] = {}
        self.seen_near: dict[int, str] = {}
        self.question_verdicts: dict[int, tuple[str, tuple[str, ...]] | None] = {}
        self.decisions = _Decisions()
        self.reasons: Counter = Counter()
        self.difficulty: Counter = Counter()
        self.dataset: Counter = Counter()
        self.contaminated_by_problem: Counter = Counter()
        self.contamination_examples: list[dict] = []
        self.n_input = 0
        self.n_tokenized = 0
        self.bound_violations = 0

    def _count(self, texts: list[str]) -> list[int]:
        counts: list[int] = []
        for start in range(0, len(texts), self.token_batch_size):
            chunk = texts[start:start + self.token_batch_size]
            got = list(self.count_tokens(chunk))
            if len(got) != len(chunk) or not all(isinstance(n, int) and n >= 0 for n in got):
                raise ValueError(f"count_tokens must return one non-negative int per text; got {len(got)} values "
                                 f"for {len(chunk)} texts")
            counts.extend(got)
        self.n_tokenized += len(texts)
        return counts

    def decide(self, source_idx: int, source_name: str, batch: pl.DataFrame) -> None:
        batch = _with_all_columns(batch)
        self.n_input += batch.height
        verdict = malformed_reasons(batch)
        rejected: list[tuple[int, str, str, str, str]] = [
            (r, i, "malformed", reason, detail)
            for r, i, reason, detail in verdict.filter(pl.col("reason").is_not_null()).iter_rows()
        ]
        good = batch.join(verdict.filter(pl.col("reason").is_null()).select(ROW), on=ROW, how="semi",
                          maintain_order="left")

        think, answers = closed_think_and_answer(good["r1_generation"])
        feats = good.select(
            pl.col(ROW), pl.col("id"),
            (pl.col("question").str.len_bytes() + pl.col("r1_generation").str.len_bytes() + 2).alias("n_bytes"),
            (pl.col("question").str.len_chars() + pl.col("r1_generation").str.len_chars() + 2).alias("n_chars"),
            pl.col("question").hash(seed=0).alias("q_key"),
            pl.col("r1_generation").hash(seed=0).alias("exact_key"),
            near_duplicate_key(pl.col("r1_generation")).alias("near_key"),
            pl.col("difficulty"), pl.col("dataset"),
        )
        rows = feats.to_dict(as_series=False)
        rows["think"], rows["answer"] = think, answers
        n = feats.height
        alive = [True] * n

        def reject(k: int, reason: str, detail: str = "") -> None:
            alive[k] = False
            rejected.append((rows[ROW][k], rows["id"][k], "filtered", reason, detail))

        for k in range(n):
            if not rows["think"][k]:
                reject(k, "no_closed_think")
            elif not answer_has_code(rows["answer"][k]):
                reject(k, "no_code")

        # Length: bounds from sizes, the tokenizer only for rows between the bounds.
        n_tokens = [0] * n
        exact = [False] * n
        to_tokenize = []
        for k in range(n):
            if not alive[k]:
                continue
            lower, upper = token_bounds(rows["n_bytes"][k], rows["n_chars"][k], chars_per_token_low=self.cpt_low,
                                        chars_per_token_high=self.cpt_high, overhead=self.overhead)
            if upper <= self.max_tokens:
                n_tokens[k] = upper
            elif lower > self.max_tokens:
                n_tokens[k] = lower
                reject(k, "too_long", f"at least {lower} tokens (estimated) > {self.max_tokens}")
            else:
                n_tokens[k] = upper
                to_tokenize.append(k)
        if to_tokenize:
            texts_frame = good.select(pl.format("{}\n\n{}", pl.col("question"), pl.col("r1_generation")))[
                to_tokenize].to_series()
            for k, count in zip(to_tokenize, self._count(texts_frame.to_list()), strict=True):
                if count + self.overhead > n_tokens[k]:
                    self.bound_violations += 1
                n_tokens[k] = count + self.overhead
                exact[k] = True
                if n_tokens[k] > self.max_tokens:
                    reject(k, "too_long", f"{n_tokens[k]} tokens > {self.max_tokens}")

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
                self.contaminated_by_problem.update(ids)
                if len(self.contamination_examples) < 100:
                    self.contamination_examples.append(
                        {"row_id": f"{source_name}:{rows[ROW][k]}", "id": rows["id"][k], "rule": rule,
                         "lcb_question_ids": list(ids)})

        # Duplicates, first copy in stream order wins.
        for k in range(n):
            if not alive[k]:
                continue
            row_id = rows["id"][k]
            if row_id in self.seen_ids:
                reject(k, "duplicate_id", f"id already used by row {self.seen_ids[row_id]}")
                continue
            if rows["exact_key"][k] in self.seen_exact:
                reject(k, "exact_duplicate", f"same r1_generation as id {self.seen_exact[rows['exact_key'][k]]}")
                continue
            if rows["near_key"][k] in self.seen_near:
                reject(k, "near_duplicate", f"normalised r1_generation equals id {self.seen_near[rows['near_key'][k]]}")
                continue
            self.seen_ids[row_id] = f"{source_name}:{rows[ROW][k]}"
            self.seen_exact[rows["exact_key"][k]] = row_id
            self.seen_near[rows["near_key"][k]] = row_id

        d = self.decisions
        for k in range(n):
            if alive[k]:
                d.source.append(source_idx)
                d.row.append(rows[ROW][k])
                d.n_tokens.append(n_tokens[k])
                d.exact.append(exact[k])
                d.key.append(rank_key(self.seed, rows["id"][k]))
                self.difficulty[rows["difficulty"][k]] += 1
                self.dataset[rows["dataset"][k]] += 1
        if rejected:
            rejected.sort(key=lambda r: r[0])  # stream order, whichever rule rejected the row
            self.reasons.update(r[3] for r in rejected)
            d.quarantine.append(pl.DataFrame(
                {"row_id": [f"{source_name}:{r[0]}" for r in rejected], "id": [r[1] for r in rejected],
                 "kind": [r[2] for r in rejected], "reason": [r[3] for r in rejected],
                 "detail": [r[4] for r in rejected]},
                schema=QUARANTINE_SCHEMA,
            ))


def _ranked(decisions: _Decisions) -> pl.DataFrame:
    """Kept rows with `pool_rank` from the seeded key (stream position breaks ties)."""
    frame = pl.DataFrame(
        {"_source": decisions.source, ROW: decisions.row, "n_tokens": decisions.n_tokens,
         "n_tokens_exact": decisions.exact, "_key": decisions.key},
        schema={"_source": pl.Int64, ROW: pl.Int64, "n_tokens": pl.Int64, "n_tokens_exact": pl.Boolean,
                "_key": pl.UInt64},
    )
    return frame.sort(["_key", "_source", ROW]).with_row_index("pool_rank").with_columns(
        pl.col("pool_rank").cast(pl.Int64)
    )


def _pool_rows(batch: pl.DataFrame, kept: pl.DataFrame) -> pl.DataFrame:
    batch = _with_all_columns(batch)
    joined = batch.join(kept, on=ROW, how="inner", maintain_order="left")
    return joined.select([pl.col(c).cast(dt) for c, dt in POOL_SCHEMA.items()])


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
    batch_rows: int = 2048,
    token_batch_size: int = 32,
) -> PoolResult:
    """Build the pool from OCR2-shaped traces (parquet files/folders or polars frames); see the module docstring.

    `out_path` / `quarantine_path`: write parquet there (pool streamed row group by row group); otherwise the pool
    is kept in memory, which is right for the demo but not for 1.4M traces.
    """
    _validate_parameters(max_tokens, chars_per_token_low, chars_per_token_high, batch_rows, token_batch_size)
    started = time.monotonic()
    sources: list[TraceSource] = resolve_sources(traces)
    index = ContaminationIndex(contamination_problems, ngram=ngram)
    decider = _PoolDecider(
        index=index, count_tokens=count_tokens, max_tokens=max_tokens, seed=seed,
        chars_per_token_low=chars_per_token_low, chars_per_token_high=chars_per_token_high,
        prompt_overhead_tokens=prompt_overhead_tokens, token_batch_size=token_batch_size,
    )
    for source_idx, source in enumerate(sources):
        for batch in source.batches(batch_rows):
            decider.decide(source_idx, source.name, batch)
    decided = time.monotonic()

    ranked = _ranked(decider.decisions)
    pool_frames: list[pl.DataFrame] = []
    writer = None
    pool_path = Path(out_path) if out_path is not None else None
    if pool_path is not None:
        pool_path.parent.mkdir(parents=True, exist_ok=True)
        writer = pq.ParquetWriter(pool_path, arrow_schema(POOL_SCHEMA), compression="zstd")
    try:
        for source_idx, source in enumerate(sources):
            kept = ranked.filter(pl.col("_source") == source_idx).drop("_source", "_key")
            if kept.height == 0:
                continue
            for batch in source.batches(batch_rows, columns=list(TRACE_SCHEMA)):
                rows = _pool_rows(batch, kept)
                if rows.height == 0:
                    continue
                if writer is not None:
                    writer.write_table(rows.to_arrow().cast(arrow_schema(POOL_SCHEMA)))
                else:
                    pool_frames.append(rows)
    finally:
        if writer is not None:
            writer.close()
    written = time.monotonic()

    quarantine = (pl.concat(decider.decisions.quarantine) if decider.decisions.quarantine
                  else pl.DataFrame(schema=QUARANTINE_SCHEMA))
    q_path = Path(quarantine_path) if quarantine_path is not None else None
    if q_path is not None:
        q_path.parent.mkdir(parents=True, exist_ok=True)
        quarantine.write_parquet(q_path, compression="zstd")
    if pool_path is not None:
        pool = pl.scan_parquet(pool_path)
    else:
        pool = (pl.concat(pool_frames) if pool_frames else pl.DataFrame(schema=POOL_SCHEMA)).lazy()

    n_pool = ranked.height
    malformed = sum(decider.reasons[r] for r in MALFORMED_REASONS)
    stats = {
        "n_input": decider.n_input,
        "n_pool": n_pool,
        "n_quarantined": quarantine.height,
        "n_malformed": malformed,
        "n_filtered": quarantine.height - malformed,
        "reasons": {r: decider.reasons.get(r, 0) for r in MALFORMED_REASONS + FILTER_REASONS},
        "n_tokenized_exactly": decider.n_tokenized,
        "bound_violations": decider.bound_violations,
        "token_histogram": _histogram(ranked["n_tokens"].to_list()),
        "n_tokens_total": int(ranked["n_tokens"].sum() or 0),
        "difficulty_mix": dict(decider.difficulty.most_common()),
        "dataset_mix": dict(decider.dataset.most_common()),
        "contamination": {
            "n_benchmark_problems": index.n_problems,
            "ngram": ngram,
            "n_rows": decider.reasons.get("contaminated", 0),
            "rows_by_benchmark_question": dict(decider.contaminated_by_problem.most_common()),
            "examples": decider.contamination_examples,
        },
        "parameters": {
            "max_tokens": max_tokens, "seed": seed, "chars_per_token_low": chars_per_token_low,
            "chars_per_token_high": chars_per_token_high, "prompt_overhead_tokens": prompt_overhead_tokens,
        },
        "n_sources": len(sources),
        "seconds": {"decide": round(decided - started, 3), "write": round(written - decided, 3)},
    }
    assert stats["n_input"] == n_pool + quarantine.height, "every input row is either pooled or quarantined"
    return PoolResult(pool=pool, quarantine=quarantine, stats=stats, pool_path=pool_path, quarantine_path=q_path)
