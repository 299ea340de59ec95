"""Hostile programs: each must end with a verdict other than AC, the grader must keep going, the host unchanged.

Every attack prints, on success, exactly the expected output, so AC would mean the attack worked.
"""

import os
import socket
import subprocess
import tempfile
import threading
import time

import pytest
from grading_helpers import make_problem

from valley_assets.grading import grade
from valley_assets.grading.backends import CHILD_UID_BASE, CONTAINER_LABEL

SECRET = "valley-containment-secret-7f3a"


def _attacks(victim_dir: str, port: int) -> dict[str, str]:
    return {
        "fork bomb": "import ctypes\nlibc = ctypes.CDLL(None)\nwhile True:\n    libc.fork()\n",
        "memory bomb": "x = []\nwhile True:\n    x.append(bytearray(50 * 1024 * 1024))\n",
        "infinite loop": "while True:\n    pass\n",
        "long sleep": "import time\ntime.sleep(3600)\nprint('ESCAPED')\n",
        "network connection": f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                              "print('ESCAPED')\n",
        "write outside scratch": f"with open({victim_dir!r} + '/escaped.txt', 'w') as f:\n    f.write('x')\n"
                                 "print('ESCAPED')\n",
        "host env secrets": "import glob, os\nfound = [v for v in os.environ.values() if 'containment' in v]\n"
                            "for p in glob.glob('/proc/*/environ'):\n    try:\n"
                            "        found += [s for s in open(p, 'rb').read().decode(errors='ignore').split('\\0')"
                            " if 'containment' in s]\n    except Exception:\n        pass\n"
                            "print('ESCAPED' if found else 'no secret')\n",
        "kill parent": "import ctypes, os, time\nlibc = ctypes.CDLL(None)\nppid = os.getppid()\n"
                       "for target in (ppid, 1, -1):\n    libc.kill(target, 9)\ntime.sleep(0.2)\n"
                       "print('ESCAPED' if libc.kill(ppid, 0) != 0 or os.getppid() != ppid else 'parent alive')\n",
        "output flood": "import sys\nsys.stdout.write('x' * 100_000_000)\nprint('ESCAPED')\n",
        "recursion bomb": "import sys\nsys.setrecursionlimit(10 ** 9)\ndef f(n):\n    return f(n + 1)\nf(0)\n",
        "thousands of threads": "import threading, time\nfor _ in range(5000):\n"
                                "    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
                                "print('ESCAPED')\n",
        "ctypes segfault": "import ctypes\nctypes.string_at(0)\nprint('ESCAPED')\n",
    }


def _sandbox_uid_processes() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as f:
                    uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
            except (OSError, StopIteration, ValueError):
                continue
            if CHILD_UID_BASE <= uid < CHILD_UID_BASE + 64:
                pids.append(int(entry))
    return pids


@pytest.mark.slow
def test_hostile_programs_are_contained(backend, isolation_of_process_backend, monkeypatch):
    if backend == "process" and isolation_of_process_backend != "bwrap":
        pytest.skip("the process backend without bubblewrap isolates with rlimits only; containment needs bwrap")
    monkeypatch.setenv("VALLEY_CONTAINMENT_SECRET", SECRET)
    victim_dir = tempfile.mkdtemp(prefix="valley-victim-", dir="/var/tmp")
    os.chmod(victim_dir, 0o777)  # only the sandbox may stop the write
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    connections = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                connections.append(server.accept())
            except OSError:
                pass

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    attacks = _attacks(victim_dir, server.getsockname()[1])
    problem = make_problem("attack", [("", "ESCAPED")])
    try:
        out = grade([problem], [{"question_id": "attack", "code_list": list(attacks.values())}], backend=backend,
                    workers=2, timeout_s=1.0, memory_mb=512)
    finally:
        stop.set()
        acceptor.join()
        server.close()
    verdicts = dict(zip(attacks, (r["verdict"] for r in out["results"]["attack"])))
    assert all(v != "AC" for v in verdicts.values()), verdicts
    assert verdicts["infinite loop"] == "TLE" and verdicts["long sleep"] == "TLE"
    assert verdicts["output flood"] == "OLE"
    assert verdicts["ctypes segfault"] == "RE"
    # The host is unchanged: no file, no connection, nothing left running, no container left behind.
    assert os.listdir(victim_dir) == []
    assert connections == []
    deadline = time.monotonic() + 5  # sandboxes are killed on the way out; give the kernel a moment to reap
    while _sandbox_uid_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sandbox_uid_processes() == []
    if backend == "docker":
        left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={CONTAINER_LABEL}", "--filter",
                               f"label=valley.grader.pid={os.getpid()}"], capture_output=True, text=True)
        assert left.stdout.strip() == ""
    # The grader still works after all that.
    again = grade([make_problem("ok", [("", "1")])], [{"question_id": "ok", "code_list": ["print(1)"]}],
                  backend=backend, workers=1)
    assert again["results"]["ok"][0]["verdict"] == "AC"
    os.rmdir(victim_dir)
