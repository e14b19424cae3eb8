"""Rating metrics as native Spark aggregations; ranking metrics on the collected top-K lists.
No Python UDFs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


@dataclass(frozen=True)
class RegressionMetrics:
    rmse: float
    mae: float
    rows: int


def regression_metrics(predictions: DataFrame, label: str = "rating",
                       prediction: str = "prediction") -> RegressionMetrics:
    """RMSE and MAE in one pass over rows with a non-NaN prediction (the 'drop' strategy)."""
    err = F.col(prediction) - F.col(label)
    row = (
        predictions.filter(F.col(prediction).isNotNull() & ~F.isnan(prediction))
        .agg(
            F.sqrt(F.avg(err * err)).alias("rmse"),
            F.avg(F.abs(err)).alias("mae"),
            F.count(F.lit(1)).alias("rows"),
        )
        .first()
    )
    nan = float("nan")
    return RegressionMetrics(
        rmse=float(row["rmse"]) if row["rmse"] is not None else nan,
        mae=float(row["mae"]) if row["mae"] is not None else nan,
        rows=int(row["rows"]),
    )


def relevant_items(ratings: DataFrame, threshold: float) -> DataFrame:
    """(user_id, movie_id) pairs rated at or above the threshold: the ranking ground truth."""
    return ratings.filter(F.col("rating") >= threshold).select("user_id", "movie_id").distinct()


RANKING_METRICS = ("ndcg_at_k", "map_at_k", "precision_at_k", "recall_at_k")


@dataclass(frozen=True)
class RankingMetrics:
    """Means over users that have both recommendations and at least one relevant item."""

    k: int
    precision_at_k: float
    recall_at_k: float
    ndcg_at_k: float
    map_at_k: float
    users_evaluated: int

    def value(self, metric: str) -> float:
        """A metric by its config name (`ndcg_at_k`, `map_at_k`, `precision_at_k`,
        `recall_at_k`)."""
        if metric not in RANKING_METRICS:
            raise ValueError(f"unknown ranking metric {metric!r}; one of {RANKING_METRICS}")
        return getattr(self, metric)


def ranking_metrics(recommendations: DataFrame, relevant: DataFrame, k: int) -> RankingMetrics:
    """Precision@K, Recall@K, NDCG@K and MAP@K with binary relevance.

    Per user, with hit_i = 1 when the item at rank i is relevant and R = #relevant items:
      precision = sum(hit_i) / K              recall = sum(hit_i) / R
      DCG = sum(hit_i / log2(i + 1))          IDCG = sum_{i=1..min(R, K)} 1 / log2(i + 1)
      AP = sum_i hit_i * (hits in the first i) / i, divided by min(R, K)
    (the definitions of Spark's RankingMetrics and of the notebook's NDCG UDF). Means are over
    users that have recommendations and at least one relevant item.

    The top-K lists (K rows per user) and the relevant pairs are collected once and scored with
    NumPy/pandas on the driver: two Spark jobs instead of a window, two joins and a grouping
    (measured: that Spark plan cost more than the notebook's UDF at these sizes, see
    benchmarks/micro.py). Both inputs are small next to the ratings: K rows per user, and the
    test ratings at or above the threshold.
    """
    recs = (recommendations.filter(F.col("rank") <= k)
            .select("user_id", "movie_id", "rank").toPandas())
    rel = relevant.select("user_id", "movie_id").toPandas()
    return ranking_metrics_arrays(
        recs["user_id"].to_numpy(np.int64), recs["movie_id"].to_numpy(np.int64),
        recs["rank"].to_numpy(np.int64), rel["user_id"].to_numpy(np.int64),
        rel["movie_id"].to_numpy(np.int64), k)


def pair_keys(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(user, movie) pairs as one int64 key each: ids are int32."""
    return (np.asarray(users, np.int64) << 32) | (np.asarray(items, np.int64) & 0xFFFFFFFF)


def _member(values: np.ndarray, sorted_unique: np.ndarray) -> np.ndarray:
    """Which of `values` are in `sorted_unique` (a binary search each, no sort of `values`)."""
    if sorted_unique.size == 0:
        return np.zeros(np.shape(values), dtype=bool)
    pos = np.searchsorted(sorted_unique, values).clip(0, sorted_unique.size - 1)
    return sorted_unique[pos] == values


@dataclass(frozen=True)
class Relevant:
    """Relevant (user, movie) pairs prepared once for scoring many lists against them: the
    distinct pair keys sorted, and each user's number of relevant movies."""

    keys: np.ndarray
    user_ids: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, users: np.ndarray, items: np.ndarray) -> Relevant:
        keys = np.sort(pair_keys(users, items))
        keys = keys[np.diff(keys, prepend=np.int64(-1)) != 0] if keys.size else keys
        user_ids, counts = np.unique(keys >> 32, return_counts=True)
        return cls(keys, user_ids, counts)


def ranking_metrics_arrays(rec_users: np.ndarray, rec_items: np.ndarray, rec_ranks: np.ndarray,
                           rel_users: np.ndarray, rel_items: np.ndarray, k: int
                           ) -> RankingMetrics:
    """`ranking_metrics` on driver-side arrays: the top-K lists as (user, movie, 1-based rank)
    rows and the relevant (user, movie) pairs (duplicates ignored). Tuning scores every grid
    point's lists this way, without a round trip through Spark."""
    return ranking_metrics_of(rec_users, rec_items, rec_ranks, Relevant.of(rel_users, rel_items),
                              k)


def ranking_metrics_of(rec_users: np.ndarray, rec_items: np.ndarray, rec_ranks: np.ndarray,
                       relevant: Relevant, k: int) -> RankingMetrics:
    """`ranking_metrics_arrays` against relevant pairs prepared once (`Relevant`), for scoring
    many lists against the same pairs."""
    rel_keys, rel_user_ids, n_rel = relevant.keys, relevant.user_ids, relevant.counts
    keep = (np.asarray(rec_ranks) <= k) & _member(np.asarray(rec_users, np.int64), rel_user_ids)
    if not keep.any():
        return RankingMetrics(k, math.nan, math.nan, math.nan, math.nan, 0)
    users = np.asarray(rec_users, np.int64)[keep]
    items = np.asarray(rec_items, np.int64)[keep]
    rank = np.asarray(rec_ranks, np.int64)[keep]
    order = np.lexsort((rank, users))
    users, items, rank = users[order], items[order], rank[order].astype(np.float64)
    hit = _member(pair_keys(users, items), rel_keys).astype(np.float64)
    # Rows are grouped by user (sorted): per-user sums by segment, no pandas groupby. Hits are
    # 0 or 1, so the running count within a user is exact from one cumulative sum.
    starts = np.flatnonzero(np.diff(users, prepend=users[0] - 1))
    hits = np.add.reduceat(hit, starts)
    before = np.cumsum(hits) - hits  # hits of the earlier users
    cum_hits = np.cumsum(hit) - np.repeat(before, np.diff(np.append(starts, users.size)))
    dcg = np.add.reduceat(hit / np.log2(rank + 1), starts)
    ap_sum = np.add.reduceat(hit * cum_hits / rank, starts)
    r = n_rel[np.searchsorted(rel_user_ids, users[starts])].astype(np.float64)
    cutoff = np.minimum(r, k).astype(np.int64)
    # IDCG of m relevant items in the top K: the first m discounts, summed.
    ideal = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])[cutoff]
    return RankingMetrics(
        k=k,
        precision_at_k=float(np.mean(hits / k)),
        recall_at_k=float(np.mean(hits / r)),
        ndcg_at_k=float(np.mean(dcg / ideal)),
        map_at_k=float(np.mean(ap_sum / cutoff)),
        users_evaluated=int(starts.size),
    )
