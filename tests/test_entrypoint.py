"""The one entrypoint contract (valley_assets.entrypoint), on a toy params model; sft and generation use the same."""

import json

import pytest
from pydantic import Field

from valley_assets.entrypoint import EntrypointParams, EntrypointSession, ParamsError, pipes_metadata, run_entrypoint


class ToyParams(EntrypointParams):
    name: str
    n: int = Field(default=1, ge=1)


def _work(params: ToyParams, session: EntrypointSession) -> dict:
    session.log(f"working on {params.name}")
    return {"name": params.name, "twice": 2 * params.n, "parts": [1, 2], "by": {"a": 1}}


def test_standalone_reads_the_params_file_and_prints_one_result_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DAGSTER_PIPES_CONTEXT", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    (tmp_path / "p.json").write_text(json.dumps({"name": "x", "n": 3}))
    assert run_entrypoint("toy", None, ToyParams, _work, ["--params", str(tmp_path / "p.json")]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line) == {"valley_result": {"name": "x", "twice": 6, "parts": [1, 2], "by": {"a": 1}}}


def test_bad_params_fail_before_any_work_naming_the_field(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_PIPES_CONTEXT", raising=False)
    (tmp_path / "p.json").write_text(json.dumps({"name": "x", "n": 0, "extra": 1}))
    with pytest.raises(ParamsError, match=r"invalid ToyParams: n: Input should be greater than or equal to 1; "
                                          r"extra: Extra inputs are not permitted"):
        run_entrypoint("toy", None, ToyParams, lambda p, s: pytest.fail("ran with bad params"),
                       ["--params", str(tmp_path / "p.json")])
    with pytest.raises(SystemExit, match="no --params file given; run `python -m toy --params params.json`"):
        run_entrypoint("toy", None, ToyParams, _work, [])


class _FakePipes:
    def __init__(self, is_asset_step: bool):
        self.is_asset_step = is_asset_step
        self.sent: list = []
        self.log = self

    def info(self, message):
        self.sent.append(("log", message))

    def report_asset_materialization(self, metadata):
        self.sent.append(("materialization", metadata))

    def report_custom_message(self, payload):
        self.sent.append(("custom", payload))


def test_over_pipes_rank0_reports_once_and_other_ranks_stay_silent(monkeypatch):
    summary = {"n": 1, "curve": [{"step": 1}]}
    monkeypatch.setenv("RANK", "0")
    asset, op = _FakePipes(True), _FakePipes(False)
    EntrypointSession({}, pipes=asset).report(summary)
    EntrypointSession({}, pipes=op).report(summary)
    assert asset.sent == [("materialization", pipes_metadata(summary))]
    assert pipes_metadata(summary) == {"n": 1, "curve": {"raw_value": [{"step": 1}], "type": "json"}}
    assert op.sent == [("custom", summary)]
    monkeypatch.setenv("RANK", "1")
    silent = _FakePipes(True)
    session = EntrypointSession({}, pipes=silent)
    session.log("x")
    session.report(summary)
    assert silent.sent == [] and session.reported is None
