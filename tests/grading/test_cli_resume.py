"""`valley grade` end to end, resuming after the grader is killed, and clear errors for bad input files."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from grading_helpers import make_problem

from valley_assets.grading import grade, samples_log_path
from valley_assets.grading.backends import CONTAINER_LABEL
from valley_assets.grading.cli import main

BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}:\n    pass\n"


def _write_inputs(tmp_path, n_samples=8, busy_s=0.25):
    problems = [make_problem("p1", [("2\n", "4\n"), ("3\n", "6\n")], difficulty="easy"),
                make_problem("p2", [("[1, 2]", "3")], fn_name="total", difficulty="hard")]
    generations = [
        {"question_id": "p1", "code_list": [BUSY.format(s=busy_s) + ("print(int(input()) * 2)" if i % 2 else "print(0)")
                                            for i in range(n_samples)]},
        {"question_id": "p2", "code_list": ["class Solution:\n    def total(self, xs):\n        return sum(xs)"]},
    ]
    (tmp_path / "problems.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))
    (tmp_path / "generations.json").write_text(json.dumps(generations))
    return tmp_path / "problems.jsonl", tmp_path / "generations.json"


def test_cli_grades_and_writes_results(tmp_path, capsys):
    problems, generations = _write_inputs(tmp_path, n_samples=4, busy_s=0)
    out = tmp_path / "results.json"
    assert main(["grade", "--problems", str(problems), "--generations", str(generations), "--out", str(out),
                 "--backend", "process", "--workers", "2", "--timeout", "2", "--quiet"]) == 0
    results = json.loads(out.read_text())
    assert [s["verdict"] for s in results["results"]["p1"]] == ["WA", "AC", "WA", "AC"]
    assert results["results"]["p2"][0] == {"passed": True, "verdict": "AC", "tests_run": 1,
                                           "time_s": results["results"]["p2"][0]["time_s"], "failure": None}
    assert results["summary"]["pass@1"] == pytest.approx((0.5 + 1.0) / 2)
    assert results["summary"]["per_difficulty"] == {"easy": 0.5, "hard": 1.0}
    assert results["backend"] == "process"
    printed = json.loads(capsys.readouterr().out)
    assert printed["pass@1"] == results["summary"]["pass@1"]
    # a rerun reuses every logged sample; changed limits grade everything again
    rerun = ["--problems", str(problems), "--generations", str(generations), "--out", str(out), "--backend", "process",
             "--quiet", "--timeout"]
    assert main(rerun + ["2"]) == 0
    assert json.loads(out.read_text())["settings"]["graded_now"] == 0
    assert main(rerun + ["3"]) == 0
    assert json.loads(out.read_text())["settings"]["graded_now"] == 5


def test_cli_reports_bad_inputs(tmp_path, capsys):
    problems, generations = _write_inputs(tmp_path, n_samples=1)
    (tmp_path / "bad.json").write_text(json.dumps([{"question_id": "nope", "code_list": ["print(1)"]}]))
    args = ["--problems", str(problems), "--out", str(tmp_path / "r.json"), "--backend", "process"]
    assert main(args + ["--generations", str(tmp_path / "bad.json")]) == 2
    assert "'nope' is not among the problems" in capsys.readouterr().err
    (tmp_path / "broken.jsonl").write_text('{"question_id": "x"}\n')
    assert main(["--problems", str(tmp_path / "broken.jsonl"), "--generations", str(generations), "--out",
                 str(tmp_path / "r.json")]) == 2
    assert "problems[0]: problem 'x': missing field 'difficulty'" in capsys.readouterr().err


@pytest.mark.parametrize("backend_name", ["process", "docker"])
def test_resume_after_the_grader_is_killed(tmp_path, backend_name):
    if backend_name == "docker":
        from docker_gate import require_docker

        require_docker()
    problems, generations = _write_inputs(tmp_path, n_samples=10, busy_s=0.3)
    out = tmp_path / "results.json"
    argv = [sys.executable, "-m", "valley_assets.grading", "grade", "--problems", str(problems), "--generations",
            str(generations), "--out", str(out), "--backend", backend_name, "--workers", "2", "--timeout", "2",
            "--quiet"]
    log = samples_log_path(out)
    grader = subprocess.Popen(argv, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.05)
    grader.send_signal(signal.SIGKILL)
    grader.wait()
    logged = len(log.read_text().splitlines())
    assert 3 <= logged < 11 and not out.exists()

    rerun = subprocess.run(argv, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    results = json.loads(out.read_text())
    assert results["settings"]["reused"] == logged
    assert results["settings"]["graded_now"] == 11 - logged
    assert [s["verdict"] for s in results["results"]["p1"]] == ["WA", "AC"] * 5
    if backend_name == "docker":  # the killed grader's containers are gone (stdin EOF, or removed by label)
        left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={CONTAINER_LABEL}", "--filter",
                               f"label=valley.grader.pid={grader.pid}"], capture_output=True, text=True)
        assert left.stdout.strip() == ""


def test_a_runner_without_the_tests_gets_them_resent():
    """The grader sends a problem's tests once per sandbox; a sandbox that lost them (evicted, restarted) asks."""
    from valley_assets.grading.backends import choose_isolation, start_worker

    worker = start_worker(choose_isolation("process"), 0, 256)
    try:
        request = {"id": "q#0", "code": "print(int(input()) * 2)", "fn_name": None, "tests_key": "never-sent",
                   "inputs": ["2\n", "5\n"], "outputs": ["4\n", "10\n"], "timeout_s": 2.0, "wall_s": 20.0,
                   "memory_mb": 256, "output_cap": 1000, "scratch": worker.scratch, "nproc": worker.nproc}
        worker._last_tests_key = "never-sent"  # as if it had been sent: the slim request goes first
        assert worker.grade(request)["verdict"] == "AC"
        assert worker.grade(dict(request, id="q#1", code="print(0)"))["verdict"] == "WA"  # slim, from the cache
    finally:
        worker.close()


class _RecordingExecutor:
    """A SampleExecutor that grades on a real local pool (process backend) and records the jobs grade() gave it."""

    def __init__(self):
        from valley_assets.grading.backends import choose_isolation

        self.isolation = choose_isolation("process")
        self.received: list[str] = []

    def run(self, jobs, on_result):
        from valley_assets.grading.grader import _Pool

        self.received += [job["request"]["id"] for job in jobs]
        _Pool(self.isolation, 2, 256).run(jobs, on_result)


def test_an_executor_gets_only_the_missing_samples_and_grade_keeps_the_books(tmp_path):
    """grade(executor=...) (the kubernetes backend's way in): the same results file and samples log as the local
    pool, and a rerun hands the executor only what the log lacks."""

    problem = make_problem("ex", [("1\n", "2\n"), ("2\n", "4\n")])
    codes = ["print(2 * int(input()))", "print(int(input()))", "raise ValueError('no')"]
    generations = [{"question_id": "ex", "code_list": codes}]
    local = grade([problem], generations, backend="process", workers=2, timeout_s=2.0, memory_mb=256,
                  results_path=tmp_path / "local" / "results.json")
    executor = _RecordingExecutor()
    other = grade([problem], generations, timeout_s=2.0, memory_mb=256, executor=executor,
                  results_path=tmp_path / "ex" / "results.json")
    assert sorted(executor.received) == ["ex#0", "ex#1", "ex#2"]

    def fields(results):  # everything but the CPU seconds
        return {q: [{k: v for k, v in r.items() if k != "time_s"} for r in rows] for q, rows in results.items()}

    assert fields(other["results"]) == fields(local["results"]) and other["summary"] == local["summary"]
    log_lines = (tmp_path / "ex" / "results.samples.jsonl").read_text().splitlines()
    assert [json.loads(line)["verdict"] for line in log_lines if json.loads(line)["sample_idx"] == 1] == ["WA"]
    generations[0]["code_list"][1] = "print(2 * int(input()))"  # changed: graded again; the others are reused
    again = grade([problem], generations, timeout_s=2.0, memory_mb=256, executor=executor,
                  results_path=tmp_path / "ex" / "results.json")
    assert sorted(executor.received) == ["ex#0", "ex#1", "ex#1", "ex#2"]
    assert [r["verdict"] for r in again["results"]["ex"]] == ["AC", "AC", "RE"]
    assert again["settings"]["graded_now"] == 1
