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
from .topk import TopK, factors_to_numpy, recommend_arrays

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


def _seen_positions(user_ids: np.ndarray, positions_of, seen) -> list[np.ndarray]:
    """For each of `user_ids` (sorted), the positions (by `positions_of(item ids)`, -1 for
    movies outside the catalogue) of the movies that user has seen."""
    out = [np.empty(0, dtype=np.int64)] * user_ids.size
    if seen is None or seen[0].size == 0:
        return out
    users, items = np.asarray(seen[0], np.int64), np.asarray(seen[1], np.int64)
    rows = np.searchsorted(user_ids, users)
    known = rows < user_ids.size
    known[known] &= user_ids[rows[known]] == users[known]
    rows, positions = rows[known], positions_of(items[known])
    keep = positions >= 0
    rows, positions = rows[keep], positions[keep]
    order = np.argsort(rows, kind="stable")
    rows, positions = rows[order], positions[order]
    bounds = np.searchsorted(rows, np.arange(user_ids.size + 1))
    return [positions[bounds[i]:bounds[i + 1]] for i in range(user_ids.size)]


def _lists(user_ids: np.ndarray, chosen: list[np.ndarray], item_ids: np.ndarray,
           scores: list[np.ndarray]) -> TopK:
    lengths = np.array([c.size for c in chosen], dtype=np.int64)
    flat = np.concatenate([*chosen, np.empty(0, np.int64)]).astype(np.int64)
    return TopK(np.repeat(user_ids, lengths).astype(np.int64), item_ids[flat],
                np.concatenate([*scores, np.empty(0, np.float32)]).astype(np.float32),
                np.concatenate([np.arange(1, n + 1) for n in lengths] + [np.empty(0)])
                .astype(np.int32))


def popular_lists(user_ids: np.ndarray, catalogue: Catalogue, k: int,
                  seen: tuple[np.ndarray, np.ndarray] | None) -> TopK:
    """Most-popular: the k movies with most training ratings that the user has not seen (ties
    to the lower movie id). Each user's list is the first k unseen movies of one popularity
    order, so the work grows with k plus the user's seen movies, not with the catalogue."""
    user_ids = np.asarray(user_ids, np.int64)
    order = np.lexsort((catalogue.item_ids, -catalogue.counts))  # popularity order
    rank_of = np.empty(catalogue.size, dtype=np.int64)
    rank_of[order] = np.arange(catalogue.size)

    def positions_of(items: np.ndarray) -> np.ndarray:
        at = np.searchsorted(catalogue.item_ids, items).clip(0, max(0, catalogue.size - 1))
        found = catalogue.item_ids[at] == items if catalogue.size else np.zeros(items.size, bool)
        return np.where(found, rank_of[at] if catalogue.size else -1, -1)

    chosen = []
    for done in _seen_positions(user_ids, positions_of, seen):
        head = np.arange(min(catalogue.size, k + done.size))
        chosen.append(order[head[~np.isin(head, done)][:k]])
    counts = catalogue.counts.astype(np.float32)
    return _lists(user_ids, chosen, catalogue.item_ids, [counts[c] for c in chosen])


def random_lists(user_ids: np.ndarray, catalogue: Catalogue, k: int,
                 seen: tuple[np.ndarray, np.ndarray] | None, seed: int = RANDOM_SEED) -> TopK:
    """The random-ranking floor: k unseen movies per user, uniformly at random. Each user draws
    from a generator seeded with (seed, user id), so a list does not depend on which other users
    are ranked with it (on the driver or in a task); drawing k plus the user's seen movies
    without replacement costs that many draws, not the catalogue."""
    user_ids = np.asarray(user_ids, np.int64)

    def positions_of(items: np.ndarray) -> np.ndarray:
        at = np.searchsorted(catalogue.item_ids, items).clip(0, max(0, catalogue.size - 1))
        found = catalogue.item_ids[at] == items if catalogue.size else np.zeros(items.size, bool)
        return np.where(found, at, -1)

    chosen, scores = [], []
    for user, done in zip(user_ids, _seen_positions(user_ids, positions_of, seen), strict=True):
        rng = np.random.default_rng([seed, int(user) & 0xFFFFFFFF])
        drawn = rng.choice(catalogue.size, size=min(catalogue.size, k + done.size),
                           replace=False)
        picked = drawn[~np.isin(drawn, done)][:k]
        chosen.append(picked)
        scores.append(np.linspace(1.0, 0.0, picked.size, endpoint=False, dtype=np.float32))
    return _lists(user_ids, chosen, catalogue.item_ids, scores)


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


@dataclass(frozen=True)
class PartialScores:
    """One list's figures over a subset of users, to be combined with the other subsets':
    metric means with the number of users they are over, and sums instead of shares. Users are
    never split between subsets, so the combined means are the means over all users."""

    name: str
    relevant: RankingMetrics
    all_relevant: RankingMetrics
    rows: int
    popularity_sum: float
    overlap_sum: float
    items: np.ndarray  # distinct catalogue movies recommended to these users


def partial_scores(name: str, lists: TopK, held: HeldOut, catalogue: Catalogue,
                   popular: TopK) -> PartialScores:
    items = np.unique(lists.item_ids)
    pos = np.searchsorted(catalogue.item_ids, lists.item_ids).clip(0, max(0, catalogue.size - 1))
    known = catalogue.item_ids[pos] == lists.item_ids if catalogue.size else \
        np.zeros(lists.item_ids.size, dtype=bool)
    counts = np.where(known, catalogue.counts[pos] if catalogue.size else 0, 0)
    overlap = np.isin(pair_keys(lists.user_ids, lists.item_ids),
                      pair_keys(popular.user_ids, popular.item_ids))
    return PartialScores(name, held.score(lists), held.score(lists, all_relevant=True),
                         int(lists.item_ids.size), float(counts.sum()), float(overlap.sum()),
                         items[np.isin(items, catalogue.item_ids)])


def list_scores(name: str, lists: TopK, held: HeldOut, catalogue: Catalogue,
                popular: TopK) -> ListScores:
    """One list's scores over all of its users."""
    return combine([partial_scores(name, lists, held, catalogue, popular)], catalogue.size,
                   held.k)


def judge_partial(mine: TopK, held: HeldOut, catalogue: Catalogue, seed: int = RANDOM_SEED
                  ) -> tuple[PartialScores, ...]:
    """A model's top-K lists and both baselines' for the same users (those with a list in
    `mine`), judged on the same held-out pairs: (model, most_popular, random)."""
    user_ids = np.unique(mine.user_ids)
    popular = popular_lists(user_ids, catalogue, held.k, held.seen)
    rand = random_lists(user_ids, catalogue, held.k, held.seen, seed)
    return tuple(partial_scores(name, lists, held, catalogue, popular)
                 for name, lists in zip(LISTS, (mine, popular, rand), strict=True))


def _mean(parts: list[RankingMetrics], k: int) -> RankingMetrics:
    parts = [p for p in parts if p.users_evaluated]
    if len(parts) == 1:
        return parts[0]
    n = sum(p.users_evaluated for p in parts)
    if not n:
        return RankingMetrics(k, np.nan, np.nan, np.nan, np.nan, 0)

    def weighted(metric: str) -> float:
        return float(sum(getattr(p, metric) * p.users_evaluated for p in parts) / n)

    return RankingMetrics(k, weighted("precision_at_k"), weighted("recall_at_k"),
                          weighted("ndcg_at_k"), weighted("map_at_k"), n)


def combine(parts: list[PartialScores], catalogue_size: int, k: int,
            coverage_items: int | None = None) -> ListScores:
    """One list's `ListScores` from its partial figures over disjoint sets of users.
    `coverage_items`, when given, is the number of distinct catalogue movies recommended,
    counted where the parts were made (their `items` are then not read)."""
    rows = sum(p.rows for p in parts)
    if coverage_items is None:
        coverage_items = np.unique(np.concatenate([p.items for p in parts])).size if parts else 0
    return ListScores(
        parts[0].name if parts else "",
        _mean([p.relevant for p in parts], k),
        _mean([p.all_relevant for p in parts], k),
        coverage_items / max(1, catalogue_size) if rows else 0.0,
        sum(p.popularity_sum for p in parts) / rows if rows else float("nan"),
        sum(p.overlap_sum for p in parts) / rows if rows else float("nan"),
    )


def judge(mine: TopK, held: HeldOut, catalogue: Catalogue, seed: int = RANDOM_SEED
          ) -> tuple[ListScores, ...]:
    """`judge_partial` over every user at once, on the driver."""
    return tuple(combine([part], catalogue.size, held.k)
                 for part in judge_partial(mine, held, catalogue, seed))


def judge_model(model: ALSModel, held: HeldOut, catalogue: Catalogue,
                seed: int = RANDOM_SEED) -> tuple[ListScores, ...]:
    """`judge` on the model's own top-K lists (every user with factors)."""
    return judge(model_lists(model, held.k, held.seen)[1], held, catalogue, seed)
