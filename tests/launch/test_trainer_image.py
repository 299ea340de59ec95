"""The trainer image's recipe agrees with what the tests run: its pins are the installed versions, they satisfy the
project's declared dependencies, and everything the Dockerfile copies is in the build context it allows.

(The image itself is not built here: the base images come from Docker Hub and NVIDIA's registry, which this test
environment cannot reach. k8s/README.md says how to build and push it.)"""

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "trainer" / "Dockerfile"
CONSTRAINTS = REPO / "docker" / "trainer" / "constraints.txt"


def pins() -> dict[str, str]:
    out = {}
    for n, line in enumerate(CONSTRAINTS.read_text().splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            name, sep, pinned = line.partition("==")
            assert sep, f"constraints.txt line {n}: {line!r} is not name==version"
            out[name.strip().lower().replace("_", "-")] = pinned.strip()
    return out


def arg_default(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert match, f"Dockerfile has no `ARG {name}=...`"
    return match.group(1)


def test_constraints_are_the_tested_versions():
    stale = {}
    for name, pinned in pins().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != pinned:
            stale[name] = (pinned, installed)
    assert not stale, f"docker/trainer/constraints.txt differs from the environment (pinned, installed): {stale}"


def test_pins_satisfy_the_project_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = [Requirement(d) for d in project["dependencies"] + project["optional-dependencies"]["s3"]]
    table = {**pins(), "torch": arg_default("TORCH_VERSION")}
    for req in deps:
        name = req.name.lower().replace("_", "-")
        if name == "s3fs":  # not in the test environment; pip resolves it against fsspec's pin (s3fs pins fsspec)
            continue
        assert name in table, f"{req} is a dependency but not pinned for the image"
        assert Version(table[name]) in req.specifier, f"image pins {name}=={table[name]}, pyproject wants {req}"


def test_torch_is_the_tested_release_and_dagster_postgres_matches_dagster_k8s():
    tested = Version(version("torch")).base_version  # e.g. 2.13.0 of 2.13.0+cpu: the image takes PyPI's CUDA build
    assert arg_default("TORCH_VERSION") == tested
    assert "torch" not in pins(), "torch is pinned by the TORCH_VERSION build arg only (a +cpu pin would break CUDA)"
    assert f'"dagster-postgres=={version("dagster-k8s")}"' in DOCKERFILE.read_text()


def test_everything_copied_is_in_the_build_context():
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore, "the context is a whitelist"
    copied = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied += line.split()[1:-1]
    assert copied, "the Dockerfile copies nothing from the context"
    for path in copied:
        assert (REPO / path).exists(), f"the Dockerfile copies {path}, which does not exist"
        assert path in allowed, f"the Dockerfile copies {path}, which Dockerfile.dockerignore keeps out"
