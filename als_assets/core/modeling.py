"""Splitting, fitting and tuning Spark ALS: plain functions, DataFrames and params in and out."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.ml.evaluation import RegressionEvaluator
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.ml.tuning import CrossValidator, TrainValidationSplit
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .experiments import AlsParams, ExperimentConfig
from .metrics import ranking_metrics, regression_metrics, relevant_items
from .topk import recommend_for_users

USER, ITEM = "user_id", "movie_id"


@dataclass(frozen=True)
class Splits:
    training: DataFrame
    validation: DataFrame
    test: DataFrame


def split_ratings(ratings: DataFrame, ratios: tuple[float, ...], seed: int) -> Splits:
    """Random 3-way split. The input is cached first: randomSplit samples each split from a
    recomputation of its input, and an input whose row order can change between recomputations
    (a shuffle, a re-read) would give overlapping or missing rows."""
    ratings = ratings.persist(StorageLevel.MEMORY_AND_DISK)
    training, validation, test = ratings.randomSplit(list(ratios), seed=seed)
    return Splits(training, validation, test)


def split_overlap_summary(ratings: DataFrame, splits: Splits) -> dict[str, int]:
    """Counts that prove the splits are disjoint and cover every rating, in one pass over the
    three splits (plus the count of the cached ratings)."""
    parts = [splits.training, splits.validation, splits.test]
    labelled = parts[0].select(USER, ITEM, F.lit(0).alias("part"))
    for i, p in enumerate(parts[1:], start=1):
        labelled = labelled.unionAll(p.select(USER, ITEM, F.lit(i).alias("part")))
    per_pair = labelled.groupBy(USER, ITEM).agg(
        *(F.sum((F.col("part") == i).cast("int")).alias(f"p{i}") for i in range(3)))
    row = per_pair.agg(*(F.sum(f"p{i}").alias(f"p{i}") for i in range(3)),
                       F.count(F.lit(1)).alias("pairs")).first()
    sizes = [int(row[f"p{i}"] or 0) for i in range(3)]
    return {
        "ratings": ratings.count(),
        "training": sizes[0],
        "validation": sizes[1],
        "test": sizes[2],
        "sum_of_splits": sum(sizes),
        "distinct_pairs_in_splits": int(row["pairs"]),
    }


def to_interactions(ratings: DataFrame, threshold: float) -> DataFrame:
    """Implicit feedback as in the notebook: rating >= threshold is 1.0 (liked), else 0.0.

    Implicit ALS reads r as confidence 1 + alpha*r on preference p = [r > 0], so 0-rows add
    confidence-1 'no preference' observations, exactly like unobserved pairs.
    """
    return ratings.withColumn("rating", (F.col("rating") >= threshold).cast("float"))


def make_als(
    params: AlsParams,
    implicit: bool,
    cold_start_strategy: str,
    seed: int,
    blocks: int,
) -> ALS:
    """The ALS estimator, with blocks sized to the cores and periodic checkpoints."""
    return ALS(
        userCol=USER,
        itemCol=ITEM,
        ratingCol="rating",
        rank=params.rank,
        maxIter=params.max_iter,
        regParam=params.reg_param,
        alpha=params.alpha,
        implicitPrefs=implicit,
        coldStartStrategy=cold_start_strategy,
        seed=seed,
        numUserBlocks=blocks,
        numItemBlocks=blocks,
        checkpointInterval=5,
    )


def fit_als(
    training: DataFrame, params: AlsParams, config: ExperimentConfig, blocks: int
) -> tuple[ALSModel, float]:
    """Fit one model; returns it with its fit time in seconds."""
    data = to_interactions(training, config.implicit.threshold) if config.implicit.enabled \
        else training
    als = make_als(params, config.implicit.enabled, config.cold_start_strategy,
                   config.tuning.seed, blocks)
    start = time.perf_counter()
    model = als.fit(data)
    # ALS.fit is lazy about nothing: factors are materialized when fit returns.
    return model, time.perf_counter() - start


@dataclass(frozen=True)
class GridScore:
    params: AlsParams
    score: float
    seconds: float | None = None


@dataclass(frozen=True)
class TuningResult:
    """The grid search's outcome; `metric` is what `score` measures (lower_is_better says how)."""

    method: str
    metric: str
    lower_is_better: bool
    best: AlsParams
    best_score: float
    grid: tuple[GridScore, ...]
    tuning_rows: int
    seconds: float

    def markdown_table(self) -> str:
        head = "| rank | maxIter | regParam | alpha | " + self.metric + " | best |\n"
        head += "|---:|---:|---:|---:|---:|:-:|\n"
        rows = []
        for g in self.grid:
            mark = "**best**" if g.params == self.best else ""
            rows.append(
                f"| {g.params.rank} | {g.params.max_iter} | {g.params.reg_param:g} | "
                f"{g.params.alpha:g} | {g.score:.4f} | {mark} |"
            )
        return head + "\n".join(rows)


def _pick_best(grid: list[GridScore], lower_is_better: bool) -> GridScore:
    finite = [g for g in grid if g.score == g.score]
    if not finite:
        raise RuntimeError("every grid point scored NaN: the validation split shares no users "
                           "or items with training")
    return min(finite, key=lambda g: g.score if lower_is_better else -g.score)


def tune(
    training: DataFrame,
    validation: DataFrame,
    config: ExperimentConfig,
    blocks: int,
) -> TuningResult:
    """Search the config's grid with its method (holdout, tvs or cv)."""
    tcfg = config.tuning
    points = list(tcfg.grid.points())
    start = time.perf_counter()
    if tcfg.method == "holdout":
        grid, metric, lower = _tune_holdout(training, validation, points, config, blocks)
        rows = training.count()
    else:
        data = training
        if tcfg.sample_fraction < 1.0:
            data = training.sample(fraction=tcfg.sample_fraction, seed=tcfg.seed)
        data = data.persist(StorageLevel.MEMORY_AND_DISK)
        rows = data.count()
        grid, metric, lower = _tune_spark(data, points, config, blocks)
        data.unpersist()
    best = _pick_best(grid, lower)
    return TuningResult(
        method=tcfg.method,
        metric=metric,
        lower_is_better=lower,
        best=best.params,
        best_score=best.score,
        grid=tuple(grid),
        tuning_rows=rows,
        seconds=time.perf_counter() - start,
    )


def _tune_holdout(training, validation, points, config, blocks):
    k = config.ranking.k
    if config.implicit.enabled:
        relevant = relevant_items(validation, config.implicit.threshold)

    def score(params: AlsParams) -> GridScore:
        model, seconds = fit_als(training, params, config, blocks)
        if config.implicit.enabled:
            recs = recommend_for_users(
                model.userFactors, model.itemFactors, k,
                seen=training if config.ranking.exclude_seen else None,
            )
            value = ranking_metrics(recs, relevant, k).ndcg_at_k
        else:
            preds = model.copy({model.coldStartStrategy: "drop"}).transform(validation)
            value = regression_metrics(preds).rmse
        return GridScore(params, value, seconds)

    workers = max(1, min(config.tuning.parallelism, len(points)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        grid = list(pool.map(score, points))
    if config.implicit.enabled:
        return grid, f"ndcg_at_{k}", False
    return grid, "rmse", True


def _tune_spark(data, points, config, blocks):
    tcfg = config.tuning
    als = make_als(points[0], False, "drop", tcfg.seed, blocks)
    maps = [
        {als.rank: p.rank, als.maxIter: p.max_iter, als.regParam: p.reg_param, als.alpha: p.alpha}
        for p in points
    ]
    evaluator = RegressionEvaluator(metricName="rmse", labelCol="rating",
                                    predictionCol="prediction")
    if tcfg.method == "tvs":
        tuner = TrainValidationSplit(estimator=als, estimatorParamMaps=maps, evaluator=evaluator,
                                     trainRatio=tcfg.train_ratio, seed=tcfg.seed,
                                     parallelism=tcfg.parallelism)
        fitted = tuner.fit(data)
        metrics = fitted.validationMetrics
    else:
        tuner = CrossValidator(estimator=als, estimatorParamMaps=maps, evaluator=evaluator,
                               numFolds=tcfg.num_folds, seed=tcfg.seed,
                               parallelism=tcfg.parallelism)
        fitted = tuner.fit(data)
        metrics = fitted.avgMetrics
    grid = [GridScore(p, float(m)) for p, m in zip(points, metrics, strict=True)]
    return grid, "rmse", True
