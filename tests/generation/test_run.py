"""The generation entrypoint: standalone with --params, and under Dagster Pipes from a subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from valley_assets.entrypoint import pipes_metadata
from valley_assets.generation.run import parse_params
from valley_assets.generation.samples import read_samples

REPO = Path(__file__).resolve().parents[2]


def _write_problems(path: Path, problems: list[dict]) -> None:
    path.write_text("".join(json.dumps(p) + "\n" for p in problems))


def _params(tiny_student_dir, tmp_path, make_problems, **extra) -> dict:
    problems_path = tmp_path / "problems.jsonl"
    _write_problems(problems_path, make_problems(3))
    params = {
        "model_path": str(tiny_student_dir),
        "problems_path": str(problems_path),
        "out_path": str(tmp_path / "gen" / "samples.jsonl"),
        "backend": "transformers",
        "prompt_id": "lcb-reasoning",
        "n": 2,
        "chunk_size": 2,
        "sampling": {"temperature": 0.7, "top_p": 0.95, "max_new_tokens": 5, "seed": 1},
        "backend_options": {"batch_size": 4, "device": "cpu", "dtype": "float32"},
    }
    params.update(extra)
    return params


def test_params_validation_names_the_key():
    with pytest.raises(ValueError, match="out_path"):
        parse_params({"model_path": "m", "problems_path": "p"})
    with pytest.raises(ValueError, match="chunk_size"):
        parse_params({"model_path": "m", "problems_path": "p", "out_path": "o", "chunk_size": 0})
    with pytest.raises(ValueError, match="unknown prompt_id 'x'"):
        parse_params({"model_path": "m", "problems_path": "p", "out_path": "o", "prompt_id": "x"})
    with pytest.raises(ValueError, match="unknown sampling keys"):
        parse_params({"model_path": "m", "problems_path": "p", "out_path": "o", "sampling": {"temp": 1}})
    assert pipes_metadata({"a": 1, "b": {"stop": 2}}) == {"a": 1, "b": {"raw_value": {"stop": 2}, "type": "json"}}


def test_standalone_with_params_file(tiny_student_dir, tmp_path, make_problems):
    params = _params(tiny_student_dir, tmp_path, make_problems)
    params_file = tmp_path / "params.json"
    params_file.write_text(json.dumps(params))
    proc = subprocess.run([sys.executable, "-m", "valley_assets.generation.run", "--params", str(params_file)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    [line] = [text for text in proc.stdout.splitlines() if text.startswith('{"valley_result"')]
    summary = json.loads(line)["valley_result"]
    assert summary["complete"] and summary["n_generated"] == 6 and summary["prompt_id"] == "lcb-reasoning"
    assert len(read_samples(params["out_path"])) == 6


def test_under_dagster_pipes_reports_metadata(tiny_student_dir, tmp_path, make_problems):
    params = _params(tiny_student_dir, tmp_path, make_problems, max_chunks=1)

    @dg.asset
    def generations(context: dg.AssetExecutionContext, pipes_subprocess_client: dg.PipesSubprocessClient):
        return pipes_subprocess_client.run(
            command=[sys.executable, "-m", "valley_assets.generation.run"], context=context, extras=params,
            cwd=str(REPO),
        ).get_materialize_result()

    result = dg.materialize([generations], resources={"pipes_subprocess_client": dg.PipesSubprocessClient()})
    assert result.success
    [mat] = result.asset_materializations_for_node("generations")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["n_generated"] == 4 and meta["chunks_run"] == 1 and meta["complete"] is False
    assert sum(meta["finish_reasons"].values()) == 4 and meta["output_tokens_per_s"] > 0
    assert len(read_samples(params["out_path"])) == 4


def test_unknown_or_mistyped_fields_are_named():
    from valley_assets.entrypoint import ParamsError

    base = {"model_path": "m", "problems_path": "p", "out_path": "o"}
    with pytest.raises(ParamsError, match="n_samples: Extra inputs are not permitted"):
        parse_params({**base, "n_samples": 4})
    with pytest.raises(ParamsError, match="sampling: Value error, unknown sampling keys"):
        parse_params({**base, "sampling": {"temp": 1}})
