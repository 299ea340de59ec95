from __future__ import annotations

import base64
import datetime as dt
import io
import re
from html.parser import HTMLParser

import polars as pl
import pytest
from analysis_fixtures import PAPER_QWEN, exact_rows
from PIL import Image

from valley_assets.analysis import (
    ablation_report,
    external_references,
    latest_scores,
    plot_difficulty,
    plot_rates,
    plot_valley,
    render_html_report,
    summary_markdown,
    to_markdown_table,
    valley_curves,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def curves():
    table = exact_rows("Qwen/Qwen2.5-7B-Instruct", PAPER_QWEN, n_problems=60)
    table += exact_rows("llama<3.1>&8b", {"0": 0.1, "1k": 0.04, "10k": 0.12}, n_problems=60)
    return valley_curves(table, n_boot=100)


def _png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(png))
    image.load()  # decodes every chunk: a truncated or corrupt PNG raises here
    assert image.format == "PNG"
    return image.size


def test_figures_are_valid_pngs(curves):
    for png in (plot_valley(curves), plot_rates(curves), plot_difficulty(curves)):
        width, height = _png_size(png)
        assert width > 300 and height > 200
    with pytest.raises(ValueError, match="no curves"):
        plot_valley({})


def test_markdown_table_formats_and_escapes():
    text = to_markdown_table(
        [{"student": "a|b", "pass@1": 0.12345, "CI": (0.1, 0.15), "paper": None, "n": 3}],
    )
    lines = text.splitlines()
    assert lines[0] == "| student | pass@1 | CI | paper | n |"
    assert lines[1] == "|---|---|---|---|---|"
    assert lines[2] == "| a\\|b | 0.123 | [0.100, 0.150] | — | 3 |"
    frame_text = to_markdown_table(pl.DataFrame({"x": [1.0, 2.5]}), digits=1)
    assert frame_text.splitlines()[2:] == ["| 1.0 |", "| 2.5 |"]
    with pytest.raises(ValueError, match="no columns"):
        to_markdown_table([])


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "action", "data", "poster", "srcset"):
                self.refs.append((tag, name, value or ""))


def _scores():
    base = {
        "student": "Qwen/Qwen2.5-7B-Instruct",
        "data_size": "1k",
        "arm": "main",
        "release": "release_v6",
        "date_window": "2024-08..2025-05",
        "prompt_id": "lcb_default",
        "difficulty": "all",
        "metric": "pass@1",
        "n_problems": 60,
        "n_samples": 600,
        "stderr": 0.01,
    }
    return [
        {**base, "value": 0.05, "scored_at": "2025-01-01T00:00:00+00:00"},
        {**base, "value": 0.06, "scored_at": "2025-02-01T00:00:00+00:00"},
    ]


def test_html_report_is_self_contained_and_holds_the_tables(curves):
    ablation = ablation_report(
        exact_rows("Qwen/Qwen2.5-7B-Instruct", {"1k": 0.2}, arm="easy", n_problems=30, rows=None)
        + exact_rows("Qwen/Qwen2.5-7B-Instruct", {"1k": 0.1}, arm="hard", n_problems=30, rows=None),
        n_boot=50,
    )
    provenance = {
        "git": {"revision": "abc", "dirty": False},
        "note": "</pre><script>alert(1)</script>",
        "source": "https://huggingface.co/datasets/nvidia/OpenCodeReasoning-2",
    }
    page = render_html_report(
        curves=curves,
        ablation=ablation,
        provenance=provenance,
        scores=_scores(),
        generated_at=dt.datetime(2025, 1, 2, tzinfo=dt.UTC),
    )
    collector = _Collector()
    collector.feed(page)
    # Nothing fetched from anywhere: every reference is an inline data URI, and there are no scripts or links.
    assert collector.refs, "the figures should be inlined images"
    for tag, name, value in collector.refs:
        assert value.startswith("data:image/png;base64,"), (tag, name, value[:40])
        _png_size(base64.b64decode(value.split(",", 1)[1]))
    assert "script" not in collector.tags and "link" not in collector.tags and "iframe" not in collector.tags
    assert external_references(page) == []
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page.lower() and "@import" not in page and "url(" not in page
    # Data text is escaped, not interpreted.
    assert "llama&lt;3.1&gt;&amp;8b" in page and "&lt;/pre&gt;&lt;script&gt;" in page
    # The tables are there, with our numbers and the paper's.
    assert page.count("<table>") >= 4
    assert "<td>Qwen/Qwen2.5-7B-Instruct</td><td>1k</td><td>1000</td><td>0.055</td>" in page
    assert "easy - hard" in page and "2025-01-02T00:00:00+00:00" in page
    assert "<td>0.060</td>" in page  # latest score wins
    assert page.count("<img") == 3


def test_report_needs_a_curve():
    with pytest.raises(ValueError, match="at least one valley curve"):
        render_html_report(curves={})


def test_latest_scores_keeps_the_newest_row_per_key():
    latest = latest_scores(_scores())
    assert latest.height == 1 and latest["value"][0] == 0.06
    with pytest.raises(ValueError, match="field 'metric' is 'pass@5'"):
        latest_scores([{**_scores()[0], "metric": "pass@5"}])


def test_summary_markdown_holds_fit_and_points(curves):
    text = summary_markdown(curves)
    assert "### Valley fit" in text and "### Points" in text
    assert "| Qwen/Qwen2.5-7B-Instruct | paper | 1k | 0.126 | 0.055 | 0.563 |" in text


def test_external_references_finds_what_a_browser_would_fetch():
    inline = '<style>td { color: red }</style><img src="data:image/png;base64,AAAA"><a href="#points">points</a>'
    assert external_references(inline) == []
    page = (
        '<link rel="stylesheet" href="x.css"><img src="https://example.com/a.png"><script>1</script>'
        '<style>@import "y.css";</style><div style="background: url(z.png)" onclick="f()"></div>'
        '<img srcset="//cdn/a.png 2x">'
    )
    found = external_references(page)
    assert "<link> element" in found and "<link href='x.css'>" in found
    assert "<img src='https://example.com/a.png'>" in found and "<img srcset='//cdn/a.png 2x'>" in found
    assert "<script> element" in found and "<style> with url()/@import" in found
    assert "<div style=...url()/@import>" in found and "<div onclick=...> script handler" in found
