"""Automation: jobs for the stages users launch together, and the sensor that re-evaluates every checkpoint when
LiveCodeBench publishes a new release (checked daily in production)."""

from __future__ import annotations

import dagster as dg

from valley_assets import partitions as P
from valley_assets.config import StudyConfig
from valley_assets.defs.common import layout_for
from valley_assets.generation.sensor import build_release_sensor, release_run_config


def benchmark_source(cfg: StudyConfig) -> str:
    """Where new releases appear: the hub dataset, or the demo's own LCB-style folder."""
    if cfg.benchmark.source == "demo":
        return layout_for(cfg).lcb_source().uri
    return cfg.benchmark.lcb


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
        job=evaluate_checkpoints,
        problems_job=fetch_release,
        problems_asset="lcb_problems",
        checkpoint_assets=["sft_checkpoint"],
        evaluated_assets=["lcb_generations", "lcb_scores"],  # both record the release they ran on
        run_config_for_release=lambda release: release_run_config(["lcb_generations", "lcb_scores"], release),
        backfill_existing=cfg.automation.backfill_existing_releases,
        minimum_interval_seconds=cfg.automation.release_check_interval_s,
        default_status=(dg.DefaultSensorStatus.RUNNING if cfg.automation.release_sensor_running
                        else dg.DefaultSensorStatus.STOPPED),
    )
    return dg.Definitions(jobs=[evaluate_checkpoints, train_and_evaluate, fetch_release], sensors=[release_sensor])
