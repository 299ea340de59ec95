"""Analysis stage: the valley curve per student and the ablation report, as Dagster metadata and a static HTML file.

Both read the scores tables that every scoring run appends to (`scores/runs/*.parquet`, `scores/per_problem/*`),
keep the newest scoring of each checkpoint, and analyse one release (run config; default: the newest one scored).
"""


import base64

import dagster as dg
import polars as pl

from valley_assets import analysis
from valley_assets import partitions as P
from valley_assets.config import StudyConfig
from valley_assets.defs.common import json_meta, storage_for
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


def pick_release(frame: pl.DataFrame, requested: str) -> str:
    if requested:
        if requested not in set(frame["release"].to_list()):
            raise ValueError(f"release {requested!r} has no scores; scored releases: {sorted(set(frame['release']))}")
        return requested
    return frame.sort("scored_at")["release"][-1]


def png_metadata(png: bytes) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{base64.b64encode(png).decode()})")


def build(cfg: StudyConfig) -> dg.Definitions:
    storage = storage_for(cfg)
    rows_by_size = lambda keys: {k: P.data_size_rows(k, cfg.rows_per_k) for k in keys}  # noqa: E731

    @dg.asset(group_name="analysis", deps=["lcb_scores"], kinds={"matplotlib"})
    def valley_curve(context: dg.AssetExecutionContext, config: AnalysisRunConfig) -> dg.MaterializeResult:
        """pass@1, completion rate and think-tag rate against data size per student, base model included; valley
        location/depth, post-valley slope, bootstrap intervals over problems, the paper's points beside ours."""
        per_problem = latest_per_problem(read_table(storage, "per_problem"))
        main = per_problem.filter(pl.col("arm") == "main")
        release = pick_release(main, config.release)
        main = main.filter((pl.col("release") == release) & (pl.col("prompt_id") == cfg.evaluation.prompt_id))
        curves = analysis.valley_curves(
            main, rows_by_data_size=rows_by_size(set(main["data_size"].to_list())), release=release,
            prompt_id=cfg.evaluation.prompt_id, n_boot=cfg.analysis.bootstrap_samples, seed=cfg.analysis.seed)
        png = analysis.plot_valley(curves)
        points = analysis.curve_table_rows(curves)
        fits = analysis.fit_table_rows(curves)
        storage.write_bytes(png, "reports", "valley_curve.png")
        storage.write_json({"release": release, "points": points, "fits": fits}, "reports", "valley_curve.json")
        html = analysis.render_html_report(curves=curves, scores=analysis.latest_scores(read_table(storage, "runs")),
                                           notes=[f"profile {cfg.profile}; rows per 1k = {cfg.rows_per_k}"])
        storage.write_bytes(html.encode(), "reports", "valley_report.html")
        return dg.MaterializeResult(metadata={
            "release": release,
            "plot": png_metadata(png),
            "rates_plot": png_metadata(analysis.plot_rates(curves)),
            "table": dg.MetadataValue.md(analysis.to_markdown_table(points)),
            "fit": dg.MetadataValue.md(analysis.to_markdown_table(fits) if fits else "_no fit: need base + trained_"),
            "report_path": storage.uri("reports", "valley_report.html"),
            "points": json_meta(points),
        })

    @dg.asset(group_name="analysis", deps=["ablation_scores", "lcb_scores"], kinds={"matplotlib"})
    def ablation_report(context: dg.AssetExecutionContext, config: AnalysisRunConfig) -> dg.MaterializeResult:
        """Easy vs hard and correct vs incorrect: paired deltas with bootstrap intervals over problems."""
        per_problem = latest_per_problem(read_table(storage, "per_problem"))
        arms = per_problem.filter(pl.col("arm").is_in(list(P.ABLATION_ARMS)))
        release = pick_release(arms, config.release)
        arms = arms.filter((pl.col("release") == release) & (pl.col("prompt_id") == cfg.evaluation.prompt_id))
        report = analysis.ablation_report(arms, n_boot=cfg.analysis.bootstrap_samples, seed=cfg.analysis.seed)
        rows = report.table_rows()
        storage.write_json({"release": release, "deltas": rows, "missing": report.missing},
                           "reports", "ablation_report.json")
        return dg.MaterializeResult(metadata={
            "release": release,
            "table": dg.MetadataValue.md(analysis.to_markdown_table(rows) if rows else "_no deltas_"),
            "missing": json_meta(report.missing),
            "deltas": json_meta(rows),
        })

    return dg.Definitions(assets=[valley_curve, ablation_report])
