"""Run an entrypoint as a local subprocess (the demo profile, and single-machine GPU boxes)."""

from __future__ import annotations

import sys

import dagster as dg
from dagster._core.errors import DagsterExecutionInterruptedError, DagsterPipesExecutionError
from pydantic import Field

from valley_assets.launch.base import TRAINING, LaunchError, launch_kind, reported_metadata, validate_launch_args


class LocalProcessLauncher(dg.ConfigurableResource):
    """`[sys.executable, "-m", module]` through `PipesSubprocessClient`; params arrive as pipes extras.

    gpus=0 hides every GPU (CUDA_VISIBLE_DEVICES=""), so CPU runs stay CPU runs on a GPU box; otherwise the program
    sees the first `gpus` devices. A distributed kind (training) with gpus>1 starts one process per GPU with torchrun
    (rank 0 reports through pipes); a single-process kind (generation: vLLM) runs as one process over all of them.
    """

    env: dict[str, str] = Field(default_factory=dict, description="extra environment for the subprocess")
    cwd: str | None = Field(default=None, description="working directory (default: the current one)")

    def command(self, module: str, gpus: int, kind: str = TRAINING) -> list[str]:
        if gpus <= 1 or not launch_kind(kind).distributed:
            return [sys.executable, "-m", module]
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}", "-m", module]

    def run(self, context, *, module: str, params: dict, gpus: int = 0, name: str, kind: str = TRAINING) -> dict:
        validate_launch_args(module, params, gpus, name, kind)
        visible = "" if gpus == 0 else ",".join(str(i) for i in range(gpus))
        client = dg.PipesSubprocessClient(env={**self.env, "CUDA_VISIBLE_DEVICES": visible}, cwd=self.cwd)
        command = self.command(module, gpus, kind)
        context.log.info(f"[{name}] launching {' '.join(command)}")
        try:
            invocation = client.run(context=context, command=command, extras=params)
        except DagsterExecutionInterruptedError:
            raise  # run cancelled: the client already signalled the subprocess
        except DagsterPipesExecutionError as exc:
            raise LaunchError(f"{name}: `python -m {module}` failed: {exc} (its stderr is in the run's compute logs)") from exc
        return reported_metadata(invocation, name)
