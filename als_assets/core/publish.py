"""Publishing result tables to PostgreSQL, one experiment's rows replaced atomically.

Spark writes the rows in parallel over JDBC into a private staging table; then one transaction
deletes the experiment's old rows and inserts the staged ones. Under PostgreSQL's default READ
COMMITTED isolation a reader sees the old rows until that commit and the new ones after it:
never a mix, never nothing.

The staging table cannot be TEMP (Spark writes it over its own connections), so it is a real
table named per publish, dropped at the end whatever happens. A publish killed with SIGKILL
cannot drop it; its connection, though, closes with the process, and with it the advisory lock
that marked the table as in use: the next publish to the schema drops every staging table no
live publisher holds.
"""

from __future__ import annotations

import contextlib
import time
import uuid
import warnings
from dataclasses import dataclass

from psycopg2 import sql
from pyspark.sql import DataFrame

from .jdbc import jdbc_properties, require_jdbc_driver
from .pg import PgSettings, connect, validate_identifier


@dataclass(frozen=True)
class TableSpec:
    """A published table: its columns (besides `experiment`) and primary key. The key leads
    with the experiment, so per-experiment lookups ("similar to X", "for user U") are single
    index range scans."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]


TABLES = {
    "item_similarity": TableSpec(
        "item_similarity",
        (("movie_id", "integer"), ("similar_movie_id", "integer"), ("similarity", "real"),
         ("rank", "integer")),
        ("experiment", "movie_id", "rank"),
    ),
    "user_recommendations": TableSpec(
        "user_recommendations",
        (("user_id", "integer"), ("movie_id", "integer"), ("score", "real"),
         ("rank", "integer")),
        ("experiment", "user_id", "rank"),
    ),
    "user_factors": TableSpec(
        "user_factors", (("user_id", "integer"), ("features", "real[]")),
        ("experiment", "user_id"),
    ),
    "item_factors": TableSpec(
        "item_factors", (("movie_id", "integer"), ("features", "real[]")),
        ("experiment", "movie_id"),
    ),
    "metrics": TableSpec(
        "metrics", (("metric", "text"), ("value", "double precision")),
        ("experiment", "metric"),
    ),
    # The served lists: the champion's only, so an application reads one place without knowing
    # experiments; `experiment` records which one fed them.
    "recommendations": TableSpec(
        "recommendations",
        (("user_id", "integer"), ("movie_id", "integer"), ("score", "real"),
         ("rank", "integer")),
        ("user_id", "rank"),
    ),
}


@dataclass(frozen=True)
class PublishResult:
    table: str
    rows: int
    seconds: float


def ensure_table(cur, schema: str, spec: TableSpec) -> None:
    cols = [sql.SQL("experiment text NOT NULL")] + [
        sql.SQL("{} {} NOT NULL").format(sql.Identifier(c), sql.SQL(t)) for c, t in spec.columns
    ]
    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(
        sql.Identifier(schema, spec.name), sql.SQL(", ").join(cols),
        sql.SQL(", ").join(map(sql.Identifier, spec.key))))


def publish_frame(frame: DataFrame, settings: PgSettings, schema: str, spec: TableSpec,
                  experiment: str, write_partitions: int = 2,
                  replace_all: bool = False) -> PublishResult:
    """Replace `experiment`'s rows of schema.<spec.name> with `frame`'s, atomically; with
    `replace_all`, every row of the table (the served table holds one experiment's rows)."""
    validate_identifier(schema, "schema")
    require_jdbc_driver(frame.sparkSession)
    start = time.perf_counter()
    columns = [c for c, _ in spec.columns]
    staging = f"{STAGE_PREFIX}{spec.name}_{uuid.uuid4().hex[:12]}"
    conn = connect(settings)
    error: BaseException | None = None
    try:
        with conn.cursor() as cur:
            ensure_table(cur, schema, spec)
            drop_orphaned_stages(cur, schema)
            cur.execute(sql.SQL("CREATE UNLOGGED TABLE {} ({})").format(
                sql.Identifier(schema, staging),
                sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
                                   for c, t in spec.columns)))
            # Held by this connection until it closes, also when the process is killed (the
            # server ends the session when its socket closes): the table is in use while held.
            # Taken before the table is committed, so no other publisher ever sees it unheld.
            cur.execute("SELECT pg_advisory_lock(%s, " + _OBJID + ")",
                        (STAGE_LOCK_CLASS, f'"{schema}"."{staging}"'))
        conn.commit()
        (frame.select(*columns).coalesce(max(1, write_partitions)).write
         .option("batchsize", 10_000)
         .jdbc(settings.jdbc_url(), f'"{schema}"."{staging}"', mode="append",
               properties={**jdbc_properties(settings), "stringtype": "unspecified"}))
        with conn.cursor() as cur:
            # Serialise concurrent publishers of the same table; readers are not blocked.
            cur.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(
                sql.Identifier(schema, spec.name)))
            if replace_all:
                cur.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(schema, spec.name)))
            else:
                cur.execute(sql.SQL("DELETE FROM {} WHERE experiment = %s").format(
                    sql.Identifier(schema, spec.name)), (experiment,))
            cur.execute(sql.SQL("INSERT INTO {t} (experiment, {cols}) SELECT %s, {cols} "
                                "FROM {s}").format(
                t=sql.Identifier(schema, spec.name), s=sql.Identifier(schema, staging),
                cols=sql.SQL(", ").join(map(sql.Identifier, columns))), (experiment,))
            rows = cur.rowcount
        conn.commit()
        return PublishResult(f"{schema}.{spec.name}", rows, time.perf_counter() - start)
    except BaseException as exc:
        error = exc
        raise
    finally:
        _drop_stage(conn, schema, staging, error)


# Staging tables are named _stage_<table>_<12 hex digits>; each publisher holds an advisory lock
# on (STAGE_LOCK_CLASS, <its table's oid>) while its table exists.
STAGE_PREFIX = "_stage_"
STAGE_LOCK_CLASS = 0x616C7300  # "als\0": keeps these locks apart from other applications'
# An oid is unsigned 32-bit, the lock's second key a signed int: shifted into its range.
_OBJID = "(%s::regclass::oid::bigint - 2147483648)::int"


def drop_orphaned_stages(cur, schema: str) -> list[str]:
    """Drops the staging tables in `schema` no publisher holds (left by a killed publish);
    returns their names. A table whose lock another session holds is being written: kept."""
    cur.execute("SELECT c.relname, (c.oid::bigint - 2147483648)::int FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
                "AND c.relkind = 'r' AND c.relname LIKE %s ORDER BY c.relname",
                (schema, STAGE_PREFIX.replace("_", "\\_") + "%"))
    dropped = []
    for name, objid in cur.fetchall():
        cur.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", (STAGE_LOCK_CLASS, objid))
        if cur.fetchone()[0]:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(schema, name)))
            dropped.append(name)
    return dropped


def _drop_stage(conn, schema: str, staging: str, error: BaseException | None) -> None:
    """Drops this publish's staging table and closes the connection. A failure here (the
    connection may be what broke) never replaces the publish's own error: it is added to it
    as a note, and after a successful publish only reported as a warning; the next publish
    drops the table."""
    try:
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(
                sql.Identifier(schema, staging)))
        conn.commit()
    except Exception as exc:  # noqa: BLE001 - reported below, never raised over `error`
        note = (f"the staging table {schema}.{staging} could not be dropped "
                f"({type(exc).__name__}: {' '.join(str(exc).split())}); the next publish to "
                f"{schema} drops it")
        if error is not None:
            error.add_note(note)
        else:
            warnings.warn(note, RuntimeWarning, stacklevel=3)
    finally:
        with contextlib.suppress(Exception):
            conn.close()
