"""ALS recommender experiments as Dagster software-defined assets on Spark.

The code location lives in `als_assets.definitions`; importing the package itself loads nothing.
"""
