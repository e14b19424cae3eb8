"""The final, once-only evaluation of a model on the test split."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .experiments import ExperimentConfig
from .metrics import ranking_metrics, regression_metrics, relevant_items
from .topk import popular_recommendations


@dataclass(frozen=True)
class EvaluationReport:
    """Test metrics of the model and of model-free baselines, for one experiment."""

    k: int
    relevance_threshold: float
    implicit: bool
    rmse: float | None
    mae: float | None
    rows_scored: int | None
    precision_at_k: float
    recall_at_k: float
    ndcg_at_k: float
    map_at_k: float
    users_evaluated: int
    baseline_rmse_global_mean: float | None
    baseline_precision_at_k_popular: float
    baseline_ndcg_at_k_popular: float

    def metrics(self) -> dict[str, float]:
        """Every metric, by its metadata name; RMSE/MAE only for explicit models."""
        out = {
            "precision_at_k": self.precision_at_k,
            "recall_at_k": self.recall_at_k,
            "ndcg_at_k": self.ndcg_at_k,
            "map_at_k": self.map_at_k,
        }
        if not self.implicit:
            out = {"rmse": self.rmse, "mae": self.mae, **out}
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_model(model: ALSModel, training: DataFrame, test: DataFrame,
                   recommendations: DataFrame, config: ExperimentConfig) -> EvaluationReport:
    """RMSE/MAE with the 'drop' strategy (explicit only) and ranking metrics at K against test
    items rated at or above the relevance threshold, beside the same metrics of baselines."""
    k, threshold = config.ranking.k, config.ranking.relevance_threshold
    relevant = relevant_items(test, threshold).persist()
    ranking = ranking_metrics(recommendations, relevant, k)
    seen = training if config.ranking.exclude_seen else None
    popular = ranking_metrics(popular_recommendations(training, training, k, seen), relevant, k)
    rmse = mae = rows = baseline_rmse = None
    if not config.implicit.enabled:
        reg = regression_metrics(model.copy({model.coldStartStrategy: "drop"}).transform(test))
        rmse, mae, rows = reg.rmse, reg.mae, reg.rows
        mu = float(training.agg(F.avg("rating")).first()[0])
        baseline_rmse = math.sqrt(
            test.agg(F.avg((F.col("rating") - F.lit(mu)) ** 2)).first()[0] or math.nan)
    relevant.unpersist()
    return EvaluationReport(
        k=k,
        relevance_threshold=threshold,
        implicit=config.implicit.enabled,
        rmse=rmse,
        mae=mae,
        rows_scored=rows,
        precision_at_k=ranking.precision_at_k,
        recall_at_k=ranking.recall_at_k,
        ndcg_at_k=ranking.ndcg_at_k,
        map_at_k=ranking.map_at_k,
        users_evaluated=ranking.users_evaluated,
        baseline_rmse_global_mean=baseline_rmse,
        baseline_precision_at_k_popular=popular.precision_at_k,
        baseline_ndcg_at_k_popular=popular.ndcg_at_k,
    )
