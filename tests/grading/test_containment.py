"""Hostile programs: each must end with a verdict other than AC, the grader must keep going, the host unchanged.

Every attack prints, on success, exactly the expected output, so AC would mean the attack worked.
"""

import os
import subprocess
import tempfile
import time

import pytest
from grading_helpers import make_problem

from tests.netutil import connection_trap
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
    with connection_trap() as (port, connections):
        attacks = _attacks(victim_dir, port)
        problem = make_problem("attack", [("", "ESCAPED")])
        # Another grader on the machine (a benchmark, a parallel job) runs programs under the same uids: only what
        # this grading leaves behind counts.
        others = set(_sandbox_uid_processes())
        out = grade([problem], [{"question_id": "attack", "code_list": list(attacks.values())}], backend=backend,
                    workers=2, timeout_s=1.0, memory_mb=512)
    verdicts = dict(zip(attacks, (r["verdict"] for r in out["results"]["attack"])))
    assert all(v != "AC" for v in verdicts.values()), verdicts
    assert verdicts["infinite loop"] == "TLE" and verdicts["long sleep"] == "TLE"
    assert verdicts["output flood"] == "OLE"
    assert verdicts["ctypes segfault"] == "RE"
    # The host is unchanged: no file, no connection, nothing left running, no container left behind.
    assert os.listdir(victim_dir) == []
    assert connections == []
    deadline = time.monotonic() + 5  # sandboxes are killed on the way out; give the kernel a moment to reap
    while set(_sandbox_uid_processes()) - others and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(set(_sandbox_uid_processes()) - others) == []
    if backend == "docker":
        left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={CONTAINER_LABEL}", "--filter",
                               f"label=valley.grader.pid={os.getpid()}"], capture_output=True, text=True)
        assert left.stdout.strip() == ""
    # The grader still works after all that.
    again = grade([make_problem("ok", [("", "1")])], [{"question_id": "ok", "code_list": ["print(1)"]}],
                  backend=backend, workers=1)
    assert again["results"]["ok"][0]["verdict"] == "AC"
    os.rmdir(victim_dir)


# A program that looks for the expected outputs in its own memory: the request the runner decoded, the tests it
# caches, the decoded expected values, its callers' frames. Before forking, those are all in the runner's memory.
_HUNT = '''import gc, json, sys
def hunt():
    for o in gc.get_objects():
        if isinstance(o, dict):
            if isinstance(o.get("outputs"), list) and o["outputs"]:
                return o["outputs"]
            if isinstance(o.get("store"), dict):
                for _, outputs in o["store"].values():
                    if outputs:
                        return outputs
    f = sys._getframe()
    while f is not None:
        for name in ("expected_call_outputs", "expected_values", "outputs", "expected"):
            v = f.f_locals.get(name)
            if isinstance(v, list) and v:
                return v
        f = f.f_back
    return None
'''
# Writes fake reports (the old and the current frame kinds) on every descriptor it has, then answers wrongly.
_FORGE = '''import json, os, struct
def forge(index, value):
    for frame in ({"kind": "result", "index": index, "equal": True},
                  {"kind": "result", "index": index, "value": value},
                  {"kind": "output", "index": index, "output": "valley-secret-answer"}):
        data = json.dumps(frame).encode()
        for fd in range(3, 256):
            try:
                os.write(fd, struct.pack(">I", len(data)) + data)
            except OSError:
                pass
'''


def test_programs_cannot_fake_a_pass(backend):
    """Call-based results are compared in the runner, against expected outputs the child does not hold."""
    secret = '"valley-secret-answer"'
    functional = make_problem("fake", [("1", secret), ("2", secret)], fn_name="solve")
    stdin = make_problem("fake-stdin", [("1\n", "valley-secret-answer"), ("2\n", "valley-secret-answer")])
    attacks = {
        "__eq__ always true": "class Yes:\n    def __eq__(self, other):\n        return True\n"
                              "    __hash__ = object.__hash__\n"
                              "class Solution:\n    def solve(self, n):\n        return [Yes()][0]\n",
        "str subclass with __eq__": "class S(str):\n    def __eq__(self, other):\n        return True\n"
                                    "class Solution:\n    def solve(self, n):\n        return S('no')\n",
        "forged reports": _FORGE + "class Solution:\n    def solve(self, n):\n"
                                   "        forge(n - 1, ['s', 'valley-secret-answer'])\n        return 'wrong'\n",
        "expected outputs from memory": _HUNT + "class Solution:\n    calls = 0\n    def solve(self, n):\n"
                                                "        found = hunt()\n        Solution.calls += 1\n"
                                                "        return None if found is None else json.loads(found[Solution.calls - 1])\n",
    }
    stdin_attack = _HUNT + "found = hunt()\nprint(found[int(input()) - 1] if found else 'nothing found')\n"
    # Twice per problem, so later samples run with the problem's tests cached in the runner.
    out = grade([functional, stdin],
                [{"question_id": "fake", "code_list": list(attacks.values()) * 2},
                 {"question_id": "fake-stdin", "code_list": [stdin_attack] * 2}], backend=backend, workers=1,
                timeout_s=2.0)
    verdicts = dict(zip(list(attacks) * 2, (r["verdict"] for r in out["results"]["fake"])))
    assert all(r["verdict"] != "AC" for r in out["results"]["fake"]), verdicts
    assert verdicts["__eq__ always true"] == "WA" and verdicts["str subclass with __eq__"] == "WA"
    assert [r["verdict"] for r in out["results"]["fake-stdin"]] == ["WA", "WA"]
    # The same grader still passes an honest answer.
    honest = grade([functional], [{"question_id": "fake", "code_list": [
        "class Solution:\n    def solve(self, n):\n        return 'valley-secret-answer'\n"]}], backend=backend, workers=1)
    assert honest["results"]["fake"][0]["verdict"] == "AC"
