"""Hyperparameter search over the experiment's grid."""


from dagster import AssetExecutionContext, MetadataValue, Output, asset

from ..core.modeling import tune
from ..partitions import EXPERIMENT_TAGS, experiment_config, experiment_partitions
from ..resources import SparkResource


@asset(
    group_name="tuning",
    partitions_def=experiment_partitions,
    tags=EXPERIMENT_TAGS,
    kinds={"spark"},
    description="Best ALS params and every grid point's score (holdout, TVS or CV).",
)
def tuned_params(context: AssetExecutionContext, spark: SparkResource, training, validation):
    config = experiment_config(context)
    result = tune(training, validation, config, spark.als_blocks)
    best = result.best
    return Output(result, metadata={
        "method": result.method,
        "metric": result.metric,
        "best_score": result.best_score,
        "best_rank": best.rank,
        "best_max_iter": best.max_iter,
        "best_reg_param": best.reg_param,
        "best_alpha": best.alpha,
        "grid_points": len(result.grid),
        "tuning_rows": result.tuning_rows,
        "tuning_seconds": result.seconds,
        "grid": MetadataValue.md(result.markdown_table()),
    })
