"""Small helpers shared by the stage modules: metadata shaping and problem-record I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import dagster as dg

from valley_assets.config import StudyConfig
from valley_assets.storage import StudyStorage

STAGE_GROUPS = {
    "data": "data",
    "teacher": "teacher",
    "training": "training",
    "evaluation": "evaluation",
    "analysis": "analysis",
}


def storage_for(cfg: StudyConfig) -> StudyStorage:
    return StudyStorage(cfg.resolved_storage_root())


def mix(values: Iterable[str]) -> dict[str, int]:
    """A count per value, sorted by key, for difficulty/source mixes in metadata."""
    return dict(sorted(Counter(str(v) for v in values).items()))


def md_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "_(no rows)_"
    columns = columns or list(rows[0])
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |")
    return "\n".join(out)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "" if v is None else str(v)


def json_meta(obj) -> dg.MetadataValue:
    return dg.MetadataValue.json(obj)
