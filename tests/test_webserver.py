"""`dagster dev -w workspace.yaml` serves the code location: /server_info answers and GraphQL lists the assets with
their partitions definitions."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUERY = """{ assetNodes { assetKey { path } groupName partitionDefinition { type description
              dimensionTypes { name type } } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reset_signals():
    # A backgrounded `dagster dev` ignores SIGTERM unless the default handlers are restored before exec.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.setsid()


def _get(url: str, data: bytes | None = None, timeout: float = 10.0):
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dev")
    (tmp / "home").mkdir()
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp / "home"), "VALLEY_PROJECT_DIR": str(tmp),
           "VALLEY_PROFILE": "demo"}
    env.pop("VALLEY_CONFIG", None)
    dagster = Path(sys.executable).parent / "dagster"
    log = open(tmp / "dev.log", "w")
    proc = subprocess.Popen([str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_reset_signals)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                _get(f"{base}/server_info", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"dagster dev did not come up:\n{(tmp / 'dev.log').read_text()[-3000:]}")
                time.sleep(1)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_server_info(webserver):
    info = _get(f"{webserver}/server_info")
    assert info["dagster_webserver_version"]


def test_graphql_lists_assets_with_partitions(webserver):
    deadline = time.time() + 120
    while True:  # the code server may still be loading the location
        nodes = _get(f"{webserver}/graphql", json.dumps({"query": QUERY}).encode(), timeout=30)["data"]["assetNodes"]
        if nodes or time.time() > deadline:
            break
        time.sleep(2)
    by_name = {n["assetKey"]["path"][-1]: n for n in nodes}
    assert {"distill_subset", "sft_checkpoint", "lcb_scores", "valley_curve"} <= set(by_name)
    assert by_name["distill_subset"]["partitionDefinition"]["type"] == "DYNAMIC"
    dims = {d["name"]: d["type"] for d in by_name["sft_checkpoint"]["partitionDefinition"]["dimensionTypes"]}
    assert dims == {"data_size": "DYNAMIC", "student": "STATIC"}
    assert by_name["lcb_problems"]["partitionDefinition"]["type"] == "DYNAMIC"
    assert by_name["valley_curve"]["partitionDefinition"] is None
    assert by_name["sft_checkpoint"]["groupName"] == "training"
