"""Launchers: run an entrypoint module locally or as a Kubernetes Job, both through dagster-pipes."""

from valley_assets.launch.base import LaunchError, Launcher
from valley_assets.launch.kubernetes import KubernetesJobLauncher
from valley_assets.launch.local import LocalProcessLauncher

__all__ = ["KubernetesJobLauncher", "LaunchError", "Launcher", "LocalProcessLauncher"]
