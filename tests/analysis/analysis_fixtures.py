"""Per-problem tables built in the tests: exact counts, so expected pass@1 values are known by construction."""

from __future__ import annotations

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PAPER_QWEN = {"0": 0.126, "1k": 0.055, "10k": 0.188, "30k": 0.264}
PAPER_ROWS = {"0": 0, "1k": 1000, "10k": 10000, "30k": 30000}
DIFFICULTY_CYCLE = ("easy", "medium", "hard")


def exact_rows(
    student: str,
    pass_rates: dict[str, float],
    *,
    n_problems: int = 500,
    n: int = 1000,
    arm: str = "main",
    release: str = "release_v6",
    rows: dict[str, int] | None = PAPER_ROWS,
) -> list[dict]:
    """A table whose mean pass@1 per data size equals `pass_rates` exactly.

    Every problem gets c/n = rate (n=1000 keeps three decimals exact), except that one problem in five is shifted up
    and another down by the same amount (which problems, varies with the data size), so problems differ (bootstrap intervals have width) but the mean is exact.
    """
    out = []
    for offset, (key, rate) in enumerate(pass_rates.items()):
        base_c = round(rate * n)
        for q in range(n_problems):
            # The shifted problems differ between data sizes, as real per-problem results do.
            shift = {0: 30, 1: -30}.get((q + offset) % 5, 0) if 30 <= base_c <= n - 30 else 0
            record = {
                "student": student,
                "data_size": key,
                "arm": arm,
                "release": release,
                "prompt_id": "lcb_default",
                "question_id": f"q{q:04d}",
                "difficulty": DIFFICULTY_CYCLE[q % 3],
                "contest_date": "2024-08-01",
                "n": n,
                "c": base_c + shift,
                "n_complete": n if key != "0" else n // 2,
                "n_think": q % 2 * n,
            }
            if rows is not None:
                record["rows"] = rows[key]
            out.append(record)
    return out
