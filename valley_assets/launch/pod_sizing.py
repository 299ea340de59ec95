"""What the pods of each kind of launch request: the launcher's per-kind settings (`PodResources`), each kind's
defaults (`KIND_RESOURCES`) and one pod's resolved requests (`pod_sizing`).
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
from pydantic import ConfigDict, Field, model_validator

from valley_assets.launch.base import GENERATION, TRAINING
from valley_assets.launch.quantity import check_quantity, scale_quantity


# --- what each kind of launch asks for ----------------------------------------------------------------------------
class PodResources(dg.Config):
    """What the pods of one kind of launch request (launcher fields `training` and `generation`). A field left unset
    keeps the kind's default (`KIND_RESOURCES`), so a profile changes only what it names.

    A pod with GPUs requests `cpu_per_gpu` and `memory_per_gpu` times its GPUs (memory is also its limit); a pod
    without GPUs (CPU work) requests `cpu` and `memory`. `/dev/shm` is a memory-backed volume, so it counts against
    the pod's memory: keep `shm_size` below it.
    """

    image: str | None = Field(default=None, description="image of this kind's Jobs; unset: the launcher's `image`")
    cpu_per_gpu: str | None = Field(default=None, description="CPU request per GPU of the pod, e.g. '8'")
    memory_per_gpu: str | None = Field(default=None, description="memory request (and limit) per GPU, e.g. '100Gi'")
    cpu: str | None = Field(default=None, description="CPU request of a pod with no GPU")
    memory: str | None = Field(default=None, description="memory request (and limit) of a pod with no GPU")
    shm_size: str | None = Field(default=None, description="size of /dev/shm (memory-backed)")

    model_config = ConfigDict(extra="forbid")  # a misspelt key must not silently keep the default

    @model_validator(mode="after")
    def _quantities(self) -> PodResources:
        for name in ("cpu_per_gpu", "memory_per_gpu", "cpu", "memory", "shm_size"):
            value = getattr(self, name)
            if value is not None:
                check_quantity(value, name)
        return self


# An H100 node (a3-highgpu-8g: 208 vCPU / 1872 GiB; p5.48xlarge: 192 vCPU / 2048 GiB) split per GPU, with headroom
# for the system. Training (FSDP, dataloader workers, CPU-RAM-efficient loading of the full model on rank 0) takes
# the most; one vLLM engine per GPU needs the weights once in host memory plus its swap space.
KIND_RESOURCES: dict[str, dict[str, str]] = {
    TRAINING: {"cpu_per_gpu": "8", "memory_per_gpu": "100Gi", "cpu": "4", "memory": "16Gi", "shm_size": "64Gi"},
    GENERATION: {"cpu_per_gpu": "8", "memory_per_gpu": "64Gi", "cpu": "4", "memory": "16Gi", "shm_size": "16Gi"},
}


@dataclass(frozen=True)
class PodSizing:
    cpu: str
    memory: str
    shm_size: str


def pod_sizing(resources: dict[str, str | None], gpus_per_pod: int, kind: str) -> PodSizing:
    """The requests of one pod of a `kind` launch with `gpus_per_pod` GPUs, from its resolved resources."""
    where = f"launcher.{kind}"
    for name, value in resources.items():
        if name != "image" and value is not None:
            check_quantity(value, f"{where}.{name}")
    if gpus_per_pod:
        return PodSizing(cpu=scale_quantity(resources["cpu_per_gpu"], gpus_per_pod, f"{where}.cpu_per_gpu"),
                         memory=scale_quantity(resources["memory_per_gpu"], gpus_per_pod, f"{where}.memory_per_gpu"),
                         shm_size=resources["shm_size"])
    return PodSizing(cpu=resources["cpu"], memory=resources["memory"], shm_size=resources["shm_size"])
