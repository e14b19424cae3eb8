"""Plots as Dagster metadata: the glue between the assets and `core.plots`.

Each function returns a markdown `MetadataValue` with the PNG embedded as a data URI, which the
Dagster UI shows inline on the materialization. A plot is a picture of a result, never the
result: if drawing fails, the metadata says so and the materialization goes on.
"""

from __future__ import annotations

from collections.abc import Callable

from dagster import AssetExecutionContext, MetadataValue
from pyspark.sql import DataFrame

from .core.baselines import ValidationReport
from .core.evaluation import EvaluationReport
from .core.experiments import ExperimentConfig
from .core.plots import (
    MetricBar,
    heatmap_data,
    metrics_chart,
    png_markdown,
    rating_histogram,
    tuning_heatmap,
)
from .core.tuning import TuningResult

DIM_NAMES = {"max_iter": "maxIter", "alpha": "alpha"}


def plot_metadata(context: AssetExecutionContext, name: str, render: Callable[[], bytes],
                  caption: str = "") -> MetadataValue:
    try:
        png = render()
    except Exception as exc:  # noqa: BLE001 - a broken picture must not fail the asset
        context.log.warning(f"could not draw {name}: {exc!r}")
        return MetadataValue.text(f"plot unavailable: {exc!r}")
    return MetadataValue.md(png_markdown(png, name, caption))


def grid_points(result: TuningResult) -> list[dict[str, float]]:
    return [{"rank": g.params.rank, "max_iter": g.params.max_iter,
             "reg_param": g.params.reg_param, "alpha": g.params.alpha, "score": g.score,
             "failed": g.error is not None}
            for g in result.grid]


def tuning_heatmap_md(context: AssetExecutionContext, result: TuningResult) -> MetadataValue:
    """rank x regParam heatmap of the grid's scores; grids over more dimensions get one panel
    per maxIter/alpha value (up to 4), else each cell shows the best over them."""
    points = grid_points(result)
    best = {"rank": result.best.rank, "max_iter": result.best.max_iter,
            "reg_param": result.best.reg_param, "alpha": result.best.alpha}

    def render() -> bytes:
        return tuning_heatmap(points, result.metric, result.lower_is_better,
                              title=f"{context.partition_key}: {result.metric} "
                                    f"({result.method}, {len(points)} points)",
                              best_point=best)

    layout = heatmap_data(points, result.lower_is_better).describe()
    direction = "lower" if result.lower_is_better else "higher"
    caption = (f"Optimised: {result.metric} ({direction} is better) of each grid point "
               f"({layout}); red outline: the chosen {result.best.label()}.")
    if result.baseline_score is not None:
        caption += f" {result.baseline} scores {result.baseline_score:.4f}."
    if result.failed:
        caption += (f" Failed points ({len(result.failed)}, drawn as ✕): "
                    + "; ".join(f"{g.params.label()}: {g.error}" for g in result.failed))
    return plot_metadata(context, "tuning heatmap", render, caption)


def rating_histogram_md(context: AssetExecutionContext, training: DataFrame,
                        config: ExperimentConfig) -> MetadataValue:
    """How the training ratings the model was fitted on are distributed."""
    def render() -> bytes:
        counts = {float(r["rating"]): int(r["count"])
                  for r in training.groupBy("rating").count().collect()
                  if r["rating"] is not None}
        if config.implicit.enabled:
            threshold = config.implicit.threshold
            label = f"interaction (>= {threshold:g})"
        else:
            threshold = config.ranking.relevance_threshold
            label = f"relevant for ranking metrics (>= {threshold:g})"
        return rating_histogram(counts, f"{context.partition_key}: training ratings",
                                threshold, label)

    return plot_metadata(context, "training ratings", render)


def validation_chart_md(context: AssetExecutionContext,
                        report: ValidationReport) -> MetadataValue:
    comparison = report.comparison
    bars = [MetricBar(comparison.metric, comparison.model_value, comparison.baseline_value,
                      comparison.baseline, comparison.lower_is_better)]
    if comparison.lower_is_better:
        popular = report.scores("most_popular").relevant
        bars.append(MetricBar(f"ndcg@{report.k}", report.scores("model").relevant.ndcg_at_k,
                              popular.ndcg_at_k, "most popular"))
    return plot_metadata(
        context, "validation vs baseline",
        lambda: metrics_chart(bars, f"{context.partition_key}: validation vs baseline"))


def evaluation_bars(report: EvaluationReport) -> list[MetricBar]:
    k = report.k
    bars = []
    if not report.implicit:
        bars.append(MetricBar("rmse", report.rmse, report.baseline_rmse_global_mean,
                              "global mean", lower_is_better=True))
        bars.append(MetricBar("mae", report.mae, None, lower_is_better=True))
    model, popular = report.scores().relevant, report.scores("most_popular").relevant
    bars += [MetricBar(f"{name}@{k}", model.value(f"{name}_at_k"), popular.value(f"{name}_at_k"),
                       "most popular") for name in ("precision", "recall", "ndcg", "map")]
    return bars


def evaluation_chart_md(context: AssetExecutionContext,
                        report: EvaluationReport) -> MetadataValue:
    bars = evaluation_bars(report)
    return plot_metadata(
        context, "test metrics vs baselines",
        lambda: metrics_chart(bars, f"{context.partition_key}: test metrics vs baselines"))
