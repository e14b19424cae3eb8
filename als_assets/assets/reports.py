"""Reports for people: a sample user's recommendations, and the leaderboard of experiments."""


from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    MetadataValue,
    Output,
    asset,
)

from ..core.reports import leaderboard_frame, pick_sample_user, sample_user_view
from ..partitions import EXPERIMENT_TAGS, EXPERIMENTS, experiment_config, experiment_partitions
from .evaluation import evaluation


@asset(
    group_name="reports",
    partitions_def=experiment_partitions,
    tags=EXPERIMENT_TAGS,
    kinds={"spark"},
    description="A user's top-10 rated movies beside their top-10 recommendations, with titles.",
)
def sample_user_report(context: AssetExecutionContext, training, test, user_recommendations,
                       movies):
    config = experiment_config(context)
    user = pick_sample_user(user_recommendations, test, config.sample_user)
    report = sample_user_view(training, test, user_recommendations, movies, user)
    hits = int(report.recommended["test_rating"].notna().sum())
    return Output(report, metadata={
        "user_id": user,
        "hits_in_test": hits,
        "report": MetadataValue.md(report.markdown()),
    })


LEADERBOARD_PARAMS = ("rank", "max_iter", "reg_param", "alpha", "tuning_method", "implicit", "k")


@asset(
    group_name="reports",
    deps=[evaluation],
    kinds={"pandas"},
    description="Every materialized experiment's params and test metrics, best first.",
)
def experiment_leaderboard(context: AssetExecutionContext):
    """Read from the latest `evaluation` materialization of each experiment; experiments never
    materialized are skipped."""
    rows, missing = [], []
    for name in EXPERIMENTS:
        records = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("evaluation"), asset_partitions=[name]),
            limit=1,
        ).records
        if not records:
            missing.append(name)
            continue
        event = records[0].asset_materialization
        meta = {k: v.value for k, v in event.metadata.items()}
        row = {"experiment": name, "run_id": records[0].run_id}
        row.update({k: meta.get(k) for k in LEADERBOARD_PARAMS})
        row.update({k: meta.get(k) for k in ("ndcg_at_k", "precision_at_k", "recall_at_k",
                                             "map_at_k", "rmse", "mae")})
        rows.append(row)
    frame = leaderboard_frame(rows)
    return Output(frame, metadata={
        "experiments": len(frame),
        "not_materialized": ", ".join(missing) or "none",
        "leaderboard": MetadataValue.md(frame.to_markdown(index=False) if len(frame) else
                                        "No experiment has been evaluated yet."),
    })
