"""Synthetic data, MovieLens CSV loading and the ratings summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from als_assets.core.ratings_check import summarize_ratings
from als_assets.core.sources import (
    INT32_MAX,
    RATINGS_SCHEMA,
    SourceError,
    SyntheticSpec,
    clean_ratings,
    generate_synthetic,
    movielens_movies,
    movielens_ratings,
    synthetic_ratings,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
ML_SMALL = REPO_ROOT.parent / "shared" / "data" / "ml-latest-small"
RATINGS_HEADER = "userId,movieId,rating,timestamp"
MOVIES_HEADER = "movieId,title,genres"

# The lru_cache would hand back the same object; the undecorated function recomputes.
generate = generate_synthetic.__wrapped__


# ---------------------------------------------------------------------------------------------
# Synthetic


def test_synthetic_is_deterministic_per_seed():
    a_ratings, a_movies = generate(SyntheticSpec(n_ratings=3000, seed=7))
    b_ratings, b_movies = generate(SyntheticSpec(n_ratings=3000, seed=7))
    assert a_ratings is not b_ratings
    pd.testing.assert_frame_equal(a_ratings, b_ratings)
    pd.testing.assert_frame_equal(a_movies, b_movies)
    c_ratings, _ = generate(SyntheticSpec(n_ratings=3000, seed=8))
    assert not a_ratings.equals(c_ratings)
    assert not a_ratings[["user_id", "movie_id"]].equals(c_ratings[["user_id", "movie_id"]])


# 2000/42 and 5000/* used to come out short (1992, 4444, ... rows): mid-size catalogues repeat
# (user, movie) pairs often enough that one batch of draws had too few distinct ones.
@pytest.mark.parametrize(
    ("n_ratings", "seed"),
    [(100, 42), (1000, 42), (2000, 42), (5000, 0), (5000, 1), (5000, 42), (20_000, 42)],
)
def test_synthetic_shape_and_values(n_ratings, seed):
    spec = SyntheticSpec(n_ratings=n_ratings, seed=seed)
    ratings, movies = generate(spec)
    assert len(ratings) == n_ratings
    assert list(ratings.columns) == ["user_id", "movie_id", "rating", "timestamp"]
    assert ratings["rating"].between(0.5, 5.0).all()
    assert np.array_equal(ratings["rating"] * 2, np.round(ratings["rating"] * 2))  # half stars
    assert not ratings.duplicated(["user_id", "movie_id"]).any()
    assert (ratings["user_id"] >= 1).all() and (ratings["movie_id"] >= 1).all()
    assert ratings["user_id"].max() <= spec.n_users
    assert ratings["movie_id"].max() <= spec.n_movies
    assert movies["movie_id"].tolist() == list(range(1, spec.n_movies + 1))
    assert set(ratings["movie_id"]) <= set(movies["movie_id"])
    # Sorted by user then movie.
    assert ratings.equals(ratings.sort_values(["user_id", "movie_id"]).reset_index(drop=True))


def test_synthetic_too_small_is_an_error():
    with pytest.raises(SourceError, match="n_ratings must be >= 100, got 99"):
        generate(SyntheticSpec(n_ratings=99))


def test_synthetic_ratings_frame_has_the_canonical_schema(spark):
    spec = SyntheticSpec(n_ratings=500, seed=3)
    frame = synthetic_ratings(spark, spec)
    assert frame.schema == RATINGS_SCHEMA
    assert frame.count() == 500


@pytest.fixture
def batch_partitions(spark):
    """Spark's large-frame path for small frames: one partition per Arrow batch of 100 rows,
    as a 20M-row frame gets one per batch of 10,000."""
    keys = ("spark.sql.execution.arrow.maxRecordsPerBatch",
            "spark.sql.execution.arrow.localRelationThreshold")
    before = {key: spark.conf.get(key) for key in keys}
    spark.conf.set(keys[0], "100")
    spark.conf.set(keys[1], "0")
    yield
    for key, value in before.items():
        spark.conf.set(key, value)


def test_large_synthetic_ratings_are_merged_into_few_partitions(spark, batch_partitions,
                                                                monkeypatch):
    import als_assets.core.sources as sources

    spec = SyntheticSpec(n_ratings=3_000, seed=3)
    expected = generate(spec)[0]
    one_per_batch = spark.createDataFrame(expected, schema=RATINGS_SCHEMA)
    assert one_per_batch.rdd.getNumPartitions() == 30
    monkeypatch.setattr(sources, "SYNTHETIC_ROWS_PER_PARTITION", 500)
    frame = synthetic_ratings(spark, spec)
    # 3,000 rows at most 500 a partition, and no fewer than the default parallelism.
    assert frame.rdd.getNumPartitions() == max(6, spark.sparkContext.defaultParallelism)
    # Neighbouring partitions merged: every row, in the generator's order.
    got = frame.toPandas()
    pd.testing.assert_frame_equal(got, expected.astype(got.dtypes), check_dtype=False)


def test_small_synthetic_ratings_keep_their_partitions(spark):
    spec = SyntheticSpec(n_ratings=3_000, seed=3)
    given = spark.createDataFrame(generate(spec)[0], schema=RATINGS_SCHEMA)
    assert synthetic_ratings(spark, spec).rdd.glom().map(len).collect() == \
        given.rdd.glom().map(len).collect()


# ---------------------------------------------------------------------------------------------
# summarize_ratings on hand-built frames

SUMMARY_SCHEMA = "user_id int, movie_id int, rating float, timestamp long"


def test_summary_of_clean_ratings(spark):
    frame = spark.createDataFrame(
        [(1, 10, 4.0, 1), (1, 11, 0.5, 2), (2, 10, 5.0, 3), (3, 12, 3.0, 4)], SUMMARY_SCHEMA)
    s = summarize_ratings(frame)
    assert (s.rows, s.users, s.movies) == (4, 3, 3)
    assert (s.min_rating, s.max_rating) == (0.5, 5.0)
    assert s.mean_rating == pytest.approx(12.5 / 4, abs=1e-12)
    assert sum(s.counts.values()) == 0
    assert s.problems == [] and s.warnings == []


def test_summary_finds_each_problem(spark):
    frame = spark.createDataFrame(
        [
            (1, 10, 4.0, 1),
            (None, 10, 3.0, 2),  # null user
            (2, None, 3.0, 3),  # null movie
            (3, 11, None, 4),  # null rating
            (4, 12, 0.0, 5),  # below the scale
            (4, 13, 5.5, 6),  # above the scale
            (5, 14, float("nan"), 7),  # NaN rating
            (6, 15, 2.0, 8), (6, 15, 2.5, 9), (6, 15, 3.0, 10),  # two extra copies
            (7, 16, 1.0, 11), (7, 16, 1.0, 12),  # one extra copy
            (-3, 17, 3.0, 13),  # negative id
            (8, 18, 3.3, 14),  # not a half star
            (9, 19, 3.0, None),  # empty timestamp
        ],
        SUMMARY_SCHEMA,
    )
    s = summarize_ratings(frame, where="t")
    assert s.rows == 15
    assert {code: n for code, n in s.counts.items() if n} == {
        "null_user_id": 1, "null_movie_id": 1, "null_rating": 1, "rating_out_of_range": 3,
        "negative_user_id": 1, "rating_not_half_star": 1, "empty_timestamp": 1,
        "duplicate_pair": 3}
    assert s.problems[:2] == ["null_user_id (1 row): t: userId is empty [row ,10,3.0,2]",
                              "negative_user_id (1 row): t: userId '-3' is negative (ids must "
                              f"be 0..{INT32_MAX}) [row -3,17,3.0,13]"]
    assert "duplicate_pair (3 rows): t: duplicate (userId, movieId) = (6, 15); duplicate " \
           "(userId, movieId) = (7, 16); and 1 more" in s.problems


def test_summary_of_empty_frame(spark):
    s = summarize_ratings(spark.createDataFrame([], SUMMARY_SCHEMA))
    assert s.rows == 0
    assert s.problems == ["no ratings at all"]


def write_folder(folder: Path, ratings: str | None = None, movies: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if ratings is not None:
        (folder / "ratings.csv").write_text(ratings, encoding="utf-8")
    if movies is not None:
        (folder / "movies.csv").write_text(movies, encoding="utf-8")
    return folder


def test_movielens_ratings_raw_ids_in_int32_summarize_cleanly(spark, tmp_path):
    folder = write_folder(tmp_path, f"{RATINGS_HEADER}\n1,10,4.0,100\n{INT32_MAX},11,3.5,101\n"
                                    "2,-5,6.0,102\n2,12,,103\n1,10,2.0,104\n")
    frame = movielens_ratings(spark, folder)
    s = summarize_ratings(frame)
    assert s.rows == 5
    assert {code: n for code, n in s.counts.items() if n} == {
        "null_rating": 1, "negative_movie_id": 1, "duplicate_pair": 1}
    clean = clean_ratings(frame)
    assert clean.schema == RATINGS_SCHEMA
    assert sorted(tuple(r) for r in clean.collect())[-1] == (INT32_MAX, 11, 3.5, 101)


def test_movielens_ratings_ids_beyond_int32_are_named(spark, tmp_path):
    folder = write_folder(tmp_path, f"{RATINGS_HEADER}\n1,10,4.0,100\n3000000000,11,3.5,101\n"
                                    "2,4294967297,3.0,102\n")
    path = folder / "ratings.csv"
    s = summarize_ratings(movielens_ratings(spark, folder), where=str(path), csv_file=path)
    assert s.rows == 3
    assert s.problems == [
        f"user_id_beyond_int32 (1 row): {path}, line 3: userId '3000000000' is beyond int32 "
        f"(ids must be 0..{INT32_MAX}) [row 3000000000,11,3.5,101]",
        f"movie_id_beyond_int32 (1 row): {path}, line 4: movieId '4294967297' is beyond int32 "
        f"(ids must be 0..{INT32_MAX}) [row 2,4294967297,3.0,102]",
    ]


# ---------------------------------------------------------------------------------------------
# MovieLens CSV folders


def test_movielens_reads_ratings_and_tricky_titles(spark, tmp_path):
    folder = write_folder(
        tmp_path,
        ratings=f"{RATINGS_HEADER}\n1,1,4.0,964982703\n1,3,4.5,964981247\n2,2,0.5,835355493\n",
        movies=(
            f"{MOVIES_HEADER}\n"
            "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
            '2,"American President, The (1995)",Comedy|Drama|Romance\n'
            '3,"Movie ""Quoted"", With Comma (2000)",Drama\n'
            "4,(no title),(no genres listed)\n"
        ),
    )
    ratings = clean_ratings(movielens_ratings(spark, folder))
    assert sorted(tuple(r) for r in ratings.collect()) == [
        (1, 1, 4.0, 964982703), (1, 3, 4.5, 964981247), (2, 2, 0.5, 835355493)]
    movies = sorted(tuple(r) for r in movielens_movies(spark, folder).collect())
    assert movies == [
        (1, "Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy"),
        (2, "American President, The (1995)", "Comedy|Drama|Romance"),
        (3, 'Movie "Quoted", With Comma (2000)', "Drama"),
        (4, "(no title)", "(no genres listed)"),
    ]


def test_header_with_bom_is_accepted(spark, tmp_path):
    folder = write_folder(tmp_path, ratings=f"\ufeff{RATINGS_HEADER}\n1,1,4.0,1\n")
    assert movielens_ratings(spark, folder).count() == 1


@pytest.mark.parametrize(
    ("name", "header"),
    [("ratings.csv", "user,movie,rating,timestamp"), ("ratings.csv", "userId,movieId,rating"),
     ("movies.csv", "movieId,title")],
)
def test_wrong_header_names_file_and_line_1(spark, tmp_path, name, header):
    good = {"ratings.csv": f"{RATINGS_HEADER}\n1,1,4.0,1\n", "movies.csv": f"{MOVIES_HEADER}\n"}
    good[name] = f"{header}\n1,1,4.0,1\n"
    folder = write_folder(tmp_path, good["ratings.csv"], good["movies.csv"])
    reader = movielens_ratings if name == "ratings.csv" else movielens_movies
    with pytest.raises(SourceError) as info:
        reader(spark, folder)
    message = str(info.value)
    assert message.startswith(f"{folder / name}, line 1: header is {header!r}")
    expected = RATINGS_HEADER if name == "ratings.csv" else MOVIES_HEADER
    assert message.endswith(f"expected {expected!r}")


@pytest.mark.parametrize("bad_row", ["1,abc,4.0,100", "1,2", "1,2,3.0,4,5", "1,2,four,100"])
def test_malformed_ratings_row_names_file_and_shows_row(spark, tmp_path, bad_row):
    folder = write_folder(tmp_path, f"{RATINGS_HEADER}\n1,10,4.0,100\n{bad_row}\n2,3,1.0,5\n")
    with pytest.raises(SourceError) as info:
        movielens_ratings(spark, folder)
    message = str(info.value)
    assert message.startswith(f"{folder / 'ratings.csv'}: rows that are not")
    assert repr(bad_row) in message
    assert "'1,10,4.0,100'" not in message


@pytest.mark.parametrize("missing", ["ratings.csv", "movies.csv"])
def test_missing_file_is_named(spark, tmp_path, missing):
    present = "movies.csv" if missing == "ratings.csv" else "ratings.csv"
    (tmp_path / present).write_text(
        f"{MOVIES_HEADER if present == 'movies.csv' else RATINGS_HEADER}\n", encoding="utf-8")
    reader = movielens_ratings if missing == "ratings.csv" else movielens_movies
    with pytest.raises(SourceError) as info:
        reader(spark, tmp_path)
    assert str(info.value).startswith(f"MovieLens folder {tmp_path}: {missing} not found")


def test_missing_folder_is_named(spark, tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        movielens_ratings(spark, tmp_path / "absent")


@pytest.mark.integration
@pytest.mark.skipif(not ML_SMALL.is_dir(), reason=f"{ML_SMALL} not present")
def test_ml_latest_small(spark):
    ratings = movielens_ratings(spark, ML_SMALL)
    summary = summarize_ratings(ratings)
    assert summary.rows == 100836
    assert summary.users == 610
    assert summary.movies == 9724
    assert (summary.min_rating, summary.max_rating) == (0.5, 5.0)
    assert summary.problems == []
    movies = movielens_movies(spark, ML_SMALL)
    assert movies.count() == 9742
    assert movies.filter("movie_id is null or title is null or genres is null").count() == 0


def test_the_validation_pass_hashes_the_cleaned_rows(spark, tmp_path):
    """The ratings' data version comes from the validation pass (`content_of`): it must be the
    version of the cleaned rows hashed on their own, and it must move when one rating does."""
    from als_assets.core.sources import clean_columns, clean_ratings, write_movielens_folder
    from als_assets.versions import content_data_version, content_version

    folder = write_movielens_folder(tmp_path / "ml", 2_000)
    raw, movies = movielens_ratings(spark, folder), movielens_movies(spark, folder)
    summary = summarize_ratings(raw, movies, content_of=clean_columns(raw))
    cleaned = clean_ratings(raw)
    assert summary.problems == [] and summary.content[0] == summary.rows == 2_000
    assert content_version(cleaned.columns, *summary.content) == content_data_version(cleaned)

    lines = (folder / "ratings.csv").read_text().splitlines()
    user, movie, rating, ts = lines[1].split(",")
    lines[1] = ",".join([user, movie, "5.0" if rating != "5.0" else "4.5", ts])
    # Another folder: Spark would answer a re-read of the cached path from its cache.
    other_folder = tmp_path / "ml2"
    other_folder.mkdir()
    (other_folder / "ratings.csv").write_text("\n".join(lines) + "\n")
    changed = movielens_ratings(spark, other_folder)
    other = summarize_ratings(changed, movies, content_of=clean_columns(changed))
    assert content_version(cleaned.columns, *other.content) != \
        content_version(cleaned.columns, *summary.content)
