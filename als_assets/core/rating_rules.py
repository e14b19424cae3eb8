"""The rules a rating row must follow: one specification for the loader and the Spark source.

The command-line loader checks ratings.csv line by line in Python; the ``ratings`` asset checks
whatever its source returned with Spark. Both name a rejected row by the same rule, in the same
words, from this module: the loader calls :func:`row_problem` on each parsed row, and the Spark
path builds its column expressions from :data:`RULES` and the same constants (see
``core/ratings_check.py``), so a file the loader refuses is refused by the Spark path too, and
for the same reason. Free of Spark and Dagster so the loader needs neither.

Rules about one row come first, in the order a row is checked (the first broken rule is the
one reported); the two rules about several rows (a duplicate pair, a movie missing from the
movies) follow. Empty timestamps and unknown movies can be kept with a warning instead
(:data:`KEEPABLE`): real exports sometimes have them, and dropping such a row changes the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Ids must fit PostgreSQL `integer` and Spark's IntegerType, and Spark ALS rejects negative ids.
INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
RATING_MIN, RATING_MAX = 0.5, 5.0
RATING_STEP = 0.5  # MovieLens uses half stars: 0.5, 1.0, ..., 5.0

# ratings.csv's header names; messages name a field as the file does.
USER, MOVIE, RATING, TIMESTAMP = "userId", "movieId", "rating", "timestamp"
FIELDS = (USER, MOVIE, RATING, TIMESTAMP)


@dataclass(frozen=True)
class Rule:
    """One way a rating row can be wrong: a code (stable, used in metadata), the field it is
    about, and what is wrong, worded to follow "<field> <value>"."""

    code: str
    field: str
    problem: str


RULES: tuple[Rule, ...] = (
    Rule("null_user_id", USER, "is empty"),
    Rule("negative_user_id", USER, f"is negative (ids must be 0..{INT32_MAX})"),
    Rule("user_id_beyond_int32", USER, f"is beyond int32 (ids must be 0..{INT32_MAX})"),
    Rule("null_movie_id", MOVIE, "is empty"),
    Rule("negative_movie_id", MOVIE, f"is negative (ids must be 0..{INT32_MAX})"),
    Rule("movie_id_beyond_int32", MOVIE, f"is beyond int32 (ids must be 0..{INT32_MAX})"),
    Rule("null_rating", RATING, "is empty"),
    Rule("rating_out_of_range", RATING, f"is out of range (must be {RATING_MIN}..{RATING_MAX})"),
    Rule("rating_not_half_star", RATING,
         f"is not a multiple of {RATING_STEP} (MovieLens ratings are half stars)"),
    Rule("empty_timestamp", TIMESTAMP, "is empty"),
    # About several rows: found by a pass over the whole file / table.
    Rule("duplicate_pair", f"({USER}, {MOVIE})", "is rated more than once"),
    Rule("unknown_movie", MOVIE, "is not in {movies}"),
)
RULE = {rule.code: rule for rule in RULES}
ROW_RULES = tuple(rule for rule in RULES if rule.code not in ("duplicate_pair", "unknown_movie"))
KEEPABLE = ("empty_timestamp", "unknown_movie")


def id_rule(value: int | None, null: str, negative: str, beyond: str) -> str | None:
    if value is None:
        return null
    if value < 0:
        return negative
    if value > INT32_MAX:
        return beyond
    return None


def rating_rule(value: float | None) -> str | None:
    if value is None:
        return "null_rating"
    if math.isnan(value) or not RATING_MIN <= value <= RATING_MAX:
        return "rating_out_of_range"
    if not (value / RATING_STEP).is_integer():
        return "rating_not_half_star"
    return None


def row_problem(user: int | None, movie: int | None, rating: float | None,
                timestamp: int | None) -> str | None:
    """The code of the first rule a parsed row breaks, or None; None values are empty fields."""
    return (
        id_rule(user, "null_user_id", "negative_user_id", "user_id_beyond_int32")
        or id_rule(movie, "null_movie_id", "negative_movie_id", "movie_id_beyond_int32")
        or rating_rule(rating)
        or (None if timestamp is not None else "empty_timestamp")
    )


def describe(code: str, value: object, field: str | None = None,
             movies: str = "movies.csv") -> str:
    """'<field> <value> <problem>', e.g. "rating '7.5' is out of range (must be 0.5..5.0)".

    ``field`` overrides the rule's (a database source names its columns, not the header's);
    ``movies`` names where the known movies come from.
    """
    rule = RULE[code]
    shown = "" if value is None or value == "" else f" {value!r}"
    return f"{field or rule.field}{shown} {rule.problem.format(movies=movies)}"
