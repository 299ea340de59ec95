"""A recording double of the batch/v1 + core/v1 calls `KubernetesJobLauncher` makes, for the launcher's state
handling (`ScriptedCluster`): every submitted Job plays a script of `Tick`s (one per status poll): which pods exist,
in what phase, with which exit code and conditions, and the Job's terminal condition, worded as the Job controller
words it. Real Jobs run on the cluster stand-in (tests/rehearsal/kube_standin) in the rehearsal.

It records every call in `.calls` and keeps the submitted bodies in `.jobs` / `.services`. The launcher reaches a
double through `api_factory="k8s_double:installed_api"` (this folder is put on sys.path by conftest.py), which is
the same seam production config uses, so Dagster may rebuild the resource from config and still find it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dagster._core.errors import DagsterExecutionInterruptedError
from kubernetes import client as k8s

from valley_assets.launch.job_spec import CONTAINER_NAME, INDEX_ANNOTATION
from valley_assets.launch.k8s_api import K8sApi

API_FACTORY = "k8s_double:installed_api"
_installed: list = []


def install(cluster) -> None:
    _installed[:] = [cluster]


def installed_api() -> K8sApi:
    if not _installed:
        raise RuntimeError("no cluster double installed (call k8s_double.install first)")
    return K8sApi(batch=_installed[0], core=_installed[0])


# --- kubernetes objects as the API returns them -----------------------------------------------------------------
def _timestamps():
    """Distinct, equal-length kubelet timestamps (pipes' log parser joins lines that share one)."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    i = 0
    while True:
        yield (start + timedelta(microseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
        i += 1


@dataclass
class PodState:
    name: str
    phase: str = "Running"  # Pending | Running | Succeeded | Failed
    exit_code: int | None = None
    index: int = 0
    disrupted: bool = False  # carries DisruptionTarget=True (preempted, drained, node lost)


def make_pod(job: str, pod: PodState, order: int) -> k8s.V1Pod:
    state = None
    if pod.exit_code is not None:
        state = k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(
            exit_code=pod.exit_code, reason="Completed" if pod.exit_code == 0 else "Error"))
    conditions = [k8s.V1PodCondition(type="DisruptionTarget", status="True", reason="PreemptionByScheduler")] \
        if pod.disrupted else None
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(
            name=pod.name, creation_timestamp=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=order),
            labels={"batch.kubernetes.io/job-name": job, INDEX_ANNOTATION: str(pod.index)}),
        status=k8s.V1PodStatus(phase=pod.phase, conditions=conditions, container_statuses=[k8s.V1ContainerStatus(
            name=CONTAINER_NAME, image="img", image_id="", ready=False, restart_count=0, state=state)]
            if state else None),
    )


def make_job_status(name: str, condition: tuple[str, str, str] | None) -> k8s.V1Job:
    conditions = None
    if condition is not None:
        kind, reason, message = condition
        conditions = [k8s.V1JobCondition(type=kind, status="True", reason=reason or None, message=message or None)]
    return k8s.V1Job(metadata=k8s.V1ObjectMeta(name=name), status=k8s.V1JobStatus(conditions=conditions))


def exit_code_verdict(pod: str, code: int, namespace: str = "valley") -> tuple[str, str, str]:
    """The Failed condition the Job controller sets when the exit-code rule (index 1) matches."""
    return ("Failed", "PodFailurePolicy",
            f"Container {CONTAINER_NAME} for pod {namespace}/{pod} failed with exit code {code} matching FailJob "
            "rule at index 1")


def disruption_verdict(pod: str, namespace: str = "valley") -> tuple[str, str, str]:
    """The Failed condition when the DisruptionTarget rule (index 0) is FailJob (multi-node Jobs)."""
    return ("Failed", "PodFailurePolicy",
            f"Pod {namespace}/{pod} has condition DisruptionTarget matching FailJob rule at index 0")


def step_failure_text(result) -> str:
    """Every error (class: message) in the failed steps of a Dagster result, causes included."""
    texts = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None:
            texts.append(f"{error.cls_name}: {error.message}")
            error = error.cause
    return "\n".join(texts)


def _parse_selector(selector: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in selector.split(","))


class _Recorder:
    """The calls both doubles share: Services, Job deletion, pod listing by the Job's labels."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.jobs: list[k8s.V1Job] = []
        self.services: list[k8s.V1Service] = []

    def create_namespaced_service(self, namespace, body):
        self.calls.append(("create_service", body.metadata.name))
        self.services.append(body)

    def delete_namespaced_service(self, name, namespace):
        self.calls.append(("delete_service", name))

    def delete_namespaced_job(self, name, namespace, body=None):
        self.calls.append(("delete_job", name, body.propagation_policy if body else None))

    def pod_states(self, job: str) -> list[PodState]:
        raise NotImplementedError

    def list_namespaced_pod(self, namespace, label_selector):
        labels = _parse_selector(label_selector)
        job = labels["batch.kubernetes.io/job-name"]
        states = [p for p in self.pod_states(job) if INDEX_ANNOTATION not in labels
                  or str(p.index) == labels[INDEX_ANNOTATION]]
        return k8s.V1PodList(items=[make_pod(job, p, i) for i, p in enumerate(states)])

    def names(self, kind: str) -> list[str]:
        return [c[1] for c in self.calls if c[0] == kind]


# --- scripted -----------------------------------------------------------------------------------------------------
@dataclass
class Tick:
    """What the API shows at one status poll of one Job."""

    pods: list[PodState] = field(default_factory=list)
    condition: tuple[str, str, str] | None = None  # (type, reason, message)


class ScriptedCluster(_Recorder):
    """`scripts[k]` is played by the k-th Job created; the last tick repeats. `logs[pod]`: that pod's log lines."""

    def __init__(self, scripts: list[list[Tick]], logs: dict[str, list[str]], interrupt_at: tuple[int, int] | None = None):
        super().__init__()
        self.scripts, self.logs, self.interrupt_at = scripts, logs, interrupt_at
        self.polls: dict[str, int] = {}

    def _attempt(self, job: str) -> int:
        return self.names("create_job").index(job)

    def _tick(self, job: str) -> Tick:
        script = self.scripts[self._attempt(job)]
        return script[min(self.polls.get(job, 0), len(script) - 1)]

    def create_namespaced_job(self, namespace, body):
        if len(self.jobs) == len(self.scripts):
            raise AssertionError(f"Job {body.metadata.name} submitted, but the test scripted only {len(self.scripts)}")
        self.calls.append(("create_job", body.metadata.name))
        self.jobs.append(body)

    def read_namespaced_job_status(self, name, namespace):
        self.calls.append(("read_job", name))
        self.polls[name] = self.polls.get(name, -1) + 1
        if self.interrupt_at == (self._attempt(name), self.polls[name]):
            raise DagsterExecutionInterruptedError()  # what Dagster raises in the step when the run is cancelled
        return make_job_status(name, self._tick(name).condition)

    def pod_states(self, job: str) -> list[PodState]:
        return self._tick(job).pods

    def read_namespaced_pod_log(self, pod_name, namespace, **kwargs):
        self.calls.append(("logs", pod_name))
        stamps = _timestamps()
        return [f"{next(stamps)} {line}\n".encode() for line in self.logs.get(pod_name, [])]
