"""Does the model beat a model-free baseline on validation?"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .experiments import ExperimentConfig
from .metrics import ranking_metrics, relevant_items
from .topk import popular_recommendations, recommend_for_users


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


def compare_with_baseline(model: ALSModel, training: DataFrame, validation: DataFrame,
                          config: ExperimentConfig) -> BaselineComparison:
    """Explicit: RMSE against predicting the training mean, on the rows the model can score.
    Implicit: NDCG@K against recommending the most popular unseen movies."""
    if config.implicit.enabled:
        k = config.ranking.k
        relevant = relevant_items(validation, config.implicit.threshold)
        seen = training if config.ranking.exclude_seen else None
        model_recs = recommend_for_users(model.userFactors, model.itemFactors, k, seen)
        liked = training.filter(F.col("rating") >= config.implicit.threshold)
        pop_recs = popular_recommendations(liked, training, k, seen)
        return BaselineComparison(
            metric=f"ndcg_at_{k}",
            model_value=ranking_metrics(model_recs, relevant, k).ndcg_at_k,
            baseline_value=ranking_metrics(pop_recs, relevant, k).ndcg_at_k,
            baseline="most-popular",
            lower_is_better=False,
        )
    mu = float(training.agg(F.avg("rating")).first()[0])
    preds = model.copy({model.coldStartStrategy: "drop"}).transform(validation)
    row = preds.agg(
        F.sqrt(F.avg((F.col("prediction") - F.col("rating")) ** 2)).alias("model"),
        F.sqrt(F.avg((F.lit(mu) - F.col("rating")) ** 2)).alias("baseline"),
    ).first()
    nan = math.nan
    return BaselineComparison(
        metric="rmse",
        model_value=float(row["model"]) if row["model"] is not None else nan,
        baseline_value=float(row["baseline"]) if row["baseline"] is not None else nan,
        baseline="global-mean",
        lower_is_better=True,
    )
