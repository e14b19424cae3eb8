"""Dagster resources: the SparkSession and the ratings source."""


from pathlib import Path

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr
from pyspark.sql import DataFrame, SparkSession

from .core.jdbc import postgres_movies, postgres_ratings
from .core.pg import PgSettings, split_qualified_name, validate_identifier
from .core.ratings_check import TABLE_FIELDS
from .core.sources import (
    SourceError,
    SyntheticSpec,
    movielens_movies,
    movielens_ratings,
    synthetic_movies,
    synthetic_ratings,
)
from .core.spark import SparkSettings, als_blocks, build_spark_session, check_shared_storage

SOURCES = ("synthetic", "movielens", "postgres")


class PostgresResource(ConfigurableResource):
    """Connection to the PostgreSQL that holds MovieLens and receives published results.

    The password comes from the ALS_PG_PASSWORD environment variable (an EnvVar), so Dagster
    shows the variable's name, never its value.
    """

    host: str = Field(default="127.0.0.1", description="ALS_PG_HOST")
    port: int = Field(default=5432, description="ALS_PG_PORT")
    database: str = Field(default="postgres", description="ALS_PG_DATABASE")
    user: str = Field(default="postgres", description="ALS_PG_USER")
    password: str = Field(default="", description="ALS_PG_PASSWORD")
    connect_timeout: int = Field(default=10, description="ALS_PG_CONNECT_TIMEOUT (seconds)")
    publish_schema: str = Field(default="als", description="Schema results are published to "
                                "(ALS_PG_PUBLISH_SCHEMA).")

    @property
    def settings(self) -> PgSettings:
        return PgSettings(host=self.host, port=self.port, database=self.database,
                          user=self.user, password=self.password,
                          connect_timeout=self.connect_timeout)

    @property
    def schema(self) -> str:
        return validate_identifier(self.publish_schema, "publish schema (ALS_PG_PUBLISH_SCHEMA)")


class SparkResource(ConfigurableResource):
    """One SparkSession per process, sized to the cores, with a checkpoint directory.

    With the in-process executor every step of a run shares this session (and its cache).
    """

    master: str = Field(default="local[*]", description="Spark master URL (SPARK_MASTER).")
    driver_memory: str = Field(default="4g", description="spark.driver.memory (local mode).")
    storage_root: str = Field(description="Root for checkpoints; every node must reach it.")
    storage_root_explicit: bool = Field(
        default=False, description="ALS_STORAGE_ROOT was set (required for a remote master).")
    ui_enabled: bool = Field(default=False, description="Serve the Spark UI on port 4040.")
    jdbc_jar: str = Field(default="", description="PostgreSQL JDBC driver jar (ALS_JDBC_JAR).")
    jdbc_package: str = Field(default="", description="JDBC driver Maven coordinate "
                              "(ALS_JDBC_PACKAGE).")
    driver_host: str = Field(default="", description="Name executors reach the driver by "
                             "(ALS_SPARK_DRIVER_HOST), e.g. a container's service name.")
    class_archive_dir: str = Field(
        default="", description="Folder of the driver JVM's class-data archive, which makes "
        "every Spark start after the first faster (ALS_JVM_CLASS_ARCHIVE; empty: none).")

    _session: SparkSession | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._session = None

    @property
    def session(self) -> SparkSession:
        if self._session is None:
            check_shared_storage(self.master, self.storage_root, self.storage_root_explicit)
            self._session = build_spark_session(
                SparkSettings(
                    master=self.master,
                    driver_memory=self.driver_memory,
                    checkpoint_dir=str(Path(self.storage_root) / "_checkpoints"),
                    ui_enabled=self.ui_enabled,
                    jars=(self.jdbc_jar,) if self.jdbc_jar else (),
                    packages=(self.jdbc_package,) if self.jdbc_package else (),
                    driver_host=self.driver_host,
                    class_archive_dir=self.class_archive_dir or None,
                )
            )
        return self._session

    @property
    def als_blocks(self) -> int:
        return als_blocks(self.session)


class RatingsSource(ConfigurableResource):
    """Where `ratings` and `movies` come from (ALS_SOURCE and its companions)."""

    kind: str = Field(default="synthetic",
                      description="synthetic | movielens | postgres (ALS_SOURCE).")
    synthetic_ratings: int = Field(
        default=100_000, description="Size of the synthetic data (ALS_SYNTHETIC_RATINGS).")
    synthetic_seed: int = Field(default=42, description="Seed of the synthetic data.")
    movielens_dir: str = Field(
        default="", description="MovieLens folder with ratings.csv and movies.csv "
        "(ALS_MOVIELENS_DIR).")
    ratings_table: str = Field(default="movielens.ratings", description="ALS_PG_RATINGS_TABLE")
    movies_table: str = Field(default="movielens.movies", description="ALS_PG_MOVIES_TABLE")
    jdbc_partitions: int = Field(default=4, description="Parallel JDBC reads "
                                 "(ALS_JDBC_PARTITIONS).")
    keep_empty_timestamps: bool = Field(
        default=False, description="Keep ratings with an empty timestamp, with a warning, "
        "instead of failing ratings_valid (ALS_KEEP_EMPTY_TIMESTAMPS).")
    keep_unknown_movies: bool = Field(
        default=False, description="Keep ratings of movies missing from the movies, with a "
        "warning, instead of failing ratings_valid (ALS_KEEP_UNKNOWN_MOVIES).")

    def describe(self, postgres: "PostgresResource | None" = None) -> str:
        if self.kind == "synthetic":
            return f"synthetic ({self.synthetic_ratings} ratings, seed {self.synthetic_seed})"
        if self.kind == "movielens":
            return f"movielens ({self.movielens_dir})"
        if self.kind == "postgres":
            where = postgres.settings.dsn_for_display() if postgres else "?"
            return f"postgres ({where} {self.ratings_table})"
        return self.kind

    def check_context(self, postgres: "PostgresResource | None" = None) -> dict:
        """How ratings_valid names this source's rows: the file (whose lines it then finds) or
        the table, the field names, and the rules the settings downgrade to warnings."""
        keep = tuple(code for code, on in (("empty_timestamp", self.keep_empty_timestamps),
                                           ("unknown_movie", self.keep_unknown_movies)) if on)
        if self.kind == "movielens":
            folder = Path(self._folder()).expanduser()
            return {"where": str(folder / "ratings.csv"), "csv_file": folder / "ratings.csv",
                    "movies_name": "movies.csv", "keep": keep}
        if self.kind == "postgres":
            dsn = self._pg(postgres).settings.dsn_for_display()
            return {"where": f"{self.ratings_table} ({dsn})", "movies_name": self.movies_table,
                    "fields": TABLE_FIELDS, "keep": keep}
        return {"where": "synthetic ratings", "movies_name": "the synthetic movies",
                "fields": TABLE_FIELDS, "keep": keep}

    def _spec(self) -> SyntheticSpec:
        return SyntheticSpec(n_ratings=self.synthetic_ratings, seed=self.synthetic_seed)

    def _folder(self) -> str:
        if not self.movielens_dir:
            raise SourceError("ALS_SOURCE=movielens needs ALS_MOVIELENS_DIR=<folder with "
                              "ratings.csv and movies.csv>")
        return self.movielens_dir

    @staticmethod
    def _pg(postgres: "PostgresResource | None") -> "PostgresResource":
        if postgres is None:
            raise SourceError("ALS_SOURCE=postgres needs the postgres resource (ALS_PG_*)")
        return postgres

    def _check_kind(self) -> None:
        if self.kind not in SOURCES:
            raise SourceError(f"ALS_SOURCE={self.kind!r} is not one of {', '.join(SOURCES)}")
        if self.kind == "postgres":
            split_qualified_name(self.ratings_table, "ratings table (ALS_PG_RATINGS_TABLE)")
            split_qualified_name(self.movies_table, "movies table (ALS_PG_MOVIES_TABLE)")

    def load_ratings(self, spark: SparkSession,
                     postgres: "PostgresResource | None" = None) -> DataFrame:
        self._check_kind()
        if self.kind == "synthetic":
            return synthetic_ratings(spark, self._spec())
        if self.kind == "postgres":
            return postgres_ratings(spark, self._pg(postgres).settings, self.ratings_table,
                                    self.jdbc_partitions)
        return movielens_ratings(spark, self._folder())

    def load_movies(self, spark: SparkSession,
                    postgres: "PostgresResource | None" = None) -> DataFrame:
        self._check_kind()
        if self.kind == "synthetic":
            return synthetic_movies(spark, self._spec())
        if self.kind == "postgres":
            return postgres_movies(spark, self._pg(postgres).settings, self.movies_table)
        return movielens_movies(spark, self._folder())
