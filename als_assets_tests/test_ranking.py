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


def _popular_reference(user_ids, catalogue, k, seen):
    """The per-user loop the vectorized `popular_lists` replaced: one popularity order, each
    user's first k movies of it that the user has not seen."""
    order = catalogue.item_ids[np.lexsort((catalogue.item_ids, -catalogue.counts))]
    count_of = dict(zip(catalogue.item_ids.tolist(), catalogue.counts.tolist(), strict=True))
    watched: dict[int, set[int]] = {}
    for user, movie in zip(*(seen if seen is not None else ((), ())), strict=True):
        watched.setdefault(int(user), set()).add(int(movie))
    users, items, scores, ranks = [], [], [], []
    for user in user_ids.tolist():
        mine = [m for m in order.tolist() if m not in watched.get(user, set())][:k]
        users += [user] * len(mine)
        items += mine
        scores += [count_of[m] for m in mine]
        ranks += range(1, len(mine) + 1)
    return TopK(np.array(users, np.int64), np.array(items, np.int64),
                np.array(scores, np.float32), np.array(ranks, np.int32))


def _random_case(seed: int = 3):
    """40 movies with tied counts; 2,000 users: most saw a few movies (some outside the
    catalogue), a quarter saw all but 3 to 10, one saw everything, some saw nothing."""
    rng = np.random.default_rng(seed)
    catalogue = Catalogue(np.sort(rng.choice(500, 40, replace=False)).astype(np.int64),
                          rng.integers(1, 5, 40).astype(np.int64))
    user_ids = np.sort(rng.choice(100_000, 2_000, replace=False)).astype(np.int64)
    users, items = [], []
    for i, user in enumerate(user_ids.tolist()):
        if i % 10 == 0:
            continue  # no seen pairs
        left = rng.integers(3, 11) if i % 4 == 1 else rng.integers(28, 41)
        if i == 7:
            left = 0  # has seen the whole catalogue
        mine = rng.permutation(catalogue.item_ids)[:40 - left].tolist() + [1_000 + i % 7]
        mine += mine[:2]  # repeated pairs count once
        users += [user] * len(mine)
        items += mine
    return catalogue, user_ids, (np.array(users, np.int64), np.array(items, np.int64))


@pytest.mark.parametrize("spread", [1, 10**9])  # ids spread thin are found by binary search
@pytest.mark.parametrize("k", [0, 1, 5, 39, 40, 100])
def test_popular_lists_equal_the_per_user_reference(k, spread):
    catalogue, user_ids, seen = _random_case()
    catalogue = Catalogue(catalogue.item_ids * spread, catalogue.counts)
    user_ids, seen = user_ids * spread, (seen[0] * spread, seen[1] * spread)
    for s in (seen, None):
        want, got = _popular_reference(user_ids, catalogue, k, s), \
            popular_lists(user_ids, catalogue, k, s)
        for field in ("user_ids", "item_ids", "scores", "ranks"):
            a, b = getattr(want, field), getattr(got, field)
            assert a.dtype == b.dtype and np.array_equal(a, b), field


def _by_user(lists: TopK) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for user, movie in zip(lists.user_ids.tolist(), lists.item_ids.tolist(), strict=True):
        out.setdefault(user, []).append(movie)
    return out


def test_random_lists_are_uniform_distinct_unseen_and_alone_as_in_a_batch():
    """Both ways of drawing are checked: users with many unseen movies draw indices until they
    have k distinct, users with at most 2k unseen rank all of theirs by hash. Every unseen
    movie must be picked, and picked first, as often as uniform draws predict (within 5
    standard deviations; a mapping that skips or favours a movie is off by far more)."""
    k = 5
    catalogue, user_ids, seen = _random_case()
    got = random_lists(user_ids, catalogue, k, seen, seed=11)
    lists = _by_user(got)
    watched = _by_user(TopK(*seen, seen[0].astype(np.float32), seen[0].astype(np.int32)))
    movies = catalogue.item_ids.tolist()
    expected, expected_first = np.zeros(40), np.zeros(40)
    picked, first = np.zeros(40), np.zeros(40)
    variance = np.zeros(40)
    for user in user_ids.tolist():
        unseen = [i for i, m in enumerate(movies) if m not in set(watched.get(user, []))]
        mine = lists.get(user, [])
        assert len(mine) == min(k, len(unseen)) and len(set(mine)) == len(mine)
        assert {movies.index(m) for m in mine} <= set(unseen)
        n = len(mine)
        if not n:
            continue
        for i in unseen:
            expected[i] += n / len(unseen)
            expected_first[i] += 1 / len(unseen)
            variance[i] += n / len(unseen) * (1 - n / len(unseen))
        picked[[movies.index(m) for m in mine]] += 1
        first[movies.index(mine[0])] += 1
        scores = got.scores[got.user_ids == user]
        assert np.array_equal(scores, np.linspace(1.0, 0.0, n, endpoint=False, dtype=np.float32))
        assert got.ranks[got.user_ids == user].tolist() == list(range(1, n + 1))
    assert lists.get(int(user_ids[7]), []) == []  # saw everything
    assert np.all(np.abs(picked - expected) < 5 * np.sqrt(variance))
    assert np.all(np.abs(first - expected_first) < 5 * np.sqrt(expected_first))
    assert ((picked - expected) ** 2 / expected).sum() < 40 + 5 * np.sqrt(80)  # chi-square, 39 df

    # The same list for a user drawn alone, in any batch of users, in any order.
    for batch in (user_ids[[7]], user_ids[::7], user_ids[::-1], user_ids[[3, 1, 2]]):
        again = _by_user(random_lists(batch, catalogue, k, seen, seed=11))
        assert all(again.get(u, []) == lists.get(u, []) for u in batch.tolist())
    assert _by_user(random_lists(user_ids, catalogue, k, seen, seed=12)) != lists


def test_random_lists_edge_cases():
    catalogue, user_ids, seen = _random_case()
    empty = Catalogue(np.empty(0, np.int64), np.empty(0, np.int64))
    assert random_lists(user_ids, empty, 5, seen).item_ids.size == 0
    assert random_lists(user_ids[:0], catalogue, 5, seen).item_ids.size == 0
    assert random_lists(user_ids, catalogue, 0, seen).item_ids.size == 0
    # k beyond the catalogue: every user gets all of the catalogue, in a seeded order.
    everything = _by_user(random_lists(user_ids[:50], catalogue, 100, None))
    assert all(sorted(m) == catalogue.item_ids.tolist() for m in everything.values())
    assert len({tuple(m) for m in everything.values()}) > 45
