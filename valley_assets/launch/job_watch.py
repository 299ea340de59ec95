"""Following a submitted Job to its end: `JobWatcher` creates the Job (and Service), follows the logs of its
rank-0 pods into dagster-pipes, polls its status conditions (`job_outcome`) and deletes it when the run is cancelled
or times out; `failure_is_disruption` reads whether a multi-node Job failed because a node went away (the disruption
rule of `job_spec.pod_failure_policy`), and `attempt_spec` names the whole-Job restart that follows.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, replace

from kubernetes import client as k8s

from valley_assets.launch.base import LaunchError
from valley_assets.launch.job_spec import DISRUPTION_RULE, INDEX_ANNOTATION, LABEL_PREFIX, JobSpec
from valley_assets.launch.k8s_api import K8sApi


# --- reading the cluster's verdict --------------------------------------------------------------------------------
@dataclass
class Attempt:
    """How one submitted Job ended."""

    job_name: str
    succeeded: bool
    detail: str = ""  # the Failed condition's reason and message
    disrupted: bool = False  # failed because a node was preempted/drained/lost, not because of the program
    last_rank0: str = ""  # the last rank-0 pod's exit, for the error message


def _true_condition(obj, kind: str):
    for condition in (obj.status.conditions or []) if obj.status else []:
        if condition.type == kind and condition.status == "True":
            return condition
    return None


def job_outcome(job) -> tuple[str, str]:
    """('running'|'succeeded'|'failed', detail) from a Job's status conditions.

    `Failed` (not `FailureTarget`) is the terminal one: the controller sets it once every pod of the Job has
    terminated, so a restart never shares GPUs with a pod that is still shutting down.
    """
    complete = _true_condition(job, "Complete")
    if complete is not None:
        return "succeeded", complete.message or ""
    failed = _true_condition(job, "Failed")
    if failed is not None:
        return "failed", f"{failed.reason}: {failed.message or ''}".strip()
    return "running", ""


_DISRUPTION_VERDICT = re.compile(rf"\bmatching FailJob rule at index {DISRUPTION_RULE}\b")


def failure_is_disruption(job, pods: list) -> bool:
    """Did this multi-node Job fail because a node went away? (Only meaningful for `nodes > 1`, where the disruption
    rule is `FailJob`; a one-node Job retries disruptions itself and never fails from one.)

    The controller names the matching rule by index: "Pod ns/p has condition DisruptionTarget matching FailJob rule at
    index 0". A peer's non-zero exit can be processed first (it crashes within seconds of losing its partner, the
    preempted pod takes its grace period to terminate), so a pod of the attempt carrying `DisruptionTarget` also
    counts. Pods the Job controller itself terminates after `FailJob` get no such condition.
    """
    failed = _true_condition(job, "Failed")
    if failed is not None and failed.reason == "PodFailurePolicy" and _DISRUPTION_VERDICT.search(failed.message or ""):
        return True
    return any(_true_condition(pod, "DisruptionTarget") is not None for pod in pods)


def pod_exit_summary(pod) -> str:
    statuses = (pod.status.container_statuses or []) if pod.status else []
    for status in statuses:
        terminated = status.state.terminated if status.state else None
        if terminated is not None:
            return f"pod {pod.metadata.name}: exit code {terminated.exit_code} ({terminated.reason or 'terminated'})"
    return f"pod {pod.metadata.name}: phase {pod.status.phase if pod.status else 'unknown'}"


class JobWatcher:
    """Create a Job (+ Service), follow its index-0 pods' logs into pipes, wait for the outcome, clean up."""

    def __init__(self, api: K8sApi, context, message_reader, poll_interval_s: float, timeout_s: float | None):
        self.api = api
        self.context = context
        self.reader = message_reader
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self.followed: list[str] = []
        self._threads: list[threading.Thread] = []
        self._started = time.monotonic()  # the timeout covers every attempt of a launch

    def _follow(self, pod_name: str, namespace: str) -> None:
        def consume():
            try:
                self.reader.consume_pod_logs(self.context, self.api.core, pod_name, namespace)
            except Exception as exc:  # a lost log stream must not hide the Job's own outcome
                self.context.log.warning(f"stopped following logs of {pod_name}: {exc}")

        thread = threading.Thread(target=consume, name=f"logs-{pod_name}", daemon=True)
        thread.start()
        self.followed.append(pod_name)
        self._threads.append(thread)
        self.context.log.info(f"following logs of pod {pod_name}")

    def _pods(self, name: str, namespace: str, rank0_only: bool) -> list:
        selector = f"batch.kubernetes.io/job-name={name}"
        if rank0_only:
            selector += f",{INDEX_ANNOTATION}=0"  # also a label on the Job's pods since Kubernetes 1.28
        pods = self.api.core.list_namespaced_pod(namespace, label_selector=selector)
        return sorted(pods.items, key=lambda p: p.metadata.creation_timestamp or 0)

    def run(self, job: k8s.V1Job, service: k8s.V1Service | None) -> Attempt:
        """Submit `job` and wait for its end. Cancellation, timeout or an API error delete it before re-raising."""
        name, namespace = job.metadata.name, job.metadata.namespace
        if service is not None:
            self.api.core.create_namespaced_service(namespace, service)
        self.api.batch.create_namespaced_job(namespace, job)
        self.context.log.info(f"created Job {namespace}/{name}")
        finished = False  # a finished Job is kept for inspection (ttlSecondsAfterFinished removes it)
        try:
            while True:
                status = self.api.batch.read_namespaced_job_status(name, namespace)
                for pod in self._pods(name, namespace, rank0_only=True):
                    phase = pod.status.phase if pod.status else None
                    if pod.metadata.name not in self.followed and phase in ("Running", "Succeeded", "Failed"):
                        if self.followed:
                            self.context.log.warning(f"Job {name}: now following rank-0 pod {pod.metadata.name} "
                                                     "(a replacement after a retry)")
                        self._follow(pod.metadata.name, namespace)
                outcome, detail = job_outcome(status)
                if outcome != "running":
                    finished = True
                    self._join_log_threads()
                    if outcome == "succeeded":
                        return Attempt(name, succeeded=True, detail=detail)
                    rank0 = self._pods(name, namespace, rank0_only=True)
                    multi_node = (job.spec.completions or 1) > 1
                    return Attempt(
                        name, succeeded=False, detail=detail,
                        disrupted=multi_node and failure_is_disruption(status, self._pods(name, namespace, False)),
                        last_rank0=pod_exit_summary(rank0[-1]) if rank0 else "no pod was started",
                    )
                if self.timeout_s is not None and time.monotonic() - self._started > self.timeout_s:
                    raise LaunchError(f"Job {namespace}/{name} still running after {self.timeout_s:.0f}s; deleting it")
                time.sleep(self.poll_interval_s)
        finally:
            # Cancelled run (DagsterExecutionInterruptedError), timeout or API error: leave nothing running.
            if not finished:
                self.delete_job(name, namespace)
            if service is not None:
                self.api.core.delete_namespaced_service(name, namespace)

    def _join_log_threads(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def delete_job(self, name: str, namespace: str) -> None:
        self.context.log.warning(f"deleting Job {namespace}/{name} and its pods")
        self.api.batch.delete_namespaced_job(
            name, namespace, body=k8s.V1DeleteOptions(propagation_policy="Background")
        )


def attempt_spec(spec: JobSpec, attempt: int) -> JobSpec:
    """The spec of restart `attempt` (0 = the first submission): its own Job and Service name, so the failed attempt
    stays inspectable until its TTL, and new pods get fresh hostnames for the rendezvous."""
    if attempt == 0:
        return spec
    return replace(spec, name=f"{spec.name}-r{attempt}", labels={**spec.labels, f"{LABEL_PREFIX}/attempt": str(attempt)})
