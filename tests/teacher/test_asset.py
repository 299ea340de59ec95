"""The `extra_teacher_traces` asset in the real code location: profile config -> resource -> endpoint -> shards the
pool's input list includes; and a no-op when no extra teacher is configured (the demo)."""

from __future__ import annotations

import dagster as dg
import polars as pl

from valley_assets.config import PROFILES_DIR, load_study_config
from valley_assets.data.schema import TRACE_SCHEMA
from valley_assets.definitions import build_definitions
from valley_assets.defs.common import layout_for
from valley_assets.defs.teacher import extra_teacher_trace_uris

SMALL = {"data": {"demo": {"n_train_problems": 6, "n_eval_problems": 2}}, "grading": {"backend": "process"}}


def _materialize(cfg, keys):
    defs = build_definitions(cfg)
    graph_assets = [a for a in defs.assets if any(k.to_user_string() in keys for k in a.keys)]
    return dg.materialize(graph_assets, resources=defs.resources, instance=dg.DagsterInstance.ephemeral(),
                          raise_on_error=True)


def test_asset_writes_grader_labelled_shards_the_pool_reads(chat_server, demo_world, tmp_path, monkeypatch):
    monkeypatch.setenv("KAT_KEY", "sk-local")
    teacher = {"name": "kat-v1-40b", "backend": "openai", "model": "Kwaipilot/KAT-V1-40B", "n_samples": 1,
               "chunk_size": 4, "endpoint": {"base_url": chat_server.base_url, "api_key_env": "KAT_KEY",
                                             "concurrency": 2, "backoff_s": 0.0}}
    cfg = load_study_config(PROFILES_DIR / "demo.yaml", overrides={
        **SMALL, "storage_root": str(tmp_path / "store"), "teacher": {"extra": [teacher]}})
    layout = layout_for(cfg)
    assert extra_teacher_trace_uris(cfg.teacher.extra, layout) == []  # nothing yet: the pool reads only teacher_traces

    result = _materialize(cfg, {"training_problems", "extra_teacher_traces"})
    meta = result.asset_materializations_for_node("extra_teacher_traces")[0].metadata
    assert meta["n_teachers"].value == 1 and meta["n_traces"].value == 6 and meta["complete"].value is True
    assert chat_server.hits == 6 and all(h["Authorization"] == "Bearer sk-local" for h in chat_server.headers)

    [uri] = extra_teacher_trace_uris(cfg.teacher.extra, layout)
    assert uri.endswith("traces/extra_teacher_traces/kat-v1-40b")
    frame = pl.read_parquet(f"{uri}/*.parquet")
    assert frame.schema == pl.Schema(TRACE_SCHEMA) and frame.height == 6
    problems, demo_traces = demo_world
    expected = {t["question_id"]: t["judgement"] for t in demo_traces}
    judged = dict(zip(frame["question_id"], frame["judgement"], strict=True))
    assert judged == {q: expected[q] for q in judged}
    assert (tmp_path / "store" / "teacher_work" / "kat-v1-40b" / "samples.jsonl").exists()

    # rematerializing resumes: nothing is asked of the endpoint again
    _materialize(cfg, {"extra_teacher_traces"})
    assert chat_server.hits == 6


def test_demo_profile_has_no_extra_teacher_and_the_asset_is_a_no_op(tmp_path):
    cfg = load_study_config(PROFILES_DIR / "demo.yaml", overrides={**SMALL, "storage_root": str(tmp_path / "s")})
    result = _materialize(cfg, {"extra_teacher_traces"})
    meta = result.asset_materializations_for_node("extra_teacher_traces")[0].metadata
    assert meta["n_teachers"].value == 0
    assert extra_teacher_trace_uris(cfg.teacher.extra, layout_for(cfg)) == []


def test_distill_pool_depends_on_both_teacher_assets(tmp_path):
    cfg = load_study_config(PROFILES_DIR / "demo.yaml", overrides={"storage_root": str(tmp_path)})
    graph = build_definitions(cfg).get_repository_def().asset_graph
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey("distill_pool")).parent_keys}
    assert {"teacher_traces", "extra_teacher_traces"} <= parents
