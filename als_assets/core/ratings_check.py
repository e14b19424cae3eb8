"""The ratings check on the Spark side: counts, and every rejected row named.

The rules are :mod:`.rating_rules`'s, the same the loader applies line by line. Spark finds the
bad rows and their values in one aggregation (plus a grouping for duplicate pairs and an anti
join against the movies); only when something is wrong does it collect the first few offending
rows, and, when the ratings came from a CSV file, a Python pass over that file finds their line
numbers (matching the values Spark read), so the message reads like the loader's:
"ratings.csv, line 6: rating 7.5 is out of range (must be 0.5..5.0)".
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from .content_hash import content_aggregates, content_sums
from .rating_rules import (
    FIELDS,
    INT32_MAX,
    KEEPABLE,
    MOVIE,
    RATING_MAX,
    RATING_MIN,
    RATING_STEP,
    ROW_RULES,
    RULE,
    USER,
    describe,
)

EXAMPLES = 3  # offending rows shown per rule
# The columns a field's value is read from: the raw (long/double) ones a CSV read keeps, so an
# id beyond int32 still shows its value, else the canonical ones.
_RAW = {"user_id": "_raw_user_id", "movie_id": "_raw_movie_id", "rating": "_raw_rating"}
_COLUMNS = ("user_id", "movie_id", "rating", "timestamp")
TABLE_FIELDS = dict(zip(FIELDS, _COLUMNS, strict=True))


@dataclass(frozen=True)
class BadRow:
    """An offending row: its values as the source gave them, and its lines in the file when
    the source is one (a duplicate pair has several)."""

    code: str
    values: tuple
    lines: tuple[int, ...] = ()


@dataclass(frozen=True)
class RatingsSummary:
    """One pass over the ratings: counts, the rows breaking each rule, and their examples."""

    rows: int
    users: int
    movies: int
    min_rating: float | None
    max_rating: float | None
    mean_rating: float | None
    counts: Mapping[str, int] = field(default_factory=dict)  # rule code -> offending rows
    examples: tuple[BadRow, ...] = ()
    where: str = "ratings"  # the file or table, as messages name it
    movies_name: str = "movies.csv"
    fields: Mapping[str, str] = field(default_factory=dict)  # header name -> shown name
    kept: frozenset[str] = frozenset()  # KEEPABLE codes downgraded to warnings
    # (rows, h1, h2) of summarize_ratings(content_of=...): content_hash.content_aggregates
    content: tuple[int, object, object] | None = None

    def count(self, code: str) -> int:
        return int(self.counts.get(code, 0))

    @property
    def problems(self) -> list[str]:
        """One line per broken rule that rejects the ratings, naming its rows."""
        out = ["no ratings at all"] if self.rows == 0 else []
        return out + [self._report(code) for code in _ORDER
                      if self.count(code) and code not in self.kept]

    @property
    def warnings(self) -> list[str]:
        """The broken rules the settings keep (empty timestamps, unknown movies)."""
        return [self._report(code) for code in _ORDER if self.count(code) and code in self.kept]

    def _report(self, code: str) -> str:
        """'<code> (<n> rows): <where>, line 6: <what is wrong> [row ...]; line 9: ...'."""
        n = self.count(code)
        examples = [row for row in self.examples if row.code == code]
        shown = "; ".join(self._example(row) for row in examples)
        if code == "duplicate_pair":
            more = n - sum(max(1, len(r.lines) - 1) for r in examples)
        else:
            more = n - len(examples)
        tail = f"; and {more} more" if more > 0 else ""
        sep = ", " if shown.startswith("line ") else ": "
        return f"{code} ({n} {'row' if n == 1 else 'rows'}): {self.where}{sep}{shown}{tail}"

    def _field(self, name: str) -> str:
        return self.fields.get(name, name)

    def _example(self, row: BadRow) -> str:
        values = dict(zip(FIELDS, row.values, strict=True))
        if row.code == "duplicate_pair":
            key = f"({self._field(USER)}, {self._field(MOVIE)}) = " \
                  f"({_plain(values[USER])}, {_plain(values[MOVIE])})"
            if len(row.lines) >= 2:
                first, *later = row.lines
                return "; ".join(f"line {line}: duplicate {key}, first seen on line {first}"
                                 for line in later)
            return f"duplicate {key}"
        rule = RULE[row.code]
        what = describe(row.code, _shown(values[rule.field]), self._field(rule.field),
                        self.movies_name)
        text = ",".join("" if v is None else _plain(v) for v in row.values)
        at = f"line {row.lines[0]}: " if row.lines else ""
        return f"{at}{what} [row {text}]"


_ORDER = tuple(r.code for r in ROW_RULES) + ("duplicate_pair", "unknown_movie")


def _plain(value: object) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{value:.1f}"
    return str(value)


def _shown(value: object) -> object:
    return None if value is None else _plain(value)


def _col(frame: DataFrame, name: str) -> Column:
    raw = _RAW.get(name)
    if raw and raw in frame.columns:
        return F.col(raw)
    return F.col(name).cast("double" if name == "rating" else "long")


def rule_column(frame: DataFrame) -> Column:
    """The code of the first row rule each row breaks (null if none), in ROW_RULES's order.

    The Spark form of rating_rules.row_problem; tests check the two agree row by row.
    """
    user, movie, rating, ts = (_col(frame, name) for name in _COLUMNS)
    conditions = {
        "null_user_id": user.isNull(),
        "negative_user_id": user < 0,
        "user_id_beyond_int32": user > INT32_MAX,
        "null_movie_id": movie.isNull(),
        "negative_movie_id": movie < 0,
        "movie_id_beyond_int32": movie > INT32_MAX,
        "null_rating": rating.isNull(),
        "rating_out_of_range": F.isnan(rating) | (rating < RATING_MIN) | (rating > RATING_MAX),
        "rating_not_half_star": (rating / RATING_STEP) != F.floor(rating / RATING_STEP),
        "empty_timestamp": ts.isNull(),
    }
    assert tuple(conditions) == tuple(r.code for r in ROW_RULES)
    expr = F.lit(None).cast("string")
    for code in reversed(conditions):
        expr = F.when(conditions[code], F.lit(code)).otherwise(expr)
    return expr


def summarize_ratings(ratings: DataFrame, movies: DataFrame | None = None, *,
                      where: str = "ratings", csv_file: str | Path | None = None,
                      movies_name: str = "movies.csv", keep: Sequence[str] = (),
                      fields: Mapping[str, str] | None = None,
                      content_of: Sequence[Column] = ()) -> RatingsSummary:
    """Count rows, ids and the rows breaking each rule; name the first few of each.

    ``movies``: the known movies (a rating of any other is reported); ``csv_file``: the file the
    ratings were read from, to give line numbers; ``keep``: KEEPABLE codes that only warn;
    ``content_of``: columns (expressions over ``ratings``) whose content hash
    (`content_hash.content_aggregates`) is computed in the same pass, in
    ``RatingsSummary.content``.

    The data is read twice when it is valid: one aggregation for the counts, the rule breaks,
    the ratings of unknown movies (a broadcast join on the known ids) and the content hash; one
    grouping by (user, movie) for duplicates. Only a broken rule reads more, for examples.
    """
    unknown = set(keep) - set(KEEPABLE)
    if unknown:
        raise ValueError(f"only {', '.join(KEEPABLE)} can be kept, not {', '.join(unknown)}")
    values = [_col(ratings, name).alias(name) for name in _COLUMNS]
    flagged = ratings.select(*values, rule_column(ratings).alias("_rule"),
                             F.col("user_id").alias("_uid"), F.col("movie_id").alias("_mid"),
                             *(c.alias(f"_content{i}") for i, c in enumerate(content_of)))
    keyed = F.col("_uid").isNotNull() & F.col("_mid").isNotNull()
    # Rows that break a row rule are reported for that; an empty timestamp may be kept.
    rated = keyed & (F.col("_rule").isNull() | (F.col("_rule") == "empty_timestamp"))
    unknown = F.lit(False)
    if movies is not None:
        known = movies.select(F.col("movie_id").alias("_mid")).distinct() \
            .withColumn("_known", F.lit(True))
        flagged = flagged.join(F.broadcast(known), "_mid", "left")
        unknown = rated & F.col("_known").isNull()
    flagged = flagged.withColumn("_unknown", unknown)
    hashed = [f"_content{i}" for i in range(len(content_of))]
    extra = content_aggregates(hashed) if hashed else []
    row = flagged.agg(
        F.count(F.lit(1)).alias("rows"),
        F.countDistinct("_uid").alias("users"),
        F.countDistinct("_mid").alias("movies"),
        F.min("rating").alias("min_rating"),
        F.max("rating").alias("max_rating"),
        F.avg("rating").alias("mean_rating"),
        *(F.count(F.when(F.col("_rule") == r.code, 1)).alias(r.code) for r in ROW_RULES),
        F.count(F.when(F.col("_unknown"), 1)).alias("unknown_movie"),
        *extra,
    ).first()
    counts = {r.code: int(row[r.code] or 0) for r in ROW_RULES}
    valid_keys = flagged.filter(keyed)
    dup_keys = valid_keys.groupBy("_uid", "_mid").count().filter(F.col("count") > 1)
    counts["duplicate_pair"] = int(
        dup_keys.agg(F.coalesce(F.sum(F.col("count") - 1), F.lit(0))).first()[0] or 0)
    orphans = None
    if movies is not None:
        counts["unknown_movie"] = int(row["unknown_movie"] or 0)
        orphans = flagged.filter(F.col("_unknown"))

    examples: list[BadRow] = []
    for rule in ROW_RULES:
        if counts[rule.code]:
            examples += [BadRow(rule.code, tuple(r)) for r in flagged.filter(
                F.col("_rule") == rule.code).select(*_COLUMNS).limit(EXAMPLES).collect()]
    if counts["duplicate_pair"]:
        # One example per pair: its lines (all of them) come from the file.
        keys = dup_keys.select("_uid", "_mid").orderBy("_uid", "_mid").limit(EXAMPLES)
        rows = valid_keys.join(keys, ["_uid", "_mid"]).select(*_COLUMNS).collect()
        for key in sorted({(r[0], r[1]) for r in rows}):
            examples.append(BadRow("duplicate_pair", next(
                tuple(r) for r in rows if (r[0], r[1]) == key)))
    if orphans is not None and counts["unknown_movie"]:
        examples += [BadRow("unknown_movie", tuple(r))
                     for r in orphans.select(*_COLUMNS).limit(EXAMPLES).collect()]
    if examples and csv_file is not None:
        examples = _with_lines(Path(csv_file), examples)
    return RatingsSummary(
        rows=row["rows"], users=row["users"], movies=row["movies"],
        min_rating=row["min_rating"], max_rating=row["max_rating"],
        mean_rating=row["mean_rating"], counts=counts, examples=tuple(examples), where=where,
        movies_name=movies_name, fields=dict(fields or {}), kept=frozenset(keep),
        content=content_sums(row) if hashed else None)


# ---------------------------------------------------------------------------------------------
# Line numbers: a Python pass over the file, only when something is wrong


def _number(text: str, kind: type) -> object:
    try:
        return kind(text)
    except ValueError:
        return None


def _parsed(row: list[str]) -> tuple:
    """A CSV row's values as Spark's schema reads them (long, long, double, long)."""
    if len(row) != 4:
        return ()
    user, movie, rating, ts = row
    rating_value = _number(rating, float)
    return (_number(user, int), _number(movie, int),
            None if rating_value is None else _float_key(rating_value), _number(ts, int))


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, fields) of each data record, as the loader numbers them."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        line = reader.line_num + 1
        for row in reader:
            if row:
                yield line, row
            line = reader.line_num + 1


def _with_lines(path: Path, examples: list[BadRow]) -> list[BadRow]:
    """The examples with the lines of the file that hold them. A single-row example is matched
    on all its values, a duplicate pair on (userId, movieId), every line of it; the pass stops
    as soon as everything is found (a duplicate pair needs the whole file)."""
    singles: dict[tuple, list[int]] = {
        _key(r.values): [] for r in examples if r.code != "duplicate_pair"}
    pairs: dict[tuple, list[int]] = {
        _key(r.values)[:2]: [] for r in examples if r.code == "duplicate_pair"}
    try:
        for line, row in _records(path):
            key = _parsed(row)
            if key in singles and not singles[key]:
                singles[key].append(line)
                if not pairs and all(singles.values()):
                    break
            if key[:2] in pairs:
                pairs[key[:2]].append(line)
    except (OSError, csv.Error, io.UnsupportedOperation):
        return examples  # the message still names the rows; it just has no line numbers
    return [BadRow(r.code, r.values, tuple(
        pairs[_key(r.values)[:2]] if r.code == "duplicate_pair" else singles[_key(r.values)]))
        for r in examples]


def _key(values: tuple) -> tuple:
    return tuple(None if v is None else (_float_key(v) if i == 2 else int(v))
                 for i, v in enumerate(values))


def _float_key(value: object) -> object:
    """A rating as a dict key: NaN is not equal to itself, so it is matched by name."""
    number = float(value)
    return "nan" if math.isnan(number) else number
