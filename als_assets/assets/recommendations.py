"""Top-K recommendations for every user."""


from dagster import AssetExecutionContext, Output, asset

from ..core.topk import recommend_for_users
from ..partitions import EXPERIMENT_TAGS, experiment_config, experiment_partitions


@asset(
    group_name="recommendations",
    partitions_def=experiment_partitions,
    tags=EXPERIMENT_TAGS,
    kinds={"spark", "parquet"},
    description="Top-K movies per user (user_id, movie_id, score, rank), "
    "without movies the user rated in training.",
)
def user_recommendations(context: AssetExecutionContext, user_factors, item_factors, training):
    config = experiment_config(context).ranking
    seen = training if config.exclude_seen else None
    table = recommend_for_users(user_factors, item_factors, config.k, seen).persist()
    return Output(table, metadata={
        "rows": table.count(),
        "users": user_factors.count(),
        "k": config.k,
        "exclude_seen": config.exclude_seen,
    })
