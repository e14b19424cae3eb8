"""Micro-benchmarks: the project's all-items similarity and ranking metrics against the
notebook's UDF way.

usage (from the repo root):
    python benchmarks/micro.py [--out benchmarks/results/micro.json]
        [--large-items 100000] [--udf-queries 5] [--repeat 3]

Similarity
  project:  als_assets.core.topk.rank_similar_items(item_factors, eligible, 10): every item's
            top-10 cosine neighbours (collect factors, blocked BLAS product, back to Spark);
            timed until the result DataFrame is counted.
  notebook: `find_similar_movies` exactly as in seed_notebook.py (collect the target vector,
            a Python cosine UDF over every item, filter, orderBy, limit 10, join movies,
            collect). It answers ONE movie per call; it is timed on --udf-queries movies and the
            all-items time is EXTRAPOLATED as (median seconds per movie) x items.
  Sizes: ml-latest-small-sized (9,724 items x rank 20, the final model's rank) and
  --large-items random items x rank 20.
Ranking metrics
  project:  als_assets.core.metrics.ranking_metrics(recs, relevant, 10) (top-K collected, NumPy).
  notebook: collect_set of relevant movies per user, array_intersect for P/R, and the
            notebook's NDCG@K Python UDF, exactly as in seed_notebook.py.
  Sizes: ml-latest-small-sized (610 users, 10 recs each, ~20k test ratings) and 20x that.
Both run in one local[2] SparkSession built by the project (als_assets.core.spark).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine_info, median, publish_report, write_json  # noqa: E402

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

ML_SMALL_ITEMS, ML_SMALL_USERS, RANK = 9724, 610, 20


def timed(fn, repeat: int) -> tuple[float, list[float], object]:
    times, value = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return median(times), [round(x, 3) for x in times], value


# --------------------------------------------------------------------------------------------
# The notebook's code, mirrored exactly (seed_notebook.py, stages "similarity" and "ranking").


def notebook_find_similar_movies(item_factors, movies, target_movie_id, n=10):
    from pyspark.sql.functions import col, desc, udf
    from pyspark.sql.types import DoubleType

    target_np = np.array(item_factors.filter(col("id") == target_movie_id).select("features")
                         .collect()[0][0])

    @udf(DoubleType())
    def cosine_sim(features):
        v = np.array(features)
        return float(np.dot(target_np, v) / (np.linalg.norm(target_np) * np.linalg.norm(v)))

    return (item_factors.withColumn("similarity", cosine_sim(col("features")))
            .filter(col("id") != target_movie_id).orderBy(desc("similarity")).limit(n)
            .withColumnRenamed("id", "movie_id").join(movies, "movie_id")
            .select("movie_id", "title", "genres", "similarity"))


def notebook_ranking_metrics(user_recs, test, K=10, THRESHOLD=4.0):
    """user_recs: recommendForAllUsers' shape (user_id, recommendations array<struct>)."""
    from pyspark.sql.functions import (
        array_intersect,
        avg,
        col,
        collect_set,
        expr,
        size,
        udf,
    )
    from pyspark.sql.functions import round as sround
    from pyspark.sql.types import FloatType

    relevant_items = (test.filter(col("rating") >= THRESHOLD).groupBy("user_id")
                      .agg(collect_set("movie_id").alias("relevant_movies")))
    user_recs_flat = user_recs.select(
        col("user_id"), expr("transform(recommendations, x -> x.movie_id)").alias("recommended_movies"))
    metrics = (user_recs_flat.join(relevant_items, "user_id")
               .withColumn("hits", size(array_intersect(col("recommended_movies"), col("relevant_movies"))))
               .withColumn("precision_at_k", col("hits") / K)
               .withColumn("recall_at_k", col("hits") / size(col("relevant_movies"))))
    row = metrics.agg(sround(avg("precision_at_k"), 4).alias("p"), sround(avg("recall_at_k"), 4).alias("r")).collect()[0]

    @udf(FloatType())
    def ndcg_at_k(recommended, relevant, k=10):
        if not recommended or not relevant:
            return 0.0
        relevant_set = set(relevant)
        dcg = 0.0
        for i, item in enumerate(recommended[:k]):
            if item in relevant_set:
                dcg += 1.0 / np.log2(i + 2)
        ideal_hits = min(len(relevant_set), k)
        idcg = sum(1.0 / np.log2(i + 2) for i in range(ideal_hits))
        return float(dcg / idcg) if idcg > 0 else 0.0

    ndcg_result = user_recs_flat.join(relevant_items, "user_id").withColumn(
        "ndcg", ndcg_at_k(col("recommended_movies"), col("relevant_movies")))
    ndcg = ndcg_result.agg(sround(avg("ndcg"), 4)).collect()[0][0]
    return {"precision_at_10": row["p"], "recall_at_10": row["r"], "ndcg_at_10": ndcg}


# --------------------------------------------------------------------------------------------


def factor_frames(spark, n_items: int, rank: int, seed: int):
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    rng = np.random.default_rng(seed)
    ids = np.arange(1, n_items + 1, dtype=np.int32)
    mat = rng.standard_normal((n_items, rank)).astype(np.float32)
    schema = T.StructType([T.StructField("id", T.IntegerType(), False),
                           T.StructField("features", T.ArrayType(T.FloatType()), False)])
    pdf = pd.DataFrame({"id": ids, "features": list(mat)})
    # ALS's itemFactors shape (id, features); cached so no test times the Python->JVM transfer.
    item_factors = spark.createDataFrame(pdf, schema=schema).cache()
    item_factors.count()
    movies = spark.createDataFrame(pd.DataFrame({
        "movie_id": ids, "title": [f"Movie {i}" for i in ids], "genres": "Drama"})).cache()
    movies.count()
    project_factors = item_factors.select(F.col("id").alias("movie_id"), "features").cache()
    project_factors.count()
    eligible = movies.select("movie_id").cache()
    eligible.count()
    return item_factors, movies, project_factors, eligible


def bench_similarity(spark, n_items: int, udf_queries: int, repeat: int) -> dict:
    from als_assets.core.topk import rank_similar_items, top_k

    item_factors, movies, project_factors, eligible = factor_frames(spark, n_items, RANK, 7)
    out: dict = {"items": n_items, "rank": RANK, "top_n": 10}

    def project():
        table = rank_similar_items(project_factors, eligible, 10)
        return table.count()

    project()  # warm-up
    med, times, rows = timed(project, repeat)
    out["project_all_items_s"] = round(med, 3)
    out["project_runs_s"] = times
    out["project_rows"] = rows

    # The pure BLAS part (no Spark collect / createDataFrame).
    mat = np.vstack(project_factors.orderBy("movie_id").toPandas()["features"].to_numpy()
                    ).astype(np.float32)
    mat /= np.linalg.norm(mat, axis=1, keepdims=True)
    idx = np.arange(n_items)
    med_np, _, _ = timed(lambda: top_k(mat, mat, 10, idx, idx), repeat)
    out["project_numpy_top_k_only_s"] = round(med_np, 3)

    rng = np.random.default_rng(11)
    queries = [int(x) for x in rng.choice(np.arange(1, n_items + 1), udf_queries, replace=False)]
    notebook_find_similar_movies(item_factors, movies, queries[0]).collect()  # warm-up
    per = []
    agree = []
    for q in queries:
        t = time.perf_counter()
        rows = notebook_find_similar_movies(item_factors, movies, q).collect()
        per.append(time.perf_counter() - t)
        # same neighbours as the project's table?
        nb = [r["movie_id"] for r in rows]
        target = mat[q - 1]
        scores = mat @ target
        scores[q - 1] = -np.inf
        ref = list(np.argsort(-scores, kind="stable")[:10] + 1)
        agree.append(len(set(nb) & set(ref)))
    per_movie = median(per)
    out["notebook_udf_queries_timed"] = len(queries)
    out["notebook_udf_per_movie_s"] = round(per_movie, 3)
    out["notebook_udf_per_movie_runs_s"] = [round(x, 3) for x in per]
    out["notebook_udf_all_items_s_EXTRAPOLATED"] = round(per_movie * n_items, 1)
    out["speedup_all_items_EXTRAPOLATED"] = round(per_movie * n_items / med, 1)
    out["neighbour_agreement_udf_vs_numpy_of_10"] = agree
    for df in (item_factors, movies, project_factors, eligible):
        df.unpersist()
    return out


def ranking_inputs(spark, n_users: int, n_items: int, test_rows: int, seed: int):
    from pyspark.sql import functions as F

    rng = np.random.default_rng(seed)
    # top-10 recs per user: distinct movies, biased towards popular ones so hits happen
    pop = 1.0 / (np.arange(n_items) + 10.0)
    pop /= pop.sum()
    # 10 distinct movies per user (Gumbel top-k = sampling without replacement by popularity)
    chunks = []
    for start in range(0, n_users, 1000):
        m = min(1000, n_users - start)
        keys = np.log(pop)[None, :] - np.log(-np.log(rng.random((m, n_items))))
        chunks.append(np.argpartition(-keys, 10, axis=1)[:, :10] + 1)
    top = np.vstack(chunks)
    recs = pd.DataFrame({
        "user_id": np.repeat(np.arange(1, n_users + 1), 10),
        "movie_id": top.ravel().astype(np.int64),
        "score": np.tile(np.linspace(1.0, 0.1, 10), n_users).astype(np.float32),
        "rank": np.tile(np.arange(1, 11), n_users),
    })
    test = pd.DataFrame({"user_id": rng.integers(1, n_users + 1, test_rows),
                         "movie_id": rng.choice(n_items, test_rows, p=pop) + 1,
                         "rating": rng.choice(np.arange(0.5, 5.5, 0.5), test_rows)})
    test = test.drop_duplicates(["user_id", "movie_id"])
    recs_df = spark.createDataFrame(recs).cache()
    test_df = spark.createDataFrame(test).cache()
    recs_df.count()
    test_df.count()
    # recommendForAllUsers' shape for the notebook's code
    user_recs = (recs_df.groupBy("user_id").agg(F.sort_array(F.collect_list(F.struct(
        "rank", "movie_id", F.col("score").alias("rating")))).alias("r"))
        .select("user_id", F.expr("transform(r, x -> named_struct('movie_id', x.movie_id, "
                                  "'rating', x.rating))").alias("recommendations"))).cache()
    user_recs.count()
    return recs_df, test_df, user_recs


def bench_ranking(spark, n_users: int, n_items: int, test_rows: int, repeat: int) -> dict:
    from als_assets.core.metrics import ranking_metrics, relevant_items

    recs_df, test_df, user_recs = ranking_inputs(spark, n_users, n_items, test_rows, 5)

    def project():
        return ranking_metrics(recs_df, relevant_items(test_df, 4.0), 10)

    def notebook():
        return notebook_ranking_metrics(user_recs, test_df)

    project()
    notebook()
    p_med, p_runs, p_val = timed(project, repeat)
    n_med, n_runs, n_val = timed(notebook, repeat)
    for df in (recs_df, test_df, user_recs):
        df.unpersist()
    return {
        "users": n_users, "items": n_items, "test_rows": test_rows, "k": 10,
        "project_s": round(p_med, 3), "project_runs_s": p_runs,
        "notebook_udf_s": round(n_med, 3), "notebook_runs_s": n_runs,
        "speedup": round(n_med / p_med, 2),
        "project_values": {"precision_at_10": round(p_val.precision_at_k, 4),
                           "recall_at_10": round(p_val.recall_at_k, 4),
                           "ndcg_at_10": round(p_val.ndcg_at_k, 4),
                           "users": p_val.users_evaluated},
        "notebook_values": n_val,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default=str(RESULTS / "micro.json"))
    ap.add_argument("--large-items", type=int, default=100_000)
    ap.add_argument("--udf-queries", type=int, default=5)
    ap.add_argument("--large-udf-queries", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--master", default="local[2]")
    args = ap.parse_args()

    from als_assets.core.spark import SparkSettings, build_spark_session

    t = time.perf_counter()
    spark = build_spark_session(SparkSettings(master=args.master, driver_memory="6g",
                                              app_name="als_micro"))
    session_s = time.perf_counter() - t
    res = {"machine": machine_info(), "args": vars(args), "session_start_s": round(session_s, 2)}
    print("similarity, ml-latest-small size ...", file=sys.stderr, flush=True)
    res["similarity_ml_small"] = bench_similarity(spark, ML_SMALL_ITEMS, args.udf_queries,
                                                  args.repeat)
    print("similarity, large ...", file=sys.stderr, flush=True)
    res["similarity_large"] = bench_similarity(spark, args.large_items, args.large_udf_queries,
                                               max(1, args.repeat - 2))
    print("ranking metrics ...", file=sys.stderr, flush=True)
    res["ranking_ml_small"] = bench_ranking(spark, ML_SMALL_USERS, ML_SMALL_ITEMS, 20_000,
                                            args.repeat)
    res["ranking_20x"] = bench_ranking(spark, 20 * ML_SMALL_USERS, ML_SMALL_ITEMS, 400_000,
                                       args.repeat)
    spark.stop()
    write_json(Path(args.out), res)

    lines = ["all-items similarity (top-10 cosine neighbours of every item, rank 20):",
             "| items | project rank_similar_items s | of which numpy top_k s | notebook UDF s per "
             "movie (measured, n) | notebook UDF all items s (EXTRAPOLATED) | speed-up (extrap.) |",
             "|---:|---:|---:|---:|---:|---:|"]
    for key in ("similarity_ml_small", "similarity_large"):
        s = res[key]
        lines.append(f"| {s['items']} | {s['project_all_items_s']} | "
                     f"{s['project_numpy_top_k_only_s']} | {s['notebook_udf_per_movie_s']} "
                     f"(n={s['notebook_udf_queries_timed']}) | "
                     f"{s['notebook_udf_all_items_s_EXTRAPOLATED']} | "
                     f"{s['speedup_all_items_EXTRAPOLATED']}x |")
    lines += ["", "ranking metrics (P/R/NDCG@10):",
              "| users | test rows | project s | notebook (array_intersect + NDCG UDF) s | "
              "speed-up | project P/R/NDCG | notebook P/R/NDCG |",
              "|---:|---:|---:|---:|---:|---|---|"]
    for key in ("ranking_ml_small", "ranking_20x"):
        r = res[key]
        pv, nv = r["project_values"], r["notebook_values"]
        lines.append(f"| {r['users']} | {r['test_rows']} | {r['project_s']} | "
                     f"{r['notebook_udf_s']} | {r['speedup']}x | "
                     f"{pv['precision_at_10']}/{pv['recall_at_10']}/{pv['ndcg_at_10']} | "
                     f"{nv['precision_at_10']}/{nv['recall_at_10']}/{nv['ndcg_at_10']} |")
    publish_report(res, lines, Path(args.out))


if __name__ == "__main__":
    main()
