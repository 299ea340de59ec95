"""The Dagster GraphQL the UI sends, shared by the tests that drive a running webserver (tests/ui, tests/automation,
the rehearsal's driver), the polling helper they wait with and the failure
report of a run. Each query selects what any of them reads."""

from __future__ import annotations

import time
from collections.abc import Callable

MATERIALIZATIONS = """query($key: AssetKeyInput!) { assetOrError(assetKey: $key) { __typename
  ... on Asset { assetMaterializations(limit: 500) { partition runId timestamp
    metadataEntries { label __typename ... on TextMetadataEntry { text } ... on JsonMetadataEntry { jsonString }
      ... on BoolMetadataEntry { boolValue } ... on IntMetadataEntry { intValue }
      ... on FloatMetadataEntry { floatValue } ... on MarkdownMetadataEntry { mdStr } } } } } }"""
RUNS_BY_TAG = """query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}, limit: 500) { __typename
  ... on Runs { results { runId jobName status tags { key value } assetSelection { path } } } } }"""
RUN_MESSAGES = """query($id: ID!) { logsForRun(runId: $id, limit: 2000) { __typename ... on EventConnection {
  events { __typename ... on MessageEvent { message } } } } }"""
RUN_ERRORS = """query($id: ID!) { logsForRun(runId: $id) { __typename ... on EventConnection { events { __typename
  ... on ExecutionStepFailureEvent { stepKey error { message causes { message } } }
  ... on RunFailureEvent { message } ... on EngineEvent { message } } } } }"""
SENSOR_TICKS = """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { __typename
  ... on Sensor { sensorState { status ticks(limit: 20) { status cursor timestamp } } } } }"""
PARTITION_KEYS = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode { partitionKeys } } }"""
ADD_PARTITION = """mutation($r: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $r, partitionsDefName: $name, partitionKey: $key) { __typename
    ... on AddDynamicPartitionSuccess { partitionKey } ... on DuplicateDynamicPartitionError { partitionName }
    ... on UnauthorizedError { message } ... on PythonError { message } } }"""
LAUNCH_BACKFILL = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) { __typename
  ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } ... on InvalidSubsetError { message }
  ... on UnauthorizedError { message } } }"""
BACKFILL_STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { status error { message } runs(limit: 100) { runId status }
    assetBackfillData { assetBackfillStatuses { ... on AssetPartitionsStatusCounts { assetKey { path }
      numPartitionsTargeted numPartitionsMaterialized numPartitionsFailed }
      ... on UnpartitionedAssetStatus { assetKey { path } materialized failed } } } } } }"""


def wait_for(what: str, check: Callable[[], object], server, timeout_s: float, every_s: float = 2.0,
             log_chars: int = 3000):
    """Poll `check` until it returns something truthy; on timeout fail with what was awaited and the server's log."""
    deadline = time.time() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}\n--- dagster dev log ---\n"
                                 f"{server.log_tail(log_chars)}")
        time.sleep(every_s)


def run_errors(server, run_id: str) -> list[str]:
    events = server.graphql(RUN_ERRORS, {"id": run_id})["logsForRun"].get("events", [])
    out = []
    for e in events:
        if e["__typename"] == "ExecutionStepFailureEvent":
            err = e.get("error") or {}
            causes = " | ".join(c["message"] for c in err.get("causes") or [])
            out.append(f"{e['stepKey']}: {err.get('message', '')}{' caused by ' + causes if causes else ''}")
        elif e["__typename"] == "RunFailureEvent":
            out.append(f"run: {e.get('message')}")
    return out
