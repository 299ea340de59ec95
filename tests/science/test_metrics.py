"""Metric definitions on crafted generations."""

import math
from datetime import UTC

import pytest

from valley_assets.science.metrics import (
    in_window,
    is_complete,
    per_problem_table,
    samples_to_generations,
    score_rows,
    window_label,
)

CODE = "```python\nprint(1)\n```"


def s(qid, idx, text, finish="stop", prompt_id="lcb-reasoning"):
    return {"question_id": qid, "sample_idx": idx, "prompt_id": prompt_id, "text": text, "finish_reason": finish,
            "prompt_tokens": 3, "completion_tokens": 5}


PROBLEMS = [
    {"question_id": "e1", "difficulty": "easy", "contest_date": "2024-08-03T00:00:00"},
    {"question_id": "m1", "difficulty": "medium", "contest_date": "2024-09-30T12:00:00"},
    {"question_id": "h1", "difficulty": "hard", "contest_date": "2025-01-10T00:00:00"},
]
SAMPLES = [
    # e1: both closed-think with code after it, both pass
    s("e1", 1, f"<think>hmm</think>\n{CODE}"),
    s("e1", 0, f"<think>a</think>{CODE}"),
    # m1: code only inside the unfinished reasoning (hit the limit), and a plain answer without a think block
    s("m1", 0, f"<think>draft {CODE}", finish="length"),
    s("m1", 1, f"here it is\n{CODE}"),
    # h1: stopped but no code; closed think with code but truncated by the length limit
    s("h1", 0, "<think>x</think> I give up"),
    s("h1", 1, f"<think>x</think>{CODE}", finish="length"),
]
GRADES = {"results": {
    "e1": [{"passed": True}, {"passed": True}],
    "m1": [{"passed": False}, {"passed": True}],
    "h1": [{"passed": False}, {"passed": False}],
}, "summary": {}}


def test_complete_needs_a_stop_and_extractable_code():
    assert is_complete(s("q", 0, CODE))
    assert not is_complete(s("q", 0, CODE, finish="length"))  # code, but cut by the token limit
    assert not is_complete(s("q", 0, "no code at all"))
    assert not is_complete(s("q", 0, f"<think>{CODE}"))  # code only in unclosed reasoning


def test_samples_to_generations_orders_by_index_and_blanks_missing_code():
    gens = samples_to_generations(SAMPLES)
    assert [g["question_id"] for g in gens] == ["e1", "h1", "m1"]
    h1 = next(g for g in gens if g["question_id"] == "h1")
    assert h1["code_list"] == ["", "print(1)"]
    m1 = next(g for g in gens if g["question_id"] == "m1")
    assert m1["code_list"] == ["", "print(1)"]


def test_per_problem_table_counts():
    rows = {r["question_id"]: r for r in per_problem_table(SAMPLES, GRADES, PROBLEMS)}
    assert rows["e1"] == {"prompt_id": "lcb-reasoning", "question_id": "e1", "difficulty": "easy",
                          "contest_date": "2024-08-03T00:00:00", "n": 2, "c": 2, "n_complete": 2, "n_think": 2}
    assert (rows["m1"]["c"], rows["m1"]["n_complete"], rows["m1"]["n_think"]) == (1, 1, 0)
    assert (rows["h1"]["c"], rows["h1"]["n_complete"], rows["h1"]["n_think"]) == (0, 0, 2)
    # the bare results mapping works too
    assert per_problem_table(SAMPLES, GRADES["results"], PROBLEMS) == list(rows.values())


def test_score_rows_values_and_stderr():
    rows = score_rows(per_problem_table(SAMPLES, GRADES, PROBLEMS))
    table = {(r["difficulty"], r["metric"]): r for r in rows}
    assert len(rows) == 4 * 3
    p = table[("all", "pass@1")]
    assert p["value"] == pytest.approx(0.5) and p["n_problems"] == 3 and p["n_samples"] == 6
    # per-problem pass@1 = 1, 0.5, 0 -> std 0.5 -> stderr 0.5/sqrt(3)
    assert p["stderr"] == pytest.approx(0.5 / math.sqrt(3))
    assert table[("all", "completion_rate")]["value"] == pytest.approx(3 / 6)
    assert table[("all", "think_rate")]["value"] == pytest.approx(4 / 6)
    assert table[("medium", "pass@1")]["value"] == 0.5 and table[("medium", "pass@1")]["stderr"] == 0.0
    assert table[("hard", "think_rate")]["value"] == 1.0
    assert all(r["date_window"] == "all" and r["prompt_id"] == "lcb-reasoning" for r in rows)


def test_date_windows_are_inclusive_and_empty_cells_are_left_out():
    per_problem = per_problem_table(SAMPLES, GRADES, PROBLEMS)
    rows = score_rows(per_problem, date_windows=[(None, None), ("2024-08-03", "2024-09-30"), ("2025-01-01", None)])
    labels = {r["date_window"] for r in rows}
    assert labels == {"all", "2024-08-03..2024-09-30", "2025-01-01.."}
    mid = {(r["difficulty"], r["metric"]): r for r in rows if r["date_window"] == "2024-08-03..2024-09-30"}
    assert mid[("all", "pass@1")]["n_problems"] == 2  # both ends inclusive (09-30 noon counts)
    assert ("hard", "pass@1") not in mid
    late = [r for r in rows if r["date_window"] == "2025-01-01.."]
    assert {r["difficulty"] for r in late} == {"all", "hard"}
    assert window_label((None, "2024-12-31")) == "..2024-12-31"
    with pytest.raises(ValueError, match="question 'q' contest_date"):
        in_window("soon", (None, None), question_id="q")


def test_bad_inputs_name_the_question():
    with pytest.raises(ValueError, match="'m1': 2 samples but 1 grade results"):
        per_problem_table(SAMPLES, {"results": {**GRADES["results"], "m1": [{"passed": True}]}}, PROBLEMS)
    with pytest.raises(ValueError, match="'h1' has no grade results"):
        per_problem_table(SAMPLES, {"results": {k: v for k, v in GRADES["results"].items() if k != "h1"}}, PROBLEMS)
    with pytest.raises(ValueError, match="'h1' has no samples"):
        per_problem_table([x for x in SAMPLES if x["question_id"] != "h1"], GRADES, PROBLEMS)
    with pytest.raises(ValueError, match="not in the problem set: \\['h1'\\]"):
        per_problem_table(SAMPLES, GRADES, PROBLEMS[:2])
    with pytest.raises(ValueError, match="duplicate sample \\(question_id='e1', sample_idx=0\\)"):
        per_problem_table(SAMPLES + [s("e1", 0, "x")], GRADES, PROBLEMS)
    with pytest.raises(ValueError, match="difficulty 'EASY'"):
        per_problem_table(SAMPLES, GRADES, [dict(PROBLEMS[0], difficulty="EASY"), *PROBLEMS[1:]])
    with pytest.raises(ValueError, match="'e1': samples mix prompt ids"):
        per_problem_table([s("e1", 0, CODE, prompt_id="lcb-chat"), *SAMPLES[:1], *SAMPLES[2:]], GRADES, PROBLEMS)
    with pytest.raises(ValueError, match="a grade result has no 'passed'"):
        per_problem_table(SAMPLES, {"results": {**GRADES["results"], "e1": [{}, {}]}}, PROBLEMS)


def test_scores_from_published_release_v6_per_question_results():
    """Per-question pass@1 of 16 models on release_v6 (LiveCodeBench leaderboard data, 10 samples per question)."""
    import json
    from collections import Counter
    from datetime import datetime
    from pathlib import Path

    path = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "lcb_release_v6_leaderboard.json"
    if not path.exists():
        pytest.skip(f"shared real data not present at {path}")
    perf = [r for r in json.loads(path.read_text())["performances"] if r["model"] == "DeepSeek-V3"]
    per_problem = []
    for r in perf:
        c = r["pass@1"] / 10
        assert c == int(c), r  # 10 samples per question on the leaderboard
        per_problem.append({
            "prompt_id": "lcb-chat", "question_id": r["question_id"], "difficulty": r["difficulty"],
            "contest_date": datetime.fromtimestamp(r["date"] / 1000, tz=UTC).isoformat(),
            "n": 10, "c": int(c), "n_complete": 10, "n_think": 0,
        })
    rows = score_rows(per_problem, date_windows=[(None, None), ("2024-08-01", "2025-05-01")])
    table = {(r["date_window"], r["difficulty"], r["metric"]): r for r in rows}
    everything = table[("all", "all", "pass@1")]
    assert everything["n_problems"] == 1055 and everything["n_samples"] == 10550  # release_v6 size
    assert everything["value"] == pytest.approx(sum(r["pass@1"] for r in perf) / 100 / len(perf))
    mix = Counter(r["difficulty"] for r in perf)
    assert {d: table[("all", d, "pass@1")]["n_problems"] for d in mix} == dict(mix)
    recent = table[("2024-08-01..2025-05-01", "all", "pass@1")]
    assert 0 < recent["n_problems"] < 1055
    assert table[("all", "easy", "pass@1")]["value"] > table[("all", "hard", "pass@1")]["value"]
    assert 0 < everything["stderr"] < 0.02
