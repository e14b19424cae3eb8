"""The database side of the loader: one transaction that stages, checks and replaces the rows.

See the package docstring (als_assets/loader/__init__.py) for why it is one transaction with
TEMP staging tables and DELETE + INSERT.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
from psycopg2 import errors as pg_errors
from psycopg2 import sql

from als_assets.core.pg import PgSettings, connect, split_qualified_name

from .records import (
    _MOVIES,
    _RATINGS,
    DEFAULT_MOVIES_TABLE,
    DEFAULT_RATINGS_TABLE,
    PROG,
    LoadResult,
    MovieLensFormatError,
    MovieLensInputError,
    ProgressFn,
    _Records,
    _TableSpec,
)
from .validation import MovieIds, _chunks, movielens_files

# Arbitrary constant identifying this loader's advisory lock (transaction-scoped).
_ADVISORY_LOCK_KEY = 0x616C735F6C6F6164  # "als_load"


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


def load_movielens(
    folder: str | Path,
    settings: PgSettings,
    ratings_table: str = DEFAULT_RATINGS_TABLE,
    movies_table: str = DEFAULT_MOVIES_TABLE,
    progress: ProgressFn | None = None,
    *,
    keep_unknown_movies: bool = False,
) -> LoadResult:
    """Replace the contents of the ratings and movies tables with a MovieLens folder, atomically.

    See the package docstring for the design. A rating of a movie missing from movies.csv is an
    error, unless ``keep_unknown_movies``: then it is loaded and named in ``warnings``. Raises ``ValueError`` for bad table names,
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
    movies = MovieIds(keep_unknown=keep_unknown_movies)

    conn = connect(settings, application_name=PROG)
    try:
        with conn.cursor() as cur:
            # Phase 1: stream + validate both files into private staging tables.
            for spec in (_MOVIES, _RATINGS):  # movies first: small, so its errors show fast
                say(f"{spec.file_name}: validating and copying to a staging table")
                rows = _stage(cur, spec, paths[spec], progress, movies)
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
    warning = movies.warning(ratings_path)
    return LoadResult(
        warnings=(warning,) if warning else (),
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
    cur: psycopg2.extensions.cursor, spec: _TableSpec, path: Path, progress: ProgressFn | None,
    movies: MovieIds | None = None,
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
    source = _CopySource(_chunks(_Records(path, spec), counter, progress, movies))
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


