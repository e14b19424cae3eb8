"""The fitted ALS model of each experiment."""

import json

import yaml
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetDep,
    AssetExecutionContext,
    MetadataValue,
    Output,
    asset,
)

from ..checks import MODEL_BEATS_BASELINE, gate
from ..core.baselines import compare_with_baseline
from ..core.modeling import fit_als
from ..partitions import experiment_config, experiment_partitions
from ..plots import rating_histogram_md, tuning_heatmap_md, validation_chart_md
from ..resources import SparkResource
from ..versions import OWNERS, config_data_version, config_hash, experiment_tags

ALS_MODEL_CODE_VERSION = "als_model-1"


def config_markdown(config) -> str:
    """The experiment config the model was fitted under, as a YAML block."""
    plain = json.loads(json.dumps(config.to_dict()))  # tuples to lists
    return "```yaml\n" + yaml.safe_dump(plain, sort_keys=False) + "```"


def model_label(config, params) -> str:
    kind = f"implicit ALS (alpha {params.alpha:g})" if config.implicit.enabled else \
        "explicit ALS"
    return f"{kind}, rank {params.rank}, maxIter {params.max_iter}, regParam {params.reg_param:g}"


@asset(
    group_name="models",
    partitions_def=experiment_partitions,
    tags=experiment_tags(model="als"),
    owners=OWNERS,
    kinds={"spark"},
    code_version=ALS_MODEL_CODE_VERSION,
    # Provenance: the model is only as current as the ratings its splits came from. Dagster
    # reports staleness against direct dependencies only, so without this edge new ratings would
    # show the splits stale but every model fresh until the splits ran again.
    deps=[AssetDep("ratings")],
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
    fit_config = {"implicit": config.implicit, "cold_start_strategy": config.cold_start_strategy,
                  "seed": config.tuning.seed}
    version = config_data_version(context, ALS_MODEL_CODE_VERSION,
                                  ["ratings", "training", "validation", "tuned_params"],
                                  fit_config)
    yield Output(model, data_version=version, metadata={
        "experiment": context.partition_key,
        "model": model_label(config, params),
        "rank": params.rank,
        "max_iter": params.max_iter,
        "reg_param": params.reg_param,
        "alpha": params.alpha,
        "implicit": config.implicit.enabled,
        "cold_start_strategy": config.cold_start_strategy,
        "fit_seconds": seconds,
        "training_rows": training.count(),
        f"validation_{comparison.metric}": comparison.model_value,
        f"baseline_validation_{comparison.metric}": comparison.baseline_value,
        "tuning_method": tuned_params.method,
        f"tuning_best_{tuned_params.metric}": tuned_params.best_score,
        "spark_version": spark.session.version,
        "als_blocks": spark.als_blocks,
        "config_hash": config_hash(config),
        "config": MetadataValue.md(config_markdown(config)),
        "tuning_heatmap": tuning_heatmap_md(context, tuned_params),
        "validation_vs_baseline": validation_chart_md(context, comparison),
        "training_ratings": rating_histogram_md(context, training, config),
    })
