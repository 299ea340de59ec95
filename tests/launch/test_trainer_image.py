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


# --- the generation image (vLLM) ------------------------------------------------------------------------------------
GENERATION_CONSTRAINTS = REPO / "docker" / "trainer" / "generation-constraints.txt"
DAGSTER_SET = ("dagster", "dagster-pipes", "dagster-k8s", "dagster-docker", "dagster-webserver", "dagster-postgres",
               "dagster-shared", "dagster-graphql")


def generation_pins() -> dict[str, str]:
    out = {}
    for n, line in enumerate(GENERATION_CONSTRAINTS.read_text().splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            name, sep, pinned = line.partition("==")
            assert sep, f"generation-constraints.txt line {n}: {line!r} is not name==version"
            out[name.strip().lower().replace("_", "-")] = pinned.strip()
    return out


def stage(name: str) -> str:
    """The text of one stage of the Dockerfile (from its FROM to the next FROM)."""
    text = DOCKERFILE.read_text()
    match = re.search(rf"^FROM \S+ AS {name}\n(.*?)(?=^FROM |\Z)", text, re.M | re.S)
    assert match, f"the Dockerfile has no stage {name!r}"
    return match.group(1)


def test_generation_image_carries_vllm_at_the_image_torch():
    """Defect 2: vLLM was in no image, so every production lcb_generations failed on import."""
    pins = generation_pins()
    vllm_version = re.search(r"^ARG VLLM_VERSION=(\S+)$", stage("generation"), re.M).group(1)
    assert pins["vllm"] == vllm_version
    resolved_with = re.search(r"^# resolved-with: torch==(\S+)$", GENERATION_CONSTRAINTS.read_text(), re.M).group(1)
    assert resolved_with == arg_default("TORCH_VERSION"), "the pins were resolved against another torch"
    assert "torch" not in pins and not any(n.startswith("nvidia-cuda-runtime") for n in pins), \
        "torch and its CUDA wheels come from the torch stage"
    install = re.search(r"^RUN pip install (.*?)(?:\n(?!\s)|\Z)", stage("generation"), re.M | re.S).group(1)
    assert "-c docker/trainer/generation-constraints.txt" in install and '"vllm==${VLLM_VERSION}"' in install
    assert '"/opt/valley[${EXTRAS}]"' in install and "import torch, vllm" in install
    # The default target (the last stage) stays the trainer: code location, run pods and training Jobs.
    assert re.findall(r"^FROM \S+ AS (\S+)$", DOCKERFILE.read_text(), re.M)[-1] == "trainer"


def test_generation_pins_satisfy_the_project_and_share_its_dagster():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    table = {**generation_pins(), "torch": arg_default("TORCH_VERSION")}
    for req in [Requirement(d) for d in project["dependencies"] + extras["s3"] + extras["gpu"]]:
        name = req.name.lower().replace("_", "-")
        assert name in table, f"{req} is a dependency but not pinned for the generation image"
        assert Version(table[name]) in req.specifier, f"generation image pins {name}=={table[name]}, pyproject: {req}"
    trainer = pins()
    for name in DAGSTER_SET:  # the run pod (trainer image) and the Job speak one dagster-pipes protocol
        assert generation_pins()[name] == trainer[name], name


def test_both_images_bake_the_git_revision_for_provenance():
    for name in ("trainer", "generation"):
        text = stage(name)
        assert re.search(r"^ARG VALLEY_GIT_REVISION=", text, re.M), name
        assert re.search(r"^ENV .*\bVALLEY_GIT_REVISION=\$\{VALLEY_GIT_REVISION\}", text, re.M), name


def test_provenance_reads_the_baked_revision_before_git(tmp_path, monkeypatch):
    """Defect 9: in the image (no .git) provenance recorded revision "unknown"."""
    from valley_assets.analysis.provenance import git_revision

    no_repo = tmp_path / "installed"
    no_repo.mkdir()
    monkeypatch.delenv("VALLEY_GIT_REVISION", raising=False)
    assert git_revision(no_repo) == {"revision": "unknown", "dirty": None}
    monkeypatch.setenv("VALLEY_GIT_REVISION", "0123456789abcdef0123456789abcdef01234567")
    assert git_revision(no_repo) == {"revision": "0123456789abcdef0123456789abcdef01234567", "dirty": None}
    monkeypatch.setenv("VALLEY_GIT_DIRTY", "1")
    assert git_revision(no_repo)["dirty"] is True
    monkeypatch.setenv("VALLEY_GIT_REVISION", "unknown")  # the build arg's default: fall back to git
    assert git_revision(no_repo)["revision"] == "unknown"
