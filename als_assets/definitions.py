"""The code location: assets, checks, resources and the IO manager, assembled."""

from __future__ import annotations

from dagster import Definitions, in_process_executor, load_assets_from_modules

from . import settings
from .assets import (
    evaluation,
    factors,
    models,
    recommendations,
    reports,
    similarity,
    sources,
    splits,
    tuning,
)
from .io_managers import VersionedSparkIOManager
from .resources import RatingsSource, SparkResource

spark = SparkResource(
    master=settings.spark_master(),
    driver_memory=settings.env("SPARK_DRIVER_MEMORY", "4g"),
    storage_root=settings.storage_root(),
)

all_assets = load_assets_from_modules(
    [sources, splits, tuning, models, factors, similarity, recommendations, evaluation, reports]
)

resources = {
    "spark": spark,
    "source": RatingsSource(
        kind=settings.env("ALS_SOURCE", "synthetic"),
        synthetic_ratings=settings.env_int("ALS_SYNTHETIC_RATINGS", 100_000),
        movielens_dir=settings.env("ALS_MOVIELENS_DIR", ""),
    ),
    "io_manager": VersionedSparkIOManager(root=settings.storage_root(), spark=spark),
}

defs = Definitions(
    assets=all_assets,
    resources=resources,
    # One process, one SparkSession for the whole run: the multiprocess executor would start
    # a JVM per step and lose the cached splits between steps.
    executor=in_process_executor,
)
