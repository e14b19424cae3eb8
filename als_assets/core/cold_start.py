"""Cold start: how many test pairs ALS cannot score, and what each fallback buys."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .plan_memo import mean_rating

# Shrinkage of the bias baseline (Koren 2008): a bias estimated from few ratings is pulled
# towards 0 as if it had this many extra ratings at exactly the mean.
ITEM_BIAS_SHRINKAGE = 25.0
USER_BIAS_SHRINKAGE = 10.0


@dataclass(frozen=True)
class ColdStartReport:
    test_rows: int
    nan_predictions: int
    nan_share: float
    nan_unknown_user_only: int
    nan_unknown_item_only: int
    nan_unknown_both: int
    global_mean: float
    rmse_drop: float | None
    rmse_global_mean_fill: float | None
    rmse_item_mean_fill: float | None
    rmse_user_mean_fill: float | None
    rmse_bias_fill: float | None
    rmse_global_mean_only: float | None
    rmse_bias_only: float | None
    explanation: str

    def rmse_fields(self) -> dict[str, float]:
        return {k: v for k, v in self.__dict__.items() if k.startswith("rmse_") and v is not None}

    def fallback_table(self) -> str:
        if self.rmse_drop is None:
            return "Implicit model: predictions are preferences, so no RMSE is reported."
        rows = [
            ("drop NaN rows (coldStartStrategy=drop)", self.rmse_drop,
             self.test_rows - self.nan_predictions),
            ("fill NaN with the global mean", self.rmse_global_mean_fill, self.test_rows),
            ("fill NaN with the item mean (else global)", self.rmse_item_mean_fill,
             self.test_rows),
            ("fill NaN with the user mean (else global)", self.rmse_user_mean_fill,
             self.test_rows),
            ("fill NaN with the bias baseline", self.rmse_bias_fill, self.test_rows),
            ("no model: global mean everywhere", self.rmse_global_mean_only, self.test_rows),
            ("no model: bias baseline everywhere", self.rmse_bias_only, self.test_rows),
        ]
        out = "| strategy | RMSE | rows scored |\n|---|---:|---:|\n"
        return out + "\n".join(f"| {name} | {v:.4f} | {n} |" for name, v, n in rows)


def bias_baseline(training: DataFrame) -> tuple[float, DataFrame, DataFrame]:
    """mu, item biases b_i and user biases b_u (shrunk towards 0), as DataFrames."""
    mu = mean_rating(training)
    item_bias = training.groupBy("movie_id").agg(
        (F.sum(F.col("rating") - mu) / (F.count(F.lit(1)) + ITEM_BIAS_SHRINKAGE)).alias("b_i"),
        F.avg("rating").alias("item_mean"),
    )
    # One row per movie: broadcast to the training rows, not joined by shuffling them all.
    user_bias = (
        training.join(F.broadcast(item_bias.select("movie_id", "b_i")), "movie_id")
        .groupBy("user_id")
        .agg(
            (F.sum(F.col("rating") - mu - F.col("b_i"))
             / (F.count(F.lit(1)) + USER_BIAS_SHRINKAGE)).alias("b_u"),
            F.avg("rating").alias("user_mean"),
        )
    )
    return mu, item_bias, user_bias


def _explain(nan: int, user_only: int, item_only: int, both: int) -> str:
    if nan == 0:
        return ("No test pair is cold: every test user and movie has training ratings, so all "
                "fallbacks equal the model.")
    parts = [
        f"{nan} test pairs get NaN: {item_only} have a movie with no training ratings, "
        f"{user_only} a user with no training ratings, {both} both."
    ]
    if user_only == 0 and both == 0:
        parts.append(
            "Every NaN row is an unknown movie, so the item mean is missing exactly where a "
            "fallback is needed: the item-mean fill falls back to the global mean on every such "
            "row and its RMSE equals the global-mean fill's (the notebook's 'smarter' fallback "
            "cannot help here). The user mean is known for these rows, which is why the "
            "user-mean and bias fills do better.")
    elif item_only == 0 and both == 0:
        parts.append(
            "Every NaN row is an unknown user, so the user-mean fill equals the global-mean fill; "
            "the item mean is known for these rows.")
    return " ".join(parts)


def cold_start_report(model: ALSModel, training: DataFrame, test: DataFrame,
                      explicit: bool = True) -> ColdStartReport:
    """Predict test with coldStartStrategy=nan and score every fallback in one aggregation.

    For implicit models (predictions are preferences, not stars) only the NaN counts are
    meaningful; the RMSE fields are then None.
    """
    mu, item_bias, user_bias = bias_baseline(training)
    preds = model.copy({model.coldStartStrategy: "nan"}).transform(test)
    # The bias tables have a row for every movie and every user with training ratings, so they
    # also say which test users and movies are known: no separate distinct() of training. They
    # are one row per entity, small next to the test set: broadcast, not shuffled (under AQE
    # each shuffle is a Spark job of its own).
    df = (
        preds.join(F.broadcast(item_bias.withColumn("known_item", F.lit(True))), "movie_id",
                   "left")
        .join(F.broadcast(user_bias.withColumn("known_user", F.lit(True))), "user_id", "left")
    )
    is_nan = F.col("prediction").isNull() | F.isnan("prediction")
    mu_lit = F.lit(mu)
    bias = mu_lit + F.coalesce(F.col("b_u"), F.lit(0.0)) + F.coalesce(F.col("b_i"), F.lit(0.0))
    fills = {
        "global": mu_lit,
        "item": F.coalesce(F.col("item_mean"), mu_lit),
        "user": F.coalesce(F.col("user_mean"), mu_lit),
        "bias": bias,
    }

    def sse(pred):
        return F.sum((pred - F.col("rating")) ** 2)

    no_user = F.col("known_user").isNull()
    no_item = F.col("known_item").isNull()

    def count_if(cond):
        return F.sum(F.when(cond, 1).otherwise(0))

    aggs = [
        F.count(F.lit(1)).alias("n"),
        count_if(is_nan).alias("nan"),
        count_if(is_nan & no_user & ~no_item).alias("user_only"),
        count_if(is_nan & no_item & ~no_user).alias("item_only"),
        count_if(is_nan & no_user & no_item).alias("both"),
        F.sum(F.when(~is_nan, (F.col("prediction") - F.col("rating")) ** 2)).alias("sse_drop"),
        sse(mu_lit).alias("sse_mu_only"),
        sse(bias).alias("sse_bias_only"),
    ]
    aggs += [
        sse(F.when(is_nan, fill).otherwise(F.col("prediction"))).alias(f"sse_{name}")
        for name, fill in fills.items()
    ]
    row = df.agg(*aggs).first()
    n, nan = int(row["n"]), int(row["nan"])

    def rmse(total, rows):
        if not explicit:
            return None
        return math.sqrt(total / rows) if rows and total is not None else math.nan

    return ColdStartReport(
        test_rows=n,
        nan_predictions=nan,
        nan_share=nan / n if n else math.nan,
        nan_unknown_user_only=int(row["user_only"]),
        nan_unknown_item_only=int(row["item_only"]),
        nan_unknown_both=int(row["both"]),
        global_mean=mu,
        rmse_drop=rmse(row["sse_drop"], n - nan),
        rmse_global_mean_fill=rmse(row["sse_global"], n),
        rmse_item_mean_fill=rmse(row["sse_item"], n),
        rmse_user_mean_fill=rmse(row["sse_user"], n),
        rmse_bias_fill=rmse(row["sse_bias"], n),
        rmse_global_mean_only=rmse(row["sse_mu_only"], n),
        rmse_bias_only=rmse(row["sse_bias_only"], n),
        explanation=_explain(nan, int(row["user_only"]), int(row["item_only"]), int(row["both"])),
    )
