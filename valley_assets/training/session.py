"""How an entrypoint talks to whoever started it: Dagster through dagster-pipes, or a person through a params file.

The same script runs in a local subprocess, a container or a Kubernetes pod. Launched by Dagster, the pipes context
(env var `DAGSTER_PIPES_CONTEXT`) carries the parameters in `extras`, and logs and the final metadata flow back as
pipes messages. Launched by hand (`python -m valley_assets.training.sft --params params.json`), the parameters come
from the file, logs go to stderr and the final metadata is printed as one JSON line on stdout.

Under torchrun/accelerate only global rank 0 opens the pipes channel (one writer, one materialization); the other
ranks read the same parameters from the injected context without writing messages.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster_pipes import (
    PipesDefaultContextLoader,
    PipesEnvVarParamsLoader,
    open_dagster_pipes,
)


def global_rank() -> int:
    return int(os.environ.get("RANK", "0"))


class EntrypointSession:
    """Parameters in, logs and one final metadata report out."""

    def __init__(self, extras: dict[str, Any], pipes=None, logger: logging.Logger | None = None):
        self.extras = extras
        self._pipes = pipes
        self._logger = logger or logging.getLogger("valley")
        self.reported: dict[str, Any] | None = None

    @property
    def is_reporter(self) -> bool:
        return global_rank() == 0

    def log(self, message: str) -> None:
        if not self.is_reporter:
            return
        if self._pipes is not None:
            self._pipes.log.info(message)
        else:
            self._logger.info(message)

    def report(self, metadata: dict[str, Any]) -> None:
        """The run's final metadata: a pipes asset materialization, or a JSON line on stdout."""
        if not self.is_reporter:
            return
        self.reported = metadata
        if self._pipes is not None:
            self._pipes.report_asset_materialization(metadata=metadata)
        else:
            print(json.dumps({"valley_result": metadata}, default=str), flush=True)


def _standalone_logger() -> logging.Logger:
    logger = logging.getLogger("valley")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    return logger


@contextmanager
def open_session(params_file: str | None) -> Iterator[EntrypointSession]:
    """Open the session: pipes when launched by Dagster, else the `--params` JSON file."""
    params_loader = PipesEnvVarParamsLoader()
    if params_loader.is_dagster_pipes_process():
        if global_rank() == 0:
            with open_dagster_pipes() as pipes:
                yield EntrypointSession(dict(pipes.extras), pipes=pipes)
        else:
            with PipesDefaultContextLoader().load_context(params_loader.load_context_params()) as data:
                extras = dict(data.get("extras") or {})
            yield EntrypointSession(extras, logger=_standalone_logger())
        return
    if params_file is None:
        raise SystemExit(
            "not launched by Dagster (no DAGSTER_PIPES_CONTEXT) and no --params file given; "
            "run `python -m valley_assets.training.sft --params params.json`"
        )
    with open(params_file) as fh:
        extras = json.load(fh)
    if not isinstance(extras, dict):
        raise SystemExit(f"--params {params_file} must hold a JSON object, got {type(extras).__name__}")
    yield EntrypointSession(extras, logger=_standalone_logger())
