"""Source assets: the ratings and movies every experiment starts from, and `ratings_input`, the
input they are read from as Dagster observes it.

One step makes both: they come from the same source and belong together (a rating names a
movie), so they switch together or not at all. The blocking ``ratings_valid`` check runs on
both before either is written; when it fails, both keep their previous values.
"""

import warnings
from contextlib import contextmanager

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetOut,
    Backoff,
    BetaWarning,
    DataVersion,
    Failure,
    ObserveResult,
    Output,
    RetryPolicy,
    multi_asset,
    observable_source_asset,
)
from pyspark import StorageLevel

from ..automation import SOURCES_CONDITION
from ..checks import RATINGS_VALID, gate
from ..core.jdbc import JdbcDriverNotFound
from ..core.pg import PgConnectionError, PgSettings, pg_faults
from ..core.ratings_check import summarize_ratings
from ..core.source_fingerprint import (
    Fingerprint,
    files_fingerprint,
    synthetic_fingerprint,
    table_fingerprint,
)
from ..core.sources import SourceError, clean_columns, clean_ratings
from ..resources import PostgresResource, RatingsSource, SparkResource
from ..versions import content_data_version_and_rows, content_version

# Bump when the asset's logic changes: the UI then shows its materializations as stale.
RATINGS_CODE_VERSION = "ratings-2"  # -2: every rating-row rule of core/rating_rules.py
MOVIES_CODE_VERSION = "movies-1"


# A database or cluster that is briefly unreachable may answer on a retry; bad files, bad
# identifiers, a missing driver, a refused login, an unknown host, a closed port or a missing
# table will not (see permanent_errors and core/pg.py's classify_pg_error).
SOURCE_RETRY = RetryPolicy(max_retries=2, delay=5, backoff=Backoff.EXPONENTIAL)


@contextmanager
def permanent_errors(settings: PgSettings | None = None, table: str = ""):
    """Turn errors a retry cannot fix into a Failure that is not retried.

    ``settings``: the database being read, if any: its faults (psycopg2's and Spark JDBC's)
    are classified by core/pg.py, once for every asset that talks to PostgreSQL.
    """
    try:
        if settings is None:
            yield
        else:
            with pg_faults(settings, table):
                yield
    except (SourceError, ValueError, JdbcDriverNotFound) as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
    except PgConnectionError as exc:
        if exc.permanent:
            raise Failure(description=str(exc), allow_retries=False) from None
        raise


def ratings_fingerprint(source: RatingsSource, postgres: PostgresResource) -> Fingerprint:
    """The source's current state without reading its rows (core/source_fingerprint.py): the
    files' sizes and times, the table's row count and newest timestamp, or the synthetic spec."""
    if source.kind == "movielens":
        if not source.movielens_dir:
            raise SourceError("ALS_SOURCE=movielens needs ALS_MOVIELENS_DIR")
        return files_fingerprint(source.movielens_dir)
    if source.kind == "postgres":
        return table_fingerprint(postgres.settings, source.ratings_table, source.movies_table)
    if source.kind == "synthetic":
        return synthetic_fingerprint(source.synthetic_ratings, source.synthetic_seed)
    raise SourceError(f"ALS_SOURCE={source.kind!r} is not a known source")


# observable_source_asset is beta, and Dagster says so at every load of the code; it is the
# API Dagster has for observing an input without loading it, so the warning is not one the
# user can act on.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", BetaWarning)

    @observable_source_asset(
        group_name="sources",
        description="Where ratings and movies are read from (ALS_SOURCE), observed without loading "
        "it: a new data version means new ratings, and the sources re-run by themselves when "
        "automation is on. Observed by the ratings_input_sensor.",
    )
    def ratings_input(source: RatingsSource, postgres: PostgresResource) -> ObserveResult:
        with permanent_errors(postgres.settings if source.kind == "postgres" else None,
                             source.ratings_table):
            found = ratings_fingerprint(source, postgres)
        return ObserveResult(data_version=DataVersion(found.version),
                             metadata={"source": source.describe(postgres), **found.metadata})


@multi_asset(
    name="ratings_and_movies",
    # Provenance and automation: a new version of the input re-runs these (SOURCES_CONDITION).
    deps=[ratings_input],
    outs={
        "ratings": AssetOut(
            group_name="sources", kinds={"spark", "parquet"}, code_version=RATINGS_CODE_VERSION,
            automation_condition=SOURCES_CONDITION,
            description="User-movie ratings (user_id, movie_id, rating, timestamp) from "
            "ALS_SOURCE; written together with movies, or neither is."),
        "movies": AssetOut(
            group_name="sources", kinds={"spark", "parquet"}, code_version=MOVIES_CODE_VERSION,
            automation_condition=SOURCES_CONDITION,
            description="Movie titles and genres (movie_id, title, genres) from ALS_SOURCE; "
            "written together with ratings, or neither is."),
    },
    check_specs=[RATINGS_VALID],
    # Selecting one without the other would let them drift apart again.
    can_subset=False,
    retry_policy=SOURCE_RETRY,
)
def ratings_and_movies(context: AssetExecutionContext, spark: SparkResource,
                       source: RatingsSource, postgres: PostgresResource):
    settings = postgres.settings if source.kind == "postgres" else None
    with permanent_errors(settings, source.ratings_table):
        raw = source.load_ratings(spark.session, postgres)
    with permanent_errors(settings, source.movies_table):
        movies = source.load_movies(spark.session, postgres)
    with permanent_errors(settings):
        raw = raw.persist(StorageLevel.MEMORY_AND_DISK)
        movies = movies.persist(StorageLevel.MEMORY_AND_DISK)
        # The cleaned rows' content hash (the ratings' data version) comes from the validation
        # pass: one read of the ratings fewer.
        summary = summarize_ratings(raw, movies, content_of=clean_columns(raw),
                                    **source.check_context(postgres))
    problems = summary.problems
    yield from gate([
        AssetCheckResult(
            asset_key="ratings",
            check_name=RATINGS_VALID.name,
            passed=not problems,
            description="; ".join(problems) or "; ".join(summary.warnings) or "valid",
            metadata={"rows": summary.rows, **{code: summary.count(code)
                                               for code in sorted(summary.counts)},
                      "kept_with_a_warning": ", ".join(sorted(summary.kept)) or "none"},
        )
    ])
    for warning in summary.warnings:
        context.log.warning(f"ratings_valid: kept, as configured: {warning}")
    with permanent_errors(settings):
        cleaned = clean_ratings(raw)
        # The data version hashes the rows: unchanged data, unchanged version (see splits.py).
        version = content_version(cleaned.columns, *summary.content)
        movies_version, movie_rows = content_data_version_and_rows(movies)
    described = source.describe(postgres)
    yield Output(
        cleaned,
        output_name="ratings",
        data_version=version,
        metadata={
            "source": described,
            "rows": summary.rows,
            "users": summary.users,
            "movies": summary.movies,
            "density": summary.rows / max(1, summary.users * summary.movies),
            "mean_rating": summary.mean_rating,
            "min_rating": summary.min_rating,
            "max_rating": summary.max_rating,
            "warnings": "; ".join(summary.warnings) or "none",
            "spark_version": spark.session.version,
        },
    )
    yield Output(movies, output_name="movies", data_version=movies_version,
                 metadata={"source": described, "rows": movie_rows})
