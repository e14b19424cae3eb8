"""Stored Python values as JSON and Parquet: exact round trips, and files that cannot run code."""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from als_assets.core import serialization
from als_assets.core.experiments import AlsParams
from als_assets.core.reports import SampleUserReport
from als_assets.core.serialization import SerializationError, dump, load
from als_assets.core.storage import StorageError, VersionedStore
from als_assets.core.tuning import GridScore, TuningResult


@dataclass(frozen=True)
class Foreign:
    x: int


def round_trip(value, tmp_path: Path):
    path = tmp_path / "value.json"
    dump(value, path)
    return load(path)


def tuning_result(**changes) -> TuningResult:
    grid = (GridScore(AlsParams(5, 8, 0.05), 0.91, 1.5),
            GridScore(AlsParams(10, 8, 0.1, alpha=40.0), float("nan"), None))
    base = TuningResult(method="holdout", metric="rmse", lower_is_better=True,
                        best=grid[0].params, best_score=0.91, grid=grid, tuning_rows=12_000,
                        seconds=3.25, blocks_per_fit=2, best_model_path="/x/best_model",
                        best_model_key="k1")
    return replace(base, **changes)


def test_a_nested_frozen_dataclass_round_trips_exactly(tmp_path):
    value = tuning_result()
    back = round_trip(value, tmp_path)
    assert type(back) is TuningResult and back is not value
    assert type(back.grid) is tuple and all(type(g) is GridScore for g in back.grid)
    assert back.grid[0] == value.grid[0] and type(back.grid[0].params) is AlsParams
    assert math.isnan(back.grid[1].score) and back.grid[1].seconds is None
    assert back == replace(value, grid=(value.grid[0], back.grid[1]))
    text = (tmp_path / "value.json").read_text()
    assert '"$dataclass": "als_assets.core.tuning:TuningResult"' in text


def test_plain_values_keep_their_types(tmp_path):
    value = {
        "floats": (float("inf"), float("-inf"), -0.0, 1e-300),
        1: [None, True, "é", (1, (2,))],
        (3, "k"): {"nested": []},
        "numpy": (np.float32(0.5), np.int64(-7), np.bool_(True), np.float64("nan")),
        "array": np.array([[1.5, np.inf], [0.0, -2.0]], dtype=np.float32),
    }
    back = round_trip(value, tmp_path)
    assert list(back) == list(value)
    assert back["floats"] == value["floats"] and type(back["floats"]) is tuple
    assert math.copysign(1, back["floats"][2]) == -1
    assert back[1] == [None, True, "é", (1, (2,))] and type(back[1][3][1]) is tuple
    assert back[(3, "k")] == {"nested": []}
    f32, i64, b, nan = back["numpy"]
    assert (type(f32), f32) == (np.float32, np.float32(0.5))
    assert (type(i64), i64) == (np.int64, -7)
    assert type(b) is np.bool_ and bool(b) is True
    assert type(nan) is np.float64 and np.isnan(nan)
    assert back["array"].dtype == np.float32 and back["array"].shape == (2, 2)
    assert back["array"].tolist() == [[1.5, float("inf")], [0.0, -2.0]]


def test_pandas_frames_are_stored_as_parquet_beside_the_json(tmp_path):
    top = pd.DataFrame({"rank": [1, 2], "movie_id": [10, 20], "title": ["A, the", None],
                        "genres": ["x|y", "z"], "rating": [5.0, 4.5]})
    rec = pd.DataFrame({"rank": np.array([1], dtype=np.int32), "movie_id": [30],
                        "title": ["C"], "genres": ["w"], "score": [np.float32(0.75)],
                        "test_rating": [float("nan")]})
    value = SampleUserReport(user_id=42, top_rated=top, recommended=rec)
    back = round_trip(value, tmp_path)
    assert type(back) is SampleUserReport and back.user_id == 42
    pd.testing.assert_frame_equal(back.top_rated, top)
    pd.testing.assert_frame_equal(back.recommended, rec)
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["0.parquet", "1.parquet"]


@pytest.mark.parametrize(("value", "message"), [
    (Foreign(1), r"value: als_assets_tests.test_serialization:Foreign cannot be stored: only "
                 r"dataclasses defined at module level in als_assets are read back"),
    ({"k": [1, {2}]}, r"value\['k'\]\[1\]: a builtins.set cannot be stored as JSON"),
    (tuning_result(best_model=object()), r"value.best_model: a builtins.object cannot be"),
    (pd.DataFrame({1: [2]}), r"value: a DataFrame is stored as Parquet, which needs string "
                             r"column names, not \[1\]"),
    (np.array(["a"]), r"value: numpy arrays of <U1 cannot be stored"),
    ((1, pd.DataFrame({"mixed": [1, "a"]})),
     r"value\[1\]: this DataFrame cannot be stored as Parquet: .*mixed"),
])
def test_values_that_cannot_be_read_back_are_refused_when_written(tmp_path, value, message):
    with pytest.raises(SerializationError, match=message):
        dump(value, tmp_path / "value.json")
    assert not (tmp_path / "value.json").exists()


def forged(tmp_path: Path, value) -> Path:
    path = tmp_path / "value.json"
    path.write_text(json.dumps({"format": serialization.FORMAT, "value": value}))
    return path


@pytest.mark.parametrize(("value", "message"), [
    ({"$dataclass": "os:system", "fields": {}},
     r"value: os:system is not a class of als_assets; refusing to load it"),
    ({"$dataclass": "als_assets_evil.x:Y", "fields": {}},
     r"als_assets_evil.x:Y is not a class of als_assets"),
    ({"$dataclass": "als_assets.core.spark:build_spark_session", "fields": {}},
     r"als_assets.core.spark:build_spark_session is not a dataclass of this version"),
    ({"$tuple": [{"$frame": "frames/../../secret.parquet"}]},
     r"value\[0\]: frame file 'frames/../../secret.parquet' is outside"),
    ({"$numpy": "O", "value": 1}, r"numpy dtype 'O' is not one this store writes"),
    ({"$dataclass": "als_assets.core.experiments:AlsParams",
      "fields": {"rank": 1, "max_iter": 2, "reg_param": 0.1, "shell": "rm"}},
     r"value: als_assets.core.experiments:AlsParams has no field\(s\) shell any more"),
    ({"$dataclass": "als_assets.core.experiments:AlsParams", "fields": {"rank": 1}},
     r"cannot rebuild als_assets.core.experiments:AlsParams from the stored fields"),
])
def test_forged_or_outdated_files_are_refused_by_name(tmp_path, value, message):
    with pytest.raises(SerializationError, match=message):
        load(forged(tmp_path, value))


def test_a_field_added_with_a_default_reads_older_files(tmp_path):
    path = tmp_path / "value.json"
    dump(tuning_result(), path)
    data = json.loads(path.read_text())
    del data["value"]["fields"]["blocks_per_fit"]
    path.write_text(json.dumps(data))
    back = load(path)
    assert back.blocks_per_fit == 1
    assert repr(back) == repr(tuning_result(blocks_per_fit=1))  # repr: NaN != NaN


class _Boom:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_pickle_of_an_earlier_release_is_not_loaded(tmp_path):
    """An earlier release's pickled value: refused with what to do, and its code never runs."""
    store = VersionedStore(tmp_path / "store")
    stored = store.write(("evaluation",), "exp1", 1)
    folder = Path(stored.path).parent
    marker = tmp_path / "ran"
    (folder / "value.pkl").write_bytes(pickle.dumps(_Boom(str(marker))))
    (folder / "manifest.json").write_text(json.dumps({"kind": "pickle", "name": "value.pkl"}))
    with pytest.raises(StorageError, match=(
            rf"^evaluation \[exp1\] is stored as a pickle \(version {stored.version}, written "
            r"by an earlier release of als_assets\), which is no longer read: loading a pickle "
            r"can run any code that was written into it. Materialize evaluation \[exp1\] again")):
        store.read(("evaluation",), "exp1")
    assert not marker.exists()


def test_a_forged_file_in_the_store_names_the_asset_and_version(tmp_path):
    store = VersionedStore(tmp_path / "store")
    stored = store.write(("evaluation",), "exp1", 1)
    forged(Path(stored.path).parent, {"$dataclass": "os:system", "fields": {}})
    with pytest.raises(StorageError, match=rf"^evaluation \[exp1\], version {stored.version}: "
                       r"value: os:system is not a class of als_assets"):
        store.read(("evaluation",), "exp1")
