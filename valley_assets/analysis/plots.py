"""PNG figures of the valley curves, rendered with matplotlib's Agg canvas straight to bytes.

The x axis is log10 of training rows. The base model has zero rows, which a log axis cannot show, so it is drawn one
decade left of the smallest trained size, inside a shaded band labelled "base (0 rows)", and the line into the
first trained point is dotted: that stretch is a jump from 0, not a log-linear distance.
Figures are built on a private Figure/FigureCanvasAgg pair rather than pyplot, so no global backend state is touched
and rendering is safe inside a Dagster worker.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from valley_assets.analysis.bootstrap import Estimate
from valley_assets.analysis.curves import CurvePoint, ValleyCurve
from valley_assets.analysis.tables import DIFFICULTIES

Curves = Mapping[str, ValleyCurve] | Sequence[ValleyCurve]
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")


def _as_list(curves: Curves) -> list[ValleyCurve]:
    items = list(curves.values()) if isinstance(curves, Mapping) else list(curves)
    if not items:
        raise ValueError("nothing to plot: no curves given")
    return items


def _base_x(curves: list[ValleyCurve]) -> float:
    trained = [p.rows for c in curves for p in c.points if p.rows > 0]
    trained += [p.rows for c in curves for p in c.paper if p.rows > 0]
    return min(trained) / 10.0 if trained else 1.0


def _x(rows: int, base_x: float) -> float:
    return base_x if rows == 0 else float(rows)


def _format_rows(rows: int) -> str:
    if rows >= 1000 and rows % 1000 == 0:
        return f"{rows // 1000}k"
    return f"{rows:,}"


def _style_axis(ax, curves: list[ValleyCurve], base_x: float, ylabel: str) -> None:
    ax.set_xscale("log")
    ticks = sorted(
        {p.rows for c in curves for p in c.points if p.rows > 0}
        | {p.rows for c in curves for p in c.paper if p.rows > 0}
    )
    ax.xaxis.set_major_locator(FixedLocator([base_x, *ticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels(["base\n(0 rows)", *(_format_rows(t) for t in ticks)])
    # Shade the base band from half a decade left to half a decade right of the base position.
    ax.axvspan(base_x / 10**0.5, base_x * 10**0.5, color="0.92", zorder=0)
    ax.axvline(base_x * 10**0.5, color="0.6", linestyle=":", linewidth=1)
    ax.set_xlim(base_x / 10**0.5, max([base_x * 10, *ticks]) * 10**0.35)
    ax.set_xlabel("distillation rows (log scale)")
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)


def _draw_series(
    ax,
    points: Sequence[CurvePoint],
    get: Callable[[CurvePoint], Estimate | None],
    base_x: float,
    color: str,
    label: str,
) -> None:
    pairs = [(p, get(p)) for p in points]
    pairs = [(p, e) for p, e in pairs if e is not None]
    if not pairs:
        return
    xs = [_x(p.rows, base_x) for p, _ in pairs]
    ys = [e.value for _, e in pairs]
    yerr = [[max(e.value - e.ci_low, 0.0) for _, e in pairs], [max(e.ci_high - e.value, 0.0) for _, e in pairs]]
    ax.errorbar(xs, ys, yerr=yerr, fmt="o", color=color, capsize=4, label=label, zorder=3)
    trained = [(x, y) for (p, _), x, y in zip(pairs, xs, ys, strict=True) if p.rows > 0]
    if trained:
        ax.plot([x for x, _ in trained], [y for _, y in trained], "-", color=color, zorder=2)
    if pairs[0][0].rows == 0 and trained:
        ax.plot([xs[0], trained[0][0]], [ys[0], trained[0][1]], ":", color=color, zorder=2)


def _draw_paper(ax, curve: ValleyCurve, base_x: float, color: str) -> None:
    if not curve.paper:
        return
    xs = [_x(p.rows, base_x) for p in curve.paper]
    ys = [p.pass_at_1 for p in curve.paper]
    ax.plot(xs, ys, "s--", color=color, markerfacecolor="none", alpha=0.8, label=f"{curve.student} (paper)")


def _to_png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def plot_valley(curves: Curves, *, title: str | None = None) -> bytes:
    """pass@1 vs distillation rows per student, with CI error bars and the paper's points dashed; PNG bytes."""
    items = _as_list(curves)
    base_x = _base_x(items)
    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.add_subplot(1, 1, 1)
    for i, curve in enumerate(items):
        color = _COLORS[i % len(_COLORS)]
        pct = round(curve.confidence * 100)
        _draw_series(ax, curve.points, lambda p: p.pass_at_1, base_x, color, f"{curve.student} (ours, {pct}% CI)")
        _draw_paper(ax, curve, base_x, color)
    _style_axis(ax, items, base_x, "LiveCodeBench pass@1")
    ax.set_title(title or f"The valley: pass@1 vs distillation data ({items[0].release})")
    ax.legend(fontsize=8, loc="best")
    return _to_png(fig)


def plot_rates(curves: Curves) -> bytes:
    """Completion rate and think-tag rate vs distillation rows (two panels); PNG bytes."""
    items = _as_list(curves)
    base_x = _base_x(items)
    fig = Figure(figsize=(11, 4.2))
    panels = (
        ("completion rate", "finished within the token budget", lambda p: p.completion_rate),
        ("think-tag rate", "closed <think>…</think> pair", lambda p: p.think_rate),
    )
    for j, (ylabel, subtitle, get) in enumerate(panels):
        ax = fig.add_subplot(1, 2, j + 1)
        for i, curve in enumerate(items):
            _draw_series(ax, curve.points, get, base_x, _COLORS[i % len(_COLORS)], curve.student)
        _style_axis(ax, items, base_x, ylabel)
        ax.set_title(subtitle, fontsize=10)
        ax.set_ylim(-0.03, 1.03)
        ax.legend(fontsize=8, loc="best")
    return _to_png(fig)


def plot_difficulty(curves: Curves) -> bytes:
    """pass@1 per LiveCodeBench difficulty (one panel each) vs distillation rows; PNG bytes."""
    items = _as_list(curves)
    base_x = _base_x(items)
    fig = Figure(figsize=(14, 4.2))
    for j, difficulty in enumerate(DIFFICULTIES):
        ax = fig.add_subplot(1, len(DIFFICULTIES), j + 1)
        for i, curve in enumerate(items):
            _draw_series(
                ax,
                curve.points,
                lambda p, d=difficulty: p.per_difficulty.get(d),
                base_x,
                _COLORS[i % len(_COLORS)],
                curve.student,
            )
        _style_axis(ax, items, base_x, "pass@1")
        ax.set_title(difficulty)
        ax.legend(fontsize=8, loc="best")
    return _to_png(fig)
