"""The grading pod's main process: reads its shard from stdin, grades it on one warm runner, prints each verdict.

Self-contained (standard library only) like runner.py: it runs as `python3 -I -u -c <this source>` in the sandbox
image, which has no valley package. The orchestrator (kubernetes_backend.py) attaches to the pod's stdin once
(`stdin: true, stdinOnce: true`) and sends frames (4-byte big-endian length, UTF-8 JSON):

    {"kind": "header", "protocol": 2, "shard": i, "runner_source": "...", "runner_args": [...]}
    {"kind": "tests", "key": K, "inputs": [...], "outputs": [...]}      once per problem of the shard
    {"kind": "sample", "request": {...}}     a runner.SampleRequest with "tests_key": K and "scratch" (the pod's)
    {"kind": "end", "tests": n, "samples": m}                             counts, so a cut-off input is detected

and reads this pod's log, where the only lines that count are this process's (see "Who can write the log"):

    VALLEY-GRADE {"id": ..., "passed", "verdict", "tests_run", "time_s", "failure"[, "retire"]}   a runner.SampleResult
    VALLEY-SHARD {"received": m} | {"done": m} | {"lost": ID} | {"retired": ID}     progress, the end, a loss, a retire

Order of events, and why:
1. The whole input is read into this process's memory and stdin is closed before any program exists. The input
   holds every expected output of the shard; no file in the pod ever holds them, so a program cannot read them
   (it could read a file: it runs as this pod's one uid).
2. This process makes itself non-dumpable (prctl), so a program of the same uid cannot open /proc/1/mem or
   /proc/1/fd/* (ptrace access checks), i.e. can neither read the expected outputs nor write to the log.
3. Then the runner starts: `python3 -I -u -c <runner source> <header's runner_args>` (kubernetes_backend.RUNNER_ARGS:
   `--cleanup pgroup --private-ipc --private-dir /tmp --private-dir /dev/shm`), with pipes of its own as stdin,
   stdout and stderr (close_fds). It cannot use its `namespace` cleanup (which needs it to be pid 1 or 2: the
   container runtime's own setup forks use up the first pids of a pod's namespace), so after each verdict this
   process, the namespace's init, kills every process of the pod but itself and the runner (`sweep`) before the
   next sample starts, which is what the runner's namespace mode does in the Docker backend, and reaps the orphans.
Who can write the log: the container's stdout/stderr are held by this process alone; the runner's stderr is relayed
line by line behind a "runner: " prefix, so nothing a program prints can start a VALLEY- line.

A result with "retire" (the sample left state the runner could not remove: files in the pod's memory volumes, IPC
objects) ends the pod once its verdict is out, with exit 76: a new runner would share those volumes, so the sandbox
to replace is the pod (the Job's podFailurePolicy ignores exit 76, and the orchestrator sends the replacement only
what still lacks a verdict). A runner stopped by a signal (SIGSTOP, SIGTSTP: the program shares its uid) is killed
by a watchdog, which makes it a runner killed by its sample (below), instead of a pod waiting forever.

Exit status: 0 the shard is graded; 76 a sample asked for a fresh sandbox (above); 3 the input is malformed
(retrying cannot help: the Job fails at once);
75 the input was cut off or the runner was lost (an infrastructure failure: the Job controller starts a new pod,
and the orchestrator sends it only what is still missing). A runner killed by a signal during a sample was killed
by that sample (the one way a program can fail here that the Docker backend rules out, where the runner is the
container's init): the sample is RE, and the pod exits 76 to be replaced (the dead runner emptied nothing). No
signal handler is installed: as the namespace's init, this process then ignores every signal a program in the pod
could send it (Linux; gVisor 20221219 delivers SIGKILL to it, see k8s/README.md "Grading Jobs").
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time

PROTOCOL = 2  # 2: requests carry "scratch", results "failure" and "retire" (runner.py's SampleRequest/SampleResult)
EXIT_BAD_INPUT = 3
EXIT_RETRY = 75
EXIT_REPLACE_POD = 76
RE_ERROR_CODE = -4  # LiveCodeBench's runtime-error code (runner.ERROR_CODES)
GRADE_PREFIX = "VALLEY-GRADE "
SHARD_PREFIX = "VALLEY-SHARD "
PR_SET_DUMPABLE = 4


class BadInput(Exception):
    """The input cannot be graded as sent (a bug on the sending side): retrying would fail again."""


class CutOff(Exception):
    """The input ended early (the attach was lost): another pod can try again."""


def read_exact(stream, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise CutOff(f"input ended {left} bytes short of a frame")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(stream):
    (length,) = struct.unpack(">I", read_exact(stream, 4))
    try:
        return json.loads(read_exact(stream, length).decode("utf-8"))
    except ValueError as exc:
        raise BadInput(f"a frame is not JSON: {exc}") from None


def write_frame(stream, obj) -> None:
    data = json.dumps(obj).encode("utf-8")
    stream.write(struct.pack(">I", len(data)) + data)
    stream.flush()


def read_shard(stream) -> tuple[dict, dict, list]:
    """(header, tests by key, sample requests) of one shard, checked against the end frame's counts."""
    header = read_frame(stream)
    if not isinstance(header, dict) or header.get("kind") != "header":
        raise BadInput("the first frame is not a header")
    if header.get("protocol") != PROTOCOL:
        raise BadInput(f"protocol {header.get('protocol')!r}; this driver speaks {PROTOCOL}")
    tests, samples = {}, []
    while True:
        frame = read_frame(stream)
        kind = frame.get("kind") if isinstance(frame, dict) else None
        if kind == "tests":
            tests[frame["key"]] = (frame["inputs"], frame["outputs"])
        elif kind == "sample":
            request = frame["request"]
            if request.get("tests_key") not in tests:
                raise BadInput(f"sample {request.get('id')!r} names tests {request.get('tests_key')!r} not sent before")
            samples.append(request)
        elif kind == "end":
            if frame.get("tests") != len(tests) or frame.get("samples") != len(samples):
                raise BadInput(f"end frame counts {frame.get('tests')}/{frame.get('samples')}, received "
                               f"{len(tests)}/{len(samples)}")
            return header, tests, samples
        else:
            raise BadInput(f"unknown frame kind {kind!r}")


def make_undumpable() -> bool:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def live_pids() -> list[int]:
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            alive.append(int(entry))
    return alive


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def sweep(keep: set[int]) -> int:
    """Kill every process of the pod's pid namespace not in `keep` (repeated: a fork bomb refills between passes);
    returns how many were found the first time."""
    first = None
    for _ in range(500):
        others = [pid for pid in live_pids() if pid not in keep]
        if first is None:
            first = len(others)
        if not others:
            break
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        reap()
        time.sleep(0.001)
    reap()
    return first or 0


def emit(prefix: str, obj) -> None:
    sys.stdout.write(prefix + json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Runner:
    """The warm runner behind its pipes (the same exchange as backends.Worker, tests sent once per problem)."""

    def __init__(self, source: str, args: list[str]):
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-u", "-c", source, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, close_fds=True)
        threading.Thread(target=self._relay_stderr, daemon=True).start()
        self.stopped = False
        threading.Thread(target=self._kill_if_stopped, daemon=True).start()
        self.sent_key = None
        hello = self._read()
        if not (isinstance(hello, dict) and hello.get("ready")):
            raise CutOff(f"the runner did not start: {hello!r}")

    def _relay_stderr(self) -> None:
        for raw in self.process.stderr:
            sys.stderr.write("runner: " + raw.decode("utf-8", "replace").rstrip("\n") + "\n")
            sys.stderr.flush()

    def _kill_if_stopped(self) -> None:
        """A runner in a stop state (a program sent it SIGSTOP/SIGTSTP) would never answer: kill it, so the sample
        counts as having killed its runner."""
        pid = self.process.pid
        while self.process.returncode is None:
            try:
                with open(f"/proc/{pid}/stat") as handle:
                    state = handle.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                return
            if state in ("T", "t"):
                self.stopped = True
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
                return
            time.sleep(0.5)

    def _read(self):
        try:
            return read_frame(self.process.stdout)
        except (CutOff, BadInput, OSError) as exc:
            raise CutOff(f"the runner is gone ({exc}; exit {self.process.poll()})") from None

    def _exchange(self, request: dict) -> dict:
        try:
            write_frame(self.process.stdin, request)
        except OSError as exc:
            raise CutOff(f"the runner is gone ({exc!r}; exit {self.process.poll()})") from None
        response = self._read()
        if not isinstance(response, dict) or response.get("id") != request["id"]:
            raise CutOff(f"the runner broke the protocol: {response!r}"[:500])
        return response

    def grade(self, request: dict, tests: tuple[list, list]) -> dict:
        key = request["tests_key"]
        if key == self.sent_key:
            response = self._exchange(request)
            if response.get("need_tests") is not True:
                return response
        self.sent_key = key
        return self._exchange(dict(request, inputs=tests[0], outputs=tests[1]))

    def killed_by(self) -> int | None:
        """The signal that ended the runner, if a signal did (after its pipes broke, give it a moment to exit)."""
        try:
            code = self.process.wait(timeout=5)
        except (subprocess.TimeoutExpired, ChildProcessError):
            return None
        return -code if code < 0 else None

    def close(self) -> None:
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        except ChildProcessError:  # already reaped by reap()
            pass


def main() -> int:
    if os.getpid() != 1:
        # sweep() kills every process this uid can signal: only safe as the init of the pod's own pid namespace.
        emit(SHARD_PREFIX, {"error": f"bad input: the shard driver must be pid 1 of its container, not {os.getpid()}"})
        return EXIT_BAD_INPUT
    stdin = sys.stdin.buffer
    try:
        header, tests, samples = read_shard(stdin)
    except BadInput as exc:
        emit(SHARD_PREFIX, {"error": f"bad input: {exc}"})
        return EXIT_BAD_INPUT
    except CutOff as exc:
        emit(SHARD_PREFIX, {"error": f"input cut off: {exc}"})
        return EXIT_RETRY
    except (KeyError, TypeError) as exc:
        emit(SHARD_PREFIX, {"error": f"bad input: a frame lacks {exc}"})
        return EXIT_BAD_INPUT
    stdin.close()
    os.close(0)
    undumpable = make_undumpable()
    emit(SHARD_PREFIX, {"received": len(samples), "shard": header.get("shard"), "undumpable": undumpable})
    try:
        runner = Runner(header["runner_source"], list(header.get("runner_args") or []))
    except CutOff as exc:
        emit(SHARD_PREFIX, {"error": str(exc)})
        return EXIT_RETRY
    for request in samples:
        try:
            response = runner.grade(request, tests[request["tests_key"]])
        except CutOff as exc:
            signal_number = runner.killed_by()
            if signal_number is None:
                emit(SHARD_PREFIX, {"lost": request["id"], "error": str(exc)})
                return EXIT_RETRY
            # Killed by a signal while this sample ran: the sample did it (the runner shares the pod's one uid with
            # it; nothing else in the pod signals it, and leftovers of earlier samples were swept). LiveCodeBench's
            # harness fails a program that kills the harness's process; here it is RE. The dead runner did not empty
            # the pod's dirs or IPC objects after it: the pod is replaced like one whose runner retired.
            how = "stopped its runner, which was then killed" if runner.stopped else "killed its runner"
            response = {"id": request["id"], "passed": False, "verdict": "RE", "tests_run": 0, "time_s": 0.0,
                        "failure": {"test": None, "error_code": RE_ERROR_CODE, "error_type": None,
                                    "error_message": f"the program {how} (signal {signal_number})",
                                    "inputs": None, "expected": None, "output": None},
                        "retire": "the runner was killed by the sample: nothing emptied the pod's dirs after it"}
            sweep({os.getpid()})
            emit(GRADE_PREFIX, response)
            emit(SHARD_PREFIX, {"retired": request["id"], "reason": response["retire"]})
            return EXIT_REPLACE_POD
        if "error" in response or "verdict" not in response:
            emit(SHARD_PREFIX, {"lost": request["id"], "error": str(response.get("error", response))[:2000]})
            return EXIT_RETRY
        sweep({os.getpid(), runner.process.pid})
        emit(GRADE_PREFIX, response)
        if response.get("retire"):
            emit(SHARD_PREFIX, {"retired": request["id"], "reason": str(response["retire"])[:1000]})
            runner.close()
            return EXIT_REPLACE_POD
    runner.close()
    emit(SHARD_PREFIX, {"done": len(samples)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
