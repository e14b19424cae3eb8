"""Figures of a persisted training frame asked for by several steps, computed once
(core/plan_memo.py): the catalogue with its counts and the global mean rating."""

from __future__ import annotations

import numpy as np
import pytest

from als_assets.core import plan_memo
from als_assets.core.plan_memo import mean_rating, once_per_plan
from als_assets.core.ranking import Catalogue

SCHEMA = "user_id int, movie_id int, rating float, timestamp long"
ROWS = [(1, 10, 4.0, 1), (1, 11, 2.0, 2), (2, 10, 5.0, 3), (3, 12, 0.5, 4), (3, 10, 3.5, 5)]


@pytest.fixture
def kept(monkeypatch):
    monkeypatch.setattr(plan_memo, "_KEPT", {})
    return plan_memo


@pytest.fixture
def stored(spark, tmp_path):
    """A folder of Parquet, as the IO manager reads each stored version."""
    path = str(tmp_path / "training.parquet")
    spark.createDataFrame(ROWS, SCHEMA).coalesce(1).write.parquet(path)
    return path


@pytest.fixture
def training(spark, stored):
    frame = spark.read.parquet(stored).persist()
    yield frame
    frame.unpersist()


def counter():
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    return calls, compute


def test_a_persisted_frame_is_asked_once_per_question(kept, training, spark, stored):
    calls, compute = counter()
    assert once_per_plan("q", training, compute) == 1
    # The next step's frame: the IO manager's same persisted frame, or one of the same plan.
    same_plan = spark.read.parquet(stored).persist()
    assert once_per_plan("q", same_plan, compute) == 1
    assert len(calls) == 1
    assert once_per_plan("another question", training, compute) == 2
    other = spark.createDataFrame(ROWS[:-1], SCHEMA).persist()
    assert once_per_plan("q", other, compute) == 3
    same_plan.unpersist()
    other.unpersist()


def test_a_frame_spark_does_not_cache_is_asked_every_time(kept, spark):
    calls, compute = counter()
    frame = spark.createDataFrame(ROWS, SCHEMA)
    assert [once_per_plan("q", frame, compute) for _ in range(3)] == [1, 2, 3]
    assert kept._KEPT == {}


def test_only_the_newest_answers_are_kept(kept, training):
    for i in range(kept.KEEP + 3):
        once_per_plan(f"q{i}", training, lambda i=i: i)
    assert len(kept._KEPT) == kept.KEEP
    assert [key[0] for key in kept._KEPT] == [f"q{i}" for i in range(3, kept.KEEP + 3)]
    calls, compute = counter()
    assert once_per_plan("q0", training, compute) == 1  # evicted: asked again


def test_catalogue_and_mean_rating_are_exact_and_shared(kept, training):
    catalogue = Catalogue.of(training)
    assert catalogue.item_ids.tolist() == [10, 11, 12]
    assert catalogue.counts.tolist() == [3, 1, 1]
    assert Catalogue.of(training) is catalogue
    # Shared by the steps: no step can change another's counts.
    with pytest.raises(ValueError, match="read-only"):
        catalogue.counts[0] = 0
    ratings = np.array([r[2] for r in ROWS], dtype=np.float32).astype(np.float64)
    assert mean_rating(training) == pytest.approx(ratings.mean(), abs=1e-12)
    assert ("mean_rating", id(training.sparkSession), training.semanticHash()) in kept._KEPT
