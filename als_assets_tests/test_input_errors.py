"""Bad input named where it is: the rating-row rules (one specification for the loader and the
Spark path), the sources switching together, and unknown partitions."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from als_assets.core.rating_rules import INT32_MAX, row_problem
from als_assets.core.ratings_check import TABLE_FIELDS, rule_column, summarize_ratings
from als_assets.core.sources import movielens_movies, movielens_ratings
from als_assets.definitions import all_assets
from als_assets.io_managers import VersionedSparkIOManager
from als_assets.resources import PostgresResource, RatingsSource, SparkResource

RATINGS_HEADER = "userId,movieId,rating,timestamp"
MOVIES_HEADER = "movieId,title,genres"


def write_folder(folder: Path, ratings: list[str], movies: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text("\n".join([RATINGS_HEADER, *ratings]) + "\n")
    (folder / "movies.csv").write_text("\n".join([MOVIES_HEADER, *movies]) + "\n")
    return folder


# (user, movie, rating, timestamp) -> the rule the row breaks first, or None.
RULE_CASES = [
    ((1, 10, 4.0, 100), None),
    ((0, 0, 0.5, 0), None),
    ((INT32_MAX, INT32_MAX, 5.0, -1), None),
    ((None, 10, 4.0, 100), "null_user_id"),
    ((-1, 10, 4.0, 100), "negative_user_id"),
    ((INT32_MAX + 1, 10, 4.0, 100), "user_id_beyond_int32"),
    ((1, None, 4.0, 100), "null_movie_id"),
    ((1, -7, 4.0, 100), "negative_movie_id"),
    ((1, 2**40, 4.0, 100), "movie_id_beyond_int32"),
    ((1, 10, None, 100), "null_rating"),
    ((1, 10, 0.0, 100), "rating_out_of_range"),
    ((1, 10, 7.5, 100), "rating_out_of_range"),
    ((1, 10, float("nan"), 100), "rating_out_of_range"),
    ((1, 10, 3.3, 100), "rating_not_half_star"),
    ((1, 10, 4.25, 100), "rating_not_half_star"),
    ((1, 10, 4.0, None), "empty_timestamp"),
    ((-1, None, 9.0, None), "negative_user_id"),  # the first broken rule is the one named
]


def test_loader_and_spark_apply_the_same_row_rules(spark):
    frame = spark.createDataFrame(
        [values for values, _ in RULE_CASES],
        "_raw_user_id long, _raw_movie_id long, _raw_rating double, timestamp long",
    ).selectExpr("*", "try_cast(_raw_user_id as int) as user_id",
                 "try_cast(_raw_movie_id as int) as movie_id", "cast(_raw_rating as float) rating")
    by_spark = [r[0] for r in frame.select(rule_column(frame)).collect()]
    by_python = [row_problem(*values) for values, _ in RULE_CASES]
    assert by_python == [expected for _, expected in RULE_CASES]
    assert by_spark == by_python


def test_every_rejected_row_is_named_with_file_line_and_field(spark, tmp_path):
    folder = write_folder(tmp_path / "ml", [
        "1,10,4.0,100",      # line 2
        ",10,3.0,101",       # line 3: null user id
        "2,10,7.5,102",      # line 4: out of range
        "3000000000,10,4.0,103",  # line 5: beyond int32
        "-4,10,4.0,104",     # line 6: negative, not "outside int32"
        "5,10,3.3,105",      # line 7: not a half star
        "1,10,2.0,106",      # line 8: duplicate of line 2
        "6,10,4.0,",         # line 9: empty timestamp
        "7,99,4.0,107",      # line 10: unknown movie
        "8,10,NaN,108",      # line 11: not a rating (NaN is not equal to itself: still found)
    ], ["10,Ten (2000),Drama"])
    path = folder / "ratings.csv"
    summary = summarize_ratings(movielens_ratings(spark, folder), movielens_movies(spark, folder),
                                where=str(path), csv_file=path)
    bounds = f"(ids must be 0..{INT32_MAX})"
    assert summary.problems == [
        f"null_user_id (1 row): {path}, line 3: userId is empty [row ,10,3.0,101]",
        f"negative_user_id (1 row): {path}, line 6: userId '-4' is negative {bounds} "
        "[row -4,10,4.0,104]",
        f"user_id_beyond_int32 (1 row): {path}, line 5: userId '3000000000' is beyond int32 "
        f"{bounds} [row 3000000000,10,4.0,103]",
        f"rating_out_of_range (2 rows): {path}, line 4: rating '7.5' is out of range "
        "(must be 0.5..5.0) [row 2,10,7.5,102]; line 11: rating 'nan' is out of range "
        "(must be 0.5..5.0) [row 8,10,nan,108]",
        f"rating_not_half_star (1 row): {path}, line 7: rating '3.3' is not a multiple of 0.5 "
        "(MovieLens ratings are half stars) [row 5,10,3.3,105]",
        f"empty_timestamp (1 row): {path}, line 9: timestamp is empty [row 6,10,4.0,]",
        f"duplicate_pair (1 row): {path}, line 8: duplicate (userId, movieId) = (1, 10), "
        "first seen on line 2",
        f"unknown_movie (1 row): {path}, line 10: movieId '99' is not in movies.csv "
        "[row 7,99,4.0,107]",
    ]
    assert summary.warnings == []


def test_empty_timestamps_and_unknown_movies_can_be_kept_with_a_warning(spark, tmp_path):
    folder = write_folder(tmp_path / "ml", ["1,10,4.0,", "2,11,3.0,5"], ["10,Ten (2000),Drama"])
    ratings, movies = movielens_ratings(spark, folder), movielens_movies(spark, folder)
    strict = summarize_ratings(ratings, movies, where="r.csv")
    assert [p.split(" ")[0] for p in strict.problems] == ["empty_timestamp", "unknown_movie"]
    kept = summarize_ratings(ratings, movies, where="r.csv",
                             keep=("empty_timestamp", "unknown_movie"))
    assert kept.problems == []
    assert kept.warnings == ["empty_timestamp (1 row): r.csv: timestamp is empty [row 1,10,4.0,]",
                             "unknown_movie (1 row): r.csv: movieId '11' is not in movies.csv "
                             "[row 2,11,3.0,5]"]
    with pytest.raises(ValueError, match="only empty_timestamp, unknown_movie can be kept"):
        summarize_ratings(ratings, movies, keep=("duplicate_pair",))


def test_rows_of_a_table_are_named_by_their_columns_and_values(spark):
    """A database source has no lines: the rows are named by their values, the fields by the
    table's columns, the known movies by their table."""
    ratings = spark.createDataFrame([(1, 10, 4.0, 1), (-1, 10, 4.0, 2), (2, 99, 3.5, 3),
                                     (1, 10, 2.0, 4)],
                                    "user_id int, movie_id int, rating float, timestamp long")
    movies = spark.createDataFrame([(10, "Ten", "Drama")], "movie_id int, title string, "
                                   "genres string")
    summary = summarize_ratings(ratings, movies, where="movielens.ratings (postgresql://db)",
                                movies_name="movielens.movies", fields=TABLE_FIELDS)
    assert summary.problems == [
        "negative_user_id (1 row): movielens.ratings (postgresql://db): user_id '-1' is "
        f"negative (ids must be 0..{INT32_MAX}) [row -1,10,4.0,2]",
        "duplicate_pair (1 row): movielens.ratings (postgresql://db): duplicate "
        "(user_id, movie_id) = (1, 10)",
        "unknown_movie (1 row): movielens.ratings (postgresql://db): movie_id '99' is not in "
        "movielens.movies [row 2,99,3.5,3]",
    ]


# ---------------------------------------------------------------------------------------------
# The sources switch together


def _resources(root: str, folder: Path, **source_fields) -> dict:
    spark_resource = SparkResource(master="local[2]", storage_root=root)
    return {
        "spark": spark_resource,
        "source": RatingsSource(kind="movielens", movielens_dir=str(folder), **source_fields),
        "postgres": PostgresResource(),
        "io_manager": VersionedSparkIOManager(root=root, spark=spark_resource),
    }


def _stored(root: str, spark, asset: str) -> list[tuple]:
    store = VersionedSparkIOManager(root=root, spark=SparkResource(storage_root=root)).store
    return sorted(tuple(r) for r in store.read((asset,), None, lambda: spark).collect())


def test_failing_ratings_keep_both_ratings_and_movies(spark, tmp_path):
    root = str(tmp_path / "storage")
    instance = DagsterInstance.ephemeral()
    good = write_folder(tmp_path / "good", ["1,10,4.0,100", "2,11,3.0,101"],
                        ["10,Ten (2000),Drama", "11,Eleven (2001),Comedy"])
    assert materialize(all_assets, resources=_resources(root, good), instance=instance,
                       selection=["ratings", "movies"]).success
    ratings_before, movies_before = _stored(root, spark, "ratings"), _stored(root, spark, "movies")
    assert movies_before == [(10, "Ten (2000)", "Drama"), (11, "Eleven (2001)", "Comedy")]

    bad = write_folder(tmp_path / "bad", ["1,10,4.0,100", "2,11,7.5,101"],
                       ["10,Ten RENAMED (2000),Drama", "11,Eleven RENAMED (2001),Comedy"])
    result = materialize(all_assets, resources=_resources(root, bad), instance=instance,
                         selection=["ratings", "movies"], raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = str(failure.event_specific_data.error)
    assert "nothing was written" in message
    assert f"{bad / 'ratings.csv'}, line 3: rating '7.5' is out of range" in message
    assert _stored(root, spark, "ratings") == ratings_before
    assert _stored(root, spark, "movies") == movies_before
    assert result.get_asset_materialization_events() == []
    for asset in ("ratings", "movies"):
        assert instance.get_latest_materialization_event(AssetKey(asset)).run_id != result.run_id


def test_kept_unknown_movie_is_written_with_a_warning(spark, tmp_path):
    root = str(tmp_path / "storage")
    folder = write_folder(tmp_path / "ml", ["1,10,4.0,100", "2,12,3.0,101"],
                          ["10,Ten (2000),Drama"])
    strict = materialize(all_assets, resources=_resources(root, folder),
                         instance=DagsterInstance.ephemeral(), selection=["ratings", "movies"],
                         raise_on_error=False)
    assert not strict.success
    kept = materialize(all_assets, resources=_resources(root, folder, keep_unknown_movies=True),
                       instance=DagsterInstance.ephemeral(), selection=["ratings", "movies"])
    assert kept.success
    assert _stored(root, spark, "ratings") == [(1, 10, 4.0, 100), (2, 12, 3.0, 101)]
    (ratings_event,) = [e for e in kept.get_asset_materialization_events()
                        if e.asset_key == AssetKey("ratings")]
    warning = ratings_event.materialization.metadata["warnings"].value
    assert warning == (f"unknown_movie (1 row): {folder / 'ratings.csv'}, line 3: movieId '12' "
                       "is not in movies.csv [row 2,12,3.0,101]")


# ---------------------------------------------------------------------------------------------
# Unknown partitions


def test_unknown_partition_lists_the_experiments():
    from dagster import AssetSelection

    from als_assets.partitions import EXPERIMENTS, UnknownExperimentError
    from als_assets_tests.project import RESOURCES as resources

    with pytest.raises(UnknownExperimentError) as info:
        materialize(all_assets, resources=resources, instance=DagsterInstance.ephemeral(),
                    selection=AssetSelection.tag("scope", "experiment"),
                    partition_key="e2e_holdot")
    message = str(info.value)
    assert message.startswith("unknown experiment 'e2e_holdot' (the partition key is an "
                              "experiment's name): did you mean 'e2e_holdout'? the experiments "
                              "in ")
    assert message.endswith(" are " + ", ".join(EXPERIMENTS))


def test_unknown_experiment_in_a_step_is_not_retried():
    from dagster import Failure, build_asset_context

    from als_assets.partitions import experiment_config

    with pytest.raises(Failure) as info:
        experiment_config(build_asset_context(partition_key="nope"))
    assert info.value.allow_retries is False
    assert "unknown experiment 'nope'" in info.value.description
    assert "e2e_holdout, e2e_tvs" in info.value.description


def test_cli_unknown_partition_lists_the_experiments(tmp_path):
    """Dagster's CLI replaces its own unknown-partition error by one without the keys; the
    experiments' partitions raise one it passes through."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m",
         "als_assets.definitions", "--select", "tag:scope=experiment", "--partition", "nope"],
        capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("als_assets.partitions.UnknownExperimentError: unknown experiment "
                           "'nope'"), last
    assert "are e2e_holdout, e2e_tvs, e2e_cv, e2e_implicit" in last


# ---------------------------------------------------------------------------------------------
# The IO manager stores an unpartitioned asset unpartitioned, whatever the run's partition


def test_unpartitioned_asset_in_a_partitioned_run_is_stored_unpartitioned(tmp_path):
    """`--select 'ratings,movies,<partitioned assets>' --partition X` used to store `ratings`
    under X (the run's partition), where no reader looks."""
    from dagster import StaticPartitionsDefinition, asset

    @asset
    def plain():
        return {"rows": 3}

    @asset(partitions_def=StaticPartitionsDefinition(["a", "b"]))
    def per_partition(plain):
        return {"rows": plain["rows"] + 1}

    root = str(tmp_path / "storage")
    io_manager = VersionedSparkIOManager(root=root, spark=SparkResource(storage_root=root))
    assert materialize([plain, per_partition], resources={"io_manager": io_manager},
                       partition_key="b").success
    store = io_manager.store
    assert store.current(("plain",), None) is not None
    assert store.current(("plain",), "b") is None
    assert store.read(("plain",), None, lambda: None) == {"rows": 3}
    assert store.read(("per_partition",), "b", lambda: None) == {"rows": 4}
