"""Where a student's weights live: the base model and each checkpoint, resolved to something `from_pretrained` takes.

A checkpoint partition writes `checkpoint.json` (`{"model": <dir, URL or hub id>, ...}`) when it is done; readers go
through `checkpoint_model_ref`, so the base model (`0`) and trained checkpoints are used the same way.
"""

from __future__ import annotations

from functools import lru_cache

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


@lru_cache(maxsize=8)
def load_tokenizer(ref: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(local_model_dir(ref))


def local_model_dir(ref: str) -> str:
    """What `from_pretrained` (and vLLM) can open: hub ids and local folders as they are; a model on an object store
    copied once into `$VALLEY_CACHE/models/` and reused. Two kinds live there: checkpoints a training run published
    (`s3://…/checkpoints/<student>/<size>/run`, taken only once their `_COMPLETE` marker is written), and models an
    operator mirrored from the hub for a cluster without hub access (`s3://…/models/Qwen2.5-7B-Instruct`: a plain
    model folder, taken when it holds a `config.json`). The copy lands in a sibling folder and is renamed into place
    when whole, so a killed download is never taken for a model."""
    import hashlib
    import os

    from valley_assets.storage import cache_dir
    from valley_assets.training import checkpoints as ckpt

    if "://" not in ref or not ckpt.is_remote(ref):
        return ref.removeprefix("file://")
    local = cache_dir("models", hashlib.sha256(ref.rstrip("/").encode()).hexdigest()[:16])
    if local.is_dir():
        return str(local)
    partial = local.with_name(local.name + ".partial")
    if ckpt.read_run_fingerprint(ref) is not None or ckpt.is_complete_checkpoint(ref):
        ckpt.download_checkpoint(ref, str(partial))  # FileNotFoundError while the run has not published it whole
    else:
        ckpt.download_model_folder(ref, str(partial))  # FileNotFoundError without a config.json
    os.replace(partial, local)
    return str(local)
