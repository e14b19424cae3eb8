"""Top-K lists, their judgement and item similarity on the executors.

The driver path (`topk`, `ranking`) collects the factors and every seen (user, movie) pair, so
its memory grows with users and ratings and a cluster's executors sit idle while it ranks. Here
the query rows (users, or movies for similarity) stay in Spark partitions and each task ranks
its own batch with the same NumPy code against the candidate factors, broadcast once per
executor: the candidates are the catalogue, which grows with movies, not with users or ratings.
The movies a user has seen reach the task as an array column joined onto that user's row, so no
training pair is collected, and because each row is ranked by the same function on the same
candidate matrix, both paths give identical lists, ties included.

One switch rule decides the path (`choose_path`): the driver while a step scores at most
`DRIVER_MAX_SCORES` (query rows x candidates: users x catalogue for the lists, movies x movies for
similarity), the executors beyond; the Spark setting `spark.als.topk.path` (`auto`, `driver`,
`executors`) overrides it, e.g. to spread small data over a cluster. Tuning by RMSE follows the
same rule with its own bound, `DRIVER_MAX_ROWS` held-out ratings collected.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from .metrics import RankingMetrics
from .ranking import (
    LISTS,
    RANDOM_SEED,
    Catalogue,
    HeldOut,
    ListScores,
    PartialScores,
    combine,
    judge_model,
    judge_partial,
)
from .topk import (
    RECS_SCHEMA,
    SIMILARITY_SCHEMA,
    TopK,
    _ranks,
    factors_to_numpy,
    recommend_arrays,
    recommend_for_users,
    similar_items,
    top_k,
)
from .user_lists import SeenLists, held_columns

PATH_CONF = "spark.als.topk.path"
PATHS = ("auto", "driver", "executors")
# The driver path is faster on one machine (no Python workers, no shuffle of seen lists) but
# its memory grows with users and ratings, and a cluster's executors would wait. The bound is
# set for the driver's memory, between the synthetic 1M (driver) and 10M (executors) shapes;
# benchmarks/topk_paths.py measures both paths (figures in benchmarks/README.md).
DRIVER_MAX_SCORES = 200_000_000
# Scoring a grid by RMSE on the driver collects the held-out ratings (three arrays per row);
# past this many rows each model is scored by a Spark join instead.
DRIVER_MAX_ROWS = 1_000_000


def choose_path(spark, queries: int, candidates: int, limit: int = DRIVER_MAX_SCORES) -> str:
    """`driver` or `executors` for a step that scores `queries` x `candidates` pairs (at most
    `limit` on the driver)."""
    wanted = spark.conf.get(PATH_CONF, "auto").strip().lower()
    if wanted not in PATHS:
        raise ValueError(f"Spark setting {PATH_CONF} = {wanted!r}: expected one of "
                         f"{', '.join(PATHS)}")
    if wanted != "auto":
        return wanted
    return "executors" if queries * candidates > limit else "driver"


def recommend(user_factors: DataFrame, item_factors: DataFrame, k: int,
              seen: DataFrame | SeenLists | None) -> DataFrame:
    """Top-k movies per user, leaving out `seen` pairs, on the path `choose_path` picks."""
    path = choose_path(user_factors.sparkSession, user_factors.count(), item_factors.count())
    if path == "executors":
        return recommend_on_executors(user_factors, item_factors, k, seen)
    if isinstance(seen, SeenLists):
        seen = seen.pairs()
    return recommend_for_users(user_factors, item_factors, k, seen)


@dataclass(frozen=True)
class Neighbours:
    """An item-similarity table as a Spark frame, and as pandas too when it was ranked on the
    driver: what is shown of it then needs no Spark job over a frame made from local rows."""

    frame: DataFrame
    local: pd.DataFrame | None = None


def similar(item_factors: DataFrame, eligible_ids: np.ndarray, top_n: int) -> Neighbours:
    """Top-n cosine neighbours among `eligible_ids`, on the path `choose_path` picks."""
    spark = item_factors.sparkSession
    if choose_path(spark, eligible_ids.size, eligible_ids.size) == "executors":
        eligible = spark.createDataFrame(pd.DataFrame({"movie_id": eligible_ids.astype(np.int64)}))
        return Neighbours(similar_items_on_executors(item_factors, eligible, top_n))
    table = similar_items(item_factors, eligible_ids, top_n)
    return Neighbours(spark.createDataFrame(table, schema=SIMILARITY_SCHEMA), table)


def _ids(frame: DataFrame) -> str:
    return next(c for c in frame.columns if c != "features")


def spread(frame: DataFrame, column: str) -> DataFrame:
    """`frame` hashed by `column` over at least as many partitions as the cluster has cores: a
    small factor table read from one Parquet file is one partition, which would rank every
    query row in one task on one executor."""
    spark = frame.sparkSession
    n = max(spark.sparkContext.defaultParallelism,
            int(spark.conf.get("spark.sql.shuffle.partitions", "2")))
    return frame.repartition(n, column)


def seen_lists(seen: DataFrame | SeenLists, id_name: str = "user_id",
               movie_type: str = "int") -> DataFrame:
    """(id_name, seen: array<movie_type>): each user's seen movies, grouped from the pairs, or
    read from the shared grouping of the splits (`user_lists`)."""
    if isinstance(seen, SeenLists):
        return seen.frame().select(F.col("user_id").alias(id_name),
                                   seen.column().cast(f"array<{movie_type}>").alias("seen"))
    return seen.groupBy(F.col("user_id").cast("int").alias(id_name)) \
        .agg(F.collect_list(F.col("movie_id").cast(movie_type)).alias("seen"))


def with_seen(queries: DataFrame, seen: DataFrame | SeenLists | None,
              id_name: str = "user_id") -> DataFrame:
    """(id_name, features, seen: array<int>) with each user's seen movies, empty if none."""
    rows = spread(queries.select(F.col(_ids(queries)).cast("int").alias(id_name), "features"),
                  id_name)
    if seen is None:
        return rows.withColumn("seen", F.array().cast("array<int>"))
    return rows.join(seen_lists(seen, id_name), id_name, "left") \
        .withColumn("seen", F.coalesce("seen", F.array().cast("array<int>")))


def _matrix(features: pd.Series, rank: int) -> np.ndarray:
    if len(features) == 0:
        return np.zeros((0, rank), dtype=np.float32)
    return np.vstack(features.to_numpy()).astype(np.float32)


def _flat(ids: np.ndarray, lists: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per-row arrays as flat (row id, value) pairs."""
    lengths = lists.map(len).to_numpy()
    values = np.concatenate([np.asarray(v, dtype=np.int64) for v in lists]) if lengths.sum() \
        else np.empty(0, dtype=np.int64)
    return np.repeat(ids, lengths), values


def recommend_on_executors(user_factors: DataFrame, item_factors: DataFrame, k: int,
                           seen: DataFrame | SeenLists | None) -> DataFrame:
    """`topk.recommend_for_users` with each batch of users ranked in a task: identical rows."""
    spark = user_factors.sparkSession
    item_ids, items = factors_to_numpy(item_factors)
    shared = spark.sparkContext.broadcast((item_ids, items))
    rank = items.shape[1]

    def rank_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        cand_ids, cands = shared.value
        for batch in batches:
            batch = batch.sort_values("user_id", kind="stable")
            user_ids = batch["user_id"].to_numpy(np.int64)
            lists = recommend_arrays(user_ids, _matrix(batch["features"], rank), cand_ids,
                                     cands, k, _flat(user_ids, batch["seen"]))
            yield lists.to_pandas()

    return with_seen(user_factors, seen).mapInPandas(rank_batches, RECS_SCHEMA)


def similar_items_on_executors(item_factors: DataFrame, eligible: DataFrame, top_n: int
                               ) -> DataFrame:
    """`topk.similar_items` with each batch of movies ranked in a task: identical rows.
    `eligible` holds the movie ids that may have and be neighbours."""
    spark = item_factors.sparkSession
    id_col = _ids(item_factors)
    factors = item_factors.select(F.col(id_col).cast("long").alias("movie_id"), "features") \
        .join(eligible.select(F.col("movie_id").cast("long")), "movie_id")
    ids, matrix = factors_to_numpy(factors)
    norms = np.linalg.norm(matrix, axis=1) if ids.size else np.empty(0, dtype=np.float32)
    nonzero = norms > 0
    ids, matrix = ids[nonzero], matrix[nonzero] / norms[nonzero, None]
    shared = spark.sparkContext.broadcast((ids, matrix))
    rank = matrix.shape[1] if matrix.ndim == 2 else 0

    def rank_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        cand_ids, cands = shared.value
        for batch in batches:
            query_ids = np.sort(batch["movie_id"].to_numpy(np.int64))
            query_ids = query_ids[np.isin(query_ids, cand_ids)]
            rows = np.searchsorted(cand_ids, query_ids)
            q, c, s = top_k(cands[rows] if rows.size else np.zeros((0, rank), np.float32),
                            cands, top_n, np.arange(rows.size), rows)
            yield pd.DataFrame({
                "movie_id": query_ids[q].astype(np.int32),
                "similar_movie_id": cand_ids[c].astype(np.int32),
                "similarity": np.clip(s, -1.0, 1.0).astype(np.float32),
                "rank": _ranks(q),
            })

    return spread(factors.select("movie_id"), "movie_id") \
        .mapInPandas(rank_batches, SIMILARITY_SCHEMA)


PARTIAL_SCHEMA = T.StructType([
    T.StructField("list", T.StringType(), False),
    *[T.StructField(f"{metric}{suffix}", T.DoubleType(), True)
      for suffix in ("", "_all") for metric in ("precision", "recall", "ndcg", "map")],
    T.StructField("users", T.LongType(), False),
    T.StructField("users_all", T.LongType(), False),
    T.StructField("rows", T.LongType(), False),
    T.StructField("popularity_sum", T.DoubleType(), False),
    T.StructField("overlap_sum", T.DoubleType(), False),
    T.StructField("items", T.ArrayType(T.LongType()), False),
])


def judge_model_lists(model, training: DataFrame, held: DataFrame, k: int,
                      relevance_threshold: float, exclude_seen: bool) -> tuple[ListScores, ...]:
    """`ranking.judge_model` (the model's lists for every user with factors, and both
    baselines', judged on `held`) on the path `choose_path` picks."""
    catalogue = Catalogue.of(training)
    users = model.userFactors
    if choose_path(training.sparkSession, users.count(), catalogue.size) == "driver":
        judged = HeldOut.collect(training, held, k, relevance_threshold, exclude_seen)
        return judge_model(model, judged, catalogue)
    # The shared grouping of training and validation (`user_lists`): the seen movies and the
    # held-out ones in one row per user, grouped once for this step and the later ones.
    seen = SeenLists(training, held, with_validation=False)
    lists = seen.frame().select(
        "user_id", (seen.column() if exclude_seen else F.array().cast("array<int>"))
        .alias("seen"), *held_columns(relevance_threshold))
    rows = spread(users.select(F.col(_ids(users)).cast("int").alias("user_id"), "features"),
                  "user_id").join(lists, "user_id", "left")
    return _rank_and_judge(rows, model.itemFactors, exclude_seen, catalogue, k,
                           relevance_threshold)


def _rank_and_judge(users: DataFrame, item_factors: DataFrame, exclude_seen: bool,
                    catalogue: Catalogue, k: int, relevance_threshold: float,
                    seed: int = RANDOM_SEED) -> tuple[ListScores, ...]:
    """Each task ranks its batch of rows (user_id, features, seen, relevant, held) and judges
    those lists and both baselines' at once: the lists are never written out or regrouped, and
    only per-batch partial sums reach the driver."""
    spark = users.sparkSession
    item_ids, items = factors_to_numpy(item_factors)
    shared = spark.sparkContext.broadcast((item_ids, items, catalogue.item_ids,
                                           catalogue.counts))
    rank = items.shape[1]
    empty = F.array().cast("array<long>")
    for name in ("relevant", "held"):
        users = users.withColumn(name, F.coalesce(name, empty))
    users = users.withColumn("seen", F.coalesce("seen", F.array().cast("array<int>")))

    def rank_and_judge(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        cand_ids, cands, cat_ids, counts = shared.value
        cat = Catalogue(cat_ids, counts)
        for batch in batches:
            batch = batch.sort_values("user_id", kind="stable")
            user_ids = batch["user_id"].to_numpy(np.int64)
            seen_pairs = _flat(user_ids, batch["seen"])
            mine = recommend_arrays(user_ids, _matrix(batch["features"], rank), cand_ids,
                                    cands, k, seen_pairs)
            judged = HeldOut(k, relevance_threshold, seen_pairs if exclude_seen else None,
                             _flat(user_ids, batch["relevant"]), _flat(user_ids, batch["held"]))
            yield pd.DataFrame([_partial_row(p) for p in judge_partial(mine, judged, cat, seed)],
                               columns=PARTIAL_SCHEMA.fieldNames())

    return _combined(users.mapInPandas(rank_and_judge, PARTIAL_SCHEMA), catalogue, k)


def _held_lists(held: DataFrame, relevance_threshold: float) -> DataFrame:
    """(user_id, relevant, held): each user's held-out movies rated at or above the threshold,
    and all of them."""
    movie = F.col("movie_id").cast("long")
    return held.groupBy(F.col("user_id").cast("int").alias("user_id")).agg(
        F.collect_list(F.when(F.col("rating") >= relevance_threshold, movie)).alias("relevant"),
        F.collect_list(movie).alias("held"))


def judge_on_executors(recommendations: DataFrame, seen: DataFrame | SeenLists | None,
                       held: DataFrame,
                       catalogue: Catalogue, k: int, relevance_threshold: float,
                       seed: int = RANDOM_SEED) -> tuple[ListScores, ...]:
    """`ranking.judge` with each batch of users judged in a task: the model's lists (the
    `recommendations` table), most-popular's and random's for the same users, against `held`
    (user_id, movie_id, rating), leaving out `seen` pairs when given. Only per-batch partial
    figures and the distinct recommended movies come back to the driver."""
    spark = recommendations.sparkSession
    shared = spark.sparkContext.broadcast((catalogue.item_ids, catalogue.counts))
    recs = F.sort_array(F.collect_list(F.struct("rank", "movie_id", "score")))
    users = recommendations.groupBy(F.col("user_id").cast("int").alias("user_id")) \
        .agg(recs.alias("recs")) \
        .select("user_id", F.col("recs.movie_id").alias("items"),
                F.col("recs.score").alias("scores"), F.col("recs.rank").alias("ranks"))
    empty = F.array().cast("array<long>")
    if seen is not None:
        users = users.join(seen_lists(seen, movie_type="long"), "user_id", "left")
    users = users.join(_held_lists(held, relevance_threshold), "user_id", "left")
    for name in ("relevant", "held") + (("seen",) if seen is not None else ()):
        users = users.withColumn(name, F.coalesce(name, empty))
    exclude_seen = seen is not None

    def judge_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        item_ids, counts = shared.value
        cat = Catalogue(item_ids, counts)
        for batch in batches:
            user_ids = batch["user_id"].to_numpy(np.int64)
            lengths = batch["items"].map(len).to_numpy()
            mine = TopK(np.repeat(user_ids, lengths),
                        np.concatenate([*batch["items"], np.empty(0)]).astype(np.int64),
                        np.concatenate([*batch["scores"], np.empty(0)]).astype(np.float32),
                        np.concatenate([*batch["ranks"], np.empty(0)]).astype(np.int32))
            judged = HeldOut(k, relevance_threshold,
                             _flat(user_ids, batch["seen"]) if exclude_seen else None,
                             _flat(user_ids, batch["relevant"]), _flat(user_ids, batch["held"]))
            yield pd.DataFrame([_partial_row(p) for p in judge_partial(mine, judged, cat, seed)],
                               columns=PARTIAL_SCHEMA.fieldNames())

    return _combined(users.mapInPandas(judge_batches, PARTIAL_SCHEMA), catalogue, k)


def _combined(partials: DataFrame, catalogue: Catalogue, k: int) -> tuple[ListScores, ...]:
    """Every list's scores from the tasks' partial figures; only those and the number of
    distinct recommended movies per list reach the driver."""
    partials = partials.persist()
    try:
        rows = partials.drop("items").collect()
        coverage = dict(partials.select("list", F.explode("items").alias("item")).distinct()
                        .groupBy("list").count().collect())
    finally:
        partials.unpersist()
    return tuple(combine([_partial_of(r, k) for r in rows if r["list"] == name], catalogue.size, k,
                         coverage_items=int(coverage.get(name, 0)))
                 for name in LISTS)


def _partial_row(p: PartialScores) -> dict:
    row = {"list": p.name, "users": p.relevant.users_evaluated,
           "users_all": p.all_relevant.users_evaluated, "rows": p.rows,
           "popularity_sum": p.popularity_sum, "overlap_sum": p.overlap_sum,
           "items": p.items.astype(np.int64)}
    for suffix, metrics in (("", p.relevant), ("_all", p.all_relevant)):
        for metric in ("precision", "recall", "ndcg", "map"):
            row[f"{metric}{suffix}"] = getattr(metrics, f"{metric}_at_k")
    return row


def _partial_of(row, k: int) -> PartialScores:
    def metrics(suffix: str, users: int) -> RankingMetrics:
        return RankingMetrics(k, *(float("nan") if row[f"{m}{suffix}"] is None
                                           else row[f"{m}{suffix}"]
                                           for m in ("precision", "recall", "ndcg", "map")),
                              users)
    return PartialScores(row["list"], metrics("", row["users"]), metrics("_all", row["users_all"]),
                         row["rows"], row["popularity_sum"], row["overlap_sum"],
                         np.empty(0, dtype=np.int64))
