"""Run demo solutions against their tests in a child Python process, to label them by execution.

This is the demo's own small checker, used to verify that the problem generator's reference solutions pass and that
the teacher's deliberately wrong solutions fail; the production grader (LiveCodeBench-exact, sandboxed) lives in
`valley_assets/grading/`. All the demo's code is written by the project, but mutated solutions can loop forever or
raise, so each test runs under a CPU-time alarm and the whole batch under a wall-clock timeout in one child process
(one interpreter start for hundreds of solutions keeps the demo fast on two cores).

Comparison follows LiveCodeBench: stdin outputs are compared line by line after stripping; functional problems
call `Solution().<func_name>(*args)` with one JSON value per input line and compare with the JSON-decoded expected
value, tuples as lists. A solution passes only when every test passes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

# The child's program. It reads a JSON list of jobs on stdin and writes one JSON verdict per job on stdout.
_HARNESS = r'''
import io, json, signal, sys

PRELUDE = "from typing import *\nimport math, itertools, collections, heapq, bisect, functools\n"

class _Timeout(BaseException):
    pass

def _on_alarm(signum, frame):
    raise _Timeout()

signal.signal(signal.SIGALRM, _on_alarm)

def _normalise(value):
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value

def _lines(text):
    return [line.strip() for line in text.strip().splitlines()]

def _run_test(code, test, func_name, timeout_s):
    real_stdin, real_stdout = sys.stdin, sys.stdout
    sys.stdin = io.StringIO(test["input"])
    sys.stdout = captured = io.StringIO()  # also keeps a functional solution's prints out of the verdict stream
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        if test["testtype"] == "functional":
            namespace = {"__name__": "solution"}
            exec(compile(PRELUDE + code, "<solution>", "exec"), namespace)
            args = [json.loads(line) for line in test["input"].split("\n") if line.strip()]
            got = getattr(namespace["Solution"](), func_name)(*args)
            return _normalise(got) == _normalise(json.loads(test["output"])), "wrong answer"
        try:
            exec(compile(PRELUDE + code, "<solution>", "exec"), {"__name__": "__main__"})
        except SystemExit:
            pass
        return _lines(captured.getvalue()) == _lines(test["output"]), "wrong answer"
    except _Timeout:
        return False, "time limit exceeded"
    except BaseException as exc:  # a wrong solution may raise anything, including SystemExit from exit()
        return False, f"runtime error: {type(exc).__name__}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.stdin, sys.stdout = real_stdin, real_stdout

def main():
    payload = json.load(sys.stdin)
    verdicts = []
    for job in payload["jobs"]:
        verdict = {"passed": True, "verdict": "accepted", "tests_run": 0}
        for test in job["tests"]:
            verdict["tests_run"] += 1
            ok, why = _run_test(job["code"], test, job.get("func_name"), payload["timeout_s"])
            if not ok:
                verdict.update(passed=False, verdict=why)
                break
        verdicts.append(verdict)
    sys.stdout.write(json.dumps(verdicts))

main()
'''


@dataclass(frozen=True)
class Verdict:
    passed: bool
    verdict: str  # "accepted", "wrong answer", "time limit exceeded", "runtime error: <Exception>"
    tests_run: int


def problem_tests(problem: dict) -> list[dict]:
    """Public then private tests of a demo problem record (both stored as plain JSON strings)."""
    tests = []
    for field in ("public_test_cases", "private_test_cases"):
        try:
            tests.extend(json.loads(problem[field]))
        except (KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"problem {problem.get('question_id')!r}: field {field!r} is not a JSON list") from exc
    return tests


def func_name_of(problem: dict) -> str | None:
    """`metadata.func_name` for functional (LeetCode-style) problems, None for stdin problems."""
    return json.loads(problem.get("metadata") or "{}").get("func_name")


def run_solutions(
    jobs: list[tuple[str, dict]], *, per_test_timeout_s: float = 1.0, batch_timeout_s: float = 300.0
) -> list[Verdict]:
    """Run each `(code, problem)` pair on all of the problem's tests; one verdict per pair, in order."""
    if not jobs:
        return []
    payload = {
        "timeout_s": per_test_timeout_s,
        "jobs": [{"code": code, "tests": problem_tests(p), "func_name": func_name_of(p)} for code, p in jobs],
    }
    proc = subprocess.run(
        [sys.executable, "-I", "-c", _HARNESS],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=batch_timeout_s,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"demo solution runner crashed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    verdicts = json.loads(proc.stdout)
    if len(verdicts) != len(jobs):
        raise RuntimeError(f"demo solution runner returned {len(verdicts)} verdicts for {len(jobs)} jobs")
    return [Verdict(**v) for v in verdicts]
