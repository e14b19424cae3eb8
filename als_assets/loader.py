"""Load a MovieLens folder (ratings.csv + movies.csv) into PostgreSQL: ``als-load-movielens``.

Design: one pass, one transaction
---------------------------------
The files can be large (ml-25m: 25M ratings, ~650 MB), so they are never held in memory and are
read exactly once. Each file is streamed through a validating reader straight into a ``COPY ...
FROM STDIN`` of a session-private ``TEMP`` staging table. Only after *both* files have been
completely validated and staged does the loader touch the real tables, and it does so in the
same transaction::

    BEGIN
      COPY movies.csv  -> temp staging table   (every record validated while streaming)
      COPY ratings.csv -> temp staging table   (every record validated while streaming)
      take a transaction-scoped advisory lock        (serialises concurrent loaders)
      create schema / tables if missing, check their shape
      LOCK both tables IN SHARE ROW EXCLUSIVE MODE   (keeps writers out; readers unaffected)
      DELETE FROM real; INSERT INTO real SELECT * FROM staging   (for both tables)
      ANALYZE
    COMMIT

Why this design rather than "validate the whole file first, then load it":

* It is as safe. Bad data raises inside the COPY, the transaction is rolled back and nothing
  is written - not even the schema. The real tables are only touched once everything is valid.
* It is twice as fast for big files: a separate validation pass would read and parse 650 MB
  twice. (The header of both files is still checked before connecting, and ``--validate-only``
  runs the full validation without a database.)
* Readers never see an empty or half-loaded table: ``DELETE`` + ``INSERT`` is MVCC-safe, so
  concurrent readers see the old rows until ``COMMIT`` and the new rows afterwards. ``TRUNCATE``
  was rejected because it takes an ACCESS EXCLUSIVE lock (blocking every reader for the whole
  insert) and is not MVCC-safe for transactions with older snapshots. The cost of ``DELETE`` is
  dead tuples that autovacuum reclaims later.
* A rerun replaces the rows, so loading the same folder twice gives the same tables.
* Duplicate ``(userId, movieId)`` pairs (or ``movieId`` in movies.csv) are caught by the real
  tables' primary keys during the INSERT - no memory-hungry set in Python, no extra pass on the
  happy path. On that (rare) error the file is re-scanned to name the two offending lines.

Exit codes of the CLI: 0 success, 1 database unreachable or database error, 2 invalid input
files or arguments, 130 interrupted. In every failure case the database is left unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import psycopg2
from psycopg2 import errors as pg_errors
from psycopg2 import sql

from als_assets.core.pg import PgConnectionError, PgSettings, connect, split_qualified_name

__all__ = [
    "DEFAULT_MOVIES_TABLE",
    "DEFAULT_RATINGS_TABLE",
    "LoadResult",
    "MovieLensFormatError",
    "MovieLensInputError",
    "build_parser",
    "load_movielens",
    "main",
    "movielens_files",
    "validate_movielens",
]

PROG = "als-load-movielens"
DEFAULT_RATINGS_TABLE = "movielens.ratings"
DEFAULT_MOVIES_TABLE = "movielens.movies"
RATINGS_FILE = "ratings.csv"
MOVIES_FILE = "movies.csv"
RATINGS_HEADER = ("userId", "movieId", "rating", "timestamp")
MOVIES_HEADER = ("movieId", "title", "genres")

# Ids must fit PostgreSQL `integer` and Spark's IntegerType, and Spark ALS rejects negative ids,
# so ids are 0..2^31-1. Timestamps must fit `bigint`.
INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
RATING_MIN, RATING_MAX = 0.5, 5.0  # MovieLens uses half stars: 0.5, 1.0, ..., 5.0

PROGRESS_EVERY_ROWS = 1_000_000
_BATCH_ROWS = 10_000  # rows per chunk handed to COPY: big enough to amortise calls, small in RAM
_MAX_SHOWN = 60  # longest value quoted verbatim in an error message

# Arbitrary constant identifying this loader's advisory lock (transaction-scoped).
_ADVISORY_LOCK_KEY = 0x616C735F6C6F6164  # "als_load"

EXIT_OK, EXIT_DB, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

ProgressFn = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# Errors and results


class MovieLensInputError(ValueError):
    """The MovieLens folder or one of its files is unusable (missing, unreadable, malformed).

    A ``ValueError`` so callers that only care about "bad input vs. infrastructure" can catch
    it broadly; the CLI maps it to exit code 2.
    """


class MovieLensFormatError(MovieLensInputError):
    """A specific record of a MovieLens file is invalid.

    Carries the path, the 1-based physical line number, the field (as named in the file's
    header) and the offending value, so tooling can point at the exact spot; ``str()`` reads
    ``<path>, line <n>: <what is wrong>``.
    """

    def __init__(
        self,
        path: Path,
        line: int,
        message: str,
        field: str | None = None,
        value: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.line = line
        self.field = field
        self.value = value
        super().__init__(f"{path}, line {line}: {message}")


@dataclass(frozen=True)
class LoadResult:
    """What a successful load did; frozen so it can be passed around / logged as a value."""

    ratings_rows: int
    movies_rows: int
    seconds: float
    ratings_table: str = DEFAULT_RATINGS_TABLE
    movies_table: str = DEFAULT_MOVIES_TABLE


# ---------------------------------------------------------------------------------------------
# Validation while streaming


@dataclass(frozen=True)
class _TableSpec:
    """Everything that differs between ratings and movies, so the load logic exists once."""

    kind: str  # "ratings" / "movies", used in messages and the staging table name
    file_name: str
    header: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]  # (column, SQL type); the notebook's names
    primary_key: tuple[str, ...]
    key_fields: tuple[str, ...]  # header names of the primary key, for duplicate messages

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


_RATINGS = _TableSpec(
    kind="ratings",
    file_name=RATINGS_FILE,
    header=RATINGS_HEADER,
    columns=(
        ("user_id", "integer"),
        ("movie_id", "integer"),
        ("rating", "real"),
        ("timestamp", "bigint"),
    ),
    primary_key=("user_id", "movie_id"),
    key_fields=("userId", "movieId"),
)
_MOVIES = _TableSpec(
    kind="movies",
    file_name=MOVIES_FILE,
    header=MOVIES_HEADER,
    columns=(("movie_id", "integer"), ("title", "text"), ("genres", "text")),
    primary_key=("movie_id",),
    key_fields=("movieId",),
)

_RATING_RE = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_TIMESTAMP_RE = re.compile(r"-?[0-9]+")


def _shown(value: str) -> str:
    """Quote a value for an error message, truncated so a corrupt 1 MB field stays readable."""
    if len(value) > _MAX_SHOWN:
        value = value[:_MAX_SHOWN] + "..."
    return repr(value)


def _id_ok(text: str) -> bool:
    # isascii() matters: str.isdigit() also accepts e.g. superscript digits, which int() rejects.
    return text.isascii() and text.isdigit() and (len(text) < 10 or int(text) <= INT32_MAX)


def _id_problem(text: str) -> str:
    if not (text.isascii() and text.isdigit()):
        return "is not a non-negative integer"
    return f"is out of range (ids must be 0..{INT32_MAX})"


def _rating_problem(text: str) -> str | None:
    """None if ``text`` is a valid MovieLens rating, else what is wrong with it.

    The regex (not just ``float()``) keeps out 'nan', 'inf', '1_0', ' 4' and exponents, which
    Python accepts but PostgreSQL's COPY might not, or which are clearly not star ratings.
    """
    if _RATING_RE.fullmatch(text) is None:
        return "is not a number"
    value = float(text)
    if not RATING_MIN <= value <= RATING_MAX:
        return f"is out of range (must be {RATING_MIN}..{RATING_MAX})"
    if not (value * 2).is_integer():
        return "is not a multiple of 0.5 (MovieLens ratings are half stars)"
    return None


def _timestamp_problem(text: str) -> str | None:
    if _TIMESTAMP_RE.fullmatch(text) is None:
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


class _Records:
    """Iterate the data records of one MovieLens CSV with their 1-based starting line numbers.

    Opens in binary and wraps it ourselves so progress can be reported by bytes read, decodes
    UTF-8 (a BOM is tolerated), checks the header, skips blank lines, and turns CSV syntax and
    decoding errors into :class:`MovieLensFormatError` with a line number.
    """

    def __init__(self, path: Path, spec: _TableSpec) -> None:
        self.path = path
        self.spec = spec
        self.size = path.stat().st_size
        self._raw: IO[bytes] | None = None

    def bytes_read(self) -> int:
        return self._raw.tell() if self._raw is not None else 0

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        path = self.path
        with (
            open(path, "rb") as raw,
            io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text,
        ):
            self._raw = raw
            reader = csv.reader(text, strict=True)
            try:
                header = next(reader, None)
                if header is None:
                    raise MovieLensFormatError(
                        path, 1, f"file is empty, expected header {','.join(self.spec.header)!r}"
                    )
                if tuple(header) != self.spec.header:
                    raise MovieLensFormatError(
                        path,
                        1,
                        f"expected header {','.join(self.spec.header)!r}, "
                        f"got {_shown(','.join(header))}",
                        field="header",
                        value=",".join(header),
                    )
                line = reader.line_num + 1
                for row in reader:
                    if row:
                        yield line, row
                    line = reader.line_num + 1
            except csv.Error as exc:
                raise MovieLensFormatError(path, reader.line_num, f"malformed CSV: {exc}") from None
            except UnicodeDecodeError as exc:
                raise MovieLensFormatError(
                    path, _first_non_utf8_line(path), f"not valid UTF-8 ({exc.reason})"
                ) from None
            finally:
                self._raw = None


def _first_non_utf8_line(path: Path) -> int:
    """Locate the first undecodable line (error path only).

    The text layer decodes ahead in large blocks, so the CSV reader's line number at the time
    of a ``UnicodeDecodeError`` can be far from the bad byte; a binary re-scan finds the line.
    """
    with open(path, "rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1


def _check_header(path: Path, spec: _TableSpec) -> None:
    """Check only the header; cheap enough to do for both files before connecting."""
    with contextlib.closing(iter(_Records(path, spec))) as records:
        next(records, None)


def _field_error(
    path: Path, line: int, field: str, value: str, problem: str
) -> MovieLensFormatError:
    return MovieLensFormatError(
        path, line, f"{field} {_shown(value)} {problem}", field=field, value=value
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


def _ratings_chunks(records: _Records, counter: list[int], report: _Progress) -> Iterator[str]:
    """Validate ratings.csv records and yield COPY-ready CSV text, ``_BATCH_ROWS`` at a time.

    This is the hot loop for 25M-row files, so the common case is a few cheap string checks and
    a memo of already-accepted rating strings (a file has only ~10 distinct ones); precise
    error messages are only built on failure.
    """
    path, spec = records.path, records.spec
    ok_ratings: set[str] = set()
    out: list[str] = []
    rows = 0
    for line, row in records:
        if len(row) != 4:
            raise _count_error(path, line, spec, row)
        user, movie, rating, ts = row
        if not _id_ok(user):
            raise _field_error(path, line, "userId", user, _id_problem(user))
        if not _id_ok(movie):
            raise _field_error(path, line, "movieId", movie, _id_problem(movie))
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


def _movies_chunks(records: _Records, counter: list[int], report: _Progress) -> Iterator[str]:
    """Validate movies.csv records and yield COPY-ready CSV text.

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
            raise _field_error(path, line, "movieId", movie, _id_problem(movie))
        for name, value in (("title", title), ("genres", genres)):
            problem = _text_problem(value)
            if problem is not None:
                raise _field_error(path, line, name, value, problem)
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


def _chunks(records: _Records, counter: list[int], progress: ProgressFn | None) -> Iterator[str]:
    report = _Progress(records, progress)
    if records.spec is _RATINGS:
        return _ratings_chunks(records, counter, report)
    return _movies_chunks(records, counter, report)


class _CopySource:
    """File-like adapter feeding validated chunks to ``cursor.copy_expert``.

    psycopg2 converts any exception raised in ``read()`` into a generic ``QueryCanceled`` (the
    COPY is aborted server-side, which is what we want); the original exception is kept in
    ``error`` so the caller can re-raise the precise validation error instead.
    """

    def __init__(self, chunks: Iterator[str]) -> None:
        self._chunks = chunks
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> str:
        try:
            return next(self._chunks, "")
        except BaseException as exc:
            self.error = exc
            raise


# ---------------------------------------------------------------------------------------------
# Public API


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


def validate_movielens(folder: str | Path, progress: ProgressFn | None = None) -> tuple[int, int]:
    """Fully validate both files without a database; return ``(ratings_rows, movies_rows)``.

    Does not detect duplicate keys (that would need memory proportional to the file); the
    database load does.
    """
    ratings_path, movies_path = movielens_files(folder)
    counts = []
    for path, spec in ((ratings_path, _RATINGS), (movies_path, _MOVIES)):
        counter = [0]
        for _ in _chunks(_Records(path, spec), counter, progress):
            pass
        counts.append(counter[0])
    return counts[0], counts[1]


def load_movielens(
    folder: str | Path,
    settings: PgSettings,
    ratings_table: str = DEFAULT_RATINGS_TABLE,
    movies_table: str = DEFAULT_MOVIES_TABLE,
    progress: ProgressFn | None = None,
) -> LoadResult:
    """Replace the contents of the ratings and movies tables with a MovieLens folder, atomically.

    See the module docstring for the design. Raises ``ValueError`` for bad table names,
    :class:`MovieLensInputError` / :class:`MovieLensFormatError` for bad files,
    :class:`~als_assets.core.pg.PgConnectionError` when the server cannot be reached, and
    ``psycopg2.Error`` for other database failures; in every case the database is unchanged.
    ``progress`` receives human-readable status lines (the CLI prints them to stderr).
    """
    started = time.perf_counter()
    say: ProgressFn = progress or (lambda _message: None)
    targets = {
        _MOVIES: split_qualified_name(movies_table, "movies table"),
        _RATINGS: split_qualified_name(ratings_table, "ratings table"),
    }
    if targets[_MOVIES] == targets[_RATINGS]:
        raise ValueError(f"ratings and movies tables must differ, both are {ratings_table!r}")
    ratings_path, movies_path = movielens_files(folder)
    paths = {_MOVIES: movies_path, _RATINGS: ratings_path}

    conn = connect(settings, application_name=PROG)
    try:
        with conn.cursor() as cur:
            # Phase 1: stream + validate both files into private staging tables.
            for spec in (_MOVIES, _RATINGS):  # movies first: small, so its errors show fast
                say(f"{spec.file_name}: validating and copying to a staging table")
                rows = _stage(cur, spec, paths[spec], progress)
                say(f"{spec.file_name}: {rows:,} rows validated")
            # Phase 2: replace the real tables' contents, still in the same transaction.
            counts: dict[_TableSpec, int] = {}
            # Serialise concurrent loaders from here to COMMIT (staging above stays parallel),
            # so two first-time runs cannot race on CREATE SCHEMA / CREATE TABLE.
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK_KEY,))
            for spec in (_MOVIES, _RATINGS):
                _ensure_table(cur, spec, *targets[spec])
            for spec in (_MOVIES, _RATINGS):  # fixed order: two loaders cannot deadlock
                cur.execute(
                    sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(
                        sql.Identifier(*targets[spec])
                    )
                )
            for spec in (_MOVIES, _RATINGS):
                say(f"replacing the rows of {'.'.join(targets[spec])}")
                counts[spec] = _replace_rows(cur, spec, targets[spec], paths[spec])
            for spec in (_MOVIES, _RATINGS):
                # Fresh statistics so the first query/Spark read after a load plans well.
                cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(*targets[spec])))
        conn.commit()
    except BaseException:
        with contextlib.suppress(psycopg2.Error):
            conn.rollback()
        raise
    finally:
        conn.close()
    seconds = time.perf_counter() - started
    say(f"committed in {seconds:.1f} s")
    return LoadResult(
        ratings_rows=counts[_RATINGS],
        movies_rows=counts[_MOVIES],
        seconds=seconds,
        ratings_table=".".join(targets[_RATINGS]),
        movies_table=".".join(targets[_MOVIES]),
    )


# ---------------------------------------------------------------------------------------------
# Database steps


def _stage_name(spec: _TableSpec) -> sql.Identifier:
    return sql.Identifier(f"als_stage_{spec.kind}")


def _stage(
    cur: psycopg2.extensions.cursor, spec: _TableSpec, path: Path, progress: ProgressFn | None
) -> int:
    """COPY one validated file into a TEMP staging table; return the number of rows.

    The staging table has no constraints or indexes (fastest COPY), lives only in this session
    and disappears at COMMIT/ROLLBACK, so it is invisible to everyone else.
    """
    stage = _stage_name(spec)
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
            stage,
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(sql_type))
                for name, sql_type in spec.columns
            ),
        )
    )
    counter = [0]
    source = _CopySource(_chunks(_Records(path, spec), counter, progress))
    copy = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER false)").format(
        stage, sql.SQL(", ").join(map(sql.Identifier, spec.column_names))
    )
    try:
        cur.copy_expert(copy.as_string(cur), source, size=1 << 20)
    except psycopg2.Error:
        if source.error is not None:
            raise source.error from None
        raise
    return counter[0]


def _ensure_table(
    cur: psycopg2.extensions.cursor, spec: _TableSpec, schema: str, table: str
) -> None:
    """Create the schema/table if missing, then insist an existing table has the right shape.

    Existence is checked first so a loader role without CREATE privilege can still load into
    tables an administrator created. The shape check matters because duplicate detection relies
    on the primary key, and a table with other columns would fail later with a confusing error.
    """
    cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
    if cur.fetchone() is None:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    cur.execute(
        "SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s",
        (schema, table),
    )
    found = cur.fetchone()
    name = f"{schema}.{table}"
    if found is None:
        cur.execute(
            sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY ({}))").format(
                sql.Identifier(schema, table),
                sql.SQL(", ").join(
                    sql.SQL("{} {} NOT NULL").format(sql.Identifier(col), sql.SQL(sql_type))
                    for col, sql_type in spec.columns
                ),
                sql.SQL(", ").join(map(sql.Identifier, spec.primary_key)),
            )
        )
        return
    oid, relkind = found
    if relkind not in ("r", "p"):
        raise MovieLensInputError(f"{name} exists but is not a table (relkind {relkind!r})")
    cur.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (oid,),
    )
    columns = tuple((col, sql_type) for col, sql_type in cur.fetchall())
    cur.execute(
        "SELECT a.attname FROM pg_constraint con"
        " CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)"
        " JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum"
        " WHERE con.conrelid = %s AND con.contype = 'p' ORDER BY k.ord",
        (oid,),
    )
    primary_key = tuple(row[0] for row in cur.fetchall())
    if sorted(columns) != sorted(spec.columns) or primary_key != spec.primary_key:
        expected = ", ".join(f"{col} {sql_type}" for col, sql_type in spec.columns)
        raise MovieLensInputError(
            f"{name} exists with a different shape: expected columns ({expected}) and primary "
            f"key ({', '.join(spec.primary_key)}), found columns "
            f"({', '.join(f'{c} {t}' for c, t in columns)}) and primary key "
            f"({', '.join(primary_key) or 'none'}); drop it or choose another table name"
        )


def _replace_rows(
    cur: psycopg2.extensions.cursor, spec: _TableSpec, target: tuple[str, str], path: Path
) -> int:
    """DELETE the old rows and INSERT the staged ones; return the new row count.

    The INSERT's row count is the table's row count: the DELETE emptied it in this transaction
    and the SHARE ROW EXCLUSIVE lock keeps other writers out until COMMIT.
    """
    table = sql.Identifier(*target)
    columns = sql.SQL(", ").join(map(sql.Identifier, spec.column_names))
    cur.execute(sql.SQL("DELETE FROM {}").format(table))
    try:
        cur.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
                table, columns, columns, _stage_name(spec)
            )
        )
    except pg_errors.UniqueViolation as exc:
        raise _duplicate_error(spec, path, exc.diag.message_detail or str(exc)) from None
    return cur.rowcount


def _duplicate_error(spec: _TableSpec, path: Path, detail: str) -> MovieLensInputError:
    """Turn the primary-key violation into "line N duplicates line M" by re-scanning the file.

    Only runs on failure, so the happy path pays nothing for the line numbers.
    """
    match = re.search(r"=\(([^)]*)\) already exists", detail)
    try:
        key = tuple(int(part) for part in match.group(1).split(",")) if match else None
    except ValueError:
        key = None
    fields = ", ".join(spec.key_fields)
    if key is None or len(key) != len(spec.key_fields):
        return MovieLensInputError(f"{path}: duplicate ({fields}) in the file: {detail}")
    shown = key[0] if len(key) == 1 else key
    lines = []
    for line, row in _Records(path, spec):
        if tuple(int(row[i]) for i in range(len(key))) == key:
            lines.append(line)
            if len(lines) == 2:
                break
    if len(lines) < 2:  # cannot happen for a file we just loaded, but never hide the cause
        return MovieLensInputError(f"{path}: duplicate ({fields}) {shown} in the file")
    return MovieLensFormatError(
        path,
        lines[1],
        f"duplicate ({fields}) = {shown}, first seen on line {lines[0]}",
        field=fields,
        value=str(shown),
    )


# ---------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (separate so docs/tests can render ``--help``)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Load a MovieLens folder (ratings.csv + movies.csv, as in ml-latest-small, ml-20m "
            "or ml-25m) into PostgreSQL. Every record is validated; the load is a single "
            "transaction that replaces the tables' rows, so a failure leaves the database "
            "unchanged and a rerun gives the same result."
        ),
        epilog=(
            "connection settings come from the environment unless overridden by flags:\n"
            "  ALS_PG_HOST (127.0.0.1), ALS_PG_PORT (5432), ALS_PG_DATABASE (postgres),\n"
            "  ALS_PG_USER (postgres), ALS_PG_CONNECT_TIMEOUT (10 s),\n"
            "  ALS_PG_PASSWORD (empty; deliberately not a flag, so it never shows up in `ps`\n"
            "  or the shell history)\n"
            "\n"
            "tables (created if missing, with these columns):\n"
            "  ratings(user_id integer, movie_id integer, rating real, timestamp bigint,\n"
            "          primary key (user_id, movie_id))\n"
            "  movies(movie_id integer primary key, title text, genres text)\n"
            "\n"
            "exit codes: 0 loaded, 1 database unreachable or database error,\n"
            "            2 invalid files or arguments, 130 interrupted\n"
            "\n"
            "example:\n"
            f"  ALS_PG_PASSWORD=... {PROG} data/ml-25m --host db.internal --user loader"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "folder", type=Path, help="MovieLens folder containing ratings.csv and movies.csv"
    )
    parser.add_argument(
        "--ratings-table",
        default=DEFAULT_RATINGS_TABLE,
        metavar="SCHEMA.TABLE",
        help=f"target table for ratings.csv (default: {DEFAULT_RATINGS_TABLE})",
    )
    parser.add_argument(
        "--movies-table",
        default=DEFAULT_MOVIES_TABLE,
        metavar="SCHEMA.TABLE",
        help=f"target table for movies.csv (default: {DEFAULT_MOVIES_TABLE})",
    )
    group = parser.add_argument_group("connection (override the ALS_PG_* environment variables)")
    group.add_argument("--host", help="server host (env ALS_PG_HOST)")
    group.add_argument("--port", type=int, help="server port (env ALS_PG_PORT)")
    group.add_argument("--database", help="database name (env ALS_PG_DATABASE)")
    group.add_argument("--user", help="user name (env ALS_PG_USER)")
    group.add_argument(
        "--connect-timeout",
        type=int,
        metavar="SECONDS",
        help="give up connecting after this many seconds (env ALS_PG_CONNECT_TIMEOUT)",
    )
    parser.add_argument(
        "--validate-only",
        action="store_true",
        help="only validate the files (no database needed; duplicates are not detected)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output on stderr")
    return parser


def _settings_from_args(args: argparse.Namespace, environ: dict[str, str]) -> PgSettings:
    settings = PgSettings.from_env(environ)
    overrides = {
        key: value
        for key, value in (
            ("host", args.host),
            ("port", args.port),
            ("database", args.database),
            ("user", args.user),
            ("connect_timeout", args.connect_timeout),
        )
        if value is not None
    }
    return replace(settings, **overrides) if overrides else settings


def _one_line(text: str, secret: str) -> str:
    if secret:
        text = text.replace(secret, "***")
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``als-load-movielens``; returns the exit code instead of raising.

    Expected failures print one ``als-load-movielens: error: ...`` line on stderr (no
    traceback, never the password) so the tool behaves well in scripts and CI logs.
    """
    args = build_parser().parse_args(argv)
    environ = dict(os.environ)
    secret = environ.get("ALS_PG_PASSWORD", "")

    def fail(message: str, code: int) -> int:
        print(f"{PROG}: error: {_one_line(message, secret)}", file=sys.stderr, flush=True)
        return code

    def progress(message: str) -> None:
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)

    try:
        if args.validate_only:
            ratings_rows, movies_rows = validate_movielens(
                args.folder, None if args.quiet else progress
            )
            print(f"ratings: {ratings_rows} rows, movies: {movies_rows} rows (validated only)")
            return EXIT_OK
        settings = _settings_from_args(args, environ)
        if not args.quiet:
            progress(f"loading {args.folder} into {settings.dsn_for_display()}")
        result = load_movielens(
            args.folder,
            settings,
            ratings_table=args.ratings_table,
            movies_table=args.movies_table,
            progress=None if args.quiet else progress,
        )
    except MovieLensInputError as exc:
        return fail(str(exc), EXIT_BAD_INPUT)
    except PgConnectionError as exc:
        return fail(str(exc), EXIT_DB)
    except ValueError as exc:  # table names, settings from flags/environment
        return fail(str(exc), EXIT_BAD_INPUT)
    except psycopg2.Error as exc:
        return fail(f"database error, nothing was changed: {exc}", EXIT_DB)
    except OSError as exc:
        return fail(f"cannot read input: {exc}", EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        return fail("interrupted, nothing was changed", EXIT_INTERRUPTED)
    print(f"ratings: {result.ratings_rows} rows, movies: {result.movies_rows} rows")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
