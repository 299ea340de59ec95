"""Traces from more teachers (KAT-V1-40B, R1 on new problems, ...): generate, grade, write OCR2-schema shards.

`run_teacher` drives one configured extra teacher (`config.ExtraTeacherConfig`) through four resumable steps:
1. generation, chunked and resumable through `generation.samples.generate_samples` (finished (question_id, sample)
   pairs are never generated twice), on an OpenAI-compatible endpoint in this process or on vLLM as a GPU job: the
   caller passes the `generate` step;
2. conversion of each sample into an OCR2 trace row (`trace_rows`): `r1_generation` is the sample text (reasoning in
   `<think>` … `</think>`, then the answer), `solution` the extracted final code block;
3. labelling BY THE GRADER on the problem's tests: `judgement` "right" when the solution passes every test, else
   "wrong"; `pass_rate` 1.0 / 0.0 (the grader stops at the first failing test, as LiveCodeBench does, so a fraction
   of tests passed is not measured). The grader's per-sample log makes a rerun grade only new samples;
4. parquet shards `<name>-00000.parquet`, … in the teacher's folder (TRACE_SCHEMA), rewritten from the samples on
   every run, so they always describe exactly the samples on disk.

Problems without tests cannot be labelled. OCR2 marks an unknown pass rate with -1, and the pool accepts only
"right"/"wrong" judgements (anything else is quarantined as malformed), so such problems are either not sent to the
teacher (`untested: skip`, the default) or their traces go to an `unlabelled/` subfolder with judgement "unknown" and
pass_rate -1, which the pool does not read (kept for a later labeller, e.g. an LLM critic as OCR2 used).

A teacher's samples are bound to what made them: `teacher.json` in the work folder records the backend, model, prompt
and sampling, and a rerun with other values is refused (a new name starts a new teacher) rather than mixing two
teachers' samples under one `source`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import polars as pl

from valley_assets.data.schema import TACO_DIFFICULTIES, TRACE_SCHEMA, cast_to_schema
from valley_assets.generation.params import GenerationParams
from valley_assets.generation.samples import read_samples
from valley_assets.science.text import THINK_CLOSE, THINK_OPEN, extract_code, has_closed_think

UNKNOWN_JUDGEMENT = "unknown"  # only in unlabelled/ shards; the pool reads right|wrong
UNKNOWN_PASS_RATE = -1.0  # OCR2's convention for "not measured"
SHARD_ROWS = 20_000
UNLABELLED_DIR = "unlabelled"

GenerateStep = Callable[[list[dict], Path], dict]  # (problems, samples path) -> generation report
GradeStep = Callable[[list[dict], list[dict], str], dict]  # (problems, generations, results path) -> grade output


def has_tests(problem: Mapping) -> bool:
    """Whether a Problem record carries at least one public or private test."""
    from valley_assets.grading import ProblemFormatError, decode_private_tests

    qid = problem.get("question_id", "<no question_id>")
    try:
        public = problem.get("public_test_cases") or "[]"
        public = json.loads(public) if isinstance(public, str) else public
        private = problem.get("private_test_cases") or "[]"
        private = decode_private_tests(private) if isinstance(private, str) else private
    except (ValueError, ProblemFormatError) as exc:
        raise ValueError(f"problem {qid!r}: unreadable test cases ({exc})") from None
    if not isinstance(public, list) or not isinstance(private, list):
        raise ValueError(f"problem {qid!r}: public_test_cases and private_test_cases must be lists of tests")
    return bool(public or private)


def taco_label(problem: Mapping) -> str:
    """The trace's TACO difficulty: a `taco_difficulty` field, or `difficulty` when it already is a TACO label.

    LiveCodeBench's easy/medium/hard are another scale; they map to UNKNOWN_DIFFICULTY rather than being passed off
    as TACO labels, so the easy/hard ablation arms only ever select on TACO's own labels.
    """
    for key in ("taco_difficulty", "difficulty"):
        value = problem.get(key)
        if isinstance(value, str) and value in TACO_DIFFICULTIES:
            return value
    return "UNKNOWN_DIFFICULTY"


def restore_think_open(text: str) -> str:
    """R1-family chat templates end the prompt with `<think>\\n`, so the model's output starts inside its reasoning
    and has only the closing tag; put the opening tag back so the trace has the OCR2 shape."""
    if THINK_CLOSE in text and THINK_OPEN not in text:
        return f"{THINK_OPEN}\n{text}"
    return text


def trace_id(teacher: str, question_id: str, sample_idx: int) -> str:
    return hashlib.md5(f"{teacher}|{question_id}|{sample_idx}".encode()).hexdigest()


def trace_rows(samples: Sequence[Mapping], problems: Sequence[Mapping], *, teacher: str, dataset: str,
               license: str | None = None) -> list[dict]:
    """OCR2 trace rows (unlabelled: judgement/pass_rate filled by `label_rows`), in (question, sample) order."""
    position = {p["question_id"]: (i, p) for i, p in enumerate(problems)}
    rows = []
    for s in sorted(samples, key=lambda s: (position.get(s["question_id"], (-1,))[0], s["sample_idx"])):
        if s["question_id"] not in position:
            raise ValueError(f"sample (question_id={s['question_id']!r}, sample_idx={s['sample_idx']}) has no problem")
        i, p = position[s["question_id"]]
        text = restore_think_open(s["text"])
        rows.append({
            "id": trace_id(teacher, p["question_id"], s["sample_idx"]),
            "question_id": p["question_id"],
            "question": p.get("question_content") or "",
            "r1_generation": text,
            "qwq_critique": None,
            "solution": extract_code(text) or "",
            "judgement": UNKNOWN_JUDGEMENT,
            "pass_rate": UNKNOWN_PASS_RATE,
            "source": teacher,
            "license": license,
            "dataset": str(p.get("dataset") or dataset),
            "split": str(p.get("split") or "train"),
            "difficulty": taco_label(p),
            "index": str(p["index"]) if p.get("index") is not None else str(i),
            "sample_idx": s["sample_idx"],  # dropped by the schema cast; aligns grades with rows
        })
    return rows


def generations_for(rows: Sequence[Mapping]) -> list[dict]:
    """The grader's input for trace rows: each row's `solution` ("" when none was extracted, graded as a failure)."""
    by_q: dict[str, list[str]] = {}
    for r in rows:
        by_q.setdefault(r["question_id"], []).append(r["solution"])
    return [{"question_id": q, "code_list": codes} for q, codes in by_q.items()]


def label_rows(rows: list[dict], grades: Mapping) -> None:
    """Set judgement and pass_rate from the grader's results (aligned with `generations_for(rows)`)."""
    results = grades.get("results", grades)
    seen: Counter = Counter()
    for r in rows:
        qid = r["question_id"]
        per_sample = results.get(qid)
        k = seen[qid]
        seen[qid] += 1
        if not isinstance(per_sample, list) or k >= len(per_sample) or per_sample[k] is None:
            raise ValueError(f"the grader returned no result for question {qid!r} sample {r['sample_idx']}")
        passed = bool(per_sample[k]["passed"])
        r["judgement"], r["pass_rate"] = ("right", 1.0) if passed else ("wrong", 0.0)


def check_manifest(path: Path, manifest: dict) -> None:
    """Record what makes this teacher's samples on the first run; refuse a rerun that would change it."""
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        changed = {k: (old.get(k), v) for k, v in manifest.items() if old.get(k) != v}
        if changed:
            details = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(changed.items()))
            raise ValueError(
                f"teacher {manifest['name']!r}: the samples in {path.parent} were made with other settings "
                f"({details}). Give the changed teacher a new name, or delete that folder to regenerate from scratch.")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")


def write_shards(rows: Sequence[Mapping], out_dir, prefix: str, *, shard_rows: int = SHARD_ROWS) -> list[str]:
    """TRACE_SCHEMA parquet shards `<prefix>-00000.parquet`, …; this prefix's older shards beyond them are removed.

    `out_dir` is a local folder or an fsspec URL (StudyStorage writes each shard atomically).
    """
    from valley_assets.storage import StudyStorage

    storage = StudyStorage(str(out_dir))
    names = []
    for k, start in enumerate(range(0, len(rows), shard_rows)):
        frame = cast_to_schema(pl.DataFrame(list(rows[start:start + shard_rows]), infer_schema_length=None),
                               TRACE_SCHEMA)
        name = f"{prefix}-{k:05d}.parquet"
        storage.write_parquet(frame, name)
        names.append(name)
    if storage.root.exists():
        for stale in storage.root.glob(f"{prefix}-*.parquet"):
            if stale.name not in names:
                stale.unlink()
    return names


def run_teacher(spec, problems: Sequence[dict], *, work_dir: Path, out_dir, generate: GenerateStep,
                grade: GradeStep, log: Callable[[str], None] = print) -> dict:
    """One extra teacher, end to end (module docstring). `spec` is a `config.ExtraTeacherConfig`; `out_dir` the
    teacher's trace folder (local or URL). Returns the stats for the asset's metadata."""
    if not problems:
        raise ValueError(f"teacher {spec.name!r}: no problems to solve (source {spec.problems!r})")
    for i, p in enumerate(problems):
        if not isinstance(p, dict) or not isinstance(p.get("question_id"), str) or not p["question_id"]:
            raise ValueError(f"teacher {spec.name!r}: problem #{i} has no question_id")
        if not isinstance(p.get("question_content"), str) or not p["question_content"].strip():
            raise ValueError(f"teacher {spec.name!r}: problem {p['question_id']!r} has no question_content")
    tested = [p for p in problems if has_tests(p)]
    tested_ids = {p["question_id"] for p in tested}
    untested = [p for p in problems if p["question_id"] not in tested_ids]
    todo = tested + (untested if spec.untested == "unlabelled" else [])
    if not todo:
        raise ValueError(f"teacher {spec.name!r}: none of the {len(problems)} problems has tests, and untested "
                         "problems are skipped (untested: skip); give it problems with tests")
    work_dir = Path(work_dir)
    check_manifest(work_dir / "teacher.json", {
        "name": spec.name, "backend": spec.backend, "model": spec.model, "prompt_id": spec.prompt_id,
        "sampling": spec.sampling().to_dict(), "untested": spec.untested,
    })
    samples_path = work_dir / "samples.jsonl"
    log(f"teacher {spec.name}: {len(tested)} problems with tests, {len(untested)} without "
        f"({'generated unlabelled' if spec.untested == 'unlabelled' else 'skipped'}); n={spec.n_samples}")
    generation = generate(todo, samples_path)

    samples = read_samples(samples_path)
    all_rows = trace_rows(samples, todo, teacher=spec.name, dataset=spec.dataset, license=spec.license)
    labelled = [r for r in all_rows if r["question_id"] in tested_ids]
    unlabelled = [r for r in all_rows if r["question_id"] not in tested_ids]
    graded_problems = [p for p in tested if p["question_id"] in {r["question_id"] for r in labelled}]
    grades = grade(graded_problems, generations_for(labelled), str(work_dir / "grades.json")) if labelled else {}
    if labelled:
        label_rows(labelled, grades)
    shards = write_shards(labelled, out_dir, spec.name)
    unlabelled_shards = (write_shards(unlabelled, f"{str(out_dir).rstrip('/')}/{UNLABELLED_DIR}", spec.name)
                         if unlabelled else [])

    finish = Counter(s["finish_reason"] for s in samples)
    return {
        "teacher": spec.name,
        "backend": spec.backend,
        "model": spec.model,
        "n_problems": len(problems),
        "n_problems_with_tests": len(tested),
        "n_problems_without_tests": len(untested),
        "n_expected": len(todo) * spec.n_samples,
        "n_samples": len(samples),
        "complete": len(samples) == len(todo) * spec.n_samples,
        "n_traces": len(labelled),
        "n_right": sum(r["judgement"] == "right" for r in labelled),
        "n_wrong": sum(r["judgement"] == "wrong" for r in labelled),
        "n_unlabelled": len(unlabelled),
        "n_unclosed_think": sum(not has_closed_think(r["r1_generation"]) for r in all_rows),
        "n_no_code": sum(not r["solution"] for r in all_rows),
        "finish_reasons": dict(sorted(finish.items())),
        "prompt_tokens": sum(s["prompt_tokens"] for s in samples),
        "completion_tokens": sum(s["completion_tokens"] for s in samples),
        "shards": shards,
        "unlabelled_shards": unlabelled_shards,
        "grader": {k: grades.get(k) for k in ("backend", "isolation", "warning") if k in grades},
        "generation": {k: v for k, v in generation.items() if isinstance(v, (int, float, str, bool))},
    }


def endpoint_generate(spec, backend, *, on_chunk: Callable | None = None,
                      published_samples: str | None = None) -> GenerateStep:
    """The generation step on an in-process backend (the OpenAI-compatible endpoint), through generate_samples.

    `published_samples`: a storage URL (object store) where the samples are published after every chunk and resumed
    from, so a run on another pod continues; the local `samples_path` then gets a copy for labelling."""
    import fsspec

    from valley_assets.generation.samples import generate_samples

    def step(problems: list[dict], samples_path: Path) -> dict:
        report = generate_samples(backend, problems, n=spec.n_samples, out_path=published_samples or samples_path,
                                  chunk_size=spec.chunk_size, prompt_id=spec.prompt_id, sampling=spec.sampling(),
                                  max_chunks=spec.max_chunks, on_chunk=on_chunk)
        if published_samples:
            with fsspec.open(published_samples, "rb") as f:
                Path(samples_path).write_bytes(f.read())
        out = report.to_dict()
        out.update(getattr(backend, "stats", {}))  # HTTP requests and retries
        return out

    return step


def vllm_generation_params(spec, problems_path: str, samples_path: str) -> dict:
    """Parameters of `python -m valley_assets.generation.run` (the GPU job the launcher starts) for a vLLM teacher."""
    return GenerationParams(
        model_path=spec.model,
        problems_path=problems_path,
        out_path=samples_path,
        backend="vllm",
        prompt_id=spec.prompt_id,
        n=spec.n_samples,
        chunk_size=spec.chunk_size,
        sampling=spec.sampling().to_dict(),
        backend_options={"tensor_parallel_size": spec.tensor_parallel_size, **spec.backend_options},
        max_chunks=spec.max_chunks,
    ).model_dump(mode="json")
