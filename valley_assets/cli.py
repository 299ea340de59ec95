"""`valley` command line: run the study, grade generations, manage partitions.

    valley demo                       materialize the whole graph on the active profile (default: embedded demo)
    valley grade --problems P --generations G --out R [...]     the LiveCodeBench-exact grader
    valley add-data-size 3k [100k …]  register new data_size partitions (validated), then backfill them in the UI
"""

from __future__ import annotations

import argparse
import os
import sys


def _instance():
    import dagster as dg

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise SystemExit("DAGSTER_HOME is not set: point it at the Dagster home folder (make demo uses .dagster_home)")
    os.makedirs(home, exist_ok=True)
    return dg.DagsterInstance.get()


def cmd_demo(args: argparse.Namespace) -> int:
    from valley_assets.config import load_study_config
    from valley_assets.definitions import build_definitions
    from valley_assets.study_runner import run_study, unmaterialized

    cfg = load_study_config(args.config)
    defs = build_definitions(cfg)
    instance = _instance()
    print(f"valley: profile {cfg.profile}, storage {cfg.resolved_storage_root()}, Dagster home {instance.root_directory}")
    summary = run_study(defs, cfg, instance, only_missing=not args.redo)
    print(f"valley: {summary['runs']} runs, {summary['skipped']} partitions already done, {summary['wall_s']} s")
    expected, missing = unmaterialized(defs, instance)
    if missing:
        print(f"valley: {len(missing)} of {expected} asset partitions have no materialization: {missing[:20]}",
              file=sys.stderr)
        return 1
    print(f"valley: every asset partition of the graph is materialized ({expected})")
    print_curve(cfg.resolved_storage_root())
    from valley_assets.layout import StudyLayout

    report = StudyLayout(cfg.resolved_storage_root()).report_html()
    if report.exists():
        print(f"valley: report at {report.uri}")
    print("valley: open the UI on this home with `make ui` (dagster dev -w workspace.yaml), then http://127.0.0.1:3000")
    return 0


CURVE_COLUMNS = ("student", "data_size", "rows", "pass@1", "pass@1 CI", "completion", "think")
FIT_COLUMNS = ("student", "source", "valley at", "base", "valley", "depth", "depth CI", "slope/decade")


def print_curve(storage_root: str) -> bool:
    """Print the curve and the valley fit that the `valley_curve` asset wrote (reports/valley_curve.json) as
    tables; False when that file is not there."""
    from valley_assets.analysis.report import to_markdown_table
    from valley_assets.layout import StudyLayout

    stored = StudyLayout(storage_root).valley_curve_json()
    if not stored.is_file():
        return False
    curve = stored.read_json()
    print(f"valley: the curve on {curve['release']} (pass@1 with its 95% bootstrap interval over problems):")
    print(to_markdown_table(curve["points"], CURVE_COLUMNS), end="")
    if curve.get("fits"):
        print("valley: the valley fit:")
        print(to_markdown_table(curve["fits"], FIT_COLUMNS), end="")
    return True


def cmd_add_data_size(args: argparse.Namespace) -> int:
    from valley_assets.partitions import add_data_sizes

    new = add_data_sizes(_instance(), args.keys)
    print(f"added data_size partitions: {new or 'none (all existed)'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "grade":  # the grader owns its own argument parser
        from valley_assets.grading.cli import main as grade_main

        return grade_main(argv[1:])
    parser = argparse.ArgumentParser(prog="valley", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="materialize the whole study graph (all partitions) into DAGSTER_HOME")
    demo.add_argument("--config", help="study config YAML (default: VALLEY_CONFIG or the VALLEY_PROFILE profile)")
    demo.add_argument("--redo", action="store_true", help="re-materialize partitions that are already done")
    demo.set_defaults(func=cmd_demo)
    add = sub.add_parser("add-data-size", help="register data_size partitions such as 3k or 100k")
    add.add_argument("keys", nargs="+")
    add.set_defaults(func=cmd_add_data_size)
    sub.add_parser("grade", help="grade generations (see `valley grade --help`)")
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
