"""Check that two pool builds agree row for row: same pool rows and pool_rank, same quarantine rows and reasons.

    .venv/bin/python benchmarks/pool_compare.py OUT_DIR_A OUT_DIR_B

Compares every column of pool.parquet (rows matched by id, which the pool keeps unique) and quarantine.parquet
(in file order, which is stream order). Exits non-zero on the first difference.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl


def main() -> None:
    a, b = Path(sys.argv[1]), Path(sys.argv[2])
    pool_a = pl.scan_parquet(a / "pool.parquet").sort("id").collect()
    pool_b = pl.scan_parquet(b / "pool.parquet").sort("id").collect()
    if pool_a.schema != pool_b.schema:
        sys.exit(f"pool schemas differ: {pool_a.schema} vs {pool_b.schema}")
    if pool_a.height != pool_b.height:
        sys.exit(f"pool sizes differ: {pool_a.height} vs {pool_b.height}")
    for column in pool_a.columns:
        if not pool_a[column].equals(pool_b[column]):
            sys.exit(f"pool column {column!r} differs")
    order_a = pl.scan_parquet(a / "pool.parquet").select("id").collect()["id"]
    order_b = pl.scan_parquet(b / "pool.parquet").select("id").collect()["id"]
    if not order_a.equals(order_b):
        sys.exit("pool row order in the file differs")
    quarantine_a = pl.read_parquet(a / "quarantine.parquet")
    quarantine_b = pl.read_parquet(b / "quarantine.parquet")
    if not quarantine_a.equals(quarantine_b):
        sys.exit("quarantine differs")
    print(f"identical: {pool_a.height} pool rows, {quarantine_a.height} quarantine rows")


if __name__ == "__main__":
    main()
