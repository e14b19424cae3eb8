"""Small driver-side figures of a cached DataFrame, computed once per plan and shared by the steps
that need them.

Several steps of an experiment ask the same question of the same training split: the catalogue
with each movie's training count (the model's judgement on validation, the evaluation, the
similarity's eligible movies, a ranking metric's tuning) and the global mean rating (the RMSE
baselines, the cold-start fallbacks). At scale each answer is a pass over the split. The steps of
a run get the same persisted DataFrame from the IO manager, so the answer is kept by the frame's
plan and the question. Only persisted frames qualify: Spark answers a persisted plan from its cache
too, so a kept answer is never staler than the rows Spark would give. `KEEP` answers are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

T = TypeVar("T")
KEEP = 8
_KEPT: dict[tuple[str, int, int], object] = {}


def once_per_plan(question: str, frame: DataFrame, compute: Callable[[], T]) -> T:
    """`compute()`, or its earlier answer for a persisted frame of the same plan."""
    if not frame.is_cached:
        return compute()
    key = (question, id(frame.sparkSession), frame.semanticHash())
    if key in _KEPT:
        _KEPT[key] = _KEPT.pop(key)  # newest last
        return _KEPT[key]  # type: ignore[return-value]
    value = compute()
    _KEPT[key] = value
    while len(_KEPT) > KEEP:
        _KEPT.pop(next(iter(_KEPT)))
    return value


def mean_rating(ratings: DataFrame) -> float:
    """The mean of the `rating` column (the global-mean baseline's prediction)."""
    return once_per_plan("mean_rating", ratings,
                         lambda: float(ratings.agg(F.avg("rating")).first()[0]))
