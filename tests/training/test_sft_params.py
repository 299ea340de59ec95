"""The SFT entrypoint's parameters (`SFTParams`, the contract of `valley_assets.entrypoint`): built by the assets with
the resolved recipe, parsed by the pod; a bad field fails before any work, named."""

import json

import pytest

from valley_assets.entrypoint import ParamsError, parse_params
from valley_assets.training.params import SFTParams
from valley_assets.training.recipe import load_recipe

FILES = {"train_file": "s3://b/train.jsonl", "base_model": "Qwen/Qwen2.5-7B-Instruct", "output_dir": "s3://b/run/"}


def test_the_shipped_recipe_is_taken_as_shipped():
    # what an asset ships: every field of the resolved recipe; the pod does not read the recipe file again
    shipped = load_recipe("qwen2.5-7b-instruct").model_dump(mode="json") | {"learning_rate": 3e-5, "max_length": 4096}
    params = parse_params(SFTParams, json.loads(json.dumps({"recipe": shipped, **FILES})))
    assert params.recipe.model_dump(mode="json") == shipped
    assert params.output_dir == "s3://b/run" and params.resume and params.report_to == ["none"]
    # and the asset side builds the same thing it ships
    assert SFTParams(recipe=load_recipe("qwen2.5-7b-instruct"), **FILES).model_dump(mode="json")["recipe"] == \
        load_recipe("qwen2.5-7b-instruct").model_dump(mode="json")


def test_by_hand_a_bundled_recipe_or_one_derived_from_it():
    assert parse_params(SFTParams, {"recipe": "demo-tiny", **FILES}).recipe == load_recipe("demo-tiny")
    derived = parse_params(SFTParams, {"recipe": {"base": "demo-tiny", "max_steps": 4}, **FILES}).recipe
    assert derived == load_recipe("demo-tiny", {"max_steps": 4})


@pytest.mark.parametrize(("raw", "field"), [
    ({"recipe": "demo-tiny", "base_model": "m", "output_dir": "o"}, "train_file: Field required"),
    ({"recipe": "demo-tiny", **FILES, "recipe_overrides": {"max_length": 10}}, "recipe_overrides: Extra inputs"),
    ({"recipe": "demo-tiny", **FILES, "train_fiel": "x"}, "train_fiel: Extra inputs"),
    ({"recipe": load_recipe("demo-tiny").model_dump() | {"learning_rate": -1}, **FILES}, "recipe.learning_rate: "),
    ({"recipe": load_recipe("demo-tiny").model_dump() | {"max_lenght": 9}, **FILES}, "recipe.max_lenght: Extra"),
    ({"recipe": "no-such-recipe", **FILES}, "recipe: Value error, unknown recipe 'no-such-recipe'"),
    ({"recipe": "demo-tiny", **FILES, "resume_from_checkpoint": "sometimes"}, "resume_from_checkpoint: "),
    ({"recipe": "demo-tiny", **FILES, "report_to": ["neptun"]}, "report_to: Value error, unknown trackers"),
])
def test_bad_params_fail_naming_the_field(raw, field):
    with pytest.raises(ParamsError) as info:
        parse_params(SFTParams, raw)
    assert field in str(info.value) and "invalid SFTParams" in str(info.value)
