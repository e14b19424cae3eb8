"""Materializations killed with SIGKILL midway through a Parquet and a model write.

A real Dagster materialization runs in a subprocess (killed_writes.py) against a storage root
and a Dagster instance this module shares with it; the value it writes blocks once Spark has
started writing files, and the test kills the subprocess with everything it started (JVM,
Python workers). Then: the previous value is the one read, and a re-run succeeds and leaves
neither the half-written version nor Spark's `_temporary` folders nor the killed session's
checkpoint folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dagster import AssetSelection, DagsterInstance, materialize

from als_assets.core import storage
from als_assets.core.storage import VersionedStore
from als_assets.core.tuning import TuningResult
from als_assets.definitions import all_assets
from als_assets.io_managers import VersionedSparkIOManager
from als_assets.resources import SparkResource
from als_assets_tests.project import RESOURCES as resources

from .killed_writes import Blocked

pytestmark = pytest.mark.slow
# One fit, and a best model kept (a study ending at tuned_params keeps none).
EXPERIMENT = "e2e_implicit"


class Stage:
    """A storage root and a Dagster instance, used in this process and by the subprocess."""

    def __init__(self, base: Path):
        self.root = base / "store"
        self.home = base / "dagster_home"
        self.home.mkdir(parents=True)
        (self.home / "dagster.yaml").write_text("")
        self.instance = DagsterInstance.local_temp(tempdir=str(self.home))
        spark = SparkResource(master="local[2]", storage_root=str(self.root))
        self.resources = {**resources, "spark": spark,
                          "io_manager": VersionedSparkIOManager(root=str(self.root), spark=spark)}
        self.store = VersionedStore(self.root)
        self.env = {"ALS_STORAGE_ROOT": str(self.root), "DAGSTER_HOME": str(self.home)}

    def materialize(self, selection, partition: str | None = None) -> None:
        result = materialize(all_assets, resources=self.resources, instance=self.instance,
                             selection=selection, partition_key=partition)
        assert result.success

    def folders(self, asset: str, partition: str | None = None) -> list[str]:
        return sorted(p.name for p in self.store.slot((asset,), partition).iterdir())

    def leftovers(self) -> list[Path]:
        """Spark's `_temporary` folders and version folders without a manifest."""
        temporary = list(self.root.rglob("_temporary"))
        incomplete = [p for slot in self.store.slots() for p in slot.iterdir()
                      if p.is_dir() and not (p / storage.MANIFEST).exists()]
        return temporary + incomplete

    def checkpoint_pids(self) -> set[int]:
        return {int(p.name.split("-")[-2]) for p in (self.root / "_checkpoints").iterdir()}


@pytest.fixture(scope="module")
def stage(spark, tmp_path_factory):
    stage = Stage(tmp_path_factory.mktemp("crash"))
    stage.materialize(AssetSelection.assets("ratings", "movies"))
    stage.materialize(AssetSelection.assets("training", "validation", "test", "tuned_params"),
                      EXPERIMENT)
    return stage


def test_a_materialization_killed_in_its_parquet_write(stage, spark, tmp_path):
    before = stage.store.current(("ratings",), None)
    run = Blocked(tmp_path, "materialize", "ratings", env=stage.env)
    half = [p for p in stage.store.slot(("ratings",), None).iterdir()
            if p.is_dir() and p.name != before.version]
    assert len(half) == 1 and (half[0] / "data.parquet" / "_temporary").is_dir()
    run.kill()
    assert not (half[0] / storage.MANIFEST).exists()
    assert run.proc.pid in stage.checkpoint_pids()  # a SIGKILL removes nothing

    assert stage.store.current(("ratings",), None) == before
    assert stage.store.read(("ratings",), None, lambda: spark).count() == 20_000

    stage.materialize(AssetSelection.assets("ratings", "movies"))
    after = stage.store.current(("ratings",), None)
    assert stage.folders("ratings") == sorted(["CURRENT", before.version, after.version])
    assert stage.leftovers() == []
    assert stage.checkpoint_pids() == {os.getpid()}
    assert stage.store.read(("ratings",), None, lambda: spark).count() == 20_000


def test_a_materialization_killed_in_its_model_write(stage, spark, tmp_path):
    """The issue's case: tuned_params killed while saving its best model."""
    before = stage.store.current(("tuned_params",), EXPERIMENT)
    previous = stage.store.read(("tuned_params",), EXPERIMENT)
    run = Blocked(tmp_path, "materialize", "tuned_params", EXPERIMENT, env=stage.env)
    (half,) = [p for p in stage.store.slot(("tuned_params",), EXPERIMENT).iterdir()
               if p.is_dir() and p.name != before.version]
    model = half / "best_model"
    assert (model / "metadata" / "_SUCCESS").is_file()  # written; the factors are not
    assert (model / "userFactors" / "_temporary").is_dir()
    run.kill()
    assert not (half / storage.MANIFEST).exists()

    back = stage.store.read(("tuned_params",), EXPERIMENT)
    assert isinstance(back, TuningResult) and back.best == previous.best
    assert back.best_model_path.startswith(str(stage.store.slot(("tuned_params",), EXPERIMENT)
                                               / before.version))
    assert back.load_best_model().rank == back.best.rank

    stage.materialize(AssetSelection.assets("tuned_params"), EXPERIMENT)
    after = stage.store.current(("tuned_params",), EXPERIMENT)
    assert stage.folders("tuned_params", EXPERIMENT) == sorted(
        ["CURRENT", before.version, after.version])
    assert stage.leftovers() == []
    assert stage.checkpoint_pids() == {os.getpid()}
    assert stage.store.read(("tuned_params",), EXPERIMENT).load_best_model() is not None
