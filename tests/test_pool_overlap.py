"""A release scored after the pool was built is re-checked against the pool (issue J): the problems the pool
overlaps are reported on that release's scores (count, ids, `pool_overlap.json`), and the scores are also given over
the other problems (rows with date_window `uncontaminated`). Graded for real (process backend)."""

import json

import dagster as dg
import polars as pl
import pytest

from tests.rehearsal.moto_s3 import moto_s3, moto_s3_env, moto_s3_server  # noqa: F401 (fixtures)
from valley_assets import partitions as P
from valley_assets.config import load_study_config
from valley_assets.data.decontam import release_overlap
from valley_assets.definitions import build_definitions
from valley_assets.layout import StudyLayout
from valley_assets.resources import GraderResource, StudyLayoutResource
from valley_assets.science import metrics

STUDENT = "tiny-qwen2"
RELEASE = "release_v7"
SUM = "Read two integers a and b from one line and print their sum a plus b on its own line."
PRODUCT = "Read two integers a and b from one line and print their product a times b on its own line."
DIFFERENCE = "Given two whole numbers on a single input line, output the first minus the second."


def _problem(qid: str, content: str) -> dict:
    expected = {"sum": "5\n", "prod": "6\n", "diff": "-1\n"}[qid]
    tests = json.dumps([{"input": "2 3\n", "output": expected, "testtype": "stdin"}])
    return {"question_id": qid, "question_title": qid, "question_content": content, "platform": "atcoder",
            "contest_date": "2025-03-01T00:00:00", "starter_code": "", "difficulty": "easy",
            "public_test_cases": tests, "private_test_cases": "[]", "metadata": "{}"}


def _sample(qid: str, code: str) -> dict:
    return {"question_id": qid, "sample_idx": 0, "prompt_id": "lcb-reasoning", "finish_reason": "stop",
            "text": f"<think>ok</think>\n```python\n{code}\n```", "prompt_tokens": 5, "completion_tokens": 9}


def test_release_overlap_uses_the_pools_rule():
    problems = [_problem("sum", SUM), _problem("prod", PRODUCT), _problem("diff", DIFFERENCE)]
    pool = [SUM.upper() + "  ", "An unrelated question about graphs and their shortest paths between two nodes."]
    exact = release_overlap(problems, pool, ngram=None)
    assert (exact["n_overlapping"], exact["question_ids"], exact["n_pool_questions"]) == (1, ["sum"], 2)
    # 13-grams: PRODUCT shares "Read two integers a and b from one line and print their" (11 words) with SUM: no
    # 13-word run in common, so only the exact copy is contaminated; a pool question quoting 13 words of DIFFERENCE is.
    quoted = "Warm-up: given two whole numbers on a single input line, output the first minus the second. Easy."
    ngram = release_overlap(problems, [*pool, quoted], ngram=13)
    assert ngram["question_ids"] == ["diff", "sum"] and ngram["rule"] == "exact or 13-gram"


def test_scores_report_the_overlap_and_pass_at_1_without_it(tmp_path):
    cfg = load_study_config(overrides={"storage_root": str(tmp_path / "study"), "pool": {"ngram": None}})
    layout = StudyLayout(cfg.resolved_storage_root())
    problems = [_problem("sum", SUM), _problem("prod", PRODUCT), _problem("diff", DIFFERENCE)]
    # The student solves the contaminated problem (it trained on it) and one of the two others.
    samples = [_sample("sum", "a, b = map(int, input().split())\nprint(a + b)"),
               _sample("prod", "a, b = map(int, input().split())\nprint(a * b)"), _sample("diff", "print(0)")]
    layout.lcb_problems(RELEASE).write_jsonl(problems)
    layout.generations(STUDENT, "1k", "main", RELEASE, "lcb-reasoning").write_jsonl(samples)
    layout.pool().write_parquet(pl.DataFrame({"id": ["t1", "t2"], "question": [SUM, "Count the vowels."]}))

    defs = build_definitions(cfg)
    partition = f"1k|{STUDENT}"
    with dg.instance_for_test() as instance:
        P.add_data_sizes(instance, ["1k"])
        instance.report_runless_asset_event(dg.AssetMaterialization(
            "lcb_generations", partition=partition, metadata={"release": RELEASE}))
        done = dg.materialize([defs.get_assets_def("lcb_scores")], partition_key=partition, instance=instance,
                              resources={"grader": GraderResource(backend="process", timeout_s=6.0, workers=1,
                                                                  memory_mb=512),
                                         "layout": StudyLayoutResource(root=cfg.resolved_storage_root())})
        assert done.success
        meta = done.asset_materializations_for_node("lcb_scores")[0].metadata

    assert meta["pass@1"].value == pytest.approx(2 / 3)
    assert meta["pool_overlap_count"].value == 1 and meta["pool_overlap_ids"].value == ["sum"]
    assert meta["pass@1_uncontaminated"].value == pytest.approx(1 / 2)
    assert meta["n_problems_uncontaminated"].value == 2
    assert layout.pool_overlap(RELEASE).read_json()["question_ids"] == ["sum"]
    rows = pl.concat([pl.read_parquet(f) for f in (tmp_path / "study" / "scores" / "runs").glob("*.parquet")])
    clean = rows.filter((pl.col("date_window") == metrics.UNCONTAMINATED) & (pl.col("difficulty") == "all")
                        & (pl.col("metric") == "pass@1"))
    assert clean["value"].to_list() == [pytest.approx(0.5)] and clean["n_problems"].to_list() == [2]


@pytest.mark.parametrize("root_kind", ["local", "s3"])
def test_the_overlap_is_computed_once_per_pool_version(root_kind, tmp_path, request, monkeypatch):
    """Every checkpoint's scoring on a release asks the same question of the same pool: the stored answer is reused
    while the pool is unchanged, and recomputed when the pool is rebuilt (a new extra teacher, say)."""
    from valley_assets.defs import evaluation

    if root_kind == "s3":
        root = request.getfixturevalue("moto_s3_env").uri("study")
    else:
        root = str(tmp_path / "study")
    layout = StudyLayout(root)
    problems = [_problem("sum", SUM), _problem("prod", PRODUCT)]
    layout.pool().write_parquet(pl.DataFrame({"id": ["t1"], "question": [SUM]}))
    computed = []
    monkeypatch.setattr(evaluation, "release_overlap",
                        lambda *a, **k: computed.append(1) or release_overlap(*a, **k))

    first = evaluation.pool_overlap(layout, RELEASE, problems, ngram=None)
    again = evaluation.pool_overlap(layout, RELEASE, problems, ngram=None)
    assert first == again and first["question_ids"] == ["sum"] and len(computed) == 1
    evaluation.pool_overlap(layout, RELEASE, problems, ngram=13)  # another rule: computed again
    assert len(computed) == 2

    layout.pool().write_parquet(pl.DataFrame({"id": ["t1", "t2"], "question": [SUM, PRODUCT + " (copied)"]}))
    rebuilt = evaluation.pool_overlap(layout, RELEASE, problems, ngram=None)
    assert len(computed) == 3 and rebuilt["n_pool_questions"] == 2 and rebuilt["pool_version"] != first["pool_version"]
