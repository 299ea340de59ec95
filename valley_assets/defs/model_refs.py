"""Which weights a student or checkpoint has, as a reference `from_pretrained` takes (after `models.local_model_dir`).

A checkpoint partition writes `checkpoint.json` (`{"model": <dir, URL or hub id>, ...}`, `StudyLayout.
checkpoint_manifest`) when it is done; readers go through `checkpoint_model_ref`, so the base model (`0`) and trained
checkpoints are used the same way.
"""

from __future__ import annotations

from valley_assets.config import StudentSpec
from valley_assets.layout import MAIN_ARM, StudyLayout

DEMO_PREFIX = "demo:"


def is_demo_model(spec: StudentSpec) -> bool:
    return spec.model.startswith(DEMO_PREFIX)


def base_model_ref(spec: StudentSpec, layout: StudyLayout) -> str:
    """The demo's tiny model is built into storage by `student_base_model`; real students are hub ids or folders."""
    return layout.base_model(spec.name).uri if is_demo_model(spec) else spec.model


def checkpoint_model_ref(layout: StudyLayout, student: str, data_size: str, arm: str = MAIN_ARM) -> str:
    manifest = layout.checkpoint_manifest(student, data_size, arm)
    if not manifest.exists():
        what = f"sft_checkpoint[{data_size}|{student}]" if arm == MAIN_ARM else f"ablation_checkpoint[{arm}|{student}]"
        raise FileNotFoundError(f"{manifest.uri} is missing: materialize {what} first")
    return manifest.read_json()["model"]
