"""Check that two pool builds agree row for row: same pool rows in the same file order, same quarantine rows.

    .venv/bin/python benchmarks/pool_compare.py OUT_DIR_A OUT_DIR_B

Pool: the schemas must be equal, and the files must hold the same rows in the same order, compared by a 64-bit
hash of every column of each row (streamed, so a 10 GB pool is compared in bounded memory; two different rows
collide with probability ~2^-64). Quarantine (small): compared exactly, in file order (stream order).
Exits non-zero on the first difference.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq


def row_hashes(path: Path) -> pl.Series:
    return pl.scan_parquet(path).select(pl.struct(pl.all()).hash(seed=0).alias("h")).collect(engine="streaming")["h"]


def main() -> None:
    a, b = Path(sys.argv[1]), Path(sys.argv[2])
    schema_a = pq.read_schema(a / "pool.parquet")
    schema_b = pq.read_schema(b / "pool.parquet")
    if not schema_a.equals(schema_b):
        sys.exit(f"pool schemas differ: {schema_a} vs {schema_b}")
    hashes_a, hashes_b = row_hashes(a / "pool.parquet"), row_hashes(b / "pool.parquet")
    if len(hashes_a) != len(hashes_b):
        sys.exit(f"pool sizes differ: {len(hashes_a)} vs {len(hashes_b)}")
    if not hashes_a.equals(hashes_b):
        first = int((hashes_a != hashes_b).arg_true()[0])
        sys.exit(f"pool rows differ, first at file row {first}")
    quarantine_a = pl.read_parquet(a / "quarantine.parquet")
    quarantine_b = pl.read_parquet(b / "quarantine.parquet")
    if not quarantine_a.equals(quarantine_b):
        sys.exit("quarantine differs")
    print(f"identical: {len(hashes_a)} pool rows, {quarantine_a.height} quarantine rows")


if __name__ == "__main__":
    main()
