"""Dagster resources: the SparkSession and the ratings source."""


from pathlib import Path

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr
from pyspark.sql import DataFrame, SparkSession

from .core.sources import (
    SourceError,
    SyntheticSpec,
    movielens_movies,
    movielens_ratings,
    synthetic_movies,
    synthetic_ratings,
)
from .core.spark import SparkSettings, als_blocks, build_spark_session

SOURCES = ("synthetic", "movielens")


class SparkResource(ConfigurableResource):
    """One SparkSession per process, sized to the cores, with a checkpoint directory.

    With the in-process executor every step of a run shares this session (and its cache).
    """

    master: str = Field(default="local[*]", description="Spark master URL (SPARK_MASTER).")
    driver_memory: str = Field(default="4g", description="spark.driver.memory (local mode).")
    storage_root: str = Field(description="Root for checkpoints; every node must reach it.")
    ui_enabled: bool = Field(default=False, description="Serve the Spark UI on port 4040.")

    _session: SparkSession | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._session = None

    @property
    def session(self) -> SparkSession:
        if self._session is None:
            self._session = build_spark_session(
                SparkSettings(
                    master=self.master,
                    driver_memory=self.driver_memory,
                    checkpoint_dir=str(Path(self.storage_root) / "_checkpoints"),
                    ui_enabled=self.ui_enabled,
                )
            )
        return self._session

    @property
    def als_blocks(self) -> int:
        return als_blocks(self.session)


class RatingsSource(ConfigurableResource):
    """Where `ratings` and `movies` come from (ALS_SOURCE and its companions)."""

    kind: str = Field(default="synthetic", description="synthetic | movielens (ALS_SOURCE).")
    synthetic_ratings: int = Field(
        default=100_000, description="Size of the synthetic data (ALS_SYNTHETIC_RATINGS).")
    synthetic_seed: int = Field(default=42, description="Seed of the synthetic data.")
    movielens_dir: str = Field(
        default="", description="MovieLens folder with ratings.csv and movies.csv "
        "(ALS_MOVIELENS_DIR).")

    def describe(self) -> str:
        if self.kind == "synthetic":
            return f"synthetic ({self.synthetic_ratings} ratings, seed {self.synthetic_seed})"
        if self.kind == "movielens":
            return f"movielens ({self.movielens_dir})"
        return self.kind

    def _spec(self) -> SyntheticSpec:
        return SyntheticSpec(n_ratings=self.synthetic_ratings, seed=self.synthetic_seed)

    def _folder(self) -> str:
        if not self.movielens_dir:
            raise SourceError("ALS_SOURCE=movielens needs ALS_MOVIELENS_DIR=<folder with "
                              "ratings.csv and movies.csv>")
        return self.movielens_dir

    def _check_kind(self) -> None:
        if self.kind not in SOURCES:
            raise SourceError(f"ALS_SOURCE={self.kind!r} is not one of {', '.join(SOURCES)}")

    def load_ratings(self, spark: SparkSession) -> DataFrame:
        self._check_kind()
        if self.kind == "synthetic":
            return synthetic_ratings(spark, self._spec())
        return movielens_ratings(spark, self._folder())

    def load_movies(self, spark: SparkSession) -> DataFrame:
        self._check_kind()
        if self.kind == "synthetic":
            return synthetic_movies(spark, self._spec())
        return movielens_movies(spark, self._folder())
