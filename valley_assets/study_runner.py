"""Materialize the whole study graph, every partition, stage by stage, into a Dagster instance.

This is what `make demo` runs on the embedded profile. Each stage is one Dagster run per partition key, recorded in
the instance like a run launched from the UI, so `dagster dev` shows the same history afterwards. Partitions that
already have a materialization are skipped (pass `only_missing=False` to redo them), so an interrupted demo resumes
where it stopped instead of starting over.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import dagster as dg

from valley_assets import partitions as P
from valley_assets.config import StudyConfig

# Stages in dependency order; the assets of one stage share a partitions definition and run together.
STAGES: list[list[str]] = [
    ["training_problems"],
    ["lcb_problems"],
    ["teacher_traces", "extra_teacher_traces"],
    ["student_base_model"],
    ["distill_pool"],
    ["distill_subset"],
    ["ablation_subset"],
    ["sft_checkpoint", "lcb_generations", "lcb_scores"],
    ["ablation_checkpoint", "ablation_generations", "ablation_scores"],
    ["valley_curve", "ablation_report"],
    ["valley_report"],
]


def register_partitions(instance: dg.DagsterInstance, cfg: StudyConfig) -> None:
    """The profile's data sizes and releases become dynamic partitions (validated on the way in)."""
    P.add_data_sizes(instance, cfg.data_sizes)
    P.add_releases(instance, cfg.benchmark.releases)


def partition_keys(partitions_def, instance: dg.DagsterInstance) -> list[str | None]:
    if partitions_def is None:
        return [None]
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        dims = partitions_def.partitions_defs
        per_dim = [d.partitions_def.get_partition_keys(dynamic_partitions_store=instance) for d in dims]
        return [dg.MultiPartitionKey(dict(zip([d.name for d in dims], combo, strict=True)))
                for combo in itertools.product(*per_dim)]
    return list(partitions_def.get_partition_keys(dynamic_partitions_store=instance))


def run_study(defs: dg.Definitions, cfg: StudyConfig, instance: dg.DagsterInstance, *, only_missing: bool = True,
              stages: list[list[str]] | None = None, log: Callable[[str], None] = print) -> dict:
    register_partitions(instance, cfg)
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    # Checks travel with the assets (an AssetChecksDefinition is an AssetsDefinition), so selected assets run theirs.
    all_assets = [*(defs.assets or []), *(defs.asset_checks or [])]
    resources = dict(defs.resources or {})
    summary = {"runs": 0, "skipped": 0, "wall_s": 0.0}
    started = time.time()
    for stage in stages or STAGES:
        keys = [dg.AssetKey(name) for name in stage]
        partitions_def = graph.get(keys[0]).partitions_def
        for pkey in partition_keys(partitions_def, instance):
            # An unpartitioned stage downstream of work done in this pass (e.g. the curve after a new data size)
            # is stale, so it reruns; partitioned stages skip the partitions they already have.
            fresh_upstream = pkey is None and summary["runs"] > 0
            if only_missing and not fresh_upstream and _all_materialized(instance, keys, pkey):
                summary["skipped"] += 1
                continue
            label = f"{'+'.join(stage)}" + (f" [{pkey}]" if pkey is not None else "")
            t0 = time.time()
            log(f"materializing {label} ...")
            result = dg.materialize(all_assets, selection=keys, partition_key=pkey, instance=instance,
                                    resources=resources, raise_on_error=True, tags={"valley/runner": "study"})
            if not result.success:  # raise_on_error already raised; keep the guard explicit
                raise RuntimeError(f"run for {label} failed")
            summary["runs"] += 1
            log(f"  done in {time.time() - t0:.1f}s")
    summary["wall_s"] = round(time.time() - started, 1)
    return summary


def unmaterialized(defs: dg.Definitions, instance: dg.DagsterInstance) -> tuple[int, list[str]]:
    """(asset partitions that should exist, those without a materialization): every asset of the graph, every key
    of its partitions definition as the instance knows them (dynamic keys included)."""
    graph = defs.get_repository_def().asset_graph
    expected, missing = 0, []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        pdef = graph.get(key).partitions_def
        if pdef is None:
            expected += 1
            if instance.get_latest_materialization_event(key) is None:
                missing.append(key.to_user_string())
            continue
        keys = set(pdef.get_partition_keys(dynamic_partitions_store=instance))
        if not keys:
            missing.append(f"{key.to_user_string()} (no partition keys registered)")
        expected += len(keys)
        missing.extend(f"{key.to_user_string()}[{k}]" for k in sorted(keys - instance.get_materialized_partitions(key)))
    return expected, missing


def _all_materialized(instance: dg.DagsterInstance, keys: list[dg.AssetKey], pkey) -> bool:
    for key in keys:
        if pkey is None:
            if instance.get_latest_materialization_event(key) is None:
                return False
        else:
            done = instance.get_materialized_partitions(key)
            if str(pkey) not in done:
                return False
    return True
