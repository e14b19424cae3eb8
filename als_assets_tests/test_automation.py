"""Automation without a daemon: Dagster's own evaluation of the automation conditions, tick by
tick, against an instance where the observation really runs (on two small CSV files) and the
materializations are reported (what they hold does not matter to the conditions, and no
Spark starts).

conftest.py points the project at e2e_experiments.yaml, where only e2e_implicit opts in.
"""

from __future__ import annotations

import os

import pytest
from dagster import (
    AssetMaterialization,
    DagsterInstance,
    Definitions,
    build_sensor_context,
    evaluate_automation_conditions,
)

from als_assets.automation import automated_experiments
from als_assets.definitions import all_assets, resources
from als_assets.partitions import EXPERIMENTS
from als_assets.resources import RatingsSource
from als_assets.sensors import als_automation, observe_ratings_input, ratings_input_sensor
from als_assets.versions import DATA_VERSION_TAG

OPTED_IN = "e2e_implicit"
# Every asset the automation runs for an experiment that opts in: its whole chain.
CHAIN = ("training", "validation", "test", "tuned_params", "als_model", "user_factors",
         "item_factors", "item_similarity", "user_recommendations", "evaluation",
         "cold_start_report", "sample_user_report")
RATINGS = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,3.5,964981247\n"
MOVIES = "movieId,title,genres\n1,Toy Story (1995),Comedy\n2,Jumanji (1995),Adventure\n"


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "ratings.csv").write_text(RATINGS)
    (tmp_path / "movies.csv").write_text(MOVIES)
    return tmp_path


@pytest.fixture
def defs(folder):
    source = RatingsSource(kind="movielens", movielens_dir=str(folder))
    return Definitions(assets=all_assets, resources={**resources, "source": source},
                       jobs=[observe_ratings_input], sensors=[ratings_input_sensor, als_automation])


def requested(result) -> dict[str, set]:
    """Asset name -> requested partitions (None for an unpartitioned asset), requested only."""
    out = {}
    for key in {r.key for r in result.results}:
        partitions = result.get_requested_partitions(key)
        if partitions:
            out[key.to_user_string()] = set(partitions)
    return out


def report(instance, names, partition=None, version="v1"):
    """Materializations as a run would record them, with a data version."""
    for name in names:
        instance.report_runless_asset_event(AssetMaterialization(
            name, partition=partition, tags={DATA_VERSION_TAG: version}))


def observe(defs, instance):
    result = defs.resolve_job_def("observe_ratings_input").execute_in_process(instance=instance)
    assert result.success


def test_only_implicit_opts_in():
    assert automated_experiments() == [OPTED_IN]
    assert len(EXPERIMENTS) > 1


def test_new_ratings_run_sources_then_opted_in_experiments_then_summaries(defs, folder):
    instance = DagsterInstance.ephemeral()
    tick = evaluate_automation_conditions(defs=defs, instance=instance)
    assert requested(tick) == {}, "nothing runs before the input was ever observed"

    observe(defs, instance)
    tick = evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    # Only the sources: an experiment cannot run in the sources' run (other partitioning).
    assert requested(tick) == {"ratings": {None}, "movies": {None}}

    report(instance, ["ratings", "movies"])
    tick = evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    # The whole chain of the experiment that opts in, none of the others', and no summary yet.
    assert requested(tick) == {name: {OPTED_IN} for name in CHAIN}

    report(instance, CHAIN, partition=OPTED_IN)
    tick = evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    # The leaderboard, and the champion chosen from it in the same run.
    assert requested(tick) == {"experiment_leaderboard": {None}, "champion": {None}}

    report(instance, ["experiment_leaderboard", "champion"])
    tick = evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert requested(tick) == {}, "done: nothing runs again by itself"

    # Observed again, unchanged: the same data version, nothing to do.
    observe(defs, instance)
    tick = evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert requested(tick) == {}

    # A touched file: a new fingerprint, so the sources run again; their rows, and so their
    # data versions, are the same, and the experiment does not re-fit.
    stat = os.stat(folder / "ratings.csv")
    os.utime(folder / "ratings.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    observe(defs, instance)
    tick = evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert requested(tick) == {"ratings": {None}, "movies": {None}}
    report(instance, ["ratings", "movies"])
    tick = evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert requested(tick) == {}

    # New ratings: new data versions all the way down.
    with open(folder / "ratings.csv", "a") as fh:
        fh.write("2,1,5.0,964982224\n")
    observe(defs, instance)
    tick = evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert requested(tick) == {"ratings": {None}, "movies": {None}}

    report(instance, ["ratings"], version="v2")
    report(instance, ["movies"])
    tick = evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert requested(tick) == {name: {OPTED_IN} for name in CHAIN}


def test_sensor_observes_only_a_changed_input(defs, folder):
    instance = DagsterInstance.ephemeral()
    source = RatingsSource(kind="movielens", movielens_dir=str(folder))

    def evaluate():
        context = build_sensor_context(instance=instance, resources={
            "source": source, "postgres": resources["postgres"]})
        return list(ratings_input_sensor.evaluate_tick(context).run_requests or [])

    first = evaluate()
    assert len(first) == 1, "never observed: observe"
    observe(defs, instance)
    assert evaluate() == [], "observed, unchanged"
    stat = os.stat(folder / "ratings.csv")
    os.utime(folder / "ratings.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = evaluate()
    assert len(changed) == 1 and changed[0].run_key != first[0].run_key


def test_sensor_skips_with_the_reason_when_the_input_is_missing(tmp_path):
    context = build_sensor_context(instance=DagsterInstance.ephemeral(), resources={
        "source": RatingsSource(kind="movielens", movielens_dir=str(tmp_path / "nowhere")),
        "postgres": resources["postgres"]})
    data = ratings_input_sensor.evaluate_tick(context)
    assert not data.run_requests
    assert "ratings.csv not found" in data.skip_message


def test_table_fingerprint_moves_with_new_rows(pg_settings):
    """The PostgreSQL source's fingerprint: row count and newest timestamp, read in SQL."""
    from als_assets.core.pg import connect
    from als_assets.core.source_fingerprint import table_fingerprint

    conn = connect(pg_settings)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE SCHEMA ml")
        cur.execute('CREATE TABLE ml.ratings (user_id int, movie_id int, rating real, '
                    '"timestamp" bigint)')
        cur.execute("CREATE TABLE ml.movies (movie_id int, title text, genres text)")
        cur.execute("INSERT INTO ml.ratings VALUES (1, 1, 4.0, 100), (1, 2, 3.0, 200)")
        cur.execute("INSERT INTO ml.movies VALUES (1, 'a', 'Drama'), (2, 'b', 'Comedy')")
    first = table_fingerprint(pg_settings, "ml.ratings", "ml.movies")
    assert first.metadata["ratings_rows"] == 2 and first.metadata["newest_timestamp"] == 200
    assert table_fingerprint(pg_settings, "ml.ratings", "ml.movies") == first
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO ml.ratings VALUES (2, 1, 5.0, 300)")
    conn.close()
    second = table_fingerprint(pg_settings, "ml.ratings", "ml.movies")
    assert second.version != first.version and second.metadata["newest_timestamp"] == 300
