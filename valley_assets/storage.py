"""Study storage: one root (a local folder or an fsspec URL such as s3://bucket/study) holding every artefact.

Assets write their outputs here at the paths of docs/architecture.md and read their inputs back; Dagster keeps the
lineage and metadata. Writes are atomic where the filesystem allows (write a temporary sibling, then rename), so a
killed run never leaves a half-written file that a later run would take as done.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import polars as pl
from upath import UPath


def cache_dir(*parts: str) -> Path:
    """Local scratch for work on remote storage roots (mirrors, model copies, grading logs): `$VALLEY_CACHE`, by
    default a folder in the system temp dir. On a cluster, point it at a persistent volume to keep it across pods."""
    import tempfile

    return Path(os.environ.get("VALLEY_CACHE", Path(tempfile.gettempdir()) / "valley-cache")).joinpath(*parts)


class StudyStorage:
    def __init__(self, root: str):
        self.root = UPath(root)

    @property
    def is_local(self) -> bool:
        return self.root.protocol in ("", "file", "local")

    def path(self, *parts: str) -> UPath:
        for p in parts:
            if not p or ".." in Path(p).parts or p.startswith("/"):
                raise ValueError(f"storage path part {p!r} must be a non-empty relative name")
        return self.root.joinpath(*parts)

    def local_path(self, *parts: str) -> Path:
        """A plain filesystem path, for programs (training, generation) that take a directory."""
        if not self.is_local:
            raise ValueError(f"storage root {self.root} is not local; pass the URL {self.path(*parts)} instead")
        return Path(str(self.path(*parts)))

    def local_work_dir(self, *parts: str) -> Path:
        """A local folder for resumable work files: inside the root when it is local, else under `cache_dir()`."""
        path = self.local_path(*parts) if self.is_local else cache_dir(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def uri(self, *parts: str) -> str:
        return str(self.path(*parts))

    def exists(self, *parts: str) -> bool:
        return self.path(*parts).exists()

    # --- bytes, atomically ---------------------------------------------------------------------------------------
    def write_bytes(self, data: bytes, *parts: str) -> UPath:
        target = self.path(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.is_local:
            tmp = Path(str(target)).with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, str(target))
        else:  # object stores publish a key atomically on close
            target.write_bytes(data)
        return target

    def read_bytes(self, *parts: str) -> bytes:
        p = self.path(*parts)
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist: materialize the upstream asset first")
        return p.read_bytes()

    # --- formats -------------------------------------------------------------------------------------------------
    def write_json(self, obj, *parts: str) -> UPath:
        return self.write_bytes(json.dumps(obj, indent=1, sort_keys=True, default=str).encode(), *parts)

    def read_json(self, *parts: str):
        return json.loads(self.read_bytes(*parts))

    def write_jsonl(self, rows: Iterable[dict], *parts: str) -> UPath:
        buf = io.StringIO()
        for row in rows:
            buf.write(json.dumps(row, ensure_ascii=False) + "\n")
        return self.write_bytes(buf.getvalue().encode(), *parts)

    def read_jsonl(self, *parts: str) -> list[dict]:
        rows = []
        for lineno, line in enumerate(self.read_bytes(*parts).decode().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{self.path(*parts)} line {lineno}: not valid JSON ({exc})") from exc
        return rows

    def write_parquet(self, df: pl.DataFrame, *parts: str) -> UPath:
        buf = io.BytesIO()
        df.write_parquet(buf, compression="zstd")
        return self.write_bytes(buf.getvalue(), *parts)

    def read_parquet(self, *parts: str) -> pl.DataFrame:
        return pl.read_parquet(io.BytesIO(self.read_bytes(*parts)))
