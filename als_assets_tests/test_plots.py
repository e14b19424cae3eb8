"""The plots embedded in the UI metadata: valid small PNGs, the heatmap's layout, no display."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from als_assets.core.plots import (
    MetricBar,
    heatmap_data,
    is_png,
    metrics_chart,
    png_data_uri,
    png_markdown,
    png_size,
    rating_histogram,
    tuning_heatmap,
)


def grid(ranks, reg_params, max_iters=(10,), alphas=(1.0,), score=None):
    score = score or (lambda r, m, g, a: 0.8 + 0.01 * r - 0.1 * g + 0.001 * m)
    return [{"rank": r, "max_iter": m, "reg_param": g, "alpha": a, "score": score(r, m, g, a)}
            for r in ranks for m in max_iters for g in reg_params for a in alphas]


def test_heatmap_is_rank_by_reg_param():
    points = grid((5, 10, 20), (0.01, 0.1))
    data = heatmap_data(points)
    assert data.mode == "single" and data.shape == (3, 2)
    assert data.ranks == (5, 10, 20) and data.reg_params == (0.01, 0.1)
    [panel] = data.panels
    assert panel.scores.shape == (3, 2)
    assert panel.scores[2, 0] == pytest.approx(0.8 + 0.2 - 0.001 + 0.01)
    assert data.best == (5, 0.1)


def test_heatmap_has_a_panel_per_max_iter_value():
    points = grid((10, 20, 50), (0.01, 0.1, 0.3), max_iters=(10, 15))
    data = heatmap_data(points)
    assert data.mode == "panels" and data.extra_dims == ("max_iter",)
    assert [p.label for p in data.panels] == ["maxIter=10", "maxIter=15"]
    assert all(p.scores.shape == (3, 3) for p in data.panels)
    assert data.panels[1].scores[0, 0] - data.panels[0].scores[0, 0] == pytest.approx(0.005)
    assert "one panel per maxIter value" in data.describe()


def test_heatmap_takes_the_best_over_many_extra_values():
    points = grid((10, 20), (0.1, 0.2), max_iters=(5, 10, 15), alphas=(1.0, 10.0))
    lower = heatmap_data(points, lower_is_better=True)
    assert lower.mode == "best" and len(lower.panels) == 1
    assert lower.panels[0].scores.shape == (2, 2)
    assert lower.panels[0].scores[0, 0] == pytest.approx(0.8 + 0.1 - 0.01 + 0.005)
    higher = heatmap_data(points, lower_is_better=False)
    assert higher.panels[0].scores[0, 0] == pytest.approx(0.8 + 0.1 - 0.01 + 0.015)
    assert "best score over maxIter, alpha" in lower.describe()


def test_heatmap_leaves_missing_and_nan_points_blank():
    points = grid((5, 10), (0.1, 0.2))[:3]
    points[0]["score"] = math.nan
    data = heatmap_data(points)
    assert np.isnan(data.panels[0].scores[0, 0]) and np.isnan(data.panels[0].scores[1, 1])
    assert data.best is not None and data.best != (5, 0.1)
    assert is_png(tuning_heatmap(points))


def test_heatmap_marks_failed_points_apart_from_missing_ones():
    points = grid((5, 10), (0.1, 0.2), alphas=(1.0, 10.0))
    for p in points:
        if p["rank"] == 10 and p["reg_param"] == 0.2:
            p["score"], p["failed"] = math.nan, True  # both alphas failed
        if p["rank"] == 5 and p["reg_param"] == 0.1 and p["alpha"] == 10.0:
            p["score"], p["failed"] = math.nan, True  # one of two alphas failed
    panels = heatmap_data(points, lower_is_better=False).panels
    assert [p.label for p in panels] == ["alpha=1", "alpha=10"]
    assert panels[0].failed.tolist() == [[False, False], [False, True]]
    assert panels[1].failed.tolist() == [[True, False], [False, True]]
    best_over = heatmap_data(points, lower_is_better=False, max_panels=1).panels[0]
    # A cell with one scored point shows its score, not a failure.
    assert best_over.failed.tolist() == [[False, False], [False, True]]
    assert is_png(tuning_heatmap(points, "ndcg_at_10", lower_is_better=False))


@pytest.mark.parametrize("points", [
    grid((5, 10), (0.05, 0.1)),
    grid((8,), (0.05, 0.2)),
    grid((10,), (0.1,)),
    grid((10, 20, 50), (0.01, 0.1, 0.3), max_iters=(10, 15)),
    grid((10, 20), (0.1, 0.2), max_iters=(5, 10, 15), alphas=(1.0, 10.0)),
])
def test_heatmap_png_is_small(points):
    png = tuning_heatmap(points, "rmse", True, best_point=points[0])
    assert is_png(png)
    assert png_size(png) == (450, 315)  # 5 x 3.5 in at 90 dpi
    assert len(png) < 40_000


def test_metrics_chart_and_histogram_are_pngs():
    bars = [MetricBar("rmse", 0.87, 1.05, "global mean", True), MetricBar("mae", 0.68, None,
                                                                         lower_is_better=True),
            MetricBar("ndcg@10", 0.08, 0.05, "most popular"), MetricBar("map@10", 0.03)]
    for png in (metrics_chart(bars), metrics_chart(bars[2:]),
                rating_histogram({0.5: 3, 4.0: 10, 5.0: 2}, threshold=4.0),
                rating_histogram({})):
        assert is_png(png) and png_size(png) == (450, 315) and len(png) < 40_000
    with pytest.raises(ValueError):
        metrics_chart([])


def test_markdown_embeds_a_data_uri():
    png = rating_histogram({4.0: 1})
    md = png_markdown(png, "ratings", "caption")
    assert md.startswith("![ratings](data:image/png;base64,")
    assert md.endswith("\n\ncaption")
    assert png_data_uri(png) in md


def test_plots_need_no_display_and_no_pyplot(tmp_path):
    """Drawn with no DISPLAY and a GUI backend requested: the Agg canvas is used directly."""
    script = textwrap.dedent("""
        import sys
        from als_assets.core.plots import (MetricBar, is_png, metrics_chart, rating_histogram,
                                           tuning_heatmap)
        pts = [{"rank": 5, "max_iter": 5, "reg_param": 0.1, "alpha": 1.0, "score": 0.9}]
        out = [tuning_heatmap(pts), metrics_chart([MetricBar("rmse", 0.9, 1.0, "mean", True)]),
               rating_histogram({4.0: 2})]
        assert all(is_png(p) for p in out)
        assert "matplotlib.pyplot" not in sys.modules
        print("ok")
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLBACKEND"] = "TkAgg"
    env["MPLCONFIGDIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_loading_the_definitions_imports_no_matplotlib(tmp_path):
    """The UI's code server, the daemon's sensors and a sources run load the definitions but
    draw nothing: matplotlib is imported with the first plot only."""
    script = ("import sys\nimport als_assets.definitions\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    env = dict(os.environ, MPLCONFIGDIR=str(tmp_path), DAGSTER_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
