"""Dagster resources: the SparkSession (dagster-pyspark's lazy resource), the ratings source and
PostgreSQL.

Every setting is a field; its default comes from `settings.DEFAULTS` and `ENV` names the
environment variable that overrides it (`definitions.py` passes set variables as `EnvVar`s,
which Dagster resolves when a run starts and shows by name, never by value).
"""


from pathlib import Path
from typing import Any, ClassVar

from dagster import ConfigurableResource, EnvVar
from dagster_pyspark import LazyPySparkResource
from dagster_spark.utils import flatten_dict
from pydantic import Field
from pyspark.sql import DataFrame, SparkSession

from .core.jdbc import postgres_movies, postgres_ratings, resolve_jdbc_driver
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
from .settings import DEFAULTS, class_archive_dir, parse_flag, storage_root

SOURCES = ("synthetic", "movielens", "postgres")


def from_env(resource_type: type, environ, **fields: Any):
    """`resource_type` with a field for every variable of its `ENV` that is set in `environ`:
    an `EnvVar` (an `EnvVar.int` for whole numbers) that Dagster resolves at run time; yes/no
    flags are parsed here, naming the variable when they are neither. Unset variables leave the
    field's default; `fields` win over both."""
    found: dict[str, Any] = {}
    for name, variable in resource_type.ENV.items():
        raw = environ.get(variable, "")
        if not raw.strip():
            continue
        default = resource_type.model_fields[name].default
        if isinstance(default, bool):
            found[name] = parse_flag(variable, raw)
        elif isinstance(default, int):
            found[name] = EnvVar.int(variable)
        else:
            found[name] = EnvVar(variable)
    return resource_type(**{**found, **fields})


class PostgresResource(ConfigurableResource):
    """Connection to the PostgreSQL that holds MovieLens and receives published results.

    The password is an EnvVar (ALS_PG_PASSWORD) when set, so Dagster shows the variable's name,
    never its value.
    """

    ENV: ClassVar[dict[str, str]] = {
        "host": "ALS_PG_HOST", "port": "ALS_PG_PORT", "database": "ALS_PG_DATABASE",
        "user": "ALS_PG_USER", "password": "ALS_PG_PASSWORD",
        "connect_timeout": "ALS_PG_CONNECT_TIMEOUT", "publish_schema": "ALS_PG_PUBLISH_SCHEMA"}

    host: str = Field(default=DEFAULTS["ALS_PG_HOST"], description="ALS_PG_HOST")
    port: int = Field(default=DEFAULTS["ALS_PG_PORT"], description="ALS_PG_PORT")
    database: str = Field(default=DEFAULTS["ALS_PG_DATABASE"], description="ALS_PG_DATABASE")
    user: str = Field(default=DEFAULTS["ALS_PG_USER"], description="ALS_PG_USER")
    password: str = Field(default=DEFAULTS["ALS_PG_PASSWORD"], description="ALS_PG_PASSWORD")
    connect_timeout: int = Field(default=DEFAULTS["ALS_PG_CONNECT_TIMEOUT"],
                                 description="ALS_PG_CONNECT_TIMEOUT (seconds)")
    publish_schema: str = Field(default=DEFAULTS["ALS_PG_PUBLISH_SCHEMA"],
                                description="Schema results are published to "
                                "(ALS_PG_PUBLISH_SCHEMA).")

    @property
    def settings(self) -> PgSettings:
        return PgSettings(host=self.host, port=self.port, database=self.database,
                          user=self.user, password=self.password,
                          connect_timeout=self.connect_timeout)

    @property
    def schema(self) -> str:
        return validate_identifier(self.publish_schema, "publish schema (ALS_PG_PUBLISH_SCHEMA)")


class SparkResource(LazyPySparkResource):
    """dagster-pyspark's lazy SparkSession, built the project's way: sized to the cores, deep
    thread stacks, a checkpoint directory, the JDBC driver, a clear error without Java.

    Lazy: the JVM starts when a step first asks for `session`, so steps that read and write only
    JSON values never start one. With the in-process executor every step of a run shares the
    session (and its cache). `spark_config` (dagster-pyspark's field) adds Spark settings,
    applied after the project's.
    """

    ENV: ClassVar[dict[str, str]] = {
        "master": "SPARK_MASTER", "driver_memory": "SPARK_DRIVER_MEMORY",
        "storage_root": "ALS_STORAGE_ROOT", "jdbc_jar": "ALS_JDBC_JAR",
        "jdbc_package": "ALS_JDBC_PACKAGE", "driver_host": "ALS_SPARK_DRIVER_HOST",
        "class_archive_dir": "ALS_JVM_CLASS_ARCHIVE"}

    spark_config: dict[str, Any] = Field(
        default_factory=dict, description="More Spark settings (nested keys are joined with "
        "dots), applied after the project's.")
    master: str = Field(default=DEFAULTS["SPARK_MASTER"],
                        description="Spark master URL (SPARK_MASTER).")
    driver_memory: str = Field(default=DEFAULTS["SPARK_DRIVER_MEMORY"],
                               description="spark.driver.memory (SPARK_DRIVER_MEMORY).")
    storage_root: str = Field(
        default=DEFAULTS["ALS_STORAGE_ROOT"], description="Root of the stored assets and the "
        "checkpoints; every node must reach it (ALS_STORAGE_ROOT; empty: "
        "$DAGSTER_HOME/als_storage, refused for a remote master).")
    ui_enabled: bool = Field(default=False, description="Serve the Spark UI on port 4040.")
    jdbc_jar: str = Field(default=DEFAULTS["ALS_JDBC_JAR"],
                          description="PostgreSQL JDBC driver jar (ALS_JDBC_JAR).")
    jdbc_package: str = Field(default=DEFAULTS["ALS_JDBC_PACKAGE"],
                              description="JDBC driver Maven coordinate (ALS_JDBC_PACKAGE).")
    driver_host: str = Field(default=DEFAULTS["ALS_SPARK_DRIVER_HOST"],
                             description="Name executors reach the driver by "
                             "(ALS_SPARK_DRIVER_HOST), e.g. a container's service name.")
    class_archive_dir: str = Field(
        default=DEFAULTS["ALS_JVM_CLASS_ARCHIVE"], description="Folder of the driver JVM's "
        "class-data archive, opt-in: later Spark starts are faster, the first run pays for "
        "writing it (ALS_JVM_CLASS_ARCHIVE; empty or off: none).")

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False  # a project resource built on dagster-pyspark's, not dagster-pyspark's own

    @property
    def root(self) -> str:
        """The storage root this resource's runs use."""
        return storage_root(self.storage_root)

    def spark_settings(self) -> SparkSettings:
        driver = resolve_jdbc_driver(self.jdbc_jar, self.jdbc_package)
        return SparkSettings(
            master=self.master,
            driver_memory=self.driver_memory,
            checkpoint_dir=str(Path(self.root) / "_checkpoints"),
            ui_enabled=self.ui_enabled,
            jars=(driver.jar,) if driver.jar else (),
            packages=(driver.package,) if driver.package else (),
            driver_host=self.driver_host,
            class_archive_dir=class_archive_dir(self.class_archive_dir) or None,
            extra_conf=tuple((key, str(value))
                             for key, value in flatten_dict(self.spark_config)),
        )

    def _init_session(self) -> None:
        if self._spark_session is None:
            check_shared_storage(self.master, self.root, bool(self.storage_root))
            self._spark_session = build_spark_session(self.spark_settings())

    @property
    def session(self) -> SparkSession:
        """The SparkSession (dagster-pyspark's `spark_session`), started on first use."""
        return self.spark_session

    @property
    def als_blocks(self) -> int:
        return als_blocks(self.session)


class RatingsSource(ConfigurableResource):
    """Where `ratings` and `movies` come from (ALS_SOURCE and its companions)."""

    ENV: ClassVar[dict[str, str]] = {
        "kind": "ALS_SOURCE", "synthetic_ratings": "ALS_SYNTHETIC_RATINGS",
        "movielens_dir": "ALS_MOVIELENS_DIR", "ratings_table": "ALS_PG_RATINGS_TABLE",
        "movies_table": "ALS_PG_MOVIES_TABLE", "jdbc_partitions": "ALS_JDBC_PARTITIONS",
        "keep_empty_timestamps": "ALS_KEEP_EMPTY_TIMESTAMPS",
        "keep_unknown_movies": "ALS_KEEP_UNKNOWN_MOVIES"}

    kind: str = Field(default=DEFAULTS["ALS_SOURCE"],
                      description="synthetic | movielens | postgres (ALS_SOURCE).")
    synthetic_ratings: int = Field(default=DEFAULTS["ALS_SYNTHETIC_RATINGS"],
                                   description="Size of the synthetic data "
                                   "(ALS_SYNTHETIC_RATINGS).")
    synthetic_seed: int = Field(default=42, description="Seed of the synthetic data.")
    movielens_dir: str = Field(default=DEFAULTS["ALS_MOVIELENS_DIR"],
                               description="MovieLens folder with ratings.csv and movies.csv "
                               "(ALS_MOVIELENS_DIR).")
    ratings_table: str = Field(default=DEFAULTS["ALS_PG_RATINGS_TABLE"],
                               description="ALS_PG_RATINGS_TABLE")
    movies_table: str = Field(default=DEFAULTS["ALS_PG_MOVIES_TABLE"],
                              description="ALS_PG_MOVIES_TABLE")
    jdbc_partitions: int = Field(default=DEFAULTS["ALS_JDBC_PARTITIONS"],
                                 description="Parallel JDBC reads (ALS_JDBC_PARTITIONS).")
    keep_empty_timestamps: bool = Field(
        default=DEFAULTS["ALS_KEEP_EMPTY_TIMESTAMPS"], description="Keep ratings with an empty "
        "timestamp, with a warning, instead of failing ratings_valid "
        "(ALS_KEEP_EMPTY_TIMESTAMPS).")
    keep_unknown_movies: bool = Field(
        default=DEFAULTS["ALS_KEEP_UNKNOWN_MOVIES"], description="Keep ratings of movies "
        "missing from the movies, with a warning, instead of failing ratings_valid "
        "(ALS_KEEP_UNKNOWN_MOVIES).")

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
