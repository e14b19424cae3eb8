"""Each user's training and validation movies, grouped once and shared by the steps that rank or
judge per user on the executors.

`als_model` judges its lists on validation leaving out the training movies; `user_recommendations`
leaves out training and validation movies; `evaluation` judges those lists on test leaving out the
same. Grouping the rated pairs by user is a shuffle of every training and validation rating, the
largest part of each of those steps at scale. Here it is done once per pair of splits: one
grouping holds both splits' movies apart (and validation's ratings, for the relevance threshold),
and the grouped frame is persisted. A later step that groups the same splits builds the same plan,
which Spark answers from that cache; the split DataFrames are the same objects within a process
(the IO manager reads each stored version once). The most recent `KEEP` groupings are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

# Groupings kept persisted: one experiment's (training, validation) pair, and the one before.
KEEP = 2
_KEPT: dict[tuple[int, int], DataFrame] = {}


def user_lists(training: DataFrame, validation: DataFrame) -> DataFrame:
    """(user_id, trained: array<int>, validated: array<struct<movie_id: int, rating: double>>),
    one row per user with a training or validation rating; persisted and shared."""
    movie = F.col("movie_id").cast("int").alias("movie_id")
    tagged = training.select("user_id", movie, F.lit(None).cast("double").alias("rating"),
                             F.lit(False).alias("held")) \
        .unionByName(validation.select("user_id", movie, F.col("rating").cast("double"),
                                       F.lit(True).alias("held")))
    lists = tagged.groupBy(F.col("user_id").cast("int").alias("user_id")).agg(
        F.collect_list(F.when(~F.col("held"), F.col("movie_id"))).alias("trained"),
        F.collect_list(F.when(F.col("held"), F.struct("movie_id", "rating"))).alias("validated"))
    return _kept(lists)


def _kept(frame: DataFrame) -> DataFrame:
    """`frame` persisted, or the persisted frame of the same plan; older ones beyond KEEP
    unpersisted."""
    key = (id(frame.sparkSession), frame.semanticHash())
    kept = _KEPT.pop(key, None)
    if kept is None:
        kept = frame.persist(StorageLevel.MEMORY_AND_DISK)
    _KEPT[key] = kept  # newest last
    while len(_KEPT) > KEEP:
        old = _KEPT.pop(next(iter(_KEPT)))
        if old.sparkSession.sparkContext._jsc is not None:  # not from a stopped session
            old.unpersist()
    return kept


def _ints(column: Column) -> Column:
    return F.coalesce(column, F.array().cast("array<int>"))


@dataclass(frozen=True)
class SeenLists:
    """The movies each user is known to have seen: the training ones, and the validation ones
    too with `with_validation` (what test is judged by and served lists leave out), read from
    the shared grouping of the two splits."""

    training: DataFrame
    validation: DataFrame
    with_validation: bool = True

    def frame(self) -> DataFrame:
        return user_lists(self.training, self.validation)

    def column(self) -> Column:
        """The seen movies of a row of `frame()` (array<int>, empty for none)."""
        trained = _ints(F.col("trained"))
        if not self.with_validation:
            return trained
        return F.concat(trained, _ints(F.col("validated.movie_id")))

    def pairs(self) -> DataFrame:
        """The same as (user_id, movie_id) pairs, for the driver's path, which collects them."""
        pairs = self.training.select("user_id", "movie_id")
        if self.with_validation:
            pairs = pairs.unionByName(self.validation.select("user_id", "movie_id"))
        return pairs


def held_columns(relevance_threshold: float) -> tuple[Column, Column]:
    """(relevant, held) of a row of `user_lists`: its validation movies rated at or above the
    threshold, and all of them (array<long>, empty for none)."""
    validated = F.coalesce(F.col("validated"), F.array().cast(
        "array<struct<movie_id:int,rating:double>>"))
    relevant = F.transform(F.filter(validated, lambda v: v["rating"] >= relevance_threshold),
                           lambda v: v["movie_id"].cast("long"))
    held = F.transform(validated, lambda v: v["movie_id"].cast("long"))
    return relevant.alias("relevant"), held.alias("held")
