"""Scores per contest-date window: the profile names windows (`benchmark.date_windows`), `lcb_scores` writes a row set
per window besides all problems and reports pass@1 per window. Graded for real (process backend), no stand-in grades.
"""

import json

import dagster as dg
import pytest

from valley_assets.config import BenchmarkConfig, load_study_config
from valley_assets.resources import GraderResource, StudyLayoutResource
from valley_assets.storage import StudyStorage

STUDENT = "tiny-qwen2"


def _problem(qid: str, contest_date: str) -> dict:
    tests = json.dumps([{"input": "2 3\n", "output": "5\n", "testtype": "stdin"}])
    return {"question_id": qid, "question_title": qid, "question_content": "Print a+b.", "platform": "atcoder",
            "contest_date": contest_date, "starter_code": "", "difficulty": "easy", "public_test_cases": tests,
            "private_test_cases": "[]", "metadata": "{}"}


def _sample(qid: str, idx: int, code: str) -> dict:
    return {"question_id": qid, "sample_idx": idx, "prompt_id": "lcb-reasoning", "finish_reason": "stop",
            "text": f"<think>sum</think>\n```python\n{code}\n```", "prompt_tokens": 5, "completion_tokens": 9}


def test_windows_are_validated_with_the_field_named():
    with pytest.raises(ValueError, match="not an ISO date"):
        BenchmarkConfig(source="lcb", releases=["release_v6"], date_windows=[{"start": "Oct 2024"}])
    with pytest.raises(ValueError, match="is after end"):
        BenchmarkConfig(source="lcb", releases=["release_v6"], date_windows=[{"start": "2025-01-01",
                                                                                "end": "2024-01-01"}])
    cfg = BenchmarkConfig(source="lcb", releases=["release_v6"], date_windows=[{"start": "2024-10-01"}])
    assert cfg.scoring_windows() == [("all", None, None), ("2024-10-01..", "2024-10-01", None)]
    with pytest.raises(ValueError, match="takes no start"):
        BenchmarkConfig(source="lcb", releases=["release_v6"],
                        date_windows=[{"after_student_cutoff": True, "start": "2024-01-01"}])


def test_after_cutoff_is_a_window_per_student():
    """"After each student's cutoff": one label for every student, each student's own start (the day after)."""
    windows = {"date_windows": [{"start": "2024-10-01"}, {"after_student_cutoff": True}]}
    with pytest.raises(ValueError, match=r"students \['tiny-qwen2'\] have no `cutoff`"):
        load_study_config(overrides={"benchmark": windows})
    students = [{"name": "tiny-qwen2", "model": "demo:tiny-qwen2", "recipe": "demo-tiny", "cutoff": "2024-09-30"}]
    cfg = load_study_config(overrides={"benchmark": windows, "students": students})
    assert cfg.benchmark.scoring_windows(cfg.student("tiny-qwen2").cutoff) == [
        ("all", None, None), ("2024-10-01..", "2024-10-01", None), ("after_cutoff", "2024-10-01", None)]
    with pytest.raises(ValueError, match="not an ISO date"):
        load_study_config(overrides={"students": [{**students[0], "cutoff": "Sept 2024"}]})


def test_lcb_scores_report_pass_at_1_per_window(tmp_path):
    students = [{"name": STUDENT, "model": "demo:tiny-qwen2", "recipe": "demo-tiny", "cutoff": "2024-12-31"}]
    cfg = load_study_config(overrides={"storage_root": str(tmp_path / "study"), "students": students,
                                       "benchmark": {"date_windows": [{"start": "2024-10-01"},
                                                                      {"after_student_cutoff": True}]}})
    storage = StudyStorage(cfg.resolved_storage_root())
    release = "release_v1"
    # Two problems before the window, solved; two inside it, one solved and one not.
    problems = [_problem("old-1", "2024-03-02T00:00:00"), _problem("old-2", "2024-05-04T00:00:00"),
                _problem("new-1", "2024-11-09T00:00:00"), _problem("new-2", "2025-01-11T00:00:00")]
    right, wrong = "a, b = map(int, input().split())\nprint(a + b)", "print(0)"
    samples = [_sample("old-1", 0, right), _sample("old-2", 0, right), _sample("new-1", 0, right),
               _sample("new-2", 0, wrong)]
    storage.write_jsonl(problems, "lcb", release, "problems.jsonl")
    storage.write_jsonl(samples, "generations", STUDENT, "1k", release, "lcb-reasoning", "samples.jsonl")

    from valley_assets.definitions import build_definitions

    defs = build_definitions(cfg)
    lcb_scores = defs.get_assets_def("lcb_scores")
    partition = f"1k|{STUDENT}"
    with dg.instance_for_test() as instance:
        from valley_assets import partitions as P

        P.add_data_sizes(instance, ["1k"])
        # The release the generations ran on is read from their materialization (as after lcb_generations).
        instance.report_runless_asset_event(dg.AssetMaterialization(
            "lcb_generations", partition=partition, metadata={"release": release}))
        done = dg.materialize([lcb_scores], partition_key=partition, instance=instance,
                              resources={"grader": GraderResource(backend="process", timeout_s=6.0, workers=1, memory_mb=512),
                                         "layout": StudyLayoutResource(root=cfg.resolved_storage_root())})
        assert done.success
        result = done.asset_materializations_for_node("lcb_scores")[0]

    by_window = json.loads(json.dumps(result.metadata["pass@1_by_date_window"].value))
    assert by_window["all"]["value"] == pytest.approx(0.75) and by_window["all"]["n_problems"] == 4
    assert by_window["2024-10-01.."]["value"] == pytest.approx(0.5) and by_window["2024-10-01.."]["n_problems"] == 2
    # after this student's cutoff (2024-12-31): new-2 only, unsolved
    assert by_window["after_cutoff"]["value"] == 0.0 and by_window["after_cutoff"]["n_problems"] == 1
    rows = storage.read_parquet("scores", "runs", storage.names("scores", "runs")[0])
    windowed = rows.filter((rows["date_window"] == "2024-10-01..") & (rows["metric"] == "pass@1"))
    assert windowed.filter(windowed["difficulty"] == "all")["value"].to_list() == [pytest.approx(0.5)]
