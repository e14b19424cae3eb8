"""Splits, interactions and tuning on tiny data."""

from dataclasses import replace

import pytest
from pyspark.sql import functions as F

from als_assets.core.experiments import AlsParams, ExperimentConfig, GridConfig, TuningConfig
from als_assets.core.modeling import (
    Splits,
    split_overlap_summary,
    split_ratings,
    to_interactions,
    tune,
)
from als_assets.core.sources import SyntheticSpec, synthetic_ratings


@pytest.fixture(scope="module")
def ratings(spark):
    return synthetic_ratings(spark, SyntheticSpec(n_ratings=3_000, seed=3)).cache()


def test_split_is_disjoint_complete_and_reproducible(ratings):
    parts = split_ratings(ratings, (0.6, 0.2, 0.2), 42)
    counts = split_overlap_summary(ratings, parts)
    assert counts["sum_of_splits"] == counts["distinct_pairs_in_splits"] == 3_000
    assert 0.55 < counts["training"] / 3_000 < 0.65
    again = split_ratings(ratings, (0.6, 0.2, 0.2), 42)
    assert again.test.exceptAll(parts.test).count() == 0
    assert split_ratings(ratings, (0.6, 0.2, 0.2), 7).test.exceptAll(parts.test).count() > 0


def test_overlapping_or_missing_rows_are_counted(ratings):
    parts = split_ratings(ratings, (0.6, 0.2, 0.2), 42)
    overlapping = Splits(parts.training, parts.validation,
                         parts.test.unionAll(parts.training.limit(5)))
    counts = split_overlap_summary(ratings, overlapping)
    assert counts["sum_of_splits"] - counts["distinct_pairs_in_splits"] == 5
    missing = Splits(parts.training, parts.validation, parts.test.limit(10))
    counts = split_overlap_summary(ratings, missing)
    assert counts["sum_of_splits"] == counts["distinct_pairs_in_splits"] < 3_000


def test_interactions_follow_the_threshold(spark):
    frame = spark.createDataFrame([(1, 1, 3.5, 0), (1, 2, 4.0, 0), (2, 1, 5.0, 0)],
                                  "user_id int, movie_id int, rating float, timestamp long")
    got = [r["rating"] for r in to_interactions(frame, 4.0).orderBy("user_id", "movie_id")
           .collect()]
    assert got == [0.0, 1.0, 1.0]


@pytest.mark.parametrize("method", ["holdout", "tvs", "cv"])
def test_tuning_scores_every_grid_point(ratings, method):
    parts = split_ratings(ratings, (0.6, 0.2, 0.2), 42)
    grid = GridConfig(rank=(2, 4), max_iter=(3,), reg_param=(0.1,))
    config = replace(ExperimentConfig(name="t"),
                     tuning=TuningConfig(method=method, grid=grid, num_folds=2, parallelism=2))
    result = tune(parts.training, parts.validation, config, blocks=2)
    assert [g.params for g in result.grid] == [AlsParams(2, 3, 0.1), AlsParams(4, 3, 0.1)]
    assert result.best_score == min(g.score for g in result.grid)
    assert result.metric == "rmse" and all(0.3 < g.score < 5.0 for g in result.grid), result.grid
    assert "| rank |" in result.markdown_table() and "**best**" in result.markdown_table()
    assert result.tuning_rows == parts.training.count()
    assert parts.training.filter(F.col("rating").isNull()).count() == 0
