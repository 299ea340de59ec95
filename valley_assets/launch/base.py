"""What every launcher shares: the interface, the error, and turning a pipes session's report into plain metadata.

    launcher.run(context, *, module, params, gpus=0, name) -> dict

runs `python -m <module>` somewhere (a local subprocess, a Kubernetes Job), hands it `params` as dagster-pipes
extras, streams its logs into the Dagster run, and returns the metadata of the materialization it reported (plain
Python values). A failure raises `LaunchError` naming the launch and the cause.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import dagster as dg


class LaunchError(RuntimeError):
    """A launched program failed, or could not be started."""


class Launcher(Protocol):
    def run(self, context, *, module: str, params: dict, gpus: int = 0, name: str) -> dict: ...


_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def validate_launch_args(module: str, params: dict, gpus: int, name: str) -> None:
    if not isinstance(module, str) or not _MODULE_RE.match(module):
        raise LaunchError(f"module {module!r} is not a dotted Python module name")
    if not isinstance(params, dict):
        raise LaunchError(f"params for {name!r} must be a dict, got {type(params).__name__}")
    if not isinstance(gpus, int) or gpus < 0:
        raise LaunchError(f"gpus for {name!r} must be a whole number >= 0, got {gpus!r}")
    if not isinstance(name, str) or not name.strip():
        raise LaunchError("name must be a non-empty string (it names the run's process/Job)")


def plain_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Dagster MetadataValue objects -> their plain values."""
    return {key: (value.value if isinstance(value, dg.MetadataValue) else value) for key, value in metadata.items()}


def reported_metadata(pipes_session, name: str) -> dict[str, Any]:
    """The metadata of the last materialization reported in a pipes session; error if none was reported."""
    results = [
        result for result in pipes_session.get_results(implicit_materializations=False)
        if isinstance(result, dg.MaterializeResult)
    ]
    if not results:
        raise LaunchError(f"{name}: the program finished without reporting a materialization through dagster-pipes")
    return plain_metadata(dict(results[-1].metadata or {}))
