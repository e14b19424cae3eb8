"""End-to-end materializations: every experiment kind on synthetic data, one on ml-latest-small.

conftest.py points the code location at als_assets_tests/e2e_experiments.yaml; project.py gives
the resources a temporary storage root and 20k synthetic ratings.
"""

import math
from pathlib import Path

import numpy as np
import pytest
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    DagsterInstance,
    RunsFilter,
    materialize,
)
from pyspark.ml.recommendation import ALSModel
from pyspark.sql import functions as F

from als_assets.core.modeling import fit_als
from als_assets.core.tuning import spark_rmses
from als_assets.definitions import all_assets
from als_assets.io_managers import VersionedSparkIOManager
from als_assets.partitions import CHAMPION_RULE, EXPERIMENTS
from als_assets.resources import RatingsSource, SparkResource
from als_assets_tests.project import DEFS as defs
from als_assets_tests.project import RESOURCES as resources

SYNTHETIC = ("e2e_holdout", "e2e_tvs", "e2e_cv", "e2e_implicit", "e2e_ranking")
TUNING_ONLY = "e2e_tuning_only"
EXPERIMENT_SELECTION = AssetSelection.tag("scope", "experiment")
SOURCES = AssetSelection.assets("ratings", "movies")
ML_SMALL = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-latest-small"

pytestmark = pytest.mark.slow


def latest(instance: DagsterInstance, asset: str, partition: str | None = None) -> dict:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset),
                           asset_partitions=[partition] if partition else None),
        limit=1,
    ).records
    assert records, f"{asset} [{partition}] was not materialized"
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def check_results(instance: DagsterInstance, check: str) -> list:
    from dagster import AssetCheckKey

    asset = {"ratings_valid": "ratings", "splits_disjoint_and_complete": "training",
             "beats_baseline_on_validation": "als_model", "metrics_not_nan": "evaluation",
             "champion_eligible": "champion"}[check]
    records = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey(asset), check), limit=50)
    return [r.event.dagster_event.event_specific_data for r in records if r.event]


@pytest.fixture(scope="module")
def synthetic_instance(spark):
    instance = DagsterInstance.ephemeral()
    result = materialize(all_assets, resources=resources, instance=instance,
                         selection=SOURCES)
    assert result.success
    for name in (*SYNTHETIC, TUNING_ONLY):
        result = materialize(all_assets, resources=resources, instance=instance,
                             selection=EXPERIMENT_SELECTION, partition_key=name)
        assert result.success, name
    assert materialize(all_assets, resources=resources, instance=instance,
                       selection=["experiment_leaderboard", "champion"]).success
    return instance


def test_sources_and_splits(synthetic_instance):
    ratings = latest(synthetic_instance, "ratings")
    assert ratings["rows"] == 20_000
    assert 0.5 <= ratings["min_rating"] <= ratings["max_rating"] <= 5.0
    counts = {name: latest(synthetic_instance, name, "e2e_holdout")["rows"]
              for name in ("training", "validation", "test")}
    assert sum(counts.values()) == 20_000
    assert 0.55 < counts["training"] / 20_000 < 0.65
    evaluations = check_results(synthetic_instance, "splits_disjoint_and_complete")
    assert evaluations and all(e.passed for e in evaluations)
    assert all(e.passed for e in check_results(synthetic_instance, "ratings_valid"))


def test_experiments_with_the_same_split_link_its_files(synthetic_instance, spark):
    """Every synthetic experiment uses the default split: the first one computes it, the later
    ones store its files again and record where they came from."""
    def record(asset, partition):
        return synthetic_instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]),
            limit=1).records[0].asset_materialization

    first = SYNTHETIC[0]
    for name in ("training", "validation", "test"):
        made = record(name, first)
        assert "reused_split_of" not in made.metadata
        for partition in (*SYNTHETIC[1:], TUNING_ONLY):
            reused = record(name, partition)
            assert reused.metadata["reused_split_of"].value in SYNTHETIC
            assert reused.metadata["split_key"] == made.metadata["split_key"]
            assert reused.metadata["rows"] == made.metadata["rows"]
            assert reused.tags["dagster/data_version"] == made.tags["dagster/data_version"]
            own, theirs = (spark.read.parquet(m.metadata["storage_path"].value)
                           for m in (reused, made))
            assert reused.metadata["storage_path"] != made.metadata["storage_path"]
            assert own.count() == theirs.count() and own.exceptAll(theirs).count() == 0
    evaluations = check_results(synthetic_instance, "splits_disjoint_and_complete")
    assert len(evaluations) == len(SYNTHETIC) + 1
    assert sum("reused" in e.description for e in evaluations) == len(SYNTHETIC)
    # Every evaluation says what it rests on: the hash sums where the split was made, the
    # earlier split's check where it was reused.
    proofs = sorted(e.metadata["proof"].value for e in evaluations)
    assert sum("hash sums" in p for p in proofs) == 1
    # Where it was made, no pass over the ratings: the sums match their recorded version.
    assert sum(p.endswith("recorded data version") for p in proofs) == 1
    assert sum(p.startswith("the split of experiment") for p in proofs) == len(SYNTHETIC)


def test_explicit_model_learns_and_reports_every_metric(synthetic_instance):
    for name in ("e2e_holdout", "e2e_tvs", "e2e_cv"):
        model = latest(synthetic_instance, "als_model", name)
        assert model["validation_rmse"] < model["baseline_validation_rmse"] - 0.05, name
        ev = latest(synthetic_instance, "evaluation", name)
        for metric in ("rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k"):
            assert isinstance(ev[metric], float) and not math.isnan(ev[metric]), (name, metric)
        assert ev["rmse"] < ev["baseline_rmse_global_mean"], name
        assert 0 < ev["mae"] < ev["rmse"] < 1.2
        for metric in ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k"):
            assert 0 <= ev[metric] <= 1
        assert ev["k"] == (5 if name == "e2e_cv" else 10)
        assert ev["users_evaluated"] > 50


def test_tuned_params_cover_the_grid(synthetic_instance):
    tuned = defs.load_asset_value("tuned_params", partition_key="e2e_holdout")
    assert tuned.method == "holdout" and len(tuned.grid) == 4
    assert tuned.best_score == min(g.score for g in tuned.grid)
    # The model reuses the tuning's fit, and its check the tuning's scores of it: the mean's
    # RMSE on the validation rows the model scores, as a Spark join computes it.
    model = latest(synthetic_instance, "als_model", "e2e_holdout")
    assert model["validation_rmse"] == tuned.best_score
    training, validation = (defs.load_asset_value(name, partition_key="e2e_holdout")
                            for name in ("training", "validation"))
    mu = training.agg(F.avg("rating")).first()[0]
    expected = spark_rmses(defs.load_asset_value("als_model", partition_key="e2e_holdout"),
                           validation, mu)
    # The tuning's driver-side float32 dot products round apart from Spark's.
    assert model["validation_rmse"] == pytest.approx(expected[0], rel=1e-6)
    assert model["baseline_validation_rmse"] == pytest.approx(expected[1], rel=1e-9)
    meta = latest(synthetic_instance, "tuned_params", "e2e_holdout")
    assert meta["grid_points"] == 4 and "| rank |" in meta["grid"]
    tvs = defs.load_asset_value("tuned_params", partition_key="e2e_tvs")
    assert tvs.method == "tvs" and len(tvs.grid) == 2
    cv = defs.load_asset_value("tuned_params", partition_key="e2e_cv")
    assert cv.method == "cv" and cv.tuning_rows < 0.6 * 12_000  # a 50% sample of training


def test_tuning_study_stops_after_tuned_params(synthetic_instance):
    tuned = latest(synthetic_instance, "tuned_params", TUNING_ONLY)
    assert tuned["grid_points"] == 2
    for asset in ("als_model", "item_factors", "item_similarity", "user_recommendations",
                  "evaluation", "cold_start_report", "sample_user_report"):
        records = synthetic_instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[TUNING_ONLY]),
            limit=1).records
        assert not records, f"{asset} was materialized for a tuning-only experiment"
    run = synthetic_instance.get_run_records(
        filters=RunsFilter(tags={"dagster/partition": TUNING_ONLY}))[0]
    steps = {s.step_key: s.status.value
             for s in synthetic_instance.get_run_step_stats(run.dagster_run.run_id)}
    assert steps["tuned_params"] == steps["als_model"] == "SUCCESS"
    assert steps["evaluation"] == steps["item_similarity"] == "SKIPPED"
    # No step after tuned_params reads a best model, so none is stored.
    assert tuned["best_model_kept"] is False
    assert defs.load_asset_value("tuned_params", partition_key=TUNING_ONLY).best_model_path \
        is None


def test_holdout_model_is_the_tuning_fit(synthetic_instance, spark):
    """als_model reuses holdout tuning's fit of the best point; the model equals a new fit."""
    meta = latest(synthetic_instance, "als_model", "e2e_holdout")
    assert meta["reused_tuning_fit"] is True
    assert latest(synthetic_instance, "als_model", "e2e_tvs")["reused_tuning_fit"] is False
    stored = defs.load_asset_value("als_model", partition_key="e2e_holdout")
    tuned = defs.load_asset_value("tuned_params", partition_key="e2e_holdout")
    training = defs.load_asset_value("training", partition_key="e2e_holdout")
    config = EXPERIMENTS["e2e_holdout"]
    refit, _ = fit_als(training, tuned.best, config, tuned.blocks_per_fit)

    def factors(model):
        rows = model.itemFactors.orderBy("id").collect()
        return [r["id"] for r in rows], np.array([r["features"] for r in rows])

    ids_a, a = factors(stored)
    ids_b, b = factors(refit)
    assert ids_a == ids_b
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Stored once: als_model's files are links to the ones tuned_params wrote.
    model_dir, best_dir = Path(meta["storage_path"]), Path(tuned.best_model_path)
    assert model_dir.name == "model"
    files = sorted(p.relative_to(model_dir) for p in model_dir.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(best_dir) for p in best_dir.rglob("*")
                                     if p.is_file())
    assert all((model_dir / f).stat().st_ino == (best_dir / f).stat().st_ino for f in files)


def test_model_is_a_loadable_spark_model(synthetic_instance, spark):
    meta = latest(synthetic_instance, "als_model", "e2e_holdout")
    tuned = defs.load_asset_value("tuned_params", partition_key="e2e_holdout")
    loaded = ALSModel.load(meta["storage_path"])
    assert loaded.rank == tuned.best.rank == meta["rank"]
    via_defs = defs.load_asset_value("als_model", partition_key="e2e_holdout")
    assert isinstance(via_defs, ALSModel) and via_defs.rank == loaded.rank


def test_recommendations_leave_out_seen_items(synthetic_instance):
    recs = defs.load_asset_value("user_recommendations", partition_key="e2e_holdout")
    training = defs.load_asset_value("training", partition_key="e2e_holdout")
    per_user = recs.groupBy("user_id").agg(F.count("*").alias("n"), F.max("rank").alias("r"))
    assert per_user.filter((F.col("n") != 10) | (F.col("r") != 10)).count() == 0
    assert recs.join(training, ["user_id", "movie_id"]).count() == 0
    assert per_user.count() == training.select("user_id").distinct().count()


def test_similarity_covers_every_item_with_enough_ratings(synthetic_instance):
    sim = defs.load_asset_value("item_similarity", partition_key="e2e_holdout")
    training = defs.load_asset_value("training", partition_key="e2e_holdout")
    eligible = training.groupBy("movie_id").count().filter("count >= 3")
    sources = sim.select("movie_id").distinct()
    assert sources.count() == eligible.count()
    assert sim.filter(F.col("movie_id") == F.col("similar_movie_id")).count() == 0
    assert sim.groupBy("movie_id").count().filter("count != 5").count() == 0
    outside = sim.join(eligible.withColumnRenamed("movie_id", "similar_movie_id"),
                       "similar_movie_id", "left_anti")
    assert outside.count() == 0
    meta = latest(synthetic_instance, "item_similarity", "e2e_holdout")
    assert "Synthetic Movie" in meta["neighbours"]
    # Counted from the driver path's own rows: the stored table's.
    assert (meta["rows"], meta["items_with_neighbours"]) == (sim.count(), sources.count())
    # The reused tuning fit's rows, as tuning counted them: the stored training's.
    model = latest(synthetic_instance, "als_model", "e2e_holdout")
    assert model["reused_tuning_fit"] and model["training_rows"] == training.count()


def test_implicit_experiment_reports_ranking_metrics_only(synthetic_instance):
    ev = latest(synthetic_instance, "evaluation", "e2e_implicit")
    assert "rmse" not in ev and "mae" not in ev
    assert 0 < ev["ndcg_at_k"] <= 1 and 0 < ev["precision_at_k"] <= 1
    assert ev["implicit"] is True
    cold = latest(synthetic_instance, "cold_start_report", "e2e_implicit")
    assert "rmse_drop" not in cold and cold["test_rows"] > 0


def test_cold_start_and_sample_user_reports(synthetic_instance):
    cold = latest(synthetic_instance, "cold_start_report", "e2e_holdout")
    assert 0 <= cold["nan_share"] < 0.1
    assert cold["rmse_bias_only"] < cold["rmse_global_mean_only"]
    report = defs.load_asset_value("sample_user_report", partition_key="e2e_holdout")
    assert report.user_id == 1
    assert list(report.recommended["rank"]) == list(range(1, 11))
    assert len(report.top_rated) == 10
    assert "Synthetic Movie" in latest(synthetic_instance, "sample_user_report",
                                       "e2e_holdout")["report"]


def test_leaderboard_lists_materialized_experiments_only(synthetic_instance):
    board = defs.load_asset_value("experiment_leaderboard")
    assert set(board["experiment"]) == set(SYNTHETIC)
    # Ordered by the validation score the champion is chosen by, never by test.
    validation = [latest(synthetic_instance, "als_model", name)["validation_ndcg_at_k"]
                  for name in board["experiment"]]
    assert list(board["validation_ndcg_at_k"]) == validation == sorted(validation, reverse=True)
    for _, row in board.iterrows():
        ev = latest(synthetic_instance, "evaluation", row["experiment"])
        assert row["ndcg_at_k"] == ev["ndcg_at_k"]
        assert row["most_popular_ndcg_at_k"] == ev["most_popular_ndcg_at_k"]
    meta = latest(synthetic_instance, "experiment_leaderboard")
    assert meta["not_materialized"] == "ml_small"
    assert meta["tuning_only"] == TUNING_ONLY
    assert "★ champion" in meta["leaderboard"]


def test_champion_is_the_best_eligible_on_validation(synthetic_instance):
    rule = CHAMPION_RULE
    scores = {}
    for name in SYNTHETIC:
        model = latest(synthetic_instance, "als_model", name)
        if model["k"] == rule.k and model["validation_ndcg_at_k"] >= (
                1 + rule.min_lift) * model["validation_most_popular_ndcg_at_k"]:
            scores[name] = model["validation_ndcg_at_k"]
    expected = max(sorted(scores), key=lambda n: scores[n])
    choice = defs.load_asset_value("champion")
    assert choice.experiment == expected
    meta = latest(synthetic_instance, "champion")
    assert meta["experiment"] == expected and expected in meta["summary"]
    assert meta["validation_ndcg_at_k"] == scores[expected]
    assert choice.verdict("e2e_cv") == "not eligible: K=5, the rule compares at K=10"
    [check] = check_results(synthetic_instance, "champion_eligible")
    assert check.passed


def test_every_evaluation_has_both_protocols_and_both_baselines(synthetic_instance):
    for name in SYNTHETIC:
        ev = latest(synthetic_instance, "evaluation", name)
        for prefix in ("", "most_popular_", "random_"):
            for metric in ("precision_at_k", "ndcg_at_k", "precision_at_k_all_relevant",
                           "ndcg_at_k_all_relevant"):
                assert 0 <= ev[prefix + metric] <= 1, (name, prefix + metric)
            assert 0 < ev[prefix + "coverage"] <= 1
            assert ev[prefix + "popularity_bias"] > 0
        assert ev["most_popular_popular_overlap"] == 1.0
        # Most-popular recommends the most-rated movies, random a spread of the catalogue.
        assert ev["most_popular_popularity_bias"] > ev["random_popularity_bias"]
        assert ev["random_coverage"] > ev["most_popular_coverage"]
        assert ev["random_ndcg_at_k"] < ev["most_popular_ndcg_at_k"]
        assert "most popular" in str(ev["lists_vs_baselines"])


def test_ranking_study_tunes_on_ndcg_with_tvs(synthetic_instance):
    tuned = defs.load_asset_value("tuned_params", partition_key="e2e_ranking")
    assert tuned.method == "tvs" and tuned.metric == "ndcg_at_10" and not tuned.lower_is_better
    assert len(tuned.grid) == 4 and {g.params.alpha for g in tuned.grid} == {1.0, 10.0}
    assert tuned.best_score == max(g.score for g in tuned.grid)
    meta = latest(synthetic_instance, "tuned_params", "e2e_ranking")
    assert meta["baseline"] == "most-popular" and 0 < meta["baseline_score"] < 1
    assert meta["failed_points"] == 0 and "higher is better" in meta["heatmap"]


def write_movielens(folder: Path, ratings_rows: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n"
                                        + "\n".join(ratings_rows) + "\n")
    (folder / "movies.csv").write_text('movieId,title,genres\n1,"A, the movie (1999)",Drama\n')
    return folder


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["1,1,7.0,100"], "line 2: rating '7.0' is out of range"),
        (["1,1,4.0,100", "1,1,3.0,101"],
         "line 3: duplicate (userId, movieId) = (1, 1), first seen on line 2"),
        (["1,1,4.0,100", "1,2,4.0,100"], "line 3: movieId '2' is not in movies.csv"),
        (["1,1,4.0,100", "1,x,3.0,101"], "1,x,3.0,101"),
    ],
)
def test_bad_source_fails_and_keeps_previous_ratings(synthetic_instance, tmp_path, rows,
                                                     message):
    before = defs.load_asset_value("ratings")
    n_before = before.count()
    version_before = latest(synthetic_instance, "ratings")["storage_version"]
    bad = {**resources, "source": RatingsSource(
        kind="movielens", movielens_dir=str(write_movielens(tmp_path / "ml", rows)))}
    result = materialize(all_assets, resources=bad, instance=synthetic_instance,
                         selection=["ratings", "movies"], raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert message in str(failure.event_specific_data.error)
    assert defs.load_asset_value("ratings").count() == n_before == 20_000
    assert latest(synthetic_instance, "ratings")["storage_version"] == version_before


@pytest.mark.integration
@pytest.mark.skipif(not ML_SMALL.is_dir(), reason=f"{ML_SMALL} not present")
def test_movielens_small_end_to_end(spark, tmp_path):
    root = str(tmp_path / "storage")
    spark_resource = SparkResource(master="local[2]", storage_root=root)
    ml_resources = {
        "spark": spark_resource,
        "source": RatingsSource(kind="movielens", movielens_dir=str(ML_SMALL)),
        "postgres": resources["postgres"],
        "io_manager": VersionedSparkIOManager(root=root, spark=spark_resource),
    }
    instance = DagsterInstance.ephemeral()
    assert materialize(all_assets, resources=ml_resources, instance=instance,
                       selection=SOURCES).success
    assert materialize(all_assets, resources=ml_resources, instance=instance,
                       selection=EXPERIMENT_SELECTION, partition_key="ml_small").success

    ratings = latest(instance, "ratings")
    assert (ratings["rows"], ratings["users"]) == (100_836, 610)
    assert latest(instance, "movies")["rows"] == 9_742
    model = latest(instance, "als_model", "ml_small")
    assert 0.85 <= model["validation_rmse"] <= 0.95
    ev = latest(instance, "evaluation", "ml_small")
    assert 0.85 <= ev["rmse"] <= 0.95 and 0.65 <= ev["mae"] <= 0.75
    assert ev["baseline_rmse_global_mean"] > 1.0
    for metric in ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k"):
        assert 0 <= ev[metric] < 0.5, metric

    cold = latest(instance, "cold_start_report", "ml_small")
    assert 0.01 < cold["nan_share"] < 0.08
    # Every ml-latest-small user has >= 20 ratings, so NaNs come from unknown movies only and
    # the item-mean fallback degenerates to the global mean.
    assert cold["nan_unknown_user_only"] == cold["nan_unknown_both"] == 0
    assert cold["rmse_item_mean_fill"] == pytest.approx(cold["rmse_global_mean_fill"], abs=1e-12)
    assert "equals the global-mean fill" in cold["explanation"]

    sim_meta = latest(instance, "item_similarity", "ml_small")
    assert "Toy Story (1995)" in sim_meta["neighbours"]
    assert "Matrix, The (1999)" in sim_meta["neighbours"]
    report = latest(instance, "sample_user_report", "ml_small")
    assert report["user_id"] == 42
