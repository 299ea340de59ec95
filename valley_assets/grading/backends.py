"""Where the runner lives: a warm pool of long-lived sandboxes, one per worker.

- docker: one container per worker from the sandbox image (no network, read-only root, tmpfs scratch, all caps
  dropped, no-new-privileges, non-root, pids/memory/CPU limits), labelled so leftovers of a killed grader are
  removed by the next start; under the engine's default runtime (runc), or another registered one when configured
  (`grading.runtime`, e.g. gVisor's `runsc`: `sandbox_runtime`).
- process: the runner as a local process, inside bubblewrap when `bwrap` works (new user/pid/net/ipc namespaces,
  read-only binds of the interpreter only, tmpfs scratch), else with rlimits only (loudly reported).
Each sandbox runs `runner.py`, which forks a fresh child per sample; the frames' shapes are runner.py's TypedDicts
(RunnerReady, SampleRequest, SampleResult, NeedTests, RunnerFailed).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from valley_assets.grading.runner import RunnerReady, SampleRequest, SampleResult, read_frame, write_frame

log = logging.getLogger(__name__)

RUNNER_PATH = Path(__file__).with_name("runner.py")
DEFAULT_IMAGE = "valley-sandbox:latest"
CONTAINER_LABEL = "valley.grader"
# Children of worker i run as this uid + i, so RLIMIT_NPROC and cleanup by uid are per worker.
CHILD_UID_BASE = 61000
DOCKER_PIDS_LIMIT = 128
# Processes+threads a sample may have; only set where the children have a uid of their own (root ignores it).
CHILD_NPROC = 64
RLIMIT_ONLY_WARNING = (
    "WARNING: graded programs ran with rlimits only (no Docker image, no working bubblewrap): they could read "
    "files this user can read and reach the network. Install bubblewrap or build the sandbox image."
)


def sandbox_image() -> str:
    return os.environ.get("VALLEY_SANDBOX_IMAGE", DEFAULT_IMAGE)


_runtime: contextvars.ContextVar[str | None] = contextvars.ContextVar("valley_sandbox_runtime", default=None)


def sandbox_runtime() -> str | None:
    """The Docker runtime of the sandboxes: set by `using_runtime` (the grader resource's `grading.runtime`), else
    $VALLEY_SANDBOX_RUNTIME, else None (the engine's default, runc)."""
    return _runtime.get() or os.environ.get("VALLEY_SANDBOX_RUNTIME") or None


@contextlib.contextmanager
def using_runtime(runtime: str | None):
    """Grade with Docker runtime `runtime` (e.g. runsc) inside this block; read once, by choose_isolation."""
    token = _runtime.set(runtime)
    try:
        yield
    finally:
        _runtime.reset(token)


def docker_runtimes() -> set[str]:
    """Runtimes the Docker engine has registered (runc, and e.g. runsc from /etc/docker/daemon.json)."""
    done = _docker("info", "--format", "{{json .Runtimes}}", timeout=15)
    if done.returncode != 0:
        return set()
    try:
        return set(json.loads(done.stdout or "{}"))
    except ValueError:
        return set()


class SandboxError(RuntimeError):
    """The sandbox itself failed (could not start, died, broke the protocol) - never a verdict."""


@dataclass
class Isolation:
    backend: str  # docker | process | kubernetes
    isolation: str  # docker | docker/<runtime> | bwrap | rlimits | pod
    warning: str | None = None
    runtime: str | None = None  # docker: the engine's runtime for the sandboxes (None: its default)


class Worker:
    """One runner process behind a framed pipe; `grade()` sends a sample and waits for its verdict."""

    def __init__(self, argv: list[str], name: str, *, scratch: str, nproc: int | None, preexec=None, env=None,
                 on_close=None):
        self.name = name
        self.scratch = scratch  # the children's working directory, as the runner sees it
        self.nproc = nproc  # RLIMIT_NPROC for the children, where it is enforced (a uid of their own)
        self._on_close = on_close
        self._last_tests_key = None
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=preexec, env=env, close_fds=True,
            start_new_session=True,  # Ctrl-C reaches the grader, which then removes its sandboxes itself
        )
        hello: RunnerReady = self._read()
        if not (isinstance(hello, dict) and hello.get("ready")):
            raise SandboxError(f"sandbox {name} did not start: {self._stderr_tail()}")
        self.ready = hello

    def grade(self, request: SampleRequest) -> SampleResult:
        """Send one sample, return its verdict. A request with a "tests_key" goes without its tests when this
        sandbox was last sent that key (the runner keeps them, see runner.TestsCache)."""
        key = request.get("tests_key")
        if key is not None and key == self._last_tests_key:
            response = self._exchange({k: v for k, v in request.items() if k not in ("inputs", "outputs")})
            if response.get("need_tests") is not True:
                return self._checked(response)
        self._last_tests_key = key
        return self._checked(self._exchange(request))

    def _exchange(self, request: SampleRequest) -> dict:
        try:
            write_frame(self.process.stdin.fileno(), request)
        except OSError as exc:
            raise SandboxError(f"sandbox {self.name} is gone: {exc!r}; {self._stderr_tail()}") from exc
        response = self._read()
        if not isinstance(response, dict) or response.get("id") != request["id"]:
            raise SandboxError(f"sandbox {self.name} broke the protocol: {self._stderr_tail()}")
        return response

    def _checked(self, response: dict) -> SampleResult:
        if "error" in response or "verdict" not in response:
            raise SandboxError(f"sandbox {self.name}: {response.get('error', response)}")
        return response

    def _read(self):
        try:
            return read_frame(self.process.stdout.fileno())
        except (OSError, ValueError) as exc:
            raise SandboxError(f"sandbox {self.name}: unreadable reply {exc!r}") from exc

    def _stderr_tail(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        try:
            return self.process.stderr.read()[-2000:].decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def kill(self) -> None:
        """Stop now (interruption, broken sandbox): kill the runner, remove its container."""
        try:
            self.process.kill()
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self._on_close is not None:
            self._on_close()


# ----------------------------------------------------------------------------------------------------------------
# Docker
# ----------------------------------------------------------------------------------------------------------------


def _docker(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def docker_available(image: str | None = None) -> tuple[bool, str]:
    """(True, "") when a Docker engine answers and the image exists; else (False, why)."""
    image = image or sandbox_image()
    if shutil.which("docker") is None:
        return False, "the docker CLI is not installed"
    try:
        if _docker("version", "--format", "{{.Server.Version}}", timeout=15).returncode != 0:
            return False, "no Docker engine answers"
        if _docker("image", "inspect", image, timeout=15).returncode != 0:
            return False, f"the sandbox image {image} is missing (run sandbox/build_image_offline.sh)"
    except (subprocess.TimeoutExpired, OSError) as exc:
        return False, f"docker did not answer: {exc!r}"
    return True, ""


def remove_leftover_containers() -> int:
    """Remove sandbox containers of graders on this host that are no longer alive; returns how many."""
    listed = _docker("ps", "-a", "--filter", f"label={CONTAINER_LABEL}", "--format",
                     '{{.ID}} {{.Label "valley.grader.host"}} {{.Label "valley.grader.pid"}}')
    stale = []
    for line in listed.stdout.splitlines():
        parts = line.split()
        if len(parts) != 3:
            stale.append(parts[0]) if parts else None
            continue
        container, host, pid = parts
        if host == socket.gethostname() and not _pid_alive(int(pid)):
            stale.append(container)
    if stale:
        _docker("rm", "-f", *stale, timeout=60)
    return len(stale)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@functools.lru_cache(maxsize=1)
def runner_source() -> str:
    return RUNNER_PATH.read_text()


def start_docker_worker(index: int, memory_mb: int, image: str | None = None, runtime: str | None = None) -> Worker:
    image = image or sandbox_image()
    name = f"valley-grader-{os.getpid()}-{index}-{uuid.uuid4().hex[:8]}"
    uid = CHILD_UID_BASE + index
    argv = [
        "docker", "run", "-i", "--rm", "--name", name,
        "--label", f"{CONTAINER_LABEL}=1",
        "--label", f"valley.grader.host={socket.gethostname()}",
        "--label", f"valley.grader.pid={os.getpid()}",
        "--network", "none",
        "--read-only",
        # Owned by the worker's uid: the image's /scratch (root, 0755) would otherwise lend the tmpfs its mode, and
        # the programs' working directory would not be writable (it is in the harness).
        "--tmpfs", f"/scratch:rw,nosuid,nodev,size=64m,uid={uid},gid={uid}",
        "--tmpfs", "/tmp:rw,nosuid,nodev,size=16m,mode=1777",
        "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--user", f"{uid}:{uid}",
        "--pids-limit", str(DOCKER_PIDS_LIMIT),
        # The runner itself needs ~30 MB; the program gets memory_mb through RLIMIT_AS on top of the cgroup.
        "--memory", f"{memory_mb + 256}m", "--memory-swap", f"{memory_mb + 256}m",
        "--cpus", "1",
        "--ulimit", "nofile=256:256",
        "--log-driver", "none",
        "--workdir", "/scratch",
        *(["--runtime", runtime] if runtime else []),
        # The runner travels in the command, not as a bind mount of this file: a mount names a path on the engine's
        # machine, which is not this one when the grader itself runs in a container (a Dagster run pod using the
        # node's engine) or talks to a remote DOCKER_HOST. ~50 KB, under Linux's 128 KiB limit per argument.
        image, "python3", "-I", "-u", "-c", runner_source(), "--cleanup", "namespace",
        "--private-dir", "/tmp", "--private-dir", "/dev/shm",
    ]
    return Worker(argv, name, scratch="/scratch", nproc=CHILD_NPROC,
                  on_close=lambda: _docker("rm", "-f", name, timeout=60))


# ----------------------------------------------------------------------------------------------------------------
# Local process (bubblewrap or rlimits only)
# ----------------------------------------------------------------------------------------------------------------


def _world_usable(path: str) -> bool:
    """Every directory on the way is traversable and the file executable by any user (the children's uids)."""
    import stat

    path = os.path.realpath(path)
    try:
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return False
        parent = os.path.dirname(path)
        while True:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
            if parent == "/":
                return True
            parent = os.path.dirname(parent)
    except OSError:
        return False


def _interpreter() -> str:
    """The Python that runs the runner: this one, unless other users cannot reach it (e.g. a pyenv under /root,
    while the sandbox runs as an unprivileged uid); then the system python3."""
    candidates = [sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"]
    for candidate in candidates:
        if os.path.exists(candidate) and (os.geteuid() != 0 or _world_usable(candidate)):
            return os.path.realpath(candidate)
    return os.path.realpath(sys.executable)


def _bwrap_argv(runner_dir: str) -> list[str]:
    # --as-pid-1: the runner is the namespace's init, which its children cannot kill (the kernel drops signals
    # from inside the namespace that init has no handler for, SIGKILL included).
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--as-pid-1", "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONHASHSEED", "0"]
    bound = set()
    prefix = os.path.dirname(os.path.dirname(_interpreter()))  # <prefix>/bin/python3.x
    for path in ("/usr", "/bin", "/lib", "/lib64", "/sbin", prefix):
        if not os.path.exists(path) or path in bound:
            continue
        bound.add(path)
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif not any(path.startswith(b + "/") for b in bound if b != path):
            argv += ["--ro-bind", path, path]
    # Only /tmp (the scratch dir) and /dev/shm are writable: bwrap's root and /dev are tmpfs owned by the sandbox's
    # uid, where a sample could otherwise leave files for the next one.
    argv += ["--ro-bind", runner_dir, "/opt/valley", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm",
             "--tmpfs", "/tmp", "--chdir", "/tmp", "--remount-ro", "/dev", "--remount-ro", "/"]
    return argv


def _drop_to(uid: int):
    def preexec():
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    return preexec


_bwrap_probe: dict[bool, bool] = {}
_bwrap_lock = threading.Lock()


def bwrap_works() -> bool:
    """bubblewrap is installed and can create its namespaces here (as the user the runners will run as)."""
    with _bwrap_lock:
        if os.geteuid() in _bwrap_probe:
            return _bwrap_probe[os.geteuid()]
        ok = False
        if shutil.which("bwrap"):
            argv = _bwrap_argv(str(RUNNER_PATH.parent)) + [_interpreter(), "-I", "-c", "print('ok')"]
            preexec = _drop_to(CHILD_UID_BASE) if os.geteuid() == 0 else None
            try:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=30, preexec_fn=preexec)
                ok = done.returncode == 0 and done.stdout.strip() == "ok"
            except (subprocess.TimeoutExpired, OSError):
                ok = False
        _bwrap_probe[os.geteuid()] = ok
        return ok


def start_process_worker(index: int, use_bwrap: bool) -> Worker:
    interpreter = _interpreter()
    root = os.geteuid() == 0
    uid = CHILD_UID_BASE + index
    clean_env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
    if use_bwrap:
        # As root, enter bwrap as the worker's own uid: its user namespace then maps to that uid on the host,
        # so RLIMIT_NPROC (which root ignores) holds, and nothing in the sandbox is root on the host.
        argv = _bwrap_argv(str(RUNNER_PATH.parent)) + [
            interpreter, "-I", "-u", "/opt/valley/runner.py", "--cleanup", "namespace", "--private-dir", "/dev/shm"]
        return Worker(argv, f"bwrap-{index}", scratch="/tmp", nproc=CHILD_NPROC if root else None,
                      preexec=_drop_to(uid) if root else None, env=clean_env)
    scratch = tempfile.mkdtemp(prefix=f"valley-grader-{index}-")
    argv = [interpreter, "-I", "-u", str(RUNNER_PATH)]
    if root:
        os.chown(scratch, uid, uid)
        argv += ["--cleanup", "uid", "--child-uid", str(uid)]
    else:
        argv += ["--cleanup", "pgroup"]
    env = dict(clean_env, TMPDIR=scratch)
    return Worker(argv, f"process-{index}", scratch=scratch, nproc=CHILD_NPROC if root else None, env=env,
                  on_close=lambda: shutil.rmtree(scratch, ignore_errors=True))


def choose_isolation(backend: str) -> Isolation:
    """Resolve "auto" and check that the requested backend can run here."""
    if backend not in ("auto", "docker", "process"):
        raise ValueError(f"backend must be auto, docker or process, got {backend!r}")
    runtime = sandbox_runtime()
    if backend in ("auto", "docker"):
        ok, why = docker_available()
        if ok and runtime and runtime not in docker_runtimes():
            ok, why = False, (f"the Docker runtime {runtime!r} (grading.runtime) is not registered with the engine "
                              "(/etc/docker/daemon.json \"runtimes\", then reload dockerd; k8s/README.md)")
            if backend == "auto":
                raise SandboxError(f"docker backend unavailable: {why}")
        if ok:
            return Isolation("docker", f"docker/{runtime}" if runtime else "docker", runtime=runtime)
        if backend == "docker":
            raise SandboxError(f"docker backend unavailable: {why}")
        log.info("grader: docker backend unavailable (%s); using the process backend", why)
    if bwrap_works():
        return Isolation("process", "bwrap")
    log.warning(RLIMIT_ONLY_WARNING)
    return Isolation("process", "rlimits", RLIMIT_ONLY_WARNING)


def start_worker(isolation: Isolation, index: int, memory_mb: int) -> Worker:
    if isolation.backend == "docker":
        return start_docker_worker(index, memory_mb, runtime=isolation.runtime)
    return start_process_worker(index, use_bwrap=isolation.isolation == "bwrap")
