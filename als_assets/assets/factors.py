"""Latent factor tables of each experiment's model."""


from dagster import AssetExecutionContext, AssetOut, Output, multi_asset
from pyspark.sql import functions as F

from ..partitions import experiment_partitions
from ..versions import OWNERS, experiment_tags

FACTORS_CODE_VERSION = "factors-1"
FACTOR_TAGS = experiment_tags(model="als")


@multi_asset(
    outs={
        "user_factors": AssetOut(description="Latent user vectors (user_id, features).",
                                 kinds={"spark", "parquet"}, tags=FACTOR_TAGS, owners=OWNERS,
                                 code_version=FACTORS_CODE_VERSION),
        "item_factors": AssetOut(description="Latent movie vectors (movie_id, features).",
                                 kinds={"spark", "parquet"}, tags=FACTOR_TAGS, owners=OWNERS,
                                 code_version=FACTORS_CODE_VERSION),
    },
    group_name="factors",
    partitions_def=experiment_partitions,
)
def factors(context: AssetExecutionContext, als_model):
    """The model's user and item factor matrices as tables."""
    for name, frame, key in (("user_factors", als_model.userFactors, "user_id"),
                             ("item_factors", als_model.itemFactors, "movie_id")):
        table = frame.select(F.col("id").alias(key), "features")
        yield Output(table, output_name=name,
                     metadata={"rows": table.count(), "rank": als_model.rank})
