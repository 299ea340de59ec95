"""Generation entrypoint: `python -m valley_assets.generation.run`.

It follows the contract of every launched module (`valley_assets.entrypoint`): launched by Dagster (a local
subprocess for the demo, a GPU Kubernetes Job in production), the parameters are the dagster-pipes extras, progress
goes to the pipes log and the summary comes back as the materialization; by hand, `--params params.json`, logs on
stderr and one `{"valley_result": ...}` line on stdout.

Parameters (`valley_assets.generation.params.GenerationParams`): model_path, problems_path (JSONL of Problem records;
local or fsspec URL), out_path (samples JSONL; appended, resumable), backend (`transformers`|`vllm`), prompt_id, n,
chunk_size, sampling (temperature, top_p, max_new_tokens, seed, stop), backend_options (see `load_backend`),
max_chunks, limit_problems.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any

from valley_assets.entrypoint import EntrypointSession, run_entrypoint
from valley_assets.entrypoint import parse_params as parse_entrypoint_params
from valley_assets.generation.backends import load_backend
from valley_assets.generation.interface import SamplingConfig
from valley_assets.generation.params import GenerationParams
from valley_assets.generation.samples import GenerationReport, generate_samples, read_problems

log = logging.getLogger("valley.generation")

MODULE = "valley_assets.generation.run"


def parse_params(raw: Mapping[str, Any] | GenerationParams) -> tuple[GenerationParams, SamplingConfig]:
    """Validate the parameters (`ParamsError` naming the field); the sampling settings as a `SamplingConfig`."""
    params = parse_entrypoint_params(GenerationParams, raw)
    return params, params.sampling_config()


def run_generation(raw_params: Mapping[str, Any] | GenerationParams, *, backend=None,
                   log_line: Callable[[str], None] | None = None) -> dict:
    """Load problems and the backend, generate, return the summary. `backend` overrides loading (tests)."""
    say = log_line or log.info
    params, sampling = parse_params(raw_params)
    problems = read_problems(params.problems_path)
    if params.limit_problems is not None:
        problems = problems[: params.limit_problems]
    if not problems:
        raise ValueError(f"no problems in {params.problems_path}")
    if backend is None:
        say(f"loading {params.backend} backend for {params.model_path}")
        backend = load_backend(params.backend, params.model_path, options=params.backend_options)

    def progress(r: GenerationReport) -> None:
        say(
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


def run(params: GenerationParams, session: EntrypointSession) -> dict:
    return run_generation(params, log_line=session.log)


def main(argv: list[str] | None = None) -> int:
    return run_entrypoint(MODULE, __doc__, GenerationParams, run, argv)


if __name__ == "__main__":
    sys.exit(main())
