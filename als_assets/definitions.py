"""The code location: assets, checks, resources and the IO manager, assembled."""

from __future__ import annotations

import os
from collections.abc import Mapping

from dagster import Definitions, in_process_executor, load_assets_from_modules

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
from .io_managers import VersionedSparkIOManager
from .resources import PostgresResource, RatingsSource, SparkResource, from_env
from .sensors import als_automation, observe_ratings_input, ratings_input_sensor

all_assets = load_assets_from_modules(
    [sources, splits, tuning, models, factors, similarity, recommendations, evaluation, reports,
     champion, publish]
)


def build_resources(spark: SparkResource | None = None, source: RatingsSource | None = None,
                    postgres: PostgresResource | None = None) -> dict:
    """The resources of a run, each given explicitly or left at its defaults; the IO manager
    stores under the Spark resource's storage root (where its checkpoints go too)."""
    spark = spark or SparkResource()
    return {
        "spark": spark,
        "source": source or RatingsSource(),
        "postgres": postgres or PostgresResource(),
        "io_manager": VersionedSparkIOManager(spark=spark),
    }


def resources_from_env(environ: Mapping[str, str] | None = None) -> dict:
    """The resources with the README's environment variables: each variable that is set becomes
    an `EnvVar` of its field (Dagster resolves it when a run starts and shows only its name);
    unset ones leave the defaults of `settings.DEFAULTS`."""
    environ = os.environ if environ is None else environ
    return build_resources(from_env(SparkResource, environ), from_env(RatingsSource, environ),
                           from_env(PostgresResource, environ))


def build_defs(resources: dict) -> Definitions:
    return Definitions(
        assets=all_assets,
        resources=resources,
        jobs=[observe_ratings_input],
        # New ratings re-run what opts in (automation.py, sensors.py).
        sensors=[ratings_input_sensor, als_automation],
        # One process, one SparkSession for the whole run: the multiprocess executor would
        # start a JVM per step and lose the cached splits between steps.
        executor=in_process_executor,
    )


# The code location: which variables are set decides which fields are EnvVars; their values
# are read when a run starts.
resources = resources_from_env()
defs = build_defs(resources)
