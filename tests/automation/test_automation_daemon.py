"""Every score stays current by itself (issue J), against `dagster dev`'s real daemon on a demo home.

One demo home is materialized per module on the smallest config that has every stage (2 data sizes, the 4 ablation
arms), then `dagster dev` serves it and, with no action but the ones named:
- a `test7.jsonl` dropped into the benchmark source (one of its problems is a training pool question): the release
  sensor registers `release_v7` and fetches its problems; `valley_automation` (the assets' automation conditions)
  then scores every main and ablation checkpoint on it, once each, with the pool's overlap reported and scores
  without it and per date window, and refreshes the curve (per window) and the report;
- the daemon restarted: nothing is requested again;
- a new data size (`3k`) backfilled up to its checkpoint only: its generations and scores follow on the newest
  release;
- an unchanged checkpoint re-materialized: no training Job is launched and nothing downstream re-runs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest
import yaml
from dagster._core.instance.ref import InstanceRef

from tests.webserver_graphql import (
    ADD_PARTITION,
    BACKFILL_STATUS,
    LAUNCH_BACKFILL,
    MATERIALIZATIONS,
    RUN_MESSAGES,
    RUNS_BY_TAG,
    SENSOR_TICKS,
    wait_for,
)
from valley_assets.config import PROFILES_DIR, load_study_config
from valley_assets.definitions import build_definitions
from valley_assets.defs.automation import AUTOMATION_SENSOR
from valley_assets.defs.common import layout_for
from valley_assets.study_runner import run_study
from valley_assets.training.checkpoints import COMPLETE_MARKER

pytestmark = pytest.mark.slow

STUDENT = "tiny-qwen2"
NEW_RELEASE = "release_v7"
NEW_SIZE = "3k"
MAIN = [f"0|{STUDENT}", f"1k|{STUDENT}"]
ARMS = [f"{arm}|{STUDENT}" for arm in ("correct", "easy", "hard", "incorrect")]
REPO = {"repositoryLocationName": "valley", "repositoryName": "__repository__"}
VALUE_FIELDS = ("text", "jsonString", "mdStr", "boolValue", "intValue", "floatValue")  # MATERIALIZATIONS' entry values
# tests/test_graph_e2e.py's minimal study (4 traces per "1k", 6 held-out problems, 4 rows per ablation arm), one
# sample of 48 tokens per problem, the sensors on short intervals.
CONFIG = {
    "rows_per_k": 4,
    "data_sizes": ["0", "1k"],
    "data": {"demo": {"n_train_problems": 80, "n_eval_problems": 6, "pretrain_steps": 20}},
    "evaluation": {"n_samples": 1, "max_new_tokens": 48, "chunk_size": 16},
    "grading": {"backend": "process", "timeout_s": 3.0},
    "ablation": {"base_data_size": "1k", "rows": {"easy": 4, "hard": 4, "correct": 4, "incorrect": 4}},
    "analysis": {"bootstrap_samples": 50},
    "automation": {"release_check_interval_s": 30, "condition_interval_s": 10},
    # LiveCodeBench's layout: test.jsonl (the demo's held-out problems) .. test6.jsonl, release_v6 = all six files.
    "benchmark": {"releases": ["release_v6"], "date_windows": [{"start": "2025-05-01"}]},
}
WINDOW = "2025-05-01.."
# Two runs at a time on this 2-core machine; the queue is polled every second.
DAGSTER_YAML = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator",
                                    "config": {"dequeue_interval_seconds": 1, "max_concurrent_runs": 2}},
                "telemetry": {"enabled": False}}



# --- what the UI shows, through its GraphQL ---------------------------------------------------------------------------
def materializations(server, asset: str) -> list[dict]:
    node = server.graphql(MATERIALIZATIONS, {"key": {"path": [asset]}})["assetOrError"]
    assert node["__typename"] == "Asset", (asset, node)
    return [{"partition": m["partition"], "runId": m["runId"], "timestamp": float(m["timestamp"]),
             "meta": {e["label"]: next((e[f] for f in VALUE_FIELDS if f in e), None) for e in m["metadataEntries"]}}
            for m in node["assetMaterializations"]]


def runs(server, **tags: str) -> list[dict]:
    found = server.graphql(RUNS_BY_TAG, {"tags": [{"key": k, "value": v} for k, v in tags.items()]})["runsOrError"]
    return [{**r, "tags": {t["key"]: t["value"] for t in r["tags"]},
             "assets": sorted("/".join(a["path"]) for a in r["assetSelection"] or [])} for r in found["results"]]


def automation_runs(server) -> list[dict]:
    return runs(server, **{"dagster/sensor_name": AUTOMATION_SENSOR})


def messages(server, run_id: str) -> list[str]:
    events = server.graphql(RUN_MESSAGES, {"id": run_id})["logsForRun"]["events"]
    return [e["message"] for e in events if e.get("message")]


def ticks(server, sensor: str) -> list[dict]:
    state = server.graphql(SENSOR_TICKS, {"s": {**REPO, "sensorName": sensor}})["sensorOrError"]["sensorState"]
    assert state["status"] == "RUNNING", (sensor, state)  # started by the daemon, from the profile's defaults
    return state["ticks"]


def no_failed_runs(server) -> None:
    failed = [r for r in runs(server) if r["status"] in ("FAILURE", "CANCELED")]
    assert not failed, json.dumps(failed, indent=1)[:3000]


def quiet(server, since: float, n_ticks: int = 2) -> bool:
    """Every run finished, and `valley_automation` evaluated `n_ticks` times since `since` after the last run."""
    no_failed_runs(server)
    if any(r["status"] not in ("SUCCESS",) for r in runs(server)):
        return False
    return len([t for t in ticks(server, AUTOMATION_SENSOR) if float(t["timestamp"]) > since]) >= n_ticks


def scored_on(server, asset: str, release: str) -> dict[str, list[str]]:
    """partition -> the run ids of its materializations that scored `release`."""
    out: dict[str, list[str]] = {}
    for m in materializations(server, asset):
        if m["meta"].get("release") == release:
            out.setdefault(m["partition"], []).append(m["runId"])
    return out


# --- fixtures ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def home(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("automation")
    store, dagster_home = tmp / "store", tmp / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(DAGSTER_YAML))
    cfg = load_study_config(PROFILES_DIR / "demo.yaml", overrides={**CONFIG, "storage_root": str(store)})
    config_path = tmp / "study.yaml"
    config_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    for number in range(2, 7):  # test.jsonl is the demo's own, written when the benchmark resource starts
        write_release_file(store / "lcb_source", f"test{number}.jsonl", number, n=1)
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home)))
    try:
        run_study(build_definitions(cfg), cfg, instance, log=lambda m: None)
    finally:
        instance.dispose()
    env = {"VALLEY_CONFIG": str(config_path), "VALLEY_PROJECT_DIR": str(tmp)}
    return SimpleNamespace(tmp=tmp, store=store, dagster_home=dagster_home, cfg=cfg, env=env, restarts=0)


def serve(dagster_dev, home):
    home.restarts += 1
    return dagster_dev(home.dagster_home, home.tmp / f"dagster_dev.{home.restarts}.log", env=home.env)


def write_release_file(source: Path, name: str, number: int, n: int, statements: dict[int, str] | None = None) -> None:
    """An LCB-style release file of `n` stdin problems (a + b * number), published atomically (write, rename);
    `statements` replaces the statement of problem i (a training pool question, to be found by the overlap check)."""
    rows = []
    for i in range(n):
        tests = json.dumps([{"input": f"{i} 2\n", "output": f"{i + 2 * number}\n", "testtype": "stdin"}])
        rows.append({"question_id": f"lcb-{number}-{i}", "question_title": f"release {number} #{i}",
                     "question_content": (statements or {}).get(
                         i, f"Read two integers a and b and print a + {number} * b. (set {number}.{i})"),
                     "platform": "atcoder", "contest_date": f"2025-0{min(number, 9)}-01T00:00:00",
                     "starter_code": "", "difficulty": "easy", "public_test_cases": tests,
                     "private_test_cases": "[]", "metadata": "{}"})
    source.mkdir(parents=True, exist_ok=True)
    tmp = source / f".{name}.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, source / name)


@pytest.fixture(scope="module")
def new_release(dagster_dev, home):
    """dagster dev on the built home; once both sensors have ticked, test7.jsonl is dropped; nothing else acts."""
    with serve(dagster_dev, home) as server:
        assert server.graphql("mutation { setNuxSeen }")["setNuxSeen"] is True
        wait_for("the release sensor's first tick", lambda: any(
            "release_v6" in (t["cursor"] or "") for t in ticks(server, "lcb_release_sensor")), server, 180)
        wait_for("two automation ticks", lambda: len(ticks(server, AUTOMATION_SENSOR)) >= 2, server, 120)
        assert automation_runs(server) == []  # a built home: nothing to do
        pool_question = layout_for(home.cfg).pool().scan_parquet().select("question").collect()["question"][0]
        write_release_file(home.store / "lcb_source", "test7.jsonl", 7, n=2, statements={0: pool_question})

        def everything_scored():
            no_failed_runs(server)
            main, arms = scored_on(server, "lcb_scores", NEW_RELEASE), scored_on(server, "ablation_scores",
                                                                                  NEW_RELEASE)
            return (main, arms) if set(main) >= set(MAIN) and set(arms) >= set(ARMS) else None

        wait_for(f"every checkpoint scored on {NEW_RELEASE}", everything_scored, server, 900, 5)
        settled = time.time()
        wait_for("the daemon to settle", lambda: quiet(server, settled, n_ticks=4), server, 600, 5)
        # counted once nothing runs any more: a second scoring requested later would show here
        main, arms = scored_on(server, "lcb_scores", NEW_RELEASE), scored_on(server, "ablation_scores", NEW_RELEASE)
        before_restart = automation_runs(server)
        report = next(m for m in materializations(server, "valley_report"))
        scores = [m for asset in ("lcb_scores", "ablation_scores") for m in materializations(server, asset)
                  if m["meta"].get("release") == NEW_RELEASE]
        curve = next(m for m in materializations(server, "valley_curve"))
    return SimpleNamespace(main=main, arms=arms, runs=before_restart, report=report, scores=scores, curve=curve)


@pytest.fixture(scope="module")
def restarted(dagster_dev, home, new_release):
    """The daemon restarted on the same home, then a new data size backfilled up to its checkpoint, then an unchanged
    checkpoint re-materialized."""
    with serve(dagster_dev, home) as server:
        started = time.time()
        wait_for("two automation ticks after the restart", lambda: quiet(server, started), server, 300, 5)
        after_restart = automation_runs(server)

        added = server.graphql(ADD_PARTITION, {"r": REPO, "name": "data_size", "key": NEW_SIZE})
        assert added["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess", added
        backfill_id = launch_backfill(server, ["distill_subset", "sft_checkpoint"], [NEW_SIZE])
        checkpoint = f"{NEW_SIZE}|{STUDENT}"
        wait_for(f"lcb_scores[{checkpoint}] on {NEW_RELEASE}", lambda: no_failed_runs(server) or checkpoint in
                 scored_on(server, "lcb_scores", NEW_RELEASE), server, 900, 5)
        settled = time.time()
        wait_for("the daemon to settle", lambda: quiet(server, settled), server, 600, 5)
        new_size = SimpleNamespace(backfill_id=backfill_id, checkpoint=checkpoint, runs=automation_runs(server),
                                   backfill=backfill_runs(server, backfill_id))

        # An unchanged checkpoint re-materialized, as a UI misclick would.
        model = home.store / "checkpoints" / STUDENT / "1k" / "run" / COMPLETE_MARKER  # rewritten by a training
        model_mtime = model.stat().st_mtime_ns
        generations_before = len(materializations(server, "lcb_generations"))
        rematerialize = launch_backfill(server, ["sft_checkpoint"], [f"1k|{STUDENT}"])
        wait_for("the re-materialization", lambda: backfill_done(server, rematerialize), server, 300, 3)
        settled = time.time()
        wait_for("the daemon to settle", lambda: quiet(server, settled, n_ticks=3), server, 300, 5)
        unchanged = SimpleNamespace(
            model_unchanged=model.stat().st_mtime_ns == model_mtime,
            checkpoint=next(m for m in materializations(server, "sft_checkpoint") if m["partition"] == f"1k|{STUDENT}"),
            runs=backfill_runs(server, rematerialize),
            generations_after=len(materializations(server, "lcb_generations")),
            generations_before=generations_before, automation_runs=automation_runs(server))
        unchanged.messages = [msg for r in unchanged.runs for msg in messages(server, r["runId"])]
    return SimpleNamespace(after_restart=after_restart, new_size=new_size, unchanged=unchanged)


def launch_backfill(server, assets: list[str], partitions: list[str]) -> str:
    params = {"assetSelection": [{"path": [a]} for a in assets], "partitionNames": partitions, "fromFailure": False}
    launched = server.graphql(LAUNCH_BACKFILL, {"p": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


def backfill_runs(server, backfill_id: str) -> list[dict]:
    return runs(server, **{"dagster/backfill": backfill_id})


def backfill_done(server, backfill_id: str) -> bool:
    backfill = server.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
    assert backfill["status"] not in ("FAILED", "CANCELED", "COMPLETED_FAILED"), backfill
    return backfill["status"] == "COMPLETED_SUCCESS"


# --- the tests ----------------------------------------------------------------------------------------------------------
def test_a_new_release_scores_every_main_and_ablation_checkpoint_once(new_release):
    by_id = {r["runId"]: r for r in new_release.runs}
    for scored in (new_release.main, new_release.arms):
        for partition, run_ids in scored.items():
            assert len(run_ids) == 1, (partition, [by_id.get(i, {"runId": i, "not": "an automation run"})
                                                    for i in run_ids])  # once
            run = by_id[run_ids[0]]  # requested by the automation sensor, nobody else
            assert run["tags"]["dagster/partition"] == partition
    assert set(new_release.main) == set(MAIN) and set(new_release.arms) == set(ARMS)
    # one generations+scores run per checkpoint, nothing requested twice
    evaluation = [r for r in new_release.runs if any(a.endswith("_generations") for a in r["assets"])]
    assert sorted(r["tags"]["dagster/partition"] for r in evaluation) == sorted(MAIN + ARMS)
    # the report followed, on the new release
    assert new_release.report["meta"]["release"] == NEW_RELEASE
    assert new_release.report["runId"] in by_id


def test_the_new_releases_scores_report_the_pool_overlap_and_the_date_windows(new_release):
    assert len(new_release.scores) == len(MAIN + ARMS)
    for m in new_release.scores:
        meta = m["meta"]
        # test7's first problem is a training pool question: found when the release is scored, and left out
        assert meta["pool_overlap_count"] == 1 and json.loads(meta["pool_overlap_ids"]) == ["lcb-7-0"], meta
        assert meta["n_problems_uncontaminated"] == meta["n_problems"] - 1 and "pass@1_uncontaminated" in meta
        by_window = json.loads(meta["pass@1_by_date_window"])
        assert set(by_window) >= {"all", WINDOW}, by_window
        # the window holds release_v7's contests (2025-07) and v5/v6's, not the older files'
        assert 0 < by_window[WINDOW]["n_problems"] < by_window["all"]["n_problems"]
    assert new_release.curve["meta"]["release"] == NEW_RELEASE
    assert WINDOW in new_release.curve["meta"]["pass@1_by_window"]


def test_a_daemon_restart_requests_nothing_again(new_release, restarted):
    assert {r["runId"] for r in restarted.after_restart} == {r["runId"] for r in new_release.runs}


def test_a_backfilled_data_size_is_scored_on_the_newest_release(restarted):
    new_size = restarted.new_size
    assert {r["status"] for r in new_size.backfill} == {"SUCCESS"}
    assert all("lcb_generations" not in r["assets"] for r in new_size.backfill)  # only up to the checkpoint
    by_asset = [r for r in new_size.runs if r["tags"].get("dagster/partition") == new_size.checkpoint]
    [evaluation] = by_asset  # generations and scores, one run, requested by the automation sensor
    assert evaluation["assets"] == ["lcb_generations", "lcb_scores"] and evaluation["status"] == "SUCCESS"


def test_an_unchanged_checkpoint_is_not_trained_again(restarted):
    unchanged = restarted.unchanged
    assert {r["status"] for r in unchanged.runs} == {"SUCCESS"}
    assert unchanged.checkpoint["runId"] in {r["runId"] for r in unchanged.runs}
    assert unchanged.checkpoint["meta"]["training_launched"] is False
    assert any("already holds the model trained from these inputs" in m for m in unchanged.messages)
    # no training Job started (the local launcher logs "[sft-...] launching <python> -m valley_assets.training.sft")
    assert not any("] launching " in m for m in unchanged.messages), unchanged.messages
    assert unchanged.model_unchanged
    # nothing downstream re-ran: the checkpoint's data version (what it was trained from) did not change
    assert unchanged.generations_after == unchanged.generations_before
    assert {r["runId"] for r in unchanged.automation_runs} == {r["runId"] for r in restarted.new_size.runs}
