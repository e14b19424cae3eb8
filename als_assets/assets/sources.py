"""Source assets: the ratings and movies every experiment starts from."""

from contextlib import contextmanager

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    Backoff,
    Failure,
    Output,
    RetryPolicy,
    asset,
)
from pyspark import StorageLevel

from ..checks import RATINGS_VALID, gate
from ..core.jdbc import JdbcDriverNotFound
from ..core.pg import PgConnectionError
from ..core.sources import SourceError, clean_ratings, summarize_ratings
from ..resources import PostgresResource, RatingsSource, SparkResource
from ..versions import content_data_version, content_data_version_and_rows

# Bump when the asset's logic changes: the UI then shows its materializations as stale.
RATINGS_CODE_VERSION = "ratings-1"
MOVIES_CODE_VERSION = "movies-1"


# A database or cluster that is briefly unreachable may answer on a retry; bad files, bad
# identifiers, a missing driver or a refused login will not (see permanent_errors).
SOURCE_RETRY = RetryPolicy(max_retries=2, delay=5, backoff=Backoff.EXPONENTIAL)


@contextmanager
def permanent_errors():
    """Turn errors a retry cannot fix into a Failure that is not retried."""
    try:
        yield
    except (SourceError, ValueError, JdbcDriverNotFound) as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
    except PgConnectionError as exc:
        if "authentication" in str(exc) or "password" in str(exc):
            raise Failure(description=str(exc), allow_retries=False) from exc
        raise


@asset(
    retry_policy=SOURCE_RETRY,
    group_name="sources",
    kinds={"spark", "parquet"},
    code_version=RATINGS_CODE_VERSION,
    check_specs=[RATINGS_VALID],
    description="User-movie ratings (user_id, movie_id, rating, timestamp) from ALS_SOURCE.",
)
def ratings(context: AssetExecutionContext, spark: SparkResource, source: RatingsSource,
            postgres: PostgresResource):
    with permanent_errors():
        raw = source.load_ratings(spark.session, postgres)
    raw = raw.persist(StorageLevel.MEMORY_AND_DISK)
    summary = summarize_ratings(raw)
    problems = summary.problems
    yield from gate([
        AssetCheckResult(
            check_name=RATINGS_VALID.name,
            passed=not problems,
            description="; ".join(problems) or "valid",
            metadata={"rows": summary.rows, "null_ids": summary.null_ids,
                      "out_of_scale": summary.out_of_scale,
                      "ids_outside_int32": summary.ids_outside_int32,
                      "duplicate_pairs": summary.duplicate_pairs},
        )
    ])
    n_users, n_movies = summary.users, summary.movies
    cleaned = clean_ratings(raw)
    # The data version hashes the rows: unchanged data, unchanged version (see splits.py).
    version = content_data_version(cleaned)
    yield Output(
        cleaned,
        data_version=version,
        metadata={
            "source": source.describe(postgres),
            "rows": summary.rows,
            "users": n_users,
            "movies": n_movies,
            "density": summary.rows / max(1, n_users * n_movies),
            "mean_rating": summary.mean_rating,
            "min_rating": summary.min_rating,
            "max_rating": summary.max_rating,
            "spark_version": spark.session.version,
        },
    )


@asset(
    retry_policy=SOURCE_RETRY,
    group_name="sources",
    kinds={"spark", "parquet"},
    code_version=MOVIES_CODE_VERSION,
    description="Movie titles and genres (movie_id, title, genres) from ALS_SOURCE.",
)
def movies(context: AssetExecutionContext, spark: SparkResource, source: RatingsSource,
           postgres: PostgresResource):
    with permanent_errors():
        frame = source.load_movies(spark.session, postgres)
    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    # The data version hashes the rows: unchanged data, unchanged version (see splits.py).
    version, rows = content_data_version_and_rows(frame)
    return Output(frame, data_version=version,
                  metadata={"source": source.describe(postgres), "rows": rows})
