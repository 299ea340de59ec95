"""The study through the real Dagster UI: `dagster dev` (webserver + daemon) on a demo home, driven by headless
Chromium and by the GraphQL the UI sends.

One demo home is materialized per module on a minimal config (data size `0` only, no ablation arms: the cheapest home
that has a curve), then:
- the browser sees the asset graph with every stage, the `valley_curve` page with its plot image loaded, the shared
  HTML report opening from its file with no network, and the backfill page of a new data size;
- a new LiveCodeBench release file dropped into the benchmark source, with no further action, makes the daemon's
  `lcb_release_sensor` register `release_v2` and fetch its problems, and `valley_automation` (the evaluation assets'
  automation conditions) score every checkpoint on it (issue 6, issue J);
- a new data size added and backfilled through the UI's GraphQL (`addDynamicPartition`, `launchPartitionBackfill`)
  completes under the daemon, with its checkpoint's provenance manifest.

Browser tests skip when Chromium, chromedriver or selenium is missing, and fail instead under VALLEY_REQUIRE_BROWSER=1
(CI: scripts/ci_browser_setup.sh installs them). Screenshots go to screenshots/ui/ (git-ignored).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import polars as pl
import pytest
import yaml
from dagster._core.instance.ref import InstanceRef

from tests.webserver_graphql import (
    ADD_PARTITION,
    BACKFILL_STATUS,
    LAUNCH_BACKFILL,
    MATERIALIZATIONS,
    PARTITION_KEYS,
    RUNS_BY_TAG,
    SENSOR_TICKS,
    run_errors,
    wait_for,
)
from valley_assets.analysis import MANIFEST_NAME, external_references, verify_data_files
from valley_assets.config import PROFILES_DIR, load_study_config
from valley_assets.definitions import build_definitions
from valley_assets.defs.automation import AUTOMATION_SENSOR
from valley_assets.generation.sensor import RELEASE_TAG
from valley_assets.study_runner import STAGES, run_study

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "screenshots" / "ui"
STUDENT = "tiny-qwen2"
NEW_SIZE = "1k"
NEW_RELEASE = "release_v2"
NEW_PROBLEMS = 2  # in test2.jsonl
REPO = {"repositoryLocationName": "valley", "repositoryName": "__repository__"}
GROUPS = ("data", "teacher", "training", "evaluation", "analysis")
BACKFILL_ASSETS = ("distill_subset", "sft_checkpoint", "lcb_generations", "lcb_scores")  # README "Using the UI", 3.

# The smallest study that still has every stage's code path: 4 traces per "1k", 6 held-out problems, 1 sample of 48
# tokens each, the release sensor on its shortest interval.
UI_CONFIG = {
    "rows_per_k": 4,
    "data_sizes": ["0"],
    "data": {"demo": {"n_train_problems": 80, "n_eval_problems": 6, "pretrain_steps": 20}},
    "evaluation": {"n_samples": 1, "max_new_tokens": 48, "chunk_size": 16},
    "grading": {"backend": "process", "timeout_s": 3.0},
    "analysis": {"bootstrap_samples": 50},
    "automation": {"release_check_interval_s": 30, "release_sensor_running": True},
}
# Ablation arms are left out of the home (four more trainings); the report's ablation section is tested on the real
# assets in tests/analysis/test_analysis_assets.py.
HOME_STAGES = [kept for stage in STAGES if (kept := [a for a in stage if not a.startswith("ablation")])]
# dagster dev's queued-run coordinator polls every 5 s by default; each backfill and sensor hop waits on it.
DAGSTER_YAML = {"run_coordinator": {"module": "dagster._core.run_coordinator",
                                    "class": "QueuedRunCoordinator", "config": {"dequeue_interval_seconds": 1}},
                "telemetry": {"enabled": False}}


# --- GraphQL: the queries and mutations the UI sends (tests/webserver_graphql.py) -------------------------------------
def materializations(server, asset: str) -> list[dict]:
    """Newest first: {"partition", "runId", "meta": {label: text}} per materialization of `asset`."""
    node = server.graphql(MATERIALIZATIONS, {"key": {"path": [asset]}})["assetOrError"]
    assert node["__typename"] == "Asset", (asset, node)
    return [{"partition": m["partition"], "runId": m["runId"],
             "meta": {e["label"]: e.get("text", e.get("jsonString")) for e in m["metadataEntries"]}}
            for m in node["assetMaterializations"]]


def runs_tagged(server, tags: dict[str, str]) -> list[dict]:
    tag_list = [{"key": k, "value": v} for k, v in tags.items()]
    runs = server.graphql(RUNS_BY_TAG, {"tags": tag_list})["runsOrError"]["results"]
    return [{**r, "tags": {t["key"]: t["value"] for t in r["tags"]}} for r in runs]


def fail_on_failed_runs(server, runs: list[dict]) -> None:
    failed = [r for r in runs if r["status"] in ("FAILURE", "CANCELED")]
    if failed:
        details = {r["runId"]: run_errors(server, r["runId"]) for r in failed}
        raise AssertionError(f"runs failed: {json.dumps(details, indent=1)[:4000]}")


def scores_on(server, release: str) -> dict[str, str]:
    """lcb_scores partition -> run id, for materializations that scored `release`."""
    return {m["partition"]: m["runId"] for m in materializations(server, "lcb_scores")
            if m["meta"].get("release") == release}


# --- fixtures ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A demo home materialized like `make demo`, on the minimal config, written to a config file dagster dev loads."""
    tmp = tmp_path_factory.mktemp("ui")
    store, dagster_home = tmp / "store", tmp / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(DAGSTER_YAML))
    cfg = load_study_config(PROFILES_DIR / "demo.yaml", overrides={**UI_CONFIG, "storage_root": str(store)})
    config_path = tmp / "study.yaml"
    config_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home)))
    try:
        run_study(build_definitions(cfg), cfg, instance, stages=HOME_STAGES, log=lambda m: None)
    finally:
        instance.dispose()
    return SimpleNamespace(tmp=tmp, store=store, dagster_home=dagster_home, config_path=config_path, cfg=cfg)


def _drop_release(store: Path, name: str) -> Path:
    """A new LCB-style release file: a few held-out problems under new ids, published atomically (write, rename)."""
    source = store / "lcb_source"
    lines = (source / "test.jsonl").read_text().splitlines()[:NEW_PROBLEMS]
    rows = [{**json.loads(line), "question_id": json.loads(line)["question_id"] + "-r2"} for line in lines]
    tmp = source / f".{name}.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, source / name)
    return source / name


@pytest.fixture(scope="module")
def server(dagster_dev, home):
    """dagster dev on the home. Once the release sensor's first tick has seen release_v1, test2.jsonl is dropped into
    the benchmark source; from then on nothing but the daemon acts on it."""
    env = {"VALLEY_CONFIG": str(home.config_path), "VALLEY_PROJECT_DIR": str(home.tmp)}
    with dagster_dev(home.dagster_home, home.tmp / "dagster_dev.log", env=env) as srv:
        # On a fresh home the UI covers every page with a "Join the Dagster community" dialog a second after load;
        # its Skip button sends this mutation.
        assert srv.graphql("mutation { setNuxSeen }")["setNuxSeen"] is True
        selector = {**REPO, "sensorName": "lcb_release_sensor"}

        def first_tick_done():
            state = srv.graphql(SENSOR_TICKS, {"s": selector})["sensorOrError"]["sensorState"]
            assert state["status"] == "RUNNING", state  # started by the daemon, from the profile's default
            return any(t["status"] in ("SUCCESS", "SKIPPED") and "release_v1" in (t["cursor"] or "")
                       for t in state["ticks"])

        wait_for("the release sensor's first tick", first_tick_done, srv, timeout_s=120)
        srv.checkpoints_before_drop = {m["partition"] for m in materializations(srv, "sft_checkpoint")}
        srv.dropped = _drop_release(home.store, "test2.jsonl")
        yield srv


@pytest.fixture(scope="module")
def release_v2_problems(server):
    """The sensor noticed test2.jsonl: `release_v2` registered and its problems fetched by a run it requested."""

    def fetched():
        runs = runs_tagged(server, {RELEASE_TAG: NEW_RELEASE})
        fail_on_failed_runs(server, runs)
        return any(m["partition"] == NEW_RELEASE for m in materializations(server, "lcb_problems"))

    wait_for(f"lcb_problems[{NEW_RELEASE}]", fetched, server, timeout_s=180)
    return NEW_RELEASE


@pytest.fixture(scope="module")
def data_size_backfill(server, release_v2_problems):
    """Add data size 1k and backfill its stages, as the UI's partition picker and backfill dialog do.

    Launched once release_v2's problems exist, so the new checkpoint's generations and scores (default release: the
    newest) both resolve to release_v2 while the sensor scores the older checkpoints on it: the two run side by side.
    """
    added = server.graphql(ADD_PARTITION, {"r": REPO, "name": "data_size", "key": NEW_SIZE})["addDynamicPartition"]
    assert added == {"__typename": "AddDynamicPartitionSuccess", "partitionKey": NEW_SIZE}, added
    params = {"assetSelection": [{"path": [a]} for a in BACKFILL_ASSETS], "partitionNames": [NEW_SIZE],
              "fromFailure": False, "title": f"data size {NEW_SIZE}"}
    launched = server.graphql(LAUNCH_BACKFILL, {"p": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


@pytest.fixture(scope="module")
def browser():
    def unavailable(reason: str):
        if os.environ.get("VALLEY_REQUIRE_BROWSER") == "1":
            pytest.fail(f"VALLEY_REQUIRE_BROWSER=1 but {reason} (run scripts/ci_browser_setup.sh)")
        pytest.skip(f"browser test: {reason}; install with scripts/ci_browser_setup.sh")

    chromium = os.environ.get("VALLEY_CHROMIUM", "/usr/bin/chromium")
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not os.access(chromium, os.X_OK):
        unavailable(f"no Chromium at {chromium} (Debian package `chromium`)")
    if not os.access(driver_path, os.X_OK):
        unavailable("no chromedriver (Debian package `chromium-driver`)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed (pip install -e '.[dev]')")
    options = Options()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(90)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(browser, url: str) -> None:
    browser.get(url)


def wait_in_browser(browser, what: str, condition, timeout_s: float = 90):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, timeout_s, poll_frequency=0.5).until(lambda d: condition(d))
    except TimeoutException:
        shot = SCREENSHOTS / f"timeout-{re.sub(r'[^a-z0-9]+', '-', what.lower())}.png"
        browser.save_screenshot(str(shot))
        raise AssertionError(f"browser: timed out waiting for {what} at {browser.current_url}; see {shot}") from None


# --- the UI in a browser ----------------------------------------------------------------------------------------------
@pytest.mark.browser
def test_asset_graph_shows_every_stage(browser, server, home):
    graph = build_definitions(home.cfg).get_repository_def().asset_graph
    per_group: dict[str, int] = {}
    for key in graph.get_all_asset_keys():
        group = graph.get(key).group_name
        per_group[group] = per_group.get(group, 0) + 1
    assert set(per_group) == set(GROUPS)
    open_page(browser, server.base + "/asset-groups")  # Lineage → Global asset lineage

    def group_nodes(d):
        texts = d.execute_script(
            "return Array.from(document.querySelectorAll('svg foreignObject')).map(e => e.textContent)")
        nodes = {g: t for t in texts for g in GROUPS if t.startswith(g)}
        return nodes if len(nodes) == len(GROUPS) else None

    nodes = wait_in_browser(browser, "the stage groups in the asset graph", group_nodes)
    for group, text in nodes.items():
        assert text.startswith(f"{group}{per_group[group]} assets"), (group, text)
    browser.save_screenshot(str(SCREENSHOTS / "asset-graph.png"))


@pytest.mark.browser
def test_valley_curve_page_shows_the_plot(browser, server):
    from selenium.webdriver.common.by import By

    open_page(browser, server.base + "/assets/valley_curve")
    row = wait_in_browser(browser, "the plot metadata row",
                          lambda d: d.find_elements(By.XPATH, "//tr[td[1][normalize-space()='plot']]"))[0]
    wait_in_browser(browser, "the points table (markdown, rendered after the row)", lambda d: STUDENT in d.find_element(
        By.XPATH, "//tr[td[1][normalize-space()='table']]").text)
    row.find_element(By.XPATH, ".//a[normalize-space()='[Show Markdown]']").click()
    images = wait_in_browser(browser, "the plot image to load", lambda d: d.execute_script(
        "return Array.from(document.querySelectorAll('[role=dialog] img'))"
        ".filter(i => i.complete && i.naturalWidth > 0)"
        ".map(i => [i.alt, i.src.slice(0, 22), i.naturalWidth, i.naturalHeight])") or None)
    alt, src, width, height = images[0]
    assert (alt, src) == ("plot", "data:image/png;base64,") and width > 300 and height > 200
    browser.save_screenshot(str(SCREENSHOTS / "valley-curve.png"))


@pytest.mark.browser
def test_report_opens_with_no_network(browser, home):
    report = home.store / "reports" / "valley_report.html"
    page = report.read_text()
    assert external_references(page) == []
    browser.get(report.as_uri())
    loaded = wait_in_browser(browser, "the report's figures", lambda d: d.execute_script(
        "const imgs = Array.from(document.images);"
        "return imgs.length && imgs.every(i => i.complete) ? imgs.map(i => i.naturalWidth) : null"))
    assert len(loaded) == page.count("<img") >= 3 and min(loaded) > 0
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith('data:'))")
    assert fetched == []  # nothing but the file itself was loaded
    assert "Valley curve" in browser.find_element("tag name", "h2").text
    browser.save_screenshot(str(SCREENSHOTS / "report.png"))


# --- the daemon: a new release, a new data size -----------------------------------------------------------------------
def test_new_release_is_scored_for_every_checkpoint(server, home, release_v2_problems, data_size_backfill):
    """Issue 6, done when: dropping test2.jsonl registers release_v2 and scores every checkpoint on it, no human."""
    assert server.checkpoints_before_drop == {f"0|{STUDENT}"}
    keys = server.graphql(PARTITION_KEYS, {"key": {"path": ["lcb_problems"]}})["assetNodeOrError"]["partitionKeys"]
    assert keys == ["release_v1", NEW_RELEASE]
    problem_runs = {m["runId"] for m in materializations(server, "lcb_problems") if m["partition"] == NEW_RELEASE}
    sensor_runs = runs_tagged(server, {RELEASE_TAG: NEW_RELEASE, "dagster/sensor_name": "lcb_release_sensor"})
    assert problem_runs <= {r["runId"] for r in sensor_runs if r["jobName"] == "fetch_lcb_release"}

    def evaluated():
        runs = runs_tagged(server, {"dagster/sensor_name": AUTOMATION_SENSOR})
        fail_on_failed_runs(server, runs)
        succeeded = {r["runId"] for r in runs if r["status"] == "SUCCESS"}
        scored = scores_on(server, NEW_RELEASE)
        done = all(scored.get(cp) in succeeded for cp in server.checkpoints_before_drop)
        return scored if done else None

    scored = wait_for(f"lcb_scores on {NEW_RELEASE} for {sorted(server.checkpoints_before_drop)}", evaluated, server,
                      timeout_s=300)
    by_run = {r["runId"]: r for r in runs_tagged(server, {"dagster/sensor_name": AUTOMATION_SENSOR})}
    for checkpoint in server.checkpoints_before_drop:
        run = by_run[scored[checkpoint]]
        assert run["status"] == "SUCCESS" and run["tags"]["dagster/partition"] == checkpoint
    evaluated_keys = [r["tags"]["dagster/partition"] for r in by_run.values() if "dagster/partition" in r["tags"]]
    assert len(evaluated_keys) == len(set(evaluated_keys))  # one request per checkpoint, none repeated
    table = pl.concat([pl.read_parquet(f) for f in (home.store / "scores" / "runs").glob("*.parquet")],
                      how="diagonal_relaxed")
    v2 = table.filter((pl.col("release") == NEW_RELEASE) & (pl.col("metric") == "pass@1")
                      & (pl.col("difficulty") == "all"))
    # releases are cumulative (LiveCodeBench's files): release_v2 = test.jsonl's problems + test2.jsonl's
    assert {"0"} <= set(v2["data_size"]) and set(v2["n_problems"]) == {home.cfg.data.demo.n_eval_problems + NEW_PROBLEMS}
    assert set(table.filter(pl.col("release") == "release_v1")["data_size"]) >= {"0"}  # older results kept


def test_new_data_size_backfill_completes(server, home, data_size_backfill):
    def finished():
        backfill = server.graphql(BACKFILL_STATUS, {"id": data_size_backfill})["partitionBackfillOrError"]
        fail_on_failed_runs(server, backfill["runs"])
        return backfill if backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING") else None

    backfill = wait_for(f"backfill {data_size_backfill} of {NEW_SIZE}", finished, server, timeout_s=420, every_s=3)
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill
    counts = {s["assetKey"]["path"][-1]: (s["numPartitionsTargeted"], s["numPartitionsMaterialized"])
              for s in backfill["assetBackfillData"]["assetBackfillStatuses"]}
    assert counts == {a: (1, 1) for a in BACKFILL_ASSETS}
    checkpoint = f"{NEW_SIZE}|{STUDENT}"
    # the new checkpoint was scored on the newest release; now every checkpoint has release_v2 scores
    assert scores_on(server, NEW_RELEASE).keys() >= {f"0|{STUDENT}", checkpoint}
    sft = next(m for m in materializations(server, "sft_checkpoint") if m["partition"] == checkpoint)
    manifest_path = home.store / "checkpoints" / STUDENT / NEW_SIZE / MANIFEST_NAME
    assert sft["meta"]["provenance_path"] == str(manifest_path)
    manifest = json.loads(manifest_path.read_text())
    assert json.loads(sft["meta"]["provenance"]) == manifest
    assert [Path(e["path"]).name for e in manifest["data_files"]] == [f"{NEW_SIZE}.parquet", "train.jsonl"]
    assert verify_data_files(manifest) == []
    assert manifest["hyperparameters"]["recipe"]["name"] == "demo-tiny"
    assert manifest["training_summary"]["steps"] > 0 and manifest["wall_time_s"] > 0


@pytest.mark.browser
def test_backfill_page_shows_it_succeeded(browser, server, data_size_backfill):
    open_page(browser, f"{server.base}/runs/b/{data_size_backfill}")
    text = wait_in_browser(browser, "the backfill's status", lambda d: (
        (t := d.find_element("tag name", "body").text) and "Succeeded" in t and t.count("100% completed") == 4 and t))
    for asset in BACKFILL_ASSETS:
        assert asset in text
    browser.save_screenshot(str(SCREENSHOTS / "backfill.png"))
