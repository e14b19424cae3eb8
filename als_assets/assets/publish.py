"""Per-experiment result tables published to PostgreSQL for applications to query."""

from dagster import (
    AssetExecutionContext,
    AssetIn,
    Backoff,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
)
from pyspark.sql import DataFrame

from ..core.pg import classify_pg_error
from ..core.publish import TABLES, publish_frame
from ..resources import PostgresResource, SparkResource
from .experiment_asset import experiment_asset
from .reports import partition_link

# Retries help when the database is restarting or briefly unreachable; a refused login, an
# unknown host or a closed port does not get better by retrying (core/pg.py classifies), so it
# raises Failure(allow_retries=False) instead.
PUBLISH_RETRY = RetryPolicy(max_retries=2, delay=5, backoff=Backoff.EXPONENTIAL)
PUBLISH_TAGS = {"scope": "publish"}
SERVING_TAGS = {"scope": "serving"}


def publish(context: AssetExecutionContext, postgres: PostgresResource, frame: DataFrame,
            table: str, experiment: str | None = None, replace_all: bool = False,
            **metadata) -> MaterializeResult:
    spec = TABLES[table]
    try:
        result = publish_frame(frame, postgres.settings, postgres.schema, spec,
                               experiment or context.partition_key, replace_all=replace_all)
    except Exception as exc:
        fault = classify_pg_error(exc, postgres.settings)
        if fault is not None and fault.permanent:
            raise Failure(description=str(fault), allow_retries=False) from None
        raise
    key_list = ", ".join(spec.key)
    return MaterializeResult(metadata={
        "table": result.table,
        "rows": result.rows,
        "publish_seconds": result.seconds,
        "primary_key": key_list,
        "database": postgres.settings.dsn_for_display(),
        **metadata,
    })


def _publish_asset(table: str, upstream: str, description: str):
    @experiment_asset(
        name=f"pg_{table}",
        ins={"frame": AssetIn(upstream)},
        group="publish",
        kinds=("postgres",),
        tags=PUBLISH_TAGS,
        automate=False,
        retry_policy=PUBLISH_RETRY,
        description=description,
    )
    def _asset(context: AssetExecutionContext, postgres: PostgresResource, frame):
        return publish(context, postgres, frame, table)

    return _asset


pg_item_similarity = _publish_asset(
    "item_similarity", "item_similarity",
    "item_similarity in PostgreSQL (als.item_similarity), keyed (experiment, movie_id, rank).")
pg_user_recommendations = _publish_asset(
    "user_recommendations", "user_recommendations",
    "user_recommendations in PostgreSQL, keyed (experiment, user_id, rank).")
pg_user_factors = _publish_asset(
    "user_factors", "user_factors", "user_factors in PostgreSQL, keyed (experiment, user_id).")
pg_item_factors = _publish_asset(
    "item_factors", "item_factors", "item_factors in PostgreSQL, keyed (experiment, movie_id).")


@experiment_asset(
    group="publish",
    kinds=("postgres",),
    tags=PUBLISH_TAGS,
    automate=False,
    retry_policy=PUBLISH_RETRY,
    description="Test metrics in PostgreSQL (als.metrics), one row per (experiment, metric).",
)
def pg_metrics(context: AssetExecutionContext, postgres: PostgresResource, spark: SparkResource,
               evaluation):
    rows = [(name, float(value)) for name, value in evaluation.metrics().items()]
    rows += [("k", float(evaluation.k)), ("users_evaluated", float(evaluation.users_evaluated))]
    frame = spark.session.createDataFrame(rows, "metric string, value double")
    return publish(context, postgres, frame, "metrics")


@asset(
    group_name="publish",
    kinds={"postgres"},
    # Not `scope=publish`: that tag selects the per-experiment tables of one partition's run.
    tags=SERVING_TAGS,
    retry_policy=PUBLISH_RETRY,
    # Lineage: the served rows come from one experiment's user_recommendations, which one the
    # champion says (its metadata and this asset's `experiment` name it).
    deps=["user_recommendations"],
    required_resource_keys={"postgres", "io_manager"},
    description="The champion's top-K lists in PostgreSQL (als.recommendations, keyed (user_id, "
    "rank)): every row replaced in one transaction, the experiment recorded on each row.",
)
def pg_champion_recommendations(context: AssetExecutionContext, champion):
    experiment = champion.experiment
    io_manager = context.resources.io_manager
    stored = io_manager.store.current(("user_recommendations",), experiment)
    frame = io_manager.store.read(("user_recommendations",), experiment,
                                  lambda: io_manager.spark.session)
    return publish(context, context.resources.postgres, frame, "recommendations",
                   experiment=experiment, replace_all=True,
                   experiment_served=experiment,
                   recommendations_version=stored.path if stored else "unknown",
                   experiment_page=MetadataValue.url(
                       partition_link("user_recommendations", experiment)))
