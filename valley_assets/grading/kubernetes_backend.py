"""The `kubernetes` grading backend: a checkpoint's samples graded by an Indexed Job of hardened pods.

Where it runs: in the process that grades (the Dagster run pod of `lcb_scores`), which has the problems and samples
from object storage and writes the results file and its per-sample log exactly as the local grader does
(`grade_on_kubernetes` = `grader.grade` with this pool as its SampleExecutor in place of the local one).

The Job (one place builds Job specs: `launch.job_spec.JobSpec` -> `build_job`):
- the samples still to grade are sharded by question (`plan_shards`: every sample of a question in one shard, so its
  tests travel once; shards = ceil(samples / samples_per_shard), at most max_pods; questions placed largest first on
  the lightest shard); completion index i grades shard i; all indexes run at once;
- each pod runs `shard_driver.py` (pid 1) and one warm runner (a fork per sample) from the sandbox image,
  under `runtimeClassName` (gVisor on GKE Sandbox, kata), non-root, read-only root, every capability dropped,
  seccomp RuntimeDefault, no privilege escalation, no service-account token, no Service env links, no Secret, CPU and
  memory limits, memory-backed /scratch and /tmp with size limits, label `valley.dev/role: grader`, which
  k8s/grader-networkpolicy.yaml denies all ingress and egress.

How a pod with no network gets its shard and returns verdicts: through the API server, the way `kubectl attach` and
`kubectl logs` do. The orchestrator attaches to each pod's stdin once (`stdin: true, stdinOnce: true`) and streams
the shard (the runner's source, each problem's tests once, the sample requests); every verdict comes back as a
`VALLEY-GRADE` line of the pod's log, which the orchestrator follows and hands to the results log as it arrives.
So no object-store credentials, presigned URLs or egress rule reach a pod that runs model-written code, and the
expected outputs never sit in a file a program could read (shard_driver.py says how the pod keeps them from it).

Failures:
- a program's failure is a verdict on its log line, never a pod failure; a sample that leaves state its runner cannot
  remove (the runner's `retire`) ends its pod after its verdict with exit 76, which podFailurePolicy ignores
  (not counted): the replacement pod has fresh memory volumes, as the Docker backend starts a fresh container;
- a pod that is preempted or evicted (DisruptionTarget) is replaced without counting; a lost runner or a cut-off
  input exits 75 and counts toward `backoffLimit` = pod_retries x shards; a malformed input exits 3 and fails the
  Job at once (podFailurePolicy). Every replacement pod is sent only the samples whose verdicts have not arrived;
- a sample whose runner is lost twice stops the grading with a SandboxError naming it (the local pool's rule);
  a Job that fails is a SandboxError (infrastructure), never verdicts. Samples whose log lines were lost (a log
  stream cut while its pod ran) are graded by another Job, up to `rounds` Jobs in all.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
from kubernetes import client as k8s
from pydantic import Field

from valley_assets.grading import shard_driver
from valley_assets.grading.backends import Isolation, SandboxError, runner_source
from valley_assets.grading.grader import GradingJob
from valley_assets.grading.runner import SampleRequest, SampleResult
from valley_assets.launch.job_spec import CONTAINER_NAME, INDEX_ANNOTATION, LABEL_PREFIX, JobSpec, build_job
from valley_assets.launch.job_watch import job_outcome
from valley_assets.launch.k8s_api import K8sApi, load_api_factory

GRADER_ROLE_LABEL = f"{LABEL_PREFIX}/role"
GRADER_ROLE = "grader"  # what k8s/grader-networkpolicy.yaml selects
SCRATCH = "/scratch"
# The pod's other writable mounts (memory emptyDirs): the runner empties them after every sample, like SCRATCH.
PRIVATE_DIRS = ("/tmp", "/dev/shm")
# The runner in a pod: pgroup cleanup (it is not its pid namespace's init; the driver is, and sweeps), and the pod's
# own IPC namespace, whose System V objects (all of the pod's one uid) it removes after every sample.
RUNNER_ARGS = ("--cleanup", "pgroup", "--private-ipc", *(arg for d in PRIVATE_DIRS for arg in ("--private-dir", d)))
DRIVER_PATH = Path(shard_driver.__file__)
# Runner uid in the pod: the Docker backend's first worker uid (not the image's nobody, which may own host files).
GRADER_UID = 61000
ATTACH_CHUNK = 1 << 20
_log = logging.getLogger(__name__)


class KubernetesGradingSettings(dg.Config):
    """How grading Jobs are shaped (the profile's `grading.kubernetes`, through config.GradingKubernetesConfig)."""

    namespace: str = "valley"
    image: str = "valley-sandbox:latest"
    runtime_class_name: str | None = "gvisor"
    samples_per_shard: int = 1000
    max_pods: int = 64
    cpu: str = "1"  # request and limit: one runner per pod grades one sample at a time
    memory: str = "4Gi"  # the shard's tests (held by the driver), the runner, the program's memory_mb
    scratch_size: str = "64Mi"
    tmp_size: str = "16Mi"
    shm_size: str = "64Mi"
    pod_retries: int = 3
    rounds: int = 2
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    image_pull_policy: str = "IfNotPresent"
    timeout_s: float | None = None  # the whole grading; None waits as long as the Job runs
    poll_interval_s: float = 5.0
    ttl_seconds_after_finished: int = 3600
    kubeconfig_file: str | None = None
    in_cluster: bool = True
    api_factory: str | None = None

    def api(self) -> K8sApi:
        if self.api_factory:
            return load_api_factory(self.api_factory)()
        return K8sApi.from_config(self.kubeconfig_file, self.in_cluster)


@functools.lru_cache(maxsize=1)
def driver_source() -> str:
    return DRIVER_PATH.read_text()


# --- sharding -------------------------------------------------------------------------------------------------------
def plan_shards(jobs: list[GradingJob], samples_per_shard: int, max_pods: int) -> list[list[GradingJob]]:
    """Jobs (grader.grade's: question_id, sample_idx, request) grouped by question into shards; see module doc."""
    if samples_per_shard < 1 or max_pods < 1:
        raise ValueError(f"samples_per_shard and max_pods must be >= 1, got {samples_per_shard}, {max_pods}")
    by_question: dict[str, list[GradingJob]] = {}
    for job in jobs:
        by_question.setdefault(job["question_id"], []).append(job)
    if not by_question:
        return []
    n_shards = min(max_pods, len(by_question), max(1, math.ceil(len(jobs) / samples_per_shard)))
    shards: list[list[GradingJob]] = [[] for _ in range(n_shards)]
    # Largest question first onto the lightest shard (ties: lowest index), so shards finish close together.
    for qid in sorted(by_question, key=lambda q: (-len(by_question[q]), q)):
        lightest = min(range(n_shards), key=lambda i: (len(shards[i]), i))
        shards[lightest].extend(by_question[qid])
    for shard in shards:
        shard.sort(key=lambda j: (j["question_id"], j["sample_idx"]))
    return shards


def shard_request(job: GradingJob) -> SampleRequest:
    """The runner request of a job as it goes into a shard: without its tests (sent once per problem), with the
    pod's scratch dir and no RLIMIT_NPROC (the samples share the pod's one uid with the driver and runner; the pod's
    pids limit bounds them)."""
    request: SampleRequest = {k: v for k, v in job["request"].items() if k not in ("inputs", "outputs")}  # type: ignore[assignment]
    request["scratch"] = SCRATCH
    request["nproc"] = None
    return request


def iter_shard_frames(index: int, jobs: list[GradingJob]):
    """The frames the driver of shard `index` reads from stdin (shard_driver.py's protocol), one at a time, so a
    shard's tests are never all encoded at once in the grading process (64 shards of LiveCodeBench tests would be
    gigabytes)."""

    def frame(obj) -> bytes:
        data = json.dumps(obj).encode("utf-8", "surrogatepass")
        return len(data).to_bytes(4, "big") + data

    yield frame({"kind": "header", "protocol": shard_driver.PROTOCOL, "shard": index,
                 "runner_source": runner_source(), "runner_args": list(RUNNER_ARGS)})
    sent = set()
    for job in jobs:
        request = job["request"]
        key = request["tests_key"]
        if key not in sent:
            sent.add(key)
            yield frame({"kind": "tests", "key": key, "inputs": request["inputs"], "outputs": request["outputs"]})
    for job in jobs:
        yield frame({"kind": "sample", "request": shard_request(job)})
    yield frame({"kind": "end", "tests": len(sent), "samples": len(jobs)})


def shard_frames(index: int, jobs: list[GradingJob]) -> bytes:
    return b"".join(iter_shard_frames(index, jobs))


# --- the Job --------------------------------------------------------------------------------------------------------
def grading_job_spec(settings: KubernetesGradingSettings, name: str, n_shards: int, labels: dict[str, str]) -> JobSpec:
    rules = [
        k8s.V1PodFailurePolicyRule(action="Ignore", on_pod_conditions=[
            k8s.V1PodFailurePolicyOnPodConditionsPattern(type="DisruptionTarget", status="True")]),
        k8s.V1PodFailurePolicyRule(action="FailJob", on_exit_codes=k8s.V1PodFailurePolicyOnExitCodesRequirement(
            container_name=CONTAINER_NAME, operator="In", values=[shard_driver.EXIT_BAD_INPUT])),
        k8s.V1PodFailurePolicyRule(action="Ignore", on_exit_codes=k8s.V1PodFailurePolicyOnExitCodesRequirement(
            container_name=CONTAINER_NAME, operator="In", values=[shard_driver.EXIT_REPLACE_POD])),
    ]
    return JobSpec(
        name=name,
        namespace=settings.namespace,
        image=settings.image,
        image_pull_policy=settings.image_pull_policy,
        command=["python3", "-I", "-u", "-c", driver_source()],
        completions=n_shards,
        pod_failure_rules=rules,
        backoff_limit=settings.pod_retries * n_shards,
        ttl_seconds_after_finished=settings.ttl_seconds_after_finished,
        labels={"app.kubernetes.io/component": "grader", GRADER_ROLE_LABEL: GRADER_ROLE, **labels},
        node_selector=dict(settings.node_selector),
        tolerations=list(settings.tolerations),
        service_account=None,
        hf_token_secret=None,
        env_from_secrets=[],
        cpu=settings.cpu,
        cpu_limit=settings.cpu,
        memory=settings.memory,
        shm_size=settings.shm_size,
        memory_volumes={SCRATCH: settings.scratch_size, "/tmp": settings.tmp_size},
        runtime_class_name=settings.runtime_class_name,
        automount_service_account_token=False,
        enable_service_links=False,
        stdin_once=True,
        termination_grace_period_seconds=5,
        security_context=k8s.V1SecurityContext(
            run_as_non_root=True, run_as_user=GRADER_UID, run_as_group=GRADER_UID, read_only_root_filesystem=True,
            allow_privilege_escalation=False, privileged=False, capabilities=k8s.V1Capabilities(drop=["ALL"]),
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault")),
        pod_security_context=k8s.V1PodSecurityContext(
            run_as_non_root=True, run_as_user=GRADER_UID, run_as_group=GRADER_UID,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault")),
    )


def build_grading_job(settings: KubernetesGradingSettings, name: str, n_shards: int,
                      labels: dict[str, str] | None = None) -> k8s.V1Job:
    return build_job(grading_job_spec(settings, name, n_shards, labels or {}))


class KubernetesShardPool:
    """`run(jobs, on_result)` as grader's local pool, on an Indexed Job (see the module docstring)."""

    isolation = Isolation("kubernetes", "pod")

    def __init__(self, settings: KubernetesGradingSettings, *, log=None, api: K8sApi | None = None):
        self.settings = settings
        self.api = api or settings.api()
        self.log = log or _log.info
        self.lock = threading.Lock()
        self.graded: set[str] = set()
        self.losses: dict[str, int] = {}
        self.fatal: BaseException | None = None
        self.jobs_created: list[str] = []
        self.pods_seen: dict[str, int] = {}  # pod name -> completion index
        self._threads: list[threading.Thread] = []

    # --- the public face ------------------------------------------------------------------------------------------
    def run(self, jobs: list[GradingJob], on_result: Callable[[GradingJob, SampleResult], None]) -> None:
        started = time.monotonic()
        by_id = {job["request"]["id"]: job for job in jobs}
        for round_no in range(1, self.settings.rounds + 1):
            todo = [job for job in jobs if job["request"]["id"] not in self.graded]
            if not todo:
                return
            if round_no > 1:
                self.log(f"grading round {round_no}: {len(todo)} samples have no verdict yet (a log stream was lost)")
            self._run_job(todo, by_id, on_result, started)
        missing = sorted(job["request"]["id"] for job in jobs if job["request"]["id"] not in self.graded)
        if missing:
            raise SandboxError(f"{len(missing)} samples have no verdict after {self.settings.rounds} grading Jobs, "
                               f"e.g. {missing[:5]}")

    # --- one Job --------------------------------------------------------------------------------------------------
    def _run_job(self, todo: list[dict], by_id: dict[str, dict], on_result, started: float) -> None:
        shards = plan_shards(todo, self.settings.samples_per_shard, self.settings.max_pods)
        name = f"valley-grade-{uuid.uuid4().hex[:10]}"
        namespace = self.settings.namespace
        body = build_grading_job(self.settings, name, len(shards))
        self.api.batch.create_namespaced_job(namespace, body)
        self.jobs_created.append(name)
        self.log(f"created grading Job {namespace}/{name}: {len(todo)} samples in {len(shards)} shards")
        finished = False
        attached: set[str] = set()
        try:
            while True:
                if self.fatal is not None:
                    raise self.fatal
                for pod in self._pods(name):
                    pod_name = pod.metadata.name
                    phase = pod.status.phase if pod.status else None
                    if pod_name in attached or phase not in ("Running", "Succeeded", "Failed"):
                        continue
                    attached.add(pod_name)
                    index = int((pod.metadata.annotations or {})[INDEX_ANNOTATION])
                    self.pods_seen[pod_name] = index
                    if phase == "Running":
                        self._start(self._attach, pod_name, shards[index])
                    self._start(self._follow, pod_name, by_id, on_result)
                status = self.api.batch.read_namespaced_job_status(name, namespace)
                outcome, detail = job_outcome(status)
                if outcome == "succeeded":
                    finished = True
                    self._join()
                    if self.fatal is not None:
                        raise self.fatal
                    return
                if outcome == "failed":
                    finished = True
                    self._join()
                    if self.fatal is not None:
                        raise self.fatal
                    raise SandboxError(f"grading Job {namespace}/{name} failed: {detail}")
                if self.settings.timeout_s is not None and time.monotonic() - started > self.settings.timeout_s:
                    raise SandboxError(f"grading Job {namespace}/{name} still running after "
                                       f"{self.settings.timeout_s:.0f}s")
                time.sleep(self.settings.poll_interval_s)
        finally:
            if not finished:
                self.log(f"deleting grading Job {namespace}/{name} and its pods")
                try:
                    self.api.batch.delete_namespaced_job(
                        name, namespace, body=k8s.V1DeleteOptions(propagation_policy="Background"))
                except Exception as exc:  # noqa: BLE001 - the original error matters more
                    self.log(f"could not delete Job {namespace}/{name}: {exc}")

    def _pods(self, job_name: str) -> list:
        pods = self.api.core.list_namespaced_pod(self.settings.namespace,
                                                 label_selector=f"batch.kubernetes.io/job-name={job_name}")
        return sorted(pods.items, key=lambda p: p.metadata.creation_timestamp or 0)

    def _start(self, target, *args) -> None:
        thread = threading.Thread(target=self._guarded, args=(target, *args), daemon=True,
                                  name=f"grade-{target.__name__}-{args[0]}")
        thread.start()
        self._threads.append(thread)

    def _guarded(self, target, *args) -> None:
        try:
            target(*args)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the polling loop
            with self.lock:
                if self.fatal is None:
                    self.fatal = exc if isinstance(exc, SandboxError) else SandboxError(f"{target.__name__}: {exc!r}")

    def _join(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]

    # --- feeding a pod --------------------------------------------------------------------------------------------
    def _attach(self, pod_name: str, shard: list[dict]) -> None:
        """Send the shard's samples that still lack a verdict (a replacement pod gets only those)."""
        from kubernetes.stream import stream

        with self.lock:
            pending = [job for job in shard if job["request"]["id"] not in self.graded]
        # A client of its own: `stream` swaps its ApiClient's transport for a WebSocket while it connects, which
        # would capture the polling thread's requests made through a shared one.
        core = k8s.CoreV1Api(k8s.ApiClient(self.api.core.api_client.configuration))
        last_error = None
        for attempt in range(3):
            try:
                ws = stream(core.connect_get_namespaced_pod_attach, pod_name, self.settings.namespace,
                            container=CONTAINER_NAME, stdin=True, stdout=False, stderr=False, tty=False,
                            _preload_content=False, binary=True)
            except Exception as exc:  # noqa: BLE001 - the pod may still be starting its container
                last_error = exc
                time.sleep(1.0 + attempt)
                continue
            try:
                self._send(ws, iter_shard_frames(self.pods_seen[pod_name], pending))
            except Exception as exc:  # noqa: BLE001 - the pod died, or the stream broke mid-way
                last_error = exc  # its stdin got part of a shard (and is closed once the attach ends): replace it
                break
            finally:
                ws.close()
            self.log(f"sent {len(pending)} samples to pod {pod_name}")
            return
        # A pod that never got its whole input would wait for it (or exit 75): delete it now; its replacement gets
        # the samples that still lack a verdict.
        self.log(f"could not feed pod {pod_name}: {last_error!r}; deleting it")
        try:
            self.api.core.delete_namespaced_pod(pod_name, self.settings.namespace, grace_period_seconds=0)
        except Exception as exc:  # noqa: BLE001 - already gone
            self.log(f"deleting pod {pod_name}: {exc!r}")

    @staticmethod
    def _send(ws, frames) -> None:
        """Write the frames to the attached stdin in writes of about ATTACH_CHUNK bytes, then close it."""
        batch = bytearray()
        for frame in frames:
            batch += frame
            if len(batch) >= ATTACH_CHUNK:
                for start in range(0, len(batch), ATTACH_CHUNK):
                    ws.write_stdin(bytes(batch[start:start + ATTACH_CHUNK]))
                batch = bytearray()
        if batch:
            ws.write_stdin(bytes(batch))
        ws.close_channel(0)  # v5: stdin EOF; v4 ends stdin when the session closes (stdinOnce)

    # --- reading a pod's verdicts ---------------------------------------------------------------------------------
    def _follow(self, pod_name: str, by_id: dict[str, dict], on_result) -> None:
        for attempt in range(5):
            try:
                response = self.api.core.read_namespaced_pod_log(pod_name, self.settings.namespace,
                                                                 container=CONTAINER_NAME, follow=True,
                                                                 _preload_content=False)
                pending = b""
                for chunk in response.stream(1 << 16):
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        self._line(pod_name, line.decode("utf-8", "replace"), by_id, on_result)
                if pending:
                    self._line(pod_name, pending.decode("utf-8", "replace"), by_id, on_result)
                return
            except SandboxError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect; verdicts already taken are not taken twice
                self.log(f"log stream of pod {pod_name} broke ({exc!r}); reconnecting")
                time.sleep(1.0 + attempt)

    def _line(self, pod_name: str, line: str, by_id: dict[str, dict], on_result) -> None:
        if line.startswith(shard_driver.GRADE_PREFIX):
            response = json.loads(line[len(shard_driver.GRADE_PREFIX):])
            sample_id = response.get("id")
            job = by_id.get(sample_id)
            if job is None:
                raise SandboxError(f"pod {pod_name} reported a sample it was not sent: {sample_id!r}")
            with self.lock:
                if sample_id in self.graded:
                    return
                self.graded.add(sample_id)
            on_result(job, response)
        elif line.startswith(shard_driver.SHARD_PREFIX):
            message = json.loads(line[len(shard_driver.SHARD_PREFIX):])
            if "retired" in message:
                self.log(f"pod {pod_name} ends after sample {message['retired']}, which left state its runner "
                         f"could not remove ({message.get('reason', '')}); a fresh pod grades the rest")
            elif "lost" in message:
                sample_id = message["lost"]
                with self.lock:
                    self.losses[sample_id] = self.losses.get(sample_id, 0) + 1
                    losses = self.losses[sample_id]
                self.log(f"pod {pod_name} lost its runner on sample {sample_id} ({message.get('error', '')})")
                if losses >= 2:
                    raise SandboxError(f"sample {sample_id}: its sandbox was lost twice: {message.get('error', '')}")
            elif "error" in message:
                self.log(f"pod {pod_name}: {message['error']}")


def grade_on_kubernetes(problems: list[dict], generations: list[dict], *, settings: KubernetesGradingSettings,
                        timeout_s: float, memory_mb: int, results_path: str | Path | None = None,
                        progress: Callable[[int, int], None] | None = None, output_cap: int | None = None,
                        log=None) -> dict:
    """`grader.grade` with the samples graded by a grading Job: same inputs, same results file and per-sample log
    (so a rerun, local or not, grades only what the log lacks), backend "kubernetes", isolation "pod"."""
    from valley_assets.grading import grader

    return grader.grade(problems, generations, timeout_s=timeout_s, memory_mb=memory_mb, results_path=results_path,
                        progress=progress, output_cap=grader.DEFAULT_OUTPUT_CAP if output_cap is None else output_cap,
                        executor=KubernetesShardPool(settings, log=log))
