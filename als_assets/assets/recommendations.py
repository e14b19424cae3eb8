"""Top-K recommendations for every user."""


from dagster import AssetExecutionContext, Output, asset

from ..core.distributed import recommend
from ..core.ranking import rated_outside
from ..partitions import experiment_config, experiment_partitions
from ..versions import OWNERS, config_data_version, experiment_tags

RECOMMENDATIONS_CODE_VERSION = "user_recommendations-2"


@asset(
    group_name="recommendations",
    partitions_def=experiment_partitions,
    tags=experiment_tags(model="als"),
    owners=OWNERS,
    kinds={"spark", "parquet"},
    code_version=RECOMMENDATIONS_CODE_VERSION,
    description="Top-K movies per user (user_id, movie_id, score, rank), "
    "without movies the user rated in training or validation.",
)
def user_recommendations(context: AssetExecutionContext, user_factors, item_factors, training,
                         validation):
    config = experiment_config(context).ranking
    # Everything the user rated outside test: the lists the test split judges.
    seen = rated_outside(training, validation) if config.exclude_seen else None
    table = recommend(user_factors, item_factors, config.k, seen).persist()
    version = config_data_version(context, RECOMMENDATIONS_CODE_VERSION,
                                  ["user_factors", "item_factors", "training", "validation"],
                                  {"ranking": config})
    return Output(table, data_version=version, metadata={
        "rows": table.count(),
        "users": user_factors.count(),
        "k": config.k,
        "exclude_seen": config.exclude_seen,
    })
