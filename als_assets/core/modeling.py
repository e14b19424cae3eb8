"""Splitting and fitting Spark ALS: plain functions, DataFrames and params in and out (the grid
search is in `tuning`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from pyspark import StorageLevel
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .experiments import AlsParams, ExperimentConfig, ImplicitConfig
from .spark import DEFAULT_STACK_ITERATIONS, uncheckpointed_iterations

USER, ITEM = "user_id", "movie_id"


SPLIT_LABEL = "_split"


@dataclass(frozen=True)
class Splits:
    training: DataFrame
    validation: DataFrame
    test: DataFrame
    # The ratings with each row's split index (`SPLIT_LABEL`), cached (`split_ratings`) or read
    # back from the written splits (`write_splits`): one pass over it hashes or counts all three
    # splits. None for splits made some other way.
    labelled: DataFrame | None = None


def split_bounds(ratios: tuple[float, ...]) -> list[float]:
    """The cumulative bounds Spark's `randomSplit` gives each split, computed as it does
    (weights over their sum, then a running sum from 0.0), so the float edges are the same."""
    total = 0.0
    for w in ratios:
        total += float(w)
    bounds = [0.0]
    for w in ratios:
        bounds.append(bounds[-1] + float(w) / total)
    return bounds


def split_labels(ratings: DataFrame, ratios: tuple[float, ...], seed: int) -> DataFrame:
    """`ratings` with `SPLIT_LABEL`: the index of the split Spark's `randomSplit(ratios, seed)`
    puts each row in. `randomSplit` sorts each partition by every column and then draws one
    uniform number per row from XORShiftRandom(seed + partition index), keeping the rows whose
    number lies in a split's [lower, upper) bounds, once per split. `rand(seed)` over the same
    sorted partitions draws the same numbers, so one pass labels every row as the three
    samples would, instead of sorting and sampling the input three times per use. (A row whose
    number falls past the last bound, a float rounding edge, is in no split, as in Spark.)"""
    bounds = split_bounds(ratios)
    x = F.rand(seed)
    sorted_rows = ratings.sortWithinPartitions(*ratings.columns)
    label = F.lit(None).cast("int")
    for i in reversed(range(len(ratios))):
        label = F.when((F.col("_x") >= bounds[i]) & (F.col("_x") < bounds[i + 1]),
                       F.lit(i)).otherwise(label)
    return sorted_rows.withColumn("_x", x).withColumn(SPLIT_LABEL, label).drop("_x")


def split_ratings(ratings: DataFrame, ratios: tuple[float, ...], seed: int) -> Splits:
    """Random 3-way split: the rows `randomSplit(ratios, seed)` gives for the same input
    partitions, labelled in one pass (`split_labels`) and cached. Each split is a filter of the
    cached labels, so writing the three splits and hashing them reads the cache, not the
    input, and a row is in exactly one split however often the splits are recomputed."""
    labelled = split_labels(ratings, ratios, seed).persist(StorageLevel.MEMORY_AND_DISK)
    parts = [labelled.filter(F.col(SPLIT_LABEL) == i).drop(SPLIT_LABEL)
             for i in range(len(ratios))]
    return Splits(*parts, labelled=labelled)


@dataclass(frozen=True)
class WrittenSplits:
    """Splits written as files in one pass (`write_splits`): the frames read back, and the
    folder of each split's Parquet files (None for a split with no rows)."""

    splits: Splits
    paths: tuple[str | None, ...]


def write_splits(ratings: DataFrame, ratios: tuple[float, ...], seed: int,
                 directory: str | Path) -> WrittenSplits:
    """The rows `split_ratings` gives, written under `directory` as Parquet partitioned by
    split: one pass that labels and writes every row, instead of labelling into a cache and
    writing each split from it. The splits and their labelled union are then read from those
    files (hashing them reads Parquet, not the ratings again). Rows in no split (a float edge
    of `split_labels`) go to a folder no split reads."""
    directory = str(directory)
    split_labels(ratings, ratios, seed).write.partitionBy(SPLIT_LABEL).parquet(directory)
    labelled = ratings.sparkSession.read.parquet(directory).select(*ratings.columns, SPLIT_LABEL)
    paths = tuple(str(Path(directory) / f"{SPLIT_LABEL}={i}") for i in range(len(ratios)))
    paths = tuple(p if Path(p).is_dir() else None for p in paths)
    parts = [labelled.filter(F.col(SPLIT_LABEL) == i).drop(SPLIT_LABEL)
             for i in range(len(ratios))]
    return WrittenSplits(Splits(*parts, labelled=labelled), paths)


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


def to_interactions(ratings: DataFrame, implicit: ImplicitConfig) -> DataFrame:
    """Ratings as implicit ALS's input value r (confidence 1 + alpha * r, preference r > 0).

    positives `threshold`: a rating below the threshold becomes r = 0, which Spark's implicit
    ALS reads as no observation at all (it adds no confidence and no preference), exactly like an
    unrated pair; the notebook's 0/1 interactions are `threshold` with `binary` confidence.
    positives `all`: every rating is an interaction. confidence: `binary` r = 1, `rating` r = the
    stars, `log` r = log(1 + stars).
    """
    value = {"binary": F.lit(1.0), "rating": F.col("rating"),
             "log": F.log1p(F.col("rating"))}[implicit.confidence]
    if implicit.positives == "threshold":
        value = F.when(F.col("rating") >= implicit.threshold, value).otherwise(F.lit(0.0))
    return ratings.withColumn("rating", value.cast("float"))


def training_data(training: DataFrame, config: ExperimentConfig) -> DataFrame:
    """What ALS is fitted on: the ratings (explicit) or their interactions (implicit)."""
    return to_interactions(training, config.implicit) if config.implicit.enabled else training


def make_als(
    params: AlsParams,
    implicit: bool,
    cold_start_strategy: str,
    seed: int,
    blocks: int,
    scored_once: bool = False,
    uncheckpointed: int = DEFAULT_STACK_ITERATIONS,
) -> ALS:
    """The ALS estimator, with blocks sized to the cores and checkpoints where they are needed.

    `scored_once`: the model's factor tables are read once and the model discarded (a CV/TVS
    grid point). Spark then need not cache them and count them at the end of the fit
    (finalStorageLevel NONE): the one read computes them instead, two Spark jobs fewer per fit,
    same factors (~0.19 s of 1.4 s per fit on a 4k-rating sample, measured). Its intermediate
    blocks are then freed by Spark's cleaner when the model is garbage collected, not at once.

    `uncheckpointed`: the iterations a fit may run without a checkpoint in the session
    (`uncheckpointed_iterations`). Longer fits checkpoint every that many iterations (the
    session has a checkpoint directory): without, ALS's lineage grows with every iteration until
    it overflows the JVM stack (with default stacks seen here at 15 iterations on 75k ratings,
    and at 20 on 60k). Shorter fits do not checkpoint at all: Spark's explicit ALS checkpoints at
    iteration 0 too (`0 % interval == 0`), which cuts no lineage worth cutting, and each
    checkpoint writes the factors and runs a job (a 15-iteration fit of a 4k-rating sample
    1.71 s without its two checkpoints, 2.15 s with them, measured).
    """
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
        checkpointInterval=checkpoint_interval(params.max_iter, uncheckpointed),
        finalStorageLevel="NONE" if scored_once else "MEMORY_AND_DISK",
    )


def checkpoint_interval(max_iter: int, uncheckpointed: int = DEFAULT_STACK_ITERATIONS) -> int:
    """ALS's checkpointInterval for a fit of `max_iter` iterations (-1: no checkpoints)."""
    return uncheckpointed if max_iter > uncheckpointed else -1


def fit_als(
    training: DataFrame, params: AlsParams, config: ExperimentConfig, blocks: int
) -> tuple[ALSModel, float]:
    """Fit one model; returns it with its fit time in seconds."""
    data = training_data(training, config)
    als = make_als(params, config.implicit.enabled, config.cold_start_strategy,
                   config.tuning.seed, blocks,
                   uncheckpointed=uncheckpointed_iterations(training.sparkSession))
    start = time.perf_counter()
    model = als.fit(data)
    # ALS.fit is lazy about nothing: factors are materialized when fit returns.
    return model, time.perf_counter() - start
