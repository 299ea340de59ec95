"""Small helpers for tests that run servers (dagster dev, the rehearsal's deployment): a free port, a child process
that can be stopped with SIGTERM, JSON over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LOCATION_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reset_signals():
    # A backgrounded `dagster dev` ignores SIGTERM unless the default handlers are restored before exec; its own
    # session lets the whole tree (webserver, daemon, code server, runs) be stopped with one killpg.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.setsid()


def http_json(url: str, data: bytes | None = None, timeout: float = 10.0):
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:  # GraphQL answers 4xx/5xx with {"errors": [...]}: show them
        body = err.read().decode(errors="replace")
        raise AssertionError(f"{url} answered {err.code}: {body[:3000]}") from None


def wait_for_code_location(graphql: Callable[..., dict], *, check_alive: Callable[[], None],
                           log_tail: Callable[[], str], timeout_s: float, retry_load_errors: bool) -> None:
    """Poll the webserver until every code location is loaded. `check_alive` raises when a served process died.
    A load error fails at once, unless `retry_load_errors` (a code server in another container may still be
    starting: the workspace is reloaded until the deadline)."""
    deadline = time.time() + timeout_s
    while True:
        check_alive()
        try:
            entries = graphql(LOCATION_QUERY, timeout=5)["workspaceOrError"]["locationEntries"]
        except (OSError, AssertionError):
            entries = []
        errors = [f"{e['name']}: {e['locationOrLoadError']['message']}" for e in entries
                  if (e["locationOrLoadError"] or {}).get("__typename") == "PythonError"]
        if errors and (not retry_load_errors or time.time() > deadline):
            raise RuntimeError(f"code location failed to load: {errors}\n{log_tail()}")
        if entries and all(e["loadStatus"] == "LOADED" and (e["locationOrLoadError"] or {}).get("__typename")
                           == "RepositoryLocation" for e in entries):
            return
        if errors:
            graphql("mutation { reloadWorkspace { __typename } }")
        if time.time() > deadline:
            raise RuntimeError(f"the code location did not load in {timeout_s:.0f}s:\n{log_tail()}")
        time.sleep(1)


@contextmanager
def connection_trap(host: str = "127.0.0.1") -> Iterator[tuple[int, list]]:
    """A listening socket on `host` that records every connection made to it while the block runs; yields its port
    and the list of accepted connections (containment tests assert it stays empty)."""
    server = socket.socket()
    server.bind((host, 0))
    server.listen(8)
    server.settimeout(0.2)
    connections: list = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                connections.append(server.accept())
            except OSError:
                pass

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield server.getsockname()[1], connections
    finally:
        stop.set()
        acceptor.join()
        server.close()
