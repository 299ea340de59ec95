"""The rehearsal's training shape for real: the command of a 2-node x 1-rank Job, as the launcher builds it, run as
two local "pods" (the kubelet's `$(VAR)` expansion from each pod's env, NODE_RANK = the completion index,
MASTER_ADDR = rank 0's pod) under the production accelerate/FSDP2 config on CPU. Both ranks must join one gloo
process group of world size 2 with ranks equal to their node index, and see the FSDP2 settings of the config.
(The SFT entrypoint itself under this command: tests/training/test_sft_fsdp_cpu.py.)"""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from valley_assets.launch.job_spec import INDEX_ANNOTATION, build_job, to_manifest
from valley_assets.launch.kubernetes import KubernetesJobLauncher

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kubelet_expand(word: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of `$(VAR)` in a container's command: defined variables are replaced, `$$` escapes,
    anything else stays as written."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), word)


def pod_env(container: dict, index: int, overrides: dict[str, str]) -> dict[str, str]:
    """The container's env as the kubelet makes it for completion `index` (fieldRef to the index annotation)."""
    env = {}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == f"metadata.annotations['{INDEX_ANNOTATION}']":
            env[var["name"]] = str(index)
    return env | overrides


@pytest.mark.slow
def test_two_pods_of_one_rank_rendezvous_through_the_launch_command(tmp_path):
    launcher = KubernetesJobLauncher(image="valley-trainer:rehearsal", gpus_per_node=1,
                                     checkpoint_pvc="valley-checkpoints")
    spec = launcher.job_spec(SimpleNamespace(run_id="r"), module="rank_probe", gpus=2, name="sft", env={},
                             kind="training")
    job = to_manifest(build_job(spec))
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert job["spec"]["completions"] == 2
    port = free_port()
    procs = []
    for index in range(job["spec"]["completions"]):
        # Pods resolve `<job>-0.<job>` through the headless Service; two local processes share 127.0.0.1.
        env = pod_env(container, index, {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
        command = [kubelet_expand(word, env) for word in container["command"]]
        assert command[0] == "accelerate"
        command[0] = str(Path(sys.executable).parent / "accelerate")
        run_env = {**os.environ, **env, "PROBE_DIR": str(tmp_path), "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
                   "PYTHONPATH": f"{REPO}:{Path(__file__).parent}"}
        log = open(tmp_path / f"pod{index}.log", "w")
        procs.append(subprocess.Popen(command, cwd=REPO, env=run_env, stdout=log, stderr=subprocess.STDOUT))
    for index, proc in enumerate(procs):
        try:
            code = proc.wait(timeout=300)
        finally:
            for other in procs:
                if other.poll() is None and proc.returncode not in (None, 0):
                    other.kill()
        assert code == 0, (tmp_path / f"pod{index}.log").read_text()[-3000:]
    config = yaml.safe_load((REPO / launcher.accelerate_config).read_text())
    views = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for node, view in enumerate(views):
        assert view["rank"] == node and view["world"] == 2 and view["LOCAL_RANK"] == "0"
        assert view["GROUP_RANK"] == str(node)  # torch's node rank: accelerate's --machine_rank $(NODE_RANK)
        assert view["sum_of_rank_plus_one"] == 3.0  # the all-reduce crossed both "pods"
        assert view["ACCELERATE_USE_FSDP"] == "true" and view["FSDP_VERSION"] == "2"
        assert view["FSDP_STATE_DICT_TYPE"] == config["fsdp_config"]["fsdp_state_dict_type"]
