"""top_k skipping the candidates that cannot make a list (core/topk_bound.py): the same lists as
scoring every candidate, ties included, for a fraction of the scores."""

from __future__ import annotations

import numpy as np
import pytest

from als_assets.core import topk, topk_bound
from als_assets.core.topk import top_k

from .test_topk import as_triples, assert_same_top_k, reference_top_k


@pytest.fixture
def small_bound(monkeypatch):
    """The bound on catalogues small enough for a brute-force reference."""
    monkeypatch.setattr(topk_bound, "MIN_CANDIDATES", 64)
    monkeypatch.setattr(topk_bound, "PROBE_MIN", 16)
    monkeypatch.setattr(topk_bound, "PROBE_PER_K", 4)


def long_and_short(rng, n: int, rank: int, integers: bool) -> np.ndarray:
    """Candidates whose lengths spread as ALS factors' do: a few long, most short."""
    lengths = rng.lognormal(0.0, 0.7, size=(n, 1))
    values = rng.standard_normal((n, rank)) * lengths
    return np.round(values * 2) if integers else values


def count_scores(monkeypatch) -> list[int]:
    """Scores computed by the bounded path's blocks (np.matmul with `out`)."""
    counted: list[int] = []
    real = np.matmul

    def counting(a, b, *args, **kwargs):
        if "out" in kwargs:
            counted.append(kwargs["out"].size)
        return real(a, b, *args, **kwargs)

    monkeypatch.setattr(topk_bound.np, "matmul", counting)
    return counted


@pytest.mark.parametrize("k", [1, 3, 8])
def test_bounded_lists_equal_the_brute_force_ties_included(small_bound, monkeypatch, k):
    """Integer factors (exact sums, many ties at the k-th score), seen pairs, a query that has
    seen every long candidate (no bound: ranked in full), one of length zero and one whose
    scores are all negative (no candidate can be skipped for them)."""
    rng = np.random.default_rng(k)
    n_q, n_c = 40, 400
    queries = np.round(rng.standard_normal((n_q, 3)) * 2)
    candidates = long_and_short(rng, n_c, 3, integers=True)
    queries[4] = 0.0
    queries[9] = [1.0, 1.0, 1.0]
    candidates[candidates @ queries[9] > 0] *= -1  # every score of query 9 is <= 0
    longest = np.argsort(-np.linalg.norm(candidates, axis=1), kind="stable")
    ex_q = np.r_[rng.integers(0, n_q, 600), np.full(n_c - 2, 7)]
    ex_c = np.r_[rng.integers(0, n_c, 600), longest[: n_c - 2]]
    excluded = set(zip(ex_q.tolist(), ex_c.tolist(), strict=True))

    _, unbounded = topk_bound.bounded_top_k(queries, candidates, k, ex_q, ex_c)
    assert 7 in unbounded.tolist()
    scored = count_scores(monkeypatch)
    got = as_triples(top_k(queries, candidates, k, ex_q, ex_c))
    assert_same_top_k(got, reference_top_k(queries, candidates, k, excluded))
    assert len([c for q, c, _ in got if q == 7]) == min(k, 2)
    assert scored, "the bounded path was not taken"


def test_the_bound_scores_a_fraction_of_the_candidates_on_als_like_lengths(small_bound,
                                                                           monkeypatch):
    rng = np.random.default_rng(3)
    queries = rng.standard_normal((300, 10)).astype(np.float32)
    candidates = long_and_short(rng, 5000, 10, integers=False).astype(np.float32)
    ex_q, ex_c = rng.integers(0, 300, 20_000), rng.integers(0, 5000, 20_000)
    full = top_k(queries, candidates, 10, ex_q, ex_c, block_rows=64)
    scored = count_scores(monkeypatch)
    bounded = top_k(queries, candidates, 10, ex_q, ex_c)
    np.testing.assert_array_equal(bounded[0], full[0])
    np.testing.assert_array_equal(bounded[1], full[1])
    np.testing.assert_allclose(bounded[2], full[2], rtol=1e-6)
    assert 0 < sum(scored) < 0.5 * 300 * 5000


def test_candidates_of_one_length_are_ranked_in_full(small_bound):
    """Unit vectors (the cosine similarity's candidates): no length to skip by."""
    rng = np.random.default_rng(4)
    unit = rng.standard_normal((500, 4))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    assert topk_bound.bounded_top_k(unit[:20], unit, 5, None, None) is None
    got = as_triples(top_k(unit[:20], unit, 5))
    assert_same_top_k(got, reference_top_k(unit[:20], unit, 5))


def test_small_catalogues_and_large_k_are_ranked_in_full():
    rng = np.random.default_rng(5)
    candidates = long_and_short(rng, topk_bound.MIN_CANDIDATES - 1, 4, integers=False)
    assert topk_bound.bounded_top_k(candidates[:3], candidates, 10, None, None) is None
    candidates = long_and_short(rng, topk_bound.MIN_CANDIDATES * 2, 4, integers=False)
    k = candidates.shape[0] // (4 * topk_bound.PROBE_PER_K) + 1  # the probe past a quarter
    assert topk_bound.bounded_top_k(candidates[:3], candidates, k, None, None) is None
    assert topk_bound.bounded_top_k(candidates[:3], candidates, 10, None, None) is not None


def test_the_slack_covers_float32_rounding():
    """A float32 dot product of `rank` terms is off by at most about rank x 2**-24 x |q| x |c|;
    the slack is far above that, so no column of a list is skipped for rounding."""
    rng = np.random.default_rng(6)
    for rank in (3, 10, 50, 200):
        q = rng.standard_normal((200, rank)).astype(np.float32)
        c = (rng.standard_normal((300, rank)) * 1e3).astype(np.float32)
        err = np.abs((q @ c.T).astype(np.float64) - q.astype(np.float64) @ c.astype(np.float64).T)
        q_norms = np.linalg.norm(q.astype(np.float64), axis=1)
        allowance = topk_bound.slack(q_norms, float(np.linalg.norm(c, axis=1).max()), rank)
        assert (err.max(axis=1) * 16 < allowance).all()


def test_block_rows_still_asks_for_the_full_ranking(small_bound, monkeypatch):
    calls = []
    monkeypatch.setattr(topk, "bounded_top_k", lambda *a: calls.append(a) or None)
    rng = np.random.default_rng(7)
    candidates = long_and_short(rng, 300, 3, integers=False)
    top_k(candidates[:5], candidates, 3, block_rows=2)
    assert calls == []
    top_k(candidates[:5], candidates, 3)
    assert len(calls) == 1
