"""Study storage: one root (a local folder or an fsspec URL such as s3://bucket/study) holding every artefact.

Assets write their outputs here at the paths of docs/architecture.md and read their inputs back; Dagster keeps the
lineage and metadata. Writes are atomic where the filesystem allows (write a temporary sibling, then rename), so a
killed run never leaves a half-written file that a later run would take as done.

This is the one place that turns a storage location into file operations: code that receives a location (a local
folder or a URL) builds a `StudyStorage` on it and asks it to list, open, read, write, remove, upload or download,
never `Path(location)`, which silently turns `s3://bucket/x` into the relative folder `s3:/bucket/x`.

Object stores: the endpoint and credentials come from the environment, as a cluster provides them (a Secret's env,
IRSA on EKS, Workload Identity on GKE): `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (an S3-compatible server:
MinIO, Ceph, moto), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_DEFAULT_REGION` /
`AWS_REGION`. Nothing here reads them: botocore (under s3fs and `datasets`), polars' and pyarrow's S3 clients all
honour these variables themselves (checked against moto with botocore 1.43, s3fs 2026.9, polars 2.1, pyarrow 26),
so every reader of the study's files sees the same endpoint. On EKS with IRSA the pod gets `AWS_ROLE_ARN` and
`AWS_WEB_IDENTITY_TOKEN_FILE` instead of keys (the standard AWS credential chain; not exercised locally); gs:// roots
(gcsfs) use Google's application-default credentials, which GKE Workload Identity provides.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import polars as pl
from upath import UPath


def cache_dir(*parts: str) -> Path:
    """Local scratch for work on remote storage roots (mirrors, model copies, grading logs): `$VALLEY_CACHE`, by
    default a folder in the system temp dir. On a cluster, point it at a persistent volume to keep it across pods."""
    import tempfile

    return Path(os.environ.get("VALLEY_CACHE", Path(tempfile.gettempdir()) / "valley-cache")).joinpath(*parts)


def is_remote_uri(location: str | os.PathLike) -> bool:
    """True for a URL with a protocol other than file:// (s3://, gs://, hf://, memory://, ...)."""
    text = str(location)
    return "://" in text and not text.startswith(("file://", "local://"))


class StudyStorage:
    """A root folder (local path or fsspec URL) and the file operations on it; parts are '/'-free-of-'..' names."""

    def __init__(self, root: str | os.PathLike):
        self.root = UPath(str(root))

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

    # --- the filesystem ------------------------------------------------------------------------------------------
    @property
    def fs(self):
        """The fsspec filesystem of the root (s3fs for s3://, the local one for paths)."""
        return self.root.fs

    def _fs_path(self, *parts: str) -> str:
        return self.path(*parts).path if parts else self.root.path

    def _uri_of(self, fs_path: str) -> str:
        return str(fs_path) if self.is_local else self.fs.unstrip_protocol(fs_path)

    def version(self, *parts: str) -> str:
        """What changes when the file is rewritten, read from the store's listing, not the file: its size with the
        object store's ETag, or the local modification time (atomic writes replace the file, so both change)."""
        info = self.fs.info(self._fs_path(*parts))
        changed = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
        return f"{info.get('size')}:{changed}"

    def is_dir(self, *parts: str) -> bool:
        return self.fs.isdir(self._fs_path(*parts))

    def is_file(self, *parts: str) -> bool:
        return self.fs.isfile(self._fs_path(*parts))

    def list(self, *parts: str, pattern: str = "*") -> list[str]:
        """Locations (URIs, or paths for a local root) of the files directly under a folder that match `pattern`,
        sorted by name; [] when the folder does not exist."""
        folder = self._fs_path(*parts).rstrip("/")
        if not self.fs.isdir(folder):
            return []
        self.fs.invalidate_cache(folder)  # another pod may have written since this process last listed
        return sorted(self._uri_of(p) for p in self.fs.glob(f"{folder}/{pattern}") if self.fs.isfile(p))

    def names(self, *parts: str, pattern: str = "*") -> list[str]:
        """File names (no folder) directly under a folder, matching `pattern`, sorted."""
        return [u.rstrip("/").rsplit("/", 1)[-1] for u in self.list(*parts, pattern=pattern)]

    def makedirs(self, *parts: str) -> None:
        """Create a folder (object stores have no folders: nothing to do there)."""
        if self.is_local:
            Path(self._fs_path(*parts)).mkdir(parents=True, exist_ok=True)

    def remove(self, *parts: str) -> None:
        """Remove one file if it exists."""
        path = self._fs_path(*parts)
        if self.fs.exists(path):
            self.fs.rm_file(path)

    def remove_matching(self, *parts: str, pattern: str) -> int:
        """Remove the files directly under a folder that match `pattern`; returns how many."""
        files = self.list(*parts, pattern=pattern)
        for uri in files:
            self.fs.rm_file(UPath(uri).path if not self.is_local else uri)
        return len(files)

    def open(self, *parts: str, mode: str = "rb"):
        """An open file object (read, or write: a local write is not atomic, use `open_atomic`)."""
        if "w" in mode or "a" in mode:
            self.makedirs(*parts[:-1])
        return self.fs.open(self._fs_path(*parts), mode)

    @contextlib.contextmanager
    def open_atomic(self, *parts: str) -> Iterator:
        """A binary file to write that appears under its name only when the block ends without an error: a local
        temporary sibling renamed into place, or an object-store upload completed on close (aborted on error)."""
        target = self.path(*parts)
        if self.is_local:
            final = Path(str(target))
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
            try:
                with open(tmp, "wb") as out:
                    yield out
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            out = self.fs.open(self._fs_path(*parts), "wb")
            try:
                yield out
            except BaseException:
                # closing would publish what was written so far: abort the upload instead (s3fs: the multipart
                # upload is aborted; a small file never left the buffer), and mark the file closed so nothing flushes
                with contextlib.suppress(Exception):
                    out.discard()
                out.closed = True
                raise
            else:
                out.close()

    def upload(self, local_file: str | os.PathLike, *parts: str) -> str:
        """Copy a local file to `parts` (atomically, as `write_bytes`); returns its location."""
        with open(local_file, "rb") as src, self.open_atomic(*parts) as dst:
            while chunk := src.read(16 << 20):
                dst.write(chunk)
        return self.uri(*parts)

    def download(self, *parts: str, to: str | os.PathLike) -> Path:
        """Copy the file at `parts` to a local path (written under a temporary name, then renamed)."""
        target = Path(to)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            # get_file streams one GET (no ETag pinned across ranged reads, see read_bytes)
            self.fs.get_file(self._fs_path(*parts), str(tmp))
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    @contextlib.contextmanager
    def synced_work_dir(self, *parts: str, interval_s: float = 30.0) -> Iterator[Path]:
        """A local folder whose files live at `parts` under the root, for programs that append to local files
        (the grader's per-sample log) yet must resume on another machine.

        A local root: the folder itself. A remote root: a local mirror (under `cache_dir()`), first filled with the
        files stored at `parts` (a file already larger locally is kept: this machine got further), then uploaded
        every `interval_s` seconds while the block runs and once more when it ends, error or not. A pod killed
        mid-run loses at most `interval_s` of work; the next pod, anywhere, starts from the uploaded copy.
        """
        if self.is_local:
            folder = self.local_path(*parts)
            folder.mkdir(parents=True, exist_ok=True)
            yield folder
            return
        digest = hashlib.sha256(self.uri(*parts).encode()).hexdigest()[:16]
        folder = cache_dir("synced", digest)
        folder.mkdir(parents=True, exist_ok=True)
        for name in self.names(*parts):
            local = folder / name
            remote_size = self.fs.size(self._fs_path(*parts, name))
            if not local.exists() or local.stat().st_size < remote_size:
                self.download(*parts, name, to=local)
        uploaded: dict[str, tuple[int, int]] = {}

        def push() -> None:
            for local in sorted(folder.iterdir()):
                if not local.is_file() or local.name.startswith("."):
                    continue
                stat = local.stat()
                signature = (stat.st_size, stat.st_mtime_ns)
                if uploaded.get(local.name) != signature:
                    self.upload(local, *parts, local.name)
                    uploaded[local.name] = signature

        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval_s):
                with contextlib.suppress(Exception):  # a failed periodic upload is retried at the next tick / end
                    push()

        thread = threading.Thread(target=loop, name=f"sync-{digest}", daemon=True)
        thread.start()
        try:
            yield folder
        except BaseException:
            stop.set()
            thread.join()
            with contextlib.suppress(Exception):  # keep what was done; the block's own error is the one to report
                push()
            raise
        stop.set()
        thread.join()
        push()

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
        # One whole-object GET (cat_file), not a file handle: s3fs's handles pin the ETag seen at open and fail with
        # FileExpired when another pod replaces the object meanwhile (seen with a log re-uploaded every 0.2 s).
        return self.fs.cat_file(self._fs_path(*parts))

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
