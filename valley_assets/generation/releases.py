"""Which LiveCodeBench releases a source holds.

LiveCodeBench publishes `code_generation_lite` as cumulative files: `test.jsonl` holds release_v1's problems,
`test2.jsonl` the problems release_v2 adds, … `test6.jsonl` (and `test7.jsonl` when it appears). Release vN is the
union of files 1..N, so it exists exactly when every one of those files exists.

A source is either a folder (local path or fsspec URL, e.g. an object-store mirror of the dataset) or a Hugging Face
dataset id, listed with `huggingface_hub.HfApi().list_repo_files`.

A hub repo can also change its files in place (a fixed test case, a re-dated problem): a new commit with the same
file names. The release sensor then registers the newest release again under a key that names the commit,
`release_v6-rev<sha12>` (`revision_release`); `lcb_problems` of that key reads the files at that commit.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable

_RELEASE_FILE_RE = re.compile(r"^test([2-9]|[1-9][0-9]+)?\.jsonl$")
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
HUB_PREFIX = "hub:"


def release_file_number(filename: str) -> int | None:
    """`test.jsonl` -> 1, `test7.jsonl` -> 7, anything else -> None. Only the file's base name counts."""
    m = _RELEASE_FILE_RE.match(posixpath.basename(filename))
    if not m:
        return None
    return int(m.group(1)) if m.group(1) else 1


def releases_from_filenames(filenames: Iterable[str], *, prefix: str = "release_v") -> list[str]:
    """Release keys present among `filenames`, oldest first: `prefix + N` for every N whose files 1..N all exist."""
    numbers = {n for n in (release_file_number(f) for f in filenames) if n is not None}
    releases = []
    k = 1
    while k in numbers:
        releases.append(f"{prefix}{k}")
        k += 1
    return releases


def is_hub_source(source: str) -> bool:
    """`hub:owner/name`, or a bare `owner/name` that is not an existing local folder."""
    if source.startswith(HUB_PREFIX):
        return True
    if "://" in source or os.path.isabs(source) or source.startswith("."):
        return False
    return bool(_HUB_ID_RE.match(source)) and not os.path.isdir(source)


def list_source_files(source: str, *, hf_api=None, revision: str | None = None) -> list[str]:
    """Top-level file names of a folder source or a hub dataset repo."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"release source must be a folder path/URL or a hub dataset id, got {source!r}")
    if is_hub_source(source):
        repo_id = source.removeprefix(HUB_PREFIX)
        if hf_api is None:
            from huggingface_hub import HfApi

            hf_api = HfApi()
        files = hf_api.list_repo_files(repo_id, repo_type="dataset", revision=revision)
        return [f for f in files if "/" not in f]
    from valley_assets.storage import StudyStorage

    folder = StudyStorage(source)
    if not folder.is_dir():
        raise FileNotFoundError(f"release source folder {source!r} does not exist")
    # (`names` re-lists on every call: a sensor process lives for days and s3fs would serve a cached listing)
    return folder.names()


def discover_releases(
    source: str, *, prefix: str = "release_v", hf_api=None, revision: str | None = None
) -> list[str]:
    """Release keys (`release_v1`, …) that `source` holds, oldest first."""
    return releases_from_filenames(list_source_files(source, hf_api=hf_api, revision=revision), prefix=prefix)


REVISION_SEP = "-rev"
_REVISION_KEY_RE = re.compile(r"^(?P<release>.+)-rev(?P<revision>[0-9a-f]{7,40})$")


def revision_release(release: str, revision: str) -> str:
    """The key of `release` as published at hub commit `revision`: `release_v6-rev<first 12 hex digits>`."""
    if not re.fullmatch(r"[0-9a-f]{7,40}", revision or ""):
        raise ValueError(f"hub revision {revision!r} is not a commit sha (hex)")
    return f"{release}{REVISION_SEP}{revision[:12]}"


def split_revision(key: str) -> tuple[str, str | None]:
    """`release_v6-rev0123abcd4567` -> (`release_v6`, `0123abcd4567`); a key without a revision -> (key, None)."""
    m = _REVISION_KEY_RE.match(key)
    return (m["release"], m["revision"]) if m else (key, None)


def source_revision(source: str, *, hf_api=None) -> str | None:
    """The commit sha a hub dataset repo is at now (`HfApi.dataset_info(...).sha`); None for a folder source, whose
    new releases are new files only."""
    if not is_hub_source(source):
        return None
    if hf_api is None:
        from huggingface_hub import HfApi

        hf_api = HfApi()
    return hf_api.dataset_info(source.removeprefix(HUB_PREFIX)).sha
