"""Varied programs through the full grader; expected verdicts follow from the harness's rules.

Each table is graded in one grade() call per backend (docker cases skip without an engine+image, or fail under
VALLEY_REQUIRE_DOCKER=1).
"""

import time
from pathlib import Path

import pytest
from grading_helpers import grade_programs, make_problem

SUM_PROBLEM = make_problem("sum", [("1 2\n", "3\n"), ("10 -4\n", "6\n"), ("5 5\n", "10\n")])

STDIN_CASES = [
    ("plain", "a, b = map(int, input().split())\nprint(a + b)", "AC"),
    ("main guard", "def main():\n    a, b = map(int, input().split())\n    print(a + b)\n\nif __name__ == '__main__':\n"
     "    main()\n", "AC"),
    ("double-quoted guard", 'def main():\n    print(sum(map(int, input().split())))\nif __name__ == "__main__":\n'
     "    main()\n", "AC"),
    ("sys.stdin.read", "import sys\nprint(sum(map(int, sys.stdin.read().split())))", "AC"),
    ("readline keeps newline", "import sys\nline = sys.stdin.readline()\nassert line.endswith('\\n')\n"
     "print(sum(map(int, line.split())))", "AC"),
    ("from sys import stdin", "from sys import stdin\nprint(sum(map(int, stdin.readline().split())))", "AC"),
    # The prelude's `from builtins import *` binds the real open() before the harness patches builtins.open, and the
    # harness's child has /dev/null on fd 0: open(0) reads nothing.
    ("open(0)", "print(sum(map(int, open(0).read().split())))", "WA"),
    ("stdin.buffer", "import sys\nprint(sum(map(int, sys.stdin.buffer.read().split())))", "AC"),
    ("float format", "a, b = map(int, input().split())\nprint(f'{a + b:.3f}')", "AC"),
    ("exponent format", "a, b = map(int, input().split())\nprint(f'{a + b}e0')", "AC"),
    ("odd whitespace", "a, b = map(int, input().split())\nprint('\\n\\n   ', a + b, '   \\n\\n')", "AC"),
    ("sys.exit after print", "import sys\na, b = map(int, input().split())\nprint(a + b)\nsys.exit(0)\nprint(99)",
     "AC"),
    ("exit() builtin", "a, b = map(int, input().split())\nprint(a + b)\nexit()", "AC"),
    ("quit() is disabled", "a, b = map(int, input().split())\nprint(a + b)\nquit()", "RE"),
    ("prelude imports", "print(reduce(add, map(int, input().split())))", "AC"),
    ("wrong answer", "a, b = map(int, input().split())\nprint(a - b)", "WA"),
    ("extra line", "a, b = map(int, input().split())\nprint(a + b)\nprint(0)", "WA"),
    ("wrong on a private test only", "a, b = map(int, input().split())\nprint(a + b if a < 5 else 0)", "WA"),
    ("crash", "raise ValueError('boom')", "RE"),
    ("syntax error", "print(1 +", "RE"),
    ("empty program", "", "RE"),
    ("global in nested function", "total = 0\ndef add(v):\n    global total\n    total += v\n"
     "for v in map(int, input().split()):\n    add(v)\nprint(total)", "RE"),
    ("iterating sys.stdin", "import sys\nprint(sum(int(x) for line in sys.stdin for x in line.split()))", "RE"),
    ("stdout.write via from-import", "from sys import stdout\nstdout.write(str(sum(map(int, input().split()))))",
     "WA"),
    # The harness execs programs from a module without `from __future__ import annotations`: annotations run.
    ("undefined annotation", "def f(x: Undefined):\n    return x\nprint(sum(map(int, input().split())))", "RE"),
    ("only imports", "import sys\nfrom math import gcd\n", "RE"),
    ("os.system disabled", "import os\nos.system('true')\nprint(sum(map(int, input().split())))", "RE"),
    ("memory error", "x = bytearray(4 * 1024 ** 3)", "MLE"),
    ("output over cap", "print('x' * 3_000_000)", "OLE"),
]


@pytest.mark.parametrize("backend_name", ["process", "docker"])
def test_stdin_programs(backend_name, request):
    if backend_name == "docker":
        from docker_gate import require_docker

        require_docker()
    results = grade_programs(SUM_PROBLEM, [code for _, code, _ in STDIN_CASES], backend=backend_name,
                             timeout_s=2.0, memory_mb=512, output_cap=1_000_000)
    got = {name: r["verdict"] for (name, _, _), r in zip(STDIN_CASES, results)}
    assert got == {name: verdict for name, _, verdict in STDIN_CASES}
    by_name = dict(zip([n for n, _, _ in STDIN_CASES], results))
    assert by_name["plain"]["tests_run"] == 3 and by_name["plain"]["passed"] is True
    assert by_name["wrong on a private test only"]["tests_run"] == 2  # stopped at the first failure (test 2 of 3)
    assert by_name["syntax error"]["tests_run"] == 0
    # Programs that do not compile are decided without a child process (no CPU time charged to them).
    assert [by_name[n]["time_s"] for n in ("syntax error", "empty program", "only imports")] == [0.0, 0.0, 0.0]
    assert all(r["passed"] == (r["verdict"] == "AC") for r in results)


PAIR_PROBLEM = make_problem("pair", [("[1, 2]\n3", "[4, 5]"), ("[0]\n1", "[1]"), ("[]\n7", "[]")], fn_name="addAll",
                            difficulty="medium")

FUNCTIONAL_CASES = [
    ("list", "class Solution:\n    def addAll(self, nums, k):\n        return [x + k for x in nums]", "AC"),
    ("tuple counts as list", "class Solution:\n    def addAll(self, nums, k):\n        return tuple(x + k for x in nums)",
     "AC"),
    ("floats equal ints", "class Solution:\n    def addAll(self, nums, k):\n        return [float(x + k) for x in nums]",
     "AC"),
    ("strings are not ints", "class Solution:\n    def addAll(self, nums, k):\n        return [str(x + k) for x in nums]",
     "WA"),
    ("typing names from the prelude", "class Solution:\n    def addAll(self, nums: List[int], k: int) -> List[int]:\n"
     "        return list(accumulate([x + k for x in nums], lambda a, b: b))", "AC"),
    ("state carries across tests", "class Solution:\n    calls = 0\n    def addAll(self, nums, k):\n"
     "        Solution.calls += 1\n        return [x + k for x in nums] if Solution.calls < 3 else None", "WA"),
    ("undefined annotation", "class Solution:\n    def addAll(self, nums: Optional[TreeNode], k):\n"
     "        return [x + k for x in nums]", "RE"),
    ("no code", "", "RE"),
    ("only a comment", "# I ran out of tokens before writing the solution\n", "RE"),
    ("truncated generation", "class Solution:\n    def addAll(self, nums, k):\n        return [x + k for x", "RE"),
    ("missing method", "class Solution:\n    def other(self, nums, k):\n        return nums", "RE"),
    ("module-level function (no Solution)", "def addAll(nums, k):\n    return [x + k for x in nums]", "AC"),
    ("raises", "class Solution:\n    def addAll(self, nums, k):\n        return nums[10]", "RE"),
    ("sys.exit is a failure here", "import sys\nclass Solution:\n    def addAll(self, nums, k):\n        sys.exit(0)",
     "RE"),
    ("infinite loop", "class Solution:\n    def addAll(self, nums, k):\n        while True:\n            pass", "TLE"),
    ("main guard is kept", "class Solution:\n    def addAll(self, nums, k):\n        return [x + k for x in nums]\n"
     "if __name__ == '__main__':\n    raise SystemExit(3)", "AC"),
]


@pytest.mark.parametrize("backend_name", ["process", "docker"])
def test_functional_programs(backend_name):
    if backend_name == "docker":
        from docker_gate import require_docker

        require_docker()
    results = grade_programs(PAIR_PROBLEM, [code for _, code, _ in FUNCTIONAL_CASES], backend=backend_name,
                             timeout_s=1.0, memory_mb=512)
    got = {name: r["verdict"] for (name, _, _), r in zip(FUNCTIONAL_CASES, results)}
    assert got == {name: verdict for name, _, verdict in FUNCTIONAL_CASES}
    timed_out = results[[n for n, _, _ in FUNCTIONAL_CASES].index("infinite loop")]
    assert timed_out["time_s"] >= 0.9  # CPU seconds used: the per-test CPU limit was reached


def test_nested_tuples_are_not_lists():
    problem = make_problem("nest", [("1", "[[1, 1]]")], fn_name="f")
    results = grade_programs(problem, ["class Solution:\n    def f(self, n):\n        return [(n, n)]",
                                       "class Solution:\n    def f(self, n):\n        return ([n, n],)"])
    assert [r["verdict"] for r in results] == ["WA", "AC"]


def test_slow_but_within_limit_passes_and_a_sleeper_is_caught_at_the_limit():
    problem = make_problem("slow", [("", "done")])
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4:\n    pass\nprint('done')"
    sleepy = "import time\ntime.sleep(30)\nprint('done')"
    started = time.monotonic()
    results = grade_programs(problem, [busy, sleepy], timeout_s=1.0)
    assert [r["verdict"] for r in results] == ["AC", "TLE"]
    assert time.monotonic() - started < 8  # at the 1 s limit, not at the 10 s backstop


def test_call_results_of_plain_data_types_compare_as_in_python():
    """Returned values are rebuilt in the runner and compared with the decoded expected output there."""
    problem = make_problem("dicts", [("\"aab\"", "{\"a\": 2, \"b\": 1}"), ("\"c\"", "{\"c\": 1}")], fn_name="count")
    results = grade_programs(problem, [
        "from collections import Counter\nclass Solution:\n    def count(self, s):\n        return Counter(s)",
        "class Solution:\n    def count(self, s):\n        d = defaultdict(int)\n        for c in s:\n"
        "            d[c] += 1\n        return d",
        "class Solution:\n    def count(self, s):\n        return {c: float(s.count(c)) for c in s}",
        "class Solution:\n    def count(self, s):\n        return [(c, s.count(c)) for c in s]",
        "class Solution:\n    def count(self, s):\n        return {ord(c): s.count(c) for c in s}",
    ])
    assert [r["verdict"] for r in results] == ["AC", "AC", "AC", "WA", "WA"]
    assert [r["tests_run"] for r in results] == [2, 2, 2, 1, 1]


# The program's environment, from the harness's rules. lcb_runner/evaluation/compute_code_generation_metrics.py
# (check_correctness) runs each program in a multiprocessing.Process forked from a process that imported the
# lcb_runner.evaluation package (testing_util.py, compute_code_generation_metrics.py, ... at top level) and created a
# multiprocessing.Manager(); testing_util.py's reliability_guard then sets os.getcwd/os.chdir/... to None. So a module
# that process has loaded is reachable as an attribute of its package without importing it, one it has not loaded is
# not, tempfile fails (it asks os.getcwd for a directory), and the working directory (the harness's own) is writable.
SUM_LINE = "print(sum(map(int, input().split())))\n"
ENVIRONMENT_CASES = [
    ("concurrent.futures is loaded (compute_code_generation_metrics imports it)",
     "import concurrent\nassert concurrent.futures.ProcessPoolExecutor\n" + SUM_LINE, "AC"),
    ("multiprocessing.managers and .pool are loaded (check_correctness calls multiprocessing.Manager())",
     "import multiprocessing\nassert multiprocessing.managers.SyncManager and multiprocessing.pool.Pool\n" + SUM_LINE,
     "AC"),
    ("unittest.mock is loaded (testing_util imports it)", "import unittest\nassert unittest.mock.patch\n" + SUM_LINE,
     "AC"),
    ("xml.etree is not loaded", "import xml\nassert xml.etree\n" + SUM_LINE, "RE"),
    ("logging.handlers is not loaded", "import logging\nassert logging.handlers\n" + SUM_LINE, "RE"),
    ("tempfile needs os.getcwd, which reliability_guard removed",
     "import tempfile\nwith tempfile.TemporaryFile('w+') as f:\n    f.write('x')\n" + SUM_LINE, "RE"),
    ("the working directory is writable", "with open('scratch.txt', 'w') as f:\n    f.write(input())\n"
     "with open('scratch.txt') as f:\n    print(sum(map(int, f.read().split())))\n", "AC"),
    ("os.getcwd is disabled", "import os\nos.getcwd()\n" + SUM_LINE, "RE"),
]


@pytest.mark.parametrize("backend_name", ["process", "docker"])
def test_program_environment_follows_the_harness(backend_name):
    if backend_name == "docker":
        from docker_gate import require_docker

        require_docker()
    results = grade_programs(SUM_PROBLEM, [code for _, code, _ in ENVIRONMENT_CASES], backend=backend_name,
                             timeout_s=2.0)
    got = {name: r["verdict"] for (name, _, _), r in zip(ENVIRONMENT_CASES, results, strict=True)}
    assert got == {name: verdict for name, _, verdict in ENVIRONMENT_CASES}


def _image_modules() -> list[str]:
    """The import names of sandbox/packages-lcb.txt (LiveCodeBench's environment as Debian packages)."""
    lines = (Path(__file__).resolve().parents[2] / "sandbox" / "packages-lcb.txt").read_text().splitlines()
    return [line.split()[1] for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_sandbox_image_has_the_harness_environments_packages():
    """numpy is loaded in the harness's process (testing_util imports it), every package of the list is importable,
    and sortedcontainers, which LCB's environment does not install, is not."""
    from docker_gate import require_docker

    require_docker()
    import subprocess

    from valley_assets.grading.backends import sandbox_image

    modules = _image_modules()
    label = subprocess.run(["docker", "image", "inspect", sandbox_image(), "--format",
                            '{{index .Config.Labels "valley.sandbox.modules"}}'], capture_output=True, text=True)
    assert label.stdout.strip() == ",".join(modules), (
        f"{sandbox_image()} was built from another package list; rebuild it: sandbox/build_image_offline.sh")
    codes = [f"import sys\nassert 'numpy' in sys.modules\n{SUM_LINE}"]
    codes += [f"import {module}\n{SUM_LINE}" for module in modules]
    codes += [f"import sortedcontainers\n{SUM_LINE}"]
    verdicts = [r["verdict"] for r in grade_programs(SUM_PROBLEM, codes, backend="docker", timeout_s=6.0)]
    assert verdicts == ["AC"] * (1 + len(modules)) + ["RE"]
