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
from functools import cached_property

import numpy as np
from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame

from .metrics import RankingMetrics, Relevant, pair_keys, ranking_metrics_of
from .plan_memo import once_per_plan
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
        """Counted once per persisted training frame, for every step that asks (plan_memo)."""
        def count() -> Catalogue:
            pdf = training.groupBy("movie_id").count().toPandas().sort_values("movie_id")
            ids, counts = pdf["movie_id"].to_numpy(np.int64), pdf["count"].to_numpy(np.int64)
            ids.setflags(write=False)  # shared by the steps that ask
            counts.setflags(write=False)
            return cls(ids, counts)

        return once_per_plan("catalogue", training, count)

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

    @cached_property
    def _relevant(self) -> Relevant:
        return Relevant.of(*self.relevant)

    @cached_property
    def _held(self) -> Relevant:
        return Relevant.of(*self.held)

    def score(self, lists: TopK, all_relevant: bool = False) -> RankingMetrics:
        """The lists' metrics; the relevant pairs are prepared once however many lists (a
        grid's, the baselines') are scored against them."""
        return ranking_metrics_of(lists.user_ids, lists.item_ids, lists.ranks,
                                  self._held if all_relevant else self._relevant, self.k)


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


def _index_of(ids: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Each query's index in `ids` (the first, if repeated), -1 where absent. Ids are dense
    counters in MovieLens, so a table over their span does it in one gather, much faster than
    a binary search of millions of seen pairs; ids spread too thin get the binary search."""
    ids = np.asarray(ids, np.int64)
    if not ids.size:
        return np.full(query.size, -1, dtype=np.int64)
    lo, span = int(ids.min()), int(ids.max()) - int(ids.min()) + 1
    if span <= 8 * ids.size + 2**20:
        table = np.full(span + 1, -1, dtype=np.int64)  # the last slot answers "outside"
        table[ids[::-1] - lo] = np.arange(ids.size - 1, -1, -1)
        at = query - lo
        at[(at < 0) | (at >= span)] = span
        return table[at]
    sorter = np.argsort(ids, kind="stable")
    at = sorter[np.searchsorted(ids, query, sorter=sorter).clip(max=ids.size - 1)]
    return np.where(ids[at] == query, at, -1)


@dataclass(frozen=True)
class _Unseen:
    """Each listed user's unseen catalogue positions (in some order of the catalogue), found
    without listing them: with a user's seen positions sorted r_0 < r_1 < ..., the j-th (0-based)
    unseen position is j + #{i : r_i - i <= j}. The r_i - i are kept flat, keyed by user row, so
    one `searchsorted` answers for every user at once in O(log) per answer, whatever the
    catalogue's size."""

    unseen: np.ndarray  # per row: how many catalogue movies that user has not seen
    bounds: np.ndarray  # row r's keys are keys[bounds[r]:bounds[r + 1]]
    keys: np.ndarray  # row * width + (r_i - i), sorted
    width: int

    @classmethod
    def of(cls, user_ids: np.ndarray, catalogue: Catalogue, seen, position: np.ndarray
           ) -> _Unseen:
        """`position[i]` is catalogue movie i's place in the order; seen pairs of other users
        or of movies outside the catalogue are ignored, repeated pairs count once."""
        n, width = user_ids.size, max(1, catalogue.size)
        keys = np.empty(0, dtype=np.int64)
        if seen is not None and n and catalogue.size:
            rows = _index_of(user_ids, np.asarray(seen[0], np.int64))
            cols = _index_of(catalogue.item_ids, np.asarray(seen[1], np.int64))
            ok = (rows >= 0) & (cols >= 0)
            # Stable sort: much faster on pairs grouped by user, as they are collected;
            # np.unique is far slower here.
            keys = np.sort(rows[ok] * width + position[cols[ok]], kind="stable")
            keys = keys[np.diff(keys, prepend=-1) != 0]
        bounds = np.searchsorted(keys, np.arange(n + 1, dtype=np.int64) * width)
        keys = keys - (np.arange(keys.size) - np.repeat(bounds[:-1], np.diff(bounds)))
        return cls(catalogue.size - np.diff(bounds), bounds, keys, width)

    def at(self, rows: np.ndarray, j: np.ndarray) -> np.ndarray:
        """The j-th unseen position of each user row (j < that user's `unseen`)."""
        return j + np.searchsorted(self.keys, rows * self.width + j, side="right") \
            - self.bounds[rows]


def _within(lengths: np.ndarray) -> np.ndarray:
    """0, 1, ..., n - 1 for each of `lengths`, concatenated."""
    return np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def popular_lists(user_ids: np.ndarray, catalogue: Catalogue, k: int,
                  seen: tuple[np.ndarray, np.ndarray] | None) -> TopK:
    """Most-popular: the k movies with most training ratings that the user has not seen (ties
    to the lower movie id). Each user's list is the first k unseen movies of one popularity
    order, so the work grows with k plus the user's seen movies, not with the catalogue."""
    user_ids = np.asarray(user_ids, np.int64)
    order = np.lexsort((catalogue.item_ids, -catalogue.counts))  # popularity order
    rank_of = np.empty(catalogue.size, dtype=np.int64)
    rank_of[order] = np.arange(catalogue.size)
    unseen = _Unseen.of(user_ids, catalogue, seen, rank_of)
    lengths = np.minimum(max(k, 0), unseen.unseen)
    rows, j = np.repeat(np.arange(user_ids.size), lengths), _within(lengths)
    chosen = order[unseen.at(rows, j)]
    return TopK(user_ids[rows], catalogue.item_ids[chosen],
                catalogue.counts.astype(np.float32)[chosen], (j + 1).astype(np.int32))


_GAMMA = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's output function: a bijection of uint64 that scatters every input bit."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _draws(base: np.ndarray, counter: np.ndarray) -> np.ndarray:
    """Draw number `counter` of the splitmix64 stream that starts at `base`."""
    return _mix(base + (counter.astype(np.uint64) + np.uint64(1)) * _GAMMA)


def _below(h: np.ndarray, bound: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An exactly uniform index below `bound` (< 2**32) from each hash's high 32 bits, by
    Lemire's multiply-shift with rejection: (index, accepted)."""
    m = (h >> np.uint64(32)) * bound.astype(np.uint64)
    cut = (np.uint64(1) << np.uint64(32)) % np.maximum(bound, 1).astype(np.uint64)
    return (m >> np.uint64(32)).astype(np.int64), (m & np.uint64(0xFFFFFFFF)) >= cut


def _first_distinct(rows: np.ndarray, draws: np.ndarray, values: np.ndarray, width: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, draws, values) ordered by row then draw, a row's repeated values dropped (the
    earliest draw kept). Values are below `width`; each row's draws come in increasing order."""
    by_value = np.argsort(rows * width + values, kind="stable")  # earliest draw first
    first = np.ones(rows.size, dtype=bool)
    first[1:] = (np.diff(rows[by_value]) != 0) | (np.diff(values[by_value]) != 0)
    kept = by_value[first]
    kept = kept[np.argsort(rows[kept] * (int(draws.max(initial=0)) + 1) + draws[kept])]
    return rows[kept], draws[kept], values[kept]


def _rank_all(users: np.ndarray, unseen: np.ndarray, base: np.ndarray, k: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For users with few unseen movies: all of them ordered by hash (a uniform random order),
    the first k kept. (row, rank from 0, unseen index) of the picks."""
    rows = np.repeat(users, unseen[users])
    j = _within(unseen[users])
    ranked = np.lexsort((j, _draws(base[rows], j), rows))
    rank = _within(unseen[users])
    keep = rank < k
    return rows[ranked][keep], rank[keep], j[ranked][keep]


def _draw_distinct(users: np.ndarray, unseen: np.ndarray, base: np.ndarray, k: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For users with more than 2k unseen movies: uniform draws of an unseen index, repeats
    dropped, in rounds until each user has k (a draw is new with odds over 1/2, so rounds are
    few and each is over the users still short). (row, rank from 0, unseen index) of picks."""
    next_draw = np.zeros(unseen.size, dtype=np.int64)
    pool = (np.empty(0, np.int64),) * 3  # (row, draw, unseen index) of users still short
    picks = []
    while users.size:
        need = k - np.bincount(pool[0], minlength=unseen.size)[users]
        count = need + need * k // (unseen[users] - k) + 2  # about what k distinct take
        rows = np.repeat(users, count)
        draw = next_draw[rows] + _within(count)
        next_draw[users] += count
        index, ok = _below(_draws(base[rows], draw), unseen[rows])
        pool = _first_distinct(*(np.concatenate([old, new[ok]])
                                 for old, new in zip(pool, (rows, draw, index), strict=True)),
                               int(unseen.max()))
        have = np.bincount(pool[0], minlength=unseen.size)
        rank = np.arange(pool[0].size) - np.searchsorted(pool[0], pool[0])
        done = have[pool[0]] >= k
        take = done & (rank < k)
        picks.append((pool[0][take], rank[take], pool[2][take]))
        pool = tuple(part[~done] for part in pool)
        users = users[have[users] < k]
    return tuple(np.concatenate([p[i] for p in picks] + [np.empty(0, np.int64)])
                 for i in range(3))


def random_lists(user_ids: np.ndarray, catalogue: Catalogue, k: int,
                 seen: tuple[np.ndarray, np.ndarray] | None, seed: int = RANDOM_SEED) -> TopK:
    """The random-ranking floor: k unseen movies per user, uniformly at random without
    replacement. A user's draws are a counter-based hash (splitmix64) of (seed, user id, draw
    number), so a list does not depend on which other users are ranked with it (on the driver
    or in a task) and all users draw at once. A draw picks an index among the user's unseen
    movies, so seen ones cost nothing. Work: about k draws per user plus the seen pairs."""
    user_ids = np.asarray(user_ids, np.int64)
    unseen = _Unseen.of(user_ids, catalogue, seen, np.arange(catalogue.size))
    k = max(k, 0)
    lengths = np.minimum(k, unseen.unseen)
    base = _mix(user_ids.astype(np.uint64) ^ _mix(np.array([seed % 2**64], np.uint64)))
    starts = np.cumsum(lengths) - lengths
    slot = np.empty(int(lengths.sum()), dtype=np.int64)  # unseen index, by row then rank
    few = (unseen.unseen <= 2 * k) & (lengths > 0)
    for rows, rank, index in (
            _rank_all(np.flatnonzero(few), unseen.unseen, base, k),
            _draw_distinct(np.flatnonzero(~few & (lengths > 0)), unseen.unseen, base, k)):
        slot[starts[rows] + rank] = index
    rows = np.repeat(np.arange(user_ids.size), lengths)
    rank = _within(lengths)
    scores = (rank * (-1.0 / np.maximum(lengths, 1)[rows]) + 1.0).astype(np.float32)
    return TopK(user_ids[rows], catalogue.item_ids[unseen.at(rows, slot)], scores,
                (rank + 1).astype(np.int32))


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
