"""Analysis and reports: valley curves with bootstrap intervals, ablation deltas, figures, HTML report, provenance.

Pure functions over the per-problem eval table and the scores table of docs/architecture.md; no Dagster, no storage.
"""

from valley_assets.analysis.ablation import AblationDelta, AblationReport, ablation_report
from valley_assets.analysis.bootstrap import Estimate, bootstrap_mean, paired_bootstrap_difference
from valley_assets.analysis.curve_tables import curve_table_rows, fit_table_rows, window_table_rows
from valley_assets.analysis.curves import PAPER_PASS_AT_1, CurvePoint, PaperPoint, ValleyCurve, valley_curves
from valley_assets.analysis.plots import plot_difficulty, plot_rates, plot_valley
from valley_assets.analysis.provenance import (
    MANIFEST_NAME,
    provenance_manifest,
    sha256_file,
    verify_data_files,
    write_manifest,
)
from valley_assets.analysis.report import (
    external_references,
    render_html_report,
    summary_markdown,
    to_html_table,
    to_markdown_table,
)
from valley_assets.analysis.tables import TableError, latest_scores, read_per_problem, read_scores
from valley_assets.analysis.valley_fit import ValleyFit, fit_valley, log_linear_slope

__all__ = [
    "MANIFEST_NAME",
    "PAPER_PASS_AT_1",
    "AblationDelta",
    "AblationReport",
    "CurvePoint",
    "Estimate",
    "PaperPoint",
    "TableError",
    "ValleyCurve",
    "ValleyFit",
    "ablation_report",
    "bootstrap_mean",
    "curve_table_rows",
    "external_references",
    "fit_table_rows",
    "fit_valley",
    "latest_scores",
    "log_linear_slope",
    "paired_bootstrap_difference",
    "plot_difficulty",
    "plot_rates",
    "plot_valley",
    "provenance_manifest",
    "read_per_problem",
    "read_scores",
    "render_html_report",
    "sha256_file",
    "summary_markdown",
    "to_html_table",
    "to_markdown_table",
    "valley_curves",
    "verify_data_files",
    "window_table_rows",
    "write_manifest",
]
