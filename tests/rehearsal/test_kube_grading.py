"""The kubernetes grading backend for real on the kube stand-in (tests/rehearsal/kube_standin): the rehearsal
profile's grader (build_resources(rehearsal.yaml)) creates an Indexed Job of sandbox-image pods, feeds each pod its
shard through `attach`, and reads the verdicts from the pods' logs.

- 3 shards, one pod SIGKILLed mid-way: the Job replaces it, the replacement is sent only what is still missing, and
  the verdicts (and the samples log) equal the local Docker grader's on the same samples;
- the containment attacks of tests/grading/test_containment.py in the pod's shape: the stand-in starts each pod
  with its securityContext as container flags (checked on the container) under k8s/grader-networkpolicy.yaml (no
  network); every attack ends without AC, and a server on the host is never reached.

Needs a Docker engine and the sandbox image (valley-sandbox:latest); skipped with the reason when missing, failed
instead under VALLEY_REQUIRE_DOCKER=1 (CI).
"""

import importlib.util
import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.netutil import connection_trap
from valley_assets.config import PROFILES_DIR, load_study_config
from valley_assets.grading import grade
from valley_assets.grading.backends import docker_available
from valley_assets.grading.kubernetes_backend import GRADER_UID, KubernetesGradingSettings, grade_on_kubernetes

from .kube_standin import REHEARSAL_RUNTIME_CLASSES, KubeStandin

pytestmark = [pytest.mark.rehearsal]
NS = "valley"
REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 1.0
MEMORY_MB = 256


def _problem(qid: str, tests: list[tuple[str, str]]) -> dict:
    cases = [{"input": i, "output": o, "testtype": "stdin"} for i, o in tests]
    return {"question_id": qid, "difficulty": "easy", "public_test_cases": json.dumps(cases[:1]),
            "private_test_cases": json.dumps(cases[1:]), "metadata": "{}"}


@pytest.fixture(scope="module")
def cluster():
    ok, why = docker_available()
    if not ok:
        if os.environ.get("VALLEY_REQUIRE_DOCKER") == "1":
            pytest.fail(f"VALLEY_REQUIRE_DOCKER=1 but {why}")
        pytest.skip(why)
    # podPidsLimit 256, as k8s/README.md asks of the grading node pool: without it a fork bomb in a runc pod takes
    # the node's process table (the pod spec cannot bound it; gVisor bounds it inside its sandbox).
    with KubeStandin(REHEARSAL_RUNTIME_CLASSES, network_prefix="valley-standin-grading", pod_backoff_s=1.0,
                     node_capacity={"cpu": "4", "memory": "16Gi"}, pod_pids_limit=256) as standin:
        (policy,) = [d for d in yaml.safe_load_all((REPO / "k8s" / "grader-networkpolicy.yaml").read_text()) if d]
        standin.create_network_policy(NS, policy)
        yield standin


def rehearsal_grader(cluster: KubeStandin):
    """The rehearsal profile's grader resource, pointed at this stand-in from the host (the rehearsal's run pods use
    in-cluster config instead) with a 1 s limit so TLEs are quick."""
    from valley_assets.resources import build_resources

    cfg = load_study_config(PROFILES_DIR / "rehearsal.yaml", overrides={"grading": {
        "timeout_s": TIMEOUT_S, "memory_mb": MEMORY_MB,
        "kubernetes": {"in_cluster": False, "kubeconfig_file": str(cluster.kubeconfig_host), "poll_interval_s": 0.5}}})
    grader = build_resources(cfg)["grader"]
    assert grader.backend == "kubernetes" and grader.kubernetes.runtime_class_name == "gvisor"
    return grader


def test_a_three_shard_grading_job_survives_a_killed_pod_with_the_local_verdicts(cluster, tmp_path, caplog):
    tests = [(f"{n}\n", f"{2 * n}\n") for n in range(1, 4)]
    programs = [
        "print(2 * int(input()))",                                   # AC
        "import time\ntime.sleep(0.4)\nprint(2 * int(input()))",    # AC, slowly: the pod is killed meanwhile
        "print(int(input()))",                                       # WA
        "raise ValueError('no')",                                    # RE
        "while True:\n    pass",                                     # TLE
        "import time\ntime.sleep(0.4)\nprint(2 * int(input()) + (int(input()) if False else 0))",  # AC
        "x = int(input())\nprint(2 * x if x < 3 else 0)",            # WA on the third test
        "import time\ntime.sleep(0.4)\nprint(2 * int(input()))",    # AC
    ]
    problems = [_problem(f"q{i}", tests) for i in range(3)]
    generations = [{"question_id": p["question_id"], "code_list": programs} for p in problems]
    grader = rehearsal_grader(cluster)

    killed: list[tuple[str, int]] = []
    stop = threading.Event()

    def kill_one_pod_mid_way():
        while not stop.is_set() and not killed:
            for (namespace, name), rt in list(cluster.cluster.pods.items()):
                lines = [text for _, text in list(rt.log.lines)]
                graded = sum(text.startswith("VALLEY-GRADE ") for text in lines)
                done = any(text.startswith('VALLEY-SHARD {"done"') for text in lines)
                if namespace == NS and graded >= 2 and not done and rt.container is not None:
                    rt.container.kill()  # SIGKILL, no grace: a lost pod, not a polite preemption
                    killed.append((name, graded))
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_pod_mid_way, daemon=True)
    killer.start()
    caplog.set_level(logging.INFO, logger="valley_assets.grading.kubernetes_backend")
    try:
        out = grader.grade(problems, generations, results_path=str(tmp_path / "k8s" / "results.json"))
    finally:
        stop.set()
        killer.join()
    assert killed, "no pod was caught mid-way"
    sent = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sent ")]
    created = [r.getMessage() for r in caplog.records if r.getMessage().startswith("created grading Job")]
    assert len(created) == 1 and "24 samples in 3 shards" in created[0]
    assert len(sent) == 4, sent  # three pods, and the killed index's replacement
    counts = sorted(int(message.split()[1]) for message in sent)
    assert counts[-3:] == [8, 8, 8] and counts[0] < 8  # the replacement gets only what had no verdict yet

    local = grade(problems, generations, backend="docker", timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB, workers=2,
                  results_path=tmp_path / "local" / "results.json")

    def verdicts(results):
        return {qid: [(r["verdict"], r["passed"], r["tests_run"]) for r in rows] for qid, rows in results.items()}

    def fields(results):
        # Every field but the CPU seconds and a TLE's message: whether the CPU timer or the wall rule catches a
        # CPU-bound loop first is a race on a loaded machine (runner.py "Wall-clock rule"), in either grader.
        return {qid: [{k: (dict(v, error_message="(timed out)") if k == "failure" and r["verdict"] == "TLE" else v)
                       for k, v in r.items() if k != "time_s"} for r in rows]
                for qid, rows in results.items()}

    assert fields(out["results"]) == fields(local["results"])  # field for field: failure diagnostics included
    assert [v for v, _, _ in verdicts(out["results"])["q0"]] == ["AC", "AC", "WA", "RE", "TLE", "AC", "WA", "AC"]
    assert out["summary"] == local["summary"]
    assert (out["backend"], out["isolation"]) == ("kubernetes", "pod")
    on_disk = json.loads((tmp_path / "k8s" / "results.json").read_text())
    assert verdicts(on_disk["results"]) == verdicts(local["results"])
    logged = [json.loads(line) for line in (tmp_path / "k8s" / "results.samples.jsonl").read_text().splitlines()]
    assert sorted((e["question_id"], e["sample_idx"]) for e in logged) == sorted(
        (f"q{i}", j) for i in range(3) for j in range(8))  # every sample once, the killed pod's included
    # A rerun grades nothing: every verdict is in the samples log.
    again = grader.grade(problems, generations, results_path=str(tmp_path / "k8s" / "results.json"))
    assert again["settings"]["graded_now"] == 0 and verdicts(again["results"]) == verdicts(local["results"])


def _containment_attacks(victim_dir: str, port: int) -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("containment_cases", REPO / "tests" / "grading" /
                                                  "test_containment.py")
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.path.insert(0, str(REPO / "tests" / "grading"))  # its `from grading_helpers import ...`
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "tests" / "grading"))
    return module._attacks(victim_dir, port)


def test_containment_attacks_in_the_pods_shape(cluster, tmp_path):
    settings = KubernetesGradingSettings(**{**rehearsal_grader(cluster).kubernetes.model_dump(),
                                            "samples_per_shard": 8, "max_pods": 2})
    shapes: list[dict] = []
    stop_watch = threading.Event()

    def watch_containers():
        while not stop_watch.is_set():
            for rt in list(cluster.cluster.pods.values()):
                if rt.container is not None and rt.started and rt.name not in {s["pod"] for s in shapes}:
                    try:
                        rt.container.reload()
                        shapes.append({"pod": rt.name, "host": rt.container.attrs["HostConfig"],
                                       "config": rt.container.attrs["Config"]})
                    except Exception:  # removed meanwhile
                        pass
            time.sleep(0.1)

    # on 0.0.0.0: reachable from a pod on a Docker network as host.docker.internal
    with connection_trap("0.0.0.0") as (port, connections):
        attacks = _containment_attacks(str(tmp_path), port)
        attacks["network to the host"] = (f"import socket\ns = socket.create_connection(('host.docker.internal', "
                                          f"{port}), timeout=2)\nprint('ESCAPED')\n")
        attacks["cluster API token"] = ("import os\nprint('ESCAPED' if os.path.exists("
                                        "'/var/run/secrets/kubernetes.io/serviceaccount/token') else 'no token')\n")
        attacks["write the root filesystem"] = "open('/etc/escaped', 'w').write('x')\nprint('ESCAPED')\n"
        problem = _problem("attack", [("", "ESCAPED")])
        watcher = threading.Thread(target=watch_containers, daemon=True)
        watcher.start()
        try:
            out = grade_on_kubernetes([problem], [{"question_id": "attack", "code_list": list(attacks.values())}],
                                      settings=settings, timeout_s=TIMEOUT_S, memory_mb=512)
        finally:
            stop_watch.set()
            watcher.join()
    verdicts = dict(zip(attacks, (r["verdict"] for r in out["results"]["attack"]), strict=True))
    assert all(v != "AC" for v in verdicts.values()), verdicts
    assert verdicts["infinite loop"] == "TLE" and verdicts["long sleep"] == "TLE"
    assert verdicts["output flood"] == "OLE" and verdicts["ctypes segfault"] == "RE"
    assert connections == [] and os.listdir(tmp_path) == []
    # The pods ran in the shape the Job asks for: its securityContext and limits as the container's flags.
    assert shapes
    for shape in shapes:
        host, config = shape["host"], shape["config"]
        assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in (host["SecurityOpt"] or [])
        assert config["User"] == f"{GRADER_UID}:{GRADER_UID}"
        assert host["NetworkMode"] == "none"  # k8s/grader-networkpolicy.yaml
        assert host["Memory"] == 1 << 30 and host["NanoCpus"] == 500_000_000  # rehearsal.yaml: 1Gi, 500m
        assert host["Runtime"] == REHEARSAL_RUNTIME_CLASSES["gvisor"] and host["PidsLimit"] == 256
        # memory emptyDirs: tmpfs owned by the pod's uid (the stand-in's rendering of the kubelet's 0777 dirs)
        assert {m["Target"] for m in host.get("Mounts") or []} | set(host.get("Tmpfs") or {}) >= {
            "/scratch", "/tmp", "/dev/shm"}
        assert not any("serviceaccount" in m["Target"] for m in host.get("Mounts") or [])


def _isolation_cases() -> dict:
    spec = importlib.util.spec_from_file_location("isolation_cases", REPO / "tests" / "grading" /
                                                  "test_isolation.py")
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.path.insert(0, str(REPO / "tests" / "grading"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "tests" / "grading"))
    return module


def test_isolation_between_samples_in_a_grading_pod(cluster, caplog):
    """tests/grading/test_isolation.py's routes in one pod (one shard, samples in order): after each hostile sample
    the honest probes get the verdicts they get alone. A sample that leaves what its runner cannot remove (retire),
    or kills its runner, ends the pod after its verdict (exit 76, not counted) and a fresh pod grades the rest."""
    iso = _isolation_cases()
    codes, probe_slots = [iso.HONEST_AC], []
    for hostile, probes in iso.CASES.values():
        codes.append(hostile)
        probe_slots.append((len(codes), probes))
        codes += probes
    settings = KubernetesGradingSettings(**{**rehearsal_grader(cluster).kubernetes.model_dump(),
                                            "samples_per_shard": len(codes), "max_pods": 1})
    caplog.set_level(logging.INFO, logger="valley_assets.grading.kubernetes_backend")
    out = grade_on_kubernetes([iso.PROBLEM], [{"question_id": "iso", "code_list": codes}], settings=settings,
                              timeout_s=2.0, memory_mb=512)
    got = [r["verdict"] for r in out["results"]["iso"]]
    assert got[0] == "AC"
    for (case, (_, probes)), (at, _) in zip(iso.CASES.items(), probe_slots, strict=True):
        assert got[at - 1] != "AC", (case, got)
        alone = ["WA" if probe is iso.HONEST_WA else "AC" for probe in probes]
        assert got[at:at + len(probes)] == alone, (case, got)
    retired = [r.getMessage() for r in caplog.records if "could not remove" in r.getMessage()]
    # the deep tree (retire) and the signalled runner (killed by its sample) each ended their pod
    assert len(retired) >= 2, retired
    killed = out["results"]["iso"][probe_slots[list(iso.CASES).index("signals to the runner")][0] - 1]
    assert killed["verdict"] == "RE" and "killed its runner" in killed["failure"]["error_message"]
    assert killed["failure"]["error_code"] == -4
