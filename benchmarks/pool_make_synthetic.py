"""Write a synthetic OCR2-shaped trace set to disk for the pool benchmark.

    .venv/bin/python benchmarks/pool_make_synthetic.py OUT_DIR --rows 140000 --shards 70 [--mean-chars 30000]

A big set can be written by two processes into one folder: `--stop-shard K` for the first, `--first-shard K` for
the second (same paragraphs and questions; the second's rows come from their own random stream).

Traces: `<think>` reasoning built from random 1 KB paragraphs (lognormal length, mean --mean-chars, long tail past
the 32K-token limit), then a fenced python answer. ~40 traces per question (as in OCR2), TACO difficulty labels,
~2% rows with defects (no `</think>`, "-" question, NaN pass_rate, exact duplicates) and ~0.1% questions copied from
the shared LCB file when it is present. zstd parquet, one file per shard.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

WORDS = ("we need to find the minimum cost path so consider each node and its edges then the answer is sum of "
         "weights modulo prime wait let me check the sample again maybe dynamic programming over prefix works "
         "because transitions only depend on previous state hmm but n up to 2e5 means O(n log n)").split()
DIFFICULTIES = ("EASY", "MEDIUM", "MEDIUM_HARD", "HARD", "VERY_HARD", "UNKNOWN_DIFFICULTY")


def paragraphs(rng: np.random.Generator, n: int, size: int = 1000) -> list[str]:
    out = []
    for _ in range(n):
        words = rng.choice(WORDS, size=size // 4)
        out.append(" ".join(words)[:size] + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=140_000)
    parser.add_argument("--shards", type=int, default=70)
    parser.add_argument("--mean-chars", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first-shard", type=int, default=0,
                        help="write shards from this one on (to generate a big set in several processes; the "
                             "paragraphs and questions are the same, the rows come from a per-shard random stream)")
    parser.add_argument("--stop-shard", type=int, default=None,
                        help="stop before this shard (with --first-shard: split a big set over several processes "
                             "writing into the same folder)")
    args = parser.parse_args()
    stop_shard = args.shards if args.stop_shard is None else min(args.stop_shard, args.shards)
    rng = np.random.default_rng(args.seed)
    blocks = paragraphs(rng, 4096)
    n_questions = max(1, args.rows // 40)
    questions = [f"Problem {q}: " + "".join(blocks[j] for j in rng.integers(0, len(blocks), 2)) for q in range(n_questions)]
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "lcb_2023-05_to_2024-07_public_tests.json"
    if shared.exists():
        lcb = [p["problem"] for p in json.loads(shared.read_text())]
        for q in range(0, n_questions, 1000):  # ~0.1% contaminated questions
            questions[q] = lcb[q % len(lcb)]
    if args.first_shard:
        rng = np.random.default_rng([args.seed, args.first_shard])
    sigma = 0.6
    mu = math.log(args.mean_chars) - sigma**2 / 2
    args.out.mkdir(parents=True, exist_ok=True)
    per_shard = math.ceil(args.rows / args.shards)
    total_chars = 0
    for shard in range(args.first_shard, stop_shard):
        start, stop = shard * per_shard, min(args.rows, (shard + 1) * per_shard)
        if start >= stop:
            break
        n = stop - start
        lengths = rng.lognormal(mu, sigma, n).astype(np.int64)
        qids = rng.integers(0, n_questions, n)
        cols = {c: [] for c in ("id", "question_id", "question", "r1_generation", "qwq_critique", "solution",
                                "judgement", "source", "license", "dataset", "split", "difficulty", "index")}
        pass_rate = []
        for k in range(n):
            i = start + k
            n_blocks = max(1, int(lengths[k] // 1000))
            body = "".join(blocks[j] for j in rng.integers(0, len(blocks), n_blocks))
            defect = rng.random()
            close = "" if defect < 0.005 else "</think>"
            gen = f"<think>\nTrace {i}.\n{body}{close}\n\n```python\nimport sys\nprint({i})\n```\n"
            if defect > 0.995 and cols["r1_generation"]:
                gen = cols["r1_generation"][-1]  # exact duplicate of the previous row
            q = int(qids[k])
            cols["id"].append(f"ocr2-{i:08d}")
            cols["question_id"].append(f"q{q:06d}")
            cols["question"].append("-" if 0.005 <= defect < 0.01 else questions[q])
            cols["r1_generation"].append(gen)
            cols["qwq_critique"].append("The solution is correct." if q % 3 else "The solution is wrong.")
            cols["solution"].append(f"print({i})")
            cols["judgement"].append("right" if q % 3 else "wrong")
            pass_rate.append(float("nan") if 0.01 <= defect < 0.015 else (1.0 if q % 3 else 0.2))
            cols["source"].append("codeforces")
            cols["license"].append("CC BY 4.0")
            cols["dataset"].append("taco")
            cols["split"].append("train")
            cols["difficulty"].append(DIFFICULTIES[q % 6])
            cols["index"].append(str(q))
            total_chars += len(gen)
        table = pa.table({**{c: pa.array(v, pa.string()) for c, v in cols.items()},
                          "pass_rate": pa.array(pass_rate, pa.float64())})
        pq.write_table(table, args.out / f"part-{shard:05d}.parquet", compression="zstd", row_group_size=2048)
    n_written = min(args.rows, stop_shard * per_shard) - min(args.rows, args.first_shard * per_shard)
    print(json.dumps({"rows": n_written, "shards": stop_shard - args.first_shard,
                      "mean_generation_chars": total_chars / max(1, n_written)}))


if __name__ == "__main__":
    main()
