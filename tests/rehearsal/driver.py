"""Materialize the study through a deployed Dagster, as a user does from the UI: one backfill per stage (the
mutation the UI's "Materialize all" / backfill dialog sends), executed by the daemon, each run in its own container.

Stages follow `valley_assets.study_runner.STAGES` (dependency order); a stage is launched once the previous one has
succeeded, so a failure names the stage, the run and its step errors, with the run container's log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from tests.webserver_graphql import BACKFILL_STATUS, LAUNCH_BACKFILL, MATERIALIZATIONS, run_errors


def launch_stage(deployment, assets: list[str], title: str) -> str:
    params = {"assetSelection": [{"path": [a]} for a in assets], "allPartitions": True, "fromFailure": False,
              "title": title}
    launched = deployment.graphql(LAUNCH_BACKFILL, {"p": params})["launchPartitionBackfill"]
    if launched["__typename"] != "LaunchBackfillSuccess":
        raise AssertionError(f"backfill of {assets} not launched: {launched}")
    return launched["backfillId"]


def wait_backfill(deployment, backfill_id: str, what: str, timeout_s: float,
                  on_poll: Callable[[], None] | None = None) -> dict:
    deadline = time.time() + timeout_s
    while True:
        backfill = deployment.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        failed = [r for r in backfill.get("runs") or [] if r["status"] in ("FAILURE", "CANCELED")]
        if failed:
            details = {r["runId"]: {"errors": run_errors(deployment, r["runId"]),
                                    "container": deployment.run_container_logs(r["runId"], tail=60)[-3000:]}
                       for r in failed}
            raise AssertionError(f"{what}: runs failed:\n{json.dumps(details, indent=1)[:12000]}")
        if backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
            if backfill["status"] != "COMPLETED_SUCCESS":
                raise AssertionError(f"{what}: backfill ended {backfill['status']}: {backfill.get('error')}")
            return backfill
        if time.time() > deadline:
            raise AssertionError(f"{what}: not done after {timeout_s:.0f}s: {json.dumps(backfill)[:3000]}\n"
                                 f"{deployment.log_tail(2000)}")
        # The hook (the disruption) watches for a moment that lasts seconds: call it every half second between the
        # status queries.
        for _ in range(6):
            if on_poll is not None:
                on_poll()
            time.sleep(0.5)


def materializations(deployment, asset: str) -> list[dict]:
    node = deployment.graphql(MATERIALIZATIONS, {"key": {"path": [asset]}})["assetOrError"]
    assert node["__typename"] == "Asset", (asset, node)
    out = []
    for m in node["assetMaterializations"]:
        meta = {}
        for e in m["metadataEntries"]:
            meta[e["label"]] = next((e[k] for k in ("text", "jsonString", "intValue", "floatValue") if k in e), None)
        out.append({"partition": m["partition"], "runId": m["runId"], "meta": meta})
    return out
