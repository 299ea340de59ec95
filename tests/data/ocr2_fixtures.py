"""OCR2-shaped rows and shards for tests: real column names, realistic quirks, deterministic."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

OCR2_COLUMNS = ("id", "question_id", "question", "r1_generation", "qwq_critique", "solution", "judgement",
                "pass_rate", "source", "license", "dataset", "split", "difficulty", "index")

WORDS = ("array integer string query graph tree node edge weight sum minimum maximum distinct prefix suffix "
         "modulo permutation subsequence interval segment matrix grid path cost value index pair").split()


def question_text(k: int) -> str:
    rng = random.Random(k)
    body = " ".join(rng.choice(WORDS) for _ in range(60))
    return f"Problem {k}. Given an {body}. Print the answer modulo 10^9+7."


def generation(k: int, variant: int = 0, *, think: bool = True, code: bool = True, pad: int = 0) -> str:
    reasoning = f"<think>\nLet me think about problem {k}, attempt {variant}. " + "Consider cases. " * pad
    reasoning += "So the answer is the sum.\n</think>\n" if think else "Still thinking..."
    answer = f"```python\nn = int(input())\nprint(n * {k} + {variant})\n```\n" if code else "The answer is 42.\n"
    return reasoning + ("\n" + answer if think else "")


def row(k: int, variant: int = 0, **overrides) -> dict:
    base = {
        "id": f"id-{k}-{variant}",
        "question_id": f"q{k}",
        "question": "-",
        "r1_generation": generation(k, variant),
        "qwq_critique": "Looks right.",
        "solution": f"print({k})",
        "judgement": "right" if (k + variant) % 3 else "wrong",
        "pass_rate": 1.0 if (k + variant) % 3 else 0.0,
        "source": "codechef",
        "license": "CC BY 4.0",
        "dataset": "taco",
        "split": "train",
        "difficulty": ("EASY", "MEDIUM", "MEDIUM_HARD", "HARD", "VERY_HARD", "UNKNOWN_DIFFICULTY")[k % 6],
        "index": str(k),
    }
    base.update(overrides)
    return base


def write_shard(path: Path, rows: list[dict], *, binary_columns: tuple[str, ...] = ()) -> Path:
    """Write rows with OCR2 types; `binary_columns` are stored as bytes (how non-UTF-8 text reaches parquet)."""
    arrays = {}
    for name in OCR2_COLUMNS:
        values = [r.get(name) for r in rows]
        if name == "pass_rate":
            arrays[name] = pa.array(values, type=pa.float64())
        elif name in binary_columns:
            arrays[name] = pa.array([v if isinstance(v, (bytes, type(None))) else v.encode() for v in values],
                                    type=pa.binary())
        else:
            arrays[name] = pa.array(values, type=pa.string())
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(arrays), path)
    return path
