"""`valley demo` ends by printing the curve and the valley fit that the valley_curve asset wrote."""

import json

from valley_assets.cli import print_curve


def test_prints_curve_and_fit_tables(tmp_path, capsys):
    assert print_curve(str(tmp_path)) is False  # nothing scored yet: nothing printed
    points = [{"student": "tiny-qwen2", "data_size": size, "rows": rows, "pass@1": p, "pass@1 CI": [lo, hi],
               "paper pass@1": None, "completion": c, "think": t, "easy pass@1": None, "problems": 36, "samples": 2}
              for size, rows, p, lo, hi, c, t in (("0", 0, 0.125, 0.05, 0.2, 0.9, 0.0),
                                                  ("30k", 300, 0.3125, 0.2, 0.43, 0.95, 0.97))]
    fits = [{"student": "tiny-qwen2", "source": "ours", "valley at": "0", "base": 0.125, "valley": 0.125,
             "depth": 0.0, "depth CI": [0.0, 0.0], "slope/decade": 0.19, "slope CI": [0.1, 0.3],
             "argmin stability": 1.0}]
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "valley_curve.json").write_text(
        json.dumps({"release": "release_v1", "points": points, "fits": fits}))
    assert print_curve(str(tmp_path)) is True
    out = capsys.readouterr().out
    assert "release_v1" in out
    assert "| student | data_size | rows | pass@1 | pass@1 CI | completion | think |" in out
    assert "| tiny-qwen2 | 30k | 300 | 0.312 | [0.200, 0.430] | 0.950 | 0.970 |" in out
    assert "| valley at |" in out and "| 0.190 |" in out
