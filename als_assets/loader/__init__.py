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

A rating of a movie missing from movies.csv is refused like any bad record (the same rule as the
Spark source's, core/rating_rules.py); ``--keep-unknown-movies`` (ALS_KEEP_UNKNOWN_MOVIES=1)
loads it and warns, naming its lines. An empty timestamp is always refused here: the table's
column is NOT NULL.

The package: records.py reads the files (layout, errors naming a line), validation.py checks
every record while it streams, database.py is the one transaction, cli.py the command line.

Exit codes of the CLI: 0 success, 1 database unreachable or database error, 2 invalid input
files or arguments, 130 interrupted. In every failure case the database is left unchanged.
"""

from __future__ import annotations

from .cli import (
    EXIT_BAD_INPUT,
    EXIT_DB,
    EXIT_INTERRUPTED,
    EXIT_OK,
    build_parser,
    main,
)
from .database import load_movielens
from .records import (
    DEFAULT_MOVIES_TABLE,
    DEFAULT_RATINGS_TABLE,
    PROG,
    LoadResult,
    MovieLensFormatError,
    MovieLensInputError,
)
from .validation import movielens_files, validate_movielens

__all__ = [
    "DEFAULT_MOVIES_TABLE",
    "DEFAULT_RATINGS_TABLE",
    "EXIT_BAD_INPUT",
    "EXIT_DB",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "PROG",
    "LoadResult",
    "MovieLensFormatError",
    "MovieLensInputError",
    "build_parser",
    "load_movielens",
    "main",
    "movielens_files",
    "validate_movielens",
]
