"""Per-row arrays of a pool build kept on disk, so the build's memory does not grow with the number of rows.

Pass 1 of the pool keeps a few fixed-width values per surviving row (row number, token count, 64-bit keys): 49
bytes a row, 67 MB at 1.4M rows, plus the temporaries of sorting them, and more for every input beyond OCR2. A
`ColumnStore` appends them to one raw file per column, in parts (one part per trace source), and reads a part back
when it is needed; the process holds one part at a time.

Two operations need every row at once: the key values that occur more than once (deduplication) and the rank of
each row by its key (the seeded order). Both run over buckets of at most `bucket_rows` rows, partitioned by the top
bits of the key. The keys are uniform 64-bit hashes, so the buckets are balanced; and buckets taken in order of their
top bits are in key order, so a row's global rank is the size of the buckets before its own plus its rank within it.
Memory is O(bucket_rows) whatever the total.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

BUCKET_ROWS = 1 << 16  # rows per bucket (expected): 1 MB of keys and positions, sorted in milliseconds


class ColumnStore:
    """Fixed-width columns appended part by part to raw files under `root` (created; the caller removes it)."""

    def __init__(self, root: Path, dtypes: dict[str, type | np.dtype]):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.dtypes = {name: np.dtype(dtype) for name, dtype in dtypes.items()}
        self.offsets = [0]  # part k holds rows offsets[k]:offsets[k + 1]
        for name in self.dtypes:
            self._path(name).touch()

    def _path(self, name: str) -> Path:
        return self.root / f"{name}.bin"

    @property
    def n_rows(self) -> int:
        return self.offsets[-1]

    @property
    def n_parts(self) -> int:
        return len(self.offsets) - 1

    def append(self, arrays: dict[str, np.ndarray]) -> None:
        """Add one part: an array per column, all of one length."""
        if set(arrays) != set(self.dtypes):
            raise ValueError(f"columns {sorted(arrays)} do not match the store's {sorted(self.dtypes)}")
        lengths = {len(a) for a in arrays.values()}
        if len(lengths) != 1:
            raise ValueError(f"columns of one part differ in length: { {k: len(a) for k, a in arrays.items()} }")
        for name, dtype in self.dtypes.items():
            with open(self._path(name), "ab") as out:
                out.write(np.ascontiguousarray(arrays[name], dtype=dtype).tobytes())
        self.offsets.append(self.offsets[-1] + lengths.pop())

    def _read(self, name: str, start: int, count: int) -> np.ndarray:
        dtype = self.dtypes[name]
        if count <= 0:
            return np.empty(0, dtype)
        return np.fromfile(self._path(name), dtype=dtype, count=count, offset=start * dtype.itemsize)

    def part(self, index: int, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        start, stop = self.offsets[index], self.offsets[index + 1]
        return {name: self._read(name, start, stop - start) for name in (names or self.dtypes)}

    def chunks(self, name: str, chunk_rows: int) -> Iterator[np.ndarray]:
        """Column `name` over all rows, in order, `chunk_rows` at a time."""
        for start in range(0, self.n_rows, chunk_rows):
            yield self._read(name, start, min(chunk_rows, self.n_rows - start))

    def add_column(self, name: str, dtype: type | np.dtype) -> np.memmap | None:
        """A new column of n_rows zeros, returned writable (memory-mapped); None when the store is empty."""
        self.dtypes[name] = np.dtype(dtype)
        path = self._path(name)
        with open(path, "wb") as out:
            out.truncate(self.n_rows * self.dtypes[name].itemsize)
        return np.memmap(path, dtype=self.dtypes[name], mode="r+", shape=(self.n_rows,)) if self.n_rows else None

    def drop(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)
        del self.dtypes[name]


def _n_buckets(n_rows: int, bucket_rows: int) -> int:
    """A power of two, so that a bucket is the top bits of a key; at least 1."""
    return 1 << max(0, math.ceil(math.log2(max(n_rows, 1) / bucket_rows)))


class _Buckets:
    """Keys (uint64) and their positions in the input, appended to one file pair per bucket of their top bits."""

    def __init__(self, root: Path, n_buckets: int):
        self.root, self.n_buckets = root, n_buckets
        self.shift = np.uint64(64 - int(math.log2(n_buckets))) if n_buckets > 1 else None
        root.mkdir(parents=True, exist_ok=True)

    def _paths(self, bucket: int) -> tuple[Path, Path]:
        return self.root / f"{bucket}.keys", self.root / f"{bucket}.positions"

    def add(self, keys: np.ndarray, first_position: int) -> None:
        positions = np.arange(first_position, first_position + len(keys), dtype=np.int64)
        if self.shift is None:
            parts = [(0, keys, positions)]
        else:
            bucket = (keys >> self.shift).astype(np.intp)
            order = np.argsort(bucket, kind="stable")  # stable: positions stay ascending within a bucket
            bounds = np.searchsorted(bucket[order], np.arange(self.n_buckets + 1))
            parts = [(b, keys[order[lo:hi]], positions[order[lo:hi]])
                     for b, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)) if hi > lo]
        for b, bucket_keys, bucket_positions in parts:
            keys_path, positions_path = self._paths(b)
            with open(keys_path, "ab") as out:
                out.write(np.ascontiguousarray(bucket_keys, dtype=np.uint64).tobytes())
            with open(positions_path, "ab") as out:
                out.write(bucket_positions.tobytes())

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(keys, positions) of each bucket in key order (positions ascending within a bucket); removes them."""
        for b in range(self.n_buckets):
            keys_path, positions_path = self._paths(b)
            if not keys_path.exists():
                continue
            keys, positions = np.fromfile(keys_path, dtype=np.uint64), np.fromfile(positions_path, dtype=np.int64)
            keys_path.unlink()
            positions_path.unlink()
            yield keys, positions


def _bucketed(store: ColumnStore, name: str, bucket_rows: int) -> _Buckets:
    if store.dtypes[name] != np.uint64:
        raise TypeError(f"column {name!r} must be uint64 keys, is {store.dtypes[name]}")
    buckets = _Buckets(store.root / f"{name}.buckets", _n_buckets(store.n_rows, bucket_rows))
    position = 0
    for chunk in store.chunks(name, bucket_rows):
        buckets.add(chunk, position)
        position += len(chunk)
    return buckets


def repeated_values(store: ColumnStore, name: str, *, bucket_rows: int | None = None) -> np.ndarray:
    """The distinct values of uint64 column `name` that occur more than once, sorted."""
    repeated = []
    for keys, _ in _bucketed(store, name, bucket_rows or BUCKET_ROWS):
        values, counts = np.unique(keys, return_counts=True)
        repeated.append(values[counts > 1])
    return np.concatenate(repeated) if repeated else np.empty(0, np.uint64)


def add_rank_column(store: ColumnStore, key: str, name: str, *, bucket_rows: int | None = None) -> None:
    """Column `name` (int64): each row's 0-based rank in the order of (uint64 column `key`, row position)."""
    buckets = _bucketed(store, key, bucket_rows or BUCKET_ROWS)
    ranks = store.add_column(name, np.int64)
    first_rank = 0
    for keys, positions in buckets:
        order = np.argsort(keys, kind="stable")  # equal keys keep position order
        assert ranks is not None
        ranks[positions[order]] = np.arange(first_rank, first_rank + len(keys), dtype=np.int64)
        first_rank += len(keys)
    if ranks is not None:
        ranks.flush()
        del ranks  # unmapped: its pages are the page cache's, not this process's
