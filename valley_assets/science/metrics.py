"""The study's metrics, defined once (docs/metrics.md is the prose version).

Per problem (one row of the per-problem eval table): n samples, c of them passing every test, n_complete of them
complete, n_think of them with a closed think block.
- complete: the sample ended by EOS/stop string (finish_reason "stop", not the token limit) AND has extractable code
  (`extract_code`: a fenced python block after the reasoning);
- think: the sample contains a `<think>` … `</think>` pair (`has_closed_think`).

Over a set of problems (one row of the scores table per difficulty × metric × date window × prompt id):
- pass@1: mean over problems of the unbiased estimator pass@1 = c/n (`passk.pass_at_k`), as LiveCodeBench reports it;
- completion_rate, think_rate: mean over problems of n_complete/n and n_think/n. Every problem has the same n in a
  run, so this equals the share of all samples;
- stderr: standard error of the mean over problems (sample std / sqrt(#problems)); sampling noise within a problem
  is not added on top.
Rows for a (date window, difficulty) with no problems are left out rather than written as NaN.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime

from valley_assets.records import Sample, ScoreValues, check_rows
from valley_assets.science.passk import pass_at_k, standard_error
from valley_assets.science.text import extract_code, has_closed_think

DIFFICULTIES = ("easy", "medium", "hard")
# What the metrics read of each Sample record (read from the generations' samples.jsonl).
SAMPLE_FIELDS_READ = ("question_id", "sample_idx", "text", "finish_reason")

METRICS = ("pass@1", "completion_rate", "think_rate")
ALL = "all"
UNCONTAMINATED = "uncontaminated"  # the date_window label of the scores over the problems the pool does not overlap


def is_complete(sample: Mapping) -> bool:
    return sample["finish_reason"] == "stop" and extract_code(sample["text"]) is not None


def _samples_by_question(samples: Sequence[Mapping]) -> dict[str, list[Mapping]]:
    """Samples grouped per question, ordered by sample_idx; duplicates and bad rows are errors."""
    grouped: dict[str, dict[int, Mapping]] = defaultdict(dict)
    for s in check_rows(samples, Sample, source="samples", required=SAMPLE_FIELDS_READ):
        qid, idx = s["question_id"], s["sample_idx"]
        if idx in grouped[qid]:
            raise ValueError(f"duplicate sample (question_id={qid!r}, sample_idx={idx})")
        grouped[qid][idx] = s
    return {qid: [by_idx[i] for i in sorted(by_idx)] for qid, by_idx in grouped.items()}


def samples_to_generations(samples: Sequence[Mapping]) -> list[dict]:
    """The grader's input: `[{"question_id", "code_list"}]`, code in sample_idx order.

    A sample without extractable code contributes "" so that it is graded (and counted) as a failure, as in
    LiveCodeBench, which grades the empty extraction rather than dropping the sample.
    """
    return [
        {"question_id": qid, "code_list": [extract_code(s["text"]) or "" for s in group]}
        for qid, group in sorted(_samples_by_question(samples).items())
    ]


def _grade_results(grades: Mapping) -> Mapping:
    """Accept the whole grade-results document (`{"results": {...}, "summary": ...}`) or its `results` mapping."""
    if "results" in grades and isinstance(grades["results"], Mapping):
        return grades["results"]
    return grades


def per_problem_table(samples: Sequence[Mapping], grades: Mapping, problems: Sequence[Mapping]) -> list[dict]:
    """One row per problem: prompt_id, question_id, difficulty, contest_date, n, c, n_complete, n_think.

    `grades` is the grader's output (see `_grade_results`); its list for a question is aligned with the samples in
    sample_idx order, which is the order `samples_to_generations` hands them to the grader. Every problem needs
    samples and grades, every sample a problem; anything else is an error naming the question.
    """
    by_question = _samples_by_question(samples)
    results = _grade_results(grades)
    problem_ids = []
    for i, p in enumerate(problems):
        for key in ("question_id", "difficulty", "contest_date"):
            if key not in p:
                raise ValueError(f"problem #{i} ({p.get('question_id', '?')!r}) has no {key!r} field")
        if p["difficulty"] not in DIFFICULTIES:
            raise ValueError(f"problem {p['question_id']!r}: difficulty {p['difficulty']!r} not in {DIFFICULTIES}")
        problem_ids.append(p["question_id"])
    if len(set(problem_ids)) != len(problem_ids):
        raise ValueError("problems contain a duplicate question_id")
    orphans = sorted(set(by_question) - set(problem_ids))
    if orphans:
        raise ValueError(f"samples for questions not in the problem set: {orphans[:10]}")

    rows = []
    for p in problems:
        qid = p["question_id"]
        group = by_question.get(qid)
        if not group:
            raise ValueError(f"question {qid!r} has no samples")
        if qid not in results:
            raise ValueError(f"question {qid!r} has no grade results")
        graded = results[qid]
        if len(graded) != len(group):
            raise ValueError(f"question {qid!r}: {len(group)} samples but {len(graded)} grade results")
        prompt_ids = {s.get("prompt_id") for s in group}
        if len(prompt_ids) != 1:
            raise ValueError(f"question {qid!r}: samples mix prompt ids {sorted(map(str, prompt_ids))}")
        rows.append({
            "prompt_id": prompt_ids.pop(),
            "question_id": qid,
            "difficulty": p["difficulty"],
            "contest_date": p["contest_date"],
            "n": len(group),
            "c": sum(1 for g in graded if _passed(g, qid)),
            "n_complete": sum(1 for s in group if is_complete(s)),
            "n_think": sum(1 for s in group if has_closed_think(s["text"])),
        })
    return rows


def _passed(grade, qid: str) -> bool:
    if isinstance(grade, Mapping):
        if "passed" not in grade:
            raise ValueError(f"question {qid!r}: a grade result has no 'passed' field")
        return bool(grade["passed"])
    if isinstance(grade, bool):
        return grade
    raise ValueError(f"question {qid!r}: grade results must be dicts with 'passed' (or booleans), got {grade!r}")


def _as_date(value: str, what: str) -> date:
    try:
        return datetime.fromisoformat(value).date()
    except (TypeError, ValueError):
        raise ValueError(f"{what}: {value!r} is not an ISO 8601 date") from None


def window_label(window: tuple[str | None, str | None]) -> str:
    """`(None, None)` -> "all"; otherwise "<start>..<end>" with an open side left empty, e.g. "2024-08-01..". """
    start, end = window
    if start is None and end is None:
        return ALL
    return f"{start or ''}..{end or ''}"


def in_window(contest_date: str, window: tuple[str | None, str | None], *, question_id: str = "?") -> bool:
    """Both ends inclusive, compared by calendar date (LiveCodeBench's --start_date/--end_date semantics)."""
    day = _as_date(contest_date, f"question {question_id!r} contest_date")
    start, end = window
    if start is not None and day < _as_date(start, "date window start"):
        return False
    if end is not None and day > _as_date(end, "date window end"):
        return False
    return True


def _metric_values(rows: Sequence[Mapping], metric: str) -> list[float]:
    if metric == "pass@1":
        return [pass_at_k(r["n"], r["c"], 1) for r in rows]
    count = {"completion_rate": "n_complete", "think_rate": "n_think"}[metric]
    for r in rows:
        if not 0 <= r[count] <= r["n"]:
            raise ValueError(f"question {r['question_id']!r}: {count}={r[count]} outside 0..n={r['n']}")
    return [r[count] / r["n"] for r in rows]


def score_rows(
    per_problem: Sequence[Mapping], *,
    date_windows: Sequence[tuple[str | None, str | None] | tuple[str, str | None, str | None]] | None = None,
    contaminated: Collection[str] | None = None,
) -> list[ScoreValues]:
    """Scores-table rows without who and when (`ScoreValues`; the scoring asset adds student, data_size, arm,
    release and scored_at to make each a `ScoreRow`): for each prompt id × date window × difficulty
    (all/easy/medium/hard) × metric: value, n_problems, n_samples, stderr, date_window label.

    `contaminated`: question ids of the release that overlap the training pool; given (even empty), the rows are
    also computed over every problem but those, with the date_window label `uncontaminated`.
    A window is `(start, end)`, labelled by `window_label`, or `(label, start, end)` (a per-student window named
    the same for every student, such as `after_cutoff`)."""
    windows = [w if len(w) == 3 else (window_label(w), *w) for w in (date_windows or [(None, None)])]
    by_prompt: dict[str, list[Mapping]] = defaultdict(list)
    for r in per_problem:
        by_prompt[r["prompt_id"]].append(r)
    out = []
    for prompt_id, rows in sorted(by_prompt.items()):
        problem_sets = [(label, [r for r in rows if in_window(r["contest_date"], (start, end),
                                                              question_id=r["question_id"])])
                        for label, start, end in windows]
        if contaminated is not None:
            excluded = set(contaminated)
            problem_sets.append((UNCONTAMINATED, [r for r in rows if r["question_id"] not in excluded]))
        for label, in_win in problem_sets:
            for difficulty in (ALL, *DIFFICULTIES):
                group = in_win if difficulty == ALL else [r for r in in_win if r["difficulty"] == difficulty]
                if not group:
                    continue
                for metric in METRICS:
                    values = _metric_values(group, metric)
                    out.append(ScoreValues(
                        date_window=label,
                        prompt_id=prompt_id,
                        difficulty=difficulty,
                        metric=metric,
                        value=sum(values) / len(values),
                        n_problems=len(group),
                        n_samples=sum(r["n"] for r in group),
                        stderr=standard_error(values),
                    ))
    return out
