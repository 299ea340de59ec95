"""The Dagster code location: every stage's assets, checks, jobs and sensors, with the active profile's resources.

`workspace.yaml` loads `defs` from here. The profile comes from `VALLEY_PROFILE` / `VALLEY_CONFIG` (default: the
embedded demo); see valley_assets/config.py.
"""

from __future__ import annotations

import dagster as dg

from valley_assets.config import StudyConfig, load_study_config
from valley_assets.defs import analysis, automation, data, evaluation, partition_keys, teacher, training
from valley_assets.resources import build_resources

STAGES = (data, teacher, training, evaluation, analysis, automation, partition_keys)


def build_definitions(cfg: StudyConfig | None = None) -> dg.Definitions:
    cfg = cfg or load_study_config()
    stage_defs = [stage.build(cfg) for stage in STAGES]
    return dg.Definitions.merge(*stage_defs, dg.Definitions(resources=build_resources(cfg)))


defs = build_definitions()
