"""Top-k by dot product that scores only the candidates that can still make a query's list.

A candidate's score for a query is at most |query| x |candidate| (Cauchy-Schwarz). So once a
query has a lower bound t on its k-th best score, every candidate with |candidate| below
t / |query| can be skipped, exactly. ALS factors differ a lot in length (a movie many users rated
highly has a long factor), so with the candidates sorted by length, longest first, a query's
list lies in a short prefix of them.

The bound comes from a probe: the query's k-th best score among the `probe_columns` longest
candidates (seen ones left out), a lower bound on its k-th best among all. Each query then needs
the prefix of candidates long enough to reach that bound; queries are ranked in blocks of
similar prefixes, each block scoring only its longest prefix. Within a prefix, the columns
scoring at least the bound hold the query's top k, ties at the k-th score included; they are
sorted by score, then by candidate index, as the full ranking sorts them, so the lists are the
same as scoring every candidate.

Rounding: scores are float32 sums of `rank` products, so a computed score may exceed the exact
dot product, and the probe and the block may round one score differently. The bound and the
prefix are widened by a slack far above that rounding (`slack`), which costs a few more columns
and never a missed one. Queries whose probe has fewer than k scores (most of its columns seen)
get no bound; the caller ranks them over every candidate.
"""

from __future__ import annotations

import numpy as np

# Candidates below this many: the full ranking is cheap, no probe.
MIN_CANDIDATES = 2048
# The probe: the longest PROBE_PER_K * k candidates, at least PROBE_MIN, at most a quarter of
# the catalogue (beyond that the full ranking is about as cheap).
PROBE_PER_K = 32
PROBE_MIN = 256
# Give up when the prefixes would cover more than this share of all scores (lengths too alike).
MAX_SHARE = 0.5
# A block's rows need prefixes at most this many times the shortest among them.
WIDEN = 1.25
# Scores per block (as topk.BLOCK_SCORES) and rows per block at most.
BLOCK_SCORES = 1 << 22
MAX_BLOCK_ROWS = 2048


def slack(query_norms: np.ndarray, longest: float, rank: int) -> np.ndarray:
    """Each query's rounding allowance: far above what float32 sums of `rank` products can be
    off by (about rank x 2**-24 of |query| x |longest candidate|)."""
    return query_norms * longest * max(1, rank) * 2.0**-18


def _within(lengths: np.ndarray) -> np.ndarray:
    return np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def bounded_top_k(queries: np.ndarray, candidates: np.ndarray, k: int,
                  exclude_rows: np.ndarray | None, exclude_cols: np.ndarray | None):
    """`topk.top_k`'s lists for the queries that get a bound, as ((query, candidate, score) flat
    arrays grouped by query and ordered by rank within each, the queries left without a bound);
    None when bounding does not pay (small or evenly long catalogue, prefixes too long).
    `k` is at least 1 and at most the number of candidates."""
    n_q, n_c = queries.shape[0], candidates.shape[0]
    probe = min(n_c, max(PROBE_MIN, PROBE_PER_K * k))
    if n_c < MIN_CANDIDATES or 4 * probe > n_c:
        return None
    norms = np.linalg.norm(candidates.astype(np.float64), axis=1)
    order = np.argsort(-norms, kind="stable")  # longest first
    norms = norms[order]
    if norms[-1] >= norms[0]:  # all alike (e.g. unit vectors): nothing to skip
        return None
    dtype = np.result_type(queries, candidates)
    ordered = np.ascontiguousarray(candidates[order], dtype=dtype)
    position = np.empty(n_c, dtype=np.int64)
    position[order] = np.arange(n_c)
    q_norms = np.linalg.norm(queries.astype(np.float64), axis=1)
    allowance = slack(q_norms, float(norms[0]), queries.shape[1])

    ex_pos = bounds = None
    if exclude_rows is not None and exclude_rows.size:
        by_row = np.argsort(exclude_rows, kind="stable")
        ex_pos = position[exclude_cols[by_row]]
        bounds = np.searchsorted(exclude_rows[by_row], np.arange(n_q + 1))

    def excluded(rows: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(block row, column) of the excluded pairs of `rows` among the first `width`."""
        if ex_pos is None:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty
        starts, counts = bounds[rows], bounds[rows + 1] - bounds[rows]
        cols = ex_pos[np.repeat(starts, counts) + _within(counts)]
        local = np.repeat(np.arange(rows.size), counts)
        keep = cols < width
        return local[keep], cols[keep]

    # The probe: each query's k-th best score among the longest `probe` candidates.
    kth = np.empty(n_q, dtype=np.float64)
    step = max(1, min(MAX_BLOCK_ROWS * 8, BLOCK_SCORES // probe))
    probe_t = ordered[:probe].T
    for start in range(0, n_q, step):
        rows = np.arange(start, min(start + step, n_q))
        scores = queries[rows] @ probe_t
        scores[excluded(rows, probe)] = -np.inf
        kth[rows] = np.partition(scores, probe - k, axis=1)[:, probe - k]
    bounded = np.isfinite(kth)
    floor = kth - allowance  # every column of the top k scores at least this, rounded either way
    # |candidate| needed to reach the floor; queries of no length or a floor <= 0 need them all.
    reach = np.full(n_q, n_c, dtype=np.int64)
    can = bounded & (q_norms > 0) & (floor - allowance > 0)
    need = (floor[can] - allowance[can]) / q_norms[can]
    reach[can] = np.searchsorted(-norms, -need, side="right")
    reach = np.maximum(reach, probe)
    if reach[bounded].sum() > MAX_SHARE * n_c * max(1, int(bounded.sum())):
        return None

    rows_by_reach = np.flatnonzero(bounded)
    rows_by_reach = rows_by_reach[np.argsort(reach[rows_by_reach], kind="stable")]
    out_q, out_c, out_s = [], [], []
    buffer = np.empty(BLOCK_SCORES + n_c, dtype=dtype)
    start = 0
    while start < rows_by_reach.size:
        # As many rows as fit the block at the widest prefix among them (the last, by reach),
        # none needing much more than the first: the block scores every row that far.
        span = np.arange(1, min(MAX_BLOCK_ROWS, rows_by_reach.size - start) + 1)
        widest = reach[rows_by_reach[start + span - 1]]
        fits = (span * widest <= BLOCK_SCORES) & (widest <= reach[rows_by_reach[start]] * WIDEN)
        stop = start + max(1, int(fits.sum()))
        rows = rows_by_reach[start:stop]
        width = int(reach[rows[-1]])
        scores = buffer[: rows.size * width].reshape(rows.size, width)
        np.matmul(queries[rows], ordered[:width].T, out=scores)
        scores[excluded(rows, width)] = -np.inf
        local, cols = np.nonzero(scores >= floor[rows][:, None])
        values = scores[local, cols]
        ids = order[cols]
        pick = np.lexsort((ids, -values, local))
        local, ids, values = local[pick], ids[pick], values[pick]
        first = np.searchsorted(local, local)
        keep = np.arange(local.size) - first < k
        out_q.append(rows[local[keep]])
        out_c.append(ids[keep])
        out_s.append(values[keep])
        start = stop
    q = np.concatenate(out_q) if out_q else np.empty(0, dtype=np.int64)
    c = np.concatenate(out_c) if out_c else np.empty(0, dtype=np.int64)
    s = np.concatenate(out_s) if out_s else np.empty(0, dtype=dtype)
    return (q, c, s), np.flatnonzero(~bounded)
