"""Evaluation on the test split, and what cold start costs."""


from dagster import AssetCheckResult, AssetExecutionContext, MetadataValue, Output, asset

from ..checks import METRICS_NOT_NAN, gate, nan_fields
from ..core.cold_start import cold_start_report as build_cold_start_report
from ..core.evaluation import evaluate_model
from ..partitions import experiment_config, experiment_partitions
from ..plots import evaluation_chart_md
from ..versions import OWNERS, config_data_version, config_hash, experiment_tags

EVALUATION_CODE_VERSION = "evaluation-1"
COLD_START_CODE_VERSION = "cold_start_report-1"


@asset(
    group_name="evaluation",
    partitions_def=experiment_partitions,
    tags=experiment_tags(model="als"),
    owners=OWNERS,
    kinds={"spark"},
    code_version=EVALUATION_CODE_VERSION,
    check_specs=[METRICS_NOT_NAN],
    description="Test RMSE/MAE and Precision/Recall/NDCG/MAP@K, beside baselines.",
)
def evaluation(context: AssetExecutionContext, als_model, training, test, user_recommendations,
               tuned_params):
    config = experiment_config(context)
    report = evaluate_model(als_model, training, test, user_recommendations, config)
    metrics = report.metrics()
    bad = nan_fields(metrics)
    yield from gate([AssetCheckResult(
        check_name=METRICS_NOT_NAN.name, passed=not bad,
        description=f"NaN metrics: {', '.join(bad)}" if bad else "every metric is a number",
    )])
    best = tuned_params.best
    metadata = {
        "experiment": context.partition_key,
        **metrics,
        "k": report.k,
        "users_evaluated": report.users_evaluated,
        "relevance_threshold": report.relevance_threshold,
        "implicit": report.implicit,
        "rank": best.rank,
        "max_iter": best.max_iter,
        "reg_param": best.reg_param,
        "alpha": best.alpha,
        "tuning_method": tuned_params.method,
        "baseline_precision_at_k_popular": report.baseline_precision_at_k_popular,
        "baseline_ndcg_at_k_popular": report.baseline_ndcg_at_k_popular,
    }
    if not report.implicit:
        metadata["rows_scored"] = report.rows_scored
        metadata["baseline_rmse_global_mean"] = report.baseline_rmse_global_mean
    # The leaderboard compares this with the current config to flag edited experiments.
    metadata["config_hash"] = config_hash(config)
    metadata["metrics_vs_baselines"] = evaluation_chart_md(context, report)
    version = config_data_version(
        context, EVALUATION_CODE_VERSION,
        ["als_model", "training", "test", "user_recommendations", "tuned_params"],
        {"ranking": config.ranking, "implicit": config.implicit})
    yield Output(report, data_version=version, metadata=metadata)


@asset(
    group_name="evaluation",
    partitions_def=experiment_partitions,
    tags=experiment_tags(model="als"),
    owners=OWNERS,
    kinds={"spark"},
    code_version=COLD_START_CODE_VERSION,
    description="Share of test pairs ALS cannot score, and the RMSE of each fallback.",
)
def cold_start_report(context: AssetExecutionContext, als_model, training, test):
    config = experiment_config(context)
    report = build_cold_start_report(als_model, training, test,
                                     explicit=not config.implicit.enabled)
    version = config_data_version(context, COLD_START_CODE_VERSION,
                                  ["als_model", "training", "test"],
                                  {"implicit": config.implicit.enabled})
    return Output(report, data_version=version, metadata={
        "experiment": context.partition_key,
        "test_rows": report.test_rows,
        "nan_predictions": report.nan_predictions,
        "nan_share": report.nan_share,
        "nan_unknown_item_only": report.nan_unknown_item_only,
        "nan_unknown_user_only": report.nan_unknown_user_only,
        "nan_unknown_both": report.nan_unknown_both,
        "global_mean": report.global_mean,
        **report.rmse_fields(),
        "fallbacks": MetadataValue.md(report.fallback_table()),
        "explanation": MetadataValue.md(report.explanation),
    })
