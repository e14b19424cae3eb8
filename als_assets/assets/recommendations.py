"""Top-K recommendations for every user."""


from dagster import AssetExecutionContext, Output

from ..core.distributed import recommend
from ..core.user_lists import SeenLists
from ..partitions import experiment_config
from ..versions import config_data_version
from .experiment_asset import experiment_asset

RECOMMENDATIONS_CODE_VERSION = "user_recommendations-2"


@experiment_asset(
    group="recommendations",
    kinds=("spark", "parquet"),
    code_version=RECOMMENDATIONS_CODE_VERSION,
    description="Top-K movies per user (user_id, movie_id, score, rank), "
    "without movies the user rated in training or validation.",
)
def user_recommendations(context: AssetExecutionContext, user_factors, item_factors, training,
                         validation):
    config = experiment_config(context).ranking
    # Everything the user rated outside test: the lists the test split judges. On the
    # executors, grouped once with als_model and evaluation (core/user_lists.py).
    seen = SeenLists(training, validation) if config.exclude_seen else None
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
