"""Top-k by dot product over latent factors: blocked matrix products in BLAS on the driver.

Factor tables are small (entities x rank), so the all-pairs product is done a block of query
rows at a time: memory stays at block x items scores while the work runs at BLAS speed. This
replaces the notebook's per-movie cosine UDF (one Python call per item per query) and Spark's
recommendForAllUsers, which cannot leave out the movies a user has already rated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from .topk_bound import bounded_top_k

# Scores per block of query rows: small enough that a block's scores stay in the CPU's cache
# for the passes top-k makes over them, and one buffer is reused for every block (a fresh
# block-sized array per block costs page faults that the matrix product itself does not).
BLOCK_SCORES = 1 << 22
MAX_BLOCK_ROWS = 2048


def block_rows_for(n_candidates: int) -> int:
    """Query rows per block for a catalogue of `n_candidates`."""
    return int(min(MAX_BLOCK_ROWS, max(16, BLOCK_SCORES // max(1, n_candidates))))


def top_k(
    queries: np.ndarray,
    candidates: np.ndarray,
    k: int,
    exclude_rows: np.ndarray | None = None,
    exclude_cols: np.ndarray | None = None,
    block_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every query row, the k candidates with the highest dot product.

    `exclude_rows[j], exclude_cols[j]` pairs (query index, candidate index) are never returned.
    Ties break by candidate index, so results are deterministic. Returns flat arrays
    (query index, candidate index, score), ordered by query then rank; a query gets fewer than k
    rows only when fewer than k candidates are left after exclusion.

    By default the candidates that cannot make a query's list are not scored (`topk_bound`:
    the same lists, a fraction of the work on ALS factors); `block_rows` asks for every
    candidate scored, that many queries at a time.
    """
    n_q, n_c = queries.shape[0], candidates.shape[0]
    k = min(k, n_c)
    if n_q == 0 or k == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=np.float32)
    if block_rows is None:  # an explicit block size asks for the full ranking
        bounded = bounded_top_k(queries, candidates, k, exclude_rows, exclude_cols)
        if bounded is not None:
            lists, rest = bounded
            if rest.size:
                return _merged(lists, _rows_of(rest, queries, candidates, k, exclude_rows,
                                               exclude_cols))
            return _merged(lists)
    return _top_k_full(queries, candidates, k, exclude_rows, exclude_cols, block_rows)


def _rows_of(rows: np.ndarray, queries, candidates, k, exclude_rows, exclude_cols):
    """`_top_k_full` for the query rows `rows` (sorted), numbered as in `queries`."""
    ex_rows = ex_cols = None
    if exclude_rows is not None:
        at = np.searchsorted(rows, exclude_rows).clip(max=rows.size - 1)
        mine = rows[at] == exclude_rows
        ex_rows, ex_cols = at[mine], exclude_cols[mine]
    q, c, s = _top_k_full(queries[rows], candidates, k, ex_rows, ex_cols, None)
    return rows[q], c, s


def _merged(*parts):
    """Flat (query, candidate, score) parts, each grouped by query in rank order, as one
    ordered by query then rank (a query's rows are all in one part)."""
    q, c, s = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
    order = np.argsort(q, kind="stable")
    return q[order], c[order], s[order]


def _top_k_full(queries, candidates, k, exclude_rows, exclude_cols, block_rows):
    """`top_k` scoring every candidate for every query, a block of queries at a time."""
    n_q, n_c = queries.shape[0], candidates.shape[0]
    q_out, c_out, s_out = [], [], []
    cand_t = np.ascontiguousarray(candidates.T)
    if exclude_rows is not None:
        order = np.argsort(exclude_rows, kind="stable")
        exclude_rows, exclude_cols = exclude_rows[order], exclude_cols[order]
    block_rows = block_rows or block_rows_for(n_c)
    # The top-k below copies what it keeps, so one buffer serves every block.
    buffer = np.empty((min(block_rows, n_q), n_c), dtype=np.result_type(queries, cand_t))
    for start in range(0, n_q, block_rows):
        stop = min(start + block_rows, n_q)
        scores = buffer[: stop - start]
        np.matmul(queries[start:stop], cand_t, out=scores)
        if exclude_rows is not None:
            lo, hi = np.searchsorted(exclude_rows, [start, stop])
            scores[exclude_rows[lo:hi] - start, exclude_cols[lo:hi]] = -np.inf
        part, part_scores = _top_k_sorted(scores, k)
        rows = np.repeat(np.arange(start, stop), k).reshape(stop - start, k)
        keep = np.isfinite(part_scores)
        q_out.append(rows[keep])
        c_out.append(part[keep])
        s_out.append(part_scores[keep])
    return np.concatenate(q_out), np.concatenate(c_out), np.concatenate(s_out)


# The sampled pre-selection looks at every SAMPLE_STRIDE-th column, and is used only where the
# sample holds at least SAMPLE_MIN_K times k columns (below that, partitioning whole rows is
# cheap anyway).
SAMPLE_STRIDE = 16
SAMPLE_MIN_K = 8


def _top_k_sorted(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k largest scores and their column indices, sorted by score descending, then
    column ascending (ties at the k-th score go to the lowest columns)."""
    n = scores.shape[1]
    if k >= n:
        return _sorted(scores, np.broadcast_to(np.arange(n), scores.shape).copy())
    if n // SAMPLE_STRIDE < SAMPLE_MIN_K * k:
        return _sorted(scores, _top_k_indices(scores, k))
    return _top_k_sampled(scores, k)


def _sorted(scores: np.ndarray, part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)


def _top_k_sampled(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """`_top_k_sorted` without partitioning whole rows, which is most of the cost of ranking a
    large catalogue. The k-th largest score among a strided sample of a row's columns is at
    most the row's own k-th largest, so the columns scoring at least that threshold hold the
    row's top k, ties at the k-th score included; only those few candidates are sorted. Rows
    where many columns tie at the threshold are partitioned whole instead. A row with fewer
    than k finite scores is padded with -inf (the caller drops those)."""
    rows_n, n = scores.shape
    sample = scores[:, ::SAMPLE_STRIDE]
    width = sample.shape[1]
    threshold = np.partition(sample, width - k, axis=1)[:, width - k]
    # -inf marks excluded columns: never candidates, even where the sample holds nothing else.
    threshold = np.maximum(threshold, np.finfo(np.float32).min)
    flat = np.flatnonzero(scores >= threshold[:, None])  # row-major: grouped by row
    rows, cols = np.divmod(flat, n)
    per_row = np.bincount(rows, minlength=rows_n)
    limit = max(SAMPLE_MIN_K * k * SAMPLE_STRIDE, n // 8)
    heavy = np.flatnonzero(per_row > limit)
    if heavy.size:
        light = per_row[rows] <= limit
        rows, cols = rows[light], cols[light]
        per_row[heavy] = 0
    values = scores[rows, cols]
    order = np.lexsort((cols, -values, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    place = np.arange(rows.size) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    first = place < k
    part = np.zeros((rows_n, k), dtype=np.int64)
    part_scores = np.full((rows_n, k), -np.inf, dtype=scores.dtype)
    part[rows[first], place[first]] = cols[first]
    part_scores[rows[first], place[first]] = values[first]
    if heavy.size:
        part[heavy], part_scores[heavy] = _sorted(scores[heavy],
                                                  _top_k_indices(scores[heavy], k))
    return part, part_scores


def _top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k largest scores; ties at the k-th score go to the lowest
    indices. argpartition picks among such ties arbitrarily, so its choice is kept only for the
    rows where it had no choice (every candidate scoring the k-th score was taken), and the
    other rows, rare with float scores, are chosen again by index."""
    n = scores.shape[1]
    part = np.argpartition(scores, n - k, axis=1)[:, n - k:]
    taken = np.take_along_axis(scores, part, axis=1)
    kth = taken.min(axis=1, keepdims=True)
    unsettled = np.flatnonzero((scores == kth).sum(axis=1) > (taken == kth).sum(axis=1))
    if unsettled.size:
        part[unsettled] = _top_k_indices_by_index(scores[unsettled], k)
    return part


def _top_k_indices_by_index(scores: np.ndarray, k: int) -> np.ndarray:
    """`_top_k_indices` with every tie at the k-th score going to the lowest indices."""
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
    above = scores > kth
    at = scores == kth
    need = k - above.sum(axis=1, keepdims=True)
    chosen = above | (at & (np.cumsum(at, axis=1) <= need))
    return np.nonzero(chosen)[1].reshape(scores.shape[0], k)


def _ranks(query_index: np.ndarray) -> np.ndarray:
    """1-based position within each run of equal query indices (input is grouped by query)."""
    if query_index.size == 0:
        return np.empty(0, dtype=np.int32)
    starts = np.r_[0, np.flatnonzero(np.diff(query_index)) + 1]
    lengths = np.diff(np.r_[starts, query_index.size])
    return (np.arange(query_index.size) - np.repeat(starts, lengths) + 1).astype(np.int32)


def factors_to_numpy(factors: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Collect a factor table (id column first, then features array<float>) as sorted ids and a
    float32 matrix."""
    id_col = next(c for c in factors.columns if c != "features")
    pdf = factors.select(id_col, "features").toPandas()
    ids = pdf[id_col].to_numpy(dtype=np.int64)
    if len(pdf) == 0:
        return ids, np.zeros((0, 0), dtype=np.float32)
    matrix = np.vstack(pdf["features"].to_numpy()).astype(np.float32)
    order = np.argsort(ids)
    return ids[order], matrix[order]


RECS_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.IntegerType(), False),
        T.StructField("movie_id", T.IntegerType(), False),
        T.StructField("score", T.FloatType(), False),
        T.StructField("rank", T.IntegerType(), False),
    ]
)


def recommend_for_users(
    user_factors: DataFrame,
    item_factors: DataFrame,
    k: int,
    seen: DataFrame | None = None,
) -> DataFrame:
    """Top-k movies per user by predicted score, leaving out `seen` (user_id, movie_id) pairs."""
    user_ids, users = factors_to_numpy(user_factors)
    item_ids, items = factors_to_numpy(item_factors)
    return _recommend(user_factors.sparkSession, user_ids, users, item_ids, items, k, seen)


@dataclass(frozen=True)
class TopK:
    """Top-K lists on the driver: one row per (user, rank), ordered by user then rank."""

    user_ids: np.ndarray  # int64
    item_ids: np.ndarray  # int64
    scores: np.ndarray  # float32
    ranks: np.ndarray  # int32, 1-based

    def to_pandas(self) -> pd.DataFrame:
        return pd.DataFrame({
            "user_id": self.user_ids.astype(np.int32),
            "movie_id": self.item_ids.astype(np.int32),
            "score": self.scores.astype(np.float32),
            "rank": self.ranks.astype(np.int32),
        })

    def to_spark(self, spark: SparkSession) -> DataFrame:
        return spark.createDataFrame(self.to_pandas(), schema=RECS_SCHEMA)

    @classmethod
    def from_spark(cls, frame: DataFrame) -> TopK:
        """A recommendations table (user_id, movie_id, score, rank) collected to the driver."""
        pdf = frame.select("user_id", "movie_id", "score", "rank").toPandas() \
            .sort_values(["user_id", "rank"], kind="stable")
        return cls(pdf["user_id"].to_numpy(np.int64), pdf["movie_id"].to_numpy(np.int64),
                   pdf["score"].to_numpy(np.float32), pdf["rank"].to_numpy(np.int32))


def exclusion_indices(user_ids: np.ndarray, item_ids: np.ndarray, seen_users: np.ndarray,
                      seen_items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) indices of the seen (user, movie) pairs in sorted `user_ids` x `item_ids`;
    pairs of users or movies outside them are dropped."""
    u = np.searchsorted(user_ids, seen_users)
    i = np.searchsorted(item_ids, seen_items)
    ok = (u < user_ids.size) & (i < item_ids.size)
    ok[ok] &= (user_ids[u[ok]] == seen_users[ok]) & (item_ids[i[ok]] == seen_items[ok])
    return u[ok], i[ok]


def recommend_arrays(user_ids: np.ndarray, users: np.ndarray, item_ids: np.ndarray,
                     items: np.ndarray, k: int, seen: tuple[np.ndarray, np.ndarray] | None
                     ) -> TopK:
    """Top-k items per user by dot product, leaving out `seen` (user ids, movie ids) pairs. Ids
    sorted ascending, factor rows in the same order."""
    ex_rows = ex_cols = None
    if seen is not None:
        ex_rows, ex_cols = exclusion_indices(user_ids, item_ids, *seen)
    q, c, s = top_k(users, items, k, ex_rows, ex_cols)
    return TopK(user_ids[q].astype(np.int64), item_ids[c].astype(np.int64), s, _ranks(q))


def _seen_arrays(seen: DataFrame | None) -> tuple[np.ndarray, np.ndarray] | None:
    if seen is None:
        return None
    pairs = seen.select("user_id", "movie_id").toPandas()
    return pairs["user_id"].to_numpy(np.int64), pairs["movie_id"].to_numpy(np.int64)


def _recommend(spark: SparkSession, user_ids, users, item_ids, items, k, seen) -> DataFrame:
    return recommend_arrays(user_ids, users, item_ids, items, k, _seen_arrays(seen)) \
        .to_spark(spark)


SIMILARITY_SCHEMA = T.StructType(
    [
        T.StructField("movie_id", T.IntegerType(), False),
        T.StructField("similar_movie_id", T.IntegerType(), False),
        T.StructField("similarity", T.FloatType(), False),
        T.StructField("rank", T.IntegerType(), False),
    ]
)


def similar_items(item_factors: DataFrame, eligible_ids: np.ndarray, top_n: int) -> pd.DataFrame:
    """Top-n cosine neighbours for every eligible item, among eligible items, as a pandas frame
    (movie_id, similar_movie_id, similarity, rank): the caller reports on it without asking
    Spark again.

    cos(a, b) = a.b / (|a| |b|): normalising every factor row once turns the all-pairs cosine
    into one matrix product. Items whose factors are all zero have no direction and are left out.
    """
    ids, matrix = factors_to_numpy(item_factors)
    keep = np.isin(ids, np.asarray(eligible_ids, dtype=np.int64))
    ids, matrix = ids[keep], matrix[keep]
    if ids.size:
        norms = np.linalg.norm(matrix, axis=1)
        nonzero = norms > 0
        ids, matrix = ids[nonzero], matrix[nonzero] / norms[nonzero, None]
    self_index = np.arange(ids.size)
    q, c, s = top_k(matrix, matrix, top_n, self_index, self_index)
    return pd.DataFrame(
        {
            "movie_id": ids[q].astype(np.int32),
            "similar_movie_id": ids[c].astype(np.int32),
            "similarity": np.clip(s, -1.0, 1.0).astype(np.float32),
            "rank": _ranks(q),
        }
    )


def rank_similar_items(
    item_factors: DataFrame,
    eligible: DataFrame,
    top_n: int,
) -> DataFrame:
    """`similar_items` for the movie ids of `eligible`, as a Spark DataFrame."""
    eligible_ids = eligible.select("movie_id").toPandas()["movie_id"].to_numpy(np.int64)
    table = similar_items(item_factors, eligible_ids, top_n)
    return item_factors.sparkSession.createDataFrame(table, schema=SIMILARITY_SCHEMA)
