"""The release sensor of the real code location: a new test2.jsonl in the demo's benchmark folder registers
release_v2 and requests its problems, nothing twice; evaluation is left to the assets' automation conditions
(tests/automation/test_automation_daemon.py)."""

import json

import dagster as dg

from valley_assets.config import PROFILES_DIR, load_study_config
from valley_assets.definitions import build_definitions


def _problem(qid: str) -> dict:
    tests = json.dumps([{"input": "1\n", "output": "1\n", "testtype": "stdin"}])
    return {"question_id": qid, "question_title": qid, "question_content": "echo", "platform": "valley-demo",
            "contest_date": "2025-01-01T00:00:00", "starter_code": "", "difficulty": "easy",
            "public_test_cases": tests, "private_test_cases": "[]", "metadata": "{}"}


def test_new_release_is_noticed_once(tmp_path):
    cfg = load_study_config(PROFILES_DIR / "demo.yaml", overrides={"storage_root": str(tmp_path / "store")})
    defs = build_definitions(cfg)
    source = tmp_path / "store" / "lcb_source"
    source.mkdir(parents=True)
    (source / "test.jsonl").write_text(json.dumps(_problem("q1")) + "\n")
    instance = dg.DagsterInstance.ephemeral()
    sensor = defs.get_repository_def().get_sensor_def("lcb_release_sensor")

    def tick(cursor=None):
        ctx = dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=defs.get_repository_def())
        return sensor(ctx)  # direct invocation: the SensorResult as returned, before Dagster applies it

    first = tick()
    assert [r.partition_key for r in first.run_requests] == ["release_v1"]
    assert any("release_v1" in str(req) for req in first.dynamic_partitions_requests)
    instance.add_dynamic_partitions("lcb_release", ["release_v1"])  # what Dagster does with that request
    # pretend release_v1's problems are materialized
    instance.report_runless_asset_event(dg.AssetMaterialization("lcb_problems", partition="release_v1"))
    second = tick(first.cursor)
    assert second.run_requests == []  # evaluation: valley_automation, from the generations' condition
    (source / "test2.jsonl").write_text(json.dumps(_problem("q2")) + "\n")
    third = tick(second.cursor)
    assert [r.partition_key for r in third.run_requests] == ["release_v2"]
    assert any("release_v2" in str(req) for req in third.dynamic_partitions_requests)
    again = tick(third.cursor)
    assert isinstance(again, dg.SkipReason)  # problems not materialized yet: nothing new, nothing repeated
