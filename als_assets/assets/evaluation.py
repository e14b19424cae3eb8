"""Evaluation on the test split, and what cold start costs."""


from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    MetadataValue,
    Output,
    TableColumn,
    TableRecord,
    TableSchema,
)

from ..checks import METRICS_NOT_NAN, gate, nan_fields
from ..core.cold_start import cold_start_report as build_cold_start_report
from ..core.evaluation import evaluate_model
from ..partitions import experiment_config
from ..plots import evaluation_chart_md
from ..versions import config_data_version, config_hash
from .experiment_asset import experiment_asset

EVALUATION_CODE_VERSION = "evaluation-3"
LIST_LABELS = {"model": "ALS model", "most_popular": "most popular", "random": "random"}


def lists_table(report) -> tuple[list[TableRecord], TableSchema]:
    """The model's and the baselines' test metrics side by side, both relevance protocols."""
    k = report.k
    columns = [("list", "string")] + [
        (f"{m}@{k}{suffix}", "float")
        for suffix in ("", " (all relevant)") for m in ("precision", "recall", "ndcg", "map")
    ] + [("coverage", "float"), ("popularity bias", "float"), ("overlap with popular", "float")]
    records = []
    for s in report.lists:
        values = [LIST_LABELS[s.name]]
        for metrics in (s.relevant, s.all_relevant):
            values += [metrics.precision_at_k, metrics.recall_at_k, metrics.ndcg_at_k,
                       metrics.map_at_k]
        values += [s.coverage, s.popularity_bias, s.popular_overlap]
        records.append(TableRecord(dict(zip((c for c, _ in columns), values, strict=True))))
    schema = TableSchema(columns=[TableColumn(name, kind) for name, kind in columns])
    return records, schema
COLD_START_CODE_VERSION = "cold_start_report-1"


@experiment_asset(
    group="evaluation",
    code_version=EVALUATION_CODE_VERSION,
    check_specs=[METRICS_NOT_NAN],
    description="Test RMSE/MAE and Precision/Recall/NDCG/MAP@K (relevance threshold and every "
    "test rating relevant), beside most-popular and random lists for the same users.",
)
def evaluation(context: AssetExecutionContext, als_model, training, validation, test,
               user_recommendations, tuned_params):
    config = experiment_config(context)
    report = evaluate_model(als_model, training, validation, test, user_recommendations, config)
    metrics = report.metrics()
    bad = nan_fields(metrics)
    yield from gate([AssetCheckResult(
        check_name=METRICS_NOT_NAN.name, passed=not bad,
        description=f"NaN metrics: {', '.join(bad)}" if bad else "every metric is a number",
    )])
    best = tuned_params.best
    for warning in report.warnings:
        context.log.warning(f"{context.partition_key}: {warning}")
    metadata = {
        "experiment": context.partition_key,
        **metrics,
        # Most-popular and random-ranking lists for the same users, and what each list
        # recommends: coverage, popularity bias, overlap with most-popular.
        **report.list_fields(),
        "k": report.k,
        "users_evaluated": report.users_evaluated,
        "relevance_threshold": report.relevance_threshold,
        "catalogue_movies": report.catalogue_size,
        "implicit": report.implicit,
        "rank": best.rank,
        "max_iter": best.max_iter,
        "reg_param": best.reg_param,
        "alpha": best.alpha,
        "tuning_method": tuned_params.method,
        "tuning_metric": tuned_params.metric,
        "lists_vs_baselines": MetadataValue.table(*lists_table(report)),
        "warnings": MetadataValue.md("\n".join(f"- {w}" for w in report.warnings) or "none"),
    }
    if not report.implicit:
        metadata["rows_scored"] = report.rows_scored
        metadata["baseline_rmse_global_mean"] = report.baseline_rmse_global_mean
    # The leaderboard compares this with the current config to flag edited experiments.
    metadata["config_hash"] = config_hash(config)
    metadata["metrics_vs_baselines"] = evaluation_chart_md(context, report)
    version = config_data_version(
        context, EVALUATION_CODE_VERSION,
        ["als_model", "training", "validation", "test", "user_recommendations", "tuned_params"],
        {"ranking": config.ranking, "implicit": config.implicit})
    yield Output(report, data_version=version, metadata=metadata)


@experiment_asset(
    group="evaluation",
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
