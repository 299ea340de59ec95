"""Scale-out of the kubernetes grading backend on the kube stand-in: samples/s against the number of shards.

The same samples (CPU-bound AC programs, ~0.25 s of CPU each) graded by grading Jobs of 1, 2, 4
shards on the stand-in (pods = containers of valley-sandbox:latest on this machine's engine, gvisor class played by
runc). On this machine the pods share its cores, so the figure flattens at the core count; on a node pool each
shard has its own CPU.

    python benchmarks/grading_scaleout.py [--shards 1,2,4] [--problems 12] [--samples 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.rehearsal.kube_standin import REHEARSAL_RUNTIME_CLASSES, KubeStandin  # noqa: E402
from valley_assets.grading.kubernetes_backend import KubernetesGradingSettings, grade_on_kubernetes  # noqa: E402

WORK = "n = int(input())\ns = 0\nfor i in range(n):\n    s += i * i % 7\nprint(s)\n"


def problem(qid: str) -> dict:
    n = 1_000_000  # ~0.2-0.3 s of CPU in CPython per test
    expected = str(sum(i * i % 7 for i in range(n)))
    cases = [{"input": f"{n}\n", "output": expected + "\n", "testtype": "stdin"}]
    return {"question_id": qid, "difficulty": "easy", "public_test_cases": json.dumps(cases),
            "private_test_cases": "[]", "metadata": "{}"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", default="1,2,4")
    parser.add_argument("--problems", type=int, default=12)
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    problems = [problem(f"q{i:03d}") for i in range(args.problems)]
    generations = [{"question_id": p["question_id"], "code_list": [WORK] * args.samples} for p in problems]
    total = args.problems * args.samples
    with KubeStandin(REHEARSAL_RUNTIME_CLASSES, network_prefix="valley-standin-bench", pod_backoff_s=1.0,
                     node_capacity={"cpu": "64", "memory": "64Gi"}, pod_pids_limit=256) as cluster:
        for shards in (int(s) for s in args.shards.split(",")):
            settings = KubernetesGradingSettings(
                samples_per_shard=-(-total // shards), max_pods=shards, cpu="1", memory="1Gi", poll_interval_s=0.5,
                in_cluster=False, kubeconfig_file=str(cluster.kubeconfig_host))
            started = time.perf_counter()
            out = grade_on_kubernetes(problems, generations, settings=settings, timeout_s=6.0, memory_mb=256)
            wall = time.perf_counter() - started
            assert out["summary"]["verdicts"]["AC"] == total, out["summary"]["verdicts"]
            print(json.dumps({"shards": shards, "samples": total, "wall_s": round(wall, 2),
                              "samples_per_s": round(total / wall, 2)}), flush=True)


if __name__ == "__main__":
    main()
