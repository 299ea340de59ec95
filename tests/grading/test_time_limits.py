"""Time limits: a step is TLE on CPU time, or on wall time not spent waiting for a CPU (what the harness's
signal.alarm sees on an idle machine: a sleeping program), with a wall-clock backstop; see runner.py, "Wall-clock
rule". CPU-bound verdicts must not depend on how loaded the machine is."""

import os
import subprocess
import sys
import time

import pytest
from grading_helpers import grade_programs, make_problem

from valley_assets.grading import runner

DONE = make_problem("done", [("", "done")])


def busy(cpu_s: float, before: str = "") -> str:
    """A program that burns `cpu_s` of CPU time, then prints the expected answer."""
    return (f"import time\n{before}t = time.process_time()\nwhile time.process_time() - t < {cpu_s}:\n    pass\n"
            "print('done')\n")


def sleep(seconds: float) -> str:
    return f"import time\ntime.sleep({seconds})\nprint('done')\n"


def busy_thread(cpu_s: float) -> str:
    """The Codeforces idiom: the work runs in a thread, the main thread waits in join()."""
    return ("import threading, time\ndef work():\n    t = time.process_time()\n"
            f"    while time.process_time() - t < {cpu_s}:\n        pass\n    print('done')\n"
            "worker = threading.Thread(target=work)\nworker.start()\nworker.join()\n")


def test_idle_machine_wall_estimate():
    # With schedstat: wall time minus the waiting for a CPU (credited with a little slack).
    assert runner.idle_machine_wall_s(7.0, 0.0, None) == 7.0
    assert runner.idle_machine_wall_s(10.0, 9.0, None) == pytest.approx(10.0 - 9.0 * (1 + runner.RUN_DELAY_SLACK))
    assert runner.idle_machine_wall_s(1.0, 5.0, None) == 0.0
    # Without it: all of the wall time when the step was mostly idle, nothing to say otherwise.
    assert runner.idle_machine_wall_s(7.0, None, 0.01) == 7.0
    assert runner.idle_machine_wall_s(7.0, None, 0.7) is None  # 10% of a core: a starved CPU-bound program
    assert runner.idle_machine_wall_s(7.0, None, None) is None


def _spin(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def _clock_after(process: subprocess.Popen, wait_s: float, timeout_s: float) -> str | None:
    clock = runner.StepClock(process.pid, timeout_s=timeout_s, backstop_s=100.0)
    time.sleep(wait_s)
    return clock.verdict()[0]


@pytest.mark.parametrize("schedstat", [True, False], ids=["schedstat", "cpu-fraction fallback"])
def test_step_clock_catches_a_sleeper_but_not_a_starved_cpu_bound_process(schedstat, monkeypatch):
    if not schedstat:
        monkeypatch.setattr(runner, "thread_run_delays", lambda pid: None)
    elif runner.thread_run_delays(os.getpid()) is None:
        pytest.skip("this kernel has no /proc/<pid>/schedstat (CONFIG_SCHED_INFO)")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    spinners = _spin(3)
    try:
        for p in spinners:  # three CPU-bound processes on one CPU: each gets at most a third of it
            os.sched_setaffinity(p.pid, {0})
        assert _clock_after(sleeper, 0.8, timeout_s=0.4) is not None
        verdicts = [runner.StepClock(p.pid, timeout_s=0.4, backstop_s=100.0) for p in spinners]
        time.sleep(0.8)
        assert [clock.verdict()[0] for clock in verdicts] == [None, None, None]
    finally:
        for p in [sleeper, *spinners]:
            p.kill()
            p.wait()


@pytest.mark.slow
def test_sleeping_past_the_limit_is_tle_as_in_the_harness(backend):
    """The harness times each test with signal.alarm(6): a program that sleeps 7 s is TLE there, and here, at the
    limit rather than at the backstop; one that sleeps 4.5 s passes."""
    started = time.monotonic()
    results = grade_programs(DONE, [sleep(7), sleep(4.5)], backend=backend, workers=2)
    elapsed = time.monotonic() - started
    assert [r["verdict"] for r in results] == ["TLE", "AC"]
    assert elapsed < 15, f"the sleeper was not caught at the 6 s limit ({elapsed:.1f}s)"


NEAR_LIMIT = [  # timeout 1 s
    (busy(0.8), "AC"),
    (busy(1.5), "TLE"),
    (busy(0.5, before="time.sleep(0.7)\n"), "TLE"),  # 1.2 s on an idle machine: TLE in the harness too
]


@pytest.mark.slow
def test_cpu_bound_near_the_limit_same_verdict_with_1_and_4_workers(backend):
    codes = [code for code, _ in NEAR_LIMIT] * 2  # 6 samples: 4 workers on 2 cores run them oversubscribed
    expected = [verdict for _, verdict in NEAR_LIMIT] * 2
    for workers in (1, 4):
        results = grade_programs(DONE, codes, backend=backend, workers=workers, timeout_s=1.0)
        assert [r["verdict"] for r in results] == expected, f"--workers {workers}"


@pytest.mark.slow
def test_starved_programs_keep_their_verdicts():
    """Process backend pinned to one CPU with 3 workers: every program gets at most a third of a core, so the
    CPU-bound ones take longer than the limit in wall time; only CPU time or idle time may decide."""
    original = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})  # the runners and their children inherit this
    try:
        results = grade_programs(DONE, [busy(0.6), busy_thread(0.6), sleep(1.5), busy(0.6), busy_thread(0.6),
                                        busy(1.5)], backend="process", workers=3, timeout_s=1.0)
    finally:
        os.sched_setaffinity(0, original)
    assert [r["verdict"] for r in results] == ["AC", "AC", "TLE", "AC", "AC", "TLE"]


@pytest.mark.slow
def test_a_fork_bomb_is_stopped_at_the_limit(backend, isolation_of_process_backend):
    """Its processes starve its root process of CPU; that waiting must not be credited to it (runner.StepClock)."""
    if backend == "process" and isolation_of_process_backend != "bwrap":
        pytest.skip("a fork bomb needs bubblewrap (or Docker) to be contained")
    bomb = "import ctypes\nlibc = ctypes.CDLL(None)\nwhile True:\n    libc.fork()\n"
    started = time.monotonic()
    results = grade_programs(DONE, [bomb, "print('done')"], backend=backend, workers=2, timeout_s=1.0, memory_mb=512)
    assert [r["verdict"] for r in results] == ["TLE", "AC"]
    assert time.monotonic() - started < 8, "the fork bomb ran on far past its 1 s limit"
