"""The profile's `tracking.report_to` reaches the SFT entrypoint's `report_to` parameter (the entrypoint itself is
tested with TensorBoard for real in test_sft_fsdp_cpu.py); bad tracker names are refused with the field named."""

from types import SimpleNamespace

import polars as pl
import pytest

from valley_assets.config import load_study_config
from valley_assets.defs.training import run_sft
from valley_assets.layout import StudyLayout
from valley_assets.storage import StudyStorage


class ParamsOnlyLauncher:
    """Keeps the parameters of the launch; reports nothing (run_sft's own return value is not under test)."""

    def __init__(self):
        self.params = None

    def run(self, context, *, module, params, gpus=0, name, kind="training"):
        self.params = params
        return {}


def test_profile_trackers_reach_the_entrypoint(tmp_path):
    cfg = load_study_config(overrides={"storage_root": str(tmp_path), "tracking": {"report_to": ["tensorboard"]}})
    storage = StudyStorage(cfg.resolved_storage_root())
    storage.write_jsonl([{"question_id": "q1", "starter_code": ""}], "problems", "training.jsonl")
    subset = pl.DataFrame({"id": ["t1"], "question_id": ["q1"], "question": ["Print 1."],
                           "r1_generation": ["<think>x</think>\n```python\nprint(1)\n```"]})
    launcher = ParamsOnlyLauncher()
    run_sft(SimpleNamespace(), cfg=cfg, launcher=launcher, layout=StudyLayout(storage), student=cfg.student_names[0],
            data_size="1k", arm="main", subset=subset, init_model="m", run_name="sft")
    assert launcher.params["report_to"] == ["tensorboard"]


def test_demo_default_is_no_tracker_and_bad_names_are_refused():
    assert load_study_config().tracking.report_to == ["none"]
    with pytest.raises(ValueError, match="report_to"):
        load_study_config(overrides={"tracking": {"report_to": ["tensorbord"]}})
    with pytest.raises(ValueError, match="'none' alone"):
        load_study_config(overrides={"tracking": {"report_to": ["none", "wandb"]}})
