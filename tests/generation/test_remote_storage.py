"""Production storage is an object store (s3://, gs://): generation must publish and resume there, and models
published there must load. `memory://` is a real fsspec filesystem without append, like S3."""

import json

import fsspec
import pytest

from tests.generation.test_samples import SAMPLING, CountingBackend
from valley_assets.generation.samples import generate_samples, read_samples
from valley_assets.model_files import local_model_dir


@pytest.fixture
def memfs(tmp_path, monkeypatch):
    monkeypatch.setenv("VALLEY_CACHE", str(tmp_path / "cache"))
    fs = fsspec.filesystem("memory")
    root = f"/valley-test-{tmp_path.name}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _published(fs, path):
    with fs.open(path, "rb") as f:
        return [json.loads(line) for line in f.read().decode().splitlines()]


def test_samples_are_published_after_every_chunk_and_resume_from_the_object(memfs, make_problems, tmp_path):
    fs, root = memfs
    url = f"memory://{root}/generations/s/1k/release_v1/lcb-chat/samples.jsonl"
    problems = make_problems(5)

    first = CountingBackend()
    report = generate_samples(first, problems, n=2, out_path=url, chunk_size=2, prompt_id="lcb-chat",
                              sampling=SAMPLING, max_chunks=2)
    assert report.out_path == url and report.chunks_run == 2
    assert len(_published(fs, f"{root}/generations/s/1k/release_v1/lcb-chat/samples.jsonl")) == 8

    # A pod on another node: no local mirror, only the published object.
    import shutil
    shutil.rmtree(tmp_path / "cache")
    second = CountingBackend()
    report = generate_samples(second, problems, n=2, out_path=url, chunk_size=2, prompt_id="lcb-chat",
                              sampling=SAMPLING)
    assert report.complete and report.n_existing == 8 and report.n_generated == 2
    assert second.pairs == [(problems[4]["question_id"], 0), (problems[4]["question_id"], 1)]
    rows = _published(fs, f"{root}/generations/s/1k/release_v1/lcb-chat/samples.jsonl")
    assert sorted((r["question_id"], r["sample_idx"]) for r in rows) == sorted(
        (p["question_id"], i) for p in problems for i in range(2))


def test_a_stale_local_mirror_never_outranks_the_published_object(memfs, make_problems, tmp_path):
    fs, root = memfs
    url = f"memory://{root}/g/samples.jsonl"
    problems = make_problems(3)
    generate_samples(CountingBackend(), problems, n=1, out_path=url, chunk_size=1, prompt_id="lcb-chat",
                     sampling=SAMPLING, max_chunks=1)
    fs.rm(f"{root}/g/samples.jsonl")  # someone removed the published samples: start over, not from the mirror
    again = CountingBackend()
    report = generate_samples(again, problems, n=1, out_path=url, chunk_size=3, prompt_id="lcb-chat",
                              sampling=SAMPLING)
    assert report.n_existing == 0 and len(again.pairs) == 3
    assert len(read_samples(tmp_path / "cache" / "samples-mirror" / next(
        (tmp_path / "cache" / "samples-mirror").iterdir()).name / "samples.jsonl")) == 3


def test_local_model_dir_copies_a_complete_remote_checkpoint_once(memfs):
    fs, root = memfs
    remote = f"{root}/checkpoints/s/1k/run"
    fs.makedirs(remote, exist_ok=True)
    fs.pipe(f"{remote}/_run.json", b'{"fingerprint": "f"}')  # a training run claims its output_dir first
    fs.pipe(f"{remote}/config.json", b'{"model_type": "qwen2"}')
    fs.pipe(f"{remote}/sub/tokenizer.json", b"{}")
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        local_model_dir(f"memory://{remote}")
    fs.pipe(f"{remote}/_COMPLETE", b"")
    local = local_model_dir(f"memory://{remote}")
    assert json.loads(open(f"{local}/config.json").read()) == {"model_type": "qwen2"}
    assert open(f"{local}/sub/tokenizer.json").read() == "{}"
    fs.pipe(f"{remote}/config.json", b"changed")  # published checkpoints are immutable: the copy is reused
    assert local_model_dir(f"memory://{remote}") == local
    assert local_model_dir("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    assert local_model_dir("/models/base") == "/models/base"


def test_local_model_dir_reads_a_model_mirrored_to_object_storage(memfs):
    """A cluster without hub access points `students[].model` at a copy of the hub repo on its object store: a plain
    model folder (no training run wrote it, so no _COMPLETE), taken when it holds a config.json."""
    fs, root = memfs
    mirror = f"{root}/models/Qwen2.5-7B-Instruct"
    fs.pipe(f"{mirror}/tokenizer.json", b"{}")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        local_model_dir(f"memory://{mirror}")
    fs.pipe(f"{mirror}/config.json", b'{"model_type": "qwen2"}')
    local = local_model_dir(f"memory://{mirror}")
    assert json.loads(open(f"{local}/config.json").read()) == {"model_type": "qwen2"}
    assert open(f"{local}/tokenizer.json").read() == "{}"
