"""The pool's deduplication: the first copy in stream order wins (`valley_assets.data.pool` documents the
duplicate_id / exact_duplicate / near_duplicate rules). Runs once over pass 1's candidates of every source, in
stream order, after the per-shard rules.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from valley_assets.data.pool_rules import Rejected
from valley_assets.data.reading import ROW, TraceSource


def _ids_of_rows(source: TraceSource, rows: np.ndarray, batch_rows: int) -> dict[int, str]:
    """The `id` of the given rows of a source, read back through the same decoding as pass 1 (id column only)."""
    wanted = pl.Series(rows, dtype=pl.Int64)
    ids: dict[int, str] = {}
    for batch in source.batches(batch_rows, columns=["id"]):
        ids.update(batch.filter(pl.col(ROW).is_in(wanted)).select(ROW, "id").iter_rows())
    return ids


DEDUP_KEYS = ("id_key", "exact_key", "near_key")


class Deduplicator:
    """The first copy in stream order wins; sources are given to `source_kept` in stream order.

    The rule is sequential (a dropped row does not claim its keys), but a row whose id, exact key and near key are
    all unique among the candidates can neither be dropped nor cause a drop, so only the rows sharing some key
    (a few percent at most; `repeated` holds those key values, found over all candidates first) go through the
    sequential loop. Ids are compared by value (the id key only selects the suspects), read back from the sources
    for those rows alone. Memory: one source's candidates plus the keys of the suspects seen so far.
    """

    def __init__(self, repeated: dict[str, np.ndarray], batch_rows: int):
        self.repeated, self.batch_rows = repeated, batch_rows
        self.seen_ids: dict[str, str] = {}
        self.seen_exact: dict[int, str] = {}
        self.seen_near: dict[int, str] = {}

    def source_kept(self, source: TraceSource, candidates: dict[str, np.ndarray]) -> tuple[np.ndarray, list[Rejected]]:
        """The kept mask over this source's candidates, and its dropped rows (row order)."""
        kept = np.ones(len(candidates["rows"]), dtype=np.bool_)
        shares = np.zeros(len(kept), dtype=np.bool_)
        for key in DEDUP_KEYS:
            shares |= np.isin(candidates[key], self.repeated[key])
        local = np.flatnonzero(shares)
        dropped: list[Rejected] = []
        if not len(local):
            return kept, dropped
        rows = candidates["rows"][local]
        ids = _ids_of_rows(source, rows, self.batch_rows)
        for k, row, exact_key, near_key in zip(local.tolist(), rows.tolist(), candidates["exact_key"][local].tolist(),
                                               candidates["near_key"][local].tolist(), strict=True):
            row_id = ids[row]
            if row_id in self.seen_ids:
                reason, detail = "duplicate_id", f"id already used by row {self.seen_ids[row_id]}"
            elif exact_key in self.seen_exact:
                reason, detail = "exact_duplicate", f"same r1_generation as id {self.seen_exact[exact_key]}"
            elif near_key in self.seen_near:
                reason, detail = "near_duplicate", f"normalised r1_generation equals id {self.seen_near[near_key]}"
            else:
                self.seen_ids[row_id] = f"{source.name}:{row}"
                self.seen_exact[exact_key] = row_id
                self.seen_near[near_key] = row_id
                continue
            kept[k] = False
            dropped.append((row, row_id, "filtered", reason, detail))
        return kept, dropped
