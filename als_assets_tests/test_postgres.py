"""PostgreSQL as the source and as the place results are published, against the real server.

Each module run works in its own database (conftest's pg_settings), created and dropped.
"""

import socket
import threading
import time
from dataclasses import replace

import pytest
from dagster import AssetSelection, DagsterInstance, materialize
from pyspark.sql import functions as F

from als_assets.core.jdbc import (
    JdbcDriverNotFound,
    find_jdbc_driver,
    id_bounds,
    postgres_movies,
    require_jdbc_driver,
)
from als_assets.core.pg import PgConnectionError, PgSettings, connect, pg_faults
from als_assets.core.publish import TABLES, publish_frame
from als_assets.core.sources import RATINGS_SCHEMA, write_movielens_folder
from als_assets.definitions import all_assets
from als_assets.io_managers import VersionedSparkIOManager
from als_assets.loader import load_movielens
from als_assets.resources import PostgresResource, RatingsSource, SparkResource

pytestmark = pytest.mark.integration
PASSWORD = "s3cret-do-not-show"

requires_driver = pytest.mark.skipif(not find_jdbc_driver().found,
                                     reason="no PostgreSQL JDBC driver (libpostgresql-jdbc-java)")


N_RATINGS = 20_000


@pytest.fixture(scope="module")
def loaded(pg_settings: PgSettings, tmp_path_factory) -> PgSettings:
    """The database with synthetic MovieLens ratings loaded by the loader: as many as the
    synthetic end-to-end tests use, enough for ALS to beat the global mean reliably (on 5,000 it
    may not, and the blocking check would stop the chain this module publishes)."""
    folder = write_movielens_folder(tmp_path_factory.mktemp("ml") / "synthetic", N_RATINGS,
                                    seed=7)
    result = load_movielens(folder, pg_settings)
    assert result.ratings_rows == N_RATINGS
    return pg_settings


def query(settings: PgSettings, text: str, args: tuple = ()) -> list[tuple]:
    conn = connect(settings)
    try:
        with conn.cursor() as cur:
            cur.execute(text, args)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def pg_resource(settings: PgSettings, **overrides) -> PostgresResource:
    fields = dict(host=settings.host, port=settings.port, database=settings.database,
                  user=settings.user, password=PASSWORD, connect_timeout=5)
    fields.update(overrides)
    return PostgresResource(**fields)


@requires_driver
def test_postgres_source_is_a_partitioned_read(spark, loaded):
    source = RatingsSource(kind="postgres", jdbc_partitions=3)
    ratings = source.load_ratings(spark, pg_resource(loaded))
    assert ratings.schema == RATINGS_SCHEMA
    assert ratings.rdd.getNumPartitions() == 3
    assert ratings.count() == N_RATINGS
    (expected,) = query(loaded, "SELECT sum(rating)::float FROM movielens.ratings")[0]
    assert ratings.agg(F.sum("rating")).first()[0] == pytest.approx(expected, rel=1e-6)
    movies = source.load_movies(spark, pg_resource(loaded))
    assert movies.count() == query(loaded, "SELECT count(*) FROM movielens.movies")[0][0]
    conf = " ".join(f"{k}={v}" for k, v in spark.sparkContext.getConf().getAll())
    assert PASSWORD not in conf


@requires_driver
def test_experiment_on_postgres_publishes_indexed_tables(spark, loaded, tmp_path):
    root = str(tmp_path / "storage")
    spark_resource = SparkResource(master="local[2]", storage_root=root)
    postgres = pg_resource(loaded)
    resources = {
        "spark": spark_resource,
        "source": RatingsSource(kind="postgres"),
        "postgres": postgres,
        "io_manager": VersionedSparkIOManager(root=root, spark=spark_resource),
    }
    instance = DagsterInstance.ephemeral()
    assert materialize(all_assets, resources=resources, instance=instance,
                       selection=AssetSelection.assets("ratings", "movies")).success
    chain = AssetSelection.tag("scope", "experiment") | AssetSelection.tag("scope", "publish")
    result = materialize(all_assets, resources=resources, instance=instance, selection=chain,
                         partition_key="e2e_holdout")
    assert result.success

    for event in result.get_asset_materialization_events():
        for value in event.materialization.metadata.values():
            assert PASSWORD not in str(value.value)

    # The served table: the champion's lists, exactly the stored recommendations.
    served = materialize(all_assets, resources=resources, instance=instance,
                         selection=["experiment_leaderboard", "champion",
                                    "pg_champion_recommendations"])
    assert served.success
    recs = VersionedSparkIOManager(root=root, spark=spark_resource).store.read(
        ("user_recommendations",), "e2e_holdout", lambda: spark)
    assert query(loaded, "SELECT DISTINCT experiment FROM als.recommendations") == [
        ("e2e_holdout",)]
    assert sorted(query(loaded, "SELECT user_id, movie_id, rank FROM als.recommendations")) \
        == sorted((r["user_id"], r["movie_id"], r["rank"]) for r in recs.collect())

    sim_rows = query(loaded, "SELECT count(*) FROM als.item_similarity WHERE experiment = %s",
                     ("e2e_holdout",))[0][0]
    parquet = VersionedSparkIOManager(root=root, spark=spark_resource).store.read(
        ("item_similarity",), "e2e_holdout", lambda: spark)
    assert sim_rows == parquet.count() > 0
    movie = parquet.first()["movie_id"]
    user = query(loaded, "SELECT min(user_id) FROM als.user_recommendations")[0][0]
    metrics = dict(query(loaded, "SELECT metric, value FROM als.metrics WHERE experiment = %s",
                         ("e2e_holdout",)))
    assert {"rmse", "mae", "precision_at_k", "ndcg_at_k", "map_at_k"} <= set(metrics)

    # "Similar to X" and "recommendations for U" are answered by the primary-key index.
    conn = connect(loaded)
    try:
        with conn.cursor() as cur:
            cur.execute("SET enable_seqscan = off")
            for text, arg in (
                ("SELECT similar_movie_id FROM als.item_similarity WHERE experiment = %s AND "
                 "movie_id = %s ORDER BY rank", movie),
                ("SELECT movie_id FROM als.user_recommendations WHERE experiment = %s AND "
                 "user_id = %s ORDER BY rank", user),
            ):
                cur.execute("EXPLAIN " + text, ("e2e_holdout", arg))
                plan = " ".join(r[0] for r in cur.fetchall())
                assert "Index" in plan and "Sort" not in plan, plan
                cur.execute(text, ("e2e_holdout", arg))
                assert len(cur.fetchall()) in (5, 10)
    finally:
        conn.close()


@requires_driver
def test_republish_is_atomic_for_readers(spark, loaded):
    spec = TABLES["user_recommendations"]

    def frame(n_users: int):
        return spark.range(n_users * 10).select(
            (F.col("id") / 10).cast("int").alias("user_id"), F.col("id").cast("int")
            .alias("movie_id"), F.lit(1.0).cast("float").alias("score"),
            (F.col("id") % 10 + 1).cast("int").alias("rank"))

    publish_frame(frame(100), loaded, "als_atomic", spec, "exp")
    seen: set[int] = set()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            seen.add(query(loaded, "SELECT count(*) FROM als_atomic.user_recommendations "
                                   "WHERE experiment = 'exp'")[0][0])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in (300, 100, 300):
            publish_frame(frame(n), loaded, "als_atomic", spec, "exp")
    finally:
        stop.set()
        thread.join()
    assert seen <= {1_000, 3_000} and len(seen) >= 1


@requires_driver
def test_served_recommendations_swap_experiments_atomically(spark, loaded):
    """als.recommendations holds one experiment's lists: a reader sees the old champion's rows or
    the new one's, all of them, never a mix and never nothing."""
    spec = TABLES["recommendations"]

    def frame(n_users: int):
        return spark.range(n_users * 10).select(
            (F.col("id") / 10).cast("int").alias("user_id"),
            F.col("id").cast("int").alias("movie_id"), F.lit(1.0).cast("float").alias("score"),
            (F.col("id") % 10 + 1).cast("int").alias("rank"))

    publish_frame(frame(100), loaded, "als_served", spec, "old", replace_all=True)
    seen: set[tuple] = set()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            seen.add(tuple(query(loaded, "SELECT experiment, count(*) FROM "
                                         "als_served.recommendations GROUP BY experiment "
                                         "ORDER BY experiment")))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for experiment, n in (("new", 300), ("old", 100), ("new", 300)):
            publish_frame(frame(n), loaded, "als_served", spec, experiment, replace_all=True)
    finally:
        stop.set()
        thread.join()
    assert seen <= {(("old", 1_000),), (("new", 3_000),)} and len(seen) >= 1
    assert query(loaded, "SELECT experiment, count(*) FROM als_served.recommendations "
                         "GROUP BY experiment") == [("new", 3_000)]
    # Readers look a user up by the primary key (user_id, rank), with no experiment column.
    assert query(loaded, "SELECT movie_id FROM als_served.recommendations WHERE user_id = 7 "
                         "ORDER BY rank LIMIT 3") == [(70,), (71,), (72,)]


@requires_driver
def test_failed_publish_keeps_old_rows_and_leaves_no_staging(spark, loaded):
    spec = TABLES["metrics"]
    good = spark.createDataFrame([("rmse", 0.9), ("mae", 0.7)], "metric string, value double")
    publish_frame(good, loaded, "als_fail", spec, "exp")
    bad = spark.range(5).select(
        F.when(F.col("id") < 3, F.col("id").cast("string"))
        .otherwise(F.raise_error(F.lit("boom"))).alias("metric"),
        F.lit(1.0).alias("value"))
    with pytest.raises(Exception, match="boom"):
        publish_frame(bad, loaded, "als_fail", spec, "exp")
    rows = dict(query(loaded, "SELECT metric, value FROM als_fail.metrics"))
    assert rows == {"rmse": 0.9, "mae": 0.7}
    staging = query(loaded, "SELECT tablename FROM pg_tables WHERE schemaname = 'als_fail' "
                            "AND tablename LIKE '\\_stage%%'")
    assert staging == []


def test_unreachable_database_fails_fast_without_password(loaded):
    settings = pg_resource(loaded, port=1, connect_timeout=3).settings
    start = time.monotonic()
    with pytest.raises(PgConnectionError) as info:
        connect(settings)
    assert time.monotonic() - start < 10
    assert PASSWORD not in str(info.value) and "127.0.0.1:1" in str(info.value)


def test_bad_identifiers_are_refused_before_sql(loaded):
    source = RatingsSource(kind="postgres", ratings_table="movielens.ratings; drop table x")
    with pytest.raises(ValueError, match="invalid ratings table"):
        source.load_ratings(None, pg_resource(loaded))
    with pytest.raises(ValueError, match="publish schema"):
        _ = pg_resource(loaded, publish_schema="als; drop").schema


def test_missing_jdbc_driver_names_the_options(monkeypatch, tmp_path):
    monkeypatch.setattr("als_assets.core.jdbc.DEBIAN_JAR", str(tmp_path / "none.jar"))
    assert not find_jdbc_driver({}).found
    assert find_jdbc_driver({"ALS_JDBC_PACKAGE": "org.postgresql:postgresql:42.7.4"}).found

    class Conf:
        def get(self, key, default=""):
            return default

    class Context:
        def getConf(self):  # noqa: N802 - mirrors SparkContext
            return Conf()

    class Session:
        sparkContext = Context()

    with pytest.raises(JdbcDriverNotFound) as info:
        require_jdbc_driver(Session())
    for option in ("libpostgresql-jdbc-java", "ALS_JDBC_JAR", "ALS_JDBC_PACKAGE"):
        assert option in str(info.value)



def test_only_transient_source_errors_are_retried():
    from dagster import Failure

    from als_assets.assets.sources import SOURCE_RETRY, permanent_errors
    from als_assets.core.sources import SourceError

    assert SOURCE_RETRY.max_retries == 2
    for permanent in (SourceError("bad file"), ValueError("bad table name"),
                      PgConnectionError("refused", kind="refused login", permanent=True)):
        with pytest.raises(Failure) as info, permanent_errors():
            raise permanent
        assert info.value.allow_retries is False
    with pytest.raises(PgConnectionError), permanent_errors():
        raise PgConnectionError("cannot connect: timeout expired", kind="unreachable")


# ---------------------------------------------------------------------------------------------
# Faults injected for real: classified once (core/pg.py), for psycopg2 and for Spark's JDBC


def free_port() -> int:
    """A port nothing listens on: bound and released, so the kernel refuses connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


NO_ROLE = "als_no_such_role"  # trust auth accepts any password, but not an unknown role
FAULTS = {
    "closed port": lambda: {"port": free_port()},
    "unknown host": lambda: {"host": "no-such-host.invalid"},
    "refused login": lambda: {"user": NO_ROLE},
}


def names_where_and_hides_password(message: str, settings: PgSettings) -> None:
    assert f"{settings.host}:{settings.port}/{settings.database}" in message, message
    assert f"as user {settings.user!r}" in message, message
    assert PASSWORD not in message


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_psycopg2_faults_are_permanent_and_say_where(loaded, kind):
    settings = replace(loaded, password=PASSWORD, connect_timeout=5, **FAULTS[kind]())
    with pytest.raises(PgConnectionError) as info:
        connect(settings)
    assert (info.value.kind, info.value.permanent) == (kind, True)
    assert "not retried" in str(info.value)
    names_where_and_hides_password(str(info.value), settings)


def test_missing_table_is_permanent_through_psycopg2(loaded):
    settings = replace(loaded, password=PASSWORD)
    with pytest.raises(PgConnectionError) as info, pg_faults(settings, "movielens.no_such"):
        id_bounds(settings, "movielens.no_such", "user_id")
    assert (info.value.kind, info.value.permanent) == ("missing table", True)
    assert "table movielens.no_such does not exist" in str(info.value)
    names_where_and_hides_password(str(info.value), settings)


@requires_driver
@pytest.mark.parametrize("kind", [*sorted(FAULTS), "missing table"])
def test_spark_jdbc_faults_are_permanent_and_say_where(spark, loaded, kind):
    """Spark's own message is "jdbc:postgresql:****(redacted) ... Couldn't connect"; the
    classifier reads the driver's cause further down the Java exception chain."""
    overrides = FAULTS[kind]() if kind in FAULTS else {}
    settings = replace(loaded, password=PASSWORD, connect_timeout=5, **overrides)
    table = "movielens.no_such" if kind == "missing table" else "movielens.movies"
    with pytest.raises(PgConnectionError) as info:
        postgres_movies(spark, settings, table)
    assert (info.value.kind, info.value.permanent) == (kind, True)
    names_where_and_hides_password(str(info.value), settings)


@requires_driver
@pytest.mark.parametrize("kind", ["refused login", "closed port"])
def test_sources_fail_once_without_retry(loaded, tmp_path, kind):
    """The movies used to be retried for 30 s on a refused login or a closed port."""
    root = str(tmp_path / "storage")
    spark_resource = SparkResource(master="local[2]", storage_root=root,
                                   jdbc_jar=find_jdbc_driver().jar)
    resources = {
        "spark": spark_resource,
        "source": RatingsSource(kind="postgres"),
        "postgres": pg_resource(loaded, **FAULTS[kind]()),
        "io_manager": VersionedSparkIOManager(root=root, spark=spark_resource),
    }
    started = time.monotonic()
    result = materialize(all_assets, resources=resources, instance=DagsterInstance.ephemeral(),
                         selection=AssetSelection.assets("ratings", "movies"),
                         raise_on_error=False)
    assert not result.success
    assert time.monotonic() - started < 60
    types = [e.event_type_value for e in result.all_events]
    assert "STEP_UP_FOR_RETRY" not in types and types.count("STEP_FAILURE") == 1
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = str(failure.event_specific_data.error)
    assert "not retried" in message and PASSWORD not in message


@requires_driver
@pytest.mark.parametrize("kind", ["refused login", "closed port"])
def test_publish_permanent_faults_are_not_retried(spark, loaded, kind):
    from dagster import Failure, build_asset_context

    from als_assets.assets.publish import publish

    frame = spark.createDataFrame([("rmse", 0.9)], "metric string, value double")
    with pytest.raises(Failure) as info:
        publish(build_asset_context(partition_key="e2e_holdout"),
                pg_resource(loaded, **FAULTS[kind]()), frame, "metrics")
    assert info.value.allow_retries is False
    assert "not retried" in info.value.description
    assert PASSWORD not in info.value.description
