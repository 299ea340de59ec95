"""Where a student's weights live: the base model and each checkpoint, resolved to something `from_pretrained` takes.

A checkpoint partition writes `checkpoint.json` (`{"model": <dir, URL or hub id>, ...}`) when it is done; readers go
through `checkpoint_model_ref`, so the base model (`0`) and trained checkpoints are used the same way.
"""

from __future__ import annotations

from valley_assets.config import StudyConfig
from valley_assets.storage import StudyStorage

DEMO_PREFIX = "demo:"


def base_model_ref(cfg: StudyConfig, storage: StudyStorage, student: str) -> str:
    """The demo's tiny model is built into storage by `student_base_model`; real students are hub ids or folders."""
    spec = cfg.student(student)
    if spec.model.startswith(DEMO_PREFIX):
        return storage.uri("models", student, "base")
    return spec.model


def checkpoint_manifest_parts(student: str, data_size: str, arm: str = "main") -> tuple[str, ...]:
    if arm == "main":
        return ("checkpoints", student, data_size, "checkpoint.json")
    return ("ablation", arm, "checkpoints", student, "checkpoint.json")


def checkpoint_model_ref(storage: StudyStorage, student: str, data_size: str, arm: str = "main") -> str:
    parts = checkpoint_manifest_parts(student, data_size, arm)
    if not storage.exists(*parts):
        what = f"sft_checkpoint[{data_size}|{student}]" if arm == "main" else f"ablation_checkpoint[{arm}|{student}]"
        raise FileNotFoundError(f"{storage.uri(*parts)} is missing: materialize {what} first")
    return storage.read_json(*parts)["model"]
