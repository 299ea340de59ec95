"""A vLLM teacher on a production-shaped storage root (an object store): the GPU job reads its problems from and
publishes its samples to storage URLs, and the asset labels a copy. `memory://` stands in for s3:// (no append),
and an in-process launcher stands in for the Kubernetes Job, running the real generation entrypoint."""

from __future__ import annotations

import dagster as dg
import fsspec
import polars as pl
import pytest

from valley_assets.config import PROFILES_DIR, load_study_config
from valley_assets.data.schema import TRACE_SCHEMA
from valley_assets.definitions import build_definitions
from valley_assets.generation.backends import Completion
from valley_assets.generation.run import run_generation
from valley_assets.storage import StudyStorage


class DemoTeacherBackend:
    """Answers each question with the demo teacher's trace for it (so the grader's labels are known)."""

    name = "vllm-double"

    def __init__(self, answers: dict[str, str]):
        self.answers, self.asked = answers, []

    def render(self, messages):
        return [1, 2, 3]

    def generate(self, requests, sampling):
        self.asked += [r.question_id for r in requests]
        return [[Completion(self.answers[r.question_id], "stop", 3, 9) for _ in r.sample_indices] for r in requests]


class InProcessJobLauncher(dg.ConfigurableResource):
    """Runs the entrypoint's own `run_generation` with the params a Job would get; records them."""

    def run(self, context, *, module: str, params: dict, gpus: int = 0, name: str, kind: str = "training") -> dict:
        assert module == "valley_assets.generation.run" and gpus == 2 and kind == "generation"
        LAUNCHED.append(params)
        return run_generation(params, backend=BACKEND[0])


LAUNCHED: list[dict] = []
BACKEND: list[DemoTeacherBackend] = []


@pytest.fixture
def remote_root(tmp_path, monkeypatch):
    monkeypatch.setenv("VALLEY_CACHE", str(tmp_path / "cache"))
    root = f"/valley-teacher-{tmp_path.name}"
    yield f"memory://{root}"
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_vllm_teacher_publishes_to_object_storage_and_labels_by_grading(remote_root, demo_world):
    problems, traces = demo_world
    BACKEND[:] = [DemoTeacherBackend({t["question_id"]: t["r1_generation"] for t in traces})]
    LAUNCHED.clear()
    teacher = {"name": "r1-new", "backend": "vllm", "model": "deepseek-ai/DeepSeek-R1", "n_samples": 1,
               "chunk_size": 3, "tensor_parallel_size": 2}
    cfg = load_study_config(PROFILES_DIR / "production.yaml", overrides={
        "storage_root": remote_root, "grading": {"backend": "process", "workers": 2},
        "teacher": {"extra": [teacher]}})
    storage = StudyStorage(remote_root)
    storage.write_jsonl(problems, "problems", "training.jsonl")  # what training_problems wrote
    defs = build_definitions(cfg)
    [asset] = [a for a in defs.assets if dg.AssetKey("extra_teacher_traces") in a.keys]
    resources = {**defs.resources, "launcher": InProcessJobLauncher()}

    result = dg.materialize([asset], resources=resources, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    [params] = LAUNCHED
    assert params["problems_path"] == storage.uri("teacher_work", "r1-new", "problems.jsonl")
    assert params["out_path"] == storage.uri("teacher_work", "r1-new", "samples.jsonl")
    assert params["out_path"].startswith("memory://")
    assert len(storage.read_jsonl("teacher_work", "r1-new", "samples.jsonl")) == len(problems)

    frame = pl.read_parquet(storage.read_bytes(*_only_shard(storage)))
    assert frame.schema == pl.Schema(TRACE_SCHEMA) and frame.height == len(problems)
    expected = {t["question_id"]: t["judgement"] for t in traces}
    assert dict(zip(frame["question_id"], frame["judgement"], strict=True)) == expected

    # Rematerializing resumes from the published samples: the job generates nothing again.
    asked = len(BACKEND[0].asked)
    assert dg.materialize([asset], resources=resources, instance=dg.DagsterInstance.ephemeral()).success
    assert len(BACKEND[0].asked) == asked


def _only_shard(storage: StudyStorage) -> tuple[str, ...]:
    folder = storage.path("traces", "extra_teacher_traces", "r1-new")
    [shard] = [p.name for p in folder.iterdir() if p.name.endswith(".parquet")]
    return ("traces", "extra_teacher_traces", "r1-new", shard)


def test_endpoint_teacher_resumes_from_the_published_samples_on_another_pod(remote_root, demo_world, chat_server,
                                                                           tmp_path, monkeypatch):
    import shutil

    problems, traces = demo_world
    monkeypatch.setenv("KAT_KEY", "sk-local")
    teacher = {"name": "kat", "backend": "openai", "model": "Kwaipilot/KAT-V1-40B", "n_samples": 1, "chunk_size": 3,
               "max_chunks": 1, "endpoint": {"base_url": chat_server.base_url, "api_key_env": "KAT_KEY",
                                             "backoff_s": 0.0}}
    cfg = load_study_config(PROFILES_DIR / "production.yaml", overrides={
        "storage_root": remote_root, "grading": {"backend": "process", "workers": 2},
        "teacher": {"extra": [teacher]}})
    storage = StudyStorage(remote_root)
    storage.write_jsonl(problems, "problems", "training.jsonl")
    [asset] = [a for a in build_definitions(cfg).assets if dg.AssetKey("extra_teacher_traces") in a.keys]
    resources = build_definitions(cfg).resources

    assert dg.materialize([asset], resources=resources, instance=dg.DagsterInstance.ephemeral()).success
    assert chat_server.hits == 3 and len(storage.read_jsonl("teacher_work", "kat", "samples.jsonl")) == 3
    shutil.rmtree(tmp_path / "cache")  # the next pod has none of the first one's local disk
    cfg2 = load_study_config(PROFILES_DIR / "production.yaml", overrides={
        "storage_root": remote_root, "grading": {"backend": "process", "workers": 2},
        "teacher": {"extra": [{**teacher, "max_chunks": None}]}})
    defs2 = build_definitions(cfg2)
    [asset2] = [a for a in defs2.assets if dg.AssetKey("extra_teacher_traces") in a.keys]
    assert dg.materialize([asset2], resources=defs2.resources, instance=dg.DagsterInstance.ephemeral()).success
    assert chat_server.hits == len(problems)  # only the 5 missing questions were asked for
    assert len(storage.read_jsonl("teacher_work", "kat", "samples.jsonl")) == len(problems)
