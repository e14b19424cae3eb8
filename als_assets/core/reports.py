"""Human-readable reports: one user's taste beside their recommendations, and the leaderboard."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .champion import choose_champion, lift, validation_column
from .experiments import ChampionRule


@dataclass(frozen=True)
class SampleUserReport:
    """A user's top-rated training movies beside their recommendations; a recommendation the
    user rated in test carries that rating (a hit the model could not have seen)."""

    user_id: int
    top_rated: pd.DataFrame  # rank, movie_id, title, genres, rating
    recommended: pd.DataFrame  # rank, movie_id, title, genres, score, test_rating

    def markdown(self) -> str:
        def table(frame: pd.DataFrame, cols: list[str]) -> str:
            head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
            body = "\n".join(
                "| " + " | ".join("" if pd.isna(r[c]) else
                                  (f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]))
                                  for c in cols) + " |"
                for _, r in frame.iterrows())
            return head + body

        hits = int(self.recommended["test_rating"].notna().sum())
        return (
            f"### User {self.user_id}: top-rated in training\n\n"
            + table(self.top_rated, ["rank", "title", "genres", "rating"])
            + f"\n\n### Recommendations ({hits} rated by the user in test)\n\n"
            + table(self.recommended, ["rank", "title", "genres", "score", "test_rating"])
        )


# The most active test users looked up in the lists before joining every test row with them.
SAMPLE_CANDIDATES = 20


def pick_sample_user(recommendations: DataFrame, test: DataFrame, preferred: int | None) -> int:
    """The configured user if they have recommendations, else the most active test user."""
    if preferred is not None and recommendations.filter(F.col("user_id") == preferred).limit(1) \
            .count():
        return preferred
    # Every user with factors has a list, so the most active test users nearly always do: the
    # test ratings are counted per user (a partial aggregation, no join of the test rows) and
    # the leaders are looked up in the lists; the join decides only if none of them has one.
    leaders = [int(r["user_id"]) for r in test.groupBy("user_id").count()
               .orderBy(F.desc("count"), "user_id").limit(SAMPLE_CANDIDATES).collect()]
    listed = {int(r["user_id"]) for r in recommendations
              .filter(F.col("user_id").isin(leaders)).select("user_id").distinct().collect()}
    found = next((u for u in leaders if u in listed), None)
    if found is not None:
        return found
    if len(leaders) < SAMPLE_CANDIDATES:  # every test user was looked up
        raise ValueError("no test user has recommendations")
    row = (test.join(recommendations.select("user_id").distinct(), "user_id")
           .groupBy("user_id").count().orderBy(F.desc("count"), "user_id").first())
    if row is None:
        raise ValueError("no test user has recommendations")
    return int(row["user_id"])


def sample_user_view(training: DataFrame, test: DataFrame, recommendations: DataFrame,
                     movies: DataFrame, user_id: int, n: int = 10) -> SampleUserReport:
    titles = movies.select("movie_id", "title", "genres")
    top = (training.filter(F.col("user_id") == user_id)
           .join(titles, "movie_id", "left")
           .orderBy(F.desc("rating"), F.desc("timestamp"), "movie_id").limit(n).toPandas())
    top.insert(0, "rank", range(1, len(top) + 1))
    test_ratings = test.filter(F.col("user_id") == user_id).select(
        "movie_id", F.col("rating").alias("test_rating"))
    recs = (recommendations.filter((F.col("user_id") == user_id) & (F.col("rank") <= n))
            .join(titles, "movie_id", "left").join(test_ratings, "movie_id", "left")
            .orderBy("rank").toPandas())
    return SampleUserReport(
        user_id=user_id,
        top_rated=top[["rank", "movie_id", "title", "genres", "rating"]],
        recommended=recs[["rank", "movie_id", "title", "genres", "score", "test_rating"]],
    )


# Test metrics the leaderboard shows for each experiment, beside the baselines' on the same users.
LEADERBOARD_METRICS = (
    "ndcg_at_k", "precision_at_k", "recall_at_k", "map_at_k",
    "ndcg_at_k_all_relevant", "precision_at_k_all_relevant",
    "most_popular_ndcg_at_k", "most_popular_precision_at_k",
    "most_popular_ndcg_at_k_all_relevant", "most_popular_precision_at_k_all_relevant",
    "random_ndcg_at_k",
    "coverage", "popularity_bias", "popular_overlap", "rmse", "mae",
)


def leaderboard_frame(rows: list[dict], rule: ChampionRule) -> pd.DataFrame:
    """One row per experiment, best validation score under the champion rule's metric first
    (the champion's own choice, never test); each row says whether it is the champion, eligible
    or why not."""
    frame = pd.DataFrame(rows)
    score = validation_column(rule.metric)
    popular = validation_column(rule.metric, "most_popular")
    if frame.empty:
        return pd.DataFrame(columns=["position", "experiment", "serving", score, popular,
                                     "validation_lift", *LEADERBOARD_METRICS])
    for col in (score, popular, *LEADERBOARD_METRICS):
        if col not in frame:
            frame[col] = float("nan")
    choice = choose_champion(frame, rule)
    frame["serving"] = [choice.verdict(name) for name in frame["experiment"]]
    frame["validation_lift"] = [lift(s, p) if s == s and p == p else float("nan")
                                for s, p in zip(frame[score].astype(float),
                                                frame[popular].astype(float), strict=True)]
    frame = frame.sort_values([score, "experiment"], ascending=[False, True],
                              na_position="last", kind="stable").reset_index(drop=True)
    frame.insert(0, "position", range(1, len(frame) + 1))
    first = ["position", "experiment", "serving", score, popular, "validation_lift",
             *LEADERBOARD_METRICS]
    return frame[first + [c for c in frame.columns if c not in first]]
