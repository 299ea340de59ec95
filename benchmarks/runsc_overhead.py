"""What gVisor (runsc) costs the grader per sample and per test, beside runc, on this machine's Docker engine.

Two measurements, each runtime in turn:

`--mode runner` (the real runner, which grades under the Debian bookworm runsc since it polls waitid where
pidfd_open is ENOSYS): grade() with the Docker backend, one warm sandbox (workers=1), an AC stdin program on
problems of 1 and `--runner-tests` tests; per sample = (time of 2N samples - time of N) / N (sandbox start cancels),
per test = (time of N samples x T tests - time of N x 1) / (N x (T - 1)).

`--mode mechanics` (what it measured before the runner ran under runsc): the runner's per-sample and per-test
mechanics inside the sandbox image with the Docker backend's flags:
- container start to first output (a sandbox is started once per worker, warm afterwards);
- per sample: fork a child, which reports one frame over a pipe and exits; the parent waits (the runner's fork per
  sample, without its rlimits and referee);
- per test: in one child, a stdin program compiled once is run against a test (captured stdin/stdout, as the
  harness wraps it) and its output is sent as a frame over a pipe, the runner's per-test round.

    python benchmarks/runsc_overhead.py [--mode runner|mechanics] [--runtimes runc,runsc] [--samples 200] [--tests 2000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time

IMAGE = "valley-sandbox:latest"
PROBE = r'''
import io, json, os, struct, sys, time
samples, tests = int(sys.argv[1]), int(sys.argv[2])
def frame(fd, obj):
    data = json.dumps(obj).encode()
    os.write(fd, struct.pack(">I", len(data)) + data)
start = time.perf_counter()
for _ in range(samples):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        frame(w, {"kind": "compiled"})
        os._exit(0)
    os.close(w)
    os.read(r, 65536)
    os.close(r)
    os.waitpid(pid, 0)
per_sample = (time.perf_counter() - start) / samples
code = compile("def wrapped():\n    n = int(input())\n    print(sum(range(n)))\n", "<program>", "exec")
space = {}
exec(code, space)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    for i in range(tests):
        sys.stdin, out = io.StringIO("100\n"), io.StringIO()
        sys.stdout = out
        space["wrapped"]()
        sys.stdout = sys.__stdout__
        frame(w, {"kind": "output", "index": i, "output": out.getvalue()})
    os._exit(0)
os.close(w)
start = time.perf_counter()
got = 0
while True:
    chunk = os.read(r, 1 << 16)
    if not chunk:
        break
    got += len(chunk)
os.waitpid(pid, 0)
per_test = (time.perf_counter() - start) / tests
print(json.dumps({"per_sample_ms": per_sample * 1e3, "per_test_us": per_test * 1e6}))
'''


def measure(runtime: str, samples: int, tests: int) -> dict:
    argv = ["docker", "run", "--rm", "-i", "--runtime", runtime, "--network", "none", "--read-only",
            "--tmpfs", "/scratch:rw,size=64m", "--tmpfs", "/tmp:rw,size=16m", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--user", "61000:61000", "--pids-limit", "128",
            "--memory", "768m", "--cpus", "1", "--workdir", "/scratch", IMAGE]
    started = time.perf_counter()
    first = subprocess.run([*argv, "python3", "-I", "-c", "print('ready')"], capture_output=True, text=True,
                           timeout=300, check=True)
    assert first.stdout.strip() == "ready"
    start_s = time.perf_counter() - started
    done = subprocess.run([*argv, "python3", "-I", "-c", PROBE, str(samples), str(tests)], capture_output=True,
                          text=True, timeout=900, check=True)
    return {"runtime": runtime, "container_start_s": round(start_s, 3), **{
        k: round(v, 3) for k, v in json.loads(done.stdout).items()}}


def measure_runner(runtime: str, samples: int, tests: int) -> dict:
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from valley_assets.grading import grade
    from valley_assets.grading.backends import using_runtime

    def problem(n_tests: int) -> dict:
        cases = [{"input": f"{i}\n", "output": f"{2 * i}\n", "testtype": "stdin"} for i in range(n_tests)]
        return {"question_id": f"t{n_tests}", "difficulty": "easy", "public_test_cases": json.dumps(cases[:1]),
                "private_test_cases": json.dumps(cases[1:]), "metadata": "{}"}

    def timed(n_samples: int, n_tests: int) -> float:
        p = problem(n_tests)
        with using_runtime(runtime if runtime != "runc" else None):
            started = time.perf_counter()
            out = grade([p], [{"question_id": p["question_id"], "code_list": ["print(2 * int(input()))"] * n_samples}],
                        backend="docker", workers=1, timeout_s=6.0, memory_mb=256)
            elapsed = time.perf_counter() - started
        verdicts = {r["verdict"] for r in out["results"][p["question_id"]]}
        assert verdicts == {"AC"}, verdicts
        return elapsed

    one, two, many = timed(samples, 1), timed(2 * samples, 1), timed(samples, tests)
    return {"runtime": runtime, "mode": "runner", "samples": samples, "tests": tests,
            "per_sample_ms": round((two - one) / samples * 1e3, 2),
            "per_test_us": round((many - one) / (samples * (tests - 1)) * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["runner", "mechanics"], default="runner")
    parser.add_argument("--runtimes", default="runc,runsc")
    parser.add_argument("--runner-samples", type=int, default=40)
    parser.add_argument("--runner-tests", type=int, default=200)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for _ in range(args.repeats):
        for runtime in args.runtimes.split(","):
            if args.mode == "runner":
                print(json.dumps(measure_runner(runtime, args.runner_samples, args.runner_tests)), flush=True)
            else:
                print(json.dumps(measure(runtime, args.samples, args.tests)), flush=True)


if __name__ == "__main__":
    main()
