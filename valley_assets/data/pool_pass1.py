"""Pass 1 of the pool build: the per-row rules (`pool_rules`) applied to every source, in bounded batches, in this
process or in spawned worker processes (whole sources each, results consumed in source order).

Each source yields its `SourceDecisions`: the rejected rows with their reasons, and per surviving row only what
deduplication and ranking need (`CANDIDATE_ARRAYS`), so the results are small to send back from a worker.
`valley_assets.data.pool` documents the rules and why pass 1 runs them per shard; workers import this module, never
Dagster nor the study config.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa

from valley_assets.data.decontam import ContaminationIndex
from valley_assets.data.pool_rules import (
    Rejected,
    answer_has_code,
    closed_think_and_answer,
    malformed_reasons,
    near_duplicate_keys,
    rank_key,
    token_bounds,
    with_all_columns,
)
from valley_assets.data.reading import ROW, TraceSource

CountTokens = Callable[[list[str]], list[int]]

# Below this many input rows pass 1 stays in this process: a spawned worker costs a second or two of imports.
PARALLEL_MIN_ROWS = 50_000


@dataclass(frozen=True)
class RuleSettings:
    """The parameters of pass 1's per-row rules (picklable: worker processes get the same ones)."""

    max_tokens: int
    seed: int
    chars_per_token_low: float
    chars_per_token_high: float | None
    overhead: int
    token_batch_size: int
    batch_rows: int


# Per candidate (a row that passed every per-row rule), what deduplication and ranking need, as fixed-width numpy
# arrays: 49 bytes a row, no Python object per row (1.4M rows: ~65 MB in the main process). Ids and the other text
# columns are not kept: the few rows deduplication has to compare by id are read back from the source.
CANDIDATE_ARRAYS: dict[str, type] = {
    "rows": np.int64,        # row number in the source
    "n_tokens": np.int64,
    "exact": np.bool_,       # n_tokens counted by the tokenizer, not the byte bound
    "rank_key": np.uint64,   # rank_key(seed, id)
    "id_key": np.uint64,     # polars hash of id / r1_generation / its near-duplicate normalisation
    "exact_key": np.uint64,
    "near_key": np.uint64,
}


def _empty_candidates() -> dict[str, np.ndarray]:
    return {name: np.empty(0, dtype) for name, dtype in CANDIDATE_ARRAYS.items()}


@dataclass
class SourceDecisions:
    """What pass 1's per-row rules decided for one source: small per row, cheap to send between processes."""

    candidates: dict[str, np.ndarray] = field(default_factory=_empty_candidates)  # CANDIDATE_ARRAYS, row order
    rejected: list[Rejected] = field(default_factory=list)  # row order
    contaminated_ids: list[tuple[str, ...]] = field(default_factory=list)  # per contaminated row, row order
    contamination_examples: list[dict] = field(default_factory=list)  # the first 100, row order
    n_input: int = 0
    n_tokenized: int = 0
    bound_violations: int = 0


class RowRules:
    """Pass 1's per-row rules (everything but deduplication) for one source at a time, in bounded batches.

    The rules of a row depend only on that row (the contamination cache is keyed by the question text's hash and
    holds a pure function of it), so sources can be decided in any process and in any order.
    """

    def __init__(self, *, index: ContaminationIndex, count_tokens: CountTokens, settings: RuleSettings):
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

    def decide_source(self, source: TraceSource) -> SourceDecisions:
        out = SourceDecisions()
        parts = [self._decide_batch(source.name, batch, out) for batch in source.batches(self.settings.batch_rows)]
        if parts:
            out.candidates = {name: np.concatenate([p[name] for p in parts]) for name in CANDIDATE_ARRAYS}
        return out

    def _decide_batch(self, source_name: str, batch: pl.DataFrame, out: SourceDecisions) -> dict[str, np.ndarray]:
        s = self.settings
        batch = with_all_columns(batch)
        out.n_input += batch.height
        verdict = malformed_reasons(batch)
        rejected: list[Rejected] = [
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


# Pass 1 in worker processes: each builds its own RowRules once, then decides whole sources.
_worker_rules: RowRules | None = None


def _init_worker(index: ContaminationIndex, count_tokens: CountTokens, settings: RuleSettings) -> None:
    global _worker_rules
    pa.set_cpu_count(1)  # see _single_threaded_children
    _worker_rules = RowRules(index=index, count_tokens=count_tokens, settings=settings)


def _decide_in_worker(source: TraceSource) -> SourceDecisions:
    assert _worker_rules is not None, "worker process was not initialised"
    decided = _worker_rules.decide_source(source)
    release_freed_memory()  # hand freed batch buffers back between shards
    return decided


def _picklable(value: object) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # lambdas, closures, objects holding locks: pickle raises several exception types
        return False
    return True


def pass1_workers(sources: Sequence[TraceSource], count_tokens: CountTokens, workers: int | None) -> int:
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


def decide_sources(sources: Sequence[TraceSource], *, index: ContaminationIndex, count_tokens: CountTokens,
                    settings: RuleSettings, workers: int) -> Iterator[SourceDecisions]:
    """Each source's decisions, in source order (workers decide ahead; results come back in order)."""
    if workers == 1:
        rules = RowRules(index=index, count_tokens=count_tokens, settings=settings)
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


def release_freed_memory() -> None:
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

