"""Reading the MovieLens files: their layout, the errors that name a line, and the records.

Split from the loader's validation (validation.py) and database steps (database.py) so each
concern reads on its own; the rules a rating row must follow are core/rating_rules.py's, shared
with the Spark source.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

PROG = "als-load-movielens"
DEFAULT_RATINGS_TABLE = "movielens.ratings"
DEFAULT_MOVIES_TABLE = "movielens.movies"
RATINGS_FILE = "ratings.csv"
MOVIES_FILE = "movies.csv"
RATINGS_HEADER = ("userId", "movieId", "rating", "timestamp")
MOVIES_HEADER = ("movieId", "title", "genres")
_MAX_SHOWN = 60  # longest value quoted verbatim in an error message

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
    warnings: tuple[str, ...] = ()  # e.g. kept ratings of movies missing from movies.csv




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


def _shown(value: str) -> str:
    """Quote a value for an error message, truncated so a corrupt 1 MB field stays readable."""
    if len(value) > _MAX_SHOWN:
        value = value[:_MAX_SHOWN] + "..."
    return repr(value)



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


