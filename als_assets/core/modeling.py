"""Splitting, fitting and tuning Spark ALS: plain functions, DataFrames and params in and out."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from pyspark import StorageLevel
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .experiments import AlsParams, ExperimentConfig, TuningConfig
from .metrics import ranking_metrics, relevant_items
from .spark import DEFAULT_STACK_ITERATIONS, uncheckpointed_iterations
from .topk import factors_to_numpy, recommend_for_users

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
    data = to_interactions(training, config.implicit.threshold) if config.implicit.enabled \
        else training
    als = make_als(params, config.implicit.enabled, config.cold_start_strategy,
                   config.tuning.seed, blocks,
                   uncheckpointed=uncheckpointed_iterations(training.sparkSession))
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
    # ALS blocks of each fit: the cores are shared by the fits running at once.
    blocks_per_fit: int = 1
    # Holdout tuning fits the best point on the whole training split with the experiment's own
    # settings, i.e. exactly the model the experiment's final fit would make: it is kept so that
    # fit is not repeated. In memory after tuning; on disk (a Spark ALSModel folder) once stored.
    best_model: ALSModel | None = field(default=None, compare=False, repr=False)
    best_model_path: str | None = None
    # Identifies what the best model was fitted on and how (set by the caller): the final fit
    # reuses the model only when its own key is equal.
    best_model_key: str | None = None

    def prepare_for_storage(self, folder: Path) -> TuningResult:
        """What the store writes: the Spark model is saved beside the JSON value, by path."""
        if self.best_model is None:
            return self
        path = folder / "best_model"
        self.best_model.save(str(path))
        return replace(self, best_model=None, best_model_path=str(path))

    def load_best_model(self) -> ALSModel | None:
        """The stored best model, or None (tvs/cv: fitted on a sample; or no longer stored)."""
        if self.best_model is not None:
            return self.best_model
        if self.best_model_path and Path(self.best_model_path).exists():
            return ALSModel.load(self.best_model_path)
        return None

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


def fit_blocks(blocks: int, fits_at_once: int) -> int:
    """ALS blocks for each of `fits_at_once` concurrent fits, out of `blocks` for one fit."""
    return max(1, blocks // max(1, fits_at_once))


def _order_key(score: float, index: int, lower_is_better: bool) -> tuple[float, int]:
    """Sorts grid points best first: the better score, then (on a tie) the earlier point."""
    return (score if lower_is_better else -score, index)


def _pick_best(grid: list[GridScore], lower_is_better: bool) -> GridScore:
    finite = [(i, g) for i, g in enumerate(grid) if g.score == g.score]
    if not finite:
        raise RuntimeError("every grid point scored NaN: the validation split shares no users "
                           "or items with training")
    return min(finite, key=lambda ig: _order_key(ig[1].score, ig[0], lower_is_better))[1]


def tune(
    training: DataFrame,
    validation: DataFrame,
    config: ExperimentConfig,
    blocks: int,
) -> TuningResult:
    """Search the config's grid with its method (holdout, tvs or cv)."""
    tcfg = config.tuning
    points = list(tcfg.grid.points())
    # Fits running at once share the cores: each gets blocks / fits-at-once ALS blocks (on
    # small data one block per fit and two fits at once beats two blocks per fit, one at a time:
    # ALS's cost there is per task and per stage, not per rating).
    blocks = fit_blocks(blocks, min(tcfg.parallelism, len(points)))
    start = time.perf_counter()
    best_model = None
    if tcfg.method == "holdout":
        grid, metric, lower, best_model = _tune_holdout(training, validation, points, config,
                                                        blocks)
        rows = training.count()
    else:
        data = training
        if tcfg.sample_fraction < 1.0:
            data = training.sample(fraction=tcfg.sample_fraction, seed=tcfg.seed)
        data = data.persist(StorageLevel.MEMORY_AND_DISK)
        rows = data.count()
        grid, metric, lower = _tune_folds(data, points, config, blocks)
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
        blocks_per_fit=blocks,
        best_model=best_model,
    )


@dataclass(frozen=True)
class HeldOutRatings:
    """Ratings to score models on, collected to the driver once for a whole grid."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray

    @classmethod
    def collect(cls, frame: DataFrame) -> HeldOutRatings:
        pdf = frame.select(USER, ITEM, "rating").toPandas()
        return cls(pdf[USER].to_numpy(np.int64), pdf[ITEM].to_numpy(np.int64),
                   pdf["rating"].to_numpy(np.float64))


def heldout_rmse(model: ALSModel, held: HeldOutRatings) -> float:
    """RMSE of the model on held-out ratings, from its factor tables on the driver.

    The same number as RegressionEvaluator on `model.transform(held)` with coldStartStrategy
    'drop' (prediction = the float32 dot product of the user's and the item's factors; rows whose
    user or item has no factors are left out), without a Spark join and aggregation per model:
    for a grid of small fits the per-query cost is most of the evaluation.
    """
    user_ids, users = factors_to_numpy(model.userFactors)
    item_ids, items = factors_to_numpy(model.itemFactors)
    if len(user_ids) == 0 or len(item_ids) == 0 or len(held.ratings) == 0:
        return float("nan")
    u = np.searchsorted(user_ids, held.users).clip(0, len(user_ids) - 1)
    i = np.searchsorted(item_ids, held.items).clip(0, len(item_ids) - 1)
    known = (user_ids[u] == held.users) & (item_ids[i] == held.items)
    if not known.any():
        return float("nan")
    predicted = np.einsum("ij,ij->i", users[u[known]], items[i[known]]).astype(np.float64)
    return float(np.sqrt(np.mean((predicted - held.ratings[known]) ** 2)))


def _tune_holdout(training, validation, points, config, blocks):
    k = config.ranking.k
    if config.implicit.enabled:
        relevant = relevant_items(validation, config.implicit.threshold)
    else:
        held = HeldOutRatings.collect(validation)
    lower = not config.implicit.enabled
    # Only the best model so far is kept (fits run in threads), ordered as _pick_best orders.
    kept: dict = {}
    lock = threading.Lock()

    def keep_if_best(index: int, model: ALSModel, value: float) -> None:
        if value != value:
            return
        key = _order_key(value, index, lower)
        with lock:
            if "key" not in kept or key < kept["key"]:
                kept.update(key=key, model=model)

    def score(index: int) -> GridScore:
        params = points[index]
        model, seconds = fit_als(training, params, config, blocks)
        if config.implicit.enabled:
            recs = recommend_for_users(
                model.userFactors, model.itemFactors, k,
                seen=training if config.ranking.exclude_seen else None,
            )
            value = ranking_metrics(recs, relevant, k).ndcg_at_k
        else:
            value = heldout_rmse(model, held)
        keep_if_best(index, model, value)
        return GridScore(params, value, seconds)

    workers = max(1, min(config.tuning.parallelism, len(points)))
    grid: list[GridScore | None] = [None] * len(points)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        order = fit_order(points)
        for index, result in zip(order, pool.map(score, order), strict=True):
            grid[index] = result
    best = kept.get("model")
    if config.implicit.enabled:
        return grid, f"ndcg_at_{k}", False, best
    return grid, "rmse", True, best


def fold_pairs(data: DataFrame, tuning: TuningConfig) -> list[tuple[DataFrame, DataFrame]]:
    """(train, validation) pairs exactly as Spark's CrossValidator (random k-fold) and
    TrainValidationSplit make them: one rand(seed) column, folds by its value range."""
    df = data.select("*", F.rand(tuning.seed).alias(_FOLD_RAND))
    rand = F.col(_FOLD_RAND)
    if tuning.method == "tvs":
        held_out = rand >= tuning.train_ratio
        return [(df.filter(~held_out), df.filter(held_out))]
    h = 1.0 / tuning.num_folds
    pairs = []
    for i in range(tuning.num_folds):
        held_out = (rand >= i * h) & (rand < (i + 1) * h)
        pairs.append((df.filter(~held_out), df.filter(held_out)))
    return pairs


_FOLD_RAND = "_fold_rand"


def _tune_folds(data, points, config, blocks):
    """TrainValidationSplit (one fold) or k-fold CrossValidator over the grid: Spark's folds and
    metric (RMSE, averaged over folds), `parallelism` fits at once. Unlike Spark's tuners it does
    not refit the best point on the whole sample afterwards: that model would be discarded (the
    experiment's model is fitted on all of training). All (fold, point) fits go to one pool,
    longest first, so no fold waits for the last fit of the one before."""
    tcfg = config.tuning
    workers = max(1, min(tcfg.parallelism, len(points)))
    scores = np.zeros((len(points),))
    seconds = np.zeros((len(points),))
    trains, helds = [], []
    uncheckpointed = uncheckpointed_iterations(data.sparkSession)
    try:
        for train, validation in fold_pairs(data, tcfg):
            trains.append(train.drop(_FOLD_RAND).persist(StorageLevel.MEMORY_AND_DISK))
            helds.append(HeldOutRatings.collect(validation))

        def score(task: tuple[int, int]) -> tuple[int, float, float]:
            fold, index = task
            als = make_als(points[index], False, "drop", tcfg.seed, blocks, scored_once=True,
                           uncheckpointed=uncheckpointed)
            start = time.perf_counter()
            model = als.fit(trains[fold])
            return index, heldout_rmse(model, helds[fold]), time.perf_counter() - start

        tasks = [(fold, index) for index in fit_order(points) for fold in range(len(trains))]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for index, value, took in pool.map(score, tasks):
                scores[index] += value
                seconds[index] += took
    finally:
        for train in trains:
            train.unpersist()
    scores /= len(trains)
    grid = [GridScore(p, float(m), float(t)) for p, m, t in zip(points, scores, seconds,
                                                                 strict=True)]
    return grid, "rmse", True


def fit_order(points: list[AlsParams]) -> list[int]:
    """Grid indices, the costliest fits first, so the fits running at once finish close together
    instead of one long fit running alone at the end. A fit's cost grows with its iterations,
    and less with its rank (on ml-latest-small's CV sample rank 50 cost ~1.4x rank 10 at equal
    iterations; 15 iterations ~1.5x 10)."""
    return sorted(range(len(points)),
                  key=lambda i: (-points[i].max_iter * (1 + points[i].rank / 100), i))
