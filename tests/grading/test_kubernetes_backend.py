"""The kubernetes grading backend's pure parts, without a cluster: sharding, the shard stream the pod's driver reads,
and how the orchestrator reads pod log lines. The Job itself runs on the kube stand-in
(tests/rehearsal/test_kube_grading.py); its manifest is checked in tests/launch/test_job_specs.py."""

import io
import json
import os
import subprocess
import sys

import pytest

from valley_assets.grading import shard_driver
from valley_assets.grading.backends import SandboxError
from valley_assets.grading.kubernetes_backend import (
    SCRATCH,
    KubernetesGradingSettings,
    KubernetesShardPool,
    plan_shards,
    shard_frames,
)
from valley_assets.grading.runner import SampleRequest


def job(qid: str, idx: int, inputs=("1\n",), outputs=("2\n",)) -> dict:
    return {"question_id": qid, "sample_idx": idx, "key": f"k-{qid}-{idx}", "request": {
        "id": f"{qid}#{idx}", "code": f"print({idx})", "fn_name": None, "tests_key": f"tests-{qid}",
        "inputs": list(inputs), "outputs": list(outputs), "timeout_s": 1.0, "wall_s": 10.0, "memory_mb": 256,
        "output_cap": 1000, "scratch": ""}}


def jobs_of(sizes: dict[str, int]) -> list[dict]:
    return [job(qid, i) for qid, n in sizes.items() for i in range(n)]


def test_shards_keep_questions_whole_and_follow_the_settings():
    sizes = {f"q{i:02d}": n for i, n in enumerate([16, 16, 16, 3, 5, 16, 1, 16, 16, 9])}
    jobs = jobs_of(sizes)  # 114 samples
    shards = plan_shards(jobs, samples_per_shard=40, max_pods=64)
    assert len(shards) == 3  # ceil(114 / 40)
    assert sorted(j["request"]["id"] for s in shards for j in s) == sorted(j["request"]["id"] for j in jobs)
    owner = {}
    for index, shard in enumerate(shards):
        for j in shard:
            assert owner.setdefault(j["question_id"], index) == index  # a question's samples share one shard
    loads = sorted(len(s) for s in shards)
    assert loads[-1] - loads[0] <= max(sizes.values())  # largest-first onto the lightest shard
    assert len(plan_shards(jobs, samples_per_shard=1, max_pods=4)) == 4  # max_pods caps the pods
    assert len(plan_shards(jobs_of({"only": 50}), samples_per_shard=1, max_pods=10)) == 1  # no empty shard
    assert plan_shards(jobs, 40, 64) == plan_shards(list(reversed(jobs)), 40, 64)  # deterministic
    assert plan_shards([], 40, 64) == []
    with pytest.raises(ValueError, match="samples_per_shard"):
        plan_shards(jobs, 0, 1)


def test_the_driver_reads_back_what_the_orchestrator_streams():
    jobs = jobs_of({"a": 2, "b": 1})
    header, tests, samples = shard_driver.read_shard(io.BytesIO(shard_frames(7, jobs)))
    # The runner empties the pod's scratch and its other memory volumes after every sample, and removes the System V
    # objects of the pod's IPC namespace.
    assert header["shard"] == 7 and header["runner_args"] == [
        "--cleanup", "pgroup", "--private-ipc", "--private-dir", "/tmp", "--private-dir", "/dev/shm"]
    assert "def main" in header["runner_source"]
    assert tests == {"tests-a": (["1\n"], ["2\n"]), "tests-b": (["1\n"], ["2\n"])}  # once per problem
    assert [s["id"] for s in samples] == ["a#0", "a#1", "b#0"]
    assert all("outputs" not in s and "inputs" not in s for s in samples)
    # Every request is a complete runner.SampleRequest but for its tests: the pod's scratch dir, no nproc.
    required = SampleRequest.__required_keys__ - {"inputs", "outputs"}
    assert all(required <= set(s) and s["scratch"] == SCRATCH and s["nproc"] is None for s in samples)
    data = shard_frames(0, jobs)
    with pytest.raises(shard_driver.CutOff):  # an attach lost mid-stream: retryable
        shard_driver.read_shard(io.BytesIO(data[:-10]))
    tampered = data.replace(b'"samples": 3', b'"samples": 4')
    with pytest.raises(shard_driver.BadInput, match="counts"):
        shard_driver.read_shard(io.BytesIO(tampered))


def test_the_driver_refuses_to_run_unless_it_is_the_namespace_init():
    """Its sweep kills every process its uid may signal: outside a pod's own pid namespace that would be the host's."""
    done = subprocess.run([sys.executable, "-I", "-c", open(shard_driver.__file__).read()], input=b"",
                          capture_output=True, timeout=30)
    assert done.returncode == shard_driver.EXIT_BAD_INPUT
    assert b"must be pid 1" in done.stdout
    assert os.getpid() != 1


class _Pool(KubernetesShardPool):
    def __init__(self):
        super().__init__(KubernetesGradingSettings(), api=object(), log=lambda m: None)


def test_log_lines_become_verdicts_once_and_losses_stop_at_the_second():
    jobs = jobs_of({"a": 2})
    by_id = {j["request"]["id"]: j for j in jobs}
    pool, seen = _Pool(), []
    line = shard_driver.GRADE_PREFIX + json.dumps({"id": "a#0", "passed": True, "verdict": "AC", "tests_run": 1,
                                                   "time_s": 0.01, "failure": None})
    for _ in range(2):  # a reconnected log stream repeats lines
        pool._line("pod-0", line, by_id, lambda j, r: seen.append((j["request"]["id"], r["verdict"])))
    pool._line("pod-0", "runner: VALLEY-GRADE {\"id\": \"a#1\"}", by_id, lambda j, r: seen.append(j))
    assert seen == [("a#0", "AC")]
    with pytest.raises(SandboxError, match="not sent"):
        pool._line("pod-0", shard_driver.GRADE_PREFIX + json.dumps({"id": "zzz#0"}), by_id, lambda j, r: None)
    lost = shard_driver.SHARD_PREFIX + json.dumps({"lost": "a#1", "error": "runner exited 1"})
    pool._line("pod-0", lost, by_id, lambda j, r: None)
    with pytest.raises(SandboxError, match="a#1: its sandbox was lost twice"):
        pool._line("pod-1", lost, by_id, lambda j, r: None)


def test_the_shard_streams_in_bounded_writes_and_ends_with_stdin_closed():
    from valley_assets.grading.kubernetes_backend import ATTACH_CHUNK, iter_shard_frames

    class Socket:
        def __init__(self):
            self.writes, self.closed = [], []

        def write_stdin(self, data):
            self.writes.append(data)

        def close_channel(self, channel):
            self.closed.append(channel)

    big = [job("big", i, inputs=("x" * (ATTACH_CHUNK // 2),) * 3, outputs=("y",) * 3) for i in range(3)]
    ws = Socket()
    KubernetesShardPool._send(ws, iter_shard_frames(0, big))
    assert b"".join(ws.writes) == shard_frames(0, big)
    assert max(len(w) for w in ws.writes) <= ATTACH_CHUNK and len(ws.writes) > 1
    assert ws.closed == [0]


def _run_driver_in_a_container(jobs: list[dict], timeout: float = 120) -> tuple[int, list[str]]:
    """The shard driver as pid 1 of a sandbox-image container with the grading pod's shape (uid, read-only root,
    memory volumes writable by the uid, no network, no capabilities), fed a shard on stdin."""
    from valley_assets.grading.backends import sandbox_image
    from valley_assets.grading.kubernetes_backend import GRADER_UID, driver_source

    name = f"valley-test-driver-{os.getpid()}"
    volumes = [arg for d in ("/scratch", "/tmp", "/dev/shm")
               for arg in ("--tmpfs", f"{d}:rw,nosuid,nodev,size=64m,uid={GRADER_UID},gid={GRADER_UID}")]
    argv = ["docker", "run", "-i", "--rm", "--name", name, "--network", "none", "--read-only", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--user", f"{GRADER_UID}:{GRADER_UID}", "--pids-limit", "256",
            "--memory", "1g", *volumes, sandbox_image(), "python3", "-I", "-u", "-c", driver_source()]
    try:
        done = subprocess.run(argv, input=shard_frames(0, jobs), capture_output=True, timeout=timeout)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    return done.returncode, done.stdout.decode().splitlines()


@pytest.mark.docker
def test_a_program_that_stops_or_kills_its_runner_is_re_and_ends_the_pod():
    """A runner a program SIGSTOPs never answers (before the watchdog the pod hung until the Job's deadline); one it
    kills left the pod's volumes unemptied (before, a fresh runner graded on in the same pod). Both are the
    sample's RE, with a Failure, and the pod exits 76 to be replaced."""
    from docker_gate import require_docker

    require_docker()
    stop = "import ctypes, os, time\nctypes.CDLL(None).kill(os.getppid(), 19)\ntime.sleep(5)\nprint(2)\n"
    kill = "import ctypes, os, time\nctypes.CDLL(None).kill(os.getppid(), 9)\ntime.sleep(5)\nprint(2)\n"
    for code, how in ((stop, "stopped its runner"), (kill, "killed its runner")):
        first, honest = job("q", 0), job("q", 1)
        first["request"]["code"] = code
        rc, lines = _run_driver_in_a_container([first, honest])
        grades = [json.loads(line[len(shard_driver.GRADE_PREFIX):]) for line in lines
                  if line.startswith(shard_driver.GRADE_PREFIX)]
        assert rc == shard_driver.EXIT_REPLACE_POD, (rc, lines)
        assert [g["id"] for g in grades] == ["q#0"], lines  # the honest sample goes to the replacement pod
        assert grades[0]["verdict"] == "RE" and how in grades[0]["failure"]["error_message"]
        assert grades[0]["failure"]["error_code"] == -4 and grades[0]["failure"]["test"] is None
        shard_lines = [json.loads(line[len(shard_driver.SHARD_PREFIX):]) for line in lines
                       if line.startswith(shard_driver.SHARD_PREFIX)]
        assert any(message.get("retired") == "q#0" for message in shard_lines), lines
    rc, lines = _run_driver_in_a_container([job("q", 0)])
    assert rc == 0 and any('"verdict":"WA"' in line for line in lines), lines  # print(0) for input 1 -> WA
