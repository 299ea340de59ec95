"""Pool build benchmark: wall time and peak RSS of build_pool over a synthetic OCR2-shaped folder.

    .venv/bin/python benchmarks/pool_bench.py TRACE_DIR OUT_DIR

Tokenizer stand-in: a regex word/punctuation counter (about the cost of a fast tokenizer on the few rows near the
limit); contamination set: the 580 shared LCB problems when present.
"""

from __future__ import annotations

import json
import re
import resource
import sys
import time
from pathlib import Path

from valley_assets.data.lcb import load_shared_lcb
from valley_assets.data.pool import build_pool

_PIECE = re.compile(r"\w+|[^\w\s]")


def count_tokens(texts: list[str]) -> list[int]:
    return [len(_PIECE.findall(t)) for t in texts]


def main() -> None:
    traces, out = Path(sys.argv[1]), Path(sys.argv[2])
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "lcb_2023-05_to_2024-07_public_tests.json"
    problems = load_shared_lcb(shared) if shared.exists() else []
    started = time.monotonic()
    result = build_pool(traces, contamination_problems=problems, count_tokens=count_tokens, max_tokens=32_768,
                        seed=0, chars_per_token_low=2.0, chars_per_token_high=8.0, prompt_overhead_tokens=64,
                        out_path=out / "pool.parquet", quarantine_path=out / "quarantine.parquet")
    wall = time.monotonic() - started
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    stats = result.stats
    print(json.dumps({"wall_s": round(wall, 1), "peak_rss_gib": round(peak_gib, 2), "n_input": stats["n_input"],
                      "n_pool": stats["n_pool"], "reasons": {k: v for k, v in stats["reasons"].items() if v},
                      "n_tokenized_exactly": stats["n_tokenized_exactly"], "seconds": stats["seconds"],
                      "pool_bytes": (out / "pool.parquet").stat().st_size}, indent=1))


if __name__ == "__main__":
    main()
