"""Small helpers shared by the stage modules: storage and metadata shaping."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import dagster as dg

from valley_assets.config import StudyConfig
from valley_assets.storage import StudyStorage

# Assets that hold accelerators (training and generation Jobs) share one Dagster concurrency pool, whose limit bounds
# how many of them run at once across runs. Without it two multi-node training Jobs can each get some of their pods
# scheduled and wait forever for the rest (seen in the rehearsal: two 2-pod Jobs on room for two pods). The run
# coordinator's tag limits cannot do this: asset tags never become run tags. Limit: dagster.yaml `concurrency: pools:`
# or `dagster instance concurrency set valley-gpu N` (k8s/README.md).
GPU_POOL = "valley-gpu"


def storage_for(cfg: StudyConfig) -> StudyStorage:
    return StudyStorage(cfg.resolved_storage_root())


def mix(values: Iterable[str]) -> dict[str, int]:
    """A count per value, sorted by key, for difficulty/source mixes in metadata."""
    return dict(sorted(Counter(str(v) for v in values).items()))


def json_meta(obj) -> dg.MetadataValue:
    return dg.MetadataValue.json(obj)
