"""Docker gate for the grading tests: skip with the reason, or fail under VALLEY_REQUIRE_DOCKER=1 (CI).

A module with a unique name, imported as `from docker_gate import require_docker`: the test folders have no
__init__.py, so every `conftest` module shares one import name and `from conftest import ...` picks whichever
folder's conftest was imported first.
"""

import os

import pytest

from valley_assets.grading.backends import docker_available


def require_docker() -> None:
    ok, why = docker_available()
    if ok:
        return
    if os.environ.get("VALLEY_REQUIRE_DOCKER") == "1":
        pytest.fail(f"VALLEY_REQUIRE_DOCKER=1 but the Docker backend is unavailable: {why}")
    pytest.skip(f"Docker backend unavailable: {why}")
