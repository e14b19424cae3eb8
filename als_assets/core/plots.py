"""Small PNG plots for the Dagster UI: plain functions, no Dagster imports, no display needed.

Every plot is drawn on a `matplotlib.figure.Figure` rendered by the Agg canvas: no pyplot, so no
global figure state (safe from the tuning threads), no GUI backend and no DISPLAY, whatever
MPLBACKEND says. Figures are small (5 x 3.5 in at 90 dpi, about 450 x 315 px, 15-40 kB) so that
several fit in an asset materialization's metadata as markdown data URIs.

matplotlib is imported when the first plot is drawn, not with this module: the processes that
load the project's definitions without drawing (the UI's code server, the daemon's sensors, a
run of the sources) do not pay for it.
"""

from __future__ import annotations

import base64
import io
import itertools
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGSIZE = (5.0, 3.5)
DPI = 90
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Beyond this many (maxIter, alpha) combinations the heatmap shows the best over them instead
# of one panel each: more panels than this do not fit a 5-inch figure legibly.
MAX_PANELS = 4

GRID_DIMS = ("rank", "max_iter", "reg_param", "alpha")
DIM_LABELS = {"rank": "rank", "max_iter": "maxIter", "reg_param": "regParam", "alpha": "alpha"}


# ---------------------------------------------------------------------------------------------
# PNG and markdown helpers


def _figure() -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")


def _render(fig: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def is_png(data: bytes) -> bool:
    return data[:8] == PNG_SIGNATURE


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels, from the IHDR chunk."""
    if not is_png(data) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return struct.unpack(">II", data[16:24])


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def png_markdown(data: bytes, alt: str, caption: str = "") -> str:
    """Markdown embedding the PNG as a data URI (what Dagster's UI renders in md metadata)."""
    image = f"![{alt}]({png_data_uri(data)})"
    return f"{image}\n\n{caption}" if caption else image


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"


# ---------------------------------------------------------------------------------------------
# Tuning grid heatmap


@dataclass(frozen=True)
class HeatmapPanel:
    label: str  # which values of the extra dimensions it shows, e.g. "maxIter=10"
    scores: np.ndarray  # shape (len(ranks), len(reg_params)); NaN where the grid has no point
    # True where every point of the cell failed to fit (drawn as a cross, not left blank).
    failed: np.ndarray | None = None


@dataclass(frozen=True)
class HeatmapData:
    """What the tuning heatmap draws: scores on rank (rows) x regParam (columns)."""

    ranks: tuple[int, ...]
    reg_params: tuple[float, ...]
    panels: tuple[HeatmapPanel, ...]
    mode: str  # "single" (no extra dims), "panels" (one per extra value) or "best"
    extra_dims: tuple[str, ...]  # grid dims besides rank and regParam with more than one value
    best: tuple[int, float] | None  # (rank, regParam) of the best point overall

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.ranks), len(self.reg_params)

    def describe(self) -> str:
        extra = ", ".join(DIM_LABELS[d] for d in self.extra_dims)
        if self.mode == "panels":
            return f"one panel per {extra} value"
        if self.mode == "best":
            return f"each cell is the best score over {extra}"
        return "rank x regParam"


def heatmap_data(points: Sequence[Mapping[str, float]], lower_is_better: bool = True,
                 max_panels: int = MAX_PANELS) -> HeatmapData:
    """Arrange grid points (mappings with rank, max_iter, reg_param, alpha, score) as rank x
    regParam matrices.

    With more grid dimensions (maxIter, alpha), there is one panel per combination of their
    values while that is at most `max_panels` panels; beyond, one panel where each cell holds the
    best score over them (the minimum if `lower_is_better`, else the maximum). NaN scores are
    kept as NaN (drawn blank); the best point ignores them.
    """
    if not points:
        raise ValueError("the grid has no points")
    ranks = tuple(sorted({int(p["rank"]) for p in points}))
    regs = tuple(sorted({float(p["reg_param"]) for p in points}))
    extra = tuple(d for d in ("max_iter", "alpha")
                  if len({p.get(d) for p in points}) > 1)
    row = {r: i for i, r in enumerate(ranks)}
    col = {g: j for j, g in enumerate(regs)}
    better = np.fmin if lower_is_better else np.fmax

    def matrix(selected) -> np.ndarray:
        out = np.full((len(ranks), len(regs)), np.nan)
        for p in selected:
            i, j = row[int(p["rank"])], col[float(p["reg_param"])]
            score = float(p["score"]) if p["score"] is not None else np.nan
            out[i, j] = score if np.isnan(out[i, j]) else better(out[i, j], score)
        return out

    def panel(label: str, selected) -> HeatmapPanel:
        scores = matrix(selected)
        failed = np.zeros(scores.shape, dtype=bool)
        for p in selected:
            if p.get("failed"):
                failed[row[int(p["rank"])], col[float(p["reg_param"])]] = True
        return HeatmapPanel(label, scores, failed & np.isnan(scores))

    combos = list(itertools.product(*(sorted({p[d] for p in points}) for d in extra)))
    if not extra:
        mode, panels = "single", (panel("", points),)
    elif len(combos) <= max_panels:
        mode = "panels"
        panels = tuple(
            panel(
                ", ".join(f"{DIM_LABELS[d]}={v:g}" for d, v in zip(extra, combo, strict=True)),
                [p for p in points if all(p[d] == v for d, v in zip(extra, combo, strict=True))])
            for combo in combos)
    else:
        mode = "best"
        label = "best over " + ", ".join(DIM_LABELS[d] for d in extra)
        panels = (panel(label, points),)

    finite = [p for p in points if p["score"] is not None and not math.isnan(float(p["score"]))]
    best = None
    if finite:
        top = (min if lower_is_better else max)(finite, key=lambda p: float(p["score"]))
        best = (int(top["rank"]), float(top["reg_param"]))
    return HeatmapData(ranks, regs, panels, mode, extra, best)


def tuning_heatmap(points: Sequence[Mapping[str, float]], metric: str = "rmse",
                   lower_is_better: bool = True, title: str = "",
                   best_point: Mapping[str, float] | None = None) -> bytes:
    """PNG heatmap of the tuning grid: rank (rows) x regParam (columns), colour = score, each
    cell labelled with its score; the chosen point is outlined, failed points are crossed out.
    Better scores are brighter."""
    data = heatmap_data(points, lower_is_better)
    chosen = None
    if best_point is not None:
        chosen = (int(best_point["rank"]), float(best_point["reg_param"]),
                  {d: best_point.get(d) for d in data.extra_dims})
    values = np.concatenate([p.scores.ravel() for p in data.panels])
    finite = values[np.isfinite(values)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmin == vmax:
        vmin, vmax = vmin - 1e-9, vmax + 1e-9
    cmap = "viridis_r" if lower_is_better else "viridis"
    from matplotlib.patches import Rectangle

    fig = _figure()
    axes = fig.subplots(1, len(data.panels), squeeze=False)[0]
    image = None
    for ax, panel in zip(axes, data.panels, strict=True):
        image = ax.imshow(np.ma.masked_invalid(panel.scores), cmap=cmap, vmin=vmin, vmax=vmax,
                          aspect="auto", origin="lower")
        ax.set_xticks(range(len(data.reg_params)), [f"{g:g}" for g in data.reg_params],
                      fontsize=7)
        ax.set_yticks(range(len(data.ranks)), [str(r) for r in data.ranks], fontsize=7)
        ax.set_xlabel("regParam", fontsize=8)
        if ax is axes[0]:
            ax.set_ylabel("rank", fontsize=8)
        if panel.label:
            ax.set_title(panel.label, fontsize=8)
        small = len(data.panels) > 2 or len(data.reg_params) > 4
        for i, j in itertools.product(range(len(data.ranks)), range(len(data.reg_params))):
            v = panel.scores[i, j]
            if np.isfinite(v):
                bright = (v - vmin) / (vmax - vmin)
                bright = 1 - bright if lower_is_better else bright
                ax.text(j, i, f"{v:.3f}", ha="center", va="center",
                        fontsize=6 if small else 7, color="black" if bright > 0.6 else "white")
            elif panel.failed is not None and panel.failed[i, j]:
                ax.text(j, i, "✕\nfailed", ha="center", va="center", fontsize=6,
                        color="#b00000")
        if chosen is not None and chosen[0] in data.ranks and chosen[1] in data.reg_params:
            in_panel = data.mode != "panels" or all(
                f"{DIM_LABELS[d]}={v:g}" in panel.label for d, v in chosen[2].items()
                if v is not None)
            if in_panel:
                i, j = data.ranks.index(chosen[0]), data.reg_params.index(chosen[1])
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red",
                                       linewidth=2))
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes), shrink=0.9)
        bar.set_label(metric + (" (lower is better)" if lower_is_better
                                else " (higher is better)"), fontsize=7)
        bar.ax.tick_params(labelsize=7)
    heading = title or f"Tuning grid: {metric}"
    if data.mode != "single":
        heading += f"\n({data.describe()})"
    fig.suptitle(heading, fontsize=9)
    return _render(fig)


# ---------------------------------------------------------------------------------------------
# Metrics against baselines


BASELINE_COLOURS = ("#c8c8c8", "#f2b36f", "#9fd49f")


@dataclass(frozen=True)
class MetricBar:
    """One metric of the model, and of a baseline when there is one."""

    metric: str
    model: float
    baseline: float | None = None
    baseline_name: str = ""
    lower_is_better: bool = False


def metrics_chart(bars: Sequence[MetricBar], title: str = "Metrics vs baselines") -> bytes:
    """PNG bar chart: the model's metrics beside the baselines', error metrics (lower is better,
    e.g. RMSE vs the global mean) and ranking metrics (higher is better, vs most-popular) in
    separate panels since their scales differ."""
    if not bars:
        raise ValueError("no metrics to plot")
    groups = [g for g in ([b for b in bars if b.lower_is_better],
                          [b for b in bars if not b.lower_is_better]) if g]
    widths = [max(1, len(g)) for g in groups]
    names = list(dict.fromkeys(b.baseline_name or "baseline" for b in bars
                               if b.baseline is not None))
    fig = _figure()
    axes = fig.subplots(1, len(groups), squeeze=False, width_ratios=widths)[0]
    handles = {}
    for ax, group in zip(axes, groups, strict=True):
        x = np.arange(len(group))
        width = 0.38
        model_vals = [b.model for b in group]
        base_vals = [b.baseline if b.baseline is not None else np.nan for b in group]
        model_bars = ax.bar(x - width / 2, model_vals, width, color="#3b75af", label="ALS model")
        handles["ALS model"] = model_bars
        for k, b in enumerate(group):
            if b.baseline is not None and not math.isnan(b.baseline):
                name = b.baseline_name or "baseline"
                colour = BASELINE_COLOURS[names.index(name) % len(BASELINE_COLOURS)]
                bb = ax.bar(x[k] + width / 2, b.baseline, width, color=colour,
                            edgecolor="#777777", label=name)
                handles.setdefault(name, bb)
        for k, (m, base) in enumerate(zip(model_vals, base_vals, strict=True)):
            ax.text(x[k] - width / 2, m, _fmt(m), ha="center", va="bottom", fontsize=6)
            if not math.isnan(base):
                ax.text(x[k] + width / 2, base, _fmt(base), ha="center", va="bottom", fontsize=6)
        ax.set_xticks(x, [b.metric for b in group], fontsize=7, rotation=20)
        ax.tick_params(axis="y", labelsize=7)
        top = np.nanmax([*model_vals, *base_vals]) if group else 1.0
        ax.set_ylim(0, (top if np.isfinite(top) and top > 0 else 1.0) * 1.18)
        ax.set_title("lower is better" if group[0].lower_is_better else "higher is better",
                     fontsize=8)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center",
               ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    return _render(fig)


# ---------------------------------------------------------------------------------------------
# Rating distribution

HALF_STARS = tuple(x / 2 for x in range(1, 11))


def rating_histogram(counts: Mapping[float, int], title: str = "Ratings in training",
                     threshold: float | None = None, threshold_label: str = "") -> bytes:
    """PNG bar chart of how many ratings each half-star value has (0.5 to 5.0; other values,
    e.g. a 1-10 scale, get their own bars), with the mean, and an optional threshold line
    (e.g. what counts as relevant or as an implicit interaction)."""
    values = sorted(set(HALF_STARS) | {float(v) for v in counts})
    heights = np.array([int(counts.get(v, counts.get(float(v), 0)) or 0) for v in values])
    total = int(heights.sum())
    fig = _figure()
    ax = fig.subplots()
    ax.bar(values, heights, width=0.4, color="#3b75af")
    if total:
        mean = float(np.dot(values, heights) / total)
        ax.axvline(mean, color="#d62728", linestyle="--", linewidth=1,
                   label=f"mean {mean:.2f}")
    if threshold is not None:
        ax.axvline(threshold - 0.25, color="#2ca02c", linestyle=":", linewidth=1.2,
                   label=threshold_label or f">= {threshold:g}")
    ax.set_xticks(values, [f"{v:g}" for v in values], fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("rating", fontsize=8)
    ax.set_ylabel("ratings", fontsize=8)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, frameon=False, loc="upper left")
    ax.set_title(f"{title} ({total:,} ratings)", fontsize=9)
    return _render(fig)
