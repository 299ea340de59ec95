import os

import pytest

from valley_assets.grading.backends import bwrap_works, docker_available


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: containment cases that take seconds each (still run in CI)")


def require_docker() -> None:
    ok, why = docker_available()
    if ok:
        return
    if os.environ.get("VALLEY_REQUIRE_DOCKER") == "1":
        pytest.fail(f"VALLEY_REQUIRE_DOCKER=1 but the Docker backend is unavailable: {why}")
    pytest.skip(f"Docker backend unavailable: {why}")


@pytest.fixture(params=["process", "docker"])
def backend(request):
    if request.param == "docker":
        require_docker()
    return request.param


@pytest.fixture(scope="session")
def isolation_of_process_backend() -> str:
    return "bwrap" if bwrap_works() else "rlimits"
