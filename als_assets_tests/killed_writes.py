"""Writes to kill: run as a subprocess, it starts a real write, says so, and blocks in it.

`python -m als_assets_tests.killed_writes <what> <signal file> ...` writes `<signal file>` once
the write is under way (files of the new version exist) and then waits, so the test kills it
with SIGKILL at a point it knows. Nothing is simulated: the storage code, Spark and Dagster run
as in production; only the value written blocks.

  value <root> <asset> <partition>       VersionedStore.write of a value whose storage blocks
  staging <root>                         VersionedStore.staging, a file written in it
  session <root>                         a SparkSession checkpointing under <root>/_checkpoints
  publish <database> <experiment>        publish_frame of 1000 user_recommendations rows into
                                         <database> (ALS_PG_* for the rest), blocking in the
                                         JDBC write to the staging table
  materialize <asset> [<partition>]      a Dagster materialization of <asset> whose Parquet write
                                         (a DataFrame) or model write (an ALSModel, or a
                                         TuningResult's best model) blocks midway
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from signal import SIGKILL

HANG = 600.0


def _signal(path: str, text: str = "") -> None:
    """Writes the signal file whole (the test polls for it)."""
    tmp = Path(path + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _hang() -> None:
    time.sleep(HANG)
    raise SystemExit("killed_writes: nobody killed me")


@dataclass(frozen=True)
class BlockingValue:
    """Its storage writes part of a file beside the value, signals, and blocks."""

    signal: str

    def prepare_for_storage(self, folder: Path) -> BlockingValue:
        (folder / "partial.bin").write_bytes(b"\0" * 1000)
        _signal(self.signal, str(folder))
        _hang()
        return self


def blocking_udf(signal: str, after_rows: int):
    """A Python UDF that passes rows through and, from the `after_rows`-th row a task sees on,
    signals and blocks: Spark has then opened the output files of that task."""
    from pyspark.sql import functions as F

    seen = {"n": 0}

    def gate(_):
        seen["n"] += 1
        if seen["n"] >= after_rows:
            _signal(signal)
            _hang()
        return True

    return F.udf(gate, "boolean")


def blocking_frame(frame, signal: str, after_rows: int = 50):
    from pyspark.sql import functions as F

    return frame.filter(blocking_udf(signal, after_rows)(F.lit(1)))


def blocking_model(model, signal: str):
    """The same ALSModel, its user factors read through a blocking filter: `save` writes the
    model's metadata, then blocks inside the Parquet write of its user factors."""
    from pyspark.ml.recommendation import ALSModel

    spark = model.userFactors.sparkSession
    users = blocking_frame(model.userFactors, signal, after_rows=1)
    jvm = spark.sparkContext._jvm
    java = jvm.org.apache.spark.ml.recommendation.ALSModel(
        model.uid, model.rank, users._jdf, model.itemFactors._jdf)
    return ALSModel(java)


def _block_storage_writes(signal: str) -> None:
    """Makes the store's next Spark write block midway (patched in this process only)."""
    from dataclasses import replace

    from pyspark.ml.recommendation import ALSModel
    from pyspark.sql import DataFrame

    from als_assets.core import storage
    from als_assets.core.tuning import TuningResult

    original = storage.VersionedStore._write_value

    def write_value(self, folder, value):
        if isinstance(value, DataFrame):
            value = blocking_frame(value, signal)
        elif isinstance(value, ALSModel):
            value = blocking_model(value, signal)
        elif isinstance(value, TuningResult) and value.best_model is not None:
            value = replace(value, best_model=blocking_model(value.best_model, signal))
        return original(self, folder, value)

    storage.VersionedStore._write_value = write_value


class Blocked:
    """The test's side: a `killed_writes` subprocess, started and waited for until it blocks
    inside its write; `kill()` sends SIGKILL to it and everything it started (its JVM and
    Python workers), as a crash or the OOM killer would."""

    def __init__(self, tmp: Path, what: str, *args: str, env: dict | None = None,
                 timeout: float = 180.0):
        from als_assets_tests.project import CHILD_ENV  # the parent's settings, not the child's

        tmp.mkdir(parents=True, exist_ok=True)
        self.signal = tmp / f"signal-{what}-{time.time_ns()}"
        self.log = self.signal.with_suffix(".log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "als_assets_tests.killed_writes", what, str(self.signal),
                 *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=str(Path(__file__).resolve().parents[1]),
                env={**os.environ, **CHILD_ENV, **(env or {})})
        deadline = time.monotonic() + timeout
        while not self.signal.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"killed_writes {what} did not block in its write "
                                     f"(exit {self.proc.returncode}):\n{self.log.read_text()}")
            time.sleep(0.05)
        self.said = self.signal.read_text()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, SIGKILL)
        self.proc.wait()

    def wait(self, timeout: float = 120.0) -> int:
        return self.proc.wait(timeout)


def main(argv: list[str]) -> None:
    what, signal, *args = argv
    if what == "value":
        from als_assets.core.storage import VersionedStore

        root, asset, partition = args
        VersionedStore(root).write(tuple(asset.split("/")), partition, BlockingValue(signal))
    elif what == "staging":
        from als_assets.core.storage import VersionedStore

        (root,) = args
        with VersionedStore(root).staging("splits-killed") as path:
            path.mkdir()
            (path / "part-00000.parquet").write_bytes(b"\0" * 1000)
            _signal(signal, str(path.parent))
            _hang()
    elif what == "session":
        from als_assets.core.spark import SparkSettings, build_spark_session

        (root,) = args
        spark = build_spark_session(SparkSettings(
            master="local[1]", driver_memory="1g",
            checkpoint_dir=str(Path(root) / "_checkpoints")))
        _signal(signal, spark.sparkContext.getCheckpointDir() or "")
        if os.environ.get("KILLED_WRITES_EXIT"):
            return  # a normal exit: atexit handlers run
        _hang()
    elif what == "publish":
        from dataclasses import replace

        from pyspark.sql import functions as F

        from als_assets.core.jdbc import find_jdbc_driver
        from als_assets.core.pg import PgSettings
        from als_assets.core.publish import TABLES, publish_frame
        from als_assets.core.spark import SparkSettings, build_spark_session

        database, experiment = args
        jar = find_jdbc_driver().jar
        spark = build_spark_session(SparkSettings(master="local[1]", driver_memory="1g",
                                                  jars=(jar,) if jar else ()))
        frame = spark.range(1000).select(
            F.col("id").cast("int").alias("user_id"), F.lit(7).alias("movie_id"),
            F.lit(0.5).cast("float").alias("score"), F.lit(1).alias("rank"))
        publish_frame(blocking_frame(frame, signal, after_rows=100),
                      replace(PgSettings.from_env(), database=database), "als",
                      TABLES["user_recommendations"], experiment)
    elif what == "materialize":
        from dagster import AssetSelection, DagsterInstance, materialize

        from als_assets.definitions import all_assets, resources

        asset, *partition = args
        _block_storage_writes(signal)
        with DagsterInstance.get() as instance:
            # `ratings` comes with `movies`: one step makes both (they switch together).
            selection = AssetSelection.assets(asset).required_multi_asset_neighbors()
            materialize(all_assets, resources=resources, instance=instance, selection=selection,
                        partition_key=partition[0] if partition else None)
    else:
        raise SystemExit(f"killed_writes: unknown command {what!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
