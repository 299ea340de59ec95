"""Launchers: run an entrypoint module locally or as a Kubernetes Job, both through dagster-pipes."""

from valley_assets.launch.base import Launcher, LaunchError
from valley_assets.launch.kubernetes import KubernetesJobLauncher
from valley_assets.launch.local import LocalProcessLauncher

__all__ = ["KubernetesJobLauncher", "LaunchError", "Launcher", "LocalProcessLauncher"]
