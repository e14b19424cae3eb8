"""Top-K lists judged against held-out ratings on the driver: a model's and the baselines'.

Everything here works on NumPy arrays collected once per (training, held-out) pair, so a tuning
grid scores each of its fits without a Spark job per fit, and the model and its baselines are
judged on exactly the same users, seen items and relevant items.

Two relevance protocols are reported side by side: held-out ratings at or above the relevance
threshold are relevant (what the project optimises and serves by), and every held-out rating is
relevant (how published MovieLens top-K tables are computed, so figures compare with them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame

from .metrics import RankingMetrics, pair_keys, ranking_metrics_arrays
from .topk import TopK, factors_to_numpy, random_scores, recommend_arrays

LISTS = ("model", "most_popular", "random")
RANDOM_SEED = 42


@dataclass(frozen=True)
class Catalogue:
    """The movies a model fitted on training can recommend, with their training popularity
    (number of training ratings), ids sorted."""

    item_ids: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, training: DataFrame) -> Catalogue:
        pdf = training.groupBy("movie_id").count().toPandas().sort_values("movie_id")
        return cls(pdf["movie_id"].to_numpy(np.int64), pdf["count"].to_numpy(np.int64))

    @property
    def size(self) -> int:
        return int(self.item_ids.size)


@dataclass(frozen=True)
class HeldOut:
    """What top-K lists are judged against: the pairs left out of every list (the user's
    training ratings, when seen items are excluded), the relevant held-out pairs (rating >=
    threshold) and all held-out pairs."""

    k: int
    relevance_threshold: float
    seen: tuple[np.ndarray, np.ndarray] | None
    relevant: tuple[np.ndarray, np.ndarray]
    held: tuple[np.ndarray, np.ndarray]

    @classmethod
    def collect(cls, training: DataFrame, held: DataFrame, k: int, relevance_threshold: float,
                exclude_seen: bool) -> HeldOut:
        seen = None
        if exclude_seen:
            pairs = training.select("user_id", "movie_id").toPandas()
            seen = (pairs["user_id"].to_numpy(np.int64), pairs["movie_id"].to_numpy(np.int64))
        rows = held.select("user_id", "movie_id", "rating").toPandas()
        users = rows["user_id"].to_numpy(np.int64)
        items = rows["movie_id"].to_numpy(np.int64)
        good = rows["rating"].to_numpy(np.float64) >= relevance_threshold
        return cls(k, relevance_threshold, seen, (users[good], items[good]), (users, items))

    def score(self, lists: TopK, all_relevant: bool = False) -> RankingMetrics:
        users, items = self.held if all_relevant else self.relevant
        return ranking_metrics_arrays(lists.user_ids, lists.item_ids, lists.ranks, users, items,
                                      self.k)


def rated_outside(held_out_from: DataFrame, *others: DataFrame) -> DataFrame:
    """The (user, movie) pairs rated in any split but the held-out one: what the user is known
    to have seen when that split is judged, and what served lists leave out. For the test split
    that is training and validation: a movie the user rated in validation is no discovery,
    whether or not the model was fitted on it."""
    pairs = held_out_from.select("user_id", "movie_id")
    for other in others:
        pairs = pairs.unionByName(other.select("user_id", "movie_id"))
    return pairs


def model_lists(model: ALSModel, k: int, seen: tuple[np.ndarray, np.ndarray] | None
                ) -> tuple[np.ndarray, TopK]:
    """The model's users (those with factors) and its top-k for each, by predicted score."""
    user_ids, users = factors_to_numpy(model.userFactors)
    item_ids, items = factors_to_numpy(model.itemFactors)
    return user_ids, recommend_arrays(user_ids, users, item_ids, items, k, seen)


def popular_lists(user_ids: np.ndarray, catalogue: Catalogue, k: int,
                  seen: tuple[np.ndarray, np.ndarray] | None) -> TopK:
    """Most-popular: the k movies with most training ratings that the user has not seen."""
    ones = np.ones((user_ids.size, 1), dtype=np.float32)
    return recommend_arrays(user_ids, ones, catalogue.item_ids,
                            catalogue.counts.astype(np.float32)[:, None], k, seen)


def random_lists(user_ids: np.ndarray, catalogue: Catalogue, k: int,
                 seen: tuple[np.ndarray, np.ndarray] | None, seed: int = RANDOM_SEED) -> TopK:
    """The random-ranking floor: k unseen movies per user, uniformly at random (seeded)."""
    zeros = np.zeros((user_ids.size, 1), dtype=np.float32)
    return recommend_arrays(user_ids, zeros, catalogue.item_ids,
                            np.zeros((catalogue.size, 1), dtype=np.float32), k, seen,
                            score_block=random_scores(seed))


@dataclass(frozen=True)
class ListScores:
    """One list's (a model's or a baseline's) metrics under both relevance protocols, and what
    it recommends: coverage (share of the catalogue recommended to anyone), popularity bias (mean
    training ratings of the recommended movies) and overlap with most-popular (share of its rows
    that the most-popular list of the same user also holds: 1.0 is a popularity list)."""

    name: str
    relevant: RankingMetrics
    all_relevant: RankingMetrics
    coverage: float
    popularity_bias: float
    popular_overlap: float


def list_scores(name: str, lists: TopK, held: HeldOut, catalogue: Catalogue,
                popular: TopK) -> ListScores:
    if lists.item_ids.size:
        recommended = np.unique(lists.item_ids)
        coverage = float(np.isin(recommended, catalogue.item_ids).sum() / max(1, catalogue.size))
        pos = np.searchsorted(catalogue.item_ids, lists.item_ids).clip(0, catalogue.size - 1)
        known = catalogue.item_ids[pos] == lists.item_ids
        counts = np.where(known, catalogue.counts[pos], 0)
        bias = float(counts.mean())
        overlap = float(np.isin(pair_keys(lists.user_ids, lists.item_ids),
                                pair_keys(popular.user_ids, popular.item_ids)).mean())
    else:
        coverage, bias, overlap = 0.0, float("nan"), float("nan")
    return ListScores(name, held.score(lists), held.score(lists, all_relevant=True), coverage,
                      bias, overlap)


def judge(mine: TopK, held: HeldOut, catalogue: Catalogue, seed: int = RANDOM_SEED
          ) -> tuple[ListScores, ...]:
    """A model's top-K lists and both baselines' for the same users, judged on the same
    held-out pairs: (model, most_popular, random)."""
    user_ids = np.unique(mine.user_ids)
    popular = popular_lists(user_ids, catalogue, held.k, held.seen)
    rand = random_lists(user_ids, catalogue, held.k, held.seen, seed)
    return tuple(list_scores(name, lists, held, catalogue, popular)
                 for name, lists in zip(LISTS, (mine, popular, rand), strict=True))


def judge_model(model: ALSModel, held: HeldOut, catalogue: Catalogue,
                seed: int = RANDOM_SEED) -> tuple[ListScores, ...]:
    """`judge` on the model's own top-K lists (every user with factors)."""
    return judge(model_lists(model, held.k, held.seen)[1], held, catalogue, seed)
