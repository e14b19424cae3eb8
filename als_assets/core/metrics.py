"""Rating and ranking metrics as native Spark aggregations (no Python UDFs)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
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


@dataclass(frozen=True)
class RankingMetrics:
    """Means over users that have both recommendations and at least one relevant item."""

    k: int
    precision_at_k: float
    recall_at_k: float
    ndcg_at_k: float
    map_at_k: float
    users_evaluated: int


def ranking_metrics(recommendations: DataFrame, relevant: DataFrame, k: int) -> RankingMetrics:
    """Precision@K, Recall@K, NDCG@K and MAP@K with binary relevance.

    Per user, with hit_i = 1 when the item at rank i is relevant and R = #relevant items:
      precision = sum(hit_i) / K              recall = sum(hit_i) / R
      DCG = sum(hit_i / log2(i + 1))          IDCG = sum_{i=1..min(R, K)} 1 / log2(i + 1)
      AP = sum_i hit_i * (hits in the first i) / i, divided by min(R, K)
    (the definitions of Spark's RankingMetrics and of the notebook's NDCG UDF).
    """
    recs = recommendations.filter(F.col("rank") <= k).select("user_id", "movie_id", "rank")
    rel = relevant.select("user_id", "movie_id").withColumn("hit", F.lit(1))
    n_rel = relevant.groupBy("user_id").agg(F.count(F.lit(1)).alias("n_rel"))
    by_rank = Window.partitionBy("user_id").orderBy("rank").rowsBetween(
        Window.unboundedPreceding, Window.currentRow)
    scored = (
        recs.join(rel, ["user_id", "movie_id"], "left")
        .withColumn("hit", F.coalesce(F.col("hit"), F.lit(0)))
        .withColumn("cum_hits", F.sum("hit").over(by_rank))
    )
    per_user = scored.groupBy("user_id").agg(
        F.sum("hit").alias("hits"),
        F.sum(F.col("hit") / F.log2(F.col("rank") + 1)).alias("dcg"),
        F.sum(F.col("hit") * F.col("cum_hits") / F.col("rank")).alias("ap_sum"),
    ).join(n_rel, "user_id")
    ideal = F.expr(
        f"aggregate(sequence(1, least(n_rel, {int(k)})), 0D, (acc, i) -> acc + 1D / log2(i + 1))")
    per_user = per_user.select(
        (F.col("hits") / F.lit(k)).alias("precision"),
        (F.col("hits") / F.col("n_rel")).alias("recall"),
        (F.col("dcg") / ideal).alias("ndcg"),
        (F.col("ap_sum") / F.least(F.col("n_rel"), F.lit(k))).alias("ap"),
    )
    row = per_user.agg(
        F.avg("precision").alias("p"), F.avg("recall").alias("r"), F.avg("ndcg").alias("n"),
        F.avg("ap").alias("m"), F.count(F.lit(1)).alias("users"),
    ).first()
    nan = math.nan
    return RankingMetrics(
        k=k,
        precision_at_k=float(row["p"]) if row["p"] is not None else nan,
        recall_at_k=float(row["r"]) if row["r"] is not None else nan,
        ndcg_at_k=float(row["n"]) if row["n"] is not None else nan,
        map_at_k=float(row["m"]) if row["m"] is not None else nan,
        users_evaluated=int(row["users"]),
    )
