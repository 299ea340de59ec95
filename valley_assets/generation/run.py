"""Generation entrypoint: `python -m valley_assets.generation.run`.

Two ways in, one code path:
- under Dagster Pipes (the lead's launcher: a local subprocess for the demo, a GPU Kubernetes Job in production), the
  parameters come in `context.extras`; progress goes to the Pipes log, and the summary comes back as materialization
  metadata (when the launch is for an asset) and as a custom message (always);
- without Dagster: `python -m valley_assets.generation.run --params params.json`, summary printed as JSON.

Parameters (`GenerationParams`): model_path, problems_path (JSONL of Problem records; local or fsspec URL), out_path
(local samples JSONL; appended, resumable), backend (`transformers`|`vllm`), prompt_id, n, chunk_size, sampling
(temperature, top_p, max_new_tokens, seed, stop), backend_options (see `load_backend`), max_chunks, limit_problems.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from valley_assets.generation.backends import SamplingConfig, load_backend
from valley_assets.generation.prompts import PROMPTS
from valley_assets.generation.samples import GenerationReport, generate_samples, read_problems

log = logging.getLogger("valley.generation")


class GenerationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_path: str
    problems_path: str
    out_path: str
    backend: Literal["transformers", "vllm"] = "transformers"
    prompt_id: str = "lcb-chat"
    n: int = Field(default=1, ge=1)
    chunk_size: int = Field(default=64, ge=1)
    sampling: dict[str, Any] = Field(default_factory=dict)
    backend_options: dict[str, Any] = Field(default_factory=dict)
    max_chunks: int | None = Field(default=None, ge=1)
    limit_problems: int | None = Field(default=None, ge=1, description="only the first N problems (smoke runs)")


def parse_params(raw: Mapping[str, Any]) -> tuple[GenerationParams, SamplingConfig]:
    """Validate the parameters; errors name the offending key."""
    try:
        params = GenerationParams.model_validate(dict(raw))
    except ValidationError as exc:
        raise ValueError(f"invalid generation parameters:\n{exc}") from None
    if params.prompt_id not in PROMPTS:
        raise ValueError(f"invalid generation parameters: unknown prompt_id {params.prompt_id!r}; "
                         f"registered: {sorted(PROMPTS)}")
    return params, SamplingConfig.from_mapping(params.sampling)


def run_generation(raw_params: Mapping[str, Any], *, backend=None, logger: logging.Logger | None = None):
    """Load problems and the backend, generate, return the report. `backend` overrides loading (tests)."""
    logger = logger or log
    params, sampling = parse_params(raw_params)
    problems = read_problems(params.problems_path)
    if params.limit_problems is not None:
        problems = problems[: params.limit_problems]
    if not problems:
        raise ValueError(f"no problems in {params.problems_path}")
    if backend is None:
        logger.info(f"loading {params.backend} backend for {params.model_path}")
        backend = load_backend(params.backend, params.model_path, options=params.backend_options)

    def progress(r: GenerationReport) -> None:
        logger.info(
            f"chunk {r.chunks_run}: {r.n_existing + r.n_generated}/{r.n_expected} samples, "
            f"{r.output_tokens_per_s:.1f} output tokens/s, finish reasons {r.finish_reasons}"
        )

    report = generate_samples(
        backend, problems, n=params.n, out_path=params.out_path, chunk_size=params.chunk_size,
        prompt_id=params.prompt_id, sampling=sampling, max_chunks=params.max_chunks, on_chunk=progress,
    )
    summary = report.to_dict()
    summary.update(model_path=params.model_path, sampling=sampling.to_dict())
    return summary


def pipes_metadata(summary: Mapping[str, Any]) -> dict:
    """Summary as Pipes metadata: scalars as they are, dicts typed as JSON (Pipes rejects untyped dicts)."""
    meta = {}
    for key, value in summary.items():
        if isinstance(value, (dict, list)):
            meta[key] = {"raw_value": value, "type": "json"}
        else:
            meta[key] = value
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m valley_assets.generation.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", help="JSON file with the parameters (run without Dagster)")
    args = parser.parse_args(argv)
    if args.params:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        with open(args.params, encoding="utf-8") as f:
            raw = json.load(f)
        summary = run_generation(raw)
        print(json.dumps(summary, indent=2))
        return 0

    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

    if not PipesEnvVarParamsLoader().is_dagster_pipes_process():
        parser.error("not launched by Dagster Pipes; pass --params params.json to run standalone")
    with open_dagster_pipes() as pipes:
        summary = run_generation(pipes.extras, logger=pipes.log)
        pipes.report_custom_message(summary)
        if pipes.is_asset_step:
            pipes.report_asset_materialization(metadata=pipes_metadata(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
