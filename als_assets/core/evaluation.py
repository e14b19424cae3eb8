"""The final, once-only evaluation of a model on the test split, beside model-free baselines."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .distributed import choose_path, judge_on_executors
from .experiments import ExperimentConfig
from .metrics import RANKING_METRICS, regression_metrics
from .plan_memo import mean_rating
from .ranking import Catalogue, HeldOut, ListScores, judge, rated_outside
from .topk import TopK
from .user_lists import SeenLists

LIST_FIELDS = ("coverage", "popularity_bias", "popular_overlap")


@dataclass(frozen=True)
class EvaluationReport:
    """Test metrics of the model's recommendations and of the most-popular and random-ranking
    baselines for the same users, under both relevance protocols; RMSE/MAE (explicit only)."""

    k: int
    relevance_threshold: float
    implicit: bool
    rmse: float | None
    mae: float | None
    rows_scored: int | None
    baseline_rmse_global_mean: float | None
    lists: tuple[ListScores, ...]  # model, most_popular, random
    catalogue_size: int
    warnings: tuple[str, ...] = ()

    def scores(self, name: str = "model") -> ListScores:
        return next(s for s in self.lists if s.name == name)

    @property
    def users_evaluated(self) -> int:
        return self.scores().relevant.users_evaluated

    def metrics(self) -> dict[str, float]:
        """The model's metrics by metadata name: ranking metrics with ratings >= the threshold
        relevant, the same with every test rating relevant (`_all_relevant`), and RMSE/MAE for
        explicit models."""
        model = self.scores()
        out = {m: model.relevant.value(m) for m in RANKING_METRICS}
        out.update({f"{m}_all_relevant": model.all_relevant.value(m) for m in RANKING_METRICS})
        if not self.implicit:
            out = {"rmse": self.rmse, "mae": self.mae, **out}
        return out

    def list_fields(self) -> dict[str, float]:
        """Coverage, popularity bias and overlap with most-popular of every list, and the
        baselines' ranking metrics (`most_popular_ndcg_at_k`, `random_ndcg_at_k`, ...)."""
        out: dict[str, float] = {}
        for s in self.lists:
            prefix = "" if s.name == "model" else f"{s.name}_"
            if s.name != "model":
                out.update({f"{prefix}{m}": s.relevant.value(m) for m in RANKING_METRICS})
                out.update({f"{prefix}{m}_all_relevant": s.all_relevant.value(m)
                            for m in RANKING_METRICS})
            out.update({f"{prefix}{f}": getattr(s, f) for f in LIST_FIELDS})
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def k_warnings(k: int, catalogue_size: int) -> tuple[str, ...]:
    if k > catalogue_size:
        return (f"ranking.k = {k} is larger than the catalogue ({catalogue_size} movies in "
                f"training): every list holds at most {catalogue_size} movies, and precision@K "
                "cannot reach 1",)
    return ()


def evaluate_model(model: ALSModel, training: DataFrame, validation: DataFrame, test: DataFrame,
                   recommendations: DataFrame, config: ExperimentConfig) -> EvaluationReport:
    """RMSE/MAE with the 'drop' strategy (explicit only), and the ranking metrics at K of the
    served recommendations and of both baselines for the same users against the test ratings;
    with `exclude_seen`, every list leaves out the movies rated in training and validation."""
    rk = config.ranking
    catalogue = Catalogue.of(training)
    users = recommendations.select("user_id").distinct().count()
    if choose_path(training.sparkSession, users, catalogue.size) == "executors":
        # The seen lists as user_recommendations grouped them (core/user_lists.py).
        seen = SeenLists(training, validation) if rk.exclude_seen else None
        lists = judge_on_executors(recommendations, seen, test, catalogue, rk.k,
                                   rk.relevance_threshold)
    else:
        held = HeldOut.collect(rated_outside(training, validation), test, rk.k,
                               rk.relevance_threshold, rk.exclude_seen)
        lists = judge(TopK.from_spark(recommendations), held, catalogue)
    rmse = mae = rows = baseline_rmse = None
    if not config.implicit.enabled:
        reg = regression_metrics(model.copy({model.coldStartStrategy: "drop"}).transform(test))
        rmse, mae, rows = reg.rmse, reg.mae, reg.rows
        mu = mean_rating(training)
        baseline_rmse = math.sqrt(
            test.agg(F.avg((F.col("rating") - F.lit(mu)) ** 2)).first()[0] or math.nan)
    return EvaluationReport(
        k=rk.k,
        relevance_threshold=rk.relevance_threshold,
        implicit=config.implicit.enabled,
        rmse=rmse,
        mae=mae,
        rows_scored=rows,
        baseline_rmse_global_mean=baseline_rmse,
        lists=lists,
        catalogue_size=catalogue.size,
        warnings=k_warnings(rk.k, catalogue.size),
    )
