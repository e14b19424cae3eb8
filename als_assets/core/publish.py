"""Publishing result tables to PostgreSQL, one experiment's rows replaced atomically.

Spark writes the rows in parallel over JDBC into a private staging table; then one transaction
deletes the experiment's old rows and inserts the staged ones. Under PostgreSQL's default READ
COMMITTED isolation a reader sees the old rows until that commit and the new ones after it:
never a mix, never nothing. The staging table is dropped whatever happens.
"""

from __future__ import annotations

import time
import uuid
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
    staging = f"_stage_{spec.name}_{uuid.uuid4().hex[:12]}"
    conn = connect(settings)
    try:
        with conn.cursor() as cur:
            ensure_table(cur, schema, spec)
            cur.execute(sql.SQL("CREATE UNLOGGED TABLE {} ({})").format(
                sql.Identifier(schema, staging),
                sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
                                   for c, t in spec.columns)))
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
    except BaseException:
        conn.rollback()
        raise
    finally:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(
                sql.Identifier(schema, staging)))
        conn.commit()
        conn.close()
