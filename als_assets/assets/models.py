"""The fitted ALS model of each experiment."""

import json

import yaml
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MetadataValue,
    Output,
)

from ..checks import MODEL_BEATS_BASELINE, gate
from ..core.baselines import compare_with_baseline
from ..core.modeling import fit_als
from ..core.storage import StoredCopy
from ..partitions import experiment_config
from ..plots import rating_histogram_md, tuning_heatmap_md, validation_chart_md
from ..resources import SparkResource
from ..versions import config_data_version, config_hash, fit_key
from .experiment_asset import experiment_asset

ALS_MODEL_CODE_VERSION = "als_model-2"


def config_markdown(config) -> str:
    """The experiment config the model was fitted under, as a YAML block."""
    plain = json.loads(json.dumps(config.to_dict()))  # tuples to lists
    return "```yaml\n" + yaml.safe_dump(plain, sort_keys=False) + "```"


def _final_model(context, spark, training, config, tuned_params):
    """The tuning's own fit of the best params when it was made on the same training rows with
    the same settings (holdout), else a new fit. Returns (model, what to store, fit seconds,
    reused, blocks): a reused model that tuned_params already stored is stored again as links
    to those files, not written anew (three Spark jobs)."""
    key = getattr(tuned_params, "best_model_key", None)
    if key is not None and key == fit_key(context, config):
        model = tuned_params.load_best_model()
        if model is not None:
            seconds = next((g.seconds for g in tuned_params.grid
                            if g.params == tuned_params.best), None)
            # Stored by tuned_params (a model only in memory has no path yet).
            stored = tuned_params.best_model_path
            return (model, StoredCopy("als_model", stored) if stored else model,
                    seconds if seconds is not None else float("nan"), True,
                    tuned_params.blocks_per_fit)
    model, seconds = fit_als(training, tuned_params.best, config, spark.als_blocks)
    return model, model, seconds, False, spark.als_blocks


def model_label(config, params) -> str:
    kind = f"implicit ALS (alpha {params.alpha:g})" if config.implicit.enabled else \
        "explicit ALS"
    return f"{kind}, rank {params.rank}, maxIter {params.max_iter}, regParam {params.reg_param:g}"


@experiment_asset(
    outs={"als_model": "ALS fitted on training with the tuned params (a Spark ALSModel)."},
    group="models",
    code_version=ALS_MODEL_CODE_VERSION,
    # A tuning study (`stop_after: tuned_params`) ends before the model: no output, and the
    # steps after it are skipped.
    required=False,
    # Provenance: the model is only as current as the ratings its splits came from. Dagster
    # reports staleness against direct dependencies only, so without this edge new ratings
    # would show the splits stale but every model fresh until the splits ran again.
    deps=["ratings"],
    check_specs=[MODEL_BEATS_BASELINE],
    # Lets the check output be absent too when the model is (Dagster makes check outputs
    # optional only for subsettable multi-assets).
    can_subset=True,
    name="als_model",
)
def als_model(context: AssetExecutionContext, spark: SparkResource, training, validation,
              tuned_params):
    config = experiment_config(context)
    if config.stop_after == "tuned_params":
        context.log.info(f"experiment {context.partition_key} stops after tuned_params "
                         "(stop_after in its config): no model, the steps after it are skipped")
        return
    params = tuned_params.best
    model, value, seconds, reused, blocks = _final_model(context, spark, training, config,
                                                         tuned_params)
    # Holdout tuning scored this very model on validation, with the baseline on the same rows.
    known = (tuned_params.best_score, tuned_params.best_scored_baseline) \
        if reused and tuned_params.best_scored_baseline is not None else None
    validation_report = compare_with_baseline(model, training, validation, config, known)
    comparison = validation_report.comparison
    # The check runs unless the selection left it out (`<asset>.without_checks()`).
    if MODEL_BEATS_BASELINE.key in context.selected_asset_check_keys:
        yield from gate([AssetCheckResult(
            check_name=MODEL_BEATS_BASELINE.name,
            passed=comparison.model_wins,
            # Losing to the most-popular baseline is worth a warning, not a veto: on some data
            # (few users, strong popularity) implicit ALS does, and its model is still useful.
            severity=AssetCheckSeverity.WARN if config.implicit.enabled
            else AssetCheckSeverity.ERROR,
            description=comparison.describe(),
            metadata={"metric": comparison.metric, "model": comparison.model_value,
                      "baseline": comparison.baseline_value},
        )])
    fit_config = {"implicit": config.implicit, "cold_start_strategy": config.cold_start_strategy,
                  "seed": config.tuning.seed}
    version = config_data_version(context, ALS_MODEL_CODE_VERSION,
                                  ["ratings", "training", "validation", "tuned_params"],
                                  fit_config)
    yield Output(value, output_name="als_model", data_version=version, metadata={
        "experiment": context.partition_key,
        "model": model_label(config, params),
        "rank": params.rank,
        "max_iter": params.max_iter,
        "reg_param": params.reg_param,
        "alpha": params.alpha,
        "implicit": config.implicit.enabled,
        "cold_start_strategy": config.cold_start_strategy,
        "fit_seconds": seconds,
        # True when holdout tuning already fitted these params on this training split.
        "reused_tuning_fit": reused,
        # A reused fit was made on the rows tuning counted: no second pass over training.
        "training_rows": tuned_params.tuning_rows if reused else training.count(),
        f"validation_{comparison.metric}": comparison.model_value,
        f"baseline_validation_{comparison.metric}": comparison.baseline_value,
        # The ranking metrics the champion is chosen by, beside the baselines' on the same
        # users (evaluation's K, relevance and seen-exclusion).
        **validation_report.metadata(),
        "k": config.ranking.k,
        "tuning_method": tuned_params.method,
        "tuning_metric": tuned_params.metric,
        f"tuning_best_{tuned_params.metric}": tuned_params.best_score,
        "spark_version": spark.session.version,
        "als_blocks": blocks,
        "config_hash": config_hash(config),
        "config": MetadataValue.md(config_markdown(config)),
        "tuning_heatmap": tuning_heatmap_md(context, tuned_params),
        "validation_vs_baseline": validation_chart_md(context, validation_report),
        "training_ratings": rating_histogram_md(context, training, config),
    })
