"""Ranking and regression metrics against hand-computed values and independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyspark.sql import types as T

from als_assets.core.metrics import (
    RankingMetrics,
    Relevant,
    ranking_metrics,
    ranking_metrics_of,
    regression_metrics,
    relevant_items,
)

RECS_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.IntegerType(), False),
        T.StructField("movie_id", T.IntegerType(), False),
        T.StructField("score", T.FloatType(), False),
        T.StructField("rank", T.IntegerType(), False),
    ]
)
PAIRS_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.IntegerType(), False),
        T.StructField("movie_id", T.IntegerType(), False),
    ]
)


def recs_frame(spark, recs: dict[int, list[int]]):
    """Recommendations in the package's layout: rank 1..n per user, descending score."""
    rows = [
        (user, item, float(len(items) - pos), pos + 1)
        for user, items in recs.items()
        for pos, item in enumerate(items)
    ]
    return spark.createDataFrame(rows, schema=RECS_SCHEMA)


def relevant_frame(spark, relevant: dict[int, set[int]]):
    rows = [(user, item) for user, items in relevant.items() for item in sorted(items)]
    return spark.createDataFrame(rows, schema=PAIRS_SCHEMA)


def reference_ranking(recs: dict[int, list[int]], relevant: dict[int, set[int]],
                      k: int) -> tuple[float, float, float, float, int]:
    """Plain-python Precision/Recall/NDCG/MAP@K (binary relevance, Spark's definitions)."""
    per_user = []
    for user, items in recs.items():
        rel = relevant.get(user, set())
        if not items or not rel:
            continue
        top = items[:k]
        hits = [1 if item in rel else 0 for item in top]
        n_hits = sum(hits)
        dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
        idcg = sum(1 / math.log2(i + 2) for i in range(min(len(rel), k)))
        ap, running = 0.0, 0
        for i, h in enumerate(hits):
            if h:
                running += 1
                ap += running / (i + 1)
        per_user.append((n_hits / k, n_hits / len(rel), dcg / idcg, ap / min(len(rel), k)))
    if not per_user:
        return (math.nan,) * 4 + (0,)
    arr = np.array(per_user)
    p, r, n, m = arr.mean(axis=0)
    return float(p), float(r), float(n), float(m), len(per_user)


# ---------------------------------------------------------------------------------------------
# Hand-built case, K = 3

HAND_RECS = {
    # Recs longer than K: items at ranks 4 and 5 must be cut (14 is relevant but at rank 5).
    1: [10, 11, 12, 13, 14],
    # One relevant item (fewer than K), hit at rank 3.
    2: [20, 21, 22],
    # Relevant items exist, no hit.
    3: [30, 31, 32],
    # Recs but no relevant items: excluded.
    5: [50, 51, 52],
    # Two relevant items, hits at ranks 1 and 3.
    6: [61, 99, 60],
}
HAND_RELEVANT = {
    1: {10, 12, 14},
    2: {22},
    3: {39},
    # Relevant items but no recommendations: excluded.
    4: {40, 41},
    6: {60, 61},
}


def hand_expected() -> RankingMetrics:
    lg3 = math.log2(3)
    # user 1: hits at ranks 1, 3 of K=3; R = 3
    p1, r1 = 2 / 3, 2 / 3
    n1 = (1 + 1 / 2) / (1 + 1 / lg3 + 1 / 2)
    m1 = (1 / 1 + 2 / 3) / 3
    # user 2: hit at rank 3; R = 1
    p2, r2, n2, m2 = 1 / 3, 1.0, (1 / 2) / 1, (1 / 3) / 1
    # user 3: no hit
    p3 = r3 = n3 = m3 = 0.0
    # user 6: hits at ranks 1, 3; R = 2
    p6, r6 = 2 / 3, 1.0
    n6 = (1 + 1 / 2) / (1 + 1 / lg3)
    m6 = (1 / 1 + 2 / 3) / 2
    return RankingMetrics(
        k=3,
        precision_at_k=(p1 + p2 + p3 + p6) / 4,
        recall_at_k=(r1 + r2 + r3 + r6) / 4,
        ndcg_at_k=(n1 + n2 + n3 + n6) / 4,
        map_at_k=(m1 + m2 + m3 + m6) / 4,
        users_evaluated=4,
    )


def assert_ranking_close(got: RankingMetrics, want: RankingMetrics, tol: float = 1e-9) -> None:
    assert got.k == want.k
    assert got.users_evaluated == want.users_evaluated
    for name in ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k"):
        assert getattr(got, name) == pytest.approx(getattr(want, name), abs=tol, rel=0), name


def test_ranking_metrics_hand_built(spark):
    got = ranking_metrics(recs_frame(spark, HAND_RECS), relevant_frame(spark, HAND_RELEVANT), 3)
    assert_ranking_close(got, hand_expected())


def test_hand_expected_matches_reference():
    p, r, n, m, users = reference_ranking(HAND_RECS, HAND_RELEVANT, 3)
    want = hand_expected()
    assert users == want.users_evaluated == 4
    assert (p, r, n, m) == pytest.approx(
        (want.precision_at_k, want.recall_at_k, want.ndcg_at_k, want.map_at_k), abs=1e-12)


def test_ranking_metrics_single_user_values(spark):
    """User 1 alone, to pin the per-user formulas (not only the mean)."""
    got = ranking_metrics(recs_frame(spark, {1: HAND_RECS[1]}),
                          relevant_frame(spark, {1: HAND_RELEVANT[1]}), 3)
    assert got.users_evaluated == 1
    assert got.precision_at_k == pytest.approx(2 / 3, abs=1e-12)
    assert got.recall_at_k == pytest.approx(2 / 3, abs=1e-12)
    assert got.ndcg_at_k == pytest.approx(1.5 / (1.5 + 1 / math.log2(3)), abs=1e-12)
    assert got.map_at_k == pytest.approx(5 / 9, abs=1e-12)


def test_ranking_metrics_k_larger_than_recs(spark):
    """K = 5 with three recs: precision still divides by K, IDCG/AP use min(R, K)."""
    got = ranking_metrics(recs_frame(spark, {7: [1, 2, 3]}),
                          relevant_frame(spark, {7: {2, 8, 9, 10, 11, 12}}), 5)
    assert got.users_evaluated == 1
    assert got.precision_at_k == pytest.approx(1 / 5, abs=1e-12)
    assert got.recall_at_k == pytest.approx(1 / 6, abs=1e-12)
    idcg = sum(1 / math.log2(i + 1) for i in range(1, 6))
    assert got.ndcg_at_k == pytest.approx((1 / math.log2(3)) / idcg, abs=1e-12)
    assert got.map_at_k == pytest.approx((1 / 2) / 5, abs=1e-12)


def test_ranking_metrics_no_overlapping_users_is_nan(spark):
    got = ranking_metrics(recs_frame(spark, {1: [1, 2]}), relevant_frame(spark, {2: {1}}), 2)
    assert got.users_evaluated == 0
    assert math.isnan(got.precision_at_k)
    assert math.isnan(got.recall_at_k)
    assert math.isnan(got.ndcg_at_k)
    assert math.isnan(got.map_at_k)


def test_perfect_ranking_scores_one(spark):
    got = ranking_metrics(recs_frame(spark, {1: [5, 6, 7], 2: [8, 9, 3]}),
                          relevant_frame(spark, {1: {5, 6, 7}, 2: {8, 9, 3}}), 3)
    assert (got.precision_at_k, got.recall_at_k, got.ndcg_at_k, got.map_at_k) == (
        pytest.approx(1.0, abs=1e-12),) * 4
    assert got.users_evaluated == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranking_metrics_matches_reference_random(spark, seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 8))
    n_items = 40
    recs: dict[int, list[int]] = {}
    relevant: dict[int, set[int]] = {}
    for user in range(1, 61):
        n_recs = int(rng.integers(0, 2 * k + 3))
        if n_recs:
            recs[user] = [int(x) for x in rng.permutation(n_items)[:n_recs]]
        n_rel = int(rng.integers(0, 9))
        if n_rel:
            relevant[user] = {int(x) for x in rng.choice(n_items, n_rel, replace=False)}
    p, r, n, m, users = reference_ranking(recs, relevant, k)
    assert users > 10  # the draw really exercises the metric
    got = ranking_metrics(recs_frame(spark, recs), relevant_frame(spark, relevant), k)
    assert_ranking_close(got, RankingMetrics(k, p, r, n, m, users))
    # The same relevant pairs prepared once (`Relevant`, as HeldOut does for every list it
    # scores), given with repeats: the same figures.
    rec_rows = [(u, i, rank) for u, items in recs.items() for rank, i in enumerate(items, 1)]
    ru, ri, rr = (np.array(col, dtype=np.int64) for col in zip(*rec_rows, strict=True))
    pairs = [(u, i) for u, items in relevant.items() for i in items]
    pu, pi = (np.array(col, dtype=np.int64) for col in zip(*pairs, strict=True))
    prepared = Relevant.of(np.r_[pu, pu[:5]], np.r_[pi, pi[:5]])
    assert prepared.keys.size == len(pairs)
    assert_ranking_close(ranking_metrics_of(ru, ri, rr, prepared, k),
                         RankingMetrics(k, p, r, n, m, users))


def test_relevant_items_threshold_and_distinct(spark):
    ratings = spark.createDataFrame(
        [(1, 10, 4.0), (1, 10, 4.5), (1, 11, 3.5), (2, 10, 5.0), (2, 12, 4.0), (3, 13, 1.0)],
        "user_id int, movie_id int, rating float",
    )
    got = sorted(tuple(r) for r in relevant_items(ratings, 4.0).collect())
    assert got == [(1, 10), (2, 10), (2, 12)]


# ---------------------------------------------------------------------------------------------
# Regression


def test_regression_metrics_hand_built(spark):
    preds = spark.createDataFrame(
        [(4.0, 3.0), (2.0, 4.0), (5.0, float("nan")), (1.0, 1.5)],
        "rating double, prediction double",
    )
    got = regression_metrics(preds)
    assert got.rows == 3
    assert got.rmse == pytest.approx(math.sqrt((1 + 4 + 0.25) / 3), abs=1e-12)
    assert got.mae == pytest.approx((1 + 2 + 0.5) / 3, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_metrics_matches_numpy(spark, seed):
    rng = np.random.default_rng(seed)
    n = 500
    rating = rng.integers(1, 11, n) / 2.0
    prediction = rating + rng.normal(0, 0.8, n)
    prediction[rng.random(n) < 0.15] = np.nan
    frame = spark.createDataFrame(
        [(float(a), float(b)) for a, b in zip(rating, prediction, strict=True)],
        "rating double, prediction double",
    )
    ok = ~np.isnan(prediction)
    err = prediction[ok] - rating[ok]
    got = regression_metrics(frame)
    assert got.rows == int(ok.sum())
    assert 0 < got.rows < n
    assert got.rmse == pytest.approx(float(np.sqrt(np.mean(err**2))), abs=1e-9, rel=0)
    assert got.mae == pytest.approx(float(np.mean(np.abs(err))), abs=1e-9, rel=0)


def test_regression_metrics_custom_columns(spark):
    frame = spark.createDataFrame([(3.0, 5.0), (2.0, 2.0)], "y double, yhat double")
    got = regression_metrics(frame, label="y", prediction="yhat")
    assert got.rows == 2
    assert got.rmse == pytest.approx(math.sqrt(2.0), abs=1e-12)
    assert got.mae == pytest.approx(1.0, abs=1e-12)


def test_regression_metrics_all_nan_is_nan(spark):
    frame = spark.createDataFrame([(3.0, float("nan")), (2.0, None)],
                                  "rating double, prediction double")
    got = regression_metrics(frame)
    assert got.rows == 0
    assert math.isnan(got.rmse)
    assert math.isnan(got.mae)
