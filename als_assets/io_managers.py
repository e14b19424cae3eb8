"""The IO manager: Spark DataFrames as Parquet, ALS models as Spark models, the rest as JSON
(core/serialization.py: pandas frames inside values as Parquet; reading runs no code)."""


from typing import Any

from dagster import (
    ConfigurableIOManager,
    DagsterInvariantViolationError,
    InputContext,
    OutputContext,
    ResourceDependency,
)
from pydantic import Field
from pyspark import StorageLevel
from pyspark.sql import DataFrame

from .core.storage import VersionedStore
from .resources import SparkResource


class VersionedSparkIOManager(ConfigurableIOManager):
    """Stores each asset partition under <root>/<asset>/<partition>/<version>.

    A version becomes current only after it is fully written, so a failed write leaves the
    previous value readable. DataFrames read back within a run are cached in the SparkSession,
    so the steps of a run that share a split read its Parquet once; the ALS model is loaded
    once per version, not once per step that scores with it.
    """

    root: str = Field(default="", description="Storage root; shared by every Spark node "
                      "(empty: the Spark resource's, which checkpoints there too).")
    spark: ResourceDependency[SparkResource]

    @property
    def store(self) -> VersionedStore:
        return VersionedStore(self.root or self.spark.root)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        if isinstance(obj, DataFrame):
            describe_jobs(obj.sparkSession, context.asset_key.to_user_string(), partition)
        stored = self.store.write(tuple(context.asset_key.path), partition, obj,
                                  tag=context.run_id or "")
        context.add_output_metadata({"storage_path": stored.path,
                                     "storage_version": stored.version})

    def load_input(self, context: InputContext) -> Any:
        partition = None
        if context.has_asset_partitions:
            keys = context.asset_partition_keys
            if len(keys) != 1:
                raise ValueError(f"{context.asset_key.to_user_string()}: expected one partition, "
                                 f"got {len(keys)}")
            partition = keys[0]
        asset = tuple(context.asset_key.path)
        stored = self.store.current(asset, partition)
        if stored is None or stored.kind not in CACHED_KINDS:
            # Spark starts only when a Spark value is read: JSON values need no JVM.
            return self.store.read(asset, partition, lambda: self.spark.session)
        # A version folder never changes, so its path is a safe cache key within a session.
        session = self.spark.session
        step = _consuming_step(context)
        if step is not None:
            describe_jobs(session, step, context.partition_key if context.has_partition_key
                          else None)
        key = (id(session), str(self.store.slot(asset, partition)))
        cached = _READ_CACHE.get(key)
        if cached is None or cached[0] != stored.path:
            if cached is not None and isinstance(cached[1], DataFrame):
                cached[1].unpersist()
            value = self.store.read(asset, partition, lambda: session)
            if isinstance(value, DataFrame):
                value = value.persist(StorageLevel.MEMORY_AND_DISK)
            cached = _READ_CACHE[key] = (stored.path, value)
        value = cached[1]
        # Each step gets its own model object over the one loaded model (a copy shares the
        # factors and copies the params), so no step can change another's params.
        return value if isinstance(value, DataFrame) else value.copy()


def _consuming_step(context: InputContext) -> str | None:
    """The op that reads the input, or None when no step does (`Definitions.load_asset_value`
    outside a run)."""
    try:
        return context.op_def.name
    except DagsterInvariantViolationError:
        return None


def describe_jobs(session, step: str, partition: str | None) -> None:
    """Name the Spark jobs that follow after the step (and partition) that runs them, so the
    Spark UI, the event log and a cluster's history tell which asset each stage served."""
    session.sparkContext.setJobDescription(f"{step} [{partition}]" if partition else step)


# The current version of each Spark value read in this process: the steps of a run (in-process
# executor) read each split's Parquet once instead of once per step (DataFrames persisted), and
# load the ALS model once instead of in every step that scores with it (each load is several
# Spark jobs reading its metadata and factors).
CACHED_KINDS = ("dataframe", "als_model")
_READ_CACHE: dict[tuple[int, str], tuple[str, Any]] = {}


def stored_path_of(frame: DataFrame) -> str | None:
    """The stored version a DataFrame this IO manager loaded was read from (a version folder
    never changes, so the path names the exact rows); None for any other DataFrame."""
    for path, cached in _READ_CACHE.values():
        if cached is frame:
            return path
    return None
