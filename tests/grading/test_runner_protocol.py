"""The runner on its own, through its typed protocol (runner.py's TypedDicts): what it answers, and what it leaves."""

import os
import subprocess
import sys
import time

from valley_assets.grading import grader
from valley_assets.grading.backends import RUNNER_PATH
from valley_assets.grading.runner import Failure, RunnerReady, SampleResult, read_frame, write_frame


def test_results_are_the_protocols_sample_result():
    assert set(grader.RESULT_FIELDS) == set(SampleResult.__required_keys__) - {"id"}
    assert set(Failure.__required_keys__) == {"test", "error_code", "error_type", "error_message", "inputs",
                                              "expected", "output"}


def _descendants(root: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        for _ in range(64):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                break
            if fields[0] in ("Z", "X"):
                break
            pid = int(fields[1])
            if pid == root:
                found.append(int(entry))
                break
            if pid <= 1:
                break
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_pgroup_runner_kills_a_process_that_left_the_session(tmp_path):
    """Without a pid namespace or a uid of its own (--cleanup pgroup) the runner is a child subreaper: a daemon that
    double-forked into a new session (out of reach of killpg) is still killed before the verdict goes out."""
    scratch, pid_file = tmp_path / "scratch", tmp_path / "daemon.pid"
    scratch.mkdir()
    daemon = ("import ctypes, os, time\nlibc = ctypes.CDLL(None)\nif libc.fork() == 0:\n    libc.setsid()\n"
              "    if libc.fork() == 0:\n"
              f"        with open({str(pid_file)!r}, 'w') as f:\n            f.write(str(os.getpid()))\n"
              "        time.sleep(60)\n    libc._exit(0)\ntime.sleep(0.3)\nprint('forked')\n")
    runner = subprocess.Popen([sys.executable, "-I", "-u", str(RUNNER_PATH), "--cleanup", "pgroup"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready: RunnerReady = read_frame(runner.stdout.fileno())
        assert ready["ready"] is True and isinstance(ready["missing_modules"], list)
        write_frame(runner.stdin.fileno(), {
            "id": "d#0", "code": daemon, "fn_name": None, "inputs": [""], "outputs": ["forked"], "timeout_s": 5.0,
            "wall_s": 50.0, "memory_mb": 512, "output_cap": 10000, "scratch": str(scratch)})
        result: SampleResult = read_frame(runner.stdout.fileno())
        assert (result["id"], result["verdict"], result["failure"]) == ("d#0", "AC", None)
        daemon_pid = int(pid_file.read_text())
        time.sleep(0.2)
        assert not _alive(daemon_pid)
        assert _descendants(runner.pid) == []
        assert os.listdir(scratch) == []
    finally:
        runner.stdin.close()
        runner.wait(timeout=10)
        if pid_file.exists() and _alive(int(pid_file.read_text())):  # what a failed run left
            os.kill(int(pid_file.read_text()), 9)


# pidfd_open as gVisor (runsc 20221219) and Linux < 5.3 answer it: the runner must referee its children without it.
_NO_PIDFD = """import errno, os, runpy, sys
def pidfd_open(pid, flags=0):
    raise OSError(errno.ENOSYS, "Function not implemented")
os.pidfd_open = pidfd_open
sys.argv = sys.argv[1:]  # -c leaves "-c" in argv[0]: the runner's path and arguments follow
runpy.run_path(sys.argv[0], run_name="__main__")
"""
_EXIT_CASES = {
    "ac": "print(2 * int(input()))",
    "wa": "print(int(input()))",
    "exits without a report": "import os\nos._exit(3)",
    "segfault": "import ctypes\nctypes.string_at(0)",
    "cpu loop": "while True:\n    pass",
    "sleeper": "import time\ntime.sleep(30)",
    "raises": "raise ValueError('no')",
}


def _grade_with_runner(argv: list[str], scratch) -> dict[str, dict]:
    runner = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    answers = {}
    try:
        assert read_frame(runner.stdout.fileno())["ready"] is True
        for name, code in _EXIT_CASES.items():
            write_frame(runner.stdin.fileno(), {
                "id": name, "code": code, "fn_name": None, "inputs": ["1\n", "2\n"], "outputs": ["2\n", "4\n"],
                "timeout_s": 0.5, "wall_s": 5.0, "memory_mb": 512, "output_cap": 10000, "scratch": str(scratch)})
            answers[name] = read_frame(runner.stdout.fileno())
    finally:
        runner.stdin.close()
        runner.wait(timeout=10)
    return answers


def test_without_pidfd_open_the_runner_gives_the_same_answers(tmp_path):
    """gVisor's ENOSYS for pidfd_open: the runner falls back to polling waitid(WNOWAIT), with the same verdicts and
    diagnostics as with a pidfd (before the fallback every sample was a RunnerFailed 'runner failed: OSError(38)')."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with_pidfd = _grade_with_runner([sys.executable, "-I", "-u", str(RUNNER_PATH), "--cleanup", "pgroup"], scratch)
    without = _grade_with_runner([sys.executable, "-I", "-u", "-c", _NO_PIDFD, str(RUNNER_PATH), "--cleanup",
                                  "pgroup"], scratch)
    verdicts = {name: answer.get("verdict", answer.get("error")) for name, answer in without.items()}
    assert verdicts == {"ac": "AC", "wa": "WA", "exits without a report": "RE", "segfault": "RE",
                        "cpu loop": "TLE", "sleeper": "TLE", "raises": "RE"}
    def comparable(answer: dict) -> dict:
        # CPU seconds vary run to run, and so does a TLE's message: whether the CPU timer or the wall rule (both at
        # the limit, runner.py "Wall-clock rule") catches a CPU-bound loop first is a race on a loaded machine.
        failure = answer["failure"]
        if failure and answer["verdict"] == "TLE":
            failure = dict(failure, error_message="(timed out)")
        return {k: v for k, v in dict(answer, failure=failure).items() if k != "time_s"}

    for name in _EXIT_CASES:
        assert comparable(without[name]) == comparable(with_pidfd[name]), name
    assert without["exits without a report"]["failure"]["error_message"] == "exited with status 3 before reporting"
