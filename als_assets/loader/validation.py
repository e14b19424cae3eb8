"""Validating the MovieLens files while they stream: every record, by the shared rules.

The rating-row rules (ids, the rating's scale and half-star grid, empty timestamps, ratings of
movies missing from movies.csv) are core/rating_rules.py's, the same the Spark source applies,
so both refuse the same rows in the same words. What stays here is the text syntax of a CSV
field (a rating written as '1e0' or ' 4' is not a rating) and the hot loop that turns records
into COPY input.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from als_assets.core.rating_rules import (
    INT32_MAX,
    INT64_MAX,
    INT64_MIN,
    RULE,
    id_rule,
    rating_rule,
)

from .records import (
    _MOVIES,
    _RATINGS,
    MOVIES_FILE,
    RATINGS_FILE,
    MovieLensFormatError,
    MovieLensInputError,
    ProgressFn,
    _check_header,
    _Records,
    _shown,
    _TableSpec,
)

PROGRESS_EVERY_ROWS = 1_000_000
_BATCH_ROWS = 10_000  # rows per chunk handed to COPY: big enough to amortise calls, small in RAM
_RATING_RE = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_INTEGER_RE = re.compile(r"-?[0-9]+")
_SHOWN_KEPT = 5  # kept rows named in the warning


def _id_ok(text: str) -> bool:
    # isascii() matters: str.isdigit() also accepts e.g. superscript digits, which int() rejects.
    return text.isascii() and text.isdigit() and (len(text) < 10 or int(text) <= INT32_MAX)


def _id_problem(text: str, field_name: str) -> str:
    """What is wrong with an id: empty, not an integer, or (rating_rules) negative / too big."""
    if not text:
        return "is empty"
    if _INTEGER_RE.fullmatch(text) is None:
        return "is not an integer"
    prefix = "user" if field_name == "userId" else "movie"
    code = id_rule(int(text), f"null_{prefix}_id", f"negative_{prefix}_id",
                   f"{prefix}_id_beyond_int32")
    return RULE[code].problem if code else "is not a valid id"


def _rating_problem(text: str) -> str | None:
    """None if ``text`` is a valid MovieLens rating, else what is wrong with it.

    The regex (not just ``float()``) keeps out 'nan', 'inf', '1_0', ' 4' and exponents, which
    Python accepts but PostgreSQL's COPY might not, or which are clearly not star ratings; the
    value's rules (scale, half stars) are rating_rules', as in the Spark source.
    """
    if not text:
        return RULE["null_rating"].problem
    if _RATING_RE.fullmatch(text) is None:
        return "is not a number"
    code = rating_rule(float(text))
    return RULE[code].problem if code else None


def _timestamp_problem(text: str) -> str | None:
    if not text:
        # The table's timestamp column is NOT NULL, so the loader cannot keep such a row (the
        # Spark source can, with ALS_KEEP_EMPTY_TIMESTAMPS).
        return RULE["empty_timestamp"].problem
    if _INTEGER_RE.fullmatch(text) is None:
        return "is not an integer"
    if len(text) > 18 and not INT64_MIN <= int(text) <= INT64_MAX:
        return "is out of range for a 64-bit integer"
    return None


def _text_problem(text: str) -> str | None:
    """Title/genres: must be non-empty and storable; a line break means an unbalanced quote."""
    if not text:
        return "is empty"
    if "\x00" in text:
        return "contains a NUL character, which PostgreSQL text cannot store"
    if "\n" in text or "\r" in text:
        return "contains a line break (unbalanced quote in the file?)"
    return None



def _field_error(
    path: Path, line: int, field: str, value: str, problem: str
) -> MovieLensFormatError:
    shown = f" {_shown(value)}" if value else ""  # "timestamp is empty", as rating_rules says
    return MovieLensFormatError(
        path, line, f"{field}{shown} {problem}", field=field, value=value
    )


def _count_error(path: Path, line: int, spec: _TableSpec, row: list[str]) -> MovieLensFormatError:
    return MovieLensFormatError(
        path,
        line,
        f"expected {len(spec.header)} fields ({','.join(spec.header)}), got {len(row)}: "
        f"{_shown(','.join(row))}",
    )


class _Progress:
    """Rate-limited progress reporting (every ``PROGRESS_EVERY_ROWS`` rows, with % of bytes)."""

    def __init__(self, records: _Records, progress: ProgressFn | None) -> None:
        self._records = records
        self._progress = progress
        self._started = time.perf_counter()

    def rows(self, count: int) -> None:
        if self._progress is None:
            return
        size = self._records.size or 1
        pct = min(100.0, 100.0 * self._records.bytes_read() / size)
        self._progress(
            f"{self._records.path.name}: {count:,} rows validated ({pct:.0f}%, "
            f"{time.perf_counter() - self._started:.1f} s)"
        )


@dataclass
class MovieIds:
    """The movie ids of movies.csv, gathered while it streams, and the ratings of other movies
    that were kept (when ``keep_unknown``) as (line, movieId).

    Mutable on purpose: it is filled by one pass and read by the next. Ids are kept as the
    canonical digit string, so the ratings' hot loop does a string lookup, not an int().
    """

    keep_unknown: bool = False
    known: set[str] = field(default_factory=set)
    kept: list[tuple[int, str]] = field(default_factory=list)

    def warning(self, path: Path) -> str | None:
        """The warning for kept ratings of unknown movies, naming the first few lines."""
        if not self.kept:
            return None
        shown = "; ".join(f"line {line}: movieId {movie!r}"
                          for line, movie in self.kept[:_SHOWN_KEPT])
        more = len(self.kept) - _SHOWN_KEPT
        return (f"{path}: kept {len(self.kept)} rating(s) of movies not in {MOVIES_FILE} "
                f"(--keep-unknown-movies / ALS_KEEP_UNKNOWN_MOVIES): {shown}"
                + (f"; and {more} more" if more > 0 else ""))


def _ratings_chunks(records: _Records, counter: list[int], report: _Progress,
                    movies: MovieIds | None = None) -> Iterator[str]:
    """Validate ratings.csv records and yield COPY-ready CSV text, ``_BATCH_ROWS`` at a time.

    This is the hot loop for 25M-row files, so the common case is a few cheap string checks and
    a memo of already-accepted rating strings (a file has only ~10 distinct ones); precise
    error messages are only built on failure. ``movies``: the ids of movies.csv, read first;
    a rating of any other movie is an error unless ``movies.keep_unknown``.
    """
    path, spec = records.path, records.spec
    known = movies.known if movies is not None else None
    ok_ratings: set[str] = set()
    out: list[str] = []
    rows = 0
    for line, row in records:
        if len(row) != 4:
            raise _count_error(path, line, spec, row)
        user, movie, rating, ts = row
        if not _id_ok(user):
            raise _field_error(path, line, "userId", user, _id_problem(user, "userId"))
        if not _id_ok(movie):
            raise _field_error(path, line, "movieId", movie, _id_problem(movie, "movieId"))
        if rating not in ok_ratings:
            problem = _rating_problem(rating)
            if problem is not None:
                raise _field_error(path, line, "rating", rating, problem)
            if len(ok_ratings) < 1000:
                ok_ratings.add(rating)
        if not (ts.isascii() and ts.isdigit() and len(ts) <= 18):
            problem = _timestamp_problem(ts)
            if problem is not None:
                raise _field_error(path, line, "timestamp", ts, problem)
        if known is not None and movie not in known and str(int(movie)) not in known:
            if not movies.keep_unknown:
                raise _field_error(path, line, "movieId", movie,
                                   RULE["unknown_movie"].problem.format(movies=MOVIES_FILE))
            movies.kept.append((line, movie))
        # Every field is now digits / '-' / '.', so re-emitting with commas is valid CSV.
        out.append(f"{user},{movie},{rating},{ts}")
        rows += 1
        if len(out) >= _BATCH_ROWS:
            yield "\n".join(out) + "\n"
            out.clear()
        if rows % PROGRESS_EVERY_ROWS == 0:
            report.rows(rows)
    if out:
        yield "\n".join(out) + "\n"
    counter[0] = rows


def _csv_quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _movies_chunks(records: _Records, counter: list[int], report: _Progress,
                   movies: MovieIds | None = None) -> Iterator[str]:
    """Validate movies.csv records and yield COPY-ready CSV text; gather the ids in ``movies``.

    Title and genres are always re-quoted: an unquoted empty field would be NULL to COPY, and
    quoting makes commas and quotes inside titles ("Gift, The", 11'09""01) round-trip exactly.
    """
    path, spec = records.path, records.spec
    out: list[str] = []
    rows = 0
    for line, row in records:
        if len(row) != 3:
            raise _count_error(path, line, spec, row)
        movie, title, genres = row
        if not _id_ok(movie):
            raise _field_error(path, line, "movieId", movie, _id_problem(movie, "movieId"))
        for name, value in (("title", title), ("genres", genres)):
            problem = _text_problem(value)
            if problem is not None:
                raise _field_error(path, line, name, value, problem)
        if movies is not None:
            movies.known.add(str(int(movie)))
        out.append(f"{movie},{_csv_quote(title)},{_csv_quote(genres)}")
        rows += 1
        if len(out) >= _BATCH_ROWS:
            yield "\n".join(out) + "\n"
            out.clear()
        if rows % PROGRESS_EVERY_ROWS == 0:
            report.rows(rows)
    if out:
        yield "\n".join(out) + "\n"
    counter[0] = rows


def _chunks(records: _Records, counter: list[int], progress: ProgressFn | None,
            movies: MovieIds | None = None) -> Iterator[str]:
    """The validating generator of either file; movies.csv must be read before ratings.csv
    for ``movies`` to hold its ids."""
    report = _Progress(records, progress)
    if records.spec is _RATINGS:
        return _ratings_chunks(records, counter, report, movies)
    return _movies_chunks(records, counter, report, movies)


def movielens_files(folder: str | Path) -> tuple[Path, Path]:
    """Return ``(ratings.csv, movies.csv)`` of a MovieLens folder after checking their headers.

    Cheap (reads one line of each), so it runs before any database connection: a wrong folder
    fails fast with exit code 2 even when the database is down.
    """
    base = Path(folder)
    if not base.is_dir():
        raise MovieLensInputError(f"{base}: not a directory (expected a MovieLens folder)")
    paths = []
    for spec in (_RATINGS, _MOVIES):
        path = base / spec.file_name
        if not path.is_file():
            raise MovieLensInputError(
                f"{path}: file not found (a MovieLens folder such as ml-latest-small, ml-20m or "
                f"ml-25m contains {RATINGS_FILE} and {MOVIES_FILE})"
            )
        try:
            _check_header(path, spec)
        except OSError as exc:
            raise MovieLensInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
        paths.append(path)
    return paths[0], paths[1]


def validate_movielens(folder: str | Path, progress: ProgressFn | None = None, *,
                       keep_unknown_movies: bool = False,
                       warn: ProgressFn | None = None) -> tuple[int, int]:
    """Fully validate both files without a database; return ``(ratings_rows, movies_rows)``.

    movies.csv first, so a rating of a movie it lacks is found (an error, or a warning through
    ``warn`` with ``keep_unknown_movies``). Does not detect duplicate keys (that would need
    memory proportional to the file); the database load does.
    """
    ratings_path, movies_path = movielens_files(folder)
    movies = MovieIds(keep_unknown=keep_unknown_movies)
    counts = {}
    for path, spec in ((movies_path, _MOVIES), (ratings_path, _RATINGS)):
        counter = [0]
        for _ in _chunks(_Records(path, spec), counter, progress, movies):
            pass
        counts[spec.kind] = counter[0]
    message = movies.warning(ratings_path)
    if message and warn is not None:
        warn(message)
    return counts["ratings"], counts["movies"]


