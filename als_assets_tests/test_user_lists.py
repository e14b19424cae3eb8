"""Each user's training and validation movies grouped once and shared (core/user_lists.py): the
exact lists, the same answers as grouping the pairs, and one grouping for the steps that share
it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from als_assets.core import user_lists as ul
from als_assets.core.distributed import (
    PATH_CONF,
    judge_model_lists,
    judge_on_executors,
    recommend_on_executors,
    seen_lists,
)
from als_assets.core.ranking import Catalogue, rated_outside
from als_assets.core.user_lists import SeenLists, held_columns, user_lists

from .test_distributed import exact, factors


@pytest.fixture
def splits(spark):
    training = spark.createDataFrame(
        [(1, 10, 4.0), (1, 11, 2.0), (2, 10, 5.0), (3, 12, 1.0)],
        "user_id int, movie_id int, rating float")
    validation = spark.createDataFrame(
        [(1, 12, 4.5), (2, 11, 3.0), (2, 12, 4.0), (4, 10, 5.0)],
        "user_id int, movie_id int, rating float")
    return training.persist(), validation.persist()


def as_dict(frame, column) -> dict[int, list]:
    return {r["user_id"]: sorted(r[column]) for r in frame.collect()}


def test_user_lists_hold_each_users_movies_by_split(splits):
    lists = user_lists(*splits)
    assert as_dict(lists, "trained") == {1: [10, 11], 2: [10], 3: [12], 4: []}
    validated = {r["user_id"]: sorted((v["movie_id"], v["rating"]) for v in r["validated"])
                 for r in lists.collect()}
    assert validated == {1: [(12, 4.5)], 2: [(11, 3.0), (12, 4.0)], 3: [], 4: [(10, 5.0)]}
    relevant, held = held_columns(4.0)
    judged = lists.select("user_id", relevant, held)
    assert as_dict(judged, "relevant") == {1: [12], 2: [12], 3: [], 4: [10]}
    assert as_dict(judged, "held") == {1: [12], 2: [11, 12], 3: [], 4: [10]}


def test_seen_lists_equal_the_grouped_pairs(splits):
    """The shared lists have a row for every user of either split (empty when none seen)."""
    training, validation = splits
    both = SeenLists(training, validation)
    assert as_dict(seen_lists(both), "seen") == \
        as_dict(seen_lists(rated_outside(training, validation)), "seen") == \
        {1: [10, 11, 12], 2: [10, 11, 12], 3: [12], 4: [10]}
    alone = SeenLists(training, validation, with_validation=False)
    assert as_dict(seen_lists(alone), "seen") == \
        as_dict(seen_lists(training), "seen") | {4: []}
    for seen, pairs in ((both, rated_outside(training, validation)), (alone, training)):
        assert sorted(map(tuple, seen.pairs().collect())) == \
            sorted(map(tuple, pairs.select("user_id", "movie_id").collect()))


def test_one_grouping_is_shared_and_the_oldest_beyond_keep_let_go(spark, splits, monkeypatch):
    monkeypatch.setattr(ul, "_KEPT", {})
    training, validation = splits
    first = user_lists(training, validation)
    assert first.is_cached
    assert user_lists(training, validation) is first  # the next step's grouping: the same one
    others = [spark.createDataFrame([(i, 1, 1.0)], "user_id int, movie_id int, rating float")
              for i in range(ul.KEEP)]
    for other in others:
        user_lists(other, validation)
    assert len(ul._KEPT) == ul.KEEP
    assert not first.is_cached
    assert user_lists(training, validation) is not first


def test_the_shared_lists_rank_and_judge_as_the_pairs_do(spark):
    """Recommendations, their judgement on test and a model's judgement on validation, each with
    the shared lists and with the pairs grouped on their own: the same answers."""
    rng = np.random.default_rng(8)
    rows = [(int(u), int(m), float(rng.choice([1.0, 3.0, 4.0, 5.0])))
            for u in range(1, 51) for m in rng.choice(np.arange(300, 360), 14, replace=False)]
    ratings = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating"])
    parts = np.random.default_rng(1).choice(3, len(ratings), p=[0.6, 0.2, 0.2])
    training, validation, test = (
        spark.createDataFrame(ratings[parts == i]).repartition(3).persist() for i in range(3))
    users = factors(spark, "id", {u: rng.normal(size=4).tolist() for u in range(1, 51)})
    items = factors(spark, "id", {m: rng.normal(size=4).tolist() for m in range(300, 360)})
    shared = SeenLists(training, validation)
    pairs = rated_outside(training, validation)

    recs = exact(recommend_on_executors(users, items, 5, shared), ["user_id", "rank"])
    want = exact(recommend_on_executors(users, items, 5, pairs), ["user_id", "rank"])
    pd.testing.assert_frame_equal(recs, want)

    counts = training.groupBy("movie_id").count().toPandas().sort_values("movie_id")
    catalogue = Catalogue(counts["movie_id"].to_numpy(np.int64), counts["count"].to_numpy(np.int64))
    table = spark.createDataFrame(recs)
    got = judge_on_executors(table, shared, test, catalogue, 5, 4.0)
    want = judge_on_executors(table, pairs, test, catalogue, 5, 4.0)
    assert got == want

    from pyspark.ml.recommendation import ALS
    model = ALS(userCol="user_id", itemCol="movie_id", ratingCol="rating", rank=3, maxIter=2,
                seed=1).fit(training)
    try:
        spark.conf.set(PATH_CONF, "executors")
        on_lists = judge_model_lists(model, training, validation, 5, 4.0, True)
        spark.conf.set(PATH_CONF, "driver")
        on_driver = judge_model_lists(model, training, validation, 5, 4.0, True)
    finally:
        spark.conf.unset(PATH_CONF)
    for a, b in zip(on_lists, on_driver, strict=True):
        assert a.name == b.name and a.coverage == b.coverage
        assert a.relevant.users_evaluated == b.relevant.users_evaluated > 0
        for protocol in ("relevant", "all_relevant"):
            for metric in ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k"):
                assert math.isclose(getattr(getattr(a, protocol), metric),
                                    getattr(getattr(b, protocol), metric), rel_tol=1e-9)
