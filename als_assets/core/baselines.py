"""Does the model beat a model-free baseline on validation? And its validation ranking scores,
beside most-popular's and random's on the same users: what the champion is chosen by."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame

from .distributed import judge_model_lists
from .experiments import ExperimentConfig
from .plan_memo import mean_rating
from .ranking import ListScores
from .tuning import spark_rmses


@dataclass(frozen=True)
class BaselineComparison:
    metric: str
    model_value: float
    baseline_value: float
    baseline: str
    lower_is_better: bool

    @property
    def model_wins(self) -> bool:
        if math.isnan(self.model_value) or math.isnan(self.baseline_value):
            return False
        if self.lower_is_better:
            return self.model_value < self.baseline_value
        return self.model_value > self.baseline_value

    def describe(self) -> str:
        verdict = "beats" if self.model_wins else "does NOT beat"
        return (f"model {self.metric} {self.model_value:.4f} {verdict} the {self.baseline} "
                f"baseline's {self.baseline_value:.4f} on validation")


@dataclass(frozen=True)
class ValidationReport:
    """The model on validation: the check's comparison, and the top-K lists of the model and
    of the baselines judged with the evaluation's K, relevance and seen-exclusion."""

    k: int
    comparison: BaselineComparison
    lists: tuple[ListScores, ...]  # model, most_popular, random

    def scores(self, name: str) -> ListScores:
        return next(s for s in self.lists if s.name == name)

    def metadata(self) -> dict[str, float]:
        """validation_<metric>_at_k for the model, validation_most_popular_... and
        validation_random_... for the baselines (relevance threshold protocol)."""
        out = {}
        for s in self.lists:
            prefix = "validation_" if s.name == "model" else f"validation_{s.name}_"
            for metric in ("ndcg_at_k", "precision_at_k", "map_at_k", "recall_at_k"):
                out[prefix + metric] = s.relevant.value(metric)
        return out


def compare_with_baseline(model: ALSModel, training: DataFrame, validation: DataFrame,
                          config: ExperimentConfig,
                          rmses: tuple[float, float] | None = None) -> ValidationReport:
    """Explicit: RMSE against predicting the training mean, on the rows the model can score.
    Implicit: NDCG@K against recommending the most popular unseen movies. Both: the ranking
    metrics of the model and of both baselines on validation. `rmses`: those two RMSEs when
    they are already known (holdout tuning scored this very model on validation), instead of
    joining validation with the factors again."""
    rk = config.ranking
    lists = judge_model_lists(model, training, validation, rk.k, rk.relevance_threshold,
                              rk.exclude_seen)
    if config.implicit.enabled:
        model_scores, popular = lists[0], lists[1]
        comparison = BaselineComparison(
            metric=f"ndcg_at_{rk.k}",
            model_value=model_scores.relevant.ndcg_at_k,
            baseline_value=popular.relevant.ndcg_at_k,
            baseline="most-popular",
            lower_is_better=False,
        )
        return ValidationReport(rk.k, comparison, lists)
    if rmses is None:
        mu = mean_rating(training)
        rmses = spark_rmses(model, validation, mu)
    comparison = BaselineComparison(
        metric="rmse",
        model_value=rmses[0],
        baseline_value=rmses[1],
        baseline="global-mean",
        lower_is_better=True,
    )
    return ValidationReport(rk.k, comparison, lists)
