"""Sandbox runner: grades one program sample at a time, the way LiveCodeBench's harness does.

This file is self-contained (standard library only, Python >= 3.9) because it runs inside the sandbox image, which
has a bare Debian python3 and no valley package. The grader starts one long-lived runner per worker (inside a
container, inside bubblewrap, or as a plain process) and talks to it over stdin/stdout with frames: a 4-byte
big-endian length, then that many bytes of UTF-8 JSON. The frames' shapes are the TypedDicts below ("Protocol"),
which the grader side imports: RunnerReady once at start, then per sample a SampleRequest answered by a
SampleResult (or NeedTests, or RunnerFailed).

Per sample the runner compiles the program as the harness would exec it (a program that does not compile is RE
there and then, without a child), then forks a fresh child, which drops privileges, applies rlimits, forgets the
expected outputs it inherited, and does what `lcb_runner/evaluation/testing_util.py` does: run the compiled program
(stdin programs wrapped in a function, functional programs instantiated as `Solution()`), run the tests in order in
that same process (state carries over from test to test, as in the harness), and report each test's captured
stdout or returned value (tagged data, see encode_value) over a pipe. The runner compares both itself, against
expected outputs the child no longer holds, so a program cannot fake a pass by patching the comparison or writing
its own reports, and stops the child at the first failing test. A step (compile, one test) is TLE when its CPU time passes the limit (ITIMER_PROF, whose default
action kills the child), or when its wall time minus the time it waited for a CPU passes it (a sleeping or blocked
program, which the harness's wall-clock alarm catches), or at a wall-clock backstop; see "Wall-clock rule" below.
So verdicts do not depend on how loaded the machine is. Afterwards everything the sample started is killed.

Verdicts: AC, WA, TLE (CPU limit, idle wall time or wall backstop), RE (exception, crash, compile error), MLE (MemoryError or
killed by the memory cgroup), OLE (captured output over `output_cap` characters).
"""

from __future__ import annotations

import ast
import json
import os
import resource
import select
import signal
import struct
import sys
import time
from decimal import Decimal, InvalidOperation
from typing import TypedDict, Union

# --------------------------------------------------------------------------------------------------------------
# Protocol (annotations are strings here, `from __future__ import annotations`: fine on Python 3.9)
# --------------------------------------------------------------------------------------------------------------


class RunnerReady(TypedDict):
    """runner -> grader, once, when the runner is ready for requests."""

    ready: bool
    python: str  # the sandbox's Python version
    pid: int  # the runner's pid in its namespace (1 in a container)
    missing_modules: list[str]  # third-party modules of the harness's process not installed here


class _SampleRequestRequired(TypedDict):
    id: str  # "<question_id>#<sample index>", echoed in the answer
    code: str
    fn_name: str | None  # call-based (LeetCode) problems: the method; None: a stdin program
    timeout_s: float  # per step (compile, each test): CPU seconds, or wall seconds not spent waiting for a CPU
    wall_s: float  # per step: the wall-clock backstop
    memory_mb: int  # RLIMIT_AS of the program
    output_cap: int  # characters of captured stdout, past which the sample is OLE
    scratch: str  # the program's working directory; the runner empties it after every sample


class SampleRequest(_SampleRequestRequired, total=False):
    """grader -> runner, one sample. With "tests_key", the runner keeps "inputs"/"outputs" under that key, and a
    request with the key but without them uses the kept ones (or is answered with NeedTests); see TestsCache."""

    inputs: list[str]  # the tests, public then private
    outputs: list[str]
    tests_key: str
    nproc: int | None  # RLIMIT_NPROC of the program, where it has a uid of its own


class Failure(TypedDict):
    """Why a sample is not AC, as LCB's per-sample metadata says it (testing_util.py)."""

    test: int | None  # index of the first failing test (public then private); None: failed before any test
    error_code: int  # LCB's: -2 wrong answer, -3 time limit, -4 runtime error (here also MLE and OLE)
    error_type: str | None  # the exception's class (RE, MLE, compile errors); None for WA, TLE and signals
    error_message: str  # the exception's message, LCB's wrong-answer message, or why the step timed out
    inputs: str | None  # that test's input, expected and produced output, through LCB's truncatefn
    expected: str | None
    output: str | None  # WA only: the captured stdout, or the returned value's repr


class _SampleResultRequired(TypedDict):
    id: str
    passed: bool
    verdict: str  # AC, WA, TLE, RE, MLE, OLE
    tests_run: int  # steps that ran: compile (when it ran in the child) plus tests, up to the first failure
    time_s: float  # CPU seconds of the sample's process
    failure: Failure | None  # None when AC


class SampleResult(_SampleResultRequired, total=False):
    """runner -> grader, the verdict of one sample."""

    retire: str  # the sample left state the runner could not remove: the grader replaces this sandbox


class NeedTests(TypedDict):
    """runner -> grader: the request named a tests_key this runner does not hold; send it with the tests."""

    id: str
    need_tests: bool


class RunnerFailed(TypedDict):
    """runner -> grader: the runner itself failed on a request (never a verdict)."""

    id: str | None
    error: str


RunnerAnswer = Union[SampleResult, NeedTests, RunnerFailed]  # noqa: UP007 - `|` of classes needs 3.10

# --------------------------------------------------------------------------------------------------------------
# Harness rules (pure functions; the grader imports these for its own checks and tests)
# --------------------------------------------------------------------------------------------------------------

# The prelude the harness puts in front of every program: star imports of common modules, then a high recursion
# limit. Programs rely on it (e.g. calling `deque` without importing it), so it is part of the semantics.
HARNESS_PRELUDE_MODULES = (
    "string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random", "statistics",
    "itertools", "functools", "operator", "io", "sys", "json", "builtins", "typing",
)
HARNESS_PRELUDE = (
    "".join(f"from {m} import *\n" for m in HARNESS_PRELUDE_MODULES)
    + "".join(f"import {m}\n" for m in HARNESS_PRELUDE_MODULES if m not in ("builtins", "typing"))
    + "sys.setrecursionlimit(50000)\n"
)
WRAPPED_FUNCTION = "wrapped_function"
# What the harness's process has imported when a program runs in it: the modules lcb_runner/evaluation imports at
# top level (its __init__ imports every module of the package: testing_util, compute_code_generation_metrics,
# pass_k_utils, compute_code_execution_metrics, utils_execute, compute_test_output_prediction_metrics), and those
# check_correctness() loads before it forks the program's process (multiprocessing.Manager(): managers, which
# imports pool; multiprocessing.Process: popen_fork; evaluate_generations: ProcessPoolExecutor). A program sees
# them, and every module they import in turn, already in sys.modules: `import concurrent` then
# `concurrent.futures.ThreadPoolExecutor` works there, as does `import numpy` after reliability_guard (which breaks
# numpy's first import). The runner imports the same list, so Python loads the same closure, and its children
# inherit it. Third-party ones are imported when installed (the sandbox image has LCB's; see sandbox/).
HARNESS_LOADED_MODULES = (
    "ast", "bisect", "builtins", "collections", "concurrent.futures", "concurrent.futures.process", "contextlib",
    "copy", "datetime", "decimal", "enum", "faulthandler", "functools", "heapq", "io", "itertools", "json", "math",
    "multiprocessing", "multiprocessing.managers", "multiprocessing.pool", "multiprocessing.popen_fork", "operator",
    "os", "os.path", "platform", "random", "re", "shutil", "signal", "string", "subprocess", "sys", "tempfile",
    "time", "types", "typing", "unittest.mock",
)
HARNESS_LOADED_THIRD_PARTY = ("numpy", "tqdm")


def import_harness_modules() -> list[str]:
    """Import what the harness's process has loaded (HARNESS_LOADED_MODULES); returns the third-party modules that
    are not installed here. BLAS gets one thread first: a thread pool would not survive the fork per sample, and
    verdicts are CPU time (the harness sets OMP_NUM_THREADS=1 too, after numpy's import)."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    for module in HARNESS_PRELUDE_MODULES + HARNESS_LOADED_MODULES:
        __import__(module)
    missing = []
    for module in HARNESS_LOADED_THIRD_PARTY:
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    # platform caches uname; a program's import that asks for the processor (Debian's pandas 1.5 does, at import)
    # would otherwise run `uname -p` through subprocess.Popen, which reliability_guard has disabled. LCB's
    # environment (pandas 2.2) imports without it, so programs importing pandas pass there.
    import platform

    _ = platform.uname().processor
    return missing
# The harness runs in a process where this was raised (compute_code_generation_metrics sets it at import).
INT_MAX_STR_DIGITS = 50000


def strip_main_guard(code: str) -> str:
    """If the last top-level statement is `if __name__ == '__main__':`, replace it by its body.

    Only the last statement counts, the test must unparse to exactly `__name__ == '__main__'` (so the reversed
    comparison is left alone), and code that does not parse is returned unchanged.
    """
    try:
        tree = ast.parse(code)
        last = tree.body[-1]
        if isinstance(last, ast.If) and ast.unparse(last.test).strip() == "__name__ == '__main__'":
            return ast.unparse(tree.body[:-1]) + "\n" + ast.unparse(last.body)
    except Exception:  # the harness swallows everything here, including an empty program
        pass
    return code


def wrap_stdin_program(code: str) -> str:
    """Hoist top-level imports, put every other top-level statement into `def wrapped_function():`.

    Top-level names therefore become function locals (so `global x` in a nested function no longer sees them),
    exactly as in the harness. Code that does not parse is returned unchanged and fails when compiled.
    """
    try:
        tree = ast.parse(code)
        imports = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
        others = [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))]
        function = ast.FunctionDef(
            name=WRAPPED_FUNCTION,
            args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
            body=others,
            decorator_list=[],
            lineno=-1,
        )
        return HARNESS_PRELUDE + "\n" + ast.unparse(imports) + "\n" + ast.unparse(function)
    except Exception:
        return code


def stripped_lines(text: str) -> list[str]:
    """Strip the whole text, split on newlines, strip each line (empty inner lines are kept)."""
    return [line.strip() for line in text.strip().split("\n")]


def decimal_tokens(line: str) -> list[Decimal] | None:
    """Whitespace-separated tokens as Decimals, or None if any token is not a number."""
    try:
        return [Decimal(token) for token in line.split()]
    except (InvalidOperation, ValueError):
        return None


def stdin_output_matches(actual: str, expected: str) -> bool:
    """The harness's stdout check: same number of stripped lines; each line equal, or equal token-wise as Decimals."""
    actual_lines, expected_lines = stripped_lines(actual), stripped_lines(expected)
    if len(actual_lines) != len(expected_lines):
        return False
    for got, want in zip(actual_lines, expected_lines):  # noqa: B905 - equal lengths; strict= needs 3.10
        if got == want:
            continue
        got_numbers, want_numbers = decimal_tokens(got), decimal_tokens(want)
        if got_numbers is None or want_numbers is None or got_numbers != want_numbers:
            return False
    return True



# Per-sample diagnostics, as LCB's metadata gives them: the first failing test, LCB's error code, the error's type and
# message (or, for a wrong answer, LCB's message), and its input, expected and produced output through LCB's truncatefn.
DIAGNOSTIC_CHARS = 300  # truncatefn's default length
ERROR_MESSAGE_CHARS = 1000
ERROR_CODES = {"WA": -2, "TLE": -3, "RE": -4, "MLE": -4, "OLE": -4}  # testing_util.py: -2 WA, -3 TLE, -4 RE


def truncate_text(value, length: int = DIAGNOSTIC_CHARS) -> str:
    """testing_util.truncatefn: str(value); past `length` chars, its first and last length/2 around a marker."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = str(value)
        except Exception:  # noqa: BLE001 - e.g. an int over int_max_str_digits
            text = f"<{type(value).__name__}>"
    if len(text) <= length:
        return text
    return text[: length // 2] + "...(truncated) ..." + text[-length // 2:]


def stdin_mismatch(actual: str, expected: str) -> str:
    """Why stdin_output_matches() said no, in testing_util.grade_stdio's words ("" when it matches)."""
    actual_lines, expected_lines = stripped_lines(actual), stripped_lines(expected)
    if len(actual_lines) != len(expected_lines):
        return "Wrong answer: mismatched output length"
    for index, (got, want) in enumerate(zip(actual_lines, expected_lines)):  # noqa: B905 - as above
        if got == want:
            continue
        got_numbers, want_numbers = decimal_tokens(got), decimal_tokens(want)
        if got_numbers is None or want_numbers is None or got_numbers != want_numbers:
            return f"Wrong answer at output_line_idx={index}: {truncate_text(got)} != {truncate_text(want)}"
    return ""


def decoded_text(encoded) -> str:
    """A call-based result as the harness's truncatefn shows it (str of the value), from its tagged encoding."""
    try:
        return truncate_text(decode_value(encoded))
    except (ValueError, RecursionError):
        return "<undecodable result>"


def failure_of(request: dict, verdict: str, test, error, output=None) -> Failure:
    """The Failure of a sample whose verdict is not AC; `test` is None when it failed before its first test.
    Call-based tests show as the harness shows them: the decoded argument list and expected value."""
    error_type, message = error
    inputs, outputs = request.get("inputs") or [], request.get("outputs") or []
    shown_input = shown_expected = None
    if test is not None and 0 <= test < min(len(inputs), len(outputs)):
        shown_input, shown_expected = inputs[test], outputs[test]
        if request.get("fn_name"):
            try:
                shown_input = [json.loads(line) for line in shown_input.split("\n")]
                shown_expected = json.loads(shown_expected)
            except (ValueError, RecursionError):
                pass
        shown_input, shown_expected = truncate_text(shown_input), truncate_text(shown_expected)
    return {"test": test, "error_code": ERROR_CODES[verdict], "error_type": error_type, "error_message": message,
            "inputs": shown_input, "expected": shown_expected, "output": output}


# Call-based results cross the pipe as tagged data and are compared here, in the runner, against expected values the
# child never holds: a program that patches `==` or writes its own "result" frame cannot fake a pass. The harness
# compares `prediction == json.loads(expected)` in the program's process; for plain data (exact builtin types, the
# stdlib dict subclasses, numpy scalars) rebuilding the value and comparing here gives the same answer. Any other
# object would run its own __eq__ in the harness; here it equals nothing (honest LCB solutions return plain data).
VALUE_MAX_DEPTH = 500


def _dict_types() -> tuple:
    import collections

    return (dict, collections.defaultdict, collections.OrderedDict, collections.Counter)


def encode_value(value, depth: int = 0, _dicts=None):
    """A JSON-able, type-preserving encoding of `value` (see decode_value); never calls the value's own methods
    except numpy scalars' item()."""
    _dicts = _dicts or _dict_types()
    kind = type(value)
    if depth > VALUE_MAX_DEPTH:
        return ["o", "nested too deeply"]
    if value is None:
        return ["n"]
    if kind is bool:
        return ["b", value]
    if kind is int:
        return ["i", hex(value)]  # hex: not limited by int_max_str_digits
    if kind is float:
        return ["f", value.hex()]
    if kind is str:
        return ["s", value]
    if kind in (list, tuple, set, frozenset):
        tag = {list: "l", tuple: "t", set: "S", frozenset: "F"}[kind]
        return [tag, [encode_value(v, depth + 1, _dicts) for v in value]]  # exact builtin types: no user code
    if kind in _dicts:
        return ["d", [[encode_value(k, depth + 1, _dicts), encode_value(v, depth + 1, _dicts)]
                      for k, v in dict.items(value)]]
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, getattr(numpy, "generic", ())):
        return encode_value(value.item(), depth + 1, _dicts)
    return ["o", f"{kind.__module__}.{kind.__qualname__}"[:200]]


class Opaque:
    """A returned object that is not plain data: equal to nothing (identity only, and nothing here shares it)."""

    def __init__(self, what: str):
        self.what = what

    def __repr__(self):
        return f"<{self.what}>"


def decode_value(data):
    """Inverse of encode_value; ValueError for anything an honest child cannot have sent."""
    try:
        tag = data[0]
        if tag == "n":
            return None
        if tag == "b" and type(data[1]) is bool:
            return data[1]
        if tag == "i":
            return int(data[1], 16)
        if tag == "f":
            return float.fromhex(data[1])
        if tag == "s" and type(data[1]) is str:
            return data[1]
        if tag in ("l", "t", "S", "F"):
            items = [decode_value(v) for v in data[1]]
            return {"l": list, "t": tuple, "S": set, "F": frozenset}[tag](items)
        if tag == "d":
            return {decode_value(k): decode_value(v) for k, v in data[1]}
        if tag == "o":
            return Opaque(str(data[1]))
    except (TypeError, IndexError, KeyError, ValueError, OverflowError, RecursionError) as exc:
        raise ValueError(f"undecodable value: {exc!r}") from exc
    raise ValueError(f"undecodable value with tag {str(data[:1])[:50]}")


def call_result_matches(encoded, expected) -> bool:
    """The harness's check for call-based problems (the child already turned a top-level tuple into a list)."""
    try:
        return bool(decode_value(encoded) == expected)
    except (ValueError, RecursionError):
        return False


def program_for(code: str, fn_name) -> str:
    """The exact text the harness execs: the prelude + the program (call-based), or the wrapped stdin program."""
    return (HARNESS_PRELUDE + "\n\n" + code) if fn_name else wrap_stdin_program(strip_main_guard(code))


# The runner compiles programs up to this size itself (no execution: compile() runs no program code) so that a
# program that does not compile - a generation cut off mid-statement, or no code at all - is RE without forking a
# child. Larger ones are compiled in the child, under its limits.
PRECOMPILE_MAX_CHARS = 1 << 20


def precompile(code: str, fn_name):
    """(code object, None), or (None, the compile error as (type, message)), or (None, None) when left to the child.

    dont_inherit: the harness's exec() runs in a module without `from __future__ import annotations`; this module
    has it, and exec()/compile() of a string would otherwise pass it on (annotations would go unevaluated)."""
    if len(code) > PRECOMPILE_MAX_CHARS:
        return None, None
    try:
        compiled = compile(program_for(code, fn_name), "<string>", "exec", dont_inherit=True)
        # A call-based program with no statements (no code, only comments) runs just the prelude, which defines
        # no Solution; the harness then looks fn_name up in the module and fails (unless the prelude has the name).
        if fn_name and not ast.parse(code).body and fn_name not in _prelude_names():
            return None, ("AttributeError", f"program defines no {fn_name}")
        return compiled, None
    except (SyntaxError, ValueError) as exc:  # what exec() of the same text raises before running anything
        return None, _describe(exc)
    except (RecursionError, MemoryError):
        return None, None


_PRELUDE_NAMES: set = set()


def _prelude_names() -> set:
    """The names the prelude alone binds in a module (computed once; the prelude is fixed, trusted text)."""
    if not _PRELUDE_NAMES:
        namespace: dict = {}
        limit = sys.getrecursionlimit()
        try:
            exec(HARNESS_PRELUDE, namespace)
        finally:
            sys.setrecursionlimit(limit)  # the prelude raises it; the runner keeps its own
        _PRELUDE_NAMES.update(namespace)
    return _PRELUDE_NAMES


# --------------------------------------------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------------------------------------------

_HEADER = struct.Struct(">I")
MAX_REQUEST_BYTES = 1 << 30


def write_frame(fd: int, obj) -> None:
    payload = json.dumps(obj, separators=(",", ":")).encode("utf-8", "surrogatepass")
    data = memoryview(_HEADER.pack(len(payload)) + payload)
    while data:
        written = os.write(fd, data)
        data = data[written:]


def read_exact(fd: int, n: int) -> bytes | None:
    chunks, remaining = [], n
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int):
    header = read_exact(fd, _HEADER.size)
    if header is None:
        return None
    (length,) = _HEADER.unpack(header)
    if length > MAX_REQUEST_BYTES:
        raise ValueError(f"frame of {length} bytes is over the {MAX_REQUEST_BYTES} byte limit")
    payload = read_exact(fd, length)
    if payload is None:
        return None
    return json.loads(payload.decode("utf-8", "surrogatepass"))


class FrameBuffer:
    """Accumulates bytes from a pipe and yields complete frames; a frame over `limit` bytes is an error."""

    def __init__(self, limit: int):
        self.buffer = bytearray()
        self.limit = limit

    def feed(self, data: bytes) -> list:
        self.buffer += data
        frames = []
        while len(self.buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self.buffer)
            if length > self.limit:
                raise OverflowError(length)
            if len(self.buffer) < _HEADER.size + length:
                break
            payload = bytes(self.buffer[_HEADER.size:_HEADER.size + length])
            del self.buffer[:_HEADER.size + length]
            frames.append(json.loads(payload.decode("utf-8", "surrogatepass")))
        return frames


# --------------------------------------------------------------------------------------------------------------
# The child: runs untrusted code
# --------------------------------------------------------------------------------------------------------------


class OutputLimitExceeded(Exception):
    pass


class CappedStringIO:
    """Stands in for sys.stdout while a stdin program runs (the harness uses a StringIO); refuses past `cap` chars."""

    def __init__(self, cap: int):
        import io

        self._io = io.StringIO()
        self._cap = cap
        self._size = 0
        self.overflowed = False

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._size += len(text)
        if self._size > self._cap:
            self.overflowed = True
            raise OutputLimitExceeded(f"output over {self._cap} characters")
        return self._io.write(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def getvalue(self) -> str:
        return self._io.getvalue()

    def close(self):  # the harness makes close() a no-op so programs cannot break the capture
        pass

    def __getattr__(self, name):
        return getattr(self._io, name)


class MockStdin:
    """sys.stdin as the harness replaces it: read() is the whole input, readline() walks lines (with newline),
    readlines() splits without newlines, buffer.read() is the bytes; other attributes go to a StringIO.
    It defines no __iter__, so `for line in sys.stdin` fails there too."""

    def __init__(self, data: str):
        import io

        self._data = data
        self._io = io.StringIO(data)
        self.buffer = MockStdinBuffer(data)

    def read(self, *args):
        return self._data

    def readline(self, *args):
        return self._io.readline(*args)

    def readlines(self, *args):
        return self._data.split("\n")

    def __getattr__(self, name):
        return getattr(self._io, name)


class MockStdinBuffer:
    def __init__(self, data: str):
        self._data = data.encode("utf-8")

    def read(self, *args):
        return self._data

    def readline(self, *args):  # the harness always returns the first line here
        return self._data.split(b"\n")[0] + b"\n"


def _set_rlimit(which: int, value: int) -> None:
    try:
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            resource.setrlimit(which, (min(value, hard), hard))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _confine_child(request: dict, report_fd: int, child_uid) -> None:
    """Everything the child does before touching the program: session, fds, identity, limits, environment."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in the harness's child
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, report_fd)
    os.closerange(report_fd + 1, 65536)
    if child_uid is not None:
        os.setgroups([])
        os.setgid(child_uid)
        os.setuid(child_uid)
    # The runner made itself (and so this fork) undumpable, which hides /proc/<pid> from processes of its uid; the
    # child becomes dumpable again so the runner (same uid in a container) can read its CPU and scheduler counters.
    set_dumpable(True)
    memory = int(request["memory_mb"]) * 1024 * 1024
    _set_rlimit(resource.RLIMIT_AS, memory)
    _set_rlimit(resource.RLIMIT_CORE, 0)
    _set_rlimit(resource.RLIMIT_FSIZE, 16 * 1024 * 1024)
    _set_rlimit(resource.RLIMIT_NOFILE, 256)
    # POSIX message queues outlive their processes and cannot be listed without an mqueue mount: none at all.
    # gVisor (runsc 20221219) refuses every setrlimit of RLIMIT_MSGQUEUE (EPERM) while its mq_open works: there a
    # queue a sample creates can outlive it (k8s/README.md, "Grading Jobs"; benchmarks/RESULTS.md, runsc).
    try:
        _set_rlimit(resource.RLIMIT_MSGQUEUE, 0)
    except (ValueError, OSError):  # Python reports EPERM from setrlimit as ValueError
        pass
    if request.get("nproc"):
        _set_rlimit(resource.RLIMIT_NPROC, int(request["nproc"]))
    # CPU backstop for the whole sample (the per-step limit is the ITIMER_PROF below); at the hard limit: SIGKILL.
    cpu_cap = int(cpu_limit_s(request)) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_cap, cpu_cap + 2))  # SIGXCPU first, SIGKILL two seconds later
    scratch = request["scratch"]
    os.chdir(scratch)  # the runner checked it; it empties it after every sample
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": scratch, "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1"})
    # What a multiprocessing child of the harness sees: stdin an open /dev/null, stdout/stderr its terminal.
    sys.stdin = open(os.devnull)
    sys.stdout = open(os.devnull, "w")
    sys.stderr = open(os.devnull, "w")
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(INT_MAX_STR_DIGITS)


def _disable_destructive_functions() -> None:
    """The harness's reliability_guard: these become None, so programs calling them raise (a runtime error)."""
    import builtins
    import shutil
    import subprocess

    builtins.quit = None
    for name in (
        "kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork", "forkpty",
        "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown", "chmod", "chown",
        "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir",
    ):
        setattr(os, name, None)
    shutil.rmtree = None
    shutil.move = None
    shutil.chown = None
    subprocess.Popen = None
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


def _start_cpu_timer(seconds: float) -> None:
    # ITIMER_PROF counts user+system CPU of the whole process; SIGPROF's default action terminates it.
    signal.setitimer(signal.ITIMER_PROF, max(seconds, 0.001))


def _stop_cpu_timer() -> None:
    signal.setitimer(signal.ITIMER_PROF, 0)


def _exception_verdict(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "MLE"
    if isinstance(exc, OutputLimitExceeded):
        return "OLE"
    return "RE"


def _describe(exc: BaseException) -> tuple[str, str]:
    """(type name, message) of an exception, as the per-sample diagnostics carry them."""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a program's exception whose __str__ fails
        message = repr(type(exc))
    return type(exc).__name__, message[:ERROR_MESSAGE_CHARS]


def _child_main(request: dict, report_fd: int, child_uid, compiled=None, forget=None) -> None:
    """Compile the program once and run every test in order, reporting each outcome; never returns.

    `compiled`: the program's code object when the runner compiled it already (precompile). `forget`: called once
    the child is confined, to drop the expected outputs its memory got from the runner by fork()."""
    _confine_child(request, report_fd, child_uid)
    code, fn_name, inputs = request["code"], request.get("fn_name"), request["inputs"]
    timeout = float(request["timeout_s"])
    output_cap = int(request["output_cap"])
    if forget is not None:
        forget()
    request = None
    report = lambda **fields: write_frame(report_fd, fields)  # noqa: E731

    import types

    _disable_destructive_functions()
    program = program_for(code, fn_name)
    _start_cpu_timer(timeout)
    try:
        module = types.ModuleType("tmp_sol", "")
        if compiled is None:
            compiled = compile(program, "<string>", "exec", dont_inherit=True)
        exec(compiled, module.__dict__)
        target = module.Solution() if "class Solution" in program else module
        method = getattr(target, fn_name if fn_name else WRAPPED_FUNCTION, None)
        if method is None:
            raise AttributeError(f"program defines no {fn_name or WRAPPED_FUNCTION}")
        # The harness decodes every test's arguments before running the first one.
        call_arguments = [[json.loads(line) for line in block.split("\n")] for block in inputs] if fn_name else None
    except BaseException as exc:  # noqa: BLE001 - any failure to compile fails the sample, as in the harness
        _stop_cpu_timer()
        report(kind="compile_error", verdict=_exception_verdict(exc), error=_describe(exc))  # (type, message)
        os._exit(0)
    _stop_cpu_timer()
    report(kind="compiled")

    if fn_name:
        for index, arguments in enumerate(call_arguments):
            started = _cpu_seconds()
            _start_cpu_timer(timeout)
            try:
                prediction = method(*arguments)
                _stop_cpu_timer()
                if isinstance(prediction, tuple):  # tuples count as lists at the top level only
                    prediction = list(prediction)
                value = encode_value(prediction)
            except BaseException as exc:  # noqa: BLE001
                _stop_cpu_timer()
                report(kind="error", index=index, verdict=_exception_verdict(exc), error=_describe(exc))
                os._exit(0)
            report(kind="result", index=index, value=value, cpu_s=_cpu_seconds() - started)
        os._exit(0)

    import builtins
    from unittest import mock

    for index, test_input in enumerate(inputs):
        capture = CappedStringIO(output_cap)
        lines = iter(test_input.split("\n"))
        real_stdin = sys.stdin
        patches = [
            # The harness patches these on the stdin object that is current when the patch starts (the real one,
            # which is what `from sys import stdin` bound), then replaces sys.stdin and open().
            mock.patch.object(real_stdin, "read", lambda *a, _d=test_input: _d, create=True),
            mock.patch.object(real_stdin, "readlines", lambda *a, _d=test_input: _d.split("\n"), create=True),
            mock.patch.object(real_stdin, "readline", lambda *a, _l=lines: next(_l), create=True),
            mock.patch.object(sys, "stdin", MockStdin(test_input)),
            mock.patch.object(builtins, "open", _lazy_mock_open(test_input)),
        ]
        started = _cpu_seconds()
        saved_stdout = sys.stdout
        sys.stdout = capture
        failure = None
        try:
            for patch in patches:
                patch.start()
            _start_cpu_timer(timeout)
            try:
                method()
            except SystemExit:
                pass
            finally:
                _stop_cpu_timer()
        except BaseException as exc:  # noqa: BLE001
            _stop_cpu_timer()
            failure = exc
        finally:
            sys.stdout = saved_stdout
            for patch in reversed(patches):
                try:
                    patch.stop()
                except RuntimeError:
                    pass
        if capture.overflowed:
            report(kind="error", index=index, verdict="OLE",
                   error=("OutputLimitExceeded", f"output over {output_cap} characters"))
            os._exit(0)
        if failure is not None:
            report(kind="error", index=index, verdict=_exception_verdict(failure), error=_describe(failure))
            os._exit(0)
        report(kind="output", index=index, output=capture.getvalue(), cpu_s=_cpu_seconds() - started)
    os._exit(0)


def _lazy_mock_open(data: str):
    """builtins.open as the harness patches it (mock_open(read_data=input)), built on first use: a MagicMock costs
    about a millisecond and almost no program calls builtins.open dynamically (the prelude's star import of
    builtins has already bound the real open in the program's namespace)."""
    from unittest import mock

    state = {}

    def fake_open(*args, **kwargs):
        if "mock" not in state:
            state["mock"] = mock.mock_open(read_data=data)
        return state["mock"](*args, **kwargs)

    return fake_open


def _patchable_stdin_check() -> None:
    """The stdin mocks above set attributes on a TextIOWrapper; fail loudly at start if this Python forbids it."""
    with open(os.devnull) as f:
        f.read = lambda *a: ""  # noqa: E731


# --------------------------------------------------------------------------------------------------------------
# Wall-clock rule
# --------------------------------------------------------------------------------------------------------------
#
# The harness times each step (compile, each test) with signal.alarm: wall-clock time on a machine it assumes is
# otherwise idle. Here the machine is loaded on purpose (--workers = 2 x cores) and shared, so raw wall time would
# make CPU-bound programs near the limit flip to TLE. Instead a step is TLE when
#   (1) its CPU time exceeds the limit (ITIMER_PROF in the child), or
#   (2) the wall time it *would have taken on an idle machine* exceeds the limit. That is its wall time minus the
#       time it sat runnable but waiting for a CPU, which the kernel counts per thread (run_delay, the second field
#       of /proc/<pid>/task/<tid>/schedstat; CPU-quota throttling counts as waiting too). What is left is time on a
#       CPU plus time the program chose to wait (sleep, blocking calls), exactly what the harness's alarm sees.
#       With threads, their run_delays are summed: under the GIL at most one thread runs Python at a time and the
#       others sleep on the GIL, so their waits for a CPU rarely overlap (a main thread blocked in join() while a
#       worker computes is charged the worker's waiting, as it should), or
#   (3) the backstop (grader.WALL_FACTOR x the limit): the last resort, for what (2) cannot see, where threads'
#       waits overlap and their sum overstates the contention. It discounts only the least-delayed thread's
#       waiting: for a single-threaded program that equals (2), so starving a CPU-bound program can never trigger
#       it; a program with a thread that sleeps throughout (e.g. a main thread in join()) meets plain wall time.
#       Without schedstat it is plain wall time. It must stay well above what CPU starvation does to a CPU-bound
#       program: on the shared 2-core build VM 4 workers got 7-13% of a core each (load 15-19 from other jobs).
# CPU + run_delay explains a CPU-bound step's wall time to within ~0.5% of the waiting on the loaded build VM (load
# 15 on 2 cores, ~13% of a core per program) once the clock and the counters are read in a safe order (StepClock);
# the waiting is credited with RUN_DELAY_SLACK extra to cover that. An idle machine has no waiting, hence no slack,
# and a pure sleeper does not wait for a CPU either, so it is still caught at the limit; only a program that both
# sleeps and computes on a starved machine gets a little leeway.
RUN_DELAY_SLACK = 0.02
# Where schedstat cannot be read (a kernel without CONFIG_SCHED_INFO, hidepid), (2) falls back to "mostly idle":
# the step has used less than IDLE_CPU_FRACTION of its wall time as CPU. A CPU-bound program 4x oversubscribed
# still gets ~25% of a core, and one squeezed to 10% by a busy shared host (seen on the 2-core build VM) is still
# twice the threshold, so 5% only catches programs that sleep or block; partly idle programs are then left to the
# backstop.
IDLE_CPU_FRACTION = 0.05
# How often the fallback re-checks once a step is past its limit (schedstat knows exactly when to look again).
FALLBACK_CHECK_S = 0.25
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read_small(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def _descends_from(pid: int, ancestor: int) -> bool:
    """Whether `ancestor` is an ancestor of `pid` (its parent, its parent's parent, ...), from /proc."""
    for _ in range(4096):
        raw = _read_small(f"/proc/{pid}/stat")
        try:
            pid = int(raw.rsplit(b")", 1)[1].split()[1])
        except (AttributeError, ValueError, IndexError):
            return False
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
    return False


def thread_run_delays(pid: int) -> dict[int, float] | None:
    """Seconds each thread of `pid` has spent runnable but not running (schedstat run_delay); None if unreadable."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    delays = {}
    for tid in tids:
        raw = _read_small(f"/proc/{pid}/task/{tid}/schedstat")
        if raw is None:
            continue
        try:
            delays[int(tid)] = int(raw.split()[1]) / 1e9
        except (ValueError, IndexError):
            continue
    return delays or None


def process_cpu_s(pid: int) -> float | None:
    """User+system CPU seconds of `pid` (all its threads) from /proc/<pid>/stat; None if unreadable."""
    raw = _read_small(f"/proc/{pid}/stat")
    if raw is None:
        return None
    try:
        fields = raw.rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime: fields 14 and 15 of stat
    except (ValueError, IndexError):
        return None


def idle_machine_wall_s(wall_s: float, cpu_wait_s: float | None, cpu_s: float | None) -> float | None:
    """Estimate of a step's wall time on an idle machine (see the rule above); None when nothing can be said."""
    if cpu_wait_s is not None:
        return max(wall_s - cpu_wait_s * (1 + RUN_DELAY_SLACK), 0.0)
    if cpu_s is not None and cpu_s < IDLE_CPU_FRACTION * wall_s:
        return wall_s
    return None


class StepClock:
    """Times one step of a child (compile, or one test) under the wall-clock rule above."""

    def __init__(self, pid: int, timeout_s: float, backstop_s: float, others_alive=lambda: False):
        self.pid = pid
        self.timeout_s = timeout_s
        self.backstop_s = backstop_s
        # Whether the sample has processes besides `pid` (a ctypes fork): their CPU use makes `pid` wait for a CPU,
        # which must not be credited to it (a fork bomb would starve its own root and never time out).
        self.others_alive = others_alive
        self.restart()

    def restart(self) -> None:
        # Baselines first, clock second (and the reverse in verdict()): if this referee loses its CPU in between,
        # the error shortens the estimate, never lengthens it.
        self.delays = thread_run_delays(self.pid)  # ~20 us: two small /proc reads for a single-threaded child
        self.cpu = process_cpu_s(self.pid) if self.delays is None else None
        self.started = time.monotonic()

    def verdict(self) -> tuple[str | None, float]:
        """(why the step is TLE, or None; seconds until it is worth looking again)."""
        elapsed = time.monotonic() - self.started
        if elapsed <= self.timeout_s:  # both estimates below are at most the elapsed wall time
            return None, min(self.timeout_s, self.backstop_s) - elapsed + 0.001
        waits = None
        if self.delays is not None:
            now = thread_run_delays(self.pid)
            if now is not None:
                waits = [delay - self.delays.get(tid, 0.0) for tid, delay in now.items()]
        if waits is None:
            if elapsed >= self.backstop_s:
                return f"wall-clock backstop of {self.backstop_s:g}s", 0.0
            used = process_cpu_s(self.pid)
            cpu = used - self.cpu if used is not None and self.cpu is not None else None
            estimate = idle_machine_wall_s(elapsed, None, cpu)
            if estimate is not None and estimate > self.timeout_s:
                return (f"wall time limit: {cpu:.2f}s of CPU in the step's {elapsed:.2f}s (idle; limit "
                        f"{self.timeout_s:g}s)"), 0.0
            return None, min(FALLBACK_CHECK_S, self.backstop_s - elapsed)
        estimate = idle_machine_wall_s(elapsed, sum(waits), None)
        if estimate <= self.timeout_s and self.others_alive():
            return (f"wall time limit: {elapsed:.2f}s with processes of its own competing for the CPU (limit "
                    f"{self.timeout_s:g}s)"), 0.0
        if estimate > self.timeout_s:
            return (f"wall time limit: {estimate:.2f}s of the step's {elapsed:.2f}s were not spent waiting for a "
                    f"CPU (limit {self.timeout_s:g}s)"), 0.0
        # The backstop discounts only the waiting of the least-delayed thread: for one thread that is the estimate
        # itself (so the backstop never fires first), while a thread that sleeps throughout keeps it at wall time.
        backstop_estimate = idle_machine_wall_s(elapsed, min(waits), None)
        if backstop_estimate >= self.backstop_s:
            return f"wall-clock backstop of {self.backstop_s:g}s (threads)", 0.0
        # Both estimates grow at most as fast as the wall clock, so nothing can change before this.
        return None, min(self.timeout_s - estimate, self.backstop_s - backstop_estimate) + 0.005


# --------------------------------------------------------------------------------------------------------------
# Isolation between samples
# --------------------------------------------------------------------------------------------------------------
#
# A sandbox grades many samples, one after the other; nothing one leaves may reach the runner or a later sample:
# - the runner's memory, pipes and /proc entries: the runner is undumpable (PR_SET_DUMPABLE 0), so processes of its
#   uid (its children, in a container) can neither open /proc/<runner>/mem, /fd/*, /environ nor ptrace it; its
#   request/response pipes are never inherited (the child closes every fd but its report pipe);
# - processes: every process of the sample is killed before the verdict goes out (Runner._finish);
# - files: the scratch dir and the sandbox's other writable dirs are emptied after every sample (a program may
#   lock a directory with mode 000 or fill the tmpfs; the runner, the owner, can undo both);
# - System V IPC objects (shared memory holds memory after its creator exits) are removed; POSIX message queues
#   cannot be created at all (RLIMIT_MSGQUEUE 0);
# - signals: in a container or bubblewrap the runner is its pid namespace's init, which drops signals it has no
#   handler for (SIGINT is ignored), and the children cannot signal anything outside.
# What the runner cannot remove makes it ask for its own replacement ("retire" in the response).

PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
IPC_RMID = 0


def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    import ctypes

    if _libc().prctl(option, ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}, {value}): {os.strerror(err)}")


def set_dumpable(dumpable: bool) -> None:
    _prctl(PR_SET_DUMPABLE, 1 if dumpable else 0)


def is_dumpable() -> bool:
    return bool(_libc().prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))


def _checked_private_dir(path) -> int:
    """The mode of `path`, which the runner will empty after every sample: an absolute directory, never '/'."""
    if not isinstance(path, str) or not os.path.isabs(path) or os.path.realpath(path) == "/":
        raise ValueError(f"scratch/private dir must be an absolute directory other than /, got {path!r}")
    st = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path):
        raise ValueError(f"scratch/private dir {path!r} is not a directory")
    return st.st_mode & 0o7777


def empty_directory(path: str) -> list[str]:
    """Remove everything inside `path`, never following a symlink, first giving back access to directories a
    program locked (mode 000 or read-only); returns the names still there (empty when done)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        _empty_dir_fd(fd, depth=0)
        return os.listdir(fd)
    finally:
        os.close(fd)


_MAX_TREE_DEPTH = 64  # deeper trees are left, and the runner retires (each level holds an fd open here)


def _empty_dir_fd(dir_fd: int, depth: int) -> None:
    for entry in list(os.scandir(dir_fd)):
        name = entry.name
        try:
            if entry.is_dir(follow_symlinks=False):
                if depth >= _MAX_TREE_DEPTH:
                    continue
                try:
                    os.chmod(name, 0o700, dir_fd=dir_fd)  # no process of the sample is left to swap it for a link
                except OSError:
                    pass
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                try:
                    _empty_dir_fd(sub, depth + 1)
                finally:
                    os.close(sub)
                os.rmdir(name, dir_fd=dir_fd)
            else:
                os.unlink(name, dir_fd=dir_fd)
        except OSError:
            pass  # reported by the caller's final listing


def sysv_ipc_objects(owner_uid: int) -> list[tuple[str, int]]:
    """(kind, id) of the System V shared memory segments, message queues and semaphore sets owned or created by
    `owner_uid`, from /proc/sysvipc (of this IPC namespace), else by `_sysv_ids_since_last_look`."""
    found = []
    for kind in ("shm", "msg", "sem"):
        raw = _read_small_all(f"/proc/sysvipc/{kind}")
        if raw is None:
            found.extend((kind, ident) for ident in _sysv_ids_since_last_look(kind, owner_uid))
            continue
        if not raw:
            continue
        lines = raw.decode("ascii", "replace").splitlines()
        header = lines[0].split()
        try:
            uid_col, cuid_col = header.index("uid"), header.index("cuid")
        except ValueError:
            continue
        for line in lines[1:]:
            fields = line.split()
            try:
                if owner_uid in (int(fields[uid_col]), int(fields[cuid_col])):
                    found.append((kind, int(fields[1])))
            except (ValueError, IndexError):
                continue
    return found


IPC_PRIVATE, IPC_CREAT, IPC_STAT = 0, 0o1000, 2
_SYSV_ID_WINDOW = 4096  # ids looked at per kind and call, at most (a sample that allocated more is not followed)
_sysv_looked_to: dict[str, int] = {}  # kind -> ids below this were looked at (and were not the owner's, or gone)


def _sysv_ctl(libc, kind: str, ident: int, command: int, buf=None) -> int:
    if kind == "sem":
        return libc.semctl(ident, 0, command, buf)
    return getattr(libc, kind + "ctl")(ident, command, buf)


def _sysv_probe_id(libc, kind: str) -> int:
    """Create and remove a private object of `kind`: its id is where the id allocator stands now (-1: refused)."""
    if kind == "shm":
        ident = libc.shmget(IPC_PRIVATE, 1, IPC_CREAT | 0o600)
    elif kind == "msg":
        ident = libc.msgget(IPC_PRIVATE, IPC_CREAT | 0o600)
    else:
        ident = libc.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600)
    if ident >= 0:
        _sysv_ctl(libc, kind, ident, IPC_RMID)
    return ident


def _sysv_ids_since_last_look(kind: str, owner_uid: int) -> list[int]:
    """Where /proc/sysvipc is missing (gVisor 20221219 has none): the ids of `kind` owned or created by `owner_uid`
    among those allocated since the last look. gVisor hands out ids in sequence without reusing them, so a probe
    object's id bounds what a sample can have created, and IPC_STAT by id (struct ipc_perm: key, uid, gid, cuid)
    says whether each still exists and whose it is. Linux, whose ids are not sequential, has /proc/sysvipc."""
    import ctypes

    libc = _libc()
    now = _sysv_probe_id(libc, kind)
    if now < 0:
        return []
    start = max(_sysv_looked_to.get(kind, 0), now - _SYSV_ID_WINDOW)
    buf = ctypes.create_string_buffer(512)
    found = []
    for ident in range(start, now):
        if _sysv_ctl(libc, kind, ident, IPC_STAT, buf) == -1:
            continue
        uid, cuid = struct.unpack_from("=I", buf, 4)[0], struct.unpack_from("=I", buf, 12)[0]
        if owner_uid in (uid, cuid):
            found.append(ident)
    # Objects still there are looked at again next time (the caller removes them, then looks again).
    _sysv_looked_to[kind] = min(found) if found else now + 1
    return found


def remove_sysv_ipc(owner_uid: int) -> list[tuple[str, int]]:
    """IPC_RMID every object of sysv_ipc_objects(owner_uid); returns those still there."""
    objects = sysv_ipc_objects(owner_uid)
    if not objects:
        return []
    libc = _libc()
    for kind, ident in objects:
        if kind == "sem":
            libc.semctl(ident, 0, IPC_RMID)
        else:
            getattr(libc, kind + "ctl")(ident, IPC_RMID, None)
    return sysv_ipc_objects(owner_uid)


def _read_small_all(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 22)
    except OSError:
        return None


# --------------------------------------------------------------------------------------------------------------
# The runner: forks a child per sample, referees it, cleans up
# --------------------------------------------------------------------------------------------------------------


class Runner:
    def __init__(self, cleanup: str, child_uid, private_dirs=(), private_ipc: bool = False):
        if cleanup not in ("namespace", "uid", "pgroup"):
            raise ValueError(f"unknown cleanup mode {cleanup!r}")
        self.cleanup = cleanup
        self.child_uid = child_uid
        # pgroup mode in a sandbox with an IPC namespace of its own (a grading pod, where the samples share this
        # runner's uid): the System V objects of that uid are the samples', removed as in namespace mode.
        self.private_ipc = private_ipc
        # Directories only this sandbox's samples can write besides the scratch dir (/tmp, /dev/shm of a
        # container), emptied after every sample; with their modes, restored if a program changed them.
        self.private_dirs = {path: _checked_private_dir(path) for path in private_dirs}
        self.tests = None  # the TestsCache, whose expected outputs each child forgets (main sets it)
        self._expected = (None, None)  # (outputs list, its values json-decoded): call-based, once per problem

    def grade(self, request: SampleRequest) -> SampleResult:
        # Decided without forking a child, as the harness decides them: a program that does not compile (no code
        # at all, a generation cut off mid-statement) and expected outputs that do not decode are runtime errors
        # before any test runs.
        scratch = request.get("scratch")
        if scratch not in self.private_dirs:
            self.private_dirs[scratch] = _checked_private_dir(scratch)
        compiled, compile_error = precompile(request["code"], request.get("fn_name"))
        if compile_error is None and request.get("fn_name"):
            try:
                self._call_expected(request["outputs"])
            except (ValueError, RecursionError) as exc:
                compile_error = (type(exc).__name__, f"expected output does not decode: {exc}"[:ERROR_MESSAGE_CHARS])
        if compile_error is not None:
            return {"id": request["id"], "passed": False, "verdict": "RE", "tests_run": 0, "time_s": 0.0,
                    "failure": failure_of(request, "RE", None, compile_error)}
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_fd)
                _child_main(request, write_fd, self.child_uid, compiled, lambda: self._forget_expected(request))
            finally:
                os._exit(70)
        os.close(write_fd)
        try:
            outcome = self._referee(request, pid, read_fd)
        finally:
            os.close(read_fd)
            status, usage = self._finish(pid)
        left = self._reset_private_state()
        if left:
            # What a sample left could reach the next one: the grader replaces this sandbox before that.
            outcome["retire"] = ("the sample left state this runner could not remove: " + "; ".join(left))[:1000]
        cpu_s = (usage.ru_utime + usage.ru_stime) if usage is not None else 0.0
        if outcome.pop("_from_exit", False):
            outcome.update(self._verdict_from_exit(status, cpu_s, cpu_limit_s(request)))
            outcome["error"] = (None, outcome.pop("detail"))
        verdict = outcome["verdict"]
        result = {"id": request["id"], "passed": verdict == "AC", "verdict": verdict, "tests_run": outcome["tests_run"],
                  "time_s": round(cpu_s, 4),
                  "failure": None if verdict == "AC" else failure_of(
                      request, verdict, outcome.get("test"), outcome.get("error") or (None, ""), outcome.get("output"))}
        if "retire" in outcome:
            result["retire"] = outcome["retire"]
        return result

    def _reset_private_state(self) -> list[str]:
        """After the sample's processes are gone: empty the scratch and private dirs, restore their modes, remove
        the System V IPC objects of the sample's uid. Returns what could not be removed (empty when clean)."""
        left = []
        for path, mode in self.private_dirs.items():
            try:
                st = os.lstat(path)
                if st.st_uid == os.geteuid() and (st.st_mode & 0o7777) != mode:
                    os.chmod(path, mode)
                rest = empty_directory(path)
            except OSError as exc:
                left.append(f"{path}: {exc}")
                continue
            if rest:
                left.append(f"{path}: {sorted(rest)[:5]}")
        owner = {"namespace": os.geteuid(), "uid": self.child_uid}.get(self.cleanup)
        if owner is None and self.private_ipc:
            owner = os.geteuid()
        if owner is not None:  # pgroup: the host's IPC namespace (unless --private-ipc), whose objects are not ours
            rest = remove_sysv_ipc(owner)
            if rest:
                left.append(f"System V IPC objects {rest[:5]}")
        return left

    def _call_expected(self, outputs: list) -> list:
        if self._expected[0] is not outputs:
            self._expected = (outputs, [json.loads(o) for o in outputs])
        return self._expected[1]

    def _forget_expected(self, request: dict) -> None:
        """In the child: drop every expected output it can reach as an object (the request's, the cached problems',
        the decoded ones), so a program cannot look them up (gc.get_objects(), its callers' frames) and print them.
        Freed memory is not wiped: a program reading raw memory through ctypes could still find bytes of them."""
        holders = [request.get("outputs") or [], self._expected[1] or []]
        if self.tests is not None:
            holders += [outputs for _, outputs in self.tests.store.values()]
            self.tests.store.clear()
        for holder in holders:
            holder.clear()
        request.pop("outputs", None)
        self._expected = (None, None)

    def _referee(self, request: dict, pid: int, read_fd: int) -> dict:
        """Read the child's reports; return as soon as the sample's fate is known."""
        n_tests = len(request["inputs"])
        outputs = request["outputs"]
        expected_values = self._call_expected(outputs) if request.get("fn_name") else None
        frames = FrameBuffer(limit=int(request["output_cap"]) * 4 + 4096)
        exit_watch = ChildExitWatch(pid)
        clock = StepClock(pid, float(request["timeout_s"]), float(request["wall_s"]),
                          others_alive=lambda: bool(self._survivors(lambda p: p != pid and self._in_sample(p, pid))))
        tests_done = 0  # tests that finished and passed
        compiled = False
        pipe_open = True

        def running() -> int:
            return tests_done + (1 if compiled else 0)

        def failed(verdict: str, error_type, message: str, **more) -> dict:
            """The outcome of a step that failed: the test it ran (None while compiling) and why."""
            return {"verdict": verdict, "tests_run": running(), "test": tests_done if compiled else None,
                    "error": (error_type, message), **more}

        try:
            while True:
                too_slow, wait_s = clock.verdict()
                if too_slow:
                    return failed("TLE", None, too_slow)
                watched = [read_fd] if pipe_open else []
                if exit_watch.fd is not None:
                    watched.append(exit_watch.fd)
                else:
                    wait_s = min(wait_s, exit_watch.poll_s)
                ready, _, _ = select.select(watched, [], [], wait_s)
                child_gone = False
                data = b""
                if read_fd in ready:
                    data = os.read(read_fd, 1 << 20)
                    if not data:  # every writer closed the pipe: wait (under the wall rule) for the exit itself
                        pipe_open = False
                        continue
                    exit_watch.saw_activity()
                elif exit_watch.exited(ready):
                    child_gone = True
                    data = self._drain(read_fd) if pipe_open else b""  # what it wrote before dying
                try:
                    parsed = frames.feed(data) if data else []
                except OverflowError:
                    return failed("OLE", None, "report over the output cap")
                except (ValueError, RecursionError):  # RecursionError: JSON nested past the decoder's limit
                    return failed("RE", None, "garbled report from the child")
                for frame in parsed:
                    kind = frame.get("kind") if isinstance(frame, dict) else None
                    if kind == "compiled":
                        compiled = True
                    elif kind in ("compile_error", "error"):
                        verdict = frame.get("verdict") if frame.get("verdict") in ("RE", "MLE", "OLE") else "RE"
                        error = frame.get("error")
                        if not (isinstance(error, list) and len(error) == 2 and all(isinstance(e, str) for e in error)):
                            error = (None, "unexpected report from the child")
                        outcome = failed(verdict, error[0], error[1])
                        if kind == "compile_error":
                            outcome.update(tests_run=0, test=None)
                        return outcome
                    elif kind in ("output", "result") and frame.get("index") == tests_done:
                        if kind == "output":
                            produced = frame.get("output")
                            ok = isinstance(produced, str) and stdin_output_matches(produced, outputs[tests_done])
                            why = stdin_mismatch(produced, outputs[tests_done]) if isinstance(produced, str) else ""
                            shown = truncate_text(produced)
                        else:
                            ok = "value" in frame and call_result_matches(frame["value"], expected_values[tests_done])
                            shown, why = decoded_text(frame.get("value")), "Wrong Answer"
                        if not ok:
                            return failed("WA", None, why, output=shown)
                        tests_done += 1
                        if tests_done == n_tests:
                            return {"verdict": "AC", "tests_run": n_tests}
                    else:
                        return failed("RE", None, "unexpected report from the child")
                if parsed:
                    clock.restart()  # each step (compile, each test) is timed on its own, as the harness does
                if child_gone:
                    return dict(failed("RE", None, ""), _from_exit=True)
        finally:
            exit_watch.close()

    @staticmethod
    def _drain(fd: int) -> bytes:
        chunks = []
        while True:
            ready, _, _ = select.select([fd], [], [], 0)
            if not ready:
                break
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _verdict_from_exit(status, cpu_s: float, cpu_limit: float) -> dict:
        if status is None:
            return {"verdict": "RE", "detail": "child vanished"}
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig in (signal.SIGPROF, signal.SIGXCPU) or cpu_s >= cpu_limit:
                return {"verdict": "TLE", "detail": "CPU time limit"}
            if sig == signal.SIGKILL:
                # Nobody here sends SIGKILL before the verdict is known; the kernel does for the memory cgroup.
                return {"verdict": "MLE", "detail": "killed (out of memory)"}
            return {"verdict": "RE", "detail": f"killed by signal {signal.Signals(sig).name}"}
        return {"verdict": "RE", "detail": f"exited with status {os.WEXITSTATUS(status)} before reporting"}

    def _finish(self, pid: int):
        """Kill the child, collect its status and CPU usage, then kill whatever it left behind."""
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        status = usage = None
        try:
            _, status, usage = os.wait4(pid, 0)
        except ChildProcessError:
            pass
        if self.cleanup == "namespace":
            # Alone in our pid namespace: kill(-1) reaches every process but us and the namespace's init.
            self._kill_leftovers(lambda p: p not in (1, os.getpid()))
        elif self.cleanup == "uid" and self.child_uid is not None and self._survivors(self._owned_by_child_uid):
            helper = os.fork()
            if helper == 0:
                try:
                    os.setgroups([])
                    os.setgid(self.child_uid)
                    os.setuid(self.child_uid)
                    self._kill_leftovers(self._owned_by_child_uid)
                finally:
                    os._exit(0)
            os.waitpid(helper, 0)
        elif self.cleanup == "pgroup":
            # main() made this runner a child subreaper: a process that left the child's session (a double fork,
            # setsid) is still its descendant, and is killed like the rest.
            me = os.getpid()
            self._kill_each(lambda p: _descends_from(p, me))
        self._reap_orphans()
        return status, usage

    def _kill_each(self, select_pid) -> None:
        for _ in range(200):  # a fork bomb can spawn between passes
            survivors = self._survivors(select_pid)
            if not survivors:
                return
            for pid in survivors:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            self._reap_orphans()
            time.sleep(0.001)

    def _in_sample(self, pid: int, child: int) -> bool:
        """Whether `pid` was started by the sample whose child is `child` (see _finish for the same three modes)."""
        if self.cleanup == "namespace":
            return pid not in (1, os.getpid())
        if self.cleanup == "uid" and self.child_uid is not None:
            return self._owned_by_child_uid(pid)
        return _descends_from(pid, os.getpid())  # pgroup: see _finish

    def _owned_by_child_uid(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        return int(line.split()[1]) == self.child_uid
        except (OSError, ValueError, IndexError):
            pass
        return False

    @staticmethod
    def _survivors(select_pid) -> list[int]:
        """Live (non-zombie) processes chosen by select_pid, from /proc."""
        alive = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                with open(f"/proc/{pid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in ("Z", "X") and select_pid(pid):
                alive.append(pid)
        return alive

    def _kill_leftovers(self, select_pid) -> None:
        # A fork bomb can spawn between passes; repeat kill(-1) until a /proc scan finds nothing alive.
        for _ in range(200):
            if not self._survivors(select_pid):
                return
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
            self._reap_orphans()
            time.sleep(0.001)

    @staticmethod
    def _reap_orphans() -> None:
        while True:  # orphans reparented to us (in a container we are the namespace's init)
            try:
                reaped, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if reaped == 0:
                return


class ChildExitWatch:
    """Tells the referee's select loop when the child has exited, without reaping it (_finish collects its status
    and CPU usage with wait4). A pidfd where the kernel has one (Linux >= 5.3); where pidfd_open is missing (gVisor,
    e.g. runsc 20221219, answers ENOSYS; Linux < 5.3) the loop polls waitid(WNOWAIT | WNOHANG) instead, every
    POLL_MIN_S at first after the child's last report, backing off to POLL_MAX_S: a crash without a report is seen
    within POLL_MAX_S, and a child that reports steadily costs no extra wake-ups. (A SIGCHLD wakeup fd would need
    the handler undone in every child before the program runs.)"""

    POLL_MIN_S = 0.001
    POLL_MAX_S = 0.02

    def __init__(self, pid: int):
        self.pid = pid
        self.poll_s = self.POLL_MIN_S
        self.fd = None
        try:
            self.fd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # no os.pidfd_open (Python < 3.9), or ENOSYS/EPERM from the kernel
            self.fd = None

    def saw_activity(self) -> None:
        self.poll_s = self.POLL_MIN_S

    def exited(self, ready: list) -> bool:
        if self.fd is not None:
            return self.fd in ready
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        if info is None:  # still running
            self.poll_s = min(self.poll_s * 2, self.POLL_MAX_S)
            return False
        return True

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class TestsCache:
    """The tests of the last few problems, so samples of a problem already seen here arrive without them.

    A request with "tests_key" and "inputs"/"outputs" stores them; one with "tests_key" alone gets them filled in,
    or (evicted, or a restarted runner) fill() returns False and the grader resends the full request. LiveCodeBench
    private tests run to megabytes per problem, and the grader queues a problem's samples back to back, so this
    saves encoding, piping and decoding them once per sample. Kept small: in a container the runner's memory counts
    against the sandbox's limit.
    """

    def __init__(self, entries: int = 2):
        self.entries = entries
        self.store: dict[str, tuple[list, list]] = {}

    def fill(self, request: dict) -> bool:
        key = request.get("tests_key")
        if key is None:
            return True
        if "inputs" in request:
            self.store.pop(key, None)
            self.store[key] = (request["inputs"], request["outputs"])
            while len(self.store) > self.entries:
                self.store.pop(next(iter(self.store)))
            return True
        cached = self.store.get(key)
        if cached is None:
            return False
        request["inputs"], request["outputs"] = cached
        return True


def cpu_limit_s(request: dict) -> float:
    """The RLIMIT_CPU backstop for a whole sample: the per-step limit times (tests + compile), plus slack."""
    return float(request["timeout_s"]) * (len(request["inputs"]) + 1) + 2


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="valley grader sandbox runner (speaks frames on stdin/stdout)")
    parser.add_argument("--cleanup", choices=["namespace", "uid", "pgroup"], default="pgroup")
    parser.add_argument("--child-uid", type=int, default=None)
    parser.add_argument("--private-dir", action="append", default=[],
                        help="a directory only this sandbox's samples can write (its /tmp, /dev/shm), emptied after "
                             "every sample like the scratch dir; repeatable")
    parser.add_argument("--private-ipc", action="store_true",
                        help="pgroup mode: this sandbox has an IPC namespace of its own (a pod): remove the System V "
                             "IPC objects of this uid after every sample")
    args = parser.parse_args(argv)

    if args.cleanup == "namespace" and os.getpid() > 2:
        # kill(-1) outside a private pid namespace would hit every process of this user on the host.
        parser.error(f"--cleanup namespace needs a private pid namespace, but this runner is pid {os.getpid()}")
    _patchable_stdin_check()
    # Before anything else: no process of this uid (the children, in a container) may read or write this process
    # through /proc/<pid>/{mem,fd,environ} or ptrace (see "Isolation between samples").
    set_dumpable(False)
    if args.cleanup == "pgroup":
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
    # A program must not be able to stop its referee with a signal that has a Python handler (SIGINT, ...).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    missing_modules = import_harness_modules()
    request_fd, response_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    if hasattr(sys, "set_int_max_str_digits"):  # expected outputs are decoded here, as in the harness's process
        sys.set_int_max_str_digits(INT_MAX_STR_DIGITS)
    runner = Runner(args.cleanup, args.child_uid, args.private_dir, private_ipc=args.private_ipc)
    ready: RunnerReady = {"ready": True, "python": sys.version.split()[0], "pid": os.getpid(),
                          "missing_modules": missing_modules}
    write_frame(response_fd, ready)
    tests = TestsCache()
    runner.tests = tests
    while True:
        request = read_frame(request_fd)
        if request is None:
            return 0
        if not tests.fill(request):
            need: NeedTests = {"id": request.get("id"), "need_tests": True}
            write_frame(response_fd, need)
            continue
        response: RunnerAnswer
        try:
            response = runner.grade(request)
        except Exception as exc:  # noqa: BLE001 - report, keep serving
            response = {"id": request.get("id"), "error": f"runner failed: {exc!r}"}
        write_frame(response_fd, response)


if __name__ == "__main__":
    sys.exit(main())
