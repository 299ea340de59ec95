"""A program that breaks its sandbox gets a verdict; a failing sandbox infrastructure stops the grading.

Under Linux no graded program can kill its runner or write into its pipes (test_isolation.py, test_containment.py),
but under a weaker runtime it can (gVisor 20221219 delivers a SIGKILL from inside a container to its init:
benchmarks/RESULTS.md, "Grading under gVisor"). The pool grades such a sample again in a fresh sandbox; when that
one is lost too, a trivial program graded in a third tells the two cases apart. Here the loss is real (the runner
process of a real sandbox is killed while it holds the sample), only its trigger is the test's: a marker in the code.
"""

import pytest
from grading_helpers import grade_programs, make_problem

from valley_assets.grading import grader
from valley_assets.grading.backends import SandboxError

PROBLEM = make_problem("lost", [("5\n", "5\n"), ("6\n", "6\n")])
HONEST = "print(input())\n"
BREAKER = "# BREAKS_ITS_SANDBOX\nprint(input())\n"


def _sandboxes_lost_by(marker: str, monkeypatch, *, refuse_after: int | None = None,
                       times: int | None = None) -> list[int]:
    """Make a sandbox's runner die while it grades a sample whose code holds `marker` (every time, or the first
    `times` times); with `refuse_after`, sandboxes after that many fail to start (an engine going down). Returns the
    start count, updated live."""
    real_start = grader.start_worker
    starts = [0]
    losses = [0]

    def start(isolation, index, memory_mb):
        starts[0] += 1
        if refuse_after is not None and starts[0] > refuse_after:
            raise SandboxError("sandbox did not start: the engine is down")
        worker = real_start(isolation, index, memory_mb)
        real_grade = worker.grade

        def grade(request):
            if marker in request["code"] and (times is None or losses[0] < times):
                losses[0] += 1
                worker.process.kill()
                worker.process.wait()
            return real_grade(request)

        worker.grade = grade
        return worker

    monkeypatch.setattr(grader, "start_worker", start)
    return starts


def test_a_sample_that_breaks_two_sandboxes_is_re_and_the_grading_goes_on(monkeypatch):
    starts = _sandboxes_lost_by("BREAKS_ITS_SANDBOX", monkeypatch)
    results = grade_programs(PROBLEM, [HONEST, BREAKER, HONEST, BREAKER, HONEST], workers=1, timeout_s=2.0)
    assert [r["verdict"] for r in results] == ["AC", "RE", "AC", "RE", "AC"]
    failure = results[1]["failure"]
    assert failure["error_type"] == "SandboxLost" and failure["test"] is None and results[1]["tests_run"] == 0
    assert "broke its sandbox twice" in failure["error_message"]
    # the first sandbox, then per breaker: a retry and the canary's sandbox (which grades on)
    assert starts[0] == 1 + 2 * 2


def test_a_sample_lost_once_keeps_the_verdict_of_its_second_sandbox(monkeypatch):
    starts = _sandboxes_lost_by("BREAKS_ITS_SANDBOX", monkeypatch, times=1)
    results = grade_programs(PROBLEM, [HONEST, BREAKER, HONEST], workers=1, timeout_s=2.0)
    assert [r["verdict"] for r in results] == ["AC", "AC", "AC"]
    assert starts[0] == 2  # the first sandbox and the one that graded the breaker again


def test_when_the_canary_cannot_run_the_grading_stops_with_the_infrastructure_error(monkeypatch):
    # sandboxes 1 (lost on the breaker) and 2 (its retry, lost too) start; the canary's cannot
    _sandboxes_lost_by("BREAKS_ITS_SANDBOX", monkeypatch, refuse_after=2)
    with pytest.raises(SandboxError, match="failed a trivial program too: sandbox did not start"):
        grade_programs(PROBLEM, [HONEST, BREAKER, HONEST], workers=1, timeout_s=2.0)


def test_when_every_sandbox_fails_the_grading_stops(monkeypatch):
    # an infrastructure that loses every sandbox: the canary is lost as well, so no program is blamed
    _sandboxes_lost_by("print(input())", monkeypatch)
    with pytest.raises(SandboxError, match="failed a trivial program too"):
        grade_programs(PROBLEM, [HONEST], workers=1, timeout_s=2.0)
