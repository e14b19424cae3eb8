"""Finding the PostgreSQL JDBC driver Spark needs, and reading tables through it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from psycopg2 import sql
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .pg import PgSettings, connect, pg_faults, split_qualified_name
from .sources import MOVIES_SCHEMA, RATINGS_SCHEMA, SourceError

DEBIAN_JAR = "/usr/share/java/postgresql.jar"
MAVEN_PACKAGE = "org.postgresql:postgresql:42.7.4"
DRIVER_CLASS = "org.postgresql.Driver"


class JdbcDriverNotFound(RuntimeError):
    """Spark has no PostgreSQL JDBC driver; the message lists the ways to give it one."""


@dataclass(frozen=True)
class JdbcDriver:
    jar: str = ""
    package: str = ""

    @property
    def found(self) -> bool:
        return bool(self.jar or self.package)


def resolve_jdbc_driver(jar: str = "", package: str = "") -> JdbcDriver:
    """`jar` (a path, ALS_JDBC_JAR), else `package` (a Maven coordinate Spark downloads, for
    machines that reach Maven Central, ALS_JDBC_PACKAGE), else Debian's libpostgresql-jdbc-java
    jar if present."""
    jar, package = jar.strip(), package.strip()
    if jar:
        if not Path(jar).is_file():
            raise JdbcDriverNotFound(f"ALS_JDBC_JAR={jar} does not exist")
        return JdbcDriver(jar=jar)
    if package:
        return JdbcDriver(package=package)
    if Path(DEBIAN_JAR).is_file():
        return JdbcDriver(jar=DEBIAN_JAR)
    return JdbcDriver()


def find_jdbc_driver(environ: Mapping[str, str] | None = None) -> JdbcDriver:
    """The driver the ALS_JDBC_JAR / ALS_JDBC_PACKAGE variables name (scripts and tests that
    build a session without the Spark resource)."""
    environ = os.environ if environ is None else environ
    return resolve_jdbc_driver(environ.get("ALS_JDBC_JAR", ""), environ.get("ALS_JDBC_PACKAGE", ""))


def require_jdbc_driver(spark: SparkSession) -> None:
    conf = spark.sparkContext.getConf()
    if "postgresql" in conf.get("spark.jars", "") + conf.get("spark.jars.packages", ""):
        return
    raise JdbcDriverNotFound(
        "ALS_SOURCE=postgres needs the PostgreSQL JDBC driver on Spark's classpath, and none "
        f"was found. Either install it (Debian/Ubuntu: apt-get install libpostgresql-jdbc-java, "
        f"which puts it at {DEBIAN_JAR}), or set ALS_JDBC_JAR=/path/to/postgresql.jar, or set "
        f"ALS_JDBC_PACKAGE={MAVEN_PACKAGE} where Maven Central is reachable."
    )


def jdbc_properties(settings: PgSettings) -> dict[str, str]:
    """Driver properties; the password travels here, never in the URL, so neither logs nor the
    Spark UI (which redacts 'password' keys) show it."""
    return {
        "user": settings.user,
        "password": settings.password,
        "driver": DRIVER_CLASS,
        "connectTimeout": str(settings.connect_timeout),
        "loginTimeout": str(settings.connect_timeout),
        "ApplicationName": "als_assets",
    }


def quoted(table: str, what: str) -> str:
    """`"schema"."table"` from a validated schema.table name (for Spark's dbtable option)."""
    schema, name = split_qualified_name(table, what)
    return f'"{schema}"."{name}"'


def id_bounds(settings: PgSettings, table: str, column: str) -> tuple[int, int] | None:
    """min and max of an integer column, to spread a partitioned JDBC read evenly."""
    schema, name = split_qualified_name(table, "ratings table")
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT min({c}), max({c}) FROM {t}").format(
            c=sql.Identifier(column), t=sql.Identifier(schema, name)))
        low, high = cur.fetchone()
    conn.close()
    return None if low is None else (int(low), int(high))


def postgres_ratings(spark: SparkSession, settings: PgSettings, table: str,
                     partitions: int) -> DataFrame:
    """A partitioned JDBC read on user_id, bounds taken from the table.

    Database faults (psycopg2's for the bounds, Spark JDBC's for the read) come out classified
    as a PgConnectionError (core/pg.py), so the caller knows whether a retry can help.
    """
    require_jdbc_driver(spark)
    with pg_faults(settings, table):
        bounds = id_bounds(settings, table, "user_id")
        if bounds is None:
            raise SourceError(f"PostgreSQL table {table} at {settings.dsn_for_display()} is "
                              "empty")
        frame = spark.read.jdbc(
            settings.jdbc_url(), quoted(table, "ratings table"), column="user_id",
            lowerBound=bounds[0], upperBound=bounds[1] + 1, numPartitions=max(1, partitions),
            properties=jdbc_properties(settings),
        )
    return frame.select(*(F.col(f.name).cast(f.dataType) for f in RATINGS_SCHEMA.fields))


def postgres_movies(spark: SparkSession, settings: PgSettings, table: str) -> DataFrame:
    """Read the movies table; faults come out classified, as for the ratings."""
    require_jdbc_driver(spark)
    with pg_faults(settings, table):
        frame = spark.read.jdbc(settings.jdbc_url(), quoted(table, "movies table"),
                                properties=jdbc_properties(settings))
    return frame.select(*(F.col(f.name).cast(f.dataType) for f in MOVIES_SCHEMA.fields))
