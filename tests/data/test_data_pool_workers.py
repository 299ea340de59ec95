"""build_pool's multi-process pass 1 agrees with the in-process one, with a real (locally built) HF tokenizer.

The production pool counts tokens with `MaxTokenCounter` (picklable: it carries tokenizer references and loads them
in each worker), so `workers=2` is the path production takes; these tests pin that it gives the same pool rows,
ranks, quarantine and stats as `workers=1`, including for duplicates that span shards (deduplication runs after
the per-shard workers) and rows that only the tokenizer can decide.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import polars as pl
import pytest
from ocr2_fixtures import generation, question_text, row, write_shard

from valley_assets.data.pool import build_pool
from valley_assets.data.tokens import MaxTokenCounter

OVERHEAD = 16
LONG_FROM = 22
LEAKED = ("You are given an array nums of n integers. Return the number of pairs i < j such that nums[i] + nums[j] "
          "is divisible by k, and print it.")
PROBLEMS = [{"question_id": "lcb_leak", "question_content": LEAKED}]


def shard_rows() -> list[list[dict]]:
    """4 shards of 30 rows over 12 questions; defects inside shards and duplicates across them. Rows 0-21 of a
    shard are short (the byte bound keeps them), rows 22-29 long enough that only the tokenizer can decide."""
    shards = [[row(10 * s + k % 12, s * 100 + k, question=question_text(k % 12),
                   r1_generation=generation(10 * s + k, s * 100 + k, pad=0 if k < LONG_FROM else 30 + 5 * (k - 22)))
               for k in range(30)] for s in range(4)]
    shards[0][3]["question"] = "-"                                                   # unrecovered
    shards[0][4]["pass_rate"] = float("nan")                                         # invalid pass_rate
    shards[0][5]["r1_generation"] = b"<think>x</think>\n```python\nprint(1)\n```\xfe"  # non-UTF-8 (binary column)
    shards[1][2]["r1_generation"] = generation(1, 2, think=False)                   # no </think>
    shards[1][6]["question"] = LEAKED                                                # contaminated
    shards[2][1]["r1_generation"] = shards[0][10]["r1_generation"]                   # exact dup across shards
    shards[2][8]["id"] = shards[1][9]["id"]                                          # duplicate id across shards
    shards[3][0]["r1_generation"] = shards[1][12]["r1_generation"].replace("Let me think", "LET  ME,  think")  # near
    shards[3][7]["question"] = "Story. " + LEAKED.upper() + " Then more."            # 13-gram contamination
    shards[3][20]["r1_generation"] = shards[3][19]["r1_generation"]                  # exact dup inside a shard
    return shards


@pytest.fixture(scope="module")
def ocr2_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ocr2") / "shards"
    for s, rows in enumerate(shard_rows()):
        write_shard(folder / f"part-{s:05d}.parquet", rows, binary_columns=("r1_generation",) if s == 0 else ())
    return folder


@pytest.fixture(scope="module")
def tokenizer_dirs(tmp_path_factory) -> list[str]:
    """Two byte-level BPE tokenizers saved like a hub model folder (different vocabularies, so counts differ)."""
    from valley_assets.demo.tiny_model import train_tokenizer

    corpus = [r["r1_generation"] for rows in shard_rows() for r in rows if isinstance(r["r1_generation"], str)]
    dirs = []
    for vocab in (300, 600):
        path = tmp_path_factory.mktemp(f"tok{vocab}")
        train_tokenizer(corpus, vocab_size=vocab).save_pretrained(path)
        dirs.append(str(path))
    return dirs


def test_counter_pickles_without_its_tokenizers_and_takes_the_max(tokenizer_dirs):
    from transformers import AutoTokenizer

    counter = MaxTokenCounter(tokenizer_dirs)
    texts = ["def f(x):\n    return x * 2\n", "Let me think about the sum modulo a prime.", ""]
    direct = [[len(AutoTokenizer.from_pretrained(d)(t, add_special_tokens=False)["input_ids"]) for t in texts]
              for d in tokenizer_dirs]
    assert direct[0] != direct[1]  # the two vocabularies tokenize differently: the max is a real choice
    assert counter(texts) == [max(a, b) for a, b in zip(*direct, strict=True)]
    clone = pickle.loads(pickle.dumps(counter))
    assert clone._tokenizers is None and clone.tokenizer_refs == counter.tokenizer_refs
    assert clone(texts) == counter(texts)
    assert counter([]) == []
    with pytest.raises(ValueError, match="at least one tokenizer"):
        MaxTokenCounter([])


def _limit_splitting_the_tokenized_rows(counter: MaxTokenCounter) -> int:
    """A max_tokens with rows on both sides of it among those the byte bounds cannot decide."""
    texts = [f"{r['question']}\n\n{r['r1_generation']}" for rows in shard_rows() for r in rows[LONG_FROM:]]
    counts = sorted(n + OVERHEAD for n in counter(texts))
    return counts[len(counts) // 2]


def _build(folder: Path, out: Path, counter: MaxTokenCounter, max_tokens: int, workers: int):
    return build_pool(folder, contamination_problems=PROBLEMS, count_tokens=counter, max_tokens=max_tokens,
                      seed=3, chars_per_token_low=1.0, chars_per_token_high=50.0, prompt_overhead_tokens=OVERHEAD,
                      out_path=out / "pool.parquet", quarantine_path=out / "quarantine.parquet", workers=workers,
                      batch_rows=8, token_batch_size=4)


@pytest.fixture(scope="module")
def one_and_two(ocr2_folder, tokenizer_dirs, tmp_path_factory):
    """The same build in this process and in 2 spawned workers (the production path), with its max_tokens."""
    counter = MaxTokenCounter(tokenizer_dirs)
    max_tokens = _limit_splitting_the_tokenized_rows(counter)
    out = tmp_path_factory.mktemp("pools")
    return (_build(ocr2_folder, out / "one", counter, max_tokens, workers=1),
            _build(ocr2_folder, out / "two", counter, max_tokens, workers=2), max_tokens)


def test_two_workers_give_the_same_pool_as_one(one_and_two, tokenizer_dirs):
    one, two, max_tokens = one_and_two
    counter = MaxTokenCounter(tokenizer_dirs)
    assert one.stats["workers"] == 1 and two.stats["workers"] == 2

    pool_one, pool_two = pl.read_parquet(one.pool_path), pl.read_parquet(two.pool_path)
    assert pool_one.equals(pool_two)  # every column, including pool_rank and n_tokens, in file order
    assert pl.read_parquet(one.quarantine_path).equals(pl.read_parquet(two.quarantine_path))
    drop_timing = lambda stats: {k: v for k, v in stats.items() if k not in ("seconds", "workers")}  # noqa: E731
    assert drop_timing(one.stats) == drop_timing(two.stats)

    # The scenario exercised what it claims: cross-shard duplicates, contamination, tokenizer decisions.
    reasons = dict(zip(one.quarantine["row_id"], one.quarantine["reason"], strict=True))
    assert reasons["part-00000.parquet:3"] == "unrecovered_question"
    assert reasons["part-00000.parquet:4"] == "invalid_pass_rate"
    assert reasons["part-00000.parquet:5"] == "non_utf8"
    assert reasons["part-00001.parquet:2"] == "no_closed_think"
    assert reasons["part-00001.parquet:6"] == "contaminated"
    assert reasons["part-00002.parquet:1"] == "exact_duplicate"
    assert reasons["part-00002.parquet:8"] == "duplicate_id"
    assert reasons["part-00003.parquet:0"] == "near_duplicate"
    assert reasons["part-00003.parquet:7"] == "contaminated"
    assert reasons["part-00003.parquet:20"] == "exact_duplicate"
    details = dict(zip(one.quarantine["row_id"], one.quarantine["detail"], strict=True))
    assert details["part-00002.parquet:8"] == "id already used by row part-00001.parquet:9"
    assert details["part-00002.parquet:1"] == f"same r1_generation as id {shard_rows()[0][10]['id']}"
    exact_too_long = one.quarantine.filter((pl.col("reason") == "too_long") & ~pl.col("detail").str.contains("est"))
    assert exact_too_long.height > 0
    exact_kept = pool_one.filter(pl.col("n_tokens_exact"))
    assert pool_one.filter(~pl.col("n_tokens_exact")).height > 0  # short rows: decided by the byte bound
    assert exact_kept.height > 0 and exact_kept["n_tokens"].max() <= max_tokens
    assert one.stats["n_tokenized_exactly"] >= exact_kept.height + exact_too_long.height

    # Exact counts are the tokenizer's (max over both) plus the prompt overhead.
    texts = exact_kept.select(pl.format("{}\n\n{}", "question", "r1_generation")).to_series().to_list()
    assert exact_kept["n_tokens"].to_list() == [n + OVERHEAD for n in counter(texts)]
    assert sorted(pool_one["pool_rank"]) == list(range(pool_one.height))
    assert one.stats["n_input"] == 120 == pool_one.height + one.quarantine.height


class SigkilledCounter:
    """Counts like the real counter, but the worker process that calls it is SIGKILLed (what the OOM killer does)."""

    def __call__(self, texts: list[str]) -> list[int]:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
        return [0] * len(texts)


def test_a_killed_worker_fails_the_build_instead_of_hanging(ocr2_folder, one_and_two, tmp_path):
    _, _, max_tokens = one_and_two
    with pytest.raises(RuntimeError, match="pool worker process died while deciding"):
        _build(ocr2_folder, tmp_path / "killed", SigkilledCounter(), max_tokens, workers=2)
    assert not (tmp_path / "killed" / "pool.parquet").exists()  # nothing half-written is left to be taken as done
    assert list((tmp_path / "killed").iterdir()) == []  # no .partial file, no scratch folder


def test_many_small_buckets_give_the_same_pool(ocr2_folder, tokenizer_dirs, one_and_two, tmp_path, monkeypatch):
    # Deduplication and ranking run over disk buckets of BUCKET_ROWS rows (spill.py); at 1.4M rows that is 32
    # buckets. Buckets of 4 rows (64 here) must give exactly the one-bucket result, and leave nothing behind.
    from valley_assets.data import spill

    one, _, max_tokens = one_and_two
    monkeypatch.setattr(spill, "BUCKET_ROWS", 4)
    result = _build(ocr2_folder, tmp_path / "buckets", MaxTokenCounter(tokenizer_dirs), max_tokens, workers=1)
    assert pl.read_parquet(result.pool_path).equals(pl.read_parquet(one.pool_path))
    assert pl.read_parquet(result.quarantine_path).equals(pl.read_parquet(one.quarantine_path))
    assert sorted(p.name for p in (tmp_path / "buckets").iterdir()) == ["pool.parquet", "quarantine.parquet"]


def test_unpicklable_counter_falls_back_to_one_process(ocr2_folder, tokenizer_dirs, one_and_two, tmp_path):
    counter = MaxTokenCounter(tokenizer_dirs)

    def closure(texts: list[str]) -> list[int]:  # what distill_pool used to pass: does not pickle
        return counter(texts)

    one, two, max_tokens = one_and_two
    result = _build(ocr2_folder, tmp_path / "closure", closure, max_tokens, workers=2)
    assert result.stats["workers"] == 1
    assert pl.read_parquet(result.pool_path).equals(pl.read_parquet(two.pool_path))
