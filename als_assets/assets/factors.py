"""Latent factor tables of each experiment's model."""


from dagster import AssetExecutionContext, Output
from pyspark.sql import functions as F

from .experiment_asset import experiment_asset

FACTORS_CODE_VERSION = "factors-1"


@experiment_asset(
    outs={
        "user_factors": "Latent user vectors (user_id, features).",
        "item_factors": "Latent movie vectors (movie_id, features).",
    },
    group="factors",
    kinds=("spark", "parquet"),
    code_version=FACTORS_CODE_VERSION,
)
def factors(context: AssetExecutionContext, als_model):
    """The model's user and item factor matrices as tables."""
    for name, frame, key in (("user_factors", als_model.userFactors, "user_id"),
                             ("item_factors", als_model.itemFactors, "movie_id")):
        table = frame.select(F.col("id").alias(key), "features")
        yield Output(table, output_name=name,
                     metadata={"rows": table.count(), "rank": als_model.rank})
