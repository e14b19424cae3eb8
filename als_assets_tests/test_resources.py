"""Resources: settings as fields, set variables as EnvVars resolved at run time, Spark lazy."""

from __future__ import annotations

import pytest
from dagster import EnvVar, asset, materialize
from dagster_pyspark import LazyPySparkResource

from als_assets.definitions import build_resources, resources_from_env
from als_assets.resources import PostgresResource, RatingsSource, SparkResource, from_env
from als_assets.settings import DEFAULTS

ENVIRON = {"ALS_PG_PASSWORD": "sekrit", "ALS_PG_PORT": "5433", "ALS_SYNTHETIC_RATINGS": "20_000",
           "ALS_KEEP_UNKNOWN_MOVIES": "yes"}


def test_unset_variables_leave_the_one_set_of_defaults():
    res = resources_from_env({})
    assert res["postgres"].host == DEFAULTS["ALS_PG_HOST"]
    assert res["source"].synthetic_ratings == DEFAULTS["ALS_SYNTHETIC_RATINGS"]
    assert res["spark"].master == DEFAULTS["SPARK_MASTER"]
    assert res["spark"].class_archive_dir == ""  # the class-data archive is opt-in


def test_set_variables_become_envvars():
    postgres = from_env(PostgresResource, ENVIRON)
    assert isinstance(postgres.password, EnvVar)
    assert postgres.password.env_var_name == "ALS_PG_PASSWORD"
    assert from_env(RatingsSource, ENVIRON).keep_unknown_movies is True


def test_a_flag_that_is_neither_yes_nor_no_names_its_variable():
    with pytest.raises(ValueError, match="ALS_KEEP_EMPTY_TIMESTAMPS must be one of"):
        from_env(RatingsSource, {"ALS_KEEP_EMPTY_TIMESTAMPS": "maybe"})


def test_envvars_resolve_at_run_time_and_spark_starts_only_when_asked(tmp_path, monkeypatch):
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)  # the run's environment, read when it starts
    spark = SparkResource(storage_root=str(tmp_path))
    assert isinstance(spark, LazyPySparkResource)
    seen = {}

    @asset
    def probe(postgres: PostgresResource, source: RatingsSource, spark: SparkResource):
        seen.update(password=postgres.password, port=postgres.port,
                    ratings=source.synthetic_ratings, root=spark.root,
                    started=spark._spark_session is not None)
        return 1

    resources = build_resources(spark=spark, source=from_env(RatingsSource, ENVIRON),
                                postgres=from_env(PostgresResource, ENVIRON))
    assert materialize([probe], resources=resources).success
    assert seen == {"password": "sekrit", "port": 5433, "ratings": 20_000,
                    "root": str(tmp_path), "started": False}
    assert (tmp_path / "probe").is_dir()  # the IO manager stores under the Spark resource's root
