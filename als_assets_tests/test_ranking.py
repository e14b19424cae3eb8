"""The lists judged on held-out ratings: coverage, popularity bias, overlap with most-popular,
both relevance protocols and the random floor, on hand-built cases with exact answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from als_assets.core.ranking import (
    Catalogue,
    HeldOut,
    judge,
    list_scores,
    popular_lists,
    random_lists,
)
from als_assets.core.topk import TopK


def lists(rows: dict[int, list[int]]) -> TopK:
    users, items, ranks = [], [], []
    for user, movies in sorted(rows.items()):
        for rank, movie in enumerate(movies, start=1):
            users.append(user)
            items.append(movie)
            ranks.append(rank)
    return TopK(np.array(users, np.int64), np.array(items, np.int64),
                np.zeros(len(users), np.float32), np.array(ranks, np.int32))


def pairs(rows):
    return (np.array([u for u, _ in rows], np.int64), np.array([m for _, m in rows], np.int64))


# counts: 100 -> 4, 101 -> 3, 102 -> 2, 103 -> 1, 104 -> 1
CATALOGUE = Catalogue(np.array([100, 101, 102, 103, 104]), np.array([4, 3, 2, 1, 1]))


def test_coverage_popularity_bias_and_overlap_by_hand():
    mine = lists({1: [103, 104], 2: [100, 102]})
    popular = lists({1: [103, 104], 2: [100, 101]})
    held = HeldOut(2, 4.0, None, pairs([(1, 103)]), pairs([(1, 103)]))
    s = list_scores("model", mine, held, CATALOGUE, popular)
    assert s.coverage == pytest.approx(4 / 5)  # 100, 102, 103, 104 of five movies
    assert s.popularity_bias == pytest.approx((1 + 1 + 4 + 2) / 4)
    assert s.popular_overlap == pytest.approx(3 / 4)  # (2, 102) is not in user 2's popular list
    same = list_scores("most_popular", popular, held, CATALOGUE, popular)
    assert same.popular_overlap == 1.0 and same.coverage == pytest.approx(4 / 5)
    assert same.popularity_bias == pytest.approx((1 + 1 + 4 + 3) / 4)


def test_both_relevance_protocols_by_hand():
    """User 1 rated 10 (3 stars) and 11 (5 stars) in the held-out part; user 2 only 22 (2
    stars). With relevance >= 4 only (1, 11) is relevant and user 2 is not evaluated; with every
    held-out rating relevant both users are."""
    mine = lists({1: [10, 11], 2: [20, 21]})
    held = HeldOut(2, 4.0, None, pairs([(1, 11)]), pairs([(1, 10), (1, 11), (2, 22)]))
    relevant = held.score(mine)
    assert relevant.users_evaluated == 1
    assert relevant.precision_at_k == pytest.approx(0.5)
    assert relevant.recall_at_k == pytest.approx(1.0)
    assert relevant.ndcg_at_k == pytest.approx(1 / math.log2(3))
    assert relevant.map_at_k == pytest.approx(0.5)  # hit at rank 2: (1/2) / min(R=1, K=2)
    every = held.score(mine, all_relevant=True)
    assert every.users_evaluated == 2
    assert every.precision_at_k == pytest.approx((1.0 + 0.0) / 2)
    assert every.ndcg_at_k == pytest.approx((1.0 + 0.0) / 2)
    assert every.recall_at_k == pytest.approx((1.0 + 0.0) / 2)


def test_held_out_collects_seen_relevant_and_all(spark):
    training = spark.createDataFrame([(1, 100, 4.0), (2, 101, 1.0)],
                                     "user_id int, movie_id int, rating float")
    test = spark.createDataFrame([(1, 101, 4.0), (1, 102, 3.5), (2, 100, 5.0)],
                                 "user_id int, movie_id int, rating float")
    held = HeldOut.collect(training, test, 3, 4.0, exclude_seen=True)
    assert sorted(zip(*held.seen, strict=True)) == [(1, 100), (2, 101)]
    assert sorted(zip(*held.relevant, strict=True)) == [(1, 101), (2, 100)]
    assert sorted(zip(*held.held, strict=True)) == [(1, 101), (1, 102), (2, 100)]
    assert HeldOut.collect(training, test, 3, 4.0, exclude_seen=False).seen is None


def test_random_lists_are_unseen_distinct_seeded_and_spread():
    users = np.arange(1, 201)
    seen = pairs([(u, 100) for u in users])  # every user has seen the most popular movie
    got = random_lists(users, CATALOGUE, 2, seen, seed=7)
    frame = got.to_pandas()
    assert (frame.groupby("user_id").size() == 2).all()
    assert not (frame["movie_id"] == 100).any()
    assert not frame.duplicated(["user_id", "movie_id"]).any()
    assert frame.groupby("user_id")["rank"].apply(list).map(lambda r: r == [1, 2]).all()
    again = random_lists(users, CATALOGUE, 2, seen, seed=7)
    assert np.array_equal(again.item_ids, got.item_ids)
    other = random_lists(users, CATALOGUE, 2, seen, seed=8)
    assert not np.array_equal(other.item_ids, got.item_ids)
    # 400 draws over four movies: each is drawn about 100 times (a draw that ignores a movie,
    # or favours one by index, shows here).
    counts = frame["movie_id"].value_counts()
    assert set(counts.index) == {101, 102, 103, 104}
    assert counts.min() > 60


def test_baselines_are_judged_on_the_models_users():
    mine = lists({1: [103], 3: [101]})  # user 2 has no list: no factors
    held = HeldOut(1, 4.0, pairs([(1, 100), (3, 100)]), pairs([(1, 101), (2, 100), (3, 101)]),
                   pairs([(1, 101), (2, 100), (3, 101)]))
    model, popular, rand = judge(mine, held, CATALOGUE)
    assert [s.name for s in (model, popular, rand)] == ["model", "most_popular", "random"]
    # most-popular gives users 1 and 3 movie 101 (100 is seen): two hits of two users; user 2
    # (no model list) is in no list.
    assert popular.relevant.users_evaluated == 2 and popular.relevant.precision_at_k == 1.0
    assert model.relevant.users_evaluated == 2 and model.relevant.precision_at_k == 0.5
    assert rand.relevant.users_evaluated == 2
    assert popular_lists(np.array([1, 3]), CATALOGUE, 1, held.seen).item_ids.tolist() == [101, 101]


def test_k_beyond_the_catalogue_is_a_warning_in_the_evaluation():
    from als_assets.core.evaluation import k_warnings

    assert k_warnings(10, 10) == ()
    [warning] = k_warnings(20, 7)
    assert warning.startswith("ranking.k = 20 is larger than the catalogue (7 movies")
