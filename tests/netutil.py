"""Small helpers for tests that run servers (dagster dev, the rehearsal's deployment): a free port, a child process
that can be stopped with SIGTERM, JSON over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.error
import urllib.request


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
