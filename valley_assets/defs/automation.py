"""Automation: what the daemon does by itself (README "What happens by itself").

- `lcb_release_sensor` lists the benchmark source (every tick, or on the profile's `automation.release_check_cron`),
  registers each new release and fetches its problems.
- `valley_automation` evaluates the automation conditions of the evaluation and analysis assets
  (`defs.common.on_new_inputs` / `on_new_scores`): a new release's problems, or a newly trained checkpoint (main or
  ablation), make the generations and then the scores of each affected checkpoint run once, on the newest release;
  new scores refresh the curve, the ablation table and the report. Its cursor lives in the instance, so a daemon
  restart neither loses nor repeats a request.
- jobs for the stages users launch together (`evaluate_checkpoints` with a `release` in the run config re-scores an
  older release).
"""

from __future__ import annotations

import dagster as dg

from valley_assets import partitions as P
from valley_assets.config import StudyConfig
from valley_assets.defs.common import layout_for
from valley_assets.generation.sensor import build_release_sensor

AUTOMATION_SENSOR = "valley_automation"
AUTOMATED_ASSETS = ("lcb_generations", "lcb_scores", "ablation_generations", "ablation_scores",
                    "valley_curve", "ablation_report", "valley_report")


def benchmark_source(cfg: StudyConfig) -> str:
    """Where new releases appear: the hub dataset, or the demo's own LCB-style folder."""
    if cfg.benchmark.source == "demo":
        return layout_for(cfg).lcb_source().uri
    return cfg.benchmark.lcb


def _status(running: bool) -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED


def build(cfg: StudyConfig) -> dg.Definitions:
    checkpoints = P.checkpoint_partitions(cfg.student_names)
    evaluate_checkpoints = dg.define_asset_job(
        "evaluate_checkpoints", selection=dg.AssetSelection.assets("lcb_generations", "lcb_scores"),
        partitions_def=checkpoints,
        description="Generate and grade LiveCodeBench samples for checkpoint partitions (release in run config).")
    train_and_evaluate = dg.define_asset_job(
        "train_and_evaluate",
        selection=dg.AssetSelection.assets("sft_checkpoint", "lcb_generations", "lcb_scores"),
        partitions_def=checkpoints,
        description="Train, generate and score checkpoint partitions: backfill a new data size (e.g. 100k) with it.")
    fetch_release = dg.define_asset_job(
        "fetch_lcb_release", selection=dg.AssetSelection.assets("lcb_problems"),
        partitions_def=P.lcb_release_partitions)
    release_sensor = build_release_sensor(
        source=benchmark_source(cfg),
        problems_job=fetch_release,
        problems_asset="lcb_problems",
        backfill_existing=cfg.automation.backfill_existing_releases,
        minimum_interval_seconds=cfg.automation.release_check_interval_s,
        cron=cfg.automation.release_check_cron,
        default_status=_status(cfg.automation.release_sensor_running),
    )
    conditions = dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.assets(*AUTOMATED_ASSETS),
        minimum_interval_seconds=cfg.automation.condition_interval_s,
        default_status=_status(cfg.automation.conditions_running),
        # One run per checkpoint partition, tagged with it, as a UI launch would be (not one backfill per tick):
        # each is queued on the GPU pool on its own and shows up under the partition's runs.
        emit_backfills=False,
        # Evaluated where the code is: the conditions use `defs.common.UpdatedWithRootTarget`, which the daemon
        # (which has no user code) cannot run. The cursor still lives in the instance.
        use_user_code_server=True,
        description="New checkpoints and new releases get generations and scores on the newest release, once; new "
                    "scores refresh the analysis (the assets' automation conditions).",
    )
    return dg.Definitions(jobs=[evaluate_checkpoints, train_and_evaluate, fetch_release],
                          sensors=[release_sensor, conditions])
