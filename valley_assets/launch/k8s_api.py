"""The Kubernetes API access of the launcher and the grading backend: one small object (`K8sApi`: batch + core
clients), and `load_api_factory` for a `module:function` that returns one (how tests drive the state handling with a
recording double).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from valley_assets.launch.base import LaunchError


# --- the API surface the launcher uses (a double replaces it in tests) --------------------------------------------
@dataclass
class K8sApi:
    batch: Any  # kubernetes.client.BatchV1Api
    core: Any  # kubernetes.client.CoreV1Api

    @classmethod
    def from_config(cls, kubeconfig_file: str | None, in_cluster: bool) -> K8sApi:
        """Clients of their own (not the kubernetes package's global default), so launchers with different settings
        in one process never share a cluster: in-cluster credentials, or the kube config file (None: $KUBECONFIG,
        else ~/.kube/config), e.g. one pointing at a local API server."""
        from kubernetes import config

        if in_cluster:
            configuration = k8s.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            api_client = k8s.ApiClient(configuration)
        else:
            api_client = config.new_client_from_config(config_file=kubeconfig_file)
        return cls(batch=k8s.BatchV1Api(api_client), core=k8s.CoreV1Api(api_client))


def load_api_factory(path: str):
    """`module:function` -> the function (called with no arguments, it returns a `K8sApi`)."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise LaunchError(f"api_factory {path!r} must look like 'package.module:function'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise LaunchError(f"api_factory {path!r} cannot be loaded: {exc}") from exc
    if not callable(factory):
        raise LaunchError(f"api_factory {path!r} is not callable")
    return factory
