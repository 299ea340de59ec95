"""Small helpers shared by the stage modules: the layout of a config, which release a step evaluates, metadata."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import dagster as dg

from valley_assets.config import StudyConfig
from valley_assets.layout import StudyLayout

# Assets that hold accelerators (training and generation Jobs) share one Dagster concurrency pool, whose limit bounds
# how many of them run at once across runs. Without it two multi-node training Jobs can each get some of their pods
# scheduled and wait forever for the rest (seen in the rehearsal: two 2-pod Jobs on room for two pods). The run
# coordinator's tag limits cannot do this: asset tags never become run tags. Limit: dagster.yaml `concurrency: pools:`
# or `dagster instance concurrency set valley-gpu N` (k8s/README.md).
GPU_POOL = "valley-gpu"


def layout_for(cfg: StudyConfig) -> StudyLayout:
    """The layout the `layout` resource gives the assets (for code outside a run: sensors, tests, the CLI)."""
    return StudyLayout(cfg.resolved_storage_root())


def storage_for(cfg: StudyConfig):
    """The `StudyStorage` under that layout (tests and tools that write fixtures; assets ask the layout)."""
    return layout_for(cfg).storage


def resolve_release(requested: str, ready: Sequence[str], *, what: str) -> str:
    """The one rule for which LiveCodeBench release an evaluation step uses (generations, scores, analysis).

    A step evaluates a release its input exists for: `ready` lists those releases, oldest first, each step reading
    them from its one input (generations: the releases whose `lcb_problems` file is in storage, in the order they
    were registered; scores: the release the partition's latest generations ran on, or with a requested release, the
    releases whose samples for this checkpoint are in storage; analysis: the releases in the scores table, in scoring
    order). The run config's `release` picks one of them (an error naming the ready ones otherwise); empty means the
    newest. `what` names the input, for the error when none is ready.
    """
    from valley_assets import partitions as P

    ready = list(ready)
    if requested:
        release = P.validate_release_key(requested)
        if release not in ready:
            raise FileNotFoundError(f"release {release!r} has no {what}; releases that have: {sorted(ready)}")
        return release
    if not ready:
        raise FileNotFoundError(f"no release has {what} yet")
    return ready[-1]


def mix(values: Iterable[str]) -> dict[str, int]:
    """A count per value, sorted by key, for difficulty/source mixes in metadata."""
    return dict(sorted(Counter(str(v) for v in values).items()))


def json_meta(obj) -> dg.MetadataValue:
    return dg.MetadataValue.json(obj)
