"""Analysis stage: the valley curve per student and the ablation report, as Dagster metadata and a static HTML file.

Both read the scores tables that every scoring run appends to (`scores/runs/*.parquet`, `scores/per_problem/*`),
keep the newest scoring of each checkpoint, and analyse one release (run config; default: the newest one scored).

Both also (re)write the shareable report `reports/valley_report.html` from the same tables: curve, fit, points,
rates, per-difficulty, the ablation table and a provenance summary of every checkpoint scored. Whichever of the two
runs last leaves the complete report, and materializing either one alone never leaves it stale.
"""


import base64

import dagster as dg
import polars as pl

from valley_assets import analysis
from valley_assets import partitions as P
from valley_assets.config import StudyConfig
from valley_assets.defs.common import json_meta, storage_for
from valley_assets.models import checkpoint_manifest_parts
from valley_assets.storage import StudyStorage

IDENTITY = ["student", "data_size", "arm", "release", "prompt_id"]


class AnalysisRunConfig(dg.Config):
    release: str = ""  # empty: the release scored most recently


def read_table(storage: StudyStorage, folder: str) -> pl.DataFrame:
    files = sorted(storage.path("scores", folder).glob("*.parquet")) if storage.exists("scores", folder) else []
    if not files:
        raise FileNotFoundError(f"no scores under {storage.uri('scores', folder)}: materialize lcb_scores first")
    return pl.concat([pl.read_parquet(f.read_bytes()) for f in files], how="diagonal_relaxed")


def latest_per_problem(frame: pl.DataFrame) -> pl.DataFrame:
    """Keep, per checkpoint × release × prompt, only the rows of its newest scoring run."""
    newest = frame.group_by(IDENTITY).agg(pl.col("scored_at").max().alias("_newest"))
    return frame.join(newest, on=IDENTITY).filter(pl.col("scored_at") == pl.col("_newest")).drop("_newest")


def pick_release(frame: pl.DataFrame, requested: str, producer: str) -> str:
    """The requested release, or the one scored most recently; `producer` names the asset that scores these rows."""
    if frame.height == 0:
        raise ValueError(f"no scores to analyse yet: materialize {producer} first")
    if requested:
        if requested not in set(frame["release"].to_list()):
            raise ValueError(f"release {requested!r} has no scores; scored releases: {sorted(set(frame['release']))}")
        return requested
    return frame.sort("scored_at")["release"][-1]


def png_metadata(png: bytes) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{base64.b64encode(png).decode()})")


REPORT_PARTS = ("reports", "valley_report.html")


def checkpoint_provenance_summary(storage: StudyStorage, per_problem: pl.DataFrame) -> dict:
    """Per scored checkpoint, the essentials of its provenance.json (code revision, compute, recipe, data hashes);
    checkpoints without a manifest (trained before manifests existed) are listed as such."""
    summary = {}
    for student, data_size, arm in per_problem.select("student", "data_size", "arm").unique().sort(
            ["arm", "student", "data_size"]).iter_rows():
        parts = checkpoint_manifest_parts(student, data_size, arm)[:-1]
        label = f"{student}/{data_size}" if arm == "main" else f"{student}/{arm} (from {data_size})"
        if not storage.exists(*parts, analysis.MANIFEST_NAME):
            summary[label] = "no provenance.json"
            continue
        record = storage.read_json(*parts, analysis.MANIFEST_NAME)
        summary[label] = {
            "git": record["git"], "wall_time_s": record["wall_time_s"], "gpu_hours": record["gpu_hours"],
            "recipe": (record["hyperparameters"].get("recipe") or {}).get("name", "untrained"),
            "seeds": record["seeds"], "packages": record["packages"],
            "data_files": {e["path"].rsplit("/", 1)[-1]: e["sha256"][:16] for e in record["data_files"]},
        }
    return summary


def build(cfg: StudyConfig) -> dg.Definitions:
    storage = storage_for(cfg)
    prompt_id = cfg.evaluation.prompt_id

    def main_curves(per_problem: pl.DataFrame, release: str) -> dict:
        main = per_problem.filter((pl.col("arm") == "main") & (pl.col("release") == release)
                                  & (pl.col("prompt_id") == prompt_id))
        if main.height == 0:
            return {}
        sizes = set(main["data_size"].to_list())
        return analysis.valley_curves(
            main, rows_by_data_size={k: P.data_size_rows(k, cfg.rows_per_k) for k in sizes}, release=release,
            prompt_id=prompt_id, n_boot=cfg.analysis.bootstrap_samples, seed=cfg.analysis.seed)

    def arm_report(per_problem: pl.DataFrame, release: str):
        arms = per_problem.filter(pl.col("arm").is_in(list(P.ABLATION_ARMS)) & (pl.col("release") == release)
                                  & (pl.col("prompt_id") == prompt_id))
        if arms.height == 0:
            return None
        return analysis.ablation_report(arms, n_boot=cfg.analysis.bootstrap_samples, seed=cfg.analysis.seed)

    def write_report(context, per_problem: pl.DataFrame, release: str, *, curves=None, ablation=None) -> str | None:
        """The shareable HTML report of one release: curves and ablation from the same tables, so it is complete
        whichever asset writes it. Returns its URI, or None when the release has no scaling-curve scores yet."""
        curves = main_curves(per_problem, release) if curves is None else curves
        if not curves:
            context.log.warning(f"no scaling-curve scores on {release}: {storage.uri(*REPORT_PARTS)} not rewritten")
            return None
        ablation = arm_report(per_problem, release) if ablation is None else ablation
        scored = per_problem.filter(pl.col("release") == release)
        html = analysis.render_html_report(
            curves=curves, ablation=ablation, scores=analysis.latest_scores(read_table(storage, "runs")),
            provenance=checkpoint_provenance_summary(storage, scored),
            notes=[f"profile {cfg.profile}; rows per 1k = {cfg.rows_per_k}"])
        storage.write_bytes(html.encode(), *REPORT_PARTS)
        return storage.uri(*REPORT_PARTS)

    @dg.asset(group_name="analysis", deps=["lcb_scores"], kinds={"matplotlib"})
    def valley_curve(context: dg.AssetExecutionContext, config: AnalysisRunConfig) -> dg.MaterializeResult:
        """pass@1, completion rate and think-tag rate against data size per student, base model included; valley
        location/depth, post-valley slope, bootstrap intervals over problems, the paper's points beside ours."""
        per_problem = latest_per_problem(read_table(storage, "per_problem"))
        release = pick_release(per_problem.filter(pl.col("arm") == "main"), config.release, "lcb_scores")
        curves = main_curves(per_problem, release)
        if not curves:
            raise ValueError(f"no scores for prompt {prompt_id!r} on {release}: materialize lcb_scores with it first")
        png = analysis.plot_valley(curves)
        points = analysis.curve_table_rows(curves)
        fits = analysis.fit_table_rows(curves)
        storage.write_bytes(png, "reports", "valley_curve.png")
        storage.write_json({"release": release, "points": points, "fits": fits}, "reports", "valley_curve.json")
        report_path = write_report(context, per_problem, release, curves=curves)
        return dg.MaterializeResult(metadata={
            "release": release,
            "plot": png_metadata(png),
            "rates_plot": png_metadata(analysis.plot_rates(curves)),
            "table": dg.MetadataValue.md(analysis.to_markdown_table(points)),
            "fit": dg.MetadataValue.md(analysis.to_markdown_table(fits) if fits else "_no fit: need base + trained_"),
            "report_path": report_path,
            "points": json_meta(points),
        })

    @dg.asset(group_name="analysis", deps=["ablation_scores", "lcb_scores"], kinds={"matplotlib"})
    def ablation_report(context: dg.AssetExecutionContext, config: AnalysisRunConfig) -> dg.MaterializeResult:
        """Easy vs hard and correct vs incorrect: paired deltas with bootstrap intervals over problems."""
        per_problem = latest_per_problem(read_table(storage, "per_problem"))
        release = pick_release(per_problem.filter(pl.col("arm").is_in(list(P.ABLATION_ARMS))), config.release,
                               "ablation_scores")
        report = arm_report(per_problem, release)
        if report is None:
            raise ValueError(f"no ablation scores for prompt {prompt_id!r} on {release}: materialize ablation_scores")
        rows = report.table_rows()
        storage.write_json({"release": release, "deltas": rows, "missing": report.missing},
                           "reports", "ablation_report.json")
        report_path = write_report(context, per_problem, release, ablation=report)
        return dg.MaterializeResult(metadata={
            "release": release,
            **({"report_path": report_path} if report_path else {}),
            "table": dg.MetadataValue.md(analysis.to_markdown_table(rows) if rows else "_no deltas_"),
            "missing": json_meta(report.missing),
            "deltas": json_meta(rows),
        })

    return dg.Definitions(assets=[valley_curve, ablation_report])
