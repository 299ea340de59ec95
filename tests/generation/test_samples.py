"""Chunked, resumable generation with a counting fake backend."""

import json

import pytest

from valley_assets.generation.backends import Completion, SamplingConfig
from valley_assets.generation.samples import SAMPLE_FIELDS, generate_samples, read_samples


class CountingBackend:
    """Deterministic completions; records every request so tests can count what was generated."""

    name = "fake"

    def __init__(self, fail_on_call: int | None = None):
        self.calls: list[list[tuple[str, tuple[int, ...]]]] = []
        self.fail_on_call = fail_on_call

    def render(self, messages):
        return [len(m["content"]) % 50 + 1 for m in messages]

    def generate(self, requests, sampling):
        if self.fail_on_call is not None and len(self.calls) + 1 == self.fail_on_call:
            raise RuntimeError("simulated crash")
        self.calls.append([(r.question_id, r.sample_indices) for r in requests])
        return [
            [Completion(f"{r.question_id}/{i}\n```python\nprint({i})\n```", "stop", len(r.prompt_token_ids), 7)
             for i in r.sample_indices]
            for r in requests
        ]

    @property
    def pairs(self):
        return [(q, i) for call in self.calls for q, idxs in call for i in idxs]


SAMPLING = SamplingConfig(temperature=0.7, top_p=0.95, max_new_tokens=16)


def run(backend, problems, out, **kw):
    args = dict(n=3, out_path=out, chunk_size=2, prompt_id="lcb-chat", sampling=SAMPLING)
    args.update(kw)
    return generate_samples(backend, problems, **args)


def test_full_run_writes_every_pair_once_in_chunks(tmp_path, make_problems):
    problems = make_problems(5)
    backend = CountingBackend()
    report = run(backend, problems, tmp_path / "s.jsonl")
    rows = read_samples(tmp_path / "s.jsonl")
    assert len(backend.calls) == 3  # 5 problems in chunks of 2
    assert sorted((r["question_id"], r["sample_idx"]) for r in rows) == sorted(
        (p["question_id"], i) for p in problems for i in range(3))
    assert all(set(r) == set(SAMPLE_FIELDS) and r["prompt_id"] == "lcb-chat" for r in rows)
    assert report.complete and report.n_generated == 15 and report.n_existing == 0
    assert report.finish_reasons == {"stop": 15} and report.completion_tokens == 15 * 7


def test_stop_after_k_chunks_then_rerun_generates_only_the_rest(tmp_path, make_problems):
    problems = make_problems(7)
    out = tmp_path / "s.jsonl"
    first = CountingBackend()
    r1 = run(first, problems, out, max_chunks=2)
    assert len(first.calls) == 2 and r1.n_generated == 12 and not r1.complete

    second = CountingBackend()
    r2 = run(second, problems, out)
    assert len(second.calls) == 2  # 3 remaining problems, chunks of 2
    assert set(second.pairs).isdisjoint(first.pairs)
    assert r2.n_existing == 12 and r2.n_generated == 9 and r2.complete

    third = CountingBackend()
    r3 = run(third, problems, out)
    assert third.calls == [] and r3.n_generated == 0 and r3.complete
    assert len(read_samples(out)) == 21


def test_crash_mid_run_keeps_finished_chunks(tmp_path, make_problems):
    problems = make_problems(6)
    out = tmp_path / "s.jsonl"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(CountingBackend(fail_on_call=3), problems, out)
    assert len(read_samples(out)) == 12
    resumed = CountingBackend()
    run(resumed, problems, out)
    assert [q for call in resumed.calls for q, _ in call] == ["q004", "q005"]


def test_torn_last_line_is_cut_and_its_pair_regenerated(tmp_path, make_problems):
    problems = make_problems(2)
    out = tmp_path / "s.jsonl"
    run(CountingBackend(), problems, out, n=2)
    lines = out.read_text().splitlines(keepends=True)
    last = json.loads(lines[-1])
    out.write_text("".join(lines[:-1]) + lines[-1][:25])  # died mid-write
    assert len(read_samples(out)) == 3  # the torn tail is ignored when reading

    backend = CountingBackend()
    report = run(backend, problems, out, n=2)
    assert backend.pairs == [(last["question_id"], last["sample_idx"])]
    assert report.complete
    assert out.read_text().endswith("\n") and len(read_samples(out)) == 4


def test_partially_sampled_problem_asks_only_for_missing_indices(tmp_path, make_problems):
    problems = make_problems(1)
    out = tmp_path / "s.jsonl"
    run(CountingBackend(), problems, out, n=2)
    backend = CountingBackend()
    run(backend, problems, out, n=4)
    assert backend.calls == [[("q000", (2, 3))]]


def test_bad_existing_files_fail_with_a_clear_error(tmp_path, make_problems):
    problems = make_problems(2)
    out = tmp_path / "s.jsonl"
    run(CountingBackend(), problems, out, n=2)
    with pytest.raises(ValueError, match="prompt_id='lcb-chat'.*uses 'lcb-reasoning'"):
        run(CountingBackend(), problems, out, n=2, prompt_id="lcb-reasoning")
    with pytest.raises(ValueError, match="outside this request"):
        run(CountingBackend(), problems, out, n=1)
    lines = out.read_text().splitlines()
    out.write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"s\.jsonl:2: not valid JSON"):
        read_samples(out)
    out.write_text(lines[0] + "\n" + lines[0] + "\n")
    with pytest.raises(ValueError, match=r"s\.jsonl:2: duplicate sample"):
        read_samples(out)
    bad = json.loads(lines[0]) | {"finish_reason": "eos"}
    out.write_text(json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=r"s\.jsonl:1: finish_reason"):
        read_samples(out)


def test_bad_problems_are_rejected(tmp_path, make_problems):
    problems = make_problems(2)
    with pytest.raises(ValueError, match="duplicate question_id"):
        run(CountingBackend(), problems + problems[:1], tmp_path / "s.jsonl")
    with pytest.raises(ValueError, match="problem #1 has no question_id"):
        run(CountingBackend(), [problems[0], {"question_content": "x"}], tmp_path / "s.jsonl")
    with pytest.raises(KeyError, match="unknown prompt_id"):
        run(CountingBackend(), problems, tmp_path / "s.jsonl", prompt_id="zzz")
