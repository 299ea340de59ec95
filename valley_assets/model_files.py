"""A model reference (hub id, local folder, or a folder on an object store) made into something `from_pretrained`
and vLLM can open, on the machine that runs the work.

Worker side: the SFT entrypoint, the generation backends and the pool's token counters use it in pods and worker
processes, so it imports nothing of the study config or Dagster (`valley_assets.models` is the asset side: which
reference a student or checkpoint partition stands for).
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache

from valley_assets.training import checkpoints as ckpt


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
    if "://" not in ref or not ckpt.is_remote(ref):
        return ref.removeprefix("file://")
    from valley_assets.storage import cache_dir  # polars and universal-pathlib load only for a remote model

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
