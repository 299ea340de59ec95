"""The analysis assets on scores tables as the scoring assets write them: `valley_report`, downstream of
`valley_curve` and `ablation_report`, is the one writer of the shareable HTML report, with the curve, the ablation
table and the checkpoints' provenance, self-contained (both upstream assets used to rewrite it, last one winning)."""

from __future__ import annotations

import re

import dagster as dg
import polars as pl
import pytest
from analysis_fixtures import exact_rows

from valley_assets.analysis import external_references, write_manifest
from valley_assets.config import PROFILES_DIR, load_study_config
from valley_assets.defs import analysis as analysis_defs
from valley_assets.defs.common import storage_for
from valley_assets.resources import StudyLayoutResource
from valley_assets.science.metrics import score_rows

STUDENT = "tiny-qwen2"
RELEASE = "release_v1"


def _write_scores(storage, rows: list[dict], tag: str, scored_at: str) -> None:
    rows = [{**r, "prompt_id": "lcb-reasoning", "scored_at": scored_at} for r in rows]
    for r in rows:
        r.pop("rows", None)
    storage.write_parquet(pl.DataFrame(rows), "scores", "per_problem", f"{tag}.parquet")
    by_checkpoint: dict[tuple, list[dict]] = {}
    for r in rows:
        by_checkpoint.setdefault((r["data_size"], r["arm"]), []).append(r)
    runs = []
    for (data_size, arm), group in by_checkpoint.items():
        identity = {"student": STUDENT, "data_size": data_size, "arm": arm, "release": RELEASE}
        runs += [{**identity, **row, "scored_at": scored_at} for row in score_rows(group)]
    storage.write_parquet(pl.DataFrame(runs), "scores", "runs", f"{tag}.parquet")


@pytest.fixture
def study(tmp_path):
    cfg = load_study_config(PROFILES_DIR / "demo.yaml", overrides={"storage_root": str(tmp_path / "store"),
                                                                    "analysis": {"bootstrap_samples": 40}})
    storage = storage_for(cfg)
    main = exact_rows(STUDENT, {"0": 0.3, "1k": 0.1, "10k": 0.4}, n_problems=30, n=10, release=RELEASE, rows=None)
    arms = []
    for arm, rate in {"easy": 0.5, "hard": 0.2, "correct": 0.4, "incorrect": 0.3}.items():
        arms += exact_rows(STUDENT, {"1k": rate}, n_problems=30, n=10, arm=arm, release=RELEASE, rows=None)
    _write_scores(storage, main, "main", "2025-01-01T00:00:00+0000")
    _write_scores(storage, arms, "arms", "2025-01-01T00:00:00+0000")
    # one checkpoint with a provenance manifest, the others without (they are listed as such)
    write_manifest(storage.uri("checkpoints", STUDENT, "1k"), {
        "git": {"revision": "f" * 40, "dirty": False}, "wall_time_s": 12.0, "gpu_hours": 0.0, "seeds": {"data": 0},
        "packages": {"torch": "2.13.0"}, "hyperparameters": {"recipe": {"name": "demo-tiny"}},
        "data_files": [{"path": "/x/subsets/1k.parquet", "sha256": "ab" * 32, "bytes": 3}]})
    return cfg, storage


def _materialize(cfg, name: str) -> dict:
    result = dg.materialize(analysis_defs.build(cfg).assets, selection=[name], instance=dg.DagsterInstance.ephemeral(),
                            resources={"layout": StudyLayoutResource(root=cfg.resolved_storage_root())})
    assert result.success
    return result.asset_materializations_for_node(name)[0].metadata


def _sections(page: str) -> list[str]:
    return re.findall(r"<section><h2>(.*?)</h2>", page)


def test_only_the_report_asset_writes_the_complete_report(study):
    cfg, storage = study
    for upstream in ("valley_curve", "ablation_report"):
        assert "report_path" not in _materialize(cfg, upstream)
        assert not storage.exists("reports", "valley_report.html"), upstream
    meta = _materialize(cfg, "valley_report")
    path = storage.local_path("reports", "valley_report.html")
    assert meta["report_path"].value == str(path)
    page = path.read_text()
    assert _sections(page) == ["Valley curve", "Valley location, depth and slope", "Points",
                               "Completion and think-tag rates", "By difficulty", "Ablation",
                               "Scores table (latest per key)", "Provenance"]
    ablation = page.split("<h2>Ablation</h2>", 1)[1].split("</section>", 1)[0]
    # pass@1 of each arm, then the paired delta (the fixtures' rates are exact)
    assert "<td>easy - hard</td><td>pass@1</td><td>0.500</td><td>0.200</td><td>0.300</td>" in ablation
    assert "<td>correct - incorrect</td><td>pass@1</td><td>0.400</td><td>0.300</td><td>0.100</td>" in ablation
    provenance = page.split("<h2>Provenance</h2>", 1)[1]
    assert "f" * 40 in provenance and "abababababababab" in provenance and "demo-tiny" in provenance
    assert f"{STUDENT}/0&quot;: &quot;no provenance.json" in provenance
    assert f"{STUDENT}/easy (from 1k)" in provenance
    assert external_references(page) == []
    assert page.count('<img alt="') == 3 and page.count('src="data:image/png;base64,') == 3


def test_report_waits_for_curve_scores(tmp_path):
    cfg = load_study_config(PROFILES_DIR / "demo.yaml", overrides={"storage_root": str(tmp_path / "store"),
                                                                    "analysis": {"bootstrap_samples": 20}})
    storage = storage_for(cfg)
    arms = []
    for arm in ("easy", "hard"):
        arms += exact_rows(STUDENT, {"1k": 0.2}, n_problems=10, n=10, arm=arm, release=RELEASE, rows=None)
    _write_scores(storage, arms, "arms", "2025-01-01T00:00:00+0000")
    meta = _materialize(cfg, "ablation_report")  # the ablation alone: its table, no report without a curve
    assert "easy" in meta["table"].value and "report_path" not in meta
    assert not storage.exists("reports", "valley_report.html")
    for name in ("valley_curve", "valley_report"):
        with pytest.raises(Exception, match="materialize lcb_scores"):
            _materialize(cfg, name)
    assert not storage.exists("reports", "valley_report.html")


def test_the_report_depends_on_the_curve_and_the_ablation_report(tmp_path):
    cfg = load_study_config(PROFILES_DIR / "demo.yaml", overrides={"storage_root": str(tmp_path)})
    graph = dg.Definitions(assets=analysis_defs.build(cfg).assets, resources={
        "layout": StudyLayoutResource(root=str(tmp_path))}).get_repository_def().asset_graph
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey("valley_report")).parent_keys}
    assert parents == {"valley_curve", "ablation_report"}


def test_curve_and_report_carry_pass_at_1_per_date_window(tmp_path):
    """The profile's windows (a fixed one and "after each student's cutoff") on the curve and in the report, with
    bootstrap intervals: the later half of the problems is dated after both, and every one of them solved."""
    students = [{"name": STUDENT, "model": "demo:tiny-qwen2", "recipe": "demo-tiny", "cutoff": "2024-12-31"}]
    cfg = load_study_config(PROFILES_DIR / "demo.yaml", overrides={
        "storage_root": str(tmp_path / "store"), "students": students, "analysis": {"bootstrap_samples": 40},
        "benchmark": {"date_windows": [{"start": "2024-10-01"}, {"after_student_cutoff": True}]}})
    storage = storage_for(cfg)
    main = exact_rows(STUDENT, {"0": 0.3, "1k": 0.1}, n_problems=20, n=10, release=RELEASE, rows=None)
    for row in main:
        if int(row["question_id"][1:]) >= 12:  # 8 problems from February 2025, all solved
            row |= {"contest_date": "2025-02-01", "c": row["n"]}
    _write_scores(storage, main, "main", "2025-03-01T00:00:00+0000")

    meta = _materialize(cfg, "valley_curve")
    windows = storage.read_json("reports", "valley_curve.json")["windows"]
    assert {(w["window"], w["data_size"]) for w in windows} == {
        (label, size) for label in ("2024-10-01..", "after_cutoff") for size in ("0", "1k")}
    for w in windows:
        assert (w["pass@1"], w["problems"], tuple(w["pass@1 CI"])) == (1.0, 8, (1.0, 1.0)), w
        assert w["from"] in ("2024-10-01", "2025-01-01")  # the day after the student's cutoff
    assert "after_cutoff" in meta["pass@1_by_window"].value
    overall = {p["data_size"]: p["pass@1"] for p in storage.read_json("reports", "valley_curve.json")["points"]}
    assert overall["1k"] < 1.0  # the windows are not the whole release

    _materialize(cfg, "valley_report")
    page = storage.local_path("reports", "valley_report.html").read_text()
    assert "pass@1 per contest-date window" in _sections(page)
    section = page.split("<h2>pass@1 per contest-date window</h2>", 1)[1].split("</section>", 1)[0]
    assert section.count("<td>after_cutoff</td>") == 2 and section.count("<td>2024-10-01..</td>") == 2
