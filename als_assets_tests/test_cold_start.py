"""Cold-start report: NaN causes and every fallback RMSE against a hand-computed reference."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
from pyspark.ml.recommendation import ALS

from als_assets.core.cold_start import (
    ITEM_BIAS_SHRINKAGE,
    USER_BIAS_SHRINKAGE,
    bias_baseline,
    cold_start_report,
)

SCHEMA = "user_id int, movie_id int, rating float"

# Users 1-3 and movies 10-12 are known; every rating is exact in float32.
TRAINING = [
    (1, 10, 4.0), (1, 11, 3.0), (1, 12, 5.0),
    (2, 10, 3.5), (2, 11, 2.0),
    (3, 10, 2.5), (3, 11, 4.5), (3, 12, 1.0),
]
KNOWN_USERS = {u for u, _, _ in TRAINING}
KNOWN_ITEMS = {m for _, m, _ in TRAINING}

MIXED_TEST = [
    (1, 11, 3.5), (2, 12, 4.0), (3, 10, 3.0),  # scored by the model
    (4, 10, 4.0), (4, 12, 2.5),  # unknown user only
    (1, 13, 3.0),  # unknown movie only
    (5, 14, 1.5),  # both unknown
]
ITEMS_ONLY_TEST = [(1, 11, 3.5), (2, 13, 4.0), (3, 14, 2.0), (2, 15, 5.0)]
USERS_ONLY_TEST = [(1, 12, 4.0), (4, 10, 4.0), (5, 11, 2.5)]
WARM_TEST = [(1, 11, 3.5), (2, 12, 4.0), (3, 10, 3.0)]


@pytest.fixture(scope="module")
def training(spark):
    return spark.createDataFrame(TRAINING, SCHEMA)


@pytest.fixture(scope="module")
def model(training):
    als = ALS(userCol="user_id", itemCol="movie_id", ratingCol="rating", rank=2, maxIter=5,
              seed=1, coldStartStrategy="drop")  # the report must switch it to "nan"
    return als.fit(training)


def model_predictions(model, test_df) -> dict[tuple[int, int], float]:
    nan_model = model.copy({model.coldStartStrategy: "nan"})
    return {(r["user_id"], r["movie_id"]): float(r["prediction"])
            for r in nan_model.transform(test_df).collect()}


def reference(test_rows, predictions):
    """Pure-python version of the report's numbers (shrinkage constants from the module)."""
    mu = sum(r for _, _, r in TRAINING) / len(TRAINING)
    by_item, by_user = defaultdict(list), defaultdict(list)
    for u, m, r in TRAINING:
        by_item[m].append(r)
        by_user[u].append(r)
    item_mean = {m: sum(v) / len(v) for m, v in by_item.items()}
    user_mean = {u: sum(v) / len(v) for u, v in by_user.items()}
    b_i = {m: sum(r - mu for r in v) / (len(v) + ITEM_BIAS_SHRINKAGE) for m, v in by_item.items()}
    b_u = {}
    for u in by_user:
        resid = [r - mu - b_i[m] for uu, m, r in TRAINING if uu == u]
        b_u[u] = sum(resid) / (len(resid) + USER_BIAS_SHRINKAGE)

    def bias(u, m):
        return mu + b_u.get(u, 0.0) + b_i.get(m, 0.0)

    def rmse(pairs):
        pairs = list(pairs)
        return math.sqrt(sum((p - r) ** 2 for p, r in pairs) / len(pairs)) if pairs else math.nan

    rows = [(u, m, r, predictions[(u, m)]) for u, m, r in test_rows]
    warm = [(u, m, r, p) for u, m, r, p in rows if not math.isnan(p)]

    def fill(f):
        return rmse((f(u, m) if math.isnan(p) else p, r) for u, m, r, p in rows)

    return {
        "mu": mu,
        "nan": len(rows) - len(warm),
        "rmse_drop": rmse((p, r) for _, _, r, p in warm),
        "rmse_global_mean_fill": fill(lambda u, m: mu),
        "rmse_item_mean_fill": fill(lambda u, m: item_mean.get(m, mu)),
        "rmse_user_mean_fill": fill(lambda u, m: user_mean.get(u, mu)),
        "rmse_bias_fill": fill(bias),
        "rmse_global_mean_only": rmse((mu, r) for _, _, r, _ in rows),
        "rmse_bias_only": rmse((bias(u, m), r) for u, m, r, _ in rows),
    }


def assert_nan_exactly_where_cold(test_rows, predictions):
    for u, m, _ in test_rows:
        cold = u not in KNOWN_USERS or m not in KNOWN_ITEMS
        assert math.isnan(predictions[(u, m)]) == cold, (u, m)


def assert_report_matches(report, want):
    assert report.global_mean == pytest.approx(want["mu"], abs=1e-12)
    for name, value in want.items():
        if name.startswith("rmse_"):
            assert getattr(report, name) == pytest.approx(value, abs=1e-9, rel=0), name


def test_bias_baseline_hand_values(training):
    mu, item_bias, user_bias = bias_baseline(training)
    assert mu == pytest.approx(25.5 / 8, abs=1e-12)
    items = {r["movie_id"]: (r["b_i"], r["item_mean"]) for r in item_bias.collect()}
    # movie 10: ratings 4.0, 3.5, 2.5 -> sum(r - mu) = 10 - 3 mu, shrunk by 3 + 25
    assert items[10][0] == pytest.approx((10.0 - 3 * mu) / (3 + 25), abs=1e-12)
    assert items[10][1] == pytest.approx(10.0 / 3, abs=1e-12)
    assert items[12][0] == pytest.approx((6.0 - 2 * mu) / (2 + 25), abs=1e-12)
    users = {r["user_id"]: (r["b_u"], r["user_mean"]) for r in user_bias.collect()}
    b_i = {m: v[0] for m, v in items.items()}
    assert users[2][0] == pytest.approx(
        ((3.5 - mu - b_i[10]) + (2.0 - mu - b_i[11])) / (2 + 10), abs=1e-12)
    assert users[2][1] == pytest.approx(2.75, abs=1e-12)
    assert (ITEM_BIAS_SHRINKAGE, USER_BIAS_SHRINKAGE) == (25.0, 10.0)


def test_mixed_cold_start_report(spark, training, model):
    test_df = spark.createDataFrame(MIXED_TEST, SCHEMA)
    preds = model_predictions(model, test_df)
    assert_nan_exactly_where_cold(MIXED_TEST, preds)
    report = cold_start_report(model, training, test_df)

    assert report.test_rows == 7
    assert report.nan_predictions == 4
    assert report.nan_share == pytest.approx(4 / 7, abs=1e-12)
    assert (report.nan_unknown_user_only, report.nan_unknown_item_only,
            report.nan_unknown_both) == (2, 1, 1)
    want = reference(MIXED_TEST, preds)
    assert want["nan"] == 4
    assert_report_matches(report, want)
    # The global-mean numbers need no model: literal arithmetic as well.
    mu = 25.5 / 8
    assert report.rmse_global_mean_only == pytest.approx(
        math.sqrt(sum((mu - r) ** 2 for _, _, r in MIXED_TEST) / 7), abs=1e-9)
    assert report.explanation == (
        "4 test pairs get NaN: 1 have a movie with no training ratings, "
        "2 a user with no training ratings, 1 both.")
    assert set(report.rmse_fields()) == {k for k in want if k.startswith("rmse_")}
    table = report.fallback_table()
    assert f"| drop NaN rows (coldStartStrategy=drop) | {want['rmse_drop']:.4f} | 3 |" in table
    assert f"| fill NaN with the bias baseline | {want['rmse_bias_fill']:.4f} | 7 |" in table


def test_unknown_items_only_item_fill_equals_global_fill(spark, training, model):
    test_df = spark.createDataFrame(ITEMS_ONLY_TEST, SCHEMA)
    preds = model_predictions(model, test_df)
    assert_nan_exactly_where_cold(ITEMS_ONLY_TEST, preds)
    report = cold_start_report(model, training, test_df)
    assert (report.nan_predictions, report.nan_unknown_user_only,
            report.nan_unknown_item_only, report.nan_unknown_both) == (3, 0, 3, 0)
    want = reference(ITEMS_ONLY_TEST, preds)
    assert_report_matches(report, want)
    assert report.rmse_item_mean_fill == pytest.approx(report.rmse_global_mean_fill, abs=1e-12)
    assert report.rmse_user_mean_fill != pytest.approx(report.rmse_global_mean_fill, abs=1e-6)
    assert "item-mean fill falls back to the global mean" in report.explanation
    assert "its RMSE equals the global-mean fill's" in report.explanation
    assert report.explanation.startswith(
        "3 test pairs get NaN: 3 have a movie with no training ratings, "
        "0 a user with no training ratings, 0 both.")


def test_unknown_users_only_user_fill_equals_global_fill(spark, training, model):
    test_df = spark.createDataFrame(USERS_ONLY_TEST, SCHEMA)
    preds = model_predictions(model, test_df)
    assert_nan_exactly_where_cold(USERS_ONLY_TEST, preds)
    report = cold_start_report(model, training, test_df)
    assert (report.nan_predictions, report.nan_unknown_user_only,
            report.nan_unknown_item_only, report.nan_unknown_both) == (2, 2, 0, 0)
    want = reference(USERS_ONLY_TEST, preds)
    assert_report_matches(report, want)
    assert report.rmse_user_mean_fill == pytest.approx(report.rmse_global_mean_fill, abs=1e-12)
    assert "Every NaN row is an unknown user" in report.explanation
    assert "item-mean fill falls back" not in report.explanation


def test_warm_test_every_fill_equals_the_model(spark, training, model):
    test_df = spark.createDataFrame(WARM_TEST, SCHEMA)
    preds = model_predictions(model, test_df)
    assert_nan_exactly_where_cold(WARM_TEST, preds)
    report = cold_start_report(model, training, test_df)
    assert report.nan_predictions == 0
    assert report.nan_share == 0.0
    want = reference(WARM_TEST, preds)
    assert_report_matches(report, want)
    for name in ("rmse_global_mean_fill", "rmse_item_mean_fill", "rmse_user_mean_fill",
                 "rmse_bias_fill"):
        assert getattr(report, name) == pytest.approx(report.rmse_drop, abs=1e-12), name
    assert report.explanation.startswith("No test pair is cold")


def test_implicit_report_has_counts_but_no_rmse(spark, training, model):
    report = cold_start_report(model, training, spark.createDataFrame(MIXED_TEST, SCHEMA),
                               explicit=False)
    assert report.nan_predictions == 4
    assert report.rmse_fields() == {}
    assert report.rmse_drop is None and report.rmse_bias_only is None
    assert report.fallback_table() == (
        "Implicit model: predictions are preferences, so no RMSE is reported.")
