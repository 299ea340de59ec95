"""Small helpers shared by the stage modules: storage and metadata shaping."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import dagster as dg

from valley_assets.config import StudyConfig
from valley_assets.storage import StudyStorage


def storage_for(cfg: StudyConfig) -> StudyStorage:
    return StudyStorage(cfg.resolved_storage_root())


def mix(values: Iterable[str]) -> dict[str, int]:
    """A count per value, sorted by key, for difficulty/source mixes in metadata."""
    return dict(sorted(Counter(str(v) for v in values).items()))


def json_meta(obj) -> dg.MetadataValue:
    return dg.MetadataValue.json(obj)
