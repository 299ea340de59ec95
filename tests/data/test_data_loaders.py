"""OCR2 / TACO / LCB loaders on small local files with the real column names."""

from __future__ import annotations

import base64
import json
import pickle
import zlib
from pathlib import Path

import datasets
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ocr2_fixtures import row, write_shard

from valley_assets.data.lcb import decode_private_tests, load_lcb, load_shared_lcb, release_files
from valley_assets.data.ocr2 import (
    OCR2_LAYOUT,
    SOURCE_DATASETS,
    codeforces_question,
    hub_root,
    load_all_source_questions,
    load_ocr2,
    load_source,
    recover_questions,
    split_data_files,
    write_recovered_traces,
)
from valley_assets.data.pool import build_pool
from valley_assets.data.taco import attach_taco_difficulty, load_taco

SHARED_LCB = Path(__file__).parents[3] / "shared" / "data" / "lcb_2023-05_to_2024-07_public_tests.json"

CF_ROW = {"description": "Find the sum.", "input_format": "Two integers.", "output_format": "One integer.",
          "examples": [{"input": "1 2", "output": "3"}], "note": "Easy."}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


# What a script-based hub repo also ships; datasets >= 4 refuses a folder that has one, so loading must not need it.
SCRIPT = "raise RuntimeError('the loading script must not run')\n"


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, str]:
    """Local copies of the four source repos in their hub layouts and column sets (ocr2.SOURCE_DATASETS)."""
    root = tmp_path_factory.mktemp("sources")
    taco_dir, apps_dir = root / "BAAI" / "TACO", root / "codeparrot" / "apps"  # named like the hub repos
    (taco_dir / "ALL").mkdir(parents=True)
    (taco_dir / "TACO.py").write_text(SCRIPT)
    taco = [{"question": f"TACO question {i}", "solutions": "[]", "starter_code": "", "input_output": "{}",
             "difficulty": d, "raw_tags": "[]", "name": None, "source": "codechef", "tags": "[]",
             "skill_types": "[]", "url": f"https://www.codechef.com/problems/P{i}", "Expected Auxiliary Space": None,
             "time_limit": "1 seconds", "date": "2021-01-01", "picture_num": "0", "memory_limit": "256 megabytes",
             "Expected Time Complexity": None}
            for i, d in enumerate(["EASY", "HARD", "MEDIUM_HARD", "UNKNOWN_DIFFICULTY"])]
    pq.write_table(pa.Table.from_pylist(taco), taco_dir / "ALL" / "train-00000-of-00001.parquet")
    apps_dir.mkdir(parents=True)
    (apps_dir / "apps.py").write_text(SCRIPT)
    write_jsonl(apps_dir / "test.jsonl", [
        {"problem_id": i, "question": f"APPS question {i}", "solutions": "[]", "input_output": "{}",
         "difficulty": "interview", "url": f"https://codeforces.com/problemset/problem/{i}/A", "starter_code": ""}
        for i in range(3)])
    (root / "cc" / "data").mkdir(parents=True)
    pq.write_table(pa.table({"name": ["a", "b"], "description": ["CC zero", "CC one"], "source": [2, 2],
                             "difficulty": [7, 8], "cf_rating": [1200, 1500],
                             "public_tests": [{"input": ["1"], "output": ["1"]}] * 2}),
                   root / "cc" / "data" / "valid-00000-of-00001.parquet")
    (root / "cf" / "data").mkdir(parents=True)
    cf = [dict(CF_ROW, description=f"CF {i}: find the sum.") for i in range(2)]
    cf[1].update(examples=None, note=None, input_format=None)
    pq.write_table(pa.Table.from_pylist(cf), root / "cf" / "data" / "train-00000-of-00001.parquet")
    return {"taco": str(taco_dir), "apps": str(apps_dir), "code_contests": str(root / "cc"),
            "open-r1/codeforces": str(root / "cf")}


def ocr2_rows() -> list[dict]:
    return [
        row(1, 0, dataset="taco", split="train", index="1", difficulty=""),
        row(2, 0, dataset="apps", split="test", index="2"),
        row(3, 0, dataset="code_contests", split="valid", index="0"),
        row(4, 0, dataset="open-r1/codeforces", split="train", index="0"),
        row(5, 0, dataset="open-r1/codeforces", split="train", index="1"),
        row(6, 0, dataset="taco", split="train", index="99"),          # no such source row
        row(7, 0, dataset="somewhere_else", split="train", index="0"),  # unknown source dataset
        row(8, 0, dataset="taco", split="train", index="0", question="Already there"),
    ]


def test_codeforces_question_follows_the_card():
    assert codeforces_question(CF_ROW) == ("Find the sum.\n\nInput\n\nTwo integers.\n\nOutput\n\nOne integer."
                                           "\n\nExamples\n\nInput\n\n1 2\n\nOutput\n\n3\n\nNote\n\nEasy.")


def test_ocr2_from_local_shards_recovers_questions_by_join(tmp_path, sources):
    write_shard(tmp_path / "ocr2" / "a.parquet", ocr2_rows()[:4])
    write_shard(tmp_path / "ocr2" / "b.parquet", ocr2_rows()[4:])
    ds = load_ocr2(str(tmp_path / "ocr2"))
    assert len(ds) == 8
    traces = pl.from_arrow(ds.data.table).lazy()
    questions = load_all_source_questions(traces, sources)
    recovered = recover_questions(traces, questions).collect()
    assert recovered["question"].to_list() == [
        "TACO question 1", "APPS question 2", "CC zero", codeforces_question(CF_ROW | {"description":
                                                                                       "CF 0: find the sum."}),
        "CF 1: find the sum.\n\nOutput\n\nOne integer.", "-", "-", "Already there"]

    paths = write_recovered_traces(ds, questions, tmp_path / "traces", rows_per_shard=3)
    assert [Path(p).name for p in paths] == ["traces-00000.parquet", "traces-00001.parquet", "traces-00002.parquet"]
    result = build_pool(paths, contamination_problems=[], count_tokens=lambda ts: [len(t) for t in ts],
                        max_tokens=100_000, seed=0, chars_per_token_low=2.0)
    assert result.quarantine.filter(pl.col("reason") == "unrecovered_question")["id"].to_list() == [
        "id-6-0", "id-7-0"]
    assert result.stats["n_pool"] == 6


def test_ocr2_max_rows_and_shape_errors(tmp_path):
    write_shard(tmp_path / "ocr2" / "a.parquet", ocr2_rows())
    first3 = load_ocr2(str(tmp_path / "ocr2"), max_rows=3)
    assert len(first3) == 3
    written = write_recovered_traces(first3, pl.DataFrame(schema={"dataset": pl.String, "split": pl.String,
                                                          "index": pl.Int64, "source_question": pl.String}),
                                     tmp_path / "t3")
    assert pl.read_parquet(written)["id"].to_list() == ["id-1-0", "id-2-0", "id-3-0"]
    pq.write_table(pa.table({"question": ["x"]}), tmp_path / "bad.parquet")
    with pytest.raises(KeyError, match="missing column"):
        load_ocr2(str(tmp_path / "bad.parquet"))


def test_taco_difficulties(sources, tmp_path):
    taco = load_taco(sources["taco"])
    assert taco["difficulty"].to_list() == ["EASY", "HARD", "MEDIUM_HARD", "UNKNOWN_DIFFICULTY"]
    assert taco["index"].to_list() == [0, 1, 2, 3]
    traces = pl.DataFrame(ocr2_rows()).lazy()
    filled = attach_taco_difficulty(traces, taco).collect()
    assert filled["difficulty"][0] == "HARD"          # was empty, taken from TACO row 1
    assert filled["difficulty"][1] == row(2, 0)["difficulty"]  # not TACO: unchanged
    write_jsonl(tmp_path / "badtaco" / "train.jsonl",  # a single data file is loaded as the split
                [{"question": "q", "difficulty": "EASY", "source": "s", "starter_code": ""},
                 {"question": "q", "difficulty": "SUPER_HARD", "source": "s", "starter_code": ""}])
    with pytest.raises(ValueError, match="row 1 has difficulty 'SUPER_HARD'"):
        load_taco(str(tmp_path / "badtaco" / "train.jsonl"))
    with pytest.raises(FileNotFoundError, match=r"ALL/test-\*\.parquet, the layout of BAAI/TACO"):
        load_taco(sources["taco"], split="test")


def test_script_based_repos_load_from_their_data_files(sources):
    # The reason for naming the files: datasets refuses the repo folder itself because of its script.
    with pytest.raises(RuntimeError, match="scripts are no longer supported"):
        datasets.load_dataset(sources["taco"], split="train")
    assert load_taco(sources["taco"]).height == 4
    assert len(load_source(sources["apps"], SOURCE_DATASETS["apps"], split="test", columns=["question"])) == 3


def test_hub_ids_resolve_to_the_repo_files():
    taco, apps = SOURCE_DATASETS["taco"], SOURCE_DATASETS["apps"]
    assert split_data_files("BAAI/TACO", taco, "train") == "hf://datasets/BAAI/TACO@main/ALL/train-*.parquet"
    assert split_data_files("codeparrot/apps", apps, "test", revision="refs/convert/parquet") == \
        "hf://datasets/codeparrot/apps@refs/convert/parquet/test.jsonl"
    assert hub_root("deepmind/code_contests", "v1/x") == "hf://datasets/deepmind/code_contests@v1%2Fx"
    assert split_data_files("s3://bucket/mirror/taco/", taco, "test") == "s3://bucket/mirror/taco/ALL/test-*.parquet"
    assert split_data_files("nvidia/OpenCodeReasoning-2", OCR2_LAYOUT, "python") == \
        "hf://datasets/nvidia/OpenCodeReasoning-2@main/train/python/train-*.parquet"


def test_ocr2_repo_layout_folder_reads_the_split(tmp_path):
    # the hub repo's layout: train/<language>/train-0000K-of-000NN.parquet
    write_shard(tmp_path / "repo" / "train" / "python" / "train-00000-of-00070.parquet", ocr2_rows()[:2])
    write_shard(tmp_path / "repo" / "train" / "python" / "train-00001-of-00070.parquet", ocr2_rows()[2:3])
    write_shard(tmp_path / "repo" / "train" / "cpp" / "train-00000-of-00024.parquet", ocr2_rows()[3:])
    assert load_ocr2(str(tmp_path / "repo"))["id"] == ["id-1-0", "id-2-0", "id-3-0"]
    assert len(load_ocr2(str(tmp_path / "repo"), split="cpp")) == 5


def test_release_tags_map_to_files():
    assert release_files("release_v1") == ["test.jsonl"]
    assert release_files("release_v3") == ["test.jsonl", "test2.jsonl", "test3.jsonl"]
    assert release_files("v4_v5") == ["test4.jsonl", "test5.jsonl"]
    assert release_files("v1") == ["test.jsonl"] and release_files("v6") == ["test6.jsonl"]
    # No newest version is built in: the source's files decide (defect: LATEST_VERSION = 6 refused release_v7).
    assert release_files("release_v7")[-1] == "test7.jsonl"
    assert release_files("release_latest", available_versions=[1, 2, 3, 4, 5, 6, 7, 8]) == \
        release_files("release_v8")
    with pytest.raises(FileNotFoundError, match=r"needs \['test8.jsonl'\]"):
        release_files("release_v8", available_versions=range(1, 8))
    for bad in ("v5_v4", "latest", "v0", "release_latest"):
        with pytest.raises(ValueError):
            release_files(bad)


def lcb_row(qid: str, day: str, difficulty: str, private: str) -> dict:
    return {"question_title": f"T {qid}", "question_content": f"Content {qid}", "platform": "atcoder",
            "question_id": qid, "contest_id": "abc1", "contest_date": day, "starter_code": "",
            "difficulty": difficulty, "public_test_cases": json.dumps([{"input": "1\n", "output": "1\n",
                                                                        "testtype": "stdin"}]),
            "private_test_cases": private, "metadata": "{}"}


def compressed(tests: list[dict]) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


@pytest.fixture(scope="module")
def lcb_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lcb")
    private = [{"input": "2\n", "output": "2\n", "testtype": "stdin"}]
    write_jsonl(root / "test.jsonl", [lcb_row("a1", "2023-05-10T00:00:00", "easy", json.dumps(private)),
                                      lcb_row("a2", "2023-08-01T00:00:00", "hard", compressed(private))])
    write_jsonl(root / "test2.jsonl", [lcb_row("b1", "2023-12-01T00:00:00", "medium", compressed(private))])
    write_jsonl(root / "test3.jsonl", [lcb_row("c1", "2024-03-01T00:00:00", "Medium", "[]")])
    return root


def test_lcb_local_release_window_and_private_tests(lcb_folder):
    v2 = load_lcb(str(lcb_folder), release="release_v2")
    assert [p["question_id"] for p in v2] == ["a1", "a2", "b1"]
    assert all(json.loads(p["private_test_cases"])[0]["output"] == "2\n" for p in v2)
    assert all(isinstance(v, str) for p in v2 for v in p.values())
    windowed = load_lcb(str(lcb_folder), release="release_v3", start_date="2023-08-01", end_date="2024-01-01")
    assert [p["question_id"] for p in windowed] == ["a2", "b1"]
    assert [p["difficulty"] for p in load_lcb(str(lcb_folder), release="v2_v3")] == ["medium", "medium"]
    assert [p["question_id"] for p in load_lcb(str(lcb_folder), release="release_v3", difficulties=("hard",))] \
        == ["a2"]
    with pytest.raises(FileNotFoundError, match="test4.jsonl"):
        load_lcb(str(lcb_folder), release="release_v4")


def test_lcb_bad_rows_fail_naming_the_row(tmp_path):
    write_jsonl(tmp_path / "test.jsonl", [lcb_row("x", "2023-05-10T00:00:00", "easy", "not json, not base64!")])
    with pytest.raises(ValueError, match="problem x: private_test_cases is neither"):
        load_lcb(str(tmp_path), release="v1")
    write_jsonl(tmp_path / "test.jsonl", [lcb_row("y", "2023-05-10T00:00:00", "extreme", "[]")])
    with pytest.raises(ValueError, match=r"test.jsonl row 0 \(question_id y\): difficulty 'extreme'"):
        load_lcb(str(tmp_path), release="v1")
    assert decode_private_tests("[]") == "[]"


def test_shared_lcb_adapter():
    if not SHARED_LCB.exists():
        pytest.skip(f"shared LCB data not present at {SHARED_LCB}")
    problems = load_shared_lcb(SHARED_LCB)
    assert len(problems) == 580
    assert len({p["question_id"] for p in problems}) == 580
    assert problems == load_shared_lcb(SHARED_LCB)  # stable ids
    functional = [p for p in problems if p["platform"] == "leetcode"]
    assert len(functional) == 277
    assert all(json.loads(p["metadata"])["func_name"] for p in functional)
    stdin = [p for p in problems if p["starter_code"] == ""]
    assert len(stdin) == 303 and all(json.loads(p["public_test_cases"])[0]["testtype"] == "stdin" for p in stdin)
    assert all("contest_date" in json.loads(p["metadata"])["unknown_fields"] for p in problems)
