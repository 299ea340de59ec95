"""A local stand-in of a Kubernetes cluster that runs each Job's pods as Docker containers (test code, not product).

The product keeps talking to a real API through the official `kubernetes` client; this package serves the subset
of the Kubernetes REST API that the launcher (`valley_assets.launch.kubernetes`) and dagster-k8s's pipes log reader
use, on a threaded HTTP server, and plays the Job controller, the scheduler of one node and the kubelet (see
cluster.py for what follows Kubernetes' behaviour and podspec.py for the pod -> Docker translation).

In Python:

    from tests.rehearsal.kube_standin import KubeStandin
    with KubeStandin() as cluster:                      # or cluster.start() ... cluster.stop()
        kubernetes.config.load_kube_config(config_file=str(cluster.kubeconfig_host))
        ...                                             # containers use cluster.kubeconfig_containers
        cluster.create_secret("valley", "hf-token", {"token": "..."})
        cluster.disrupt("valley", pod_name)             # what a preemption does to a pod
        cluster.received                                # every object submitted, as received (dicts)

Standalone (for an operator, or a Dagster instance in other processes):

    python -m tests.rehearsal.kube_standin --port 6443 [--kubeconfig-dir DIR] [--runtime gvisor=runsc]

prints the two kubeconfig paths and serves until interrupted (Ctrl-C removes every container, volume and network
it made). `python -m tests.rehearsal.kube_standin --reap-orphans` removes what stand-ins killed with SIGKILL left
behind (each object carries its stand-in's id and pid; live stand-ins' objects are left alone). Disrupt a pod from another process with
`curl -X POST -H "Authorization: Bearer <token>" http://127.0.0.1:6443/standin/v1/namespaces/NS/pods/POD/disrupt`
(body `{"gracePeriodSeconds": 2}` optional; the token is in the kubeconfig).

Reaching it: the server binds 0.0.0.0; `kubeconfig_host` names http://127.0.0.1:PORT, `kubeconfig_containers`
http://host.docker.internal:PORT, which resolves in every pod container the stand-in starts (`extra_hosts
host-gateway`) and in any container started with `--add-host host.docker.internal:host-gateway`.
In-cluster config works too, as in a pod of a cluster: an HTTPS listener (`https_port`, self-signed certificate
for host.docker.internal, 127.0.0.1, kubernetes.default.svc) and per-namespace service-account files
(`service_account_dir(ns)`: token, ca.crt, namespace). The stand-in's pods get KUBERNETES_SERVICE_HOST/PORT and that
folder at /var/run/secrets/kubernetes.io/serviceaccount from its kubelet; for another container (a Dagster run
container of the rehearsal), pass `in_cluster_env()` and bind-mount `service_account_dir("valley")` there.

Namespaces `default` and `valley` exist from the start (the chart creates valley's); objects in any other namespace
need it created first (`create_namespace`), as on a cluster. Pods are created only by the Job controller.
"""

from __future__ import annotations

import atexit
import base64
import os
import secrets as _secrets
import tempfile
import threading
from pathlib import Path

import yaml

from .api import StandinHTTPServer
from .cluster import Cluster, PodRuntime
from .tls import write_self_signed

__all__ = ["REHEARSAL_RUNTIME_CLASSES", "KubeStandin", "PodRuntime"]

# The RuntimeClasses the rehearsal profile names, as this machine's Docker runtimes. gvisor plays runc, not runsc:
# the grader's runner needs pidfd_open, which the Debian bookworm runsc (release 20221219) does not implement
# (benchmarks/RESULTS.md, "Grading under gVisor"); the pods' securityContext is applied either way.
REHEARSAL_RUNTIME_CLASSES = {"gvisor": "runc"}


def _kubeconfig(server: str, token: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "kube-standin", "cluster": {"server": server}}],
        "users": [{"name": "kube-standin", "user": {"token": token}}],
        "contexts": [{"name": "kube-standin", "context": {"cluster": "kube-standin", "user": "kube-standin",
                                                           "namespace": "valley"}}],
        "current-context": "kube-standin",
    }


class KubeStandin:
    """The stand-in cluster: an API server on `port` (0 = any free port) and the controllers behind it.

    image_runtime_map: runtimeClassName -> Docker runtime (e.g. {"gvisor": "runsc"}); a Job naming a class not in the
        map is refused at create time.
    network_prefix: prefix of every Docker network, container and volume name (followed by a per-instance id, so
        parallel stand-ins never collide).
    node_capacity: {"cpu": ..., "memory": ...} of the one node (default: this machine's); pods whose requests do not
        fit beside the running pods' stay Pending (Unschedulable), as on a cluster.
    pod_pids_limit: the kubelet's podPidsLimit (a node setting, not a pod's): processes+threads of one pod, applied
        as the container's pids limit; None = unlimited, as a kubelet without the setting.
    pod_backoff_s: the Job controller's pod re-creation back-off after a counted failure (10 s on a cluster,
        doubling per failure).
    require_referenced_objects: as a cluster, refuse pods whose ServiceAccount does not exist (the Job shows no
        pod, a FailedCreate event says why) and keep pods whose PersistentVolumeClaim does not exist Pending
        (Unschedulable); off by default, so a rehearsal opts in once it creates them (create_service_account,
        create_persistent_volume_claim), as an operator's RBAC and storage setup would.
    """

    def __init__(self, image_runtime_map: dict[str, str] | None = None, network_prefix: str = "valley-standin", *,
                 port: int = 0, bind: str = "0.0.0.0", kubeconfig_dir: str | os.PathLike | None = None,
                 node_capacity: dict[str, str] | None = None, namespaces: tuple[str, ...] = ("default", "valley"),
                 pod_backoff_s: float = 10.0, token: str | None = None, https_port: int = 0,
                 require_referenced_objects: bool = False, pod_pids_limit: int | None = None):
        self.image_runtime_map = dict(image_runtime_map or {})
        self.network_prefix = network_prefix
        self.port, self.bind = port, bind
        self.node_capacity, self.namespaces, self.pod_backoff_s = node_capacity, tuple(namespaces), pod_backoff_s
        self.require_referenced_objects = require_referenced_objects
        self.pod_pids_limit = pod_pids_limit
        self.token = token or _secrets.token_hex(16)
        self.instance_id = _secrets.token_hex(3)
        self._own_dir = kubeconfig_dir is None
        self.kubeconfig_dir = Path(kubeconfig_dir or tempfile.mkdtemp(prefix="kube-standin-"))
        self.kubeconfig_host = self.kubeconfig_dir / "kubeconfig-host.yaml"
        self.kubeconfig_containers = self.kubeconfig_dir / "kubeconfig-containers.yaml"
        self.cluster: Cluster | None = None
        self.https_port = https_port
        self._server: StandinHTTPServer | None = None
        self._tls_server: StandinHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------------------------------
    def start(self) -> KubeStandin:
        self.cluster = Cluster(instance_id=self.instance_id, network_prefix=self.network_prefix,
                               runtime_map=self.image_runtime_map, node_capacity=self.node_capacity,
                               namespaces=self.namespaces, pod_backoff_s=self.pod_backoff_s,
                               require_referenced_objects=self.require_referenced_objects,
                               pod_pids_limit=self.pod_pids_limit)
        self._server = StandinHTTPServer((self.bind, self.port), self.cluster, self.token)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="kube-standin-api", daemon=True)
        self._thread.start()
        self.kubeconfig_dir.mkdir(parents=True, exist_ok=True)
        # HTTPS listener + service-account files: what in-cluster clients (pods, run containers) use
        accounts = self.kubeconfig_dir / "serviceaccount"
        accounts.mkdir(exist_ok=True)
        cert, key = write_self_signed(self.kubeconfig_dir)
        (accounts / "ca.crt").write_bytes(cert.read_bytes())
        (accounts / "token").write_text(self.token)
        self._tls_server = StandinHTTPServer((self.bind, self.https_port), self.cluster, self.token,
                                             tls=(str(cert), str(key)))
        self.https_port = self._tls_server.server_address[1]
        threading.Thread(target=self._tls_server.serve_forever, name="kube-standin-api-tls", daemon=True).start()
        self.cluster.in_cluster = ("host.docker.internal", self.https_port, str(accounts))
        # Readable by any uid: containers running as non-root mount the folder (the token guards a local test API).
        self.kubeconfig_dir.chmod(0o755)
        for path, host in ((self.kubeconfig_host, "127.0.0.1"), (self.kubeconfig_containers, "host.docker.internal")):
            path.write_text(yaml.safe_dump(_kubeconfig(f"http://{host}:{self.port}", self.token), sort_keys=False))
            path.chmod(0o644)
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stop serving and remove every container, volume and network this instance made."""
        for server in (self._server, self._tls_server):
            if server is not None:
                server.stopping.set()
                server.shutdown()
                server.server_close()
        self._server = self._tls_server = None
        if self.cluster is not None:
            self.cluster.shutdown()
            self.cluster = None
        atexit.unregister(self.stop)

    def __enter__(self) -> KubeStandin:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- what tests and operators use -------------------------------------------------------------------------------
    @property
    def received(self) -> list[dict]:
        """Every object submitted (Jobs, Services, Secrets, Namespaces, ...), as received, in order."""
        return self.cluster.received

    def received_of(self, kind: str) -> list[dict]:
        return [obj for obj in self.received if obj.get("kind") == kind]

    @property
    def events(self) -> list[tuple[str, str, str, str]]:
        return self.cluster.events

    def create_namespace(self, name: str) -> dict:
        return self.cluster.create("namespaces", None, {"apiVersion": "v1", "kind": "Namespace",
                                                        "metadata": {"name": name}})

    def create_secret(self, namespace: str, name: str, data: dict[str, str]) -> dict:
        """An Opaque Secret (values as plain text), creating the namespace first if it is missing (an operator's
        `kubectl create namespace` + `kubectl create secret generic`)."""
        if not any(ns["metadata"]["name"] == namespace for ns in self.cluster.list("namespaces", None)):
            self.create_namespace(namespace)
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name},
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
        return self.cluster.create("secrets", namespace, body)

    def create_network_policy(self, namespace: str, body: dict) -> dict:
        """A NetworkPolicy (deny-all only: cluster.py), e.g. k8s/grader-networkpolicy.yaml's object."""
        return self.cluster.create("networkpolicies", namespace, body)

    def create_service_account(self, namespace: str, name: str) -> dict:
        return self.cluster.create("serviceaccounts", namespace, {"apiVersion": "v1", "kind": "ServiceAccount",
                                                                  "metadata": {"name": name}})

    def create_persistent_volume_claim(self, namespace: str, name: str, size: str = "10Gi",
                                       access_modes: tuple[str, ...] = ("ReadWriteMany",)) -> dict:
        """A claim, bound at once (its Docker volume is made on first mount: `pvc_volume`)."""
        return self.cluster.create("persistentvolumeclaims", namespace, {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": list(access_modes), "resources": {"requests": {"storage": size}}}})

    def disrupt(self, namespace: str, pod_name: str, grace_period_s: float | None = None) -> None:
        """Preempt a pod: `DisruptionTarget` condition, then deletion (SIGTERM, SIGKILL after the grace period,
        the pod's terminationGracePeriodSeconds unless given)."""
        self.cluster.disrupt(namespace, pod_name, grace_period_s)

    def pods(self, namespace: str, label_selector: str | None = None) -> list[dict]:
        return self.cluster.list("pods", namespace, label_selector)

    def pod_log(self, namespace: str, pod_name: str) -> list[str]:
        """The lines a pod's container wrote so far (stdout and stderr merged)."""
        rt = self.cluster.pods.get((namespace, pod_name))
        return [text for _, text in rt.log.lines] if rt else []

    def in_cluster_env(self, host: str = "host.docker.internal") -> dict[str, str]:
        """KUBERNETES_SERVICE_HOST/PORT for a container (or, with host="127.0.0.1", a host process) that uses
        in-cluster config; mount `service_account_dir(namespace)` at /var/run/secrets/kubernetes.io/serviceaccount
        too. The stand-in's own pods get both from its kubelet."""
        return {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": str(self.https_port)}

    def service_account_dir(self, namespace: str = "valley") -> str:
        """Folder with token, ca.crt and namespace: what the kubelet mounts at
        /var/run/secrets/kubernetes.io/serviceaccount."""
        return self.cluster.service_account_dir(namespace)

    def pvc_volume(self, namespace: str, claim: str) -> str:
        """The Docker volume backing a persistentVolumeClaim (created on first mount)."""
        return self.cluster.pvc_volume_name(namespace, claim)

    def host_path_volume(self, path: str | os.PathLike | None = None) -> dict:
        """A hostPath volume source (`{"path": ..., "type": "DirectoryOrCreate"}`) for a folder of this machine,
        a fresh temporary one unless given; mounted into pod containers by bind."""
        folder = Path(path) if path else Path(tempfile.mkdtemp(prefix="standin-hostpath-"))
        return {"path": str(folder.resolve()), "type": "DirectoryOrCreate"}
