"""Blocked top-k, item-item cosine neighbours and recommendations against numpy references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import types as T

from als_assets.assets.similarity import neighbours_markdown, showcase_movies
from als_assets.core import topk
from als_assets.core.ranking import Catalogue, popular_lists
from als_assets.core.topk import (
    RECS_SCHEMA,
    SIMILARITY_SCHEMA,
    _top_k_indices,
    rank_similar_items,
    recommend_for_users,
    top_k,
)

FACTORS_SCHEMA = T.StructType(
    [
        T.StructField("id", T.IntegerType(), False),
        T.StructField("features", T.ArrayType(T.FloatType(), False), False),
    ]
)


def reference_top_k(queries, candidates, k, excluded=frozenset()):
    """Brute force: full score matrix, each row sorted by (-score, candidate index)."""
    scores = queries.astype(np.float64) @ candidates.astype(np.float64).T
    out = []
    for q in range(queries.shape[0]):
        allowed = [c for c in range(candidates.shape[0]) if (q, c) not in excluded]
        order = sorted(allowed, key=lambda c, q=q: (-scores[q, c], c))[:k]
        out.extend((q, c, scores[q, c]) for c in order)
    return out


def as_triples(result):
    q, c, s = result
    assert q.shape == c.shape == s.shape
    return list(zip(q.tolist(), c.tolist(), s.tolist(), strict=True))


def assert_same_top_k(got, want, tol=1e-9):
    assert [(q, c) for q, c, _ in got] == [(q, c) for q, c, _ in want]
    np.testing.assert_allclose([s for *_, s in got], [s for *_, s in want], rtol=0, atol=tol)


# ---------------------------------------------------------------------------------------------
# top_k


@pytest.mark.parametrize(
    ("seed", "n_q", "n_c", "k", "block_rows"),
    [
        (0, 23, 37, 5, 4),  # several blocks, last one partial
        (1, 10, 12, 12, 3),  # k == candidates
        (2, 9, 6, 10, 2),  # k larger than candidates
        (3, 17, 50, 1, 5),
        (4, 31, 40, 7, 31),  # exactly one block
        (5, 8, 20, 4, 100),  # block larger than the queries
    ],
)
def test_top_k_matches_bruteforce(seed, n_q, n_c, k, block_rows):
    rng = np.random.default_rng(seed)
    queries = rng.standard_normal((n_q, 4))
    candidates = rng.standard_normal((n_c, 4))
    # Exclusions in random order, some repeated, a few queries losing most candidates.
    ex_rows = rng.integers(0, n_q, 3 * n_q)
    ex_cols = rng.integers(1, n_c, 3 * n_q)  # candidate 0 is never excluded
    heavy = np.repeat(np.arange(0, n_q, 5), n_c - 1)
    heavy_cols = np.tile(np.arange(1, n_c), len(range(0, n_q, 5)))
    ex_rows = np.concatenate([ex_rows, heavy, ex_rows[:4]])
    ex_cols = np.concatenate([ex_cols, heavy_cols, ex_cols[:4]])
    excluded = set(zip(ex_rows.tolist(), ex_cols.tolist(), strict=True))

    got = as_triples(top_k(queries, candidates, k, ex_rows, ex_cols, block_rows=block_rows))
    want = reference_top_k(queries, candidates, k, excluded)
    assert_same_top_k(got, want)
    # Queries with all but candidate 0 excluded get exactly that one candidate.
    for q in range(0, n_q, 5):
        assert [c for qq, c, _ in got if qq == q] == [0]


def test_top_k_default_blocks_reuse_one_buffer(monkeypatch):
    """The default block size (from BLOCK_SCORES): 16-row blocks here, the last one partial,
    all scored into one reused buffer; what a block keeps must not change with the next."""
    monkeypatch.setattr(topk, "BLOCK_SCORES", 64)
    assert topk.block_rows_for(50) == 16
    rng = np.random.default_rng(21)
    queries = rng.standard_normal((70, 4)).astype(np.float32)
    candidates = rng.standard_normal((50, 4)).astype(np.float32)
    ex_rows, ex_cols = rng.integers(0, 70, 200), rng.integers(0, 50, 200)
    excluded = set(zip(ex_rows.tolist(), ex_cols.tolist(), strict=True))
    got = as_triples(top_k(queries, candidates, 7, ex_rows, ex_cols))
    assert_same_top_k(got, reference_top_k(queries, candidates, 7, excluded), tol=1e-5)


def test_top_k_without_exclusions_matches_bruteforce():
    rng = np.random.default_rng(11)
    queries = rng.standard_normal((13, 3)).astype(np.float32)
    candidates = rng.standard_normal((29, 3)).astype(np.float32)
    got = as_triples(top_k(queries, candidates, 6, block_rows=4))
    want = reference_top_k(queries, candidates, 6)
    assert_same_top_k(got, want, tol=1e-5)
    assert len(got) == 13 * 6


def test_top_k_output_layout_hand_built():
    queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    candidates = np.array([[3.0, 0.0], [1.0, 5.0], [2.0, 2.0], [-1.0, 4.0]])
    q, c, s = top_k(queries, candidates, 3, np.array([1]), np.array([1]), block_rows=1)
    assert q.tolist() == [0, 0, 0, 1, 1, 1]
    # query 0: scores [3, 1, 2, -1]; query 1: [0, 5, 2, 4] with candidate 1 excluded
    assert c.tolist() == [0, 2, 1, 3, 2, 0]
    assert s.tolist() == [3.0, 2.0, 1.0, 4.0, 2.0, 0.0]


def test_top_k_ties_inside_k_break_by_candidate_index():
    # Scores for the one query: [1, 3, 3, 0, 3, 2]; the three 3s are strictly above the rest.
    queries = np.array([[1.0]])
    candidates = np.array([[1.0], [3.0], [3.0], [0.0], [3.0], [2.0]])
    _, c, s = top_k(queries, candidates, 3, block_rows=1)
    assert c.tolist() == [1, 2, 4]
    assert s.tolist() == [3.0, 3.0, 3.0]
    # k >= candidates: full sort, ties by index.
    _, c, _ = top_k(queries, candidates, 10)
    assert c.tolist() == [1, 2, 4, 5, 0, 3]


def test_top_k_ties_at_the_k_boundary_break_by_candidate_index():
    _, c, _ = top_k(np.array([[1.0]]), np.array([[0.0], [0.0], [1.0], [1.0]]), 1)
    assert c.tolist() == [2]
    rng = np.random.default_rng(0)
    queries = rng.integers(-2, 3, (12, 3)).astype(np.float64)
    candidates = rng.integers(-2, 3, (40, 3)).astype(np.float64)
    got = as_triples(top_k(queries, candidates, 5, block_rows=5))
    assert_same_top_k(got, reference_top_k(queries, candidates, 5))


@pytest.mark.parametrize("values", ["floats", "few integers", "one value"])
def test_top_k_indices_choose_the_k_largest_ties_to_the_lowest_index(values):
    """Against a stable sort: rows with and without ties at the k-th score, -inf included."""
    rng = np.random.default_rng(5)
    scores = {"floats": rng.standard_normal((40, 30)),
              "few integers": rng.integers(-2, 3, (40, 30)).astype(np.float64),
              "one value": np.ones((40, 30))}[values]
    scores[::7, ::3] = -np.inf
    for k in (1, 4, 29):
        got = np.sort(_top_k_indices(scores, k), axis=1)
        want = np.sort(np.argsort(-scores, axis=1, kind="stable")[:, :k], axis=1)
        np.testing.assert_array_equal(got, want)


def test_top_k_empty_inputs():
    q, c, s = top_k(np.zeros((0, 3)), np.ones((4, 3)), 2)
    assert q.size == c.size == s.size == 0
    q, c, s = top_k(np.ones((3, 3)), np.zeros((0, 3)), 2)
    assert q.size == c.size == s.size == 0


def test_top_k_everything_excluded_gives_no_rows_for_that_query():
    queries = np.array([[1.0], [2.0]])
    candidates = np.array([[1.0], [2.0], [3.0]])
    q, c, _ = top_k(queries, candidates, 2, np.array([0, 0, 0]), np.array([0, 1, 2]))
    assert q.tolist() == [1, 1]
    assert c.tolist() == [2, 1]


def test_large_catalogues_take_the_sampled_path_with_the_same_lists_ties_included(monkeypatch):
    """Past SAMPLE_MIN_K * k sampled columns, only the columns at or above a sample's k-th score
    are sorted. Integer factors make many exact ties, at the k-th score too; a query that has
    seen all but two candidates gets two rows; the brute-force reference must come out."""
    rng = np.random.default_rng(11)
    k, n_c = 5, topk.SAMPLE_STRIDE * topk.SAMPLE_MIN_K * 5 + 37
    queries = rng.integers(-6, 7, (30, 3)).astype(np.float32)
    candidates = rng.integers(-6, 7, (n_c, 3)).astype(np.float32)
    ex_q = rng.integers(0, 30, 400)
    ex_c = rng.integers(0, n_c, 400)
    ex_q = np.r_[ex_q, np.full(n_c - 2, 7)]
    ex_c = np.r_[ex_c, np.arange(2, n_c)]
    excluded = set(zip(ex_q.tolist(), ex_c.tolist(), strict=True))
    whole = []

    def partitioned(scores, k, _real=topk._top_k_indices):
        whole.append(scores.shape[0])
        return _real(scores, k)

    monkeypatch.setattr(topk, "_top_k_indices", partitioned)
    got = as_triples(top_k(queries, candidates, k, ex_q, ex_c, block_rows=8))
    assert sum(whole) < 10, f"{sum(whole)} of 30 rows were partitioned whole"
    assert_same_top_k(got, reference_top_k(queries, candidates, k, excluded))
    assert [c for q, c, _ in got if q == 7] == [0, 1]


def test_sampled_path_equals_whole_row_partitioning_on_float_scores(monkeypatch):
    rng = np.random.default_rng(12)
    queries = rng.normal(size=(300, 8)).astype(np.float32)
    candidates = rng.normal(size=(5000, 8)).astype(np.float32)
    ex_q, ex_c = rng.integers(0, 300, 20_000), rng.integers(0, 5000, 20_000)
    sampled = top_k(queries, candidates, 10, ex_q, ex_c, block_rows=64)
    monkeypatch.setattr(topk, "SAMPLE_MIN_K", 10**9)
    whole = top_k(queries, candidates, 10, ex_q, ex_c, block_rows=64)
    for a, b in zip(sampled, whole, strict=True):
        np.testing.assert_array_equal(a, b)


def test_mass_ties_fall_back_to_whole_rows(monkeypatch):
    """All scores equal: every column ties at the threshold, so the rows are partitioned
    whole; the k lowest candidate indices come out."""
    n_c = topk.SAMPLE_STRIDE * topk.SAMPLE_MIN_K * 10
    whole = []
    monkeypatch.setattr(topk, "_top_k_indices", lambda scores, k, _real=topk._top_k_indices:
                        whole.append(scores.shape[0]) or _real(scores, k))
    q, c, s = top_k(np.ones((4, 2), np.float32), np.zeros((n_c, 2), np.float32), 3)
    assert whole == [4]
    assert q.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert c.tolist() == [0, 1, 2] * 4 and not s.any()


# ---------------------------------------------------------------------------------------------
# rank_similar_items


def factors_frame(spark, ids, matrix):
    rows = [(int(i), [float(x) for x in row]) for i, row in zip(ids, matrix, strict=True)]
    return spark.createDataFrame(rows, schema=FACTORS_SCHEMA)


def reference_similar(ids, matrix32, eligible, top_n):
    """Cosine neighbours among eligible non-zero items, in float64."""
    ids = np.asarray(ids)
    m = matrix32.astype(np.float64)
    keep = np.isin(ids, list(eligible)) & (np.linalg.norm(m, axis=1) > 0)
    ids, m = ids[keep], m[keep]
    order = np.argsort(ids)
    ids, m = ids[order], m[order]
    unit = m / np.linalg.norm(m, axis=1, keepdims=True)
    cos = unit @ unit.T
    out = {}
    for a in range(ids.size):
        others = sorted((b for b in range(ids.size) if b != a), key=lambda b, a=a: (-cos[a, b], b))
        out[int(ids[a])] = [(int(ids[b]), float(cos[a, b])) for b in others[:top_n]]
    return out


@pytest.mark.parametrize(("seed", "top_n"), [(0, 3), (1, 5), (2, 50)])
def test_rank_similar_items_matches_numpy_cosine(spark, seed, top_n):
    rng = np.random.default_rng(seed)
    n = 30
    ids = rng.permutation(np.arange(1000, 1000 + 3 * n, 3))  # sparse, unsorted ids
    matrix = rng.standard_normal((n, 4)).astype(np.float32)
    matrix[[3, 17]] = 0.0  # zero vectors: no direction, left out
    eligible = {int(i) for i in ids[rng.random(n) < 0.7]} | {int(ids[3]), int(ids[17])}
    eligible_with_unknown = sorted(eligible | {1, 2, 999_999})  # ids without factors
    got_frame = rank_similar_items(
        factors_frame(spark, ids, matrix),
        spark.createDataFrame([(i,) for i in eligible_with_unknown], "movie_id int"),
        top_n,
    )
    assert got_frame.schema == SIMILARITY_SCHEMA
    rows = sorted(tuple(r) for r in got_frame.collect())
    want = reference_similar(ids, matrix, eligible, top_n)

    got: dict[int, list[tuple[int, float]]] = {}
    for movie, similar, sim, rank in sorted(rows, key=lambda r: (r[0], r[3])):
        got.setdefault(movie, []).append((similar, sim))
        assert rank == len(got[movie])
    zero = {int(ids[3]), int(ids[17])}
    assert set(got) == set(want) == eligible - zero
    for movie, neighbours in want.items():
        assert [s for s, _ in got[movie]] == [s for s, _ in neighbours], movie
        np.testing.assert_allclose([v for _, v in got[movie]], [v for _, v in neighbours],
                                   rtol=0, atol=1e-5)
        assert movie not in [s for s, _ in got[movie]]
        assert not zero & {s for s, _ in got[movie]}
        assert {s for s, _ in got[movie]} <= eligible
    assert len(rows) == len(want) * min(top_n, len(want) - 1)


def test_rank_similar_items_hand_built(spark):
    factors = factors_frame(
        spark,
        [5, 6, 7, 8, 9],
        np.array([[1, 0], [2, 0], [1, 1], [0, 0], [-1, 0]], dtype=np.float32),
    )
    eligible = spark.createDataFrame([(5,), (6,), (7,), (8,)], "movie_id int")  # 9 not eligible
    rows = sorted(tuple(r) for r in rank_similar_items(factors, eligible, 5).collect())
    c = float(np.float32(1 / np.sqrt(2)))
    assert [(a, b, rank) for a, b, _, rank in rows] == [
        (5, 6, 1), (5, 7, 2), (6, 5, 1), (6, 7, 2), (7, 5, 1), (7, 6, 2)]
    np.testing.assert_allclose([s for _, _, s, _ in rows], [1.0, c, 1.0, c, c, c], atol=1e-6)


# ---------------------------------------------------------------------------------------------
# recommend_for_users / popular_lists


def test_recommend_for_users_excludes_seen(spark):
    rng = np.random.default_rng(7)
    user_ids = rng.permutation(np.arange(1, 41) * 7)
    item_ids = rng.permutation(np.arange(1, 61) * 11)
    users = rng.standard_normal((40, 3)).astype(np.float32)
    items = rng.standard_normal((60, 3)).astype(np.float32)
    seen_pairs = {(int(user_ids[u]), int(item_ids[i]))
                  for u, i in zip(rng.integers(0, 40, 400), rng.integers(0, 60, 400), strict=True)}
    # Pairs with an unknown user or item are ignored.
    seen_rows = sorted(seen_pairs) + [(123_456, int(item_ids[0])), (int(user_ids[0]), 654_321)]
    seen = spark.createDataFrame(seen_rows, "user_id int, movie_id int")
    k = 8
    recs = recommend_for_users(factors_frame(spark, user_ids, users),
                               factors_frame(spark, item_ids, items), k, seen)
    assert recs.schema == RECS_SCHEMA
    got = sorted(tuple(r) for r in recs.collect())

    u_order, i_order = np.argsort(user_ids), np.argsort(item_ids)
    su, si = user_ids[u_order], item_ids[i_order]
    excluded = {(int(np.searchsorted(su, u)), int(np.searchsorted(si, i)))
                for u, i in seen_pairs}
    ref = reference_top_k(users[u_order], items[i_order], k, excluded)
    want = []
    for q, c, s in ref:
        rank = sum(1 for qq, *_ in want if qq == int(su[q])) + 1
        want.append((int(su[q]), int(si[c]), s, rank))
    want.sort()
    assert [(u, i, r) for u, i, _, r in got] == [(u, i, r) for u, i, _, r in want]
    np.testing.assert_allclose([s for _, _, s, _ in got], [s for _, _, s, _ in want], atol=1e-5)
    assert not {(u, i) for u, i, _, _ in got} & seen_pairs
    assert len(got) == 40 * k


def test_recommend_for_users_without_seen_is_plain_top_k(spark):
    users = factors_frame(spark, [2, 1], np.array([[0, 1], [1, 0]], dtype=np.float32))
    items = factors_frame(spark, [30, 10, 20],
                          np.array([[1, 1], [3, 0], [0, 2]], dtype=np.float32))
    got = sorted(tuple(r) for r in recommend_for_users(users, items, 2).collect())
    assert got == [(1, 10, 3.0, 1), (1, 30, 1.0, 2), (2, 20, 2.0, 1), (2, 30, 1.0, 2)]


def popularity_training(spark):
    # counts: 100 -> 4, 101 -> 3, 102 -> 2, 103 -> 1, 104 -> 1
    rows = [(1, 100), (1, 101), (1, 102), (2, 100), (2, 101), (3, 100), (3, 103),
            (4, 100), (4, 101), (4, 102), (4, 104)]
    return spark.createDataFrame([(u, m, 4.0) for u, m in rows],
                                 "user_id int, movie_id int, rating float")


def rec_lists(lists):
    out: dict[int, list[tuple[int, float]]] = {}
    for user, movie, score, rank in zip(lists.user_ids.tolist(), lists.item_ids.tolist(),
                                        lists.scores.tolist(), lists.ranks.tolist(), strict=True):
        out.setdefault(user, []).append((rank, movie, score))
    return {u: [(m, s) for _, m, s in sorted(v)] for u, v in out.items()}


def seen_pairs(frame):
    pdf = frame.select("user_id", "movie_id").toPandas()
    return pdf["user_id"].to_numpy(np.int64), pdf["movie_id"].to_numpy(np.int64)


def test_popular_lists(spark):
    training = popularity_training(spark)
    users = np.array([1, 2, 3, 4, 5])
    catalogue = Catalogue.of(training)
    got = rec_lists(popular_lists(users, catalogue, 3, seen_pairs(training)))
    assert got == {
        1: [(103, 1.0), (104, 1.0)],
        2: [(102, 2.0), (103, 1.0), (104, 1.0)],
        3: [(101, 3.0), (102, 2.0), (104, 1.0)],
        4: [(103, 1.0)],
        5: [(100, 4.0), (101, 3.0), (102, 2.0)],
    }
    unseen = rec_lists(popular_lists(users, catalogue, 2, None))
    assert unseen == {u: [(100, 4.0), (101, 3.0)] for u in (1, 2, 3, 4, 5)}


def test_popular_lists_tie_at_k_prefer_lowest_movie_id(spark):
    # counts: movies 1..4 have one rating, movie 5 two: k = 3 must give 5, 1, 2.
    rows = [(9, m) for m in range(1, 6)] + [(8, 5)]
    training = spark.createDataFrame(rows, "user_id int, movie_id int")
    assert rec_lists(popular_lists(np.array([1]), Catalogue.of(training), 3, None)) == {
        1: [(5, 2.0), (1, 1.0), (2, 1.0)]}


# ---------------------------------------------------------------------------------------------
# The similarity asset's report: showcase movies and the neighbours markdown


def neighbour_table(pairs):
    """(movie, similar, similarity) triples, ranked per movie in the order given."""
    rows, rank = [], {}
    for movie, similar, sim in pairs:
        rank[movie] = rank.get(movie, 0) + 1
        rows.append((movie, similar, sim, rank[movie]))
    return pd.DataFrame(rows, columns=["movie_id", "similar_movie_id", "similarity", "rank"])


def test_showcase_prefers_the_notebooks_movies_else_the_most_rated_with_neighbours():
    counts = pd.DataFrame({"movie_id": [1, 5, 6, 7, 8, 318], "count": [3, 9, 9, 4, 50, 1]})
    with_known = neighbour_table([(318, 5, 0.9), (5, 318, 0.9), (1, 5, 0.5)])
    assert showcase_movies(with_known, counts) == [1, 318]  # the notebook's order
    # Without them: most training ratings first, ties by id; movie 8 has no neighbours.
    without = neighbour_table([(7, 5, 0.1), (6, 5, 0.2), (5, 6, 0.2), (9, 5, 0.3)])
    assert showcase_movies(without, counts) == [5, 6, 7]


def test_neighbours_markdown_lists_titles_in_rank_order(spark):
    movies = spark.createDataFrame([(1, "Toy Story (1995)"), (2, "Jumanji (1995)"),
                                    (3, "Heat (1995)")], "movie_id int, title string")
    table = neighbour_table([(1, 3, 0.91), (1, 4, 0.5), (2, 1, 0.25)])
    md = neighbours_markdown(table, movies, [1])
    assert md.splitlines()[:5] == [
        "**Toy Story (1995)** (movie 1)", "", "| # | movie | similarity |", "|---:|---|---:|",
        "| 1 | Heat (1995) | 0.910 |"]
    assert "| 2 | 4 | 0.500 |" in md  # no title: the id
    assert "Jumanji" not in md
