"""The grid search: holdout, TrainValidationSplit or CrossValidator over an ALS grid, scored by
RMSE or by a ranking metric of the top-K lists, with failed points recorded instead of fatal."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from pyspark import StorageLevel
from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .distributed import (
    DRIVER_MAX_ROWS,
    choose_path,
    judge_on_executors,
    recommend_on_executors,
)
from .experiments import AlsParams, ExperimentConfig, TuningConfig
from .modeling import fit_als, make_als, training_data
from .plan_memo import mean_rating
from .ranking import Catalogue, HeldOut, model_lists, popular_lists
from .spark import uncheckpointed_iterations
from .topk import factors_to_numpy

USER, ITEM = "user_id", "movie_id"


@dataclass(frozen=True)
class GridScore:
    """One grid point's score (NaN when its fit failed: `error` says why)."""

    params: AlsParams
    score: float
    seconds: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class TuningResult:
    """The grid search's outcome; `metric` is what `score` measures (lower_is_better says how).
    `baseline_score` is the same metric of a model-free baseline on the same held-out rows
    (`baseline`: most-popular for ranking metrics, the training mean for RMSE)."""

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
    baseline: str = ""
    baseline_score: float | None = None
    # Holdout tuning fits the best point on the whole training split with the experiment's own
    # settings, i.e. exactly the model the experiment's final fit would make: it is kept so that
    # fit is not repeated. In memory after tuning; on disk (a Spark ALSModel folder) once stored.
    best_model: ALSModel | None = field(default=None, compare=False, repr=False)
    best_model_path: str | None = None
    # Identifies what the best model was fitted on and how (set by the caller): the final fit
    # reuses the model only when its own key is equal.
    best_model_key: str | None = None
    # RMSE holdout: the training mean's RMSE on the validation rows the kept best model scores,
    # computed with its own RMSE, so the check of that model (best_score against this, on the
    # same rows) needs no second join of validation with its factors.
    best_scored_baseline: float | None = None

    @property
    def failed(self) -> tuple[GridScore, ...]:
        return tuple(g for g in self.grid if g.error is not None)

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
            score = f"failed: {g.error}" if g.error is not None else f"{g.score:.4f}"
            rows.append(
                f"| {g.params.rank} | {g.params.max_iter} | {g.params.reg_param:g} | "
                f"{g.params.alpha:g} | {score} | {mark} |"
            )
        return head + "\n".join(rows)


def fit_blocks(blocks: int, fits_at_once: int) -> int:
    """ALS blocks for each of `fits_at_once` concurrent fits, out of `blocks` for one fit."""
    return max(1, blocks // max(1, fits_at_once))


def _order_key(score: float, index: int, lower_is_better: bool) -> tuple[float, int]:
    """Sorts grid points best first: the better score, then (on a tie) the earlier point."""
    return (score if lower_is_better else -score, index)


class AllPointsFailedError(RuntimeError):
    """No grid point gave a score; the message lists each point's error."""


def _pick_best(grid: list[GridScore], lower_is_better: bool) -> GridScore:
    finite = [(i, g) for i, g in enumerate(grid) if g.score == g.score]
    if not finite:
        failed = [g for g in grid if g.error is not None]
        if failed:
            details = "; ".join(f"{g.params.label()}: {g.error}" for g in failed[:5])
            more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
            raise AllPointsFailedError(
                f"every grid point failed ({len(failed)} of {len(grid)}): {details}{more}")
        raise AllPointsFailedError(
            "every grid point scored NaN: the held-out ratings share no users or items with "
            "the ratings the models were fitted on")
    return min(finite, key=lambda ig: _order_key(ig[1].score, ig[0], lower_is_better))[1]


_JAVA_CAUSE = re.compile(r"((?:[A-Za-z_$][\w$]*\.)+[A-Za-z_$][\w$]*(?:Exception|Error)): ([^\n]*)")


def describe_failure(exc: BaseException) -> str:
    """One line saying why a fit failed: the innermost Java exception and its message where
    Spark wrapped one (a failed task's cause sits behind "most recent failure"), else the
    Python exception."""
    java = getattr(exc, "java_exception", None)
    text = str(java) if java is not None else ""
    if java is not None:
        try:
            text = "\n".join([java.toString(), *(str(line) for line in java.getStackTrace())])
            cause = java.getCause()
            while cause is not None:
                text += "\n" + cause.toString()
                cause = cause.getCause()
        except Exception:  # noqa: BLE001 - the JVM may be gone; fall back to the text
            text = str(exc)
    causes = [m for m in _JAVA_CAUSE.finditer(text or str(exc))
              if not m.group(1).endswith(("SparkException", "Py4JJavaError"))]
    if causes:
        name, message = causes[-1].group(1), causes[-1].group(2)
        return f"{name.rsplit('.', 1)[-1]}: {message.strip()}"[:300]
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]


# A model's score for the tuning metric, and for RMSE the training mean's RMSE on the same
# rows (those the model can score); None for ranking metrics.
Scorer = Callable[[ALSModel], tuple[float, float | None]]


@dataclass(frozen=True)
class _HeldOutPart:
    """A held-out part prepared for scoring many models: the score function for the tuning
    metric, and the same metric of the baseline over every held-out row (read after the
    scoring: on the executors' path it comes with the first model's judgement)."""

    score: Scorer
    baseline: Callable[[], float]

    @property
    def baseline_score(self) -> float:
        return self.baseline()


def _prepare(train: DataFrame, held: DataFrame, config: ExperimentConfig) -> _HeldOutPart:
    """What scoring needs, prepared once for a whole grid on the path `choose_path` picks. On
    the driver: the held-out ratings (RMSE), or the seen and relevant pairs with the
    evaluation's K, relevance and seen-exclusion (ranking), collected once. On the executors
    (data too large to collect): each model is scored by a Spark join (RMSE) or judged in tasks
    (ranking), and nothing that grows with users or ratings reaches the driver."""
    metric = config.metric
    spark = train.sparkSession
    if metric == "rmse":
        mu = mean_rating(train)
        if choose_path(spark, held.count(), 1, DRIVER_MAX_ROWS) == "executors":
            baseline = held.agg(F.sqrt(F.avg((F.col("rating") - F.lit(mu)) ** 2))).first()[0]
            return _HeldOutPart(lambda model: spark_rmses(model, held, mu),
                                lambda: float("nan") if baseline is None else float(baseline))
        ratings = HeldOutRatings.collect(held)
        value = float(np.sqrt(np.mean((ratings.ratings - mu) ** 2))) \
            if ratings.ratings.size else float("nan")
        return _HeldOutPart(lambda model: heldout_rmses(model, ratings, mu), lambda: value)
    rk = config.ranking
    catalogue = Catalogue.of(train)
    users = train.select(USER).distinct()
    if choose_path(spark, users.count(), catalogue.size) == "executors":
        seen = train.select(USER, ITEM) if rk.exclude_seen else None
        popular: list[float] = []

        def judged(model: ALSModel) -> tuple[float, None]:
            lists = recommend_on_executors(model.userFactors, model.itemFactors, rk.k, seen)
            scores = judge_on_executors(lists, seen, held, catalogue, rk.k,
                                        rk.relevance_threshold)
            if not popular:
                popular.append(scores[1].relevant.value(metric))
            return scores[0].relevant.value(metric), None

        return _HeldOutPart(judged, lambda: popular[0] if popular else float("nan"))
    part = HeldOut.collect(train, held, rk.k, rk.relevance_threshold, rk.exclude_seen)
    user_ids = np.sort(users.toPandas()[USER].to_numpy(np.int64))
    value = part.score(popular_lists(user_ids, catalogue, rk.k, part.seen)).value(metric)

    def score(model: ALSModel) -> tuple[float, None]:
        return part.score(model_lists(model, rk.k, part.seen)[1]).value(metric), None

    return _HeldOutPart(score, lambda: value)


def tune(
    training: DataFrame,
    validation: DataFrame,
    config: ExperimentConfig,
    blocks: int,
) -> TuningResult:
    """Search the config's grid with its method (holdout, tvs or cv) for its metric."""
    tcfg = config.tuning
    points = list(tcfg.grid.points())
    # Fits running at once share the cores: each gets blocks / fits-at-once ALS blocks (on
    # small data one block per fit and two fits at once beats two blocks per fit, one at a time:
    # ALS's cost there is per task and per stage, not per rating).
    blocks = fit_blocks(blocks, min(tcfg.parallelism, len(points)))
    start = time.perf_counter()
    best_model = scored_baseline = None
    if tcfg.method == "holdout":
        grid, baseline, best_model, scored_baseline = _tune_holdout(training, validation, points,
                                                                    config, blocks)
        rows = training.count()
    else:
        data = training
        if tcfg.sample_fraction < 1.0:
            data = training.sample(fraction=tcfg.sample_fraction, seed=tcfg.seed)
        data = data.persist(StorageLevel.MEMORY_AND_DISK)
        rows = data.count()
        grid, baseline = _tune_folds(data, points, config, blocks)
        data.unpersist()
    lower = config.metric == "rmse"
    best = _pick_best(grid, lower)
    metric = "rmse" if lower else config.metric.replace("_k", f"_{config.ranking.k}")
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
        baseline="global-mean" if lower else "most-popular",
        baseline_score=baseline,
        best_model=best_model,
        best_scored_baseline=scored_baseline,
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


def heldout_rmses(model: ALSModel, held: HeldOutRatings, mu: float) -> tuple[float, float]:
    """RMSE of the model on held-out ratings, from its factor tables on the driver, and the RMSE
    of predicting `mu` on the same rows.

    The same numbers as RegressionEvaluator on `model.transform(held)` with coldStartStrategy
    'drop' (prediction = the float32 dot product of the user's and the item's factors; rows whose
    user or item has no factors are left out), without a Spark join and aggregation per model:
    for a grid of small fits the per-query cost is most of the evaluation.
    """
    nan = float("nan")
    user_ids, users = factors_to_numpy(model.userFactors)
    item_ids, items = factors_to_numpy(model.itemFactors)
    if len(user_ids) == 0 or len(item_ids) == 0 or len(held.ratings) == 0:
        return nan, nan
    u = np.searchsorted(user_ids, held.users).clip(0, len(user_ids) - 1)
    i = np.searchsorted(item_ids, held.items).clip(0, len(item_ids) - 1)
    known = (user_ids[u] == held.users) & (item_ids[i] == held.items)
    if not known.any():
        return nan, nan
    predicted = np.einsum("ij,ij->i", users[u[known]], items[i[known]]).astype(np.float64)
    ratings = held.ratings[known]
    return (float(np.sqrt(np.mean((predicted - ratings) ** 2))),
            float(np.sqrt(np.mean((mu - ratings) ** 2))))


def spark_rmses(model: ALSModel, held: DataFrame, mu: float) -> tuple[float, float]:
    """`heldout_rmses` as a Spark join and aggregation: RegressionEvaluator's RMSE on
    `model.transform(held)` with coldStartStrategy 'drop', and predicting `mu` on those rows."""
    preds = model.copy({model.coldStartStrategy: "drop"}).transform(held)
    row = preds.agg(F.sqrt(F.avg((F.col("prediction") - F.col("rating")) ** 2)),
                    F.sqrt(F.avg((F.lit(mu) - F.col("rating")) ** 2))).first()
    return tuple(float("nan") if v is None else float(v) for v in row)


def _tune_holdout(training, validation, points, config, blocks):
    part = _prepare(training, validation, config)
    lower = config.metric == "rmse"
    # Only the best model so far is kept (fits run in threads), ordered as _pick_best orders.
    kept: dict = {}
    lock = threading.Lock()

    def keep_if_best(index: int, model: ALSModel, value: float,
                     scored_baseline: float | None) -> None:
        if value != value:
            return
        key = _order_key(value, index, lower)
        with lock:
            if "key" not in kept or key < kept["key"]:
                kept.update(key=key, model=model, scored_baseline=scored_baseline)

    def score(index: int) -> GridScore:
        params = points[index]
        start = time.perf_counter()
        try:
            model, seconds = fit_als(training, params, config, blocks)
            value, scored_baseline = part.score(model)
        except Exception as exc:  # noqa: BLE001 - one failed point must not sink the search
            return GridScore(params, float("nan"), time.perf_counter() - start,
                             describe_failure(exc))
        keep_if_best(index, model, value, scored_baseline)
        return GridScore(params, value, seconds)

    workers = max(1, min(config.tuning.parallelism, len(points)))
    grid: list[GridScore | None] = [None] * len(points)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        order = fit_order(points)
        for index, result in zip(order, pool.map(score, order), strict=True):
            grid[index] = result
    return grid, part.baseline_score, kept.get("model"), kept.get("scored_baseline")


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
    """TrainValidationSplit (one fold) or k-fold CrossValidator over the grid: Spark's folds,
    the experiment's metric averaged over folds, `parallelism` fits at once. Unlike Spark's
    tuners it does not refit the best point on the whole sample afterwards: that model would be
    discarded (the experiment's model is fitted on all of training). All (fold, point) fits go
    to one pool, longest first, so no fold waits for the last fit of the one before. A point
    fails when any of its folds fails."""
    tcfg = config.tuning
    workers = max(1, min(tcfg.parallelism, len(points)))
    scores = np.zeros((len(points),))
    seconds = np.zeros((len(points),))
    errors: dict[int, str] = {}
    cached, trains, parts = [], [], []
    uncheckpointed = uncheckpointed_iterations(data.sparkSession)
    try:
        for train, validation in fold_pairs(data, tcfg):
            train = train.drop(_FOLD_RAND).persist(StorageLevel.MEMORY_AND_DISK)
            cached.append(train)
            trains.append(training_data(train, config))
            parts.append(_prepare(train, validation, config))

        def score(task: tuple[int, int]) -> tuple[int, float, float, str | None]:
            fold, index = task
            als = make_als(points[index], config.implicit.enabled, "drop", tcfg.seed, blocks,
                           scored_once=True, uncheckpointed=uncheckpointed)
            start = time.perf_counter()
            try:
                model = als.fit(trains[fold])
                value = parts[fold].score(model)[0]
            except Exception as exc:  # noqa: BLE001 - one failed point must not sink the search
                return index, float("nan"), time.perf_counter() - start, describe_failure(exc)
            return index, value, time.perf_counter() - start, None

        tasks = [(fold, index) for index in fit_order(points) for fold in range(len(trains))]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for index, value, took, error in pool.map(score, tasks):
                scores[index] += value
                seconds[index] += took
                if error is not None:
                    errors.setdefault(index, error)
    finally:
        for train in cached:
            train.unpersist()
    scores /= len(trains)
    grid = [GridScore(p, float("nan") if i in errors else float(m), float(t), errors.get(i))
            for i, (p, m, t) in enumerate(zip(points, scores, seconds, strict=True))]
    baseline = float(np.mean([p.baseline_score for p in parts]))
    return grid, baseline


def fit_order(points: list[AlsParams]) -> list[int]:
    """Grid indices, the costliest fits first, so the fits running at once finish close together
    instead of one long fit running alone at the end. A fit's cost grows with its iterations,
    and less with its rank (figures in benchmarks/history.md, section 8)."""
    return sorted(range(len(points)),
                  key=lambda i: (-points[i].max_iter * (1 + points[i].rank / 100), i))
