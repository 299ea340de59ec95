"""Analysis stage: the valley curve per student, the ablation report, and the shareable HTML report.

All three read the scores tables that every scoring run appends to (`scores/runs/*.parquet`, `scores/per_problem/*`),
keep the newest scoring of each checkpoint, and analyse one release (`common.resolve_release` over the releases in
the tables, in scoring order: run config, default the one scored most recently).

`valley_report` is its own asset, downstream of `valley_curve` and `ablation_report`, and the only writer of
`reports/valley_report.html`: curve, fit, points, rates, per-difficulty, the ablation table (when the release has
ablation scores) and a provenance summary of every checkpoint scored. (Both upstream assets used to rewrite it,
whichever ran last winning.)
"""


import base64

import dagster as dg
import polars as pl

from valley_assets import analysis
from valley_assets import partitions as P
from valley_assets.config import StudyConfig
from valley_assets.defs.common import json_meta, on_new_scores, resolve_release
from valley_assets.layout import MAIN_ARM, StudyLayout

IDENTITY = ["student", "data_size", "arm", "release", "prompt_id"]


class AnalysisRunConfig(dg.Config):
    release: str = ""  # empty: the release scored most recently


def read_table(layout: StudyLayout, table: str) -> pl.DataFrame:
    files = layout.scores_table(table).list(pattern="*.parquet")
    if not files:
        raise FileNotFoundError(f"no scores under {layout.scores_table(table).uri}: materialize lcb_scores first")
    return pl.concat([pl.read_parquet(layout.storage.fs.cat_file(f)) for f in files], how="diagonal_relaxed")


def latest_per_problem(frame: pl.DataFrame) -> pl.DataFrame:
    """Keep, per checkpoint × release × prompt, only the rows of its newest scoring run."""
    newest = frame.group_by(IDENTITY).agg(pl.col("scored_at").max().alias("_newest"))
    return frame.join(newest, on=IDENTITY).filter(pl.col("scored_at") == pl.col("_newest")).drop("_newest")


def pick_release(frame: pl.DataFrame, requested: str, producer: str) -> str:
    """The release to analyse (`common.resolve_release`): the releases of these rows in scoring order, so the default
    is the one scored most recently; `producer` names the asset that scores these rows."""
    by_last_scoring = frame.group_by("release").agg(pl.col("scored_at").max()).sort(["scored_at", "release"])
    return resolve_release(requested, by_last_scoring["release"].to_list(),
                           what=f"scores to analyse (materialize {producer} first)")


def png_metadata(png: bytes) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{base64.b64encode(png).decode()})")


def checkpoint_provenance_summary(layout: StudyLayout, per_problem: pl.DataFrame) -> dict:
    """Per scored checkpoint, the essentials of its provenance.json (code revision, compute, recipe, data hashes);
    checkpoints without a manifest (trained before manifests existed) are listed as such."""
    summary = {}
    for student, data_size, arm in per_problem.select("student", "data_size", "arm").unique().sort(
            ["arm", "student", "data_size"]).iter_rows():
        manifest = layout.checkpoint_provenance(student, data_size, arm)
        label = f"{student}/{data_size}" if arm == MAIN_ARM else f"{student}/{arm} (from {data_size})"
        if not manifest.exists():
            summary[label] = "no provenance.json"
            continue
        record = manifest.read_json()
        summary[label] = {
            "git": record["git"], "wall_time_s": record["wall_time_s"], "gpu_hours": record["gpu_hours"],
            "recipe": (record["hyperparameters"].get("recipe") or {}).get("name", "untrained"),
            "seeds": record["seeds"], "packages": record["packages"],
            "data_files": {e["path"].rsplit("/", 1)[-1]: e["sha256"][:16] for e in record["data_files"]},
        }
    return summary


def build(cfg: StudyConfig) -> dg.Definitions:
    prompt_id = cfg.evaluation.prompt_id
    analysis_cfg, rows_per_k, profile = cfg.analysis, cfg.rows_per_k, cfg.profile

    def main_curves(per_problem: pl.DataFrame, release: str) -> dict:
        main = per_problem.filter((pl.col("arm") == MAIN_ARM) & (pl.col("release") == release)
                                  & (pl.col("prompt_id") == prompt_id))
        if main.height == 0:
            return {}
        sizes = set(main["data_size"].to_list())
        return analysis.valley_curves(
            main, rows_by_data_size={k: P.data_size_rows(k, rows_per_k) for k in sizes}, release=release,
            prompt_id=prompt_id, n_boot=analysis_cfg.bootstrap_samples, seed=analysis_cfg.seed)

    # The profile's date windows, per student (an after-cutoff window starts at each student's own cutoff).
    windows_by_student = {s.name: cfg.benchmark.scoring_windows(s.cutoff)[1:] for s in cfg.students}

    def window_rows(per_problem: pl.DataFrame, release: str) -> list[dict]:
        main = per_problem.filter((pl.col("arm") == MAIN_ARM) & (pl.col("release") == release)
                                  & (pl.col("prompt_id") == prompt_id))
        if main.height == 0 or not any(windows_by_student.values()):
            return []
        return analysis.window_table_rows(
            main, windows_by_student, rows_by_data_size={k: P.data_size_rows(k, rows_per_k)
                                                         for k in set(main["data_size"].to_list())},
            release=release, prompt_id=prompt_id, n_boot=analysis_cfg.bootstrap_samples, seed=analysis_cfg.seed)

    def arm_report(per_problem: pl.DataFrame, release: str):
        arms = per_problem.filter(pl.col("arm").is_in(list(P.ABLATION_ARMS)) & (pl.col("release") == release)
                                  & (pl.col("prompt_id") == prompt_id))
        if arms.height == 0:
            return None
        return analysis.ablation_report(arms, n_boot=analysis_cfg.bootstrap_samples, seed=analysis_cfg.seed)

    @dg.asset(group_name="analysis", deps=["lcb_scores"], kinds={"matplotlib"},
              automation_condition=on_new_scores())
    def valley_curve(context: dg.AssetExecutionContext, config: AnalysisRunConfig,
                     layout: dg.ResourceParam[StudyLayout]) -> dg.MaterializeResult:
        """pass@1, completion rate and think-tag rate against data size per student, base model included; valley
        location/depth, post-valley slope, bootstrap intervals over problems, the paper's points beside ours."""
        per_problem = latest_per_problem(read_table(layout, "per_problem"))
        release = pick_release(per_problem.filter(pl.col("arm") == MAIN_ARM), config.release, "lcb_scores")
        curves = main_curves(per_problem, release)
        if not curves:
            raise ValueError(f"no scores for prompt {prompt_id!r} on {release}: materialize lcb_scores with it first")
        png = analysis.plot_valley(curves)
        points = analysis.curve_table_rows(curves)
        fits = analysis.fit_table_rows(curves)
        layout.valley_curve_png().write_bytes(png)
        windows = window_rows(per_problem, release)
        layout.valley_curve_json().write_json({"release": release, "points": points, "fits": fits,
                                               "windows": windows})
        return dg.MaterializeResult(metadata={
            "release": release,
            "pass@1_by_window": dg.MetadataValue.md(analysis.to_markdown_table(windows) if windows
                                                    else "_no date windows in the profile_"),
            "plot": png_metadata(png),
            "rates_plot": png_metadata(analysis.plot_rates(curves)),
            "table": dg.MetadataValue.md(analysis.to_markdown_table(points)),
            "fit": dg.MetadataValue.md(analysis.to_markdown_table(fits) if fits else "_no fit: need base + trained_"),
            "points": json_meta(points),
        })

    @dg.asset(group_name="analysis", deps=["ablation_scores", "lcb_scores"], kinds={"matplotlib"},
              automation_condition=on_new_scores(only=["ablation_scores"]))
    def ablation_report(context: dg.AssetExecutionContext, config: AnalysisRunConfig,
                        layout: dg.ResourceParam[StudyLayout]) -> dg.MaterializeResult:
        """Easy vs hard and correct vs incorrect: paired deltas with bootstrap intervals over problems."""
        per_problem = latest_per_problem(read_table(layout, "per_problem"))
        release = pick_release(per_problem.filter(pl.col("arm").is_in(list(P.ABLATION_ARMS))), config.release,
                               "ablation_scores")
        report = arm_report(per_problem, release)
        if report is None:
            raise ValueError(f"no ablation scores for prompt {prompt_id!r} on {release}: materialize ablation_scores")
        rows = report.table_rows()
        layout.ablation_report_json().write_json({"release": release, "deltas": rows, "missing": report.missing})
        return dg.MaterializeResult(metadata={
            "release": release,
            "table": dg.MetadataValue.md(analysis.to_markdown_table(rows) if rows else "_no deltas_"),
            "missing": json_meta(report.missing),
            "deltas": json_meta(rows),
        })

    @dg.asset(group_name="analysis", deps=[valley_curve, ablation_report], kinds={"html"},
              automation_condition=on_new_scores())
    def valley_report(context: dg.AssetExecutionContext, config: AnalysisRunConfig,
                      layout: dg.ResourceParam[StudyLayout]) -> dg.MaterializeResult:
        """The shareable HTML report of one release (the curve's): curves, fit, rates, per-difficulty, the ablation
        table when that release has ablation scores, the scores table and every scored checkpoint's provenance."""
        per_problem = latest_per_problem(read_table(layout, "per_problem"))
        release = pick_release(per_problem.filter(pl.col("arm") == MAIN_ARM), config.release, "lcb_scores")
        curves = main_curves(per_problem, release)
        if not curves:
            raise ValueError(f"no scores for prompt {prompt_id!r} on {release}: materialize lcb_scores with it first")
        ablation = arm_report(per_problem, release)
        html = analysis.render_html_report(
            curves=curves, ablation=ablation, scores=analysis.latest_scores(read_table(layout, "runs")),
            provenance=checkpoint_provenance_summary(layout, per_problem.filter(pl.col("release") == release)),
            notes=[f"profile {profile}; rows per 1k = {rows_per_k}"], windows=window_rows(per_problem, release))
        path = layout.report_html().write_bytes(html.encode())
        return dg.MaterializeResult(metadata={"release": release, "report_path": path,
                                              "has_ablation": ablation is not None})

    return dg.Definitions(assets=[valley_curve, ablation_report, valley_report])
