"""The code location: assets, checks, resources and the IO manager, assembled."""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar, in_process_executor, load_assets_from_modules

from . import settings
from .assets import (
    champion,
    evaluation,
    factors,
    models,
    publish,
    recommendations,
    reports,
    similarity,
    sources,
    splits,
    tuning,
)
from .core.jdbc import find_jdbc_driver
from .io_managers import VersionedSparkIOManager
from .resources import PostgresResource, RatingsSource, SparkResource
from .sensors import als_automation, observe_ratings_input, ratings_input_sensor

_jdbc = find_jdbc_driver()

spark = SparkResource(
    master=settings.spark_master(),
    driver_memory=settings.env("SPARK_DRIVER_MEMORY", "4g"),
    storage_root=settings.storage_root(),
    storage_root_explicit=bool(settings.env("ALS_STORAGE_ROOT", "")),
    jdbc_jar=_jdbc.jar,
    jdbc_package=_jdbc.package,
    driver_host=settings.env("ALS_SPARK_DRIVER_HOST", ""),
    class_archive_dir=settings.class_archive_dir(),
)

postgres = PostgresResource(
    host=settings.env("ALS_PG_HOST", "127.0.0.1"),
    port=settings.env_int("ALS_PG_PORT", 5432),
    database=settings.env("ALS_PG_DATABASE", "postgres"),
    user=settings.env("ALS_PG_USER", "postgres"),
    # An EnvVar: Dagster resolves it at run time and shows its name, never the value.
    password=EnvVar("ALS_PG_PASSWORD") if os.environ.get("ALS_PG_PASSWORD") else "",
    connect_timeout=settings.env_int("ALS_PG_CONNECT_TIMEOUT", 10),
    publish_schema=settings.env("ALS_PG_PUBLISH_SCHEMA", "als"),
)

all_assets = load_assets_from_modules(
    [sources, splits, tuning, models, factors, similarity, recommendations, evaluation, reports,
     champion, publish]
)

resources = {
    "spark": spark,
    "source": RatingsSource(
        kind=settings.env("ALS_SOURCE", "synthetic"),
        synthetic_ratings=settings.env_int("ALS_SYNTHETIC_RATINGS", 100_000),
        movielens_dir=settings.env("ALS_MOVIELENS_DIR", ""),
        ratings_table=settings.env("ALS_PG_RATINGS_TABLE", "movielens.ratings"),
        movies_table=settings.env("ALS_PG_MOVIES_TABLE", "movielens.movies"),
        jdbc_partitions=settings.env_int("ALS_JDBC_PARTITIONS", 4),
        keep_empty_timestamps=settings.env_flag("ALS_KEEP_EMPTY_TIMESTAMPS"),
        keep_unknown_movies=settings.env_flag("ALS_KEEP_UNKNOWN_MOVIES"),
    ),
    "postgres": postgres,
    "io_manager": VersionedSparkIOManager(root=settings.storage_root(), spark=spark),
}

defs = Definitions(
    assets=all_assets,
    resources=resources,
    jobs=[observe_ratings_input],
    # New ratings re-run what opts in (automation.py, sensors.py).
    sensors=[ratings_input_sensor, als_automation],
    # One process, one SparkSession for the whole run: the multiprocess executor would start
    # a JVM per step and lose the cached splits between steps.
    executor=in_process_executor,
)
