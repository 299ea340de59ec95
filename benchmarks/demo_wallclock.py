"""Time the demo (`valley demo`, the whole graph on the embedded profile) from a clean Dagster home and storage.

    .venv/bin/python benchmarks/demo_wallclock.py [--keep DIR]

Runs the same console command as `make demo`, in a fresh temporary project dir, and prints wall time and the number
of runs. Target (issue A): under 10 minutes on a 2-core machine.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", help="use this folder for the Dagster home and storage and keep it")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="valley-demo-bench-"))
    if work.exists():
        shutil.rmtree(work)
    (work / "home").mkdir(parents=True)
    env = {**os.environ, "DAGSTER_HOME": str(work / "home"), "VALLEY_PROJECT_DIR": str(work),
           "VALLEY_PROFILE": "demo"}
    env.pop("VALLEY_CONFIG", None)
    started = time.time()
    proc = subprocess.run([str(Path(sys.executable).parent / "valley"), "demo"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    wall = time.time() - started
    sys.stdout.write(proc.stdout[-3000:])
    if proc.returncode:
        sys.stderr.write(proc.stderr[-5000:])
        print(f"demo FAILED after {wall:.1f}s (exit {proc.returncode})")
        return proc.returncode
    runs = re.search(r"valley: (\d+) runs", proc.stdout)
    print(f"demo wall time: {wall:.1f}s ({wall / 60:.2f} min), runs: {runs.group(1) if runs else '?'}, "
          f"cores: {os.cpu_count()}, load average at end: {os.getloadavg()[0]:.2f}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
