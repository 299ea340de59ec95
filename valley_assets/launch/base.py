"""What every launcher shares: the interface, the kinds of launch, the error, and turning a pipes session's report into
plain metadata.

    launcher.run(context, *, module, params, gpus=0, name, kind="training") -> dict

runs `python -m <module>` somewhere (a local subprocess, a Kubernetes Job), hands it `params` as dagster-pipes
extras, streams its logs into the Dagster run, and returns the metadata of the materialization it reported (plain
Python values). A failure raises `LaunchError` naming the launch and the cause.

`kind` says what sort of program it is, which decides how it is started and what it is given:
- `training`: a distributed program, one process per GPU under a torch/accelerate launcher (SFT).
- `generation`: one process that drives every GPU it is given itself (vLLM's tensor parallelism starts its own
  workers; N launcher processes would start N engines), so it is never wrapped and never spans nodes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

import dagster as dg


class LaunchError(RuntimeError):
    """A launched program failed, or could not be started."""


@dataclass(frozen=True)
class LaunchKind:
    name: str
    distributed: bool  # one process per GPU under a torch/accelerate launcher; else one process sees all its GPUs


TRAINING = "training"
GENERATION = "generation"
LAUNCH_KINDS = {TRAINING: LaunchKind(TRAINING, distributed=True), GENERATION: LaunchKind(GENERATION, distributed=False)}


def launch_kind(kind: str) -> LaunchKind:
    try:
        return LAUNCH_KINDS[kind]
    except (KeyError, TypeError):
        raise LaunchError(f"unknown launch kind {kind!r}; known kinds: {sorted(LAUNCH_KINDS)}") from None


class Launcher(Protocol):
    def run(self, context, *, module: str, params: dict, gpus: int = 0, name: str, kind: str = TRAINING) -> dict: ...


_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def validate_launch_args(module: str, params: dict, gpus: int, name: str, kind: str = TRAINING) -> LaunchKind:
    if not isinstance(module, str) or not _MODULE_RE.match(module):
        raise LaunchError(f"module {module!r} is not a dotted Python module name")
    if not isinstance(params, dict):
        raise LaunchError(f"params for {name!r} must be a dict, got {type(params).__name__}")
    if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 0:
        raise LaunchError(f"gpus for {name!r} must be a whole number >= 0, got {gpus!r}")
    if not isinstance(name, str) or not name.strip():
        raise LaunchError("name must be a non-empty string (it names the run's process/Job)")
    return launch_kind(kind)


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
