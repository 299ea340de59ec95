"""The stand-in's state and controllers: an object store, the Job controller, and a kubelet that runs pods as Docker
containers. `api.py` puts the Kubernetes REST API in front of it.

What follows Kubernetes' own behaviour (and where it comes from):
- Job controller (pkg/controller/job): Indexed completions, one pod per index up to `parallelism`, pod names
  `<job>-<index>-<5 random>`, hostname `<job>-<index>`, the completion index as annotation, label and
  `JOB_COMPLETION_INDEX`; `podFailurePolicy` rules matched in order, first match wins (FailJob / Ignore / Count), the
  messages of pod_failure_policy.go; `backoffLimit` over counted failures (BackoffLimitExceeded) with the controller's
  exponential pod back-off (10 s doubling, 6 min cap); `FailureTarget`/`SuccessCriteriaMet` first, then the terminal
  `Failed`/`Complete` once no pod of the Job is still running; pods of a failed Job are deleted; a deleted pod
  stays listed (terminating, then Failed) until the controller has accounted for it, then disappears;
  `ttlSecondsAfterFinished` deletes a finished Job and its pods (the TTL-after-finished controller).
- Deleting a Job: `propagationPolicy` Background/Foreground deletes its pods; no policy means Orphan (the batch/v1
  default of the REST API): the pods keep running without an owner.
- kubelet: see podspec.py for env/command/volumes/resources/security; `restartPolicy: Never`; container exit ->
  `containerStatuses[].state.terminated` (exitCode, reason Completed/Error/OOMKilled, StartError with 128 when the
  command cannot be started), phase Succeeded/Failed; a missing Secret/key -> `waiting: CreateContainerConfigError`
  and retried; a missing image -> `waiting: ErrImagePull` (this stand-in never pulls); logs with kubelet timestamps.
- Scheduling on one node: a pod is bound when the sum of cpu/memory requests of running pods plus its own fits the
  node's capacity, else it stays Pending with `PodScheduled=False, reason Unschedulable`. GPUs are recorded only.
- Disruption (`disrupt`): the `DisruptionTarget` condition the scheduler's preemption writes, then deletion with the
  pod's grace period (SIGTERM, SIGKILL after the grace period).
- DNS: each namespace is a Docker network; a pod with `subdomain` matching a headless Service that selects it gets
  the aliases `<hostname>.<subdomain>`, `<hostname>.<subdomain>.<ns>`, `...svc`, `...svc.cluster.local`, and the
  Service name resolves to every selected pod. Containers reach the host as `host.docker.internal`.
- NetworkPolicy: only the deny-all kind (policyTypes Ingress and Egress, no rules, a matchLabels podSelector) is
  accepted, and a pod it selects when its container starts gets no network at all (Docker's `none`): no DNS, no
  host.docker.internal; its log and attach still work (they go through the engine, as a kubelet's do). Any other
  policy is refused at create time.
- In-cluster access: every container gets KUBERNETES_SERVICE_HOST/PORT (the stand-in's HTTPS listener, reached as
  host.docker.internal) and the service account's token, ca.crt and namespace at
  /var/run/secrets/kubernetes.io/serviceaccount, unless the pod sets automountServiceAccountToken: false, so
  `kubernetes.config.load_incluster_config()` works in a pod as on a cluster.
"""

from __future__ import annotations

import base64
import copy
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .objects import (
    RESOURCES,
    ApiError,
    invalid,
    not_found,
    now_rfc3339,
    parse_field_selector,
    parse_selector,
    stamp_metadata,
)
from .podspec import (
    ContainerConfigError,
    Lookup,
    Unsupported,
    check_supported,
    command_and_args,
    container_env,
    resource_kwargs,
    security_kwargs,
    volume_kwargs,
)
from .quantity import byte_count, cpu_cores

log = logging.getLogger("kube_standin")

INDEX_KEY = "batch.kubernetes.io/job-completion-index"
JOB_NAME_KEY = "batch.kubernetes.io/job-name"
CONTROLLER_UID_KEY = "batch.kubernetes.io/controller-uid"
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
NODE_NAME = "standin-node"
POD_BACKOFF_S = 10.0  # the Job controller's DefaultJobPodFailureBackOff
POD_BACKOFF_MAX_S = 360.0
SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
OWNER_LABEL = "valley.standin.instance"
PID_LABEL = "valley.standin.pid"


@dataclass
class PodLog:
    """Every line the container wrote (stdout and stderr, as the kubelet merges them), with its time in ns."""

    lines: list[tuple[int, str]] = field(default_factory=list)
    done: bool = False
    cond: threading.Condition = field(default_factory=threading.Condition)
    _last_ns: int = 0

    def add(self, text: str) -> None:
        with self.cond:
            # Strictly increasing: dagster-pipes' reader joins lines that share a timestamp.
            stamp = max(time.time_ns(), self._last_ns + 1000)
            self._last_ns = stamp
            self.lines.append((stamp, text))
            self.cond.notify_all()

    def finish(self) -> None:
        with self.cond:
            self.done = True
            self.cond.notify_all()


@dataclass
class PodRuntime:
    namespace: str
    name: str
    job: tuple[str, str] | None
    index: int | None
    container_name: str
    log: PodLog = field(default_factory=PodLog)
    container: Any = None
    started: bool = False  # the container was started
    terminal: bool = False  # phase Succeeded or Failed
    deleting: bool = False
    accounted: bool = False  # the Job controller has counted its end
    scheduled: bool = False
    requests: tuple[float, int] = (0.0, 0)  # cpu cores, memory bytes
    gpus: int = 0
    named_volumes: list[str] = field(default_factory=list)
    temp_dir: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name


@dataclass
class JobState:
    namespace: str
    name: str
    succeeded_indexes: set[int] = field(default_factory=set)
    succeeded: int = 0
    failed: int = 0  # counted toward backoffLimit (and status.failed)
    ignored: int = 0  # failures an Ignore rule matched
    failure: tuple[str, str] | None = None  # (reason, message) once the Job is doomed
    finished: bool = False
    last_counted_failure: float = 0.0
    started: float = field(default_factory=time.monotonic)
    finished_at: float | None = None
    refused: str | None = None  # why the API refuses the Job's pods (a missing ServiceAccount), while it does


def policy_verdict(policy: dict | None, pod: dict) -> tuple[str, str]:
    """(action, message) of the first podFailurePolicy rule matching a failed pod; ("Count", "") when none does."""
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    status = pod.get("status") or {}
    for index, rule in enumerate((policy or {}).get("rules") or []):
        action = rule["action"]
        if "onExitCodes" in rule:
            requirement = rule["onExitCodes"]
            for container in status.get("containerStatuses") or []:
                if requirement.get("containerName") not in (None, container["name"]):
                    continue
                terminated = (container.get("state") or {}).get("terminated")
                if not terminated or terminated["exitCode"] == 0:
                    continue
                code = terminated["exitCode"]
                values = requirement.get("values") or []
                if (code in values) == (requirement["operator"] == "In"):
                    return action, (f"Container {container['name']} for pod {namespace}/{name} failed with exit code "
                                    f"{code} matching {action} rule at index {index}")
        for pattern in rule.get("onPodConditions") or []:
            for condition in status.get("conditions") or []:
                if condition["type"] == pattern["type"] and condition["status"] == pattern.get("status", "True"):
                    return action, (f"Pod {namespace}/{name} has condition {condition['type']} matching {action} rule "
                                    f"at index {index}")
    return "Count", ""


def compact_indexes(indexes: set[int]) -> str:
    """`completedIndexes` as the controller writes it: "0-2,5"."""
    out, ordered = [], sorted(indexes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def _condition(kind: str, status: str, reason: str = "", message: str = "") -> dict:
    now = now_rfc3339()
    cond = {"type": kind, "status": status, "lastProbeTime": now, "lastTransitionTime": now}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def _set_condition(obj: dict, cond: dict) -> None:
    conditions = obj.setdefault("status", {}).setdefault("conditions", [])
    for i, existing in enumerate(conditions):
        if existing["type"] == cond["type"]:
            if existing["status"] != cond["status"] or existing.get("reason") != cond.get("reason"):
                conditions[i] = cond
            return
    conditions.append(cond)


def _host_memory_bytes() -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


class Cluster:
    def __init__(self, *, instance_id: str, network_prefix: str, runtime_map: dict[str, str] | None,
                 node_capacity: dict[str, str] | None, namespaces: tuple[str, ...], pod_backoff_s: float,
                 require_referenced_objects: bool = False, docker_client=None, pod_pids_limit: int | None = None):
        import docker

        self.instance_id = instance_id
        # On every container, volume and network: which stand-in made it, and its process (see reap_orphans).
        self.owner_labels = {OWNER_LABEL: instance_id, PID_LABEL: str(os.getpid())}
        self.network_prefix = network_prefix
        self.runtime_map = dict(runtime_map or {})
        capacity = node_capacity or {}
        self.capacity_cpu = cpu_cores(capacity.get("cpu", os.cpu_count() or 1), "node_capacity.cpu")
        self.capacity_memory = byte_count(capacity.get("memory", _host_memory_bytes()), "node_capacity.memory")
        self.pod_backoff_s = pod_backoff_s
        self.pod_pids_limit = pod_pids_limit  # the kubelet's podPidsLimit
        self.require_referenced_objects = require_referenced_objects
        self.docker = docker_client or docker.from_env(timeout=120, max_pool_size=64)
        self.lock = threading.RLock()
        self._service_account_lock = threading.Lock()
        self.objects: dict[str, dict[tuple[str, str], dict]] = {plural: {} for plural in RESOURCES}
        self.received: list[dict] = []  # every object created through the API or the helpers, as received
        self.events: list[tuple[str, str, str, str]] = []  # (namespace, object, reason, message)
        self.pods: dict[tuple[str, str], PodRuntime] = {}
        self.jobs: dict[tuple[str, str], JobState] = {}
        self.networks: dict[str, Any] = {}
        self._rv = 0
        # (host, port, folder of per-namespace service-account files) once the HTTPS listener is up: pods get the
        # kubelet's in-cluster wiring (KUBERNETES_SERVICE_HOST/PORT, the token and ca.crt mounted)
        self.in_cluster: tuple[str, int, str] | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        for name in namespaces:
            self.create("namespaces", None, {"metadata": {"name": name}}, record=False)
        self._controller = threading.Thread(target=self._control_loop, name="standin-controllers", daemon=True)
        self._controller.start()

    # --- the object store -----------------------------------------------------------------------------------------
    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _event(self, namespace: str, obj: str, reason: str, message: str) -> None:
        self.events.append((namespace, obj, reason, message))
        log.info("event %s/%s %s: %s", namespace, obj, reason, message)

    def create(self, plural: str, namespace: str | None, body: dict, record: bool = True) -> dict:
        resource = RESOURCES[plural]
        if record:
            self.received.append(copy.deepcopy(body))
        body = copy.deepcopy(body)
        with self.lock:
            if resource.namespaced and (None, namespace) not in self.objects["namespaces"]:
                raise not_found(RESOURCES["namespaces"], namespace)
            stamp_metadata(resource, body, namespace if resource.namespaced else None, self._next_rv())
            key = (namespace if resource.namespaced else None, body["metadata"]["name"])
            if key in self.objects[plural]:
                raise ApiError(409, "AlreadyExists", f'{resource.qualified} "{key[1]}" already exists',
                               {"name": key[1], "group": resource.group, "kind": plural})
            getattr(self, f"_admit_{plural}", lambda b: None)(body)
            self.objects[plural][key] = body
            if plural == "namespaces":  # the service-account controller gives every namespace its `default`
                self.create("serviceaccounts", key[1], {"metadata": {"name": "default"}}, record=False)
            if plural == "jobs":
                self.jobs[key] = JobState(namespace, key[1])
            return copy.deepcopy(body)

    def get(self, plural: str, namespace: str | None, name: str) -> dict:
        with self.lock:
            obj = self.objects[plural].get((namespace if RESOURCES[plural].namespaced else None, name))
            if obj is None:
                raise not_found(RESOURCES[plural], name)
            return copy.deepcopy(obj)

    def list(self, plural: str, namespace: str | None, label_selector: str | None = None,
             field_selector: str | None = None) -> list[dict]:
        labels_match, fields_match = parse_selector(label_selector), parse_field_selector(field_selector)
        with self.lock:
            # In key order, as etcd returns a range (namespace, then name), not in creation order: clients that need
            # an order must sort (pod names end in a random suffix).
            items = [obj for (ns, name), obj in sorted(self.objects[plural].items(), key=lambda kv: (kv[0][0] or "",
                                                                                                   kv[0][1]))
                     if (namespace is None or ns == namespace) and labels_match(obj["metadata"].get("labels"))
                     and fields_match(obj)]
            return copy.deepcopy(items)

    def delete(self, plural: str, namespace: str | None, name: str, propagation: str | None,
               grace_period_s: float | None = None) -> dict:
        resource = RESOURCES[plural]
        key = (namespace if resource.namespaced else None, name)
        with self.lock:
            obj = self.objects[plural].get(key)
            if obj is None:
                raise not_found(resource, name)
            if plural == "pods":
                self._delete_pod(self.pods[key], grace_period_s)
                return copy.deepcopy(self.objects["pods"][key])
            if plural == "jobs":
                self._delete_job(key, propagation or "Orphan")
            elif plural == "namespaces":
                for job_key in [k for k in self.objects["jobs"] if k[0] == name]:
                    self._delete_job(job_key, "Background")
                for rt in [rt for rt in self.pods.values() if rt.namespace == name]:
                    self._delete_pod(rt, grace_period_s)
                for other in ("services", "secrets", "configmaps", "persistentvolumeclaims", "serviceaccounts",
                              "networkpolicies"):
                    for k in [k for k in self.objects[other] if k[0] == name]:
                        del self.objects[other][k]
            del self.objects[plural][key]
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": resource.group, "kind": plural, "uid": obj["metadata"]["uid"]}}

    # --- admission (defaults and checks of the API server, plus what the stand-in cannot run) ------------------------
    def _admit_secrets(self, body: dict) -> None:
        data = dict(body.get("data") or {})
        for key, value in (body.pop("stringData", None) or {}).items():
            data[key] = base64.b64encode(value.encode()).decode()
        for key, value in data.items():
            try:
                base64.b64decode(value, validate=True)
            except ValueError as exc:
                raise invalid(RESOURCES["secrets"], body["metadata"]["name"], f"data[{key}]: not base64") from exc
        body["data"] = data
        body.setdefault("type", "Opaque")

    def _admit_namespaces(self, body: dict) -> None:
        body["status"] = {"phase": "Active"}

    def _admit_services(self, body: dict) -> None:
        body["status"] = {"loadBalancer": {}}

    def _admit_persistentvolumeclaims(self, body: dict) -> None:
        body["status"] = {"phase": "Bound"}

    def _admit_networkpolicies(self, body: dict) -> None:
        spec = body.get("spec") or {}
        selector = spec.get("podSelector") or {}
        if (sorted(spec.get("policyTypes") or []) != ["Egress", "Ingress"] or spec.get("ingress")
                or spec.get("egress") or set(selector) - {"matchLabels"}):
            raise ApiError(422, "Invalid", f"NetworkPolicy {body['metadata']['name']}: the kube stand-in enforces "
                                           "only deny-all policies (policyTypes [Ingress, Egress], no rules, a "
                                           "matchLabels podSelector)")

    def _isolated_by_policy(self, namespace: str, labels: dict) -> bool:
        with self.lock:
            policies = [p for (ns, _), p in self.objects["networkpolicies"].items() if ns == namespace]
        for policy in policies:
            wanted = (policy["spec"].get("podSelector") or {}).get("matchLabels") or {}
            if all(labels.get(k) == v for k, v in wanted.items()):
                return True
        return False

    def _admit_pods(self, body: dict) -> None:
        raise ApiError(405, "MethodNotAllowed", "the kube stand-in runs pods only as Job pods; create a Job")

    def _admit_jobs(self, body: dict) -> None:
        name = body["metadata"]["name"]
        spec = body.get("spec") or {}
        template = spec.get("template") or {}
        pod_spec = template.get("spec") or {}
        if not pod_spec.get("containers"):
            raise invalid(RESOURCES["jobs"], name, "spec.template.spec.containers: Required value")
        if pod_spec.get("restartPolicy") not in ("Never", "OnFailure"):
            raise invalid(RESOURCES["jobs"], name, f'spec.template.spec.restartPolicy: Unsupported value: '
                                                   f'"{pod_spec.get("restartPolicy", "Always")}": supported values: '
                                                   '"OnFailure", "Never"')
        if spec.get("podFailurePolicy") and pod_spec["restartPolicy"] != "Never":
            raise invalid(RESOURCES["jobs"], name, "spec.template.spec.restartPolicy: Invalid value: only "
                                                   '"Never" is supported when podFailurePolicy is specified')
        try:
            check_supported(pod_spec, f"Job {name}")
        except Unsupported as exc:
            raise ApiError(422, "Invalid", str(exc)) from None
        for rule in (spec.get("podFailurePolicy") or {}).get("rules") or []:
            if rule.get("action") not in ("FailJob", "Ignore", "Count"):
                raise ApiError(422, "Invalid", f"Job {name}: podFailurePolicy action {rule.get('action')!r} is not "
                                               "supported by the kube stand-in (FailJob, Ignore, Count)")
        runtime = pod_spec.get("runtimeClassName")
        if runtime and runtime not in self.runtime_map:
            raise ApiError(422, "Invalid", f"Job {name}: runtimeClassName {runtime!r} has no Docker runtime in the "
                                           f"kube stand-in (image_runtime_map: {self.runtime_map})")
        # API server defaults
        uid = body["metadata"]["uid"]
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("manualSelector", False)
        spec.setdefault("podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
        spec.setdefault("selector", {"matchLabels": {CONTROLLER_UID_KEY: uid}})
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.update({CONTROLLER_UID_KEY: uid, JOB_NAME_KEY: name, "controller-uid": uid, "job-name": name})
        body["metadata"].setdefault("labels", {}).update(
            {k: v for k, v in labels.items() if k in (CONTROLLER_UID_KEY, JOB_NAME_KEY, "controller-uid", "job-name")})
        pod_spec.setdefault("terminationGracePeriodSeconds", 30)
        pod_spec.setdefault("dnsPolicy", "ClusterFirst")
        pod_spec.setdefault("schedulerName", "default-scheduler")
        body["status"] = {}
        if spec.get("suspend"):
            raise ApiError(422, "Invalid", f"Job {name}: suspend is not supported by the kube stand-in")

    # --- helpers for tests and operators --------------------------------------------------------------------------
    def pvc_volume_name(self, namespace: str, claim: str) -> str:
        return f"{self.network_prefix}-{self.instance_id}-pvc-{namespace}-{claim}"

    def _claim_volume(self, namespace: str, claim: str) -> str:
        """The Docker volume of a claim, created with the owner labels (a claim outlives its pods, not the stand-in)."""
        name = self.pvc_volume_name(namespace, claim)
        self.docker.volumes.create(name, labels=self.owner_labels)  # returns the existing volume when there is one
        return name

    def network_name(self, namespace: str) -> str:
        return f"{self.network_prefix}-{self.instance_id}-{namespace}"

    def disrupt(self, namespace: str, pod_name: str, grace_period_s: float | None = None,
                reason: str = "PreemptionByScheduler",
                message: str = "default-scheduler: preempting to accommodate a higher priority pod") -> None:
        """What a preemption does to a pod: the DisruptionTarget condition, then deletion with the grace period."""
        with self.lock:
            key = (namespace, pod_name)
            if key not in self.pods:
                raise not_found(RESOURCES["pods"], pod_name)
            pod = self.objects["pods"][key]
            _set_condition(pod, _condition("DisruptionTarget", "True", reason, message))
            self._event(namespace, f"pod/{pod_name}", "Preempted", message)
            self._delete_pod(self.pods[key], grace_period_s)

    def attach_stdin(self, namespace: str, pod_name: str, container: str | None):
        """A socket writing into the running container's stdin (the kubelet's `attach`), for a container with
        `stdin: true`; the caller closes it when its session ends."""
        import socket

        with self.lock:
            key = (namespace, pod_name)
            pod = self.objects["pods"].get(key)
            if pod is None:
                raise not_found(RESOURCES["pods"], pod_name)
            spec_container = pod["spec"]["containers"][0]
            if container not in (None, spec_container["name"]):
                raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {pod_name}")
            rt = self.pods.get(key)
            if rt is None or not rt.started or rt.terminal or rt.container is None:
                raise ApiError(400, "BadRequest", f"container {spec_container['name']} in pod {pod_name} is not "
                                                  "running")
            if not spec_container.get("stdin"):
                raise ApiError(400, "BadRequest", f"stdin is not enabled for container {spec_container['name']}")
            container_id = rt.container.id
        raw = self.docker.api.attach_socket(container_id, params={"stdin": 1, "stream": 1})
        sock = getattr(raw, "_sock", raw)
        if not isinstance(sock, socket.socket):
            raise ApiError(500, "InternalError", f"kube stand-in: no raw socket to attach to ({type(sock)})")
        return sock

    # --- Job controller ---------------------------------------------------------------------------------------------
    def _control_loop(self) -> None:
        while not self._stopping.wait(0.2):
            try:
                with self.lock:
                    for key in list(self.jobs):
                        self._sync_job(key)
                    self._expire_finished_jobs()
                    self._reap_pods()
            except Exception:  # keep the controller alive; the failure is in the log
                log.exception("kube stand-in controller loop")

    def _job_pods(self, key) -> list[PodRuntime]:
        return [rt for rt in self.pods.values() if rt.job == key]

    def _sync_job(self, key) -> None:
        state, job = self.jobs[key], self.objects["jobs"].get(key)
        if job is None or state.finished:
            return
        spec = job["spec"]
        completions, parallelism = spec["completions"], spec["parallelism"]
        indexed = spec["completionMode"] == "Indexed"
        pods = self._job_pods(key)
        for rt in pods:
            if not rt.terminal or rt.accounted:
                continue
            rt.accounted = True
            pod = self.objects["pods"][rt.key]
            if pod["status"]["phase"] == "Succeeded":
                state.succeeded += 1
                if rt.index is not None:
                    state.succeeded_indexes.add(rt.index)
                continue
            if state.failure is not None:  # terminated by the controller after the Job was doomed
                state.failed += 1
                continue
            action, message = policy_verdict(spec.get("podFailurePolicy"), pod)
            if action == "Ignore":
                state.ignored += 1
                self._event(key[0], f"job/{key[1]}", "PodFailurePolicy", f"pod {rt.name}: failure ignored")
                continue
            state.failed += 1
            state.last_counted_failure = time.monotonic()
            if action == "FailJob":
                state.failure = ("PodFailurePolicy", message)
        if state.failure is None and state.failed > spec["backoffLimit"]:
            state.failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        deadline = spec.get("activeDeadlineSeconds")
        if state.failure is None and deadline is not None and time.monotonic() - state.started > deadline:
            state.failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
        done = len(state.succeeded_indexes) >= completions if indexed else state.succeeded >= completions
        active = [rt for rt in pods if not rt.terminal]
        status = job.setdefault("status", {})
        status.setdefault("startTime", now_rfc3339())
        if state.failure is not None:
            reason, message = state.failure
            _set_condition(job, _condition("FailureTarget", "True", reason, message))
            for rt in active:
                if not rt.deleting:
                    self._delete_pod(rt, None)
            if not active:
                _set_condition(job, _condition("Failed", "True", reason, message))
                state.finished = True
        elif done and not active:
            message = "Reached expected number of succeeded pods"
            _set_condition(job, _condition("SuccessCriteriaMet", "True", "CompletionsReached", message))
            _set_condition(job, _condition("Complete", "True", "CompletionsReached", message))
            status["completionTime"] = now_rfc3339()
            state.finished = True
        elif not done:
            backoff = 0.0
            if state.failed:
                backoff = min(self.pod_backoff_s * 2 ** (state.failed - 1), POD_BACKOFF_MAX_S)
            refused = self._pod_creation_refused(job)
            if refused:
                if state.refused != refused:  # one event per distinct refusal, as the controller's FailedCreate
                    state.refused = refused
                    self._event(key[0], f"job/{key[1]}", "FailedCreate", refused)
            elif time.monotonic() - state.last_counted_failure >= backoff:
                state.refused = None
                busy = {rt.index for rt in active}
                wanted = [i for i in range(completions) if i not in state.succeeded_indexes and i not in busy] \
                    if indexed else [None] * max(0, min(parallelism, completions - state.succeeded) - len(active))
                for index in wanted:
                    if len(active) >= parallelism:
                        break
                    active.append(self._spawn_pod(job, index))
        status["active"] = sum(1 for rt in active if not rt.deleting)
        status["terminating"] = sum(1 for rt in active if rt.deleting)
        status["ready"] = sum(1 for rt in active if rt.started and not rt.deleting)
        status["succeeded"] = state.succeeded
        status["failed"] = state.failed
        status["uncountedTerminatedPods"] = {}
        if indexed:
            status["completedIndexes"] = compact_indexes(state.succeeded_indexes)
        job["metadata"]["resourceVersion"] = str(self._next_rv())

    def _pod_creation_refused(self, job: dict) -> str | None:
        """The ServiceAccount admission: a pod naming a missing ServiceAccount is refused (the Job controller retries
        and reports FailedCreate; the Job shows no pod). Only with require_referenced_objects."""
        if not self.require_referenced_objects:
            return None
        namespace = job["metadata"]["namespace"]
        account = job["spec"]["template"]["spec"].get("serviceAccountName") or "default"
        if (namespace, account) not in self.objects["serviceaccounts"]:
            return (f'pods "{job["metadata"]["name"]}-" is forbidden: error looking up service account '
                    f'{namespace}/{account}: serviceaccount "{account}" not found')
        return None

    def _expire_finished_jobs(self) -> None:
        """The TTL-after-finished controller: a finished Job is deleted (its pods with it) once its TTL has run."""
        for key, state in list(self.jobs.items()):
            job = self.objects["jobs"].get(key)
            ttl = (job or {}).get("spec", {}).get("ttlSecondsAfterFinished")
            if job is None or ttl is None or not state.finished:
                continue
            state.finished_at = state.finished_at or time.monotonic()
            if time.monotonic() - state.finished_at >= ttl:
                self._event(key[0], f"job/{key[1]}", "TTLExpired", f"deleted {ttl}s after it finished")
                self._delete_job(key, "Background")
                del self.objects["jobs"][key]

    def _delete_job(self, key, propagation: str) -> None:
        if propagation not in ("Orphan", "Background", "Foreground"):
            raise ApiError(400, "BadRequest", f"propagationPolicy {propagation!r} is not Orphan, Background or "
                                              "Foreground")
        for rt in self._job_pods(key):
            if propagation == "Orphan":
                rt.job = None
                meta = self.objects["pods"][rt.key]["metadata"]
                meta.pop("ownerReferences", None)
                meta["finalizers"] = [f for f in meta.get("finalizers", []) if f != TRACKING_FINALIZER]
            else:
                rt.job = None
                self._delete_pod(rt, None)
        self.jobs.pop(key, None)

    # --- pods -------------------------------------------------------------------------------------------------------
    def _spawn_pod(self, job: dict, index: int | None) -> PodRuntime:
        from .objects import random_suffix

        namespace, job_name = job["metadata"]["namespace"], job["metadata"]["name"]
        template = copy.deepcopy(job["spec"]["template"])
        meta = template.get("metadata") or {}
        labels, annotations = dict(meta.get("labels") or {}), dict(meta.get("annotations") or {})
        pod_spec = template["spec"]
        stem = f"{job_name}-{index}-" if index is not None else f"{job_name}-"
        if index is not None:
            labels[INDEX_KEY] = annotations[INDEX_KEY] = str(index)
            pod_spec.setdefault("hostname", f"{job_name}-{index}")
            for container in pod_spec["containers"]:
                container.setdefault("env", []).append({"name": "JOB_COMPLETION_INDEX", "valueFrom": {
                    "fieldRef": {"apiVersion": "v1", "fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}})
        pod_spec.setdefault("serviceAccountName", "default")
        pod_spec["serviceAccount"] = pod_spec["serviceAccountName"]
        pod = {"metadata": {"generateName": stem, "labels": labels, "annotations": annotations or None,
                            "finalizers": [TRACKING_FINALIZER],
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job_name,
                                                 "uid": job["metadata"]["uid"], "controller": True,
                                                 "blockOwnerDeletion": True}]},
               "spec": pod_spec}
        if pod["metadata"]["annotations"] is None:
            del pod["metadata"]["annotations"]
        stamp_metadata(RESOURCES["pods"], pod, namespace, self._next_rv())
        while (namespace, pod["metadata"]["name"]) in self.objects["pods"]:
            pod["metadata"]["name"] = stem + random_suffix()
        name = pod["metadata"]["name"]
        container = pod_spec["containers"][0]
        pod["status"] = {"phase": "Pending", "qosClass": "Burstable",
                         "conditions": [_condition("PodScheduled", "False")],
                         "containerStatuses": [self._container_status(container, waiting=("ContainerCreating", ""))]}
        self.objects["pods"][(namespace, name)] = pod
        resources = container.get("resources") or {}
        requests = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        rt = PodRuntime(namespace, name, (namespace, job_name), index,
                        container_name=f"{self.network_prefix}-{self.instance_id}-{namespace}-{name}",
                        requests=(cpu_cores(requests.get("cpu", 0)), byte_count(requests.get("memory", 0))),
                        gpus=int((resources.get("limits") or {}).get("nvidia.com/gpu", 0)))
        self.pods[rt.key] = rt
        self._event(namespace, f"job/{job_name}", "SuccessfulCreate", f"Created pod: {name}")
        thread = threading.Thread(target=self._pod_main, args=(rt,), name=f"pod-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return rt

    @staticmethod
    def _container_status(container: dict, waiting: tuple[str, str] | None = None, running: str | None = None,
                          terminated: dict | None = None, container_id: str = "", image_id: str = "") -> dict:
        if terminated is not None:
            state = {"terminated": terminated}
        elif running is not None:
            state = {"running": {"startedAt": running}}
        else:
            state = {"waiting": {"reason": waiting[0], **({"message": waiting[1]} if waiting[1] else {})}}
        status = {"name": container["name"], "image": container["image"], "imageID": image_id, "ready": running is not None,
                  "restartCount": 0, "started": running is not None, "state": state}
        if container_id:
            status["containerID"] = container_id
        return status

    def _set_pod_status(self, rt: PodRuntime, **changes) -> None:
        with self.lock:
            pod = self.objects["pods"].get(rt.key)
            if pod is None:
                return
            status = pod["status"]
            for key, value in changes.items():
                if key == "condition":
                    _set_condition(pod, value)
                else:
                    status[key] = value
            pod["metadata"]["resourceVersion"] = str(self._next_rv())

    def _lookup(self, namespace: str) -> Lookup:
        def getter(plural):
            def get(name):
                with self.lock:
                    return copy.deepcopy(self.objects[plural].get((namespace, name)))
            return get
        return Lookup(secret=getter("secrets"), config_map=getter("configmaps"))

    def _schedule(self, rt: PodRuntime) -> str | None:
        """Bind the pod if its claims exist (with require_referenced_objects) and its requests fit beside the
        running pods'; else the scheduler's message."""
        with self.lock:
            if self.require_referenced_objects:
                volumes = self.objects["pods"][rt.key]["spec"].get("volumes") or []
                for volume in volumes:
                    claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                    if claim and (rt.namespace, claim) not in self.objects["persistentvolumeclaims"]:
                        return f'0/1 nodes are available: persistentvolumeclaim "{claim}" not found.'

            used_cpu = sum(p.requests[0] for p in self.pods.values() if p.scheduled and not p.terminal)
            used_mem = sum(p.requests[1] for p in self.pods.values() if p.scheduled and not p.terminal)
            short = [what for what, need, used, cap in (("cpu", rt.requests[0], used_cpu, self.capacity_cpu),
                                                         ("memory", rt.requests[1], used_mem, self.capacity_memory))
                     if need and used + need > cap]
            if short:
                return "0/1 nodes are available: " + ", ".join(f"1 Insufficient {w}" for w in short) + "."
            rt.scheduled = True
            self.objects["pods"][rt.key]["spec"]["nodeName"] = NODE_NAME
            return None

    def _pod_main(self, rt: PodRuntime) -> None:
        try:
            self._run_pod(rt)
        except Exception as exc:  # the stand-in's own failure: make it visible on the pod, never hang silently
            log.exception("pod %s/%s", rt.namespace, rt.name)
            container = self.objects["pods"].get(rt.key, {}).get("spec", {}).get("containers", [{}])[0]
            if container:
                self._set_pod_status(rt, phase="Failed", containerStatuses=[self._container_status(
                    container, terminated={"exitCode": 128, "reason": "StartError", "message": f"kube stand-in: {exc}",
                                           "startedAt": now_rfc3339(), "finishedAt": now_rfc3339()})])
            rt.terminal = True
            rt.log.finish()

    def _run_pod(self, rt: PodRuntime) -> None:
        import docker.errors

        with self.lock:
            pod = copy.deepcopy(self.objects["pods"][rt.key])
        container = pod["spec"]["containers"][0]
        while True:  # scheduling, then the kubelet's retries of container config errors
            if rt.deleting:
                self._set_pod_status(rt, phase="Failed")
                rt.terminal = True
                rt.log.finish()
                return
            if not rt.scheduled:
                why = self._schedule(rt)
                if why:
                    self._set_pod_status(rt, condition=_condition("PodScheduled", "False", "Unschedulable", why))
                    time.sleep(1.0)
                    continue
                self._set_pod_status(rt, condition=_condition("PodScheduled", "True"))
                with self.lock:
                    pod = copy.deepcopy(self.objects["pods"][rt.key])
            try:
                kwargs = self._container_kwargs(rt, pod, container)
                break
            except ContainerConfigError as exc:
                self._set_pod_status(rt, containerStatuses=[self._container_status(
                    container, waiting=("CreateContainerConfigError", str(exc)))])
                time.sleep(1.0)
            except docker.errors.ImageNotFound:
                self._set_pod_status(rt, containerStatuses=[self._container_status(
                    container, waiting=("ErrImagePull", f'image "{container["image"]}" is not in the local Docker '
                                                        "engine (the kube stand-in never pulls)"))])
                time.sleep(2.0)
        try:
            created = self.docker.containers.create(**kwargs)
            rt.container = created
            created.start()
        except docker.errors.APIError as exc:
            now = now_rfc3339()
            self._set_pod_status(rt, phase="Failed", containerStatuses=[self._container_status(
                container, terminated={"exitCode": 128, "reason": "StartError", "message": exc.explanation or str(exc),
                                       "startedAt": now, "finishedAt": now},
                container_id=f"docker://{rt.container.id}" if rt.container else "")])
            rt.terminal = True
            rt.log.finish()
            return
        rt.started = True
        if rt.deleting:  # deleted while its container was being created: stop it now with the grace period
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
            threading.Thread(target=lambda: created.stop(timeout=int(grace)), daemon=True).start()
        created.reload()
        network = created.attrs["NetworkSettings"]["Networks"].get(self.network_name(rt.namespace), {})
        started_at = now_rfc3339()
        container_id, image_id = f"docker://{created.id}", created.attrs.get("Image", "")
        self._set_pod_status(
            rt, phase="Running", podIP=network.get("IPAddress", ""), podIPs=[{"ip": network.get("IPAddress", "")}],
            hostIP="127.0.0.1", startTime=started_at,
            containerStatuses=[self._container_status(container, running=started_at, container_id=container_id,
                                                      image_id=image_id)])
        for kind in ("Initialized", "ContainersReady", "Ready"):
            self._set_pod_status(rt, condition=_condition(kind, "True"))
        logs = threading.Thread(target=self._capture_logs, args=(rt, created), name=f"log-{rt.name}", daemon=True)
        logs.start()
        exit_code = created.wait(timeout=None)["StatusCode"]
        logs.join(timeout=30)
        rt.log.finish()
        created.reload()
        state = created.attrs["State"]
        reason = "OOMKilled" if state.get("OOMKilled") else ("Completed" if exit_code == 0 else "Error")
        terminated = {"exitCode": exit_code, "reason": reason, "startedAt": started_at, "finishedAt": now_rfc3339(),
                      "containerID": container_id}
        self._set_pod_status(rt, phase="Succeeded" if exit_code == 0 else "Failed",
                             containerStatuses=[self._container_status(container, terminated=terminated,
                                                                       container_id=container_id, image_id=image_id)])
        for kind in ("ContainersReady", "Ready"):
            self._set_pod_status(rt, condition=_condition(kind, "False", "PodCompleted"))
        rt.terminal = True

    def _capture_logs(self, rt: PodRuntime, container) -> None:
        pending = b""
        try:
            for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    rt.log.add(line.decode(errors="replace"))
        except Exception as exc:  # the container was removed under the stream
            log.info("log stream of %s ended: %s", rt.name, exc)
        if pending:
            rt.log.add(pending.decode(errors="replace"))

    def _container_kwargs(self, rt: PodRuntime, pod: dict, container: dict) -> dict:
        image = self.docker.images.get(container["image"])  # ImageNotFound -> ErrImagePull
        env = {**self._service_env(), **container_env(pod, container, self._lookup(rt.namespace))}
        spec = volume_kwargs(pod, container, self._lookup(rt.namespace),
                             pvc_volume=lambda claim: self._claim_volume(rt.namespace, claim),
                             pod_volume=lambda volume: f"{rt.container_name}-{volume}")
        if spec.files:
            rt.temp_dir = rt.temp_dir or tempfile.mkdtemp(prefix=f"standin-{rt.name}-")
            for mount in spec.kwargs["mounts"]:
                volume_name = mount["Source"]
                if mount["Type"] == "bind" and volume_name in spec.files:
                    folder = os.path.join(rt.temp_dir, volume_name)
                    os.makedirs(folder, exist_ok=True)
                    for rel, (text, mode) in spec.files[volume_name].items():
                        path = os.path.join(folder, rel)
                        os.makedirs(os.path.dirname(path), exist_ok=True)
                        with open(path, "w") as handle:
                            handle.write(text)
                        os.chmod(path, mode)
                    mount["Source"] = folder
        if self.in_cluster is not None and pod["spec"].get("automountServiceAccountToken", True) is not False:
            from docker.types import Mount

            spec.kwargs["mounts"].append(Mount(SERVICE_ACCOUNT_MOUNT, self.service_account_dir(rt.namespace),
                                               type="bind", read_only=True))
        for folder in spec.host_dirs:
            os.makedirs(folder, exist_ok=True)
        for name in spec.named_volumes:
            self.docker.volumes.create(name, labels=self.owner_labels)
        rt.named_volumes = spec.named_volumes
        pod_spec = pod["spec"]
        # stdin: attach writes into it. (Docker closes a detached container's stdin on no detach, so stdinOnce's
        # "closed after the first attach ends" is not reproduced; the grading driver ends its input with a frame.)
        kwargs = dict(image=container["image"], name=rt.container_name, detach=True, environment=env,
                      stdin_open=bool(container.get("stdin")),
                      labels={**self.owner_labels,
                              "valley.standin.pod": f"{rt.namespace}/{rt.name}"},
                      extra_hosts={"host.docker.internal": "host-gateway"}, **spec.kwargs,
                      **command_and_args(container, env), **resource_kwargs(container),
                      **security_kwargs(pod_spec, container, image.attrs["Config"].get("User") or ""))
        network = self._network(rt.namespace)
        hostname = pod_spec.get("hostname") or rt.name
        kwargs["hostname"] = hostname
        aliases = [hostname]
        subdomain = pod_spec.get("subdomain")
        with self.lock:
            services = [s for (ns, _), s in self.objects["services"].items() if ns == rt.namespace]
        labels = pod["metadata"].get("labels") or {}
        for service in services:
            selector = (service.get("spec") or {}).get("selector") or {}
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                continue
            svc = service["metadata"]["name"]
            aliases += [svc, f"{svc}.{rt.namespace}", f"{svc}.{rt.namespace}.svc",
                        f"{svc}.{rt.namespace}.svc.cluster.local"]
            if svc == subdomain and (service.get("spec") or {}).get("clusterIP") == "None":
                kwargs["domainname"] = f"{svc}.{rt.namespace}.svc.cluster.local"
                aliases += [f"{hostname}.{svc}", f"{hostname}.{svc}.{rt.namespace}",
                            f"{hostname}.{svc}.{rt.namespace}.svc", f"{hostname}.{svc}.{rt.namespace}.svc.cluster.local"]
        if subdomain and "domainname" not in kwargs:
            self._event(rt.namespace, f"pod/{rt.name}", "NoHeadlessService",
                        f"subdomain {subdomain!r}: no headless Service of that name selects this pod, so "
                        f"{hostname}.{subdomain} does not resolve")
        if self.pod_pids_limit is not None:
            kwargs["pids_limit"] = self.pod_pids_limit
        if self._isolated_by_policy(rt.namespace, labels):
            kwargs["network_mode"] = "none"
            kwargs.pop("extra_hosts", None)
            kwargs.pop("domainname", None)
        else:
            kwargs["network"] = network.name
            kwargs["networking_config"] = {network.name: self.docker.api.create_endpoint_config(aliases=aliases)}
        runtime = pod_spec.get("runtimeClassName")
        if runtime:
            kwargs["runtime"] = self.runtime_map[runtime]
        return kwargs

    def _service_env(self) -> dict[str, str]:
        """The env the kubelet gives every container for the `kubernetes` Service (what in-cluster config reads)."""
        if self.in_cluster is None:
            return {}
        host, port, _ = self.in_cluster
        return {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": str(port),
                "KUBERNETES_SERVICE_PORT_HTTPS": str(port), "KUBERNETES_PORT": f"tcp://{host}:{port}"}

    def service_account_dir(self, namespace: str) -> str:
        """token, ca.crt and namespace of the namespace's service account: the folder the kubelet mounts at
        /var/run/secrets/kubernetes.io/serviceaccount (bind-mount it the same way into other containers)."""
        _, _, root = self.in_cluster
        folder = os.path.join(root, namespace)
        # Pods of one Job start on their own threads: the first to get here fills the folder while the others
        # wait, so no container is created with a half-written mount.
        with self._service_account_lock:
            if not os.path.isdir(folder):
                staging = tempfile.mkdtemp(dir=root, prefix=f".{namespace}-")
                os.chmod(staging, 0o755)
                shutil.copy(os.path.join(root, "ca.crt"), os.path.join(staging, "ca.crt"))
                shutil.copy(os.path.join(root, "token"), os.path.join(staging, "token"))
                with open(os.path.join(staging, "namespace"), "w") as handle:
                    handle.write(namespace)
                for name in ("ca.crt", "token", "namespace"):
                    os.chmod(os.path.join(staging, name), 0o644)
                os.rename(staging, folder)
        return folder

    def _network(self, namespace: str):
        name = self.network_name(namespace)
        with self.lock:
            if name not in self.networks:
                existing = self.docker.networks.list(names=[name])
                self.networks[name] = existing[0] if existing else self.docker.networks.create(
                    name, driver="bridge", labels=self.owner_labels)
            return self.networks[name]

    def _delete_pod(self, rt: PodRuntime, grace_period_s: float | None) -> None:
        """Mark the pod terminating and stop its container with the grace period (SIGTERM, then SIGKILL)."""
        if rt.deleting:
            return
        rt.deleting = True
        pod = self.objects["pods"][rt.key]
        grace = pod["spec"].get("terminationGracePeriodSeconds", 30) if grace_period_s is None else grace_period_s
        pod["metadata"]["deletionTimestamp"] = now_rfc3339()
        pod["metadata"]["deletionGracePeriodSeconds"] = int(grace)

        def stop():
            if rt.container is not None and rt.started:
                try:
                    rt.container.stop(timeout=max(0, int(grace)))
                except Exception as exc:
                    log.info("stopping %s: %s", rt.name, exc)

        threading.Thread(target=stop, name=f"stop-{rt.name}", daemon=True).start()

    def _reap_pods(self) -> None:
        """Remove deleted pods once terminal and accounted for by their Job (the tracking finalizer's job)."""
        for key, rt in list(self.pods.items()):
            if rt.deleting and rt.terminal and (rt.job is None or rt.accounted or rt.job not in self.jobs):
                self.objects["pods"].pop(key, None)
                del self.pods[key]
                threading.Thread(target=self._remove_container, args=(rt,), daemon=True).start()

    def _remove_container(self, rt: PodRuntime) -> None:
        if rt.container is not None:
            try:
                rt.container.remove(force=True)
            except Exception as exc:
                log.info("removing %s: %s", rt.container_name, exc)
        for name in rt.named_volumes:
            try:
                self.docker.volumes.get(name).remove(force=True)
            except Exception as exc:
                log.info("removing volume %s: %s", name, exc)
        if rt.temp_dir:
            shutil.rmtree(rt.temp_dir, ignore_errors=True)

    # --- shutdown ---------------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Remove every container, volume and network this instance made (also those of orphaned pods)."""
        self._stopping.set()
        self._controller.join(timeout=5)
        with self.lock:
            runtimes = list(self.pods.values())
            self.pods.clear()
        for rt in runtimes:
            rt.deleting = True
            self._remove_container(rt)
            rt.log.finish()
        remove_labelled(self.docker, f"{OWNER_LABEL}={self.instance_id}")


def remove_labelled(engine, label_filter: str) -> int:
    """Remove the containers, then volumes and networks, carrying a label (filter `key=value` or `key`)."""
    removed = 0
    for container in engine.containers.list(all=True, filters={"label": label_filter}):
        container.remove(force=True)
        removed += 1
    for volume in engine.volumes.list(filters={"label": label_filter}):
        volume.remove(force=True)
        removed += 1
    for network in engine.networks.list(filters={"label": label_filter}):
        network.remove()
        removed += 1
    return removed


def reap_orphans(engine=None) -> int:
    """Remove what stand-ins whose process is gone left behind (a test run killed with SIGKILL cannot clean up);
    those of live stand-ins, this machine's other users included, are left alone. Returns how many were removed."""
    import docker

    engine = engine or docker.from_env()
    owners = set()
    for listing in (engine.containers.list(all=True, filters={"label": PID_LABEL}),
                    engine.volumes.list(filters={"label": PID_LABEL}),
                    engine.networks.list(filters={"label": PID_LABEL})):
        for obj in listing:
            labels = (obj.attrs.get("Labels") or obj.attrs.get("Config", {}).get("Labels") or {})
            owners.add((labels.get(OWNER_LABEL), labels.get(PID_LABEL)))
    removed = 0
    for instance, pid in owners:
        if instance and pid and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            removed += remove_labelled(engine, f"{OWNER_LABEL}={instance}")
    return removed
