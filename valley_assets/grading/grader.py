"""grade(): LiveCodeBench-exact grading of generated programs on a warm pool of sandboxes.

Every sample is graded on all of its problem's tests (public then private), stopping at the first failure, with a
per-test time limit (default 6 s, as in the harness): CPU time, or wall time not spent waiting for a CPU, with a
wall-clock backstop. With `results_path`, each sample's
result is appended to `<results stem>.samples.jsonl` as soon as it is known, and a rerun grades only what that log
lacks (entries whose code, tests or limits changed are graded again); the final results file is written atomically.

Where the samples run is a SampleExecutor: by default a warm pool of local sandboxes (Docker or process backend,
`_Pool`); the kubernetes backend passes its own (kubernetes_backend.KubernetesShardPool: an Indexed Job of grading
pods). The bookkeeping around it (validation, resume from the samples log, summary, results file) is this module's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypedDict

from valley_assets.grading.backends import (
    Isolation,
    SandboxError,
    Worker,
    choose_isolation,
    remove_leftover_containers,
    start_worker,
)
from valley_assets.grading.problems import GradingProblem, ProblemFormatError, problem_from_record, validate_generations
from valley_assets.grading.runner import ERROR_MESSAGE_CHARS, SampleRequest, SampleResult, failure_of
from valley_assets.science.passk import mean_pass_at_k

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 6.0
DEFAULT_MEMORY_MB = 1024
# Captured stdout above this many characters is an OLE; LCB expected outputs are far smaller.
DEFAULT_OUTPUT_CAP = 32 * 1024 * 1024
# Wall-clock backstop per step = this many times the limit. A step is TLE earlier when its CPU time, or its wall
# time minus the time it waited for a CPU (a sleeping program), passes the limit (runner.py, "Wall-clock rule"); the
# backstop is the last resort for what those cannot see. It was 3x when it was the only way to catch a sleeping
# program; on a loaded machine that flipped CPU-bound programs (a program given 10% of a core reached 3 s of wall
# time after 0.3 s of CPU), so it now sits where only CPU starvation beyond 10x oversubscription could reach it.
WALL_FACTOR = 10.0
# Default sandboxes per CPU core. Verdicts are CPU time (and wall time not spent waiting for a CPU), so running more
# programs than cores changes no verdict (benchmarks/grader_bench.py's flip check); it overlaps what a sample spends
# off the CPU (fork, pipes, the runner's bookkeeping, sleeping programs) with another sample's computing.
WORKERS_PER_CORE = 2
VERDICTS = ("AC", "WA", "TLE", "RE", "MLE", "OLE")
# A sample's result in results.json and the samples log: runner.SampleResult without its id; "failure" is the
# per-sample diagnostics (runner.Failure: first failing test, error type and message, expected vs produced).
RESULT_FIELDS = ("passed", "verdict", "tests_run", "time_s", "failure")


class GradingJob(TypedDict):
    """One sample still to grade, as grade() hands it to its SampleExecutor."""

    question_id: str
    sample_idx: int
    key: str  # _sample_key: what the samples log entry must match for the verdict to be reused
    request: SampleRequest  # "scratch" (and "nproc") are the executor's to fill in: they name its sandbox's dirs


class SampleExecutor(Protocol):
    """Where grade() has its samples run."""

    isolation: Isolation  # reported in the results (backend, isolation, warning)

    def run(self, jobs: list[GradingJob], on_result: Callable[[GradingJob, SampleResult], None]) -> None:
        """Grade every job, calling on_result (thread-safe) once per job as its verdict arrives; a sandbox or
        infrastructure failure raises (SandboxError), never a verdict."""
        ...


def samples_log_path(results_path: str | Path) -> Path:
    """The append-only per-sample log kept next to the results file."""
    results_path = Path(results_path)
    return results_path.with_name(results_path.stem + ".samples.jsonl")


def _problem_digest(problem: GradingProblem) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([problem.fn_name, problem.inputs, problem.outputs]).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _sample_key(problem_digest: str, code: str, timeout_s: float, memory_mb: int, output_cap: int) -> str:
    h = hashlib.sha256()
    h.update(f"{problem_digest}|{timeout_s!r}|{memory_mb}|{output_cap}|".encode())
    h.update(code.encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:32]


def _read_samples_log(path: Path) -> dict[tuple[str, int], dict]:
    """Entries of an earlier, possibly interrupted run; a torn last line (killed mid-write) is ignored."""
    done: dict[tuple[str, int], dict] = {}
    if not path.exists():
        return done
    lines = path.read_text(encoding="utf-8").splitlines()
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            key = (entry["question_id"], int(entry["sample_idx"]))
            if entry["verdict"] not in VERDICTS:
                raise ValueError(entry["verdict"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            if line_no == len(lines):
                continue
            raise ProblemFormatError(f"{path}:{line_no}: corrupt sample log entry: {exc!r}") from exc
        done[key] = entry
    return done


def _logged_result(entry: dict) -> dict:
    """A result from the samples log; entries written before diagnostics existed carry their one-line "detail"."""
    result = {f: entry[f] for f in RESULT_FIELDS if f != "failure"}
    if "failure" in entry:
        result["failure"] = entry["failure"]
    else:
        result["failure"] = None if entry["passed"] else {
            "test": None, "error_code": None, "error_type": None, "error_message": entry.get("detail", ""),
            "inputs": None, "expected": None, "output": None}
    return result


def default_workers(memory_mb: int) -> int:
    """WORKERS_PER_CORE x the CPUs this process may use, but no more sandboxes than the machine's memory holds at
    each one's limit (memory_mb for the program + 256 MB for the runner, the Docker backend's cgroup)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        memory_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory_bytes = None
    workers = WORKERS_PER_CORE * cores
    if memory_bytes:
        workers = min(workers, max(1, memory_bytes // ((memory_mb + 256) * 1024 * 1024)))
    return max(1, workers)


def summarize(results: dict[str, list[dict]], difficulty_of: dict[str, str]) -> dict:
    """pass@1 over problems (unbiased estimator, per problem then averaged), overall and per difficulty."""
    counts = {qid: (len(samples), sum(1 for s in samples if s["passed"])) for qid, samples in results.items()}
    summary = {
        "pass@1": mean_pass_at_k(counts.values(), k=1) if counts else None,
        "per_difficulty": {},
        "n_problems_per_difficulty": {},
        "n_problems": len(counts),
        "n_samples": sum(n for n, _ in counts.values()),
        "verdicts": {v: 0 for v in VERDICTS},
    }
    for difficulty in sorted({difficulty_of[qid] for qid in counts}):
        group = [counts[qid] for qid in counts if difficulty_of[qid] == difficulty]
        summary["per_difficulty"][difficulty] = mean_pass_at_k(group, k=1)
        summary["n_problems_per_difficulty"][difficulty] = len(group)
    for samples in results.values():
        for sample in samples:
            summary["verdicts"][sample["verdict"]] += 1
    return summary


# A trivial program graded in a fresh sandbox after a sample lost two sandboxes in a row: it tells a program that
# breaks its sandbox (killed its runner, wrote into its pipes: possible where the runtime is weaker than Linux, see
# benchmarks/RESULTS.md "Grading under gVisor") from a sandbox infrastructure that is failing.
CANARY_CODE = "print(input())\n"


def canary_request(request: SampleRequest) -> SampleRequest:
    """A request that every working sandbox answers AC, with the limits of `request`."""
    return {"id": f"valley-canary/{request['id']}", "code": CANARY_CODE, "fn_name": None, "inputs": ["7\n"],
            "outputs": ["7\n"], "timeout_s": request["timeout_s"], "wall_s": request["wall_s"],
            "memory_mb": request["memory_mb"], "output_cap": 1024, "scratch": ""}


def lost_sandbox_result(request: SampleRequest, error: SandboxError) -> SampleResult:
    """The verdict of a program whose sandbox was lost twice while a fresh one grades a trivial program: RE before
    any test, as the harness fails every test of a program whose process died without results."""
    message = f"the program broke its sandbox twice (a fresh sandbox then graded a trivial program): {error}"
    return {"id": request["id"], "passed": False, "verdict": "RE", "tests_run": 0, "time_s": 0.0,
            "failure": failure_of(request, "RE", None, ("SandboxLost", message[:ERROR_MESSAGE_CHARS]))}


class _Pool:
    """One thread per sandbox; each pulls samples from a shared queue. A sandbox that fails while it grades a
    sample is replaced and the sample graded again; when the fresh sandbox fails on it too, a trivial program is
    graded in a third: if that passes, the sample broke its sandboxes and its verdict is RE (`lost_sandbox_result`),
    otherwise the infrastructure is failing and the whole grading stops with the error."""

    def __init__(self, isolation: Isolation, n_workers: int, memory_mb: int):
        self.isolation = isolation  # a SampleExecutor
        self.n_workers = n_workers
        self.memory_mb = memory_mb
        self.workers: dict[int, Worker] = {}
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self, jobs: list[GradingJob], on_result: Callable[[GradingJob, SampleResult], None]) -> None:
        todo: queue.Queue = queue.Queue()
        for job in jobs:
            todo.put(job)
        threads = [threading.Thread(target=self._serve, args=(i, todo, on_result), daemon=True,
                                    name=f"valley-grader-{i}") for i in range(self.n_workers)]
        for t in threads:
            t.start()
        finished = False
        try:
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(timeout=0.2)
            finished = True
        finally:
            self.close(graceful=finished and self.error is None)
        if self.error is not None:
            raise self.error

    def _serve(self, index: int, todo: queue.Queue, on_result) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    job = todo.get_nowait()
                except queue.Empty:
                    return
                on_result(job, self._grade_with_retry(index, job["request"]))
        except BaseException as exc:  # noqa: BLE001 - surfaced by run()
            with self.lock:
                if self.error is None:
                    self.error = exc
            self.stopping.set()

    def _grade_with_retry(self, index: int, request: SampleRequest) -> SampleResult:
        for attempt in (1, 2):
            worker = self._worker(index)
            try:
                response = worker.grade(dict(request, scratch=worker.scratch, nproc=worker.nproc))
                if response.get("retire"):
                    # The sample left something its runner could not remove: a fresh sandbox for the next one.
                    log.warning("grader: replacing sandbox %s: %s", worker.name, response["retire"])
                    self._drop(index)
                return response
            except SandboxError as exc:
                self._drop(index)
                if self.stopping.is_set():
                    raise
                if attempt == 2:
                    return self._blame_sample_or_raise(index, request, exc)
        raise AssertionError("unreachable")

    def _blame_sample_or_raise(self, index: int, request: SampleRequest, error: SandboxError) -> SampleResult:
        try:
            worker = self._worker(index)
            canary = worker.grade(dict(canary_request(request), scratch=worker.scratch, nproc=worker.nproc))
        except SandboxError as canary_error:
            self._drop(index)
            raise SandboxError(f"{error}; then a fresh sandbox failed a trivial program too: {canary_error}") \
                from error
        if canary.get("verdict") != "AC" or canary.get("retire"):
            self._drop(index)
            raise SandboxError(f"{error}; then a fresh sandbox graded a trivial program {canary.get('verdict')}: "
                               f"{canary.get('failure')}") from error
        log.warning("grader: sample %s broke two sandboxes; a fresh one grades a trivial program: RE (%s)",
                    request["id"], error)
        return lost_sandbox_result(request, error)

    def _worker(self, index: int) -> Worker:
        with self.lock:
            worker = self.workers.get(index)
        if worker is None:
            if self.stopping.is_set():
                raise SandboxError("grading was stopped")
            worker = start_worker(self.isolation, index, self.memory_mb)
            with self.lock:
                self.workers[index] = worker
        return worker

    def _drop(self, index: int) -> None:
        with self.lock:
            worker = self.workers.pop(index, None)
        if worker is not None:
            worker.kill()

    def close(self, graceful: bool = False) -> None:
        """Stop the sandboxes: after a normal finish by closing their input (each runner exits, and its CPU time
        is accounted to this process like any waited-for child), else (error, interruption) by killing them."""
        self.stopping.set()
        with self.lock:
            workers, self.workers = list(self.workers.values()), {}
        for worker in workers:
            worker.close() if graceful else worker.kill()


def grade(
    problems: list[dict],
    generations: list[dict],
    *,
    backend: str = "auto",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    workers: int | None = None,
    memory_mb: int = DEFAULT_MEMORY_MB,
    results_path: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    output_cap: int = DEFAULT_OUTPUT_CAP,
    executor: SampleExecutor | None = None,
) -> dict:
    """Grade `generations` ([{question_id, code_list}]) against LCB `problems` records; see the module docstring.

    `executor`: where the samples run (e.g. a kubernetes_backend.KubernetesShardPool); None: a pool of `workers`
    local sandboxes of `backend` (which is then ignored otherwise).

    Returns {"results": {qid: [{passed, verdict, tests_run, time_s, failure}, ...]}, "summary": {...}, "backend": ...,
    "isolation": ..., "warning": ...}; problems without generations are not scored and are listed in
    summary["problems_without_generations"].
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    if memory_mb < 64:
        raise ValueError(f"memory_mb must be at least 64, got {memory_mb}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    by_id: dict[str, GradingProblem] = {}
    for i, record in enumerate(problems):
        try:
            problem = problem_from_record(record)
        except ProblemFormatError as exc:
            raise ProblemFormatError(f"problems[{i}]: {exc}") from exc
        if problem.question_id in by_id:
            raise ProblemFormatError(f"problems[{i}]: question_id {problem.question_id!r} appears twice")
        by_id[problem.question_id] = problem
    codes_by_id = validate_generations(generations, set(by_id))

    log_path = samples_log_path(results_path) if results_path is not None else None
    previous = _read_samples_log(log_path) if log_path is not None else {}
    results: dict[str, list[dict | None]] = {qid: [None] * len(codes) for qid, codes in codes_by_id.items()}
    jobs: list[GradingJob] = []
    for qid, codes in codes_by_id.items():
        problem = by_id[qid]
        digest = _problem_digest(problem)
        for idx, code in enumerate(codes):
            key = _sample_key(digest, code, timeout_s, memory_mb, output_cap)
            earlier = previous.get((qid, idx))
            if earlier is not None and earlier.get("key") == key:
                results[qid][idx] = _logged_result(earlier)
                continue
            request: SampleRequest = {
                "id": f"{qid}#{idx}", "code": code, "fn_name": problem.fn_name, "tests_key": digest,
                "inputs": list(problem.inputs), "outputs": list(problem.outputs), "timeout_s": timeout_s,
                "wall_s": timeout_s * WALL_FACTOR, "memory_mb": memory_mb, "output_cap": output_cap,
                "scratch": "",  # the sandbox's, filled in by the executor
            }
            jobs.append({"question_id": qid, "sample_idx": idx, "key": key, "request": request})

    isolation = executor.isolation if executor is not None else choose_isolation(backend)
    total = sum(len(c) for c in codes_by_id.values())
    total_done = [total - len(jobs)]
    log_lock = threading.Lock()
    log_file = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(log_path, "a", encoding="utf-8")

    def on_result(job: GradingJob, response: SampleResult) -> None:
        result = {f: response[f] for f in RESULT_FIELDS}
        with log_lock:
            results[job["question_id"]][job["sample_idx"]] = result
            if log_file is not None:
                entry = {"question_id": job["question_id"], "sample_idx": job["sample_idx"], "key": job["key"],
                         **result}
                log_file.write(json.dumps(entry) + "\n")
                log_file.flush()
            total_done[0] += 1
            if progress is not None:
                progress(total_done[0], total)

    started = time.monotonic()
    try:
        if jobs:
            if executor is None:
                if isolation.backend == "docker":
                    remove_leftover_containers()
                executor = _Pool(isolation, min(workers or default_workers(memory_mb), len(jobs)), memory_mb)
            executor.run(jobs, on_result)
    finally:
        if log_file is not None:
            log_file.close()

    difficulty_of = {qid: p.difficulty for qid, p in by_id.items()}
    summary = summarize(results, difficulty_of)
    summary["problems_without_generations"] = sorted(set(by_id) - set(codes_by_id))
    output = {
        "results": results,
        "summary": summary,
        "backend": isolation.backend,
        "isolation": isolation.isolation,
        "warning": isolation.warning,
        "settings": {"timeout_s": timeout_s, "memory_mb": memory_mb, "output_cap": output_cap,
                     "wall_factor": WALL_FACTOR, "graded_now": len(jobs), "reused": total - len(jobs),
                     "elapsed_s": round(time.monotonic() - started, 3)},
    }
    if results_path is not None:
        results_path = Path(results_path)
        tmp = results_path.with_name(results_path.name + ".tmp")
        tmp.write_text(json.dumps(output, indent=1), encoding="utf-8")
        os.replace(tmp, results_path)
    return output
