"""Isolation between samples: whatever one sample does in a warm sandbox, a later sample is graded as if alone.

Each case grades, in one sandbox (workers=1, samples in order), a hostile program followed by honest probes, and
compares the probes' verdicts with those the same probes get in a sandbox of their own. Every route a program has to
state that outlives it is tried: the runner's pipes (reached through /proc/<ppid>/fd), the runner's memory
(/proc/<ppid>/mem), files in the working directory, /tmp and /dev/shm, processes left running, signals to the
runner, System V IPC objects, modules on the import path and the environment.
"""

import pytest
from grading_helpers import make_problem

from valley_assets.grading import grade

ANSWER = "valley-expected-7781"
PROBLEM = make_problem("iso", [("1\n", ANSWER), ("2\n", ANSWER)])

HONEST_AC = f"input()\nprint({ANSWER!r})\n"
HONEST_WA = "input()\nprint('valley-expected-0000')\n"
# The harness runs programs in a writable working directory (its own cwd), with os.getcwd disabled: relative paths.
HONEST_FILES = (f"with open('work.txt', 'w') as f:\n    f.write({ANSWER!r})\n"
                "with open('work.txt') as f:\n    print(f.read())\n")
HONEST_SYSV = ("import ctypes\nlibc = ctypes.CDLL(None)\n"
               "seg = libc.shmget(0x7a11e, 4096, 0o1000 | 0o2000 | 0o600)\n"  # IPC_CREAT | IPC_EXCL
               f"print({ANSWER!r} if seg >= 0 else 'key taken')\nif seg >= 0:\n    libc.shmctl(seg, 0, None)\n")
HONEST_MEMORY = f"block = bytearray(250 * 1024 * 1024)\nprint({ANSWER!r})\n"
HONEST_IMPORTS = f"import heapq, bisect, json, decimal\nprint({ANSWER!r})\n"

# Frames as the grader reads them (4-byte length, JSON): forged AC answers for this and the next samples.
FORGE_RESPONSES = '''import json, os, struct
frames = b""
for i in range(12):
    data = json.dumps({"id": "iso#%d" % i, "passed": True, "verdict": "AC", "tests_run": 2, "time_s": 0.0,
                       "detail": ""}).encode()
    frames += struct.pack(">I", len(data)) + data
reached = 0
for base in ("/proc/%d/fd" % os.getppid(), "/proc/self/fd"):
    try:
        names = os.listdir(base)
    except OSError:
        continue
    for name in names:
        try:
            fd = os.open(base + "/" + name, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            os.write(fd, frames)
            reached += 1
        except OSError:
            pass
        os.close(fd)
print("reached", reached)
'''
# Rewrites the expected output wherever it lies in the runner's memory (the tests it caches for this problem).
WRITE_RUNNER_MEMORY = '''import os
target = ("valley-expected-" + "7781").encode()
hits = 0
try:
    ppid = os.getppid()
    with open("/proc/%d/maps" % ppid) as f:
        regions = [line.split()[:2] for line in f]
    with open("/proc/%d/mem" % ppid, "r+b", buffering=0) as mem:
        for span, perms in regions:
            if not perms.startswith("rw"):
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue
            at = data.find(target)
            while at >= 0:
                mem.seek(start + at)
                mem.write(b"valley-expected-0000")
                hits += 1
                at = data.find(target, at + 1)
except OSError as exc:
    print("blocked", exc)
print("rewrote", hits)
'''
LEAVE_FILES = '''import os
for d in (".", "/tmp", "/dev/shm"):
    for name in ("work.txt", "answer.txt"):
        try:
            os.mkdir(d + "/" + name, 0)
        except OSError:
            pass
    try:
        os.symlink("/dev/null", d + "/out.txt")
    except OSError:
        pass
    try:
        os.mkdir(d + "/locked", 0o700)
        with open(d + "/locked/data", "w") as f:
            f.write("x")
        os.mkdir(d + "/locked/inner", 0)
    except OSError:
        pass
# then fill the working directory, 8 MB a file, until it is full
block = "x" * (8 * 1024 * 1024)
for i in range(64):
    try:
        with open("fill%d" % i, "w") as f:
            f.write(block)
    except OSError:
        break
print("left files")
'''
# A daemon: double fork, new session, then it keeps killing every process it may and breaking the scratch dir.
LEAVE_PROCESS = '''import ctypes, os, time
libc = ctypes.CDLL(None)
if libc.fork() == 0:
    libc.setsid()
    if libc.fork() == 0:
        me = os.getpid()
        deadline = time.time() + 20
        while time.time() < deadline:
            for entry in os.listdir("/proc"):
                if entry.isdigit() and int(entry) != me:
                    libc.kill(int(entry), 9)
            try:
                os.mkdir("work.txt", 0)
            except OSError:
                pass
            time.sleep(0.005)
    os._exit(0)
time.sleep(0.3)
print("left a daemon")
'''
SIGNAL_RUNNER = '''import ctypes, os, time
libc = ctypes.CDLL(None)
ppid = os.getppid()
for sig in range(1, 65):
    if sig not in (9, 19):  # SIGKILL and SIGSTOP last
        libc.kill(ppid, sig)
libc.kill(ppid, 19)
libc.kill(ppid, 9)
time.sleep(0.2)
print("signalled")
'''
LEAVE_SYSV = '''import ctypes
libc = ctypes.CDLL(None)
libc.shmat.restype = ctypes.c_void_p
libc.shmget(0x7a11e, 4096, 0o1000 | 0o600)
libc.msgget(0x7a11f, 0o1000 | 0o600)
libc.semget(0x7a120, 1, 0o1000 | 0o600)
# 500 MB of anonymous shared memory, touched so it is charged, detached so only the segments hold it: with the
# 250 MB the next program allocates, more than the container's memory limit (memory_mb + 256 MB)
for _ in range(5):
    seg = libc.shmget(0, 100 * 1024 * 1024, 0o1000 | 0o600)
    if seg < 0:
        break
    at = libc.shmat(seg, None, 0)
    if at in (None, ctypes.c_void_p(-1).value):
        break
    ctypes.memset(at, 1, 100 * 1024 * 1024)
    libc.shmdt(ctypes.c_void_p(at))
print("left segments")
'''
PLANT_MODULES = '''import os, sys
poison = "raise SystemExit('poisoned')\\n"
for d in [".", "/tmp", os.environ.get("HOME", "."), *sys.path]:
    for name in ("heapq.py", "bisect.py", "numpy.py", "sitecustomize.py", "usercustomize.py", "json.py"):
        try:
            with open(os.path.join(d or ".", name), "w") as f:
                f.write(poison)
        except (OSError, TypeError):
            pass
os.environ["PYTHONPATH"] = "/tmp"
print("planted")
'''

# Deeper than the runner empties (runner._MAX_TREE_DEPTH): the runner asks to be replaced before the next sample.
LEAVE_DEEP_TREE = '''import os
path = "work.txt"
for _ in range(100):
    os.mkdir(path)
    path += "/d"
print("deep")
'''

CASES = {
    "forged responses on the runner's pipes": (FORGE_RESPONSES, [HONEST_WA, HONEST_AC, HONEST_WA]),
    "write to the runner's memory": (WRITE_RUNNER_MEMORY, [HONEST_AC, HONEST_AC]),
    "files left in scratch, /tmp and /dev/shm": (LEAVE_FILES, [HONEST_FILES, HONEST_AC]),
    "a process left running": (LEAVE_PROCESS, [HONEST_FILES, HONEST_AC, HONEST_AC]),
    "signals to the runner": (SIGNAL_RUNNER, [HONEST_AC, HONEST_WA]),
    "System V IPC left behind": (LEAVE_SYSV, [HONEST_SYSV, HONEST_MEMORY]),
    "modules planted on the import path": (PLANT_MODULES, [HONEST_IMPORTS, HONEST_AC]),
    "a tree too deep to empty": (LEAVE_DEEP_TREE, [HONEST_FILES, HONEST_AC]),
}


def _verdicts(codes: list[str], backend: str) -> list[str]:
    out = grade([PROBLEM], [{"question_id": "iso", "code_list": codes}], backend=backend, workers=1,
                timeout_s=2.0, memory_mb=512)
    return [r["verdict"] for r in out["results"]["iso"]]


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_a_sample_cannot_change_a_later_samples_verdict(case, backend, isolation_of_process_backend):
    if backend == "process" and isolation_of_process_backend != "bwrap":
        pytest.skip("the process backend without bubblewrap isolates with rlimits only")
    hostile, probes = CASES[case]
    if case == "System V IPC left behind" and backend == "process":
        probes = probes[:1]  # no memory cgroup around a bwrap sandbox: only the key collision shows there
    alone = _verdicts(probes, backend)
    assert alone == ["WA" if probe is HONEST_WA else "AC" for probe in probes]
    after = _verdicts([HONEST_AC, hostile, *probes, hostile, *probes], backend)
    assert after[0] == "AC"
    assert after[1] != "AC" and after[2 + len(probes)] != "AC"
    assert after[2:2 + len(probes)] == alone, (case, after, alone)
    assert after[3 + len(probes):] == alone, (case, after, alone)
