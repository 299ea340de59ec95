"""Pool build benchmark: wall time, CPU time and peak RSS of build_pool over a synthetic OCR2-shaped folder.

    .venv/bin/python benchmarks/pool_bench.py TRACE_DIR OUT_DIR [--workers N]

Tokenizer stand-in: a regex word/punctuation counter (about the cost of a fast tokenizer on the few rows near the
limit); contamination set: the 580 shared LCB problems when present.

Memory: build_pool may run pass 1 in worker processes, so `peak_tree_rss_gib` samples the summed RSS of this process
and all its descendants every 0.1 s (what the machine actually has to hold); `peak_rss_gib` is this process alone;
`peak_by_phase_gib` splits the samples at the end of pass 1 (OUT_DIR/rss_timeline.csv has them all).
CPU: user + system seconds of this process and its (finished) workers; on a shared machine wall time depends on the
other load, CPU seconds much less.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import threading
import time
from pathlib import Path

from valley_assets.data.lcb import load_shared_lcb
from valley_assets.data.pool import build_pool

_PIECE = re.compile(r"\w+|[^\w\s]")


def count_tokens(texts: list[str]) -> list[int]:
    return [len(_PIECE.findall(t)) for t in texts]


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (FileNotFoundError, ProcessLookupError):
        return 0


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(c) for c in children.read().split())
        except FileNotFoundError:
            continue
        found.append(current)
    return found


class TreeRssSampler(threading.Thread):
    """Peak of the summed RSS of a process tree, sampled."""

    def __init__(self, pid: int, every_s: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.every_s, self.peak, self.stop = pid, every_s, 0, threading.Event()
        self.started = time.monotonic()
        self.timeline: list[tuple[float, int, int]] = []  # (seconds, main RSS, summed worker RSS)

    def run(self) -> None:
        while not self.stop.is_set():
            main = _rss_bytes(self.pid)
            workers = sum(_rss_bytes(p) for p in _descendants(self.pid) if p != self.pid)
            self.peak = max(self.peak, main + workers)
            self.timeline.append((time.monotonic() - self.started, main, workers))
            self.stop.wait(self.every_s)

    def phase_peaks(self, decide_s: float) -> dict:
        """Peak tree / main / workers RSS (GiB) in pass 1 (decide) and pass 2 (write), split at `decide_s`."""
        out = {}
        for phase, rows in (("decide", [r for r in self.timeline if r[0] <= decide_s]),
                            ("write", [r for r in self.timeline if r[0] > decide_s])):
            if rows:
                out[phase] = {"tree": round(max(m + w for _, m, w in rows) / 1024**3, 2),
                              "main": round(max(m for _, m, _ in rows) / 1024**3, 2),
                              "workers": round(max(w for _, _, w in rows) / 1024**3, 2)}
        return out


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("traces", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--workers", type=int, default=None, help="build_pool(workers=...); default: automatic")
    args = parser.parse_args()
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "lcb_2023-05_to_2024-07_public_tests.json"
    problems = load_shared_lcb(shared) if shared.exists() else []
    sampler = TreeRssSampler(os.getpid())
    sampler.start()
    started, cpu_started = time.monotonic(), _cpu_seconds()
    result = build_pool(args.traces, contamination_problems=problems, count_tokens=count_tokens, max_tokens=32_768,
                        seed=0, chars_per_token_low=2.0, chars_per_token_high=8.0, prompt_overhead_tokens=64,
                        out_path=args.out / "pool.parquet", quarantine_path=args.out / "quarantine.parquet",
                        workers=args.workers)
    wall = time.monotonic() - started
    cpu = _cpu_seconds() - cpu_started
    sampler.stop.set()
    sampler.join()
    stats = result.stats
    print(json.dumps({
        "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "workers": stats.get("workers"),
        "peak_tree_rss_gib": round(sampler.peak / 1024**3, 2),
        "peak_by_phase_gib": sampler.phase_peaks(stats["seconds"]["decide"]),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
        "peak_worker_rss_gib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2, 2),
        "n_input": stats["n_input"], "n_pool": stats["n_pool"],
        "reasons": {k: v for k, v in stats["reasons"].items() if v},
        "n_tokenized_exactly": stats["n_tokenized_exactly"], "seconds": stats["seconds"],
        "pool_bytes": (args.out / "pool.parquet").stat().st_size,
    }, indent=1))
    (args.out / "stats.json").write_text(json.dumps(stats, indent=1, default=str))
    with open(args.out / "rss_timeline.csv", "w") as timeline:
        timeline.write("seconds,main_rss_bytes,workers_rss_bytes\n")
        timeline.writelines(f"{t:.1f},{m},{w}\n" for t, m, w in sampler.timeline)


if __name__ == "__main__":
    main()
