"""VersionedStore: round trips, version retention and atomic failure handling."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import time
import types
from pathlib import Path

import pytest
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import functions as F

from als_assets.core import storage
from als_assets.core.evaluation import EvaluationReport
from als_assets.core.experiments import AlsParams
from als_assets.core.metrics import RankingMetrics
from als_assets.core.ranking import ListScores
from als_assets.core.serialization import SerializationError
from als_assets.core.storage import KEEP_VERSIONS, StorageError, StoredCopy, VersionedStore
from als_assets.core.tuning import GridScore

from .killed_writes import Blocked

ASSET = ("group", "thing")


def versions(slot: Path) -> list[str]:
    return sorted(p.name for p in slot.iterdir() if p.is_dir())


def current_version(slot: Path) -> str:
    return (slot / "CURRENT").read_text()


@pytest.fixture
def store(tmp_path):
    return VersionedStore(tmp_path / "store")


@pytest.fixture
def fake_clock(monkeypatch):
    """Successive writes get successive one-second stamps (no sleeping, no same-second ties)."""
    stamps = (f"20240101T0000{s:02d}" for s in itertools.count())
    fake = types.SimpleNamespace(strftime=lambda fmt, t=None: next(stamps), gmtime=time.gmtime,
                                 time_ns=time.time_ns)
    monkeypatch.setattr(storage, "time", fake)


def test_json_round_trip_of_a_frozen_dataclass(store):
    metrics = RankingMetrics(10, 0.5, 0.25, float("nan"), float("inf"), 3)
    value = EvaluationReport(10, 4.0, False, 0.9, None, 7, None,
                             (ListScores("model", metrics, metrics, 0.5, 12.0, float("nan")),),
                             100, ("a warning",))
    stored = store.write(ASSET, "exp1", value, tag="run12345678")
    assert stored.kind == "json"
    # v<UTC second>.<nanoseconds>-<tag cut to 8 characters>-<6 hex digits>
    assert re.fullmatch(r"v\d{8}T\d{6}\.\d{9}-run12345-[0-9a-f]{6}", stored.version), \
        stored.version
    assert Path(stored.path) == store.slot(ASSET, "exp1") / stored.version / "value.json"
    assert store.current(ASSET, "exp1") == stored
    got = store.read(ASSET, "exp1")  # no Spark needed for JSON values
    assert type(got) is EvaluationReport and got is not value
    # NaN != NaN, so compare the fields' text.
    assert repr(got) == repr(value)
    with pytest.raises(AttributeError):  # still frozen after the round trip
        got.k = 5
    manifest = json.loads((Path(stored.path).parent / "manifest.json").read_text())
    assert manifest["kind"] == "json" and manifest["name"] == "value.json"
    assert manifest["tag"] == "run12345678"


def test_unpartitioned_slot(store):
    store.write(ASSET, None, {"a": 1})
    assert store.slot(ASSET, None) == store.root / "group" / "thing" / "__all__"
    assert (store.slot(ASSET, None) / "CURRENT").is_file()
    assert store.read(ASSET, None) == {"a": 1}


def test_dataframe_round_trip(spark, store):
    rows = [(1, 10, 4.5, "a"), (2, 20, 0.5, None), (3, 30, 3.0, "c,d")]
    frame = spark.createDataFrame(rows, "user_id int, movie_id int, rating float, note string")
    stored = store.write(ASSET, "exp1", frame)
    assert stored.kind == "dataframe"
    assert stored.path.endswith("data.parquet")
    back = store.read(ASSET, "exp1", get_spark=lambda: spark)
    assert back.schema.simpleString() == frame.schema.simpleString()
    assert sorted(tuple(r) for r in back.collect()) == rows
    with pytest.raises(StorageError, match=r"group/thing \[exp1\] is a Spark value"):
        store.read(ASSET, "exp1")


def test_stored_copy_links_another_partitions_files(spark, store, fake_clock):
    rows = [(1, 10, 4.5), (2, 20, 0.5), (3, 30, 3.0)]
    frame = spark.createDataFrame(rows, "user_id int, movie_id int, rating float")
    source = store.write(ASSET, "exp1", frame)
    copy = store.write(ASSET, "exp2", StoredCopy(source.kind, source.path))
    assert copy.kind == "dataframe" and copy.path != source.path
    assert Path(copy.path).name == "data.parquet"
    src_files = sorted(p.relative_to(source.path) for p in Path(source.path).rglob("*"))
    assert sorted(p.relative_to(copy.path) for p in Path(copy.path).rglob("*")) == src_files
    # Hard links: the same file contents, not rewritten.
    parquet = [f for f in src_files if f.suffix == ".parquet"]
    assert parquet and all(
        (Path(copy.path) / f).stat().st_ino == (Path(source.path) / f).stat().st_ino
        for f in parquet)
    # The copy outlives the source's versions being pruned.
    for value in ("a", "b", "c"):
        store.write(ASSET, "exp1", value)
    assert not Path(source.path).exists()
    back = store.read(ASSET, "exp2", get_spark=lambda: spark)
    assert sorted(tuple(r) for r in back.collect()) == rows


def test_stored_copy_takes_the_name_its_kind_is_stored_under(store, tmp_path):
    """A model saved beside another value (tuned_params' best_model) stored as als_model reads
    like any stored model: <version>/model, its files linked."""
    saved = tmp_path / "elsewhere" / "best_model"
    (saved / "metadata").mkdir(parents=True)
    (saved / "metadata" / "part-00000").write_text("{}")
    copy = store.write(ASSET, "exp1", StoredCopy("als_model", str(saved)))
    assert copy.kind == "als_model" and Path(copy.path).name == "model"
    linked = Path(copy.path) / "metadata" / "part-00000"
    assert linked.stat().st_ino == (saved / "metadata" / "part-00000").stat().st_ino
    assert store.current(ASSET, "exp1").path == copy.path


def test_stored_copy_of_a_missing_value_fails_and_keeps_the_current_one(store):
    store.write(ASSET, "exp2", "kept")
    with pytest.raises(FileNotFoundError):
        store.write(ASSET, "exp2", StoredCopy("dataframe", str(store.root / "gone.parquet")))
    assert store.read(ASSET, "exp2") == "kept"
    assert len(versions(store.slot(ASSET, "exp2"))) == 1


def test_als_model_round_trip(spark, store):
    training = spark.createDataFrame(
        [(1, 10, 4.0), (1, 11, 3.0), (2, 10, 5.0), (2, 12, 1.0), (3, 11, 2.0), (3, 12, 4.5)],
        "user_id int, movie_id int, rating float")
    model = ALS(userCol="user_id", itemCol="movie_id", ratingCol="rating", rank=2, maxIter=3,
                seed=1).fit(training)
    stored = store.write(ASSET, "exp1", model)
    assert stored.kind == "als_model"
    back = store.read(ASSET, "exp1", get_spark=lambda: spark)
    assert isinstance(back, ALSModel)
    assert back.rank == 2
    assert back.getUserCol() == "user_id" and back.getItemCol() == "movie_id"

    def factors(m):
        return (sorted((r["id"], tuple(r["features"])) for r in m.userFactors.collect()),
                sorted((r["id"], tuple(r["features"])) for r in m.itemFactors.collect()))

    assert factors(back) == factors(model)


def test_the_io_manager_loads_each_model_version_once_and_hands_each_step_a_copy(
        spark, tmp_path, monkeypatch):
    """The steps of a run that score with the ALS model share one load of its version (each
    load is several Spark jobs); each gets its own copy, and a new version is loaded anew."""
    from dagster import AssetKey, StaticPartitionsDefinition, build_input_context

    from als_assets.io_managers import VersionedSparkIOManager
    from als_assets.resources import SparkResource

    root = str(tmp_path / "storage")
    io_manager = VersionedSparkIOManager(root=root, spark=SparkResource(storage_root=root))
    training = spark.createDataFrame(
        [(1, 10, 4.0), (1, 11, 3.0), (2, 10, 5.0), (2, 12, 1.0), (3, 11, 2.0), (3, 12, 4.5)],
        "user_id int, movie_id int, rating float")

    def fit(rank):
        return ALS(userCol="user_id", itemCol="movie_id", ratingCol="rating", rank=rank,
                   maxIter=2, seed=1).fit(training)

    loads = []
    real_load = ALSModel.load
    monkeypatch.setattr(ALSModel, "load", classmethod(
        lambda cls, path: loads.append(path) or real_load(path)))

    def load_input():
        return io_manager.load_input(build_input_context(
            asset_key=AssetKey("als_model"), partition_key="exp1",
            asset_partitions_def=StaticPartitionsDefinition(["exp1"])))

    first = io_manager.store.write(("als_model",), "exp1", fit(2))
    a, b = load_input(), load_input()
    assert loads == [first.path]
    assert a is not b and a.rank == b.rank == 2
    a.setPredictionCol("mine")
    assert b.getPredictionCol() == "prediction"
    assert a.userFactors.count() == b.userFactors.count() == 3

    second = io_manager.store.write(("als_model",), "exp1", fit(3))
    assert load_input().rank == 3
    assert loads == [first.path, second.path]


def test_previous_version_kept_and_oldest_pruned(store, fake_clock):
    assert KEEP_VERSIONS == 2
    slot = store.slot(ASSET, "p")
    first = store.write(ASSET, "p", "one")
    second = store.write(ASSET, "p", "two")
    assert versions(slot) == [first.version, second.version]
    assert current_version(slot) == second.version
    assert Path(first.path).is_file()  # a run still reading the previous version can finish
    assert json.loads(Path(first.path).read_text())["value"] == "one"

    third = store.write(ASSET, "p", "three")
    assert versions(slot) == [second.version, third.version]
    assert not Path(first.path).parent.exists()
    assert current_version(slot) == third.version
    assert store.read(ASSET, "p") == "three"
    fourth = store.write(ASSET, "p", "four")
    assert versions(slot) == [third.version, fourth.version]
    # No temporary CURRENT files are left behind.
    assert sorted(p.name for p in slot.iterdir() if p.is_file()) == ["CURRENT"]


def test_same_second_writes_prune_the_oldest(store, monkeypatch):
    ticks = iter(range(1_700_000_000_000_000_000, 1_700_000_000_000_000_100, 10))
    fake = types.SimpleNamespace(strftime=lambda fmt, t=None: "20240101T000000",
                                 gmtime=time.gmtime, time_ns=lambda: next(ticks))
    monkeypatch.setattr(storage, "time", fake)
    slot = store.slot(ASSET, "p")
    first = store.write(ASSET, "p", "one", tag="run-ccc")
    second = store.write(ASSET, "p", "two", tag="run-bbb")
    third = store.write(ASSET, "p", "three", tag="run-aaa")
    assert current_version(slot) == third.version
    assert set(versions(slot)) == {second.version, third.version}
    assert first.version not in versions(slot)


def test_failed_dataframe_write_keeps_previous_version(spark, store):
    slot = store.slot(ASSET, "exp1")
    good = spark.createDataFrame([(1, "a"), (2, "b")], "id int, label string")
    before = store.write(ASSET, "exp1", good)
    current_before = current_version(slot)

    broken = spark.range(10).select(F.raise_error(F.lit("boom")).alias("x"))
    with pytest.raises(Exception, match="boom"):
        store.write(ASSET, "exp1", broken)

    assert current_version(slot) == current_before == before.version
    assert versions(slot) == [before.version]  # no partial version folder
    assert sorted(p.name for p in slot.iterdir()) == ["CURRENT", before.version]
    back = store.read(ASSET, "exp1", get_spark=lambda: spark)
    assert sorted(tuple(r) for r in back.collect()) == [(1, "a"), (2, "b")]
    assert store.current(ASSET, "exp1") == before


def test_failed_json_write_keeps_previous_version(store):
    slot = store.slot(ASSET, "exp1")
    before = store.write(ASSET, "exp1", GridScore(AlsParams(2, 3, 0.1), 0.5))
    with pytest.raises(SerializationError, match=r"value.params.alpha: a builtins.function"):
        store.write(ASSET, "exp1", GridScore(AlsParams(2, 3, 0.1, lambda: 1), 0.5))
    assert current_version(slot) == before.version
    assert sorted(p.name for p in slot.iterdir()) == ["CURRENT", before.version]
    assert store.read(ASSET, "exp1") == GridScore(AlsParams(2, 3, 0.1), 0.5)


def test_failed_first_write_leaves_slot_unmaterialized(store):
    with pytest.raises(SerializationError):
        store.write(ASSET, "exp2", lambda: 1)
    assert store.current(ASSET, "exp2") is None
    assert list(store.slot(ASSET, "exp2").iterdir()) == []


@pytest.mark.parametrize(("partition", "name"), [("exp9", "group/thing [exp9]"),
                                                 (None, "group/thing")])
def test_reading_a_never_written_slot_names_the_asset(store, partition, name):
    with pytest.raises(StorageError) as info:
        store.read(ASSET, partition)
    message = str(info.value)
    assert message.startswith(f"{name} has not been materialized yet")
    assert str(store.slot(ASSET, partition)) in message
    assert store.current(ASSET, partition) is None


# -- crash safety: writes killed with SIGKILL (real subprocesses, real kills) ------------------

def version_folders(slot: Path) -> list[str]:
    return sorted(p.name for p in slot.iterdir() if p.is_dir())


def test_a_killed_write_keeps_the_previous_value_and_the_next_write_removes_it(store, tmp_path):
    slot = store.slot(ASSET, "p")
    first = store.write(ASSET, "p", "one")
    second = store.write(ASSET, "p", "two")
    writer = Blocked(tmp_path / "k", "value", str(store.root), "group/thing", "p")
    half = Path(writer.said)
    assert half.parent == slot and (half / "partial.bin").is_file()

    # While its writer runs, the half-written folder is left alone and counts for nothing.
    third = store.write(ASSET, "p", "three")
    assert version_folders(slot) == sorted([second.version, third.version, half.name])
    writer.kill()
    assert not (half / storage.MANIFEST).exists() and (half / storage.WRITER).exists()
    assert store.read(ASSET, "p") == "three"

    # The next write removes it; the previous complete version is the one kept.
    fourth = store.write(ASSET, "p", "four")
    assert version_folders(slot) == [third.version, fourth.version]
    assert store.read(ASSET, "p") == "four"
    assert first.version not in version_folders(slot)


def test_a_killed_first_write_leaves_the_slot_unmaterialized(store, tmp_path):
    writer = Blocked(tmp_path / "k", "value", str(store.root), "group/thing", "new")
    writer.kill()
    assert store.current(ASSET, "new") is None
    with pytest.raises(StorageError, match=r"group/thing \[new\] has not been materialized"):
        store.read(ASSET, "new")
    assert store.write(ASSET, "new", 5).version == current_version(store.slot(ASSET, "new"))
    assert version_folders(store.slot(ASSET, "new")) == [current_version(store.slot(ASSET, "new"))]


def test_pruning_never_counts_a_half_written_version(store, tmp_path):
    """The issue's case: a half-written version newer than the current one used to push the
    good previous version out at the next successful write."""
    slot = store.slot(ASSET, "p")
    store.write(ASSET, "p", "one")
    second = store.write(ASSET, "p", "two")
    writer = Blocked(tmp_path / "k", "value", str(store.root), "group/thing", "p")
    writer.kill()
    half = Path(writer.said).name
    # Pruning alone (as the old code did it, without removing leftovers first).
    store._prune(slot, keep=second.version)
    assert second.version in version_folders(slot) and half in version_folders(slot)
    assert store.read(ASSET, "p") == "two"


def test_cleanup_command_removes_leftovers_of_dead_writers_only(store, tmp_path, capsys):
    from als_assets.cleanup import main

    slot = store.slot(ASSET, "p")
    good = store.write(ASSET, "p", "one")
    dead = Blocked(tmp_path / "k1", "value", str(store.root), "group/thing", "p")
    dead.kill()
    live = Blocked(tmp_path / "k2", "value", str(store.root), "group/thing", "q")
    try:
        # Killed after its manifest, before CURRENT switched: complete but never current.
        orphan = slot / (good.version[:-6] + "ffffff")
        shutil.copytree(Path(good.path).parent, orphan)
        (orphan / storage.WRITER).write_text((Path(dead.said) / storage.WRITER).read_text())
        # An unmarked folder (a write killed by an earlier release) and a stale CURRENT temp.
        legacy = slot / "v20200101T000000.000000000-old-abcdef"
        (legacy / "model" / "metadata" / "_temporary").mkdir(parents=True)
        tmp_current = slot / ".CURRENT.0123abcd"
        tmp_current.write_text("x")
        for path in (legacy, tmp_current):
            os.utime(path, (time.time() - 3600, time.time() - 3600))
        expected = sorted(str(p) for p in (Path(dead.said), orphan, legacy, tmp_current))

        assert main(["--root", str(store.root), "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert sorted(line.split(" ", 2)[2] for line in out.splitlines()[:-1]) == expected
        assert out.splitlines()[-1] == f"4 leftover(s) to remove under {store.root}"
        assert Path(dead.said).exists()

        assert main(["--root", str(store.root)]) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[-1] == f"4 leftover(s) removed under {store.root}"
        assert sorted(p.name for p in slot.iterdir()) == ["CURRENT", good.version]
        assert Path(live.said).is_dir()  # its writer still runs
        assert store.read(ASSET, "p") == "one"
    finally:
        live.kill()
    assert store.cleanup() == [Path(live.said)]
    assert not Path(live.said).exists()


def test_staged_files_outlive_their_staging_folder_in_the_versions_linking_them(store):
    with store.staging("splits-p") as path:
        assert path.parent.parent == store.root / storage.STAGING and not path.exists()
        path.mkdir()
        (path / "part-0.parquet").write_text("rows")
        stored = store.write(ASSET, "p", StoredCopy("dataframe", str(path)))
        assert store.cleanup(dry_run=True) == []  # its writer (this process) is alive
    assert not path.parent.exists()
    assert (Path(stored.path) / "part-0.parquet").read_text() == "rows"
    assert store.current(ASSET, "p").kind == "dataframe"
    assert store.slots() == [store.slot(ASSET, "p")]  # staging holds no slot


def test_a_killed_staging_block_is_removed_by_the_next_one_and_by_cleanup(store, tmp_path):
    dead = Blocked(tmp_path / "k1", "staging", str(store.root))
    live = Blocked(tmp_path / "k2", "staging", str(store.root))
    try:
        dead.kill()
        assert (Path(dead.said) / "files" / "part-00000.parquet").is_file()
        assert store.cleanup(dry_run=True) == [Path(dead.said)]
        with store.staging("next"):
            assert not Path(dead.said).exists()
            assert Path(live.said).is_dir()  # its writer still runs
    finally:
        live.kill()
    assert store.cleanup() == [Path(live.said)]
    assert list((store.root / storage.STAGING).iterdir()) == []


def test_cleanup_of_a_missing_root_is_an_error(tmp_path, capsys):
    from als_assets.cleanup import main

    assert main(["--root", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"error: storage root {tmp_path / 'nope'} does not exist\n"


def test_current_naming_a_folder_without_manifest_is_a_clear_error(store):
    stored = store.write(ASSET, "p", "one")
    (Path(stored.path).parent / storage.MANIFEST).unlink()
    with pytest.raises(StorageError, match=rf"group/thing \[p\]: CURRENT names version "
                       rf"{stored.version}, which has no readable manifest.json"):
        store.read(ASSET, "p")
