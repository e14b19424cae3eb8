"""Hyperparameter search over the experiment's grid."""


from dataclasses import replace

from dagster import AssetExecutionContext, DataVersion, MetadataValue, Output

from ..core.tuning import TuningResult, tune
from ..partitions import experiment_config
from ..plots import tuning_heatmap_md
from ..resources import SparkResource
from ..versions import config_hash, fit_key, stable_hash
from .experiment_asset import experiment_asset

TUNED_PARAMS_CODE_VERSION = "tuned_params-1"


def tuning_data_version(result: TuningResult, tuning_config: str) -> DataVersion:
    """What tuned_params holds: the searched grid with its scores (to 4 decimals, so float noise
    does not make a re-run look new) and the chosen point, under the config that searched it."""
    return DataVersion(stable_hash({
        "code_version": TUNED_PARAMS_CODE_VERSION,
        "config": tuning_config,
        "method": result.method,
        "metric": result.metric,
        "best": result.best.label(),
        "grid": [[g.params.label(), round(g.score, 4) if g.score == g.score else None,
                  g.error] for g in result.grid],
    }))


@experiment_asset(
    group="tuning",
    code_version=TUNED_PARAMS_CODE_VERSION,
    description="Best ALS params and every grid point's score (holdout, TVS or CV).",
)
def tuned_params(context: AssetExecutionContext, spark: SparkResource, training, validation):
    config = experiment_config(context)
    result = tune(training, validation, config, spark.als_blocks)
    if config.stop_after == "tuned_params":
        # A study that ends here has no als_model to hand the best fit to: storing it would
        # write a model no step reads.
        result = replace(result, best_model=None)
    if result.best_model is not None:
        result = replace(result, best_model_key=fit_key(context, config))
    best = result.best
    # The implicit and ranking settings decide how grids are fitted and scored.
    tuning_config = config_hash(config.tuning, config.implicit,
                                config.ranking if config.metric != "rmse" else None)
    for failed in result.failed:
        context.log.warning(f"grid point {failed.params.label()} failed: {failed.error}")
    return Output(result, data_version=tuning_data_version(result, tuning_config), metadata={
        "experiment": context.partition_key,
        "method": result.method,
        "metric": result.metric,
        "optimised": ("lower" if result.lower_is_better else "higher") + " is better",
        "best_score": result.best_score,
        # The same metric of a model-free baseline on the same held-out rows.
        "baseline": result.baseline,
        "baseline_score": result.baseline_score,
        "failed_points": len(result.failed),
        "best_rank": best.rank,
        "best_max_iter": best.max_iter,
        "best_reg_param": best.reg_param,
        "best_alpha": best.alpha,
        "grid_points": len(result.grid),
        "tuning_rows": result.tuning_rows,
        "tuning_seconds": result.seconds,
        # Holdout keeps its best fit (stored beside the result) for als_model to reuse.
        "best_model_kept": result.best_model is not None,
        "als_blocks_per_fit": result.blocks_per_fit,
        "config_hash": tuning_config,
        "grid": MetadataValue.md(result.markdown_table()),
        "heatmap": tuning_heatmap_md(context, result),
    })
