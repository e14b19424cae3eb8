"""Publishing survives a killed publisher and a broken connection, against the real server.

Each module run works in its own database (conftest's pg_settings), created and dropped.
"""

from __future__ import annotations

import time

import pytest
from pyspark.sql import functions as F

from als_assets.core.jdbc import find_jdbc_driver
from als_assets.core.pg import PgSettings, connect
from als_assets.core.publish import TABLES, drop_orphaned_stages, publish_frame

from .killed_writes import Blocked

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not find_jdbc_driver().found,
                                 reason="no PostgreSQL JDBC driver (libpostgresql-jdbc-java)")]
SPEC = TABLES["user_recommendations"]
# The test's own sessions carry another name than the publisher's, so that killing the
# publisher's sessions by name never reaches them.
TEST_CLIENT = "als_assets_test"


def query(settings: PgSettings, text: str, args: tuple = ()) -> list[tuple]:
    conn = connect(settings, application_name=TEST_CLIENT)
    try:
        with conn.cursor() as cur:
            cur.execute(text, args)
            rows = cur.fetchall() if cur.description else []
        conn.commit()
        return rows
    finally:
        conn.close()


def stages(settings: PgSettings) -> list[str]:
    return [r[0] for r in query(
        settings, "SELECT tablename FROM pg_tables WHERE schemaname = 'als' AND "
        "tablename LIKE '\\_stage\\_%%' ORDER BY 1")]


def recommendations(spark, users: list[int], movie: int):
    return spark.createDataFrame([(u, movie, 0.25, 1) for u in users],
                                 "user_id int, movie_id int, score float, rank int")


def rows(settings: PgSettings, experiment: str) -> list[tuple]:
    return query(settings, "SELECT user_id, movie_id, score, rank FROM als.user_recommendations "
                 "WHERE experiment = %s ORDER BY user_id", (experiment,))


def wait_for_backends_to_end(settings: PgSettings, timeout: float = 30.0) -> None:
    """The server ends a killed client's session when it notices the closed socket."""
    deadline = time.monotonic() + timeout
    while query(settings, "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                "application_name = 'als_assets' AND pid <> pg_backend_pid()",
                (settings.database,))[0][0]:
        assert time.monotonic() < deadline, "the killed publisher's session did not end"
        time.sleep(0.1)


def test_a_killed_publish_keeps_the_old_rows_and_the_next_publish_drops_its_table(
        spark, pg_settings, tmp_path):
    publish_frame(recommendations(spark, [1, 2], 5), pg_settings, "als", SPEC, "exp")
    assert rows(pg_settings, "exp") == [(1, 5, 0.25, 1), (2, 5, 0.25, 1)]
    where = {"ALS_PG_HOST": pg_settings.host, "ALS_PG_PORT": str(pg_settings.port),
             "ALS_PG_USER": pg_settings.user}
    publisher = Blocked(tmp_path / "k", "publish", pg_settings.database, "exp", env=where)
    try:
        (live,) = stages(pg_settings)
        assert live.startswith("_stage_user_recommendations_")
        # Another publish meanwhile: the live publisher's table is in use and stays.
        publish_frame(recommendations(spark, [3], 6), pg_settings, "als", SPEC, "other")
        assert stages(pg_settings) == [live]
    finally:
        publisher.kill()
    wait_for_backends_to_end(pg_settings)
    assert stages(pg_settings) == [live]  # what the kill left
    assert rows(pg_settings, "exp") == [(1, 5, 0.25, 1), (2, 5, 0.25, 1)]

    publish_frame(recommendations(spark, [4], 7), pg_settings, "als", SPEC, "other")
    assert stages(pg_settings) == []
    assert rows(pg_settings, "other") == [(4, 7, 0.25, 1)]
    assert rows(pg_settings, "exp") == [(1, 5, 0.25, 1), (2, 5, 0.25, 1)]


def test_a_broken_connection_does_not_hide_the_publish_error(spark, pg_settings):
    """The publish's connection dies while Spark writes, and the write fails: the error raised
    is the write's, with a note that the staging table stays (it used to be the `DROP TABLE`'s
    'connection already closed')."""
    settings = pg_settings

    def break_publish(_):
        conn = connect(settings, application_name="breaker")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                        "datname = %s AND application_name = 'als_assets'", (settings.database,))
        conn.close()
        raise RuntimeError("boom: the write failed")

    # One partition: the breaker runs once, not again in a second task still running while
    # the test goes on.
    frame = recommendations(spark, [1, 2, 3], 5).coalesce(1).filter(
        F.udf(break_publish, "boolean")(F.col("user_id")))
    with pytest.raises(Exception, match="boom: the write failed") as info:
        publish_frame(frame, settings, "als", SPEC, "broken")
    (left,) = stages(settings)
    (note,) = getattr(info.value, "__notes__", [])
    assert note.startswith(f"the staging table als.{left} could not be dropped (")
    assert note.endswith("); the next publish to als drops it")

    conn = connect(settings, application_name=TEST_CLIENT)
    try:
        with conn.cursor() as cur:
            assert drop_orphaned_stages(cur, "als") == [left]
        conn.commit()
    finally:
        conn.close()
    assert stages(settings) == [] and rows(settings, "broken") == []
