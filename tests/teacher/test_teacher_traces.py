"""Extra-teacher traces end to end against a real local endpoint: resumable generation, grader-labelled judgements,
the OCR2 schema of the shards, untested problems, the manifest, and the pool reading the result."""

from __future__ import annotations

import json

import polars as pl
import pytest

from valley_assets.config import PROFILES_DIR, ExtraTeacherConfig, load_study_config
from valley_assets.data.pool import build_pool
from valley_assets.data.schema import TRACE_SCHEMA
from valley_assets.generation.backends import load_backend
from valley_assets.generation.openai_backend import EndpointError
from valley_assets.generation.samples import read_samples
from valley_assets.generation.teacher import (
    endpoint_generate,
    restore_think_open,
    run_teacher,
    taco_label,
    vllm_generation_params,
)
from valley_assets.grading import grade

TACO = ["EASY", "MEDIUM", "MEDIUM_HARD", "HARD", "VERY_HARD", "EASY", "HARD", "MEDIUM"]


def _spec(server, **kw) -> ExtraTeacherConfig:
    return ExtraTeacherConfig.model_validate({
        "name": "kat-v1-40b", "backend": "openai", "model": "Kwaipilot/KAT-V1-40B", "n_samples": 2, "chunk_size": 2,
        "max_new_tokens": 2048, "license": "cc-by-4.0",
        "endpoint": {"base_url": server.base_url, "concurrency": 1, "backoff_s": 0.0}, **kw})


def _grade(problems, generations, path):
    return grade(problems, generations, backend="process", workers=2, timeout_s=6.0, results_path=path)


def _with_taco(problems):
    return [{**p, "taco_difficulty": TACO[i]} for i, p in enumerate(problems)]


def _run(spec, problems, tmp_path, **kw):
    backend = load_backend("openai", spec.model, options=spec.endpoint.model_dump())
    return run_teacher(spec, problems, work_dir=tmp_path / "work", out_dir=tmp_path / "traces" / spec.name,
                       generate=endpoint_generate(spec, backend), grade=_grade, log=lambda m: None, **kw)


def test_traces_are_ocr2_rows_labelled_by_the_grader(chat_server, demo_world, tmp_path):
    problems, demo_traces = demo_world
    spec = _spec(chat_server)
    stats = _run(spec, _with_taco(problems), tmp_path)
    assert stats["complete"] and stats["n_samples"] == 2 * len(problems) == chat_server.hits
    shards = sorted((tmp_path / "traces" / spec.name).glob("*.parquet"))
    assert [s.name for s in shards] == ["kat-v1-40b-00000.parquet"]
    frame = pl.read_parquet(shards[0])
    assert frame.schema == pl.Schema(TRACE_SCHEMA)
    assert frame.height == 2 * len(problems) and frame["id"].n_unique() == frame.height
    assert set(frame["source"]) == {"kat-v1-40b"} and set(frame["license"]) == {"cc-by-4.0"}
    # The grader ran each extracted solution: the demo teacher's deliberately wrong rows come out "wrong".
    expected = {t["question_id"]: t["judgement"] for t in demo_traces}
    for row in frame.iter_rows(named=True):
        assert row["judgement"] == expected[row["question_id"]], row["question_id"]
        assert row["pass_rate"] == (1.0 if row["judgement"] == "right" else 0.0)
    assert stats["n_wrong"] == 2 * sum(j == "wrong" for j in expected.values()) > 0
    by_q = {p["question_id"]: (i, p) for i, p in enumerate(problems)}
    row = frame.row(0, named=True)
    i, p = by_q[row["question_id"]]
    assert row["question"] == p["question_content"] and row["r1_generation"] == demo_traces[i]["r1_generation"]
    assert row["solution"] in row["r1_generation"] and row["solution"].strip()
    assert (row["dataset"], row["split"], row["index"], row["difficulty"]) == ("valley-extra", "train", str(i), TACO[i])
    assert stats["finish_reasons"] == {"stop": 16} and stats["completion_tokens"] > 0


def test_resume_after_a_crash_requests_only_the_rest(chat_server, demo_world, tmp_path):
    problems, _ = demo_world
    spec = _spec(chat_server)  # 8 problems x 2 samples, 2 problems per chunk, one request per sample
    chat_server.stop_after = 6  # chunk 1 (4 requests) succeeds; chunk 2 dies after 2 of its 4
    with pytest.raises(EndpointError, match="server stopped answering"):
        _run(spec, problems, tmp_path)
    kept = read_samples(tmp_path / "work" / "samples.jsonl")
    assert len(kept) == 4  # only the finished chunk is on disk
    hits_before = chat_server.hits
    chat_server.stop_after = None
    stats = _run(spec, problems, tmp_path)
    assert chat_server.hits - hits_before == 2 * len(problems) - 4  # the rest, nothing twice
    assert stats["complete"] and stats["n_traces"] == 16
    assert stats["generation"]["n_existing"] == 4 and stats["generation"]["n_generated"] == 12
    samples = read_samples(tmp_path / "work" / "samples.jsonl")
    assert len({(s["question_id"], s["sample_idx"]) for s in samples}) == 16
    # a third run asks the endpoint nothing and writes the same shard
    hits = chat_server.hits
    again = _run(spec, problems, tmp_path)
    assert chat_server.hits == hits and again["n_traces"] == 16 and again["shards"] == stats["shards"]


def test_max_chunks_time_boxes_a_run(chat_server, demo_world, tmp_path):
    problems, _ = demo_world
    stats = _run(_spec(chat_server, max_chunks=1), problems, tmp_path)
    assert not stats["complete"] and stats["n_traces"] == 4 and chat_server.hits == 4


def test_reasoning_content_teacher_gives_the_same_traces(chat_server, demo_world, tmp_path):
    problems, demo_traces = demo_world
    chat_server.reasoning_field = True
    _run(_spec(chat_server, n_samples=1), problems[:3], tmp_path)
    frame = pl.read_parquet(tmp_path / "traces" / "kat-v1-40b" / "kat-v1-40b-00000.parquet")
    for row, original in zip(frame.iter_rows(named=True), demo_traces[:3], strict=True):
        assert row["r1_generation"].startswith("<think>\n") and "</think>\n\n" in row["r1_generation"]
        assert row["solution"] == original["solution"] and row["judgement"] == original["judgement"]


def test_untested_problems_are_skipped_or_kept_unlabelled(chat_server, demo_world, tmp_path):
    problems, _ = demo_world
    untested = {**problems[0], "question_id": "no-tests", "public_test_cases": "[]", "private_test_cases": "[]"}
    mixed = [untested, *problems[1:3]]
    stats = _run(_spec(chat_server, n_samples=1), mixed, tmp_path / "skip")
    assert stats["n_problems_without_tests"] == 1 and stats["n_traces"] == 2 and chat_server.hits == 2
    assert stats["unlabelled_shards"] == []

    stats = _run(_spec(chat_server, n_samples=1, untested="unlabelled"), mixed, tmp_path / "keep")
    assert stats["n_traces"] == 2 and stats["n_unlabelled"] == 1
    out = tmp_path / "keep" / "traces" / "kat-v1-40b"
    unlabelled = pl.read_parquet(out / "unlabelled" / "kat-v1-40b-00000.parquet")
    assert unlabelled["question_id"].to_list() == ["no-tests"]
    assert unlabelled["judgement"].to_list() == ["unknown"] and unlabelled["pass_rate"].to_list() == [-1.0]
    assert "no-tests" not in pl.read_parquet(out / "*.parquet")["question_id"].to_list()

    with pytest.raises(ValueError, match="none of the 1 problems has tests"):
        _run(_spec(chat_server), [untested], tmp_path / "none")


def test_changed_settings_are_refused_not_mixed(chat_server, demo_world, tmp_path):
    problems, _ = demo_world
    _run(_spec(chat_server, n_samples=1), problems[:2], tmp_path)
    with pytest.raises(ValueError, match=r"other settings \(sampling: .*temperature.*0\.6.*0\.9"):
        _run(_spec(chat_server, n_samples=1, temperature=0.9), problems[:2], tmp_path)


def test_the_pool_reads_extra_teacher_shards_beside_ocr2(chat_server, demo_world, tmp_path):
    problems, demo_traces = demo_world
    base = tmp_path / "traces" / "teacher_traces"
    base.mkdir(parents=True)
    pl.DataFrame(demo_traces).with_columns(pl.col("index").cast(pl.String)).write_parquet(base / "traces-00000.parquet")
    spec = _spec(chat_server, n_samples=1)
    _run(spec, problems, tmp_path)
    result = build_pool([base, tmp_path / "traces" / spec.name], contamination_problems=[],
                        count_tokens=lambda texts: [len(t) // 3 for t in texts], max_tokens=100_000, seed=0,
                        chars_per_token_low=2.0, ngram=None)
    pool = result.pool.collect()
    # The extra teacher answered with the demo teacher's texts, so its rows are exact duplicates of the base rows:
    # the pool keeps the first copy (OCR2 first) and names the extra teacher's rows in the quarantine.
    assert result.stats["n_input"] == 2 * len(problems)
    assert set(result.quarantine["reason"]) == {"exact_duplicate"}
    assert result.quarantine["row_id"].str.starts_with("kat-v1-40b-00000.parquet:").all()
    assert pool.height == len(problems)


def test_the_pool_keeps_distinct_extra_teacher_traces(chat_server, demo_world, tmp_path):
    problems, demo_traces = demo_world
    chat_server.answers = {q: a.replace("<think>\n", "<think>\nKAT: a different teacher's reasoning.\n", 1)
                           for q, a in chat_server.answers.items()}
    spec = _spec(chat_server, n_samples=1)
    _run(spec, problems, tmp_path)
    base = tmp_path / "base.parquet"
    pl.DataFrame(demo_traces).with_columns(pl.col("index").cast(pl.String)).write_parquet(base)
    result = build_pool([base, tmp_path / "traces" / spec.name], contamination_problems=[],
                        count_tokens=lambda texts: [len(t) // 3 for t in texts], max_tokens=100_000, seed=0,
                        chars_per_token_low=2.0, ngram=None)
    pool = result.pool.collect()
    assert pool.height == 2 * len(problems) and result.quarantine.height == 0
    kat = pool.filter(pl.col("source") == "kat-v1-40b")
    assert kat.height == len(problems) and sorted(kat["judgement"].unique()) == ["right", "wrong"]


def test_restore_think_open_and_taco_label():
    assert restore_think_open("reasoning\n</think>\n\nanswer") == "<think>\nreasoning\n</think>\n\nanswer"
    assert restore_think_open("<think>r</think>a") == "<think>r</think>a"
    assert restore_think_open("no tags") == "no tags"
    assert taco_label({"taco_difficulty": "VERY_HARD", "difficulty": "hard"}) == "VERY_HARD"
    assert taco_label({"difficulty": "MEDIUM_HARD"}) == "MEDIUM_HARD"
    assert taco_label({"difficulty": "hard"}) == "UNKNOWN_DIFFICULTY"  # LCB's scale is not TACO's


def test_vllm_teacher_params_are_valid_generation_params():
    from valley_assets.generation.run import parse_params

    spec = ExtraTeacherConfig.model_validate({"name": "r1-new", "backend": "vllm", "model": "deepseek-ai/DeepSeek-R1",
                                              "tensor_parallel_size": 8, "backend_options": {"max_model_len": 40960},
                                              "n_samples": 4, "max_chunks": 3})
    params = vllm_generation_params(spec, "/p/problems.jsonl", "/w/samples.jsonl")
    parsed, sampling = parse_params(params)
    assert parsed.backend == "vllm" and parsed.n == 4 and parsed.max_chunks == 3
    assert parsed.backend_options == {"tensor_parallel_size": 8, "max_model_len": 40960}
    assert sampling.max_new_tokens == 32768 and sampling.temperature == 0.6


def test_config_section_validates_with_clear_errors():
    base = PROFILES_DIR / "demo.yaml"
    good = {"name": "kat", "backend": "openai", "model": "KAT", "endpoint": {"base_url": "http://x:8000/v1"}}
    cfg = load_study_config(base, overrides={"teacher": {"extra": [good]}})
    assert cfg.teacher.extra[0].endpoint.concurrency == 8
    assert load_study_config(base).teacher.extra == []  # the demo keeps only its deterministic teacher
    cases = [
        ({**good, "endpoint": None}, "backend 'openai' needs an `endpoint` section"),
        ({**good, "prompt_id": "nope"}, r"teacher.extra\[kat\].prompt_id: unknown 'nope'"),
        ({**good, "top_p": 1.5}, r"teacher.extra\[kat\]: sampling.top_p must be in \(0, 1\]"),
        ({**good, "endpoint": {"base_url": "x:8000"}}, "base_url must be an http"),
        ({**good, "endpoint": {"base_url": "http://x/v1", "api_key_env": "sk-live-abc"}}, "environment variable name"),
        ({**good, "name": "bad|name"}, "name"),
        ({**good, "untested": "maybe"}, "untested"),
    ]
    for teacher, message in cases:
        with pytest.raises(ValueError, match=message):
            load_study_config(base, overrides={"teacher": {"extra": [teacher]}})
    with pytest.raises(ValueError, match=r"names must be unique; repeated: \['kat'\]"):
        load_study_config(base, overrides={"teacher": {"extra": [good, good]}})


def test_production_profile_example_is_valid_yaml_when_uncommented():
    """The commented example in production.yaml parses and validates once its `#` are removed."""
    import yaml

    text = (PROFILES_DIR / "production.yaml").read_text()
    start = text.index("# teacher:")
    block = [line for line in text[start:].splitlines() if line.startswith("#")]
    example = yaml.safe_load("\n".join(line[2:] if line.startswith("# ") else line[1:] for line in block))
    cfg = load_study_config(PROFILES_DIR / "production.yaml", overrides=example)
    assert [t.name for t in cfg.teacher.extra] == ["kat-v1-40b", "r1-new-problems"]
    assert json.dumps(cfg.teacher.extra[0].endpoint.model_dump())
