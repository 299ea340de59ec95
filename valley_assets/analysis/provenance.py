"""Provenance manifests: what produced a checkpoint or a report, written as `provenance.json` beside it.

A manifest records the code (git revision and whether the tree was dirty), the library versions, the seeds, the
sha256 of every data file read, the hyper-parameters, and the compute spent (wall time, GPU count, GPU-hours). It is
plain JSON so that it can be diffed and read without this package.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MANIFEST_NAME = "provenance.json"
# Versions recorded in every manifest; vllm only appears where it is installed (the GPU images).
TRACKED_PACKAGES = ("torch", "transformers", "trl", "accelerate", "dagster", "datasets", "polars", "numpy", "vllm")
_CHUNK = 1 << 20
_REPO_DIR = Path(__file__).resolve().parents[2]
# Set by the image build (docker/trainer/Dockerfile, build arg VALLEY_GIT_REVISION): an installed image has no .git.
GIT_REVISION_ENV = "VALLEY_GIT_REVISION"
GIT_DIRTY_ENV = "VALLEY_GIT_DIRTY"  # "1": the image was built from a tree with uncommitted changes, "0": clean


def _is_url(path: str | os.PathLike) -> bool:
    return "://" in str(path)


def _open_binary(path: str | os.PathLike):
    if _is_url(path):
        import fsspec  # only for remote storage roots (s3://, gs://, …); local files need nothing extra

        return fsspec.open(str(path), "rb").open()
    return open(path, "rb")


def sha256_file(path: str | os.PathLike) -> tuple[str, int]:
    """(hex sha256, size in bytes) of a file, read in 1 MiB chunks so multi-GB parquet files never sit in memory."""
    digest = hashlib.sha256()
    size = 0
    try:
        handle = _open_binary(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"provenance: data file {str(path)!r} does not exist") from None
    with handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def git_revision(repo_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """{"revision": sha or "unknown", "dirty": bool or None}.

    `VALLEY_GIT_REVISION` wins when set (the image records the commit it was built from; its installed copy has no
    repository, and a checkout's tree state says nothing about the image), with `VALLEY_GIT_DIRTY` (1/0, None when
    the build did not say); otherwise `git` in the repository; "unknown" when neither answers.
    """
    baked = os.environ.get(GIT_REVISION_ENV, "").strip()
    if baked and baked != "unknown":
        dirty = {"1": True, "0": False}.get(os.environ.get(GIT_DIRTY_ENV, "").strip())
        return {"revision": baked, "dirty": dirty}
    cwd = str(repo_dir or _REPO_DIR)

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False)
        except (FileNotFoundError, NotADirectoryError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    revision = git("rev-parse", "HEAD")
    if revision is None:
        return {"revision": "unknown", "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"revision": revision.strip(), "dirty": None if status is None else bool(status.strip())}


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of the tracked packages; packages that are not installed are left out."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _check_json(value: Any, field: str) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"provenance field {field!r} is not plain JSON ({err})") from None
    return value


def provenance_manifest(
    *,
    hyperparameters: Mapping[str, Any],
    seeds: Mapping[str, int] | int,
    data_files: Iterable[str | os.PathLike],
    wall_time_s: float,
    gpu_count: int,
    extra: Mapping[str, Any] | None = None,
    repo_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The provenance of one run as a JSON-ready dict.

    `seeds` is a mapping (e.g. {"data": 0, "train": 42}) or one int; every data file is hashed (sha256, streamed);
    GPU-hours = wall_time_s * gpu_count / 3600. Values that JSON cannot hold are refused with the field named.
    """
    if isinstance(wall_time_s, bool) or not isinstance(wall_time_s, (int, float)) or not wall_time_s >= 0:
        raise ValueError(f"provenance: wall_time_s must be a non-negative number, got {wall_time_s!r}")
    if not isinstance(gpu_count, int) or isinstance(gpu_count, bool) or gpu_count < 0:
        raise ValueError(f"provenance: gpu_count must be a non-negative int, got {gpu_count!r}")
    seeds = {"seed": seeds} if isinstance(seeds, int) else dict(seeds)
    for name, seed in seeds.items():
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"provenance: seed {name!r} must be an int, got {seed!r}")
    files = []
    for path in data_files:
        sha, size = sha256_file(path)
        files.append({"path": str(path), "sha256": sha, "bytes": size})
    manifest = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": git_revision(repo_dir),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "seeds": seeds,
        "data_files": files,
        "hyperparameters": _check_json(dict(hyperparameters), "hyperparameters"),
        "wall_time_s": float(wall_time_s),
        "gpu_count": gpu_count,
        "gpu_hours": float(wall_time_s) * gpu_count / 3600.0,
    }
    if extra:
        for key in extra:
            if key in manifest:
                raise ValueError(f"provenance: extra key {key!r} would overwrite a recorded field")
        manifest.update(_check_json(dict(extra), "extra"))
    return manifest


def write_manifest(directory: str | os.PathLike, manifest: Mapping[str, Any]) -> str:
    """Write `provenance.json` into `directory` (beside the checkpoint); returns its path.

    Local writes go through a temporary file and os.replace, so a reader never sees half a manifest. fsspec URLs
    (object stores publish a whole object at once) are written directly.
    """
    text = json.dumps(_check_json(dict(manifest), "manifest"), indent=2, sort_keys=True) + "\n"
    if _is_url(directory):
        import fsspec

        target = str(directory).rstrip("/") + "/" + MANIFEST_NAME
        with fsspec.open(target, "w") as handle:
            handle.write(text)
        return target
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".provenance.", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, folder / MANIFEST_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(folder / MANIFEST_NAME)


def verify_data_files(manifest: Mapping[str, Any]) -> list[str]:
    """Data files whose current sha256 no longer matches the manifest (missing files included); [] when all match."""
    changed = []
    for entry in manifest.get("data_files", []):
        try:
            sha, _ = sha256_file(entry["path"])
        except FileNotFoundError:
            changed.append(entry["path"])
            continue
        if sha != entry["sha256"]:
            changed.append(entry["path"])
    return changed
