"""Markdown tables and a static, self-contained HTML report.

The HTML opens from a file with no network: figures are inlined as base64 PNG data URIs, the CSS sits in a <style>
element, and there are no scripts, fonts, links or external images. Every piece of text that comes from data (student
names, release keys, provenance values) is HTML-escaped.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from html.parser import HTMLParser
from typing import Any

import polars as pl

from valley_assets.analysis.ablation import AblationReport
from valley_assets.analysis.curve_tables import curve_table_rows, fit_table_rows
from valley_assets.analysis.curves import ValleyCurve
from valley_assets.analysis.plots import plot_difficulty, plot_rates, plot_valley
from valley_assets.analysis.tables import TableLike, latest_scores

Rows = Sequence[Mapping[str, Any]] | pl.DataFrame


def format_cell(value: Any, digits: int = 3) -> str:
    """How one value reads in a table: floats to `digits` places, (low, high) pairs as [low, high], None as —."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"[{format_cell(float(value[0]), digits)}, {format_cell(float(value[1]), digits)}]"
    return str(value)


def _rows_and_columns(rows: Rows, columns: Sequence[str] | None) -> tuple[list[Mapping[str, Any]], list[str]]:
    records = rows.to_dicts() if isinstance(rows, pl.DataFrame) else list(rows)
    if columns is None:
        seen: dict[str, None] = {}
        for record in records:
            seen.update(dict.fromkeys(record))
        columns = list(seen)
    return records, list(columns)


def to_markdown_table(rows: Rows, columns: Sequence[str] | None = None, *, digits: int = 3) -> str:
    """A GitHub-flavoured markdown table; columns default to every key in first-seen order. Pipes are escaped."""
    records, cols = _rows_and_columns(rows, columns)
    if not cols:
        raise ValueError("to_markdown_table: no columns to show (empty rows and no columns given)")

    def cell(value: Any) -> str:
        return format_cell(value, digits).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in records]
    return "\n".join(lines) + "\n"


def to_html_table(rows: Rows, columns: Sequence[str] | None = None, *, digits: int = 3) -> str:
    records, cols = _rows_and_columns(rows, columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_cell(r.get(c), digits))}</td>" for c in cols) + "</tr>"
        for r in records
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def summary_markdown(curves: Mapping[str, ValleyCurve], ablation: AblationReport | None = None) -> str:
    """Fit, points and (optionally) ablation tables as one markdown string, e.g. for Dagster asset metadata."""
    parts = []
    fits = fit_table_rows(curves)
    if fits:
        parts += ["### Valley fit", to_markdown_table(fits)]
    parts += ["### Points", to_markdown_table(curve_table_rows(curves))]
    if ablation is not None and ablation.deltas:
        parts += ["### Ablation (first arm - second arm, paired bootstrap)", to_markdown_table(ablation.table_rows())]
    return "\n".join(parts)


def png_data_uri(png: bytes) -> str:
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("png_data_uri: bytes are not a PNG image")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.82em; }
.note { color: #555; font-size: 0.9em; }
"""

_DEFINITIONS = (
    "pass@1 is the mean over problems of c/n (samples passing / samples drawn). Intervals are {pct}% percentile "
    "bootstraps over problems ({n_boot} resamples, seed {seed}). The valley is the trained size with the lowest pass@1; "
    "depth = (base - valley) / base. The post-valley slope is the least-squares slope of pass@1 on log10(rows) over "
    "the trained sizes at or after the valley (pass@1 per tenfold more data). Depth and slope intervals resample the "
    "problems shared by every size jointly; argmin stability is the share of resamples whose lowest size is the "
    "observed valley. Paper points (dashed) are the published numbers for the same student."
)


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _figure(png: bytes, alt: str) -> str:
    return f'<figure><img alt="{html.escape(alt)}" src="{png_data_uri(png)}"></figure>'


def render_html_report(
    *,
    curves: Mapping[str, ValleyCurve],
    title: str = "The Valley of Code Reasoning: reproduction report",
    ablation: AblationReport | None = None,
    provenance: Mapping[str, Any] | None = None,
    scores: TableLike | None = None,
    notes: Iterable[str] = (),
    generated_at: dt.datetime | None = None,
    windows: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The full report as one HTML string: curve figures, fit and point tables, ablation, scores, provenance."""
    if not curves:
        raise ValueError("render_html_report needs at least one valley curve")
    first = next(iter(curves.values()))
    when = (generated_at or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">generated {html.escape(when)} · release {html.escape(first.release)} · prompt '
        f"{html.escape(first.prompt_id)} · arm {html.escape(first.arm)}</p>",
        *(f"<p>{html.escape(n)}</p>" for n in notes),
    ]
    parts.append(
        _section(
            "Valley curve",
            _figure(plot_valley(curves), "pass@1 against distillation rows")
            + f'<p class="note">{html.escape(_DEFINITIONS.format(pct=round(first.confidence * 100), n_boot=first.n_boot, seed=first.seed))}</p>',
        )
    )
    fits = fit_table_rows(curves)
    parts.append(
        _section(
            "Valley location, depth and slope",
            to_html_table(fits)
            if fits
            else '<p class="note">No fit: a base point and a trained point are both needed.</p>',
        )
    )
    parts.append(_section("Points", to_html_table(curve_table_rows(curves))))
    if windows:
        parts.append(_section(
            "pass@1 per contest-date window",
            to_html_table(windows) + '<p class="note">The points above over the problems of each window only '
            "(contest dates inclusive; <code>after_cutoff</code> starts the day after each student's cutoff), "
            "with the same bootstrap intervals over problems.</p>"))
    parts.append(
        _section("Completion and think-tag rates", _figure(plot_rates(curves), "completion and think-tag rates"))
    )
    parts.append(_section("By difficulty", _figure(plot_difficulty(curves), "pass@1 per difficulty")))
    if ablation is not None:
        body = to_html_table(ablation.table_rows()) if ablation.deltas else '<p class="note">No ablation deltas.</p>'
        body += (
            f'<p class="note">Paired bootstrap over the problems both arms were scored on '
            f"({round(ablation.confidence * 100)}%, {ablation.n_boot} resamples, seed {ablation.seed}); "
            "delta = first arm - second arm; “differs” = the interval excludes 0.</p>"
        )
        if ablation.missing:
            body += "<ul>" + "".join(f"<li>{html.escape(m)}</li>" for m in ablation.missing) + "</ul>"
        parts.append(_section("Ablation", body))
    if scores is not None:
        parts.append(_section("Scores table (latest per key)", to_html_table(latest_scores(scores))))
    if provenance is not None:
        text = json.dumps(provenance, indent=2, sort_keys=True, default=str)
        parts.append(_section("Provenance", f"<pre>{html.escape(text)}</pre>"))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>" + "\n".join(parts) + "</body></html>\n"
    )


# Attributes through which a browser loads something, and elements that load or run something by themselves.
_FETCHING_ATTRIBUTES = frozenset({"src", "href", "srcset", "action", "formaction", "data", "poster", "background",
                                  "manifest", "xlink:href"})
_FETCHING_TAGS = frozenset({"script", "link", "iframe", "frame", "object", "embed", "base", "audio", "video",
                            "source", "track"})
_CSS_FETCH = re.compile(r"url\s*\(|@import", re.IGNORECASE)


class _ReferenceFinder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        if tag in _FETCHING_TAGS:
            self.found.append(f"<{tag}> element")
        self._in_style = tag == "style"
        for name, value in attrs:
            value = (value or "").strip()
            if name in _FETCHING_ATTRIBUTES and value and not value.startswith(("data:", "#")):
                self.found.append(f"<{tag} {name}={value[:80]!r}>")
            if name == "style" and _CSS_FETCH.search(value):
                self.found.append(f"<{tag} style=...url()/@import>")
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...> script handler")

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style and _CSS_FETCH.search(data):
            self.found.append("<style> with url()/@import")


def external_references(page: str) -> list[str]:
    """What in an HTML page would make a browser fetch or run something: fetching attributes that are not inline
    `data:` URIs or in-page anchors, script/link/iframe/media elements, inline event handlers, CSS url()/@import.
    An empty list means the page renders completely from the file alone, with no network."""
    finder = _ReferenceFinder()
    finder.feed(page)
    finder.close()
    return finder.found
