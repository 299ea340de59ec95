"""`SFTParams.finished_run`: the one check, shared by the training assets (before launching a Job) and the SFT
entrypoint, that `output_dir` already holds the model trained from exactly these inputs."""

import json

from valley_assets.training import checkpoints as ckpt
from valley_assets.training.params import SFTParams


def _params(tmp_path, **kw) -> SFTParams:
    train = tmp_path / "train.jsonl"
    if not train.exists():
        train.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    return SFTParams(**{"recipe": "demo-tiny", "train_file": str(train), "base_model": "base",
                        "output_dir": str(tmp_path / "run"), **kw})


def _publish(params: SFTParams, tmp_path, summary: dict) -> None:
    ckpt.claim_output_dir(params.output_dir, params.run_fingerprint())
    model = tmp_path / "staged"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    ckpt.publish_final(str(model), params.output_dir, summary)


def test_a_finished_run_of_the_same_inputs_is_found(tmp_path):
    params = _params(tmp_path)
    assert params.finished_run() is None  # nothing there yet
    _publish(params, tmp_path, {"steps": 3, "final_loss": 1.5})
    assert params.finished_run() == {"steps": 3, "final_loss": 1.5}
    # the same inputs, parsed again from JSON as the pod and the asset each do
    assert SFTParams.model_validate(json.loads(params.model_dump_json())).finished_run() == {"steps": 3,
                                                                                            "final_loss": 1.5}


def test_changed_inputs_are_not_a_finished_run(tmp_path):
    params = _params(tmp_path)
    _publish(params, tmp_path, {"steps": 3})
    assert _params(tmp_path, base_model="other-base").finished_run() is None
    recipe = params.recipe.model_dump() | {"seed": params.recipe.seed + 1}
    assert _params(tmp_path, recipe=recipe).finished_run() is None
    (tmp_path / "train.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "new"}]}) + "\n")
    assert _params(tmp_path).finished_run() is None


def test_an_unfinished_run_is_not_a_finished_run(tmp_path):
    params = _params(tmp_path)
    ckpt.claim_output_dir(params.output_dir, params.run_fingerprint())  # claimed, training never published
    assert params.finished_run() is None
