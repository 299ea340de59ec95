
import pytest
from docker_gate import require_docker

from valley_assets.grading.backends import bwrap_works


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: containment cases that take seconds each (still run in CI)")


@pytest.fixture(params=["process", "docker"])
def backend(request):
    if request.param == "docker":
        require_docker()
    return request.param


@pytest.fixture(scope="session")
def isolation_of_process_backend() -> str:
    return "bwrap" if bwrap_works() else "rlimits"
