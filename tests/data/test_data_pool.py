"""build_pool on OCR2-shaped shards with realistic quirks."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
from ocr2_fixtures import generation, question_text, row, write_shard

from valley_assets.data.checks import check_schema
from valley_assets.data.pool import build_pool
from valley_assets.data.pool_rules import (
    answer_has_code,
    closed_think_and_answer,
    near_duplicate_keys,
    normalised_bytes,
    rank_key,
    token_bounds,
)
from valley_assets.data.schema import POOL_SCHEMA, QUARANTINE_SCHEMA
from valley_assets.science.text import extract_code, has_closed_think


def count_chars_div3(texts: list[str]) -> list[int]:
    return [math.ceil(len(t) / 3) for t in texts]


def pool_kwargs(**overrides):
    kwargs = dict(contamination_problems=[], count_tokens=count_chars_div3, max_tokens=100_000, seed=7,
                  chars_per_token_low=2.0)
    kwargs.update(overrides)
    return kwargs


def quirky_rows() -> list[dict]:
    """60 rows over 20 questions, with one row for each kind of defect."""
    rows = [row(k, v, question=question_text(k)) for k in range(20) for v in range(3)]
    rows[0]["question"] = "-"                                        # unrecovered placeholder
    rows[1]["pass_rate"] = float("nan")                              # invalid pass_rate
    rows[2]["r1_generation"] = generation(0, 2, think=False)         # no </think>
    rows[3]["r1_generation"] = generation(1, 0, code=False)          # no code block
    rows[5]["r1_generation"] = rows[4]["r1_generation"]              # exact duplicate of row 4
    rows[7]["r1_generation"] = (
        rows[6]["r1_generation"].replace("Let me think", "LET  ME,  think").replace(". ", ".\t "))  # near dup of row 6
    rows[8]["r1_generation"] = b"<think>x</think>\n```python\nprint(1)\n```\xff"  # not UTF-8
    rows[9]["question"] = "   "                                      # empty question
    rows[10]["judgement"] = None                                     # missing field
    rows[11]["pass_rate"] = 1.5                                      # out of range
    rows[12]["difficulty"] = "UNKNOWN_DIFFICULTY"                    # allowed: unknown difficulty is data
    rows[13]["id"] = rows[12]["id"]                                  # duplicate id
    rows[14]["judgement"] = "maybe"                                  # invalid judgement
    rows[15]["pass_rate"] = -1.0                                     # allowed: unknown pass rate
    return rows


@pytest.fixture()
def quirky_shards(tmp_path: Path) -> Path:
    rows = quirky_rows()
    folder = tmp_path / "ocr2"
    write_shard(folder / "part-000.parquet", rows[:25], binary_columns=("r1_generation",))
    write_shard(folder / "part-001.parquet", rows[25:])
    return folder


EXPECTED_REASONS = {
    "part-000.parquet:0": "unrecovered_question",
    "part-000.parquet:1": "invalid_pass_rate",
    "part-000.parquet:2": "no_closed_think",
    "part-000.parquet:3": "no_code",
    "part-000.parquet:5": "exact_duplicate",
    "part-000.parquet:7": "near_duplicate",
    "part-000.parquet:8": "non_utf8",
    "part-000.parquet:9": "empty_question",
    "part-000.parquet:10": "missing_field",
    "part-000.parquet:11": "invalid_pass_rate",
    "part-000.parquet:13": "duplicate_id",
    "part-000.parquet:14": "invalid_judgement",
}


def test_every_defect_is_quarantined_with_its_reason(quirky_shards, tmp_path):
    result = build_pool(quirky_shards, **pool_kwargs(), out_path=tmp_path / "pool" / "pool.parquet",
                        quarantine_path=tmp_path / "pool" / "quarantine.parquet")
    reasons = dict(zip(result.quarantine["row_id"], result.quarantine["reason"], strict=True))
    assert reasons == EXPECTED_REASONS
    details = dict(zip(result.quarantine["row_id"], result.quarantine["detail"], strict=True))
    assert details["part-000.parquet:8"] == "r1_generation"
    assert details["part-000.parquet:10"] == "judgement"
    assert details["part-000.parquet:11"] == "pass_rate=1.5"
    assert "id-1-1" in details["part-000.parquet:5"]  # names the copy that was kept
    kinds = dict(zip(result.quarantine["row_id"], result.quarantine["kind"], strict=True))
    assert kinds["part-000.parquet:8"] == "malformed" and kinds["part-000.parquet:5"] == "filtered"

    stats = result.stats
    assert stats["n_input"] == 60
    assert stats["n_pool"] == 60 - len(EXPECTED_REASONS)
    assert stats["n_malformed"] == 7 and stats["n_filtered"] == 5
    assert stats["reasons"]["invalid_pass_rate"] == 2
    assert sum(stats["difficulty_mix"].values()) == stats["n_pool"]
    assert stats["dataset_mix"] == {"taco": stats["n_pool"]}
    assert sum(stats["token_histogram"].values()) == stats["n_pool"]

    pool = pl.read_parquet(result.pool_path)
    assert dict(pool.schema) == POOL_SCHEMA
    assert check_schema(result.pool_path)[0]
    assert sorted(pool["pool_rank"]) == list(range(pool.height))
    assert pool.filter(pl.col("id") == "id-5-0")["pass_rate"].item() == -1.0
    assert pl.read_parquet(result.quarantine_path).schema == pl.Schema(QUARANTINE_SCHEMA)


def test_unknown_fields_and_absent_columns_are_reported(tmp_path):
    rows = [row(k, 0, question=question_text(k)) for k in range(3)]
    frame = pl.DataFrame(rows).drop("solution")
    result = build_pool(frame, **pool_kwargs())
    assert result.stats["n_pool"] == 0
    assert set(result.quarantine["detail"]) == {"solution"}
    assert set(result.quarantine["row_id"]) == {"frame0:0", "frame0:1", "frame0:2"}


def test_vectorised_text_rules_agree_with_science_text():
    texts = [
        generation(1, 0), generation(2, 0, think=False), generation(3, 0, code=False),
        "no tags at all ```python\nx=1\n```", "</think> before <think> ```python\nx=1\n```",
        "<think>a</think>b<think>c</think>\n```python\nprint(1)\n```",
        "<think>a</think>\n```python\nprint(1)\n```\n<think>again</think>\nno code",
        "<think>a</think>\n```cpp\nint main(){}\n```", "<think>a</think>\n```\n   \n```",
        "<think>a</think>\n```python\nreal()\n```\n```python\n\n```",
        "<think>a</think>\n```py\nok()\n```", "<think></think>```python\nsame line\n```",
        "<think>é😀</think>\n```python\nprint('é')\n```",
    ]
    think, answers = closed_think_and_answer(pl.Series(texts))
    for text, has_think, ans in zip(texts, think, answers, strict=True):
        assert has_think == has_closed_think(text), text
        if has_think:
            assert ans == text[text.rfind("</think>") + len("</think>"):], text
            assert answer_has_code(ans) == (extract_code(text) is not None), text
        else:
            assert ans is None


def test_near_duplicate_normalisation_is_lowercase_then_delete_non_ascii_alnum():
    # The numpy byte normaliser must equal the definition: polars to_lowercase, then delete [^0-9a-z]. The Kelvin
    # sign and capital I with dot are the two non-ASCII characters whose lowercase is ASCII; the rest of the
    # alphabet covers multi-byte UTF-8 (accents, CJK, emoji, combining marks) and context-dependent sigma.
    import random
    rng = random.Random(0)
    alphabet = "aZ09 ,.\t\n-_K\u212a\u0130\u00e9\u6f22\U0001f642\u0307\u00df\u03a3\u03c2"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(3000)]
    texts += ["", "ABC def", None]
    series = pl.Series(texts, dtype=pl.String)
    for part in (series, series.slice(11, 500)):  # a slice has a non-zero arrow offset
        expected = part.str.to_lowercase().str.replace_all(r"[^0-9a-z]+", "")
        assert pl.Series(normalised_bytes(part)).cast(pl.String).equals(expected)
    keys = near_duplicate_keys(pl.Series(["Let me THINK.  x", "let me think x", "let me think y", "LETMETHINKX"]))
    assert keys[0] == keys[1] == keys[3] != keys[2]


def test_order_is_seeded_stable_under_growth_and_independent_of_batching(tmp_path):
    rows = [row(k, v, question=question_text(k)) for k in range(30) for v in range(2)]
    small = build_pool(pl.DataFrame(rows[:40]), **pool_kwargs(), batch_rows=7).pool.collect()
    small_again = build_pool(pl.DataFrame(rows[:40]), **pool_kwargs(), batch_rows=1000).pool.collect()
    assert small.sort("pool_rank")["id"].to_list() == small_again.sort("pool_rank")["id"].to_list()
    grown = build_pool(pl.DataFrame(rows), **pool_kwargs()).pool.collect()
    order_small = small.sort("pool_rank")["id"].to_list()
    order_grown = [i for i in grown.sort("pool_rank")["id"] if i in set(order_small)]
    assert order_small == order_grown
    other_seed = build_pool(pl.DataFrame(rows[:40]), **pool_kwargs(seed=8)).pool.collect()
    assert other_seed.sort("pool_rank")["id"].to_list() != order_small
    expected = sorted(small["id"], key=lambda i: rank_key(7, i))
    assert order_small == expected


def test_only_rows_near_the_limit_are_tokenized():
    short = row(1, 0, question="q", r1_generation=generation(1, 0))
    near = row(2, 0, question="q", r1_generation=generation(2, 0, pad=40))
    far = row(3, 0, question="q", r1_generation=generation(3, 0, pad=400))
    n_short = len(short["question"]) + len(short["r1_generation"]) + 2
    n_near = len(near["question"]) + len(near["r1_generation"]) + 2
    max_tokens = n_short  # short fits by the 1-byte-per-token bound; the others do not
    calls = []

    def counting(texts):
        calls.append(texts)
        return [len(t) // 20 for t in texts]

    result = build_pool(pl.DataFrame([short, near, far]),
                        **pool_kwargs(count_tokens=counting, max_tokens=max_tokens, chars_per_token_low=1.0,
                                      chars_per_token_high=n_near / max_tokens * 1.01))
    tokenized = [t for batch in calls for t in batch]
    assert tokenized == ["q\n\n" + near["r1_generation"]]
    pool = result.pool.collect().sort("id")
    assert pool["id"].to_list() == ["id-1-0", "id-2-0"]
    assert pool["n_tokens_exact"].to_list() == [False, True]
    assert pool["n_tokens"].to_list() == [n_short, len(tokenized[0]) // 20]
    assert result.quarantine["reason"].to_list() == ["too_long"]
    assert "estimated" in result.quarantine["detail"].item()
    assert result.stats["n_tokenized_exactly"] == 1 and result.stats["bound_violations"] == 0


def test_exact_count_over_the_limit_is_too_long_and_bound_violations_are_counted():
    rows = [row(1, 0, question="q")]
    n_bytes = len("q") + len(rows[0]["r1_generation"]) + 2
    result = build_pool(pl.DataFrame(rows), **pool_kwargs(count_tokens=lambda ts: [10 * len(t) for t in ts],
                                                          max_tokens=n_bytes, chars_per_token_low=0.5))
    assert result.quarantine["reason"].to_list() == ["too_long"]
    assert result.stats["bound_violations"] == 1


def test_token_bounds_use_bytes_for_the_upper_bound():
    assert token_bounds(300, 100, chars_per_token_low=3.0, chars_per_token_high=None, overhead=5) == (5, 105)
    assert token_bounds(10, 10, chars_per_token_low=3.0, chars_per_token_high=4.0, overhead=0) == (2, 4)


def test_bad_count_tokens_and_parameters_fail_clearly():
    frame = pl.DataFrame([row(1, 0, question="q")])
    with pytest.raises(ValueError, match="one non-negative int per text"):
        build_pool(frame, **pool_kwargs(count_tokens=lambda ts: [], max_tokens=1, chars_per_token_low=1.0))
    with pytest.raises(ValueError, match="chars_per_token_high"):
        build_pool(frame, **pool_kwargs(chars_per_token_high=1.0))
    with pytest.raises(FileNotFoundError):
        build_pool("/nonexistent/ocr2", **pool_kwargs())


def test_contaminated_questions_are_removed_with_benchmark_ids():
    leaked = "You are given an array nums of n integers. Return the number of pairs i < j such that nums[i] + " \
             "nums[j] is divisible by k, and print it."
    problems = [{"question_id": "lcb_1", "question_content": leaked},
                {"question_id": "lcb_2", "question_content": question_text(99)}]
    rows = [
        row(1, 0, question=leaked),                                             # exact copy
        row(2, 0, question="Story first. " + leaked.upper() + " Then more."),   # 13-gram overlap
        row(3, 0, question=question_text(3)),                                   # clean
    ]
    result = build_pool(pl.DataFrame(rows), **pool_kwargs(contamination_problems=problems))
    assert result.pool.collect()["id"].to_list() == ["id-3-0"]
    q = result.quarantine
    assert q["reason"].to_list() == ["contaminated", "contaminated"]
    assert q["detail"].to_list() == ["exact: lcb_1", "13-gram: lcb_1"]
    assert result.stats["contamination"]["rows_by_benchmark_question"] == {"lcb_1": 2}
    assert [e["id"] for e in result.stats["contamination"]["examples"]] == ["id-1-0", "id-2-0"]


def test_decontamination_against_real_lcb_problems():
    path = Path(__file__).parents[3] / "shared" / "data" / "lcb_2023-05_to_2024-07_public_tests.json"
    if not path.exists():
        pytest.skip(f"shared LCB data not present at {path}")
    from valley_assets.data.lcb import load_shared_lcb

    problems = load_shared_lcb(path)
    reworded = problems[10]["question_content"].replace("\n", " ")[:400] + " Solve it in Python."
    rows = [row(1, 0, question=problems[3]["question_content"]), row(2, 0, question=reworded),
            row(3, 0, question=question_text(3))]
    result = build_pool(pl.DataFrame(rows), **pool_kwargs(contamination_problems=problems))
    assert result.pool.collect()["id"].to_list() == ["id-3-0"]
    assert result.quarantine["detail"].to_list() == [f"exact: {problems[3]['question_id']}",
                                                     f"13-gram: {problems[10]['question_id']}"]


def test_lazyframe_and_multiple_inputs_keep_stream_order_for_duplicates():
    first = pl.DataFrame([row(1, 0, question="q1")])
    second = pl.DataFrame([row(1, 1, question="q1", r1_generation=first["r1_generation"].item())])
    result = build_pool([first.lazy(), second], **pool_kwargs())
    assert result.pool.collect()["id"].to_list() == ["id-1-0"]
    assert result.quarantine["row_id"].to_list() == ["frame1:0"]


def test_pool_row_groups_gather_batches_up_to_the_byte_target(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from valley_assets.data import pool as pool_module

    rows = [row(k, v, question=question_text(k)) for k in range(20) for v in range(2)]
    files = {}
    for target in (1, 10**9):  # every batch its own row group; everything in one
        monkeypatch.setattr(pool_module, "POOL_ROW_GROUP_BYTES", target)
        out = tmp_path / str(target)
        result = build_pool(pl.DataFrame(rows), **pool_kwargs(), batch_rows=8, out_path=out / "pool.parquet",
                            quarantine_path=out / "quarantine.parquet")
        files[target] = result.pool_path
        assert sorted(p.name for p in out.iterdir()) == ["pool.parquet", "quarantine.parquet"]  # no scratch left
    assert pq.ParquetFile(files[1]).num_row_groups == 5 and pq.ParquetFile(files[10**9]).num_row_groups == 1
    assert pl.read_parquet(files[1]).equals(pl.read_parquet(files[10**9]))


def test_a_build_failing_while_writing_leaves_no_partial_file(tmp_path, monkeypatch):
    from valley_assets.data import pool as pool_module

    def fail(batch, kept):
        raise OSError("disk full")

    rows = [row(k, 0, question=question_text(k)) for k in range(6)]
    monkeypatch.setattr(pool_module, "_pool_rows", fail)  # pass 2: quarantine already written, pool being written
    with pytest.raises(OSError, match="disk full"):
        build_pool(pl.DataFrame(rows), **pool_kwargs(), out_path=tmp_path / "out" / "pool.parquet",
                   quarantine_path=tmp_path / "out" / "quarantine.parquet")
    assert list((tmp_path / "out").iterdir()) == []  # no pool, no quarantine, no .partial, no scratch
