"""The fitted ALS model of each experiment."""


from dagster import AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, Output, asset

from ..checks import MODEL_BEATS_BASELINE, gate
from ..core.baselines import compare_with_baseline
from ..core.modeling import fit_als
from ..partitions import EXPERIMENT_TAGS, experiment_config, experiment_partitions
from ..resources import SparkResource


@asset(
    group_name="models",
    partitions_def=experiment_partitions,
    tags=EXPERIMENT_TAGS,
    kinds={"spark"},
    check_specs=[MODEL_BEATS_BASELINE],
    description="ALS fitted on training with the tuned params (a Spark ALSModel).",
)
def als_model(context: AssetExecutionContext, spark: SparkResource, training, validation,
              tuned_params):
    config = experiment_config(context)
    params = tuned_params.best
    model, seconds = fit_als(training, params, config, spark.als_blocks)
    comparison = compare_with_baseline(model, training, validation, config)
    yield from gate([AssetCheckResult(
        check_name=MODEL_BEATS_BASELINE.name,
        passed=comparison.model_wins,
        # Losing to the most-popular baseline is worth a warning, not a veto: on some data
        # (few users, strong popularity) implicit ALS does, and its model is still useful.
        severity=AssetCheckSeverity.WARN if config.implicit.enabled else AssetCheckSeverity.ERROR,
        description=comparison.describe(),
        metadata={"metric": comparison.metric, "model": comparison.model_value,
                  "baseline": comparison.baseline_value},
    )])
    yield Output(model, metadata={
        "rank": params.rank,
        "max_iter": params.max_iter,
        "reg_param": params.reg_param,
        "alpha": params.alpha,
        "implicit": config.implicit.enabled,
        "cold_start_strategy": config.cold_start_strategy,
        "fit_seconds": seconds,
        f"validation_{comparison.metric}": comparison.model_value,
        f"baseline_validation_{comparison.metric}": comparison.baseline_value,
        "spark_version": spark.session.version,
        "als_blocks": spark.als_blocks,
    })
