"""The ``als-load-movielens`` command line: arguments, settings, one error line, exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import psycopg2

from als_assets.core.pg import PgConnectionError, PgSettings
from als_assets.settings import env_flag

from .database import load_movielens
from .records import (
    DEFAULT_MOVIES_TABLE,
    DEFAULT_RATINGS_TABLE,
    PROG,
    MovieLensInputError,
)
from .validation import validate_movielens

EXIT_OK, EXIT_DB, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


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
            "  ALS_KEEP_UNKNOWN_MOVIES (off; as --keep-unknown-movies)\n"
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
    parser.add_argument(
        "--keep-unknown-movies",
        action="store_true",
        help="load ratings of movies missing from movies.csv, with a warning naming their "
        "lines, instead of refusing the files (env ALS_KEEP_UNKNOWN_MOVIES=1)",
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

    def warn(message: str) -> None:  # even with --quiet: it says what was loaded
        print(f"{PROG}: warning: {_one_line(message, secret)}", file=sys.stderr, flush=True)

    try:
        keep_unknown = args.keep_unknown_movies or env_flag("ALS_KEEP_UNKNOWN_MOVIES")
        if args.validate_only:
            ratings_rows, movies_rows = validate_movielens(
                args.folder, None if args.quiet else progress,
                keep_unknown_movies=keep_unknown, warn=warn,
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
            keep_unknown_movies=keep_unknown,
        )
        for message in result.warnings:
            warn(message)
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

