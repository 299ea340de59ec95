"""The one contract of every launched module (`python -m valley_assets.training.sft`, `...generation.run`).

- Parameters: a pydantic model per entrypoint (`EntrypointParams` subclass: `training.params.SFTParams`,
  `generation.params.GenerationParams`). The asset builds it and hands `model_dump(mode="json")` to
  `launcher.run(context, module=, params=, ...)`; the script parses the same model (`parse_params`), so a wrong or
  missing field fails before any work with a `ParamsError` naming the field.
- Transport: launched by Dagster, the parameters are the dagster-pipes `extras` (env var `DAGSTER_PIPES_CONTEXT`),
  logs are pipes log messages and the result is one asset materialization (a custom message when the launching step
  is an op, not an asset). Launched by hand (`python -m <module> --params params.json`), the parameters come from the
  file, logs go to stderr, and the result is printed as one JSON line `{"valley_result": {...}}` on stdout.
- Ranks: under torchrun/accelerate only global rank 0 opens the pipes channel (one writer, one materialization);
  the other ranks read the same parameters from the injected context and write no messages.

Worker side: imports dagster_pipes (the light client package), never dagster or the study config.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from dagster_pipes import PipesDefaultContextLoader, PipesEnvVarParamsLoader, open_dagster_pipes
from pydantic import BaseModel, ConfigDict, ValidationError


class ParamsError(ValueError):
    """Entrypoint parameters that are missing or malformed; the message names the field."""


class EntrypointParams(BaseModel):
    """Base of every entrypoint's parameters: unknown fields are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


ParamsT = TypeVar("ParamsT", bound=EntrypointParams)


def parse_params(model: type[ParamsT], raw: Mapping[str, Any] | ParamsT) -> ParamsT:
    """`raw` validated as `model`; a `ParamsError` listing each bad field (dotted path) and why."""
    if isinstance(raw, model):
        return raw
    if not isinstance(raw, Mapping):
        raise ParamsError(f"{model.__name__}: parameters must be a JSON object, got {type(raw).__name__}")
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '<parameters>'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ParamsError(f"invalid {model.__name__}: {problems}") from None


def global_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def pipes_metadata(summary: Mapping[str, Any]) -> dict:
    """A summary as pipes metadata: scalars as they are, dicts and lists typed as JSON (pipes reads an untyped dict
    as a `{raw_value, type}` pair and rejects any other)."""
    return {key: ({"raw_value": value, "type": "json"} if isinstance(value, (dict, list)) else value)
            for key, value in summary.items()}


class EntrypointSession:
    """Logs and one final report, to Dagster through pipes or to a person on stderr/stdout; silent off rank 0."""

    def __init__(self, extras: Mapping[str, Any], pipes=None, logger: logging.Logger | None = None):
        self.extras = dict(extras)
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

    def report(self, summary: dict[str, Any]) -> None:
        """The run's result: a materialization (asset steps; a custom message from an op) over pipes, or a JSON line."""
        if not self.is_reporter:
            return
        self.reported = summary
        if self._pipes is not None:
            if self._pipes.is_asset_step:
                self._pipes.report_asset_materialization(metadata=pipes_metadata(summary))
            else:  # an op: no asset to materialize, the summary still reaches the launching step
                self._pipes.report_custom_message(summary)
        else:
            print(json.dumps({"valley_result": summary}, default=str), flush=True)


def _standalone_logger() -> logging.Logger:
    logger = logging.getLogger("valley")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    return logger


@contextmanager
def open_session(params_file: str | None, module: str) -> Iterator[EntrypointSession]:
    """Pipes when launched by Dagster, else the `--params` JSON file."""
    params_loader = PipesEnvVarParamsLoader()
    if params_loader.is_dagster_pipes_process():
        if global_rank() == 0:
            with open_dagster_pipes() as pipes:
                yield EntrypointSession(pipes.extras, pipes=pipes)
        else:
            with PipesDefaultContextLoader().load_context(params_loader.load_context_params()) as data:
                extras = dict(data.get("extras") or {})
            yield EntrypointSession(extras, logger=_standalone_logger())
        return
    if params_file is None:
        raise SystemExit(f"not launched by Dagster (no DAGSTER_PIPES_CONTEXT) and no --params file given; "
                         f"run `python -m {module} --params params.json`")
    with open(params_file, encoding="utf-8") as fh:
        extras = json.load(fh)
    if not isinstance(extras, dict):
        raise SystemExit(f"--params {params_file} must hold a JSON object, got {type(extras).__name__}")
    yield EntrypointSession(extras, logger=_standalone_logger())


def run_entrypoint(module: str, doc: str | None, params_model: type[ParamsT],
                   work: Callable[[ParamsT, EntrypointSession], dict[str, Any]], argv: list[str] | None = None) -> int:
    """Parse the command line, open the session, validate the parameters, run `work`, report what it returns."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", help=f"JSON file with the {params_model.__name__}, when not launched by Dagster")
    args, _ = parser.parse_known_args(argv)  # launchers may add their own flags
    with open_session(args.params, module) as session:
        params = parse_params(params_model, session.extras)
        session.report(work(params, session))
    return 0
