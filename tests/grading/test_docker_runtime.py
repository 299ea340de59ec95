"""`grading.runtime`: the Docker backend's sandboxes under another registered runtime (gVisor's runsc), or refused
with the reason when the engine does not know it; never silently the default runtime or the process backend."""

import pytest
from docker_gate import require_docker
from grading_helpers import make_problem

from valley_assets.grading import grade
from valley_assets.grading.backends import SandboxError, choose_isolation, docker_runtimes, using_runtime


def test_a_configured_runtime_reaches_the_sandboxes():
    require_docker()
    problem = make_problem("double", [("2\n", "4\n"), ("5\n", "10\n")])
    generations = [{"question_id": "double", "code_list": ["print(2 * int(input()))", "print(3)"]}]
    with using_runtime("runc"):  # registered on every engine; the runtime flag is passed as for runsc
        out = grade([problem], generations, backend="docker", workers=1, timeout_s=2.0)
    assert out["isolation"] == "docker/runc"
    assert [r["verdict"] for r in out["results"]["double"]] == ["AC", "WA"]
    assert grade([problem], generations, backend="docker", workers=1, timeout_s=2.0)["isolation"] == "docker"


@pytest.mark.parametrize("backend", ["docker", "auto"])
def test_an_unregistered_runtime_is_refused_with_the_reason(backend):
    require_docker()
    assert "valley-no-such-runtime" not in docker_runtimes()
    with using_runtime("valley-no-such-runtime"), pytest.raises(SandboxError, match="not registered"):
        choose_isolation(backend)


def test_the_runtime_setting_is_refused_outside_the_docker_backend():
    from valley_assets.config import PROFILES_DIR, load_study_config

    with pytest.raises(ValueError, match="grading.runtime"):
        load_study_config(PROFILES_DIR / "demo.yaml", overrides={"grading": {"backend": "process", "runtime": "runsc"}})
    cfg = load_study_config(PROFILES_DIR / "demo.yaml", overrides={"grading": {"backend": "docker", "runtime": "runsc"}})
    assert cfg.grading.runtime == "runsc"
