"""Shared fixtures: `dagster dev` as a context manager, for the tests that talk to a real webserver and daemon
(tests/test_webserver.py, tests/ui/)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from netutil import free_port, http_json, reset_signals, wait_for_code_location

ROOT = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).parent / "dagster"
class DagsterDev:
    """`dagster dev -w workspace.yaml` on `home` (webserver, daemon, code server), from the repository root.

    `with DagsterDev(home, log, env=...) as server:` waits until /server_info answers and the code location is
    loaded (or fails with the end of the log), and stops the whole process group on exit.
    """

    def __init__(self, home: Path, log_path: Path, *, env: Mapping[str, str], startup_timeout_s: float = 240):
        self.home, self.log_path, self.startup_timeout_s = Path(home), Path(log_path), startup_timeout_s
        self.env = {**os.environ, **env, "DAGSTER_HOME": str(home)}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def get(self, path: str, timeout: float = 10.0):
        return http_json(self.base + path, timeout=timeout)

    def graphql(self, query: str, variables: Mapping | None = None, timeout: float = 60.0) -> dict:
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        answer = http_json(f"{self.base}/graphql", body, timeout=timeout)
        if answer.get("errors"):
            raise AssertionError(f"GraphQL errors: {answer['errors']}")
        return answer["data"]

    def __enter__(self) -> DagsterDev:
        self.home.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(DAGSTER), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=reset_signals)
        try:
            self._wait_until_loaded()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_until_loaded(self) -> None:
        def check_alive():
            if self.proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {self.proc.returncode}:\n{self.log_tail()}")

        wait_for_code_location(self.graphql, check_alive=check_alive, log_tail=self.log_tail,
                               timeout_s=self.startup_timeout_s, retry_load_errors=False)

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            try:  # whatever of the group outlived dagster dev (a run's subprocess, a stuck code server)
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="session")
def dagster_dev():
    """The DagsterDev class (use it as a context manager inside a module-scoped fixture)."""
    return DagsterDev
