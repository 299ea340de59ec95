"""What a training pod's program sees under the launcher's accelerate command (tests/launch/test_rendezvous.py):
the torch distributed env, the FSDP settings accelerate exported from the config, and a gloo all-reduce over every
rank. Rank r writes its view to $PROBE_DIR/rank<r>.json."""

import json
import os
from pathlib import Path

import torch
import torch.distributed as dist


def main() -> None:
    dist.init_process_group("gloo")  # MASTER_ADDR/PORT, RANK, WORLD_SIZE from the launcher
    rank, world = dist.get_rank(), dist.get_world_size()
    total = torch.tensor([float(rank + 1)])
    dist.all_reduce(total)
    view = {key: os.environ.get(key) for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
                                                  "MASTER_PORT", "ACCELERATE_USE_FSDP", "FSDP_VERSION",
                                                  "FSDP_STATE_DICT_TYPE", "ACCELERATE_MIXED_PRECISION")}
    view |= {"rank": rank, "world": world, "sum_of_rank_plus_one": total.item()}
    Path(os.environ["PROBE_DIR"], f"rank{rank}.json").write_text(json.dumps(view))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
