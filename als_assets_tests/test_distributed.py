"""The executors' path gives the driver path's answers: the same lists row for row (ties
included), the same neighbours, the same judgement of the lists and the baselines; and the
switch rule picks the path it documents."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from als_assets.core import distributed
from als_assets.core.distributed import (
    PATH_CONF,
    choose_path,
    judge_on_executors,
    recommend_on_executors,
    similar,
    similar_items_on_executors,
)
from als_assets.core.ranking import Catalogue, HeldOut, judge, random_lists
from als_assets.core.topk import TopK, recommend_for_users, similar_items


def factors(spark, name: str, rows: dict[int, list[float]], partitions: int = 3):
    frame = spark.createDataFrame([(i, [float(x) for x in v]) for i, v in rows.items()],
                                  f"{name} int, features array<float>")
    return frame.repartition(partitions)


def exact(frame, keys) -> pd.DataFrame:
    return frame.toPandas().sort_values(keys).reset_index(drop=True)


@pytest.fixture(scope="module")
def tied(spark):
    """Integer factors: many exact score ties, which both paths must break by movie id."""
    rng = np.random.default_rng(3)
    users = {u: rng.integers(-2, 3, 3).tolist() for u in range(1, 41)}
    items = {m: rng.integers(-2, 3, 3).tolist() for m in range(100, 130)}
    items[131] = [0, 0, 0]  # scores 0 for everyone, a direction for no one
    seen = [(u, m) for u in users for m in items if (u * 7 + m) % 5 == 0]
    return (factors(spark, "id", users), factors(spark, "id", items),
            spark.createDataFrame(seen, "user_id int, movie_id int"))


def test_recommendations_are_the_driver_path_rows_ties_included(tied):
    users, items, seen = tied
    for k, pairs in ((5, seen), (30, seen), (4, None)):
        driver = exact(recommend_for_users(users, items, k, pairs), ["user_id", "rank"])
        executors = exact(recommend_on_executors(users, items, k, pairs), ["user_id", "rank"])
        pd.testing.assert_frame_equal(executors, driver)
        assert driver["user_id"].nunique() == 40
        # Ties broken by movie id: among equal scores, the lower id ranks first.
        tie = driver.groupby(["user_id", "score"])["movie_id"].apply(
            lambda m: m.is_monotonic_increasing)
        assert tie.all()


def test_seen_movies_are_left_out_on_the_executors(spark):
    users = factors(spark, "id", {1: [1.0], 2: [1.0]})
    items = factors(spark, "id", {10: [3.0], 11: [2.0], 12: [1.0]})
    seen = spark.createDataFrame([(1, 10), (1, 12), (2, 11), (3, 10)],
                                 "user_id int, movie_id int")
    got = exact(recommend_on_executors(users, items, 2, seen), ["user_id", "rank"])
    assert got[["user_id", "movie_id", "rank"]].values.tolist() == [
        [1, 11, 1], [2, 10, 1], [2, 12, 2]]


def test_neighbours_are_the_driver_path_rows(spark, tied):
    _, items, _ = tied
    eligible = np.array([m for m in range(100, 132) if m % 4], dtype=np.int64)
    driver = similar_items(items, eligible, 6).sort_values(["movie_id", "rank"]) \
        .reset_index(drop=True)
    frame = spark.createDataFrame(pd.DataFrame({"movie_id": eligible}))
    executors = exact(similar_items_on_executors(items, frame, 6), ["movie_id", "rank"])
    pd.testing.assert_frame_equal(executors, driver)
    assert 131 not in set(executors["movie_id"]) | set(executors["similar_movie_id"])


def test_similar_hands_back_local_rows_only_from_the_driver(spark, tied):
    """The asset reports on the driver path's pandas rows without a Spark job; the executors'
    path has none to hand back, and both frames hold the same rows."""
    _, items, _ = tied
    eligible = np.array([m for m in range(100, 132) if m % 3], dtype=np.int64)
    on_driver = similar(items, eligible, 4)
    assert on_driver.local is not None
    try:
        spark.conf.set(PATH_CONF, "executors")
        on_executors = similar(items, eligible, 4)
    finally:
        spark.conf.unset(PATH_CONF)
    assert on_executors.local is None
    keys = ["movie_id", "rank"]
    local = on_driver.local.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(exact(on_driver.frame, keys), local)
    pd.testing.assert_frame_equal(exact(on_executors.frame, keys), local)
    assert len(local) == 4 * local["movie_id"].nunique()


def test_the_judgement_is_the_driver_paths(spark):
    """Model, most-popular and random lists over users split across four partitions, scored
    with seen movies left out: every figure equals the driver's."""
    rng = np.random.default_rng(11)
    movies = np.arange(200, 260)
    rows = [(int(u), int(m), float(rng.choice([1.0, 3.0, 4.5, 5.0])))
            for u in range(1, 61) for m in rng.choice(movies, 12, replace=False)]
    ratings = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating"])
    training = ratings.sample(frac=0.7, random_state=1)
    test = ratings.drop(training.index)
    counts = training.groupby("movie_id").size()
    catalogue = Catalogue(counts.index.to_numpy(np.int64), counts.to_numpy(np.int64))
    users = {u: rng.normal(size=4).tolist() for u in range(1, 61) if u % 9}
    items = {int(m): rng.normal(size=4).tolist() for m in catalogue.item_ids}
    seen = spark.createDataFrame(training[["user_id", "movie_id"]])
    recs = recommend_for_users(factors(spark, "id", users), factors(spark, "id", items), 10,
                               seen)
    test_frame = spark.createDataFrame(test).repartition(4)

    held = HeldOut.collect(seen, test_frame, 10, 4.0, exclude_seen=True)
    want = judge(TopK.from_spark(recs), held, catalogue)
    got = judge_on_executors(recs.repartition(4), seen, test_frame, catalogue, 10, 4.0)
    assert [g.name for g in got] == ["model", "most_popular", "random"]
    for g, w in zip(got, want, strict=True):
        for protocol in ("relevant", "all_relevant"):
            a, b = getattr(g, protocol), getattr(w, protocol)
            assert a.users_evaluated == b.users_evaluated > 0
            for metric in ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k"):
                assert math.isclose(getattr(a, metric), getattr(b, metric), rel_tol=1e-12)
        assert g.coverage == w.coverage
        assert math.isclose(g.popularity_bias, w.popularity_bias, rel_tol=1e-12)
        assert math.isclose(g.popular_overlap, w.popular_overlap, rel_tol=1e-12)


def test_a_users_random_list_does_not_depend_on_who_else_is_ranked():
    catalogue = Catalogue(np.arange(50, dtype=np.int64), np.ones(50, dtype=np.int64))
    everyone = random_lists(np.arange(1, 30, dtype=np.int64), catalogue, 5, None)
    alone = random_lists(np.array([17], dtype=np.int64), catalogue, 5, None)
    mine = everyone.user_ids == 17
    assert everyone.item_ids[mine].tolist() == alone.item_ids.tolist()


def test_the_switch_rule_and_its_override(spark):
    assert choose_path(spark, 100, distributed.DRIVER_MAX_SCORES // 100) == "driver"
    assert choose_path(spark, 101, distributed.DRIVER_MAX_SCORES // 100) == "executors"
    try:
        spark.conf.set(PATH_CONF, "executors")
        assert choose_path(spark, 1, 1) == "executors"
        spark.conf.set(PATH_CONF, "sideways")
        with pytest.raises(ValueError, match="spark.als.topk.path = 'sideways'"):
            choose_path(spark, 1, 1)
    finally:
        spark.conf.unset(PATH_CONF)


def test_executors_path_rows_never_reach_the_driver_as_seen_pairs(spark, tied, monkeypatch):
    """The executors' path must not collect the seen pairs: `_seen_arrays` (the driver path's
    collect) is never called."""
    users, items, seen = tied
    from als_assets.core import topk

    def refuse(_):
        raise AssertionError("the seen pairs were collected to the driver")

    monkeypatch.setattr(topk, "_seen_arrays", refuse)
    assert recommend_on_executors(users, items, 3, seen).filter(F.col("rank") == 1).count() == 40


def test_a_models_validation_judgement_is_the_same_on_both_paths(spark):
    """What `als_model` reports on validation (`judge_model_lists`), forced down each path."""
    from pyspark.ml.recommendation import ALS

    from als_assets.core.distributed import judge_model_lists

    rng = np.random.default_rng(5)
    rows = [(int(u), int(m), float(rng.choice([2.0, 4.0, 5.0])))
            for u in range(40) for m in rng.choice(np.arange(80), 15, replace=False)]
    ratings = spark.createDataFrame(rows, "user_id int, movie_id int, rating float")
    training, validation = ratings.randomSplit([0.75, 0.25], seed=3)
    training, validation = training.persist(), validation.persist()
    model = ALS(userCol="user_id", itemCol="movie_id", ratingCol="rating", rank=4, maxIter=3,
                seed=1).fit(training)
    results = {}
    try:
        for path in ("driver", "executors"):
            spark.conf.set(PATH_CONF, path)
            results[path] = judge_model_lists(model, training, validation, 5, 4.0, True)
    finally:
        spark.conf.unset(PATH_CONF)
    for a, b in zip(results["executors"], results["driver"], strict=True):
        assert a.name == b.name and a.coverage == b.coverage
        assert a.relevant.users_evaluated == b.relevant.users_evaluated > 0
        assert math.isclose(a.relevant.ndcg_at_k, b.relevant.ndcg_at_k, rel_tol=1e-9)
        assert math.isclose(a.all_relevant.map_at_k, b.all_relevant.map_at_k, rel_tol=1e-9)
        assert math.isclose(a.popular_overlap, b.popular_overlap, rel_tol=1e-12)
