"""Small helpers shared by the stage modules: the layout of a config, which release a step evaluates, metadata."""

from __future__ import annotations

import hashlib
import json
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

# Bump when the code of a training or evaluation step changes what it produces (recipe handling, prompts, grading
# rules): every `config_version` changes, and the UI shows those assets' materializations as stale.
ASSET_CODE_VERSION = "j1"


class UpdatedWithRootTarget(dg.AutomationCondition):
    """Dagster's `executed_with_root_target()`, per partition: true for an input partition whose latest
    materialization came from a run that also targeted the asset being evaluated (a generations+scores run, a
    train-and-evaluate backfill), so that run's own update does not ask for the asset a second time.

    Why not the built-in: in dagster 1.13 it looks up the run of the input *asset's* latest materialization, whatever
    its partition, and calls every other partition "not executed with the root". Two checkpoints evaluated by
    concurrent runs: the first to finish had its scores requested again (tests/automation/test_conditions.py,
    seen under the daemon). Evaluated on the user code server (`use_user_code_server` on `valley_automation`), on
    the partitions newly updated this tick only (it follows `newly_updated()` in an `&`).
    """

    @property
    def name(self) -> str:
        return "updated_with_root_target"

    @property
    def description(self) -> str:
        return "latest materialization of this partition was in a run that targeted the evaluated asset"

    @property
    def requires_cursor(self) -> bool:
        return False

    def evaluate(self, context):
        root, key, instance = context.root_context.key, context.key, context.asset_graph_view.instance
        subset = context.candidate_subset

        def in_run_with_root(partition: str | None) -> bool:
            if key == root:  # a self-dependency: another partition of the same asset, never "this run"
                return False
            latest = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None),
                limit=1).records
            if not latest or not latest[0].run_id:
                return False
            run = instance.get_run_by_id(latest[0].run_id)
            return bool(run and root in (run.asset_selection or set()))

        if subset.is_partitioned:
            keys = {pk for pk in subset.expensively_compute_partition_keys() if in_run_with_root(pk)}
            true_subset = subset.compute_intersection_with_partition_keys(keys)
        else:
            true_subset = subset if not subset.is_empty and in_run_with_root(None) else \
                context.asset_graph_view.get_empty_subset(key=key)
        return dg.AutomationResult(context, true_subset)


def on_new_inputs(*, checkpoint: str | None = None) -> dg.AutomationCondition:
    """Generations and scores (main and ablation): requested once each time an input changes, by the
    `valley_automation` sensor (defs/automation.py).

    Dagster's `eager()`, with two differences:
    - its input trigger is cleared when the asset is *requested*, not when it is *updated*. A generations run resolves its
      release when it starts; with `eager()`, a release landing while a run on the previous release is in progress
      is "handled" by that run's materialization and never evaluated. Here the trigger stays until a run is
      requested after it, so that checkpoint gets the new release once the running one ends;
    - `checkpoint` (the generations' model input) counts as changed only when its data version changes: the
      training assets give the fingerprint of what the model was trained from, so re-materializing an unchanged
      checkpoint (which trains nothing) does not re-generate and re-grade either.
    Inputs: the checkpoint and the newest `lcb_problems` partition (a new release's problems written), for
    generations; the generations, for scores. A partition waits while an input is missing (an untrained
    checkpoint) or in progress.
    """
    requested = (dg.AutomationCondition.newly_requested()
                 | dg.AutomationCondition.initial_evaluation()).with_label("requested")
    not_by_this_run = ~UpdatedWithRootTarget()
    newly_updated = (dg.AutomationCondition.newly_updated() & not_by_this_run).with_label("newly_updated_without_root")
    updated = dg.AutomationCondition.any_deps_match(newly_updated)
    if checkpoint:
        model_changed = dg.AutomationCondition.any_deps_match(
            dg.AutomationCondition.data_version_changed() & not_by_this_run).allow(dg.AssetSelection.assets(checkpoint))
        updated = (updated.ignore(dg.AssetSelection.assets(checkpoint)) | model_changed).with_label(
            f"new problems or a changed {checkpoint}")
    # An input requested on this same tick (generations for the scores): one run does both. Not latched like the
    # updates: latched, it outlived the request it was part of and asked for a second scoring (seen under the daemon).
    bundled = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.will_be_requested()).with_label(
        "input requested now")
    # A new partition (a data size added) is handled once it is requested or materialized, as in `eager()`: a UI
    # backfill that materializes it must not be followed by a second run.
    handled = (requested | dg.AutomationCondition.newly_updated()).with_label("handled")
    return (
        (dg.AutomationCondition.newly_missing().since(handled) | updated.since(requested) | bundled)
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("on_new_inputs")


def config_version(*parts) -> str:
    """A `code_version` from the configuration an asset's result depends on (pydantic models or plain values) and
    ASSET_CODE_VERSION: the UI marks its materializations stale when either changes (and only then)."""
    blob = json.dumps([p.model_dump(mode="json") if hasattr(p, "model_dump") else p for p in parts], sort_keys=True,
                      default=str)
    return f"{ASSET_CODE_VERSION}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def on_new_scores(*, only: Sequence[str] = ()) -> dg.AutomationCondition:
    """The analysis (curve, ablation table, report): refreshed once after scores change, when none are in progress.
    Unlike `eager()` it does not wait for every partition of its inputs: a study whose 30k checkpoint is not
    trained yet still gets its curve refreshed with the new release's scores. `only`: the inputs whose updates count
    (the ablation table follows the ablation scores, not the main ones: a study without ablations has none)."""
    requested = (dg.AutomationCondition.newly_requested()
                 | dg.AutomationCondition.initial_evaluation()).with_label("requested")
    newly_updated = (dg.AutomationCondition.newly_updated()
                     & ~UpdatedWithRootTarget()).with_label("newly_updated_without_root")
    updated = dg.AutomationCondition.any_deps_match(newly_updated)
    bundled = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.will_be_requested())
    if only:
        updated = updated.allow(dg.AssetSelection.assets(*only))
        bundled = bundled.allow(dg.AssetSelection.assets(*only))
    return (
        (updated.since(requested) | bundled)
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("on_new_scores")


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
