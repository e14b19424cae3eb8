"""Asset checks. Each runs inside its asset's step, on data the step already holds, and a
blocking failure stops the step before its output is written: a bad result never replaces a
good one."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, Failure

RATINGS_VALID = AssetCheckSpec(
    "ratings_valid", asset="ratings", blocking=True,
    description="Every rating row follows core/rating_rules.py: ids present, non-negative and "
    "inside int32, ratings on the half-star grid of 0.5-5.0, no duplicate (user, movie) pair, a "
    "timestamp, a movie the movies know (the last two may be kept with a warning). Failing rows "
    "are named with their values and, for a CSV file, their lines.")
SPLITS_DISJOINT = AssetCheckSpec(
    "splits_disjoint_and_complete", asset="training", blocking=True,
    description="training, validation and test share no (user, movie) pair and cover every "
    "rating.")
MODEL_BEATS_BASELINE = AssetCheckSpec(
    "beats_baseline_on_validation", asset="als_model", blocking=True,
    description="Validation RMSE below the global-mean RMSE (explicit), or NDCG@K above the "
    "most-popular baseline (implicit).")
METRICS_NOT_NAN = AssetCheckSpec(
    "metrics_not_nan", asset="evaluation", blocking=True,
    description="Every evaluation metric is a number.")


def gate(results: Sequence[AssetCheckResult]) -> Iterator[AssetCheckResult]:
    """Yield check results; raise after them if a blocking one failed, before any output."""
    yield from results
    failed = [r for r in results if not r.passed and r.severity == AssetCheckSeverity.ERROR]
    if failed:
        details = "; ".join(
            f"{r.check_name}: {r.description or 'failed'}" for r in failed)
        # Bad data does not get better on a retry.
        raise Failure(description=f"blocking check failed, nothing was written: {details}",
                      allow_retries=False)


def nan_fields(values: dict[str, float]) -> list[str]:
    return [k for k, v in values.items() if v is None or (isinstance(v, float) and math.isnan(v))]
