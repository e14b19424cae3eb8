"""Tests for the MovieLens -> PostgreSQL loader against a real PostgreSQL server.

Each test module run gets its own freshly created database (dropped afterwards, even on
failure), so the tests never touch real data and can run in parallel with other checkouts.
Connection settings come from the ALS_PG_* environment variables (default 127.0.0.1:5432, user
postgres); the tests are skipped if that server is unreachable.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

from als_assets import loader
from als_assets.core import pg
from als_assets.core.pg import (
    PgConnectionError,
    PgSettings,
    connect,
    qualified_table,
    split_qualified_name,
    validate_identifier,
)
from als_assets.loader import (
    LoadResult,
    MovieLensFormatError,
    MovieLensInputError,
    load_movielens,
    main,
    validate_movielens,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
ML_LATEST_SMALL = REPO_ROOT.parent / "shared" / "data" / "ml-latest-small"

RATINGS_HEADER = "userId,movieId,rating,timestamp"
MOVIES_HEADER = "movieId,title,genres"
GOOD_RATINGS = [
    "1,1,4.0,964982703",
    "1,3,0.5,964981247",
    "2,1,5.0,1445714835",
    "2,2,3.5,1445714836",
]
# Titles with commas, doubled quotes and an apostrophe, as in the real movies.csv.
GOOD_MOVIES = [
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy",
    '2,"Gift, The (2000)",Drama|Thriller',
    '3,"11\'09""01 - September 11 (2002)",Drama',
    '4,"Say ""Hello, World"" (2001)",(no genres listed)',
]
EXPECTED_RATINGS = [
    (1, 1, 4.0, 964982703),
    (1, 3, 0.5, 964981247),
    (2, 1, 5.0, 1445714835),
    (2, 2, 3.5, 1445714836),
]
EXPECTED_MOVIES = [
    (1, "Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy"),
    (2, "Gift, The (2000)", "Drama|Thriller"),
    (3, "11'09\"01 - September 11 (2002)", "Drama"),
    (4, 'Say "Hello, World" (2001)', "(no genres listed)"),
]
UNREACHABLE = ["--host", "127.0.0.1", "--port", "1", "--connect-timeout", "3"]


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers


def write_folder(
    folder: Path,
    ratings: list[str] | None = None,
    movies: list[str] | None = None,
    ratings_header: str = RATINGS_HEADER,
    movies_header: str = MOVIES_HEADER,
) -> Path:
    """Write a tiny MovieLens-shaped folder; line 1 is the header, data starts on line 2."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = GOOD_RATINGS if ratings is None else ratings
    (folder / "ratings.csv").write_text("\n".join([ratings_header, *rows]) + "\n", "utf-8")
    rows = GOOD_MOVIES if movies is None else movies
    (folder / "movies.csv").write_text("\n".join([movies_header, *rows]) + "\n", "utf-8")
    return folder


def fetch(
    settings: PgSettings,
    ratings_table: str = "movielens.ratings",
    movies_table: str = "movielens.movies",
) -> tuple[list[tuple], list[tuple]]:
    conn = connect(settings)
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    'SELECT user_id, movie_id, rating, "timestamp" FROM {} ORDER BY 1, 2'
                ).format(qualified_table(ratings_table))
            )
            ratings = cur.fetchall()
            cur.execute(
                sql.SQL("SELECT movie_id, title, genres FROM {} ORDER BY 1").format(
                    qualified_table(movies_table)
                )
            )
            movies = cur.fetchall()
    finally:
        conn.close()
    return ratings, movies


def cli_connection_args(settings: PgSettings) -> list[str]:
    return [
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--database",
        settings.database,
        "--user",
        settings.user,
    ]


@pytest.fixture
def baseline(pg_settings: PgSettings, tmp_path: Path) -> PgSettings:
    """The default tables loaded with the good tiny folder (the state failures must preserve)."""
    load_movielens(write_folder(tmp_path / "good"), pg_settings)
    assert fetch(pg_settings) == (EXPECTED_RATINGS, EXPECTED_MOVIES)
    return pg_settings


# ---------------------------------------------------------------------------------------------
# Successful loads


def test_load_tiny_folder_exact_rows(pg_settings: PgSettings, tmp_path: Path) -> None:
    progress: list[str] = []
    result = load_movielens(write_folder(tmp_path / "ml"), pg_settings, progress=progress.append)

    assert isinstance(result, LoadResult)
    assert (result.ratings_rows, result.movies_rows) == (4, 4)
    assert result.seconds > 0
    assert fetch(pg_settings) == (EXPECTED_RATINGS, EXPECTED_MOVIES)
    assert any("committed" in line for line in progress)


def test_created_tables_have_the_notebook_schema(baseline: PgSettings) -> None:
    conn = connect(baseline)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT table_name, column_name, data_type, is_nullable"
                " FROM information_schema.columns WHERE table_schema = 'movielens'"
                " ORDER BY table_name, ordinal_position"
            )
            columns = cur.fetchall()
    finally:
        conn.close()
    assert columns == [
        ("movies", "movie_id", "integer", "NO"),
        ("movies", "title", "text", "NO"),
        ("movies", "genres", "text", "NO"),
        ("ratings", "user_id", "integer", "NO"),
        ("ratings", "movie_id", "integer", "NO"),
        ("ratings", "rating", "real", "NO"),
        ("ratings", "timestamp", "bigint", "NO"),
    ]


def test_rerun_is_idempotent_and_replaces_rows(pg_settings: PgSettings, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "ml")
    first = load_movielens(folder, pg_settings)
    second = load_movielens(folder, pg_settings)
    assert (first.ratings_rows, first.movies_rows) == (second.ratings_rows, second.movies_rows)
    assert fetch(pg_settings) == (EXPECTED_RATINGS, EXPECTED_MOVIES)

    # A smaller file replaces (does not append to) the previous contents.
    # (Both ratings are of movie 1: a rating of a movie missing from movies.csv is refused.)
    smaller = write_folder(tmp_path / "smaller", ratings=GOOD_RATINGS[0:3:2],
                           movies=GOOD_MOVIES[:1])
    result = load_movielens(smaller, pg_settings)
    assert (result.ratings_rows, result.movies_rows) == (2, 1)
    assert fetch(pg_settings) == (EXPECTED_RATINGS[0:3:2], EXPECTED_MOVIES[:1])


def test_custom_table_names(pg_settings: PgSettings, tmp_path: Path) -> None:
    result = load_movielens(
        write_folder(tmp_path / "ml"),
        pg_settings,
        ratings_table="custom.my_ratings",
        movies_table="custom.my_movies",
    )
    assert (result.ratings_table, result.movies_table) == ("custom.my_ratings", "custom.my_movies")
    assert fetch(pg_settings, "custom.my_ratings", "custom.my_movies") == (
        EXPECTED_RATINGS,
        EXPECTED_MOVIES,
    )


def test_cli_success_prints_counts(
    pg_settings: PgSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_folder(tmp_path / "ml")
    code = main([str(folder), *cli_connection_args(pg_settings), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0
    assert out.strip() == "ratings: 4 rows, movies: 4 rows"
    assert err == ""


# ---------------------------------------------------------------------------------------------
# Bad files: clear message, nothing changed


def _with_line(rows: list[str], index: int, value: str) -> list[str]:
    rows = list(rows)
    rows[index] = value
    return rows


# (id, ratings rows, ratings header, movies rows, file, line, substrings of the message)
BAD_CASES = [
    pytest.param(
        GOOD_RATINGS,
        "user,movie,rating,timestamp",
        GOOD_MOVIES,
        "ratings.csv",
        1,
        ["expected header 'userId,movieId,rating,timestamp'", "'user,movie,rating,timestamp'"],
        id="bad-header",
    ),
    pytest.param(
        _with_line(GOOD_RATINGS, 1, "1,3,four,964981247"),
        RATINGS_HEADER,
        GOOD_MOVIES,
        "ratings.csv",
        3,
        ["rating 'four' is not a number"],
        id="non-numeric-rating",
    ),
    pytest.param(
        _with_line(GOOD_RATINGS, 2, "2,1,7.0,1445714835"),
        RATINGS_HEADER,
        GOOD_MOVIES,
        "ratings.csv",
        4,
        ["rating '7.0' is out of range"],
        id="rating-7.0",
    ),
    pytest.param(
        _with_line(GOOD_RATINGS, 3, "2147483648,2,3.5,1445714836"),
        RATINGS_HEADER,
        GOOD_MOVIES,
        "ratings.csv",
        5,
        ["userId '2147483648' is beyond int32 (ids must be 0..2147483647)"],
        id="id-beyond-int32",
    ),
    pytest.param(
        [*GOOD_RATINGS, "1,1,2.5,964990000"],
        RATINGS_HEADER,
        GOOD_MOVIES,
        "ratings.csv",
        6,
        ["duplicate (userId, movieId) = (1, 1)", "first seen on line 2"],
        id="duplicate-pair",
    ),
    pytest.param(
        GOOD_RATINGS,
        RATINGS_HEADER,
        _with_line(GOOD_MOVIES, 2, "x3,Some Movie (2001),Drama"),
        "movies.csv",
        4,
        ["movieId 'x3' is not an integer"],
        id="movies-bad-id",
    ),
    pytest.param(
        GOOD_RATINGS,
        RATINGS_HEADER,
        [*GOOD_MOVIES, '2,"Gift, The (2000)",Drama'],
        "movies.csv",
        6,
        ["duplicate (movieId) = 2", "first seen on line 3"],
        id="movies-duplicate-id",
    ),
    pytest.param(
        _with_line(GOOD_RATINGS, 0, "1,1,4.0"),
        RATINGS_HEADER,
        GOOD_MOVIES,
        "ratings.csv",
        2,
        ["expected 4 fields"],
        id="missing-field",
    ),
    pytest.param(
        _with_line(GOOD_RATINGS, 1, "-4,3,0.5,964981247"),
        RATINGS_HEADER,
        GOOD_MOVIES,
        "ratings.csv",
        3,
        ["userId '-4' is negative (ids must be 0..2147483647)"],
        id="negative-id-is-not-called-beyond-int32",
    ),
    pytest.param(
        _with_line(GOOD_RATINGS, 1, "1,3,3.3,964981247"),
        RATINGS_HEADER,
        GOOD_MOVIES,
        "ratings.csv",
        3,
        ["rating '3.3' is not a multiple of 0.5 (MovieLens ratings are half stars)"],
        id="not-a-half-star",
    ),
    pytest.param(
        _with_line(GOOD_RATINGS, 2, "2,1,5.0,"),
        RATINGS_HEADER,
        GOOD_MOVIES,
        "ratings.csv",
        4,
        ["timestamp is empty"],
        id="empty-timestamp",
    ),
    pytest.param(
        _with_line(GOOD_RATINGS, 3, "2,77,3.5,1445714836"),
        RATINGS_HEADER,
        GOOD_MOVIES,
        "ratings.csv",
        5,
        ["movieId '77' is not in movies.csv"],
        id="unknown-movie",
    ),
]


@pytest.mark.parametrize(
    ("ratings", "ratings_header", "movies", "bad_file", "line", "fragments"), BAD_CASES
)
def test_bad_file_fails_clearly_and_changes_nothing(
    baseline: PgSettings,
    tmp_path: Path,
    ratings: list[str],
    ratings_header: str,
    movies: list[str],
    bad_file: str,
    line: int,
    fragments: list[str],
) -> None:
    # The other file differs from the baseline too, so a partial commit would be visible.
    if bad_file == "ratings.csv":
        movies = [*movies, "99,Extra Movie (2020),Comedy"]
    else:
        ratings = [*ratings, "9,1,1.0,1"]  # of a known movie: that check comes first
    folder = write_folder(tmp_path / "bad", ratings, movies, ratings_header=ratings_header)

    with pytest.raises(MovieLensFormatError) as caught:
        load_movielens(folder, baseline)

    message = str(caught.value)
    assert message.startswith(f"{folder / bad_file}, line {line}: "), message
    for fragment in fragments:
        assert fragment in message
    assert caught.value.line == line
    assert fetch(baseline) == (EXPECTED_RATINGS, EXPECTED_MOVIES)


def test_cli_bad_file_exit_code_2_without_traceback(
    baseline: PgSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_folder(tmp_path / "bad", _with_line(GOOD_RATINGS, 1, "1,3,7.0,964981247"))
    code = main([str(folder), *cli_connection_args(baseline), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert f"{folder / 'ratings.csv'}, line 3: rating '7.0' is out of range" in err
    assert fetch(baseline) == (EXPECTED_RATINGS, EXPECTED_MOVIES)


def test_bad_header_detected_before_connecting(tmp_path: Path) -> None:
    """Header errors win over an unreachable server: the files are checked first."""
    folder = write_folder(tmp_path / "bad", movies_header="id,title,genres")
    unreachable = PgSettings(port=1, connect_timeout=3)
    with pytest.raises(MovieLensFormatError, match=r"movies\.csv, line 1: expected header"):
        load_movielens(folder, unreachable)


def test_missing_folder_and_file(tmp_path: Path) -> None:
    with pytest.raises(MovieLensInputError, match="not a directory"):
        load_movielens(tmp_path / "nope", PgSettings(port=1))
    folder = write_folder(tmp_path / "ml")
    (folder / "movies.csv").unlink()
    with pytest.raises(MovieLensInputError, match=r"movies\.csv: file not found"):
        load_movielens(folder, PgSettings(port=1))


def test_existing_table_with_wrong_shape_is_refused(baseline: PgSettings, tmp_path: Path) -> None:
    conn = connect(baseline)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE SCHEMA odd")
            cur.execute("CREATE TABLE odd.ratings (user_id int, movie_id int, rating float8)")
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(MovieLensInputError, match=r"odd\.ratings exists with a different shape"):
        load_movielens(write_folder(tmp_path / "ml"), baseline, ratings_table="odd.ratings")
    assert fetch(baseline) == (EXPECTED_RATINGS, EXPECTED_MOVIES)


def test_validate_only_needs_no_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_folder(tmp_path / "ml")
    assert validate_movielens(folder) == (4, 4)
    assert main([str(folder), "--validate-only", "-q", *UNREACHABLE]) == 0
    assert "ratings: 4 rows, movies: 4 rows" in capsys.readouterr().out


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "ml")
    path = folder / "movies.csv"
    path.write_bytes(path.read_bytes() + b"5,Caf\xe9 (1999),Drama\n")
    with pytest.raises(MovieLensFormatError, match=r"movies\.csv, line 6: not valid UTF-8"):
        validate_movielens(folder)


def test_unknown_movie_kept_with_a_warning_naming_its_line(
    pg_settings: PgSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = write_folder(tmp_path / "ml", [*GOOD_RATINGS, "3,77,2.0,5"])
    assert main([str(folder), *cli_connection_args(pg_settings), "--quiet"]) == 2
    assert "line 6: movieId '77' is not in movies.csv" in capsys.readouterr().err
    monkeypatch.setenv("ALS_KEEP_UNKNOWN_MOVIES", "1")
    assert main([str(folder), *cli_connection_args(pg_settings), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "ratings: 5 rows, movies: 4 rows"
    assert err == (f"als-load-movielens: warning: {folder / 'ratings.csv'}: kept 1 rating(s) of "
                   "movies not in movies.csv (--keep-unknown-movies / ALS_KEEP_UNKNOWN_MOVIES): "
                   "line 6: movieId '77'\n")
    assert fetch(pg_settings)[0] == sorted([*EXPECTED_RATINGS, (3, 77, 2.0, 5)])
    monkeypatch.setenv("ALS_KEEP_UNKNOWN_MOVIES", "maybe")
    assert main([str(folder), "--validate-only", "--quiet"]) == 2
    assert "ALS_KEEP_UNKNOWN_MOVIES must be one of" in capsys.readouterr().err


def test_bom_crlf_and_blank_lines_are_accepted(pg_settings: PgSettings, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "ml")
    ratings = "\r\n".join([RATINGS_HEADER, *GOOD_RATINGS[:2], "", *GOOD_RATINGS[2:]]) + "\r\n"
    (folder / "ratings.csv").write_bytes(b"\xef\xbb\xbf" + ratings.encode())
    result = load_movielens(folder, pg_settings)
    assert (result.ratings_rows, result.movies_rows) == (4, 4)
    assert fetch(pg_settings) == (EXPECTED_RATINGS, EXPECTED_MOVIES)


@pytest.mark.parametrize(
    "value",
    ["", "4.0 ", "nan", "inf", "1e0", "4,5", "0.0", "5.5", "-1.0", "4.25", "1_0"],
)
def test_rating_values_rejected(tmp_path: Path, value: str) -> None:
    folder = write_folder(tmp_path / "ml", _with_line(GOOD_RATINGS, 0, f'1,1,"{value}",5'))
    with pytest.raises(MovieLensFormatError, match=r"ratings\.csv, line 2: rating") as caught:
        validate_movielens(folder)
    assert caught.value.field == "rating"
    assert caught.value.value == value


# ---------------------------------------------------------------------------------------------
# Connection failures and secrets


def test_cli_unreachable_server_exit_code_1_without_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"pw-{secrets.token_hex(8)}"
    monkeypatch.setenv("ALS_PG_PASSWORD", secret)
    folder = write_folder(tmp_path / "ml")
    started = time.monotonic()
    code = main([str(folder), *UNREACHABLE, "--quiet"])
    out, err = capsys.readouterr()
    assert code == 1
    assert time.monotonic() - started < 10
    assert out == ""
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert "127.0.0.1:1/postgres" in err and "'postgres'" in err
    assert secret not in err


def test_console_script_subprocess_unreachable(tmp_path: Path) -> None:
    """End to end, as a real process: one line on stderr, exit 1, no traceback, no password."""
    secret = f"pw-{secrets.token_hex(8)}"
    env = {**os.environ, "ALS_PG_PASSWORD": secret, "PYTHONPATH": str(REPO_ROOT)}
    folder = write_folder(tmp_path / "ml")
    proc = subprocess.run(
        [sys.executable, "-m", "als_assets.loader", str(folder), *UNREACHABLE],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert secret not in proc.stderr + proc.stdout
    assert proc.stderr.splitlines()[-1].startswith("als-load-movielens: error: cannot connect")


def test_connect_scrubs_password_from_driver_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even if libpq ever echoed the password, PgConnectionError must not contain it."""
    secret = f"pw-{secrets.token_hex(8)}"

    def fake_connect(**kwargs: object) -> None:
        assert kwargs["password"] == secret
        raise psycopg2.OperationalError(
            f'FATAL:  password authentication failed for user "loader"\npassword={secret}\n'
        )

    monkeypatch.setattr(pg.psycopg2, "connect", fake_connect)
    settings = PgSettings(host="db.example", user="loader", password=secret)
    with pytest.raises(PgConnectionError) as caught:
        connect(settings)
    message = str(caught.value)
    assert secret not in message
    assert caught.value.__suppress_context__  # a traceback will not show the raw message
    assert "\n" not in message
    assert "db.example:5432/postgres" in message and "'loader'" in message
    assert "password authentication failed" in message


def test_settings_never_show_the_password() -> None:
    settings = PgSettings.from_env(
        {
            "ALS_PG_HOST": "db.example",
            "ALS_PG_PORT": "6543",
            "ALS_PG_DATABASE": "films",
            "ALS_PG_USER": "loader",
            "ALS_PG_PASSWORD": "s3cret!",
            "ALS_PG_CONNECT_TIMEOUT": "4",
        }
    )
    assert (settings.host, settings.port, settings.database, settings.user) == (
        "db.example",
        6543,
        "films",
        "loader",
    )
    assert (settings.password, settings.connect_timeout) == ("s3cret!", 4)
    for text in (repr(settings), settings.dsn_for_display(), settings.jdbc_url()):
        assert "s3cret!" not in text
    assert settings.jdbc_url() == "jdbc:postgresql://db.example:6543/films"
    assert settings.dsn_for_display() == "postgresql://loader@db.example:6543/films"


def test_settings_defaults_and_bad_env() -> None:
    assert PgSettings.from_env({}) == PgSettings(
        host="127.0.0.1", port=5432, database="postgres", user="postgres", password=""
    )
    assert PgSettings.from_env({}).connect_timeout == 10
    with pytest.raises(ValueError, match="ALS_PG_PORT must be an integer"):
        PgSettings.from_env({"ALS_PG_PORT": "fivefour"})
    with pytest.raises(ValueError, match="ALS_PG_CONNECT_TIMEOUT must be between"):
        PgSettings.from_env({"ALS_PG_CONNECT_TIMEOUT": "0"})


# ---------------------------------------------------------------------------------------------
# Identifiers


@pytest.mark.parametrize(
    "name",
    [
        "movielens.ratings; drop table x",
        "movielens.ratings;--",
        'movielens."ratings"',
        "ratings",
        "a.b.c",
        ".ratings",
        "movielens.",
        "1movielens.ratings",
        "movie lens.ratings",
        "movielens.rätings",
        "movielens." + "r" * 64,
        "",
    ],
)
def test_table_names_are_validated(name: str) -> None:
    with pytest.raises(ValueError, match="invalid ratings table"):
        split_qualified_name(name, "ratings table")
    with pytest.raises(ValueError):
        qualified_table(name)


def test_identifier_rules() -> None:
    assert validate_identifier("_a1", "schema") == "_a1"
    assert validate_identifier("x" * 63, "schema") == "x" * 63
    with pytest.raises(ValueError, match=r"invalid schema 'x; drop'"):
        validate_identifier("x; drop", "schema")
    with pytest.raises(ValueError):
        validate_identifier("ratings\n", "table")
    assert split_qualified_name("movielens.ratings") == ("movielens", "ratings")
    assert qualified_table("movielens.ratings") == sql.Identifier("movielens", "ratings")


def test_bad_table_name_rejected_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_folder(tmp_path / "ml")
    with pytest.raises(ValueError, match="invalid ratings table"):
        load_movielens(folder, PgSettings(port=1), ratings_table="movielens.ratings; drop table x")
    code = main([str(folder), "--movies-table", "x.y; drop table z", "-q", *UNREACHABLE])
    assert code == 2
    assert "invalid movies table 'x.y; drop table z'" in capsys.readouterr().err


def test_help_mentions_environment_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    for fragment in ("ALS_PG_PASSWORD", "--ratings-table", "exit codes", "ml-25m"):
        assert fragment in text


# ---------------------------------------------------------------------------------------------
# Real data


@pytest.mark.integration
def test_load_ml_latest_small(pg_settings: PgSettings) -> None:
    if not (ML_LATEST_SMALL / "ratings.csv").is_file():
        pytest.skip(f"{ML_LATEST_SMALL} is not available")
    result = load_movielens(ML_LATEST_SMALL, pg_settings, "ml.ratings", "ml.movies")
    assert (result.ratings_rows, result.movies_rows) == (100836, 9742)
    conn = connect(pg_settings)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM ml.ratings")
            assert cur.fetchone() == (100836,)
            cur.execute("SELECT count(*) FROM ml.movies")
            assert cur.fetchone() == (9742,)
            cur.execute("SELECT title FROM ml.movies WHERE movie_id = 7789")
            assert cur.fetchone() == ("11'09\"01 - September 11 (2002)",)
            cur.execute(
                'SELECT rating, "timestamp" FROM ml.ratings WHERE user_id = 1 AND movie_id = 1'
            )
            assert cur.fetchone() == (4.0, 964982703)
    finally:
        conn.close()


def test_module_exports() -> None:
    assert loader.DEFAULT_RATINGS_TABLE == "movielens.ratings"
    assert loader.DEFAULT_MOVIES_TABLE == "movielens.movies"
