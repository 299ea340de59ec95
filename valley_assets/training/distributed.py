"""The process group and FSDP setup the Trainer runs under, on GPUs and on CPU-only machines alike, and the ranks
and machines of the run as the launcher's environment describes them.

`accelerate launch --config_file accelerate/fsdp2.yaml` exports the FSDP settings as environment variables
(`ACCELERATE_USE_FSDP`, `FSDP_VERSION`, `FSDP_STATE_DICT_TYPE`, ...), and the Trainer's `Accelerator` turns them into
an FSDP plugin. Accelerate (1.16) does that only when the ranks sit on an accelerator device: on a CPU-only machine
`AcceleratorState` classifies the run as `MULTI_CPU` and silently drops the FSDP plugin, so the run would be plain
data-parallel: it would neither shard, nor write sharded checkpoints, nor gather the final model the way a GPU run
does. PyTorch's FSDP2 (`fully_shard`) itself runs on CPU over gloo.

`enable_fsdp_on_cpu` closes that gap before the Trainer is built: it initialises the accelerate state as `MULTI_CPU`
(gloo), then promotes it to FSDP with the plugin the launcher's environment describes. The Trainer is told to use
that state (`accelerator_config={"use_configured_state": True}`), so from there on the code path is the GPU one:
`fully_shard`, sharded checkpoints through `torch.distributed.checkpoint`, the full state dict gathered for the
final model. This is what the cluster rehearsal (pods with one CPU rank each) trains through.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch

# The Trainer's default (`ddp_timeout`): collectives may wait this long for a slow rank (e.g. rank 0 uploading the
# final model while the others wait at the last barrier).
PROCESS_GROUP_TIMEOUT = timedelta(seconds=1800)


def fsdp_requested() -> bool:
    """True when the launcher asked for FSDP (`accelerate launch` with an FSDP config)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def has_accelerator() -> bool:
    return torch.cuda.is_available()


def launched_distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ


def enable_fsdp_on_cpu(mixed_precision: str) -> bool:
    """On a CPU-only machine under an FSDP launch: set up accelerate's state as FSDP over gloo. Returns True if it did.

    `mixed_precision` must be what the Trainer will ask its Accelerator for ("bf16" or "no"); accelerate refuses a
    second, different value once the state exists.
    """
    if has_accelerator() or not fsdp_requested() or not launched_distributed():
        return False
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin, TorchDynamoPlugin

    AcceleratorState._reset_state(reset_partial_state=True)
    partial = PartialState(cpu=True, backend="gloo", timeout=PROCESS_GROUP_TIMEOUT)
    if partial.distributed_type != DistributedType.MULTI_CPU:
        raise RuntimeError(
            f"expected a MULTI_CPU process group on a machine without GPUs, accelerate set up {partial.distributed_type}"
        )
    plugin = FullyShardedDataParallelPlugin()  # reads FSDP_* from the environment `accelerate launch` exported
    state = AcceleratorState(
        mixed_precision=mixed_precision, cpu=True, fsdp_plugin=plugin, dynamo_plugin=TorchDynamoPlugin(),
        _from_accelerator=True,
    )
    # What AcceleratorState.__init__ does for accelerator devices, in both shared states.
    state.distributed_type = DistributedType.FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    state.fsdp_plugin = plugin
    if mixed_precision != "no":
        plugin.set_mixed_precision(mixed_precision)
    return True


def init_process_group(mixed_precision: str) -> bool:
    """Start the process group at the top of the run (a no-op for a single process).

    Returns True when the accelerate state was configured here for FSDP on CPU (`enable_fsdp_on_cpu`): the Trainer
    must then be told to use it (`accelerator_config={"use_configured_state": True}`). Otherwise the Trainer builds its
    accelerate state from the launcher's environment as usual and finds the process group already running.
    """
    if enable_fsdp_on_cpu(mixed_precision):
        return True
    if launched_distributed() and not torch.distributed.is_initialized():
        from accelerate.state import PartialState

        PartialState(cpu=not has_accelerator(), timeout=PROCESS_GROUP_TIMEOUT)
    return False


# --- ranks and machines of the run (torchrun / accelerate environment) ---------------------------------------------
def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def node_rank() -> int:
    """This machine's index in the run (torchrun's GROUP_RANK; accelerate passes --machine_rank through to it)."""
    return int(os.environ.get("GROUP_RANK", os.environ.get("NODE_RANK", "0")))


def num_nodes() -> int:
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    return max(1, world_size() // max(1, local_world))


def broadcast_from_rank0(value):
    """`value` as rank 0 has it, on every rank (picklable objects)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]
