"""Splits, interactions and tuning on tiny data."""

import math
import os
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pyspark import SparkConf
from pyspark.ml.evaluation import RegressionEvaluator
from pyspark.ml.recommendation import ALS
from pyspark.ml.tuning import CrossValidator
from pyspark.sql import functions as F

from als_assets.core.distributed import DRIVER_MAX_ROWS, PATH_CONF, choose_path
from als_assets.core.experiments import (
    AlsParams,
    ExperimentConfig,
    GridConfig,
    ImplicitConfig,
    TuningConfig,
)
from als_assets.core.metrics import ranking_metrics, relevant_items
from als_assets.core.modeling import (
    SPLIT_LABEL,
    Splits,
    make_als,
    split_overlap_summary,
    split_ratings,
    to_interactions,
    write_splits,
)
from als_assets.core.ranking import HeldOut
from als_assets.core.sources import SyntheticSpec, synthetic_ratings
from als_assets.core.spark import (
    DEEP_STACK_ITERATIONS,
    DEFAULT_STACK_ITERATIONS,
    JIT_OPTIONS,
    THREAD_STACK_OPTION,
    SparkSettings,
    session_conf,
    uncheckpointed_iterations,
)
from als_assets.core.storage import VersionedStore
from als_assets.core.topk import recommend_for_users
from als_assets.core.tuning import (
    AllPointsFailedError,
    HeldOutRatings,
    fit_order,
    fold_pairs,
    heldout_rmses,
    spark_rmses,
    tune,
)
from als_assets.versions import (
    combined,
    content_hashes,
    hashes_add_up,
    labelled_content_hashes,
)


@pytest.fixture(scope="module")
def ratings(spark):
    return synthetic_ratings(spark, SyntheticSpec(n_ratings=3_000, seed=3)).cache()


def test_split_is_disjoint_complete_and_reproducible(ratings):
    parts = split_ratings(ratings, (0.6, 0.2, 0.2), 42)
    counts = split_overlap_summary(ratings, parts)
    assert counts["sum_of_splits"] == counts["distinct_pairs_in_splits"] == 3_000
    assert 0.55 < counts["training"] / 3_000 < 0.65
    again = split_ratings(ratings, (0.6, 0.2, 0.2), 42)
    assert again.test.exceptAll(parts.test).count() == 0
    assert split_ratings(ratings, (0.6, 0.2, 0.2), 7).test.exceptAll(parts.test).count() > 0


@pytest.mark.parametrize("ratios", [(0.6, 0.2, 0.2), (0.8, 0.1, 0.1), (3.0, 1.0, 1.0)])
def test_split_labels_give_exactly_spark_random_split(ratings, ratios):
    """One labelling pass reproduces randomSplit's three samples row for row, on an input of
    several partitions (each sampled with its own seed + partition index)."""
    spread = ratings.repartition(4, "user_id").cache()
    parts = split_ratings(spread, ratios, 42)
    expected = spread.randomSplit(list(ratios), seed=42)
    for got, want in zip((parts.training, parts.validation, parts.test), expected, strict=True):
        assert got.count() == want.count() > 0
        assert got.exceptAll(want).count() == 0 and want.exceptAll(got).count() == 0


def test_labelled_split_hashes_are_each_split_s_own_hash(ratings):
    parts = split_ratings(ratings, (0.6, 0.2, 0.2), 42)
    names = ("training", "validation", "test")
    one_pass = labelled_content_hashes(parts.labelled, SPLIT_LABEL, names)
    separate = content_hashes({"ratings": ratings, "training": parts.training,
                               "validation": parts.validation, "test": parts.test})
    assert one_pass == {n: separate[n] for n in names}
    # Together they are the ratings' hash: the ratings' data version, with no pass over them.
    assert combined(list(one_pass.values())).data_version == separate["ratings"].data_version


def test_written_splits_are_the_same_rows_in_the_same_order(ratings, tmp_path):
    """One partitioned write gives each split's rows, and files holding them in the order
    writing each split from the cached labelling gave (ALS sums in input order, so the models
    downstream stay the same); the hashes come from the files read back."""
    spread = ratings.repartition(3, "user_id").cache()
    spark = spread.sparkSession
    parts = split_ratings(spread, (0.6, 0.2, 0.2), 42)
    written = write_splits(spread, (0.6, 0.2, 0.2), 42, tmp_path / "splits")
    names = ("training", "validation", "test")
    for name, got, want, path in zip(names, (written.splits.training,
                                             written.splits.validation, written.splits.test),
                                     (parts.training, parts.validation, parts.test),
                                     written.paths, strict=True):
        assert got.columns == want.columns
        assert sorted(map(tuple, got.collect())) == sorted(map(tuple, want.collect()))
        want.write.parquet(str(tmp_path / name))
        assert [tuple(r) for r in spark.read.parquet(path).collect()] == \
            [tuple(r) for r in spark.read.parquet(str(tmp_path / name)).collect()]
    assert labelled_content_hashes(written.splits.labelled, SPLIT_LABEL, names) == \
        labelled_content_hashes(parts.labelled, SPLIT_LABEL, names)


def test_a_split_with_no_rows_has_no_files(ratings, tmp_path):
    written = write_splits(ratings.limit(1), (0.6, 0.2, 0.2), 42, tmp_path / "one")
    assert sum(p is not None for p in written.paths) == 1
    assert sum(f.count() for f in (written.splits.training, written.splits.validation,
                                   written.splits.test)) == 1


def test_overlapping_or_missing_rows_are_counted(ratings):
    parts = split_ratings(ratings, (0.6, 0.2, 0.2), 42)
    overlapping = Splits(parts.training, parts.validation,
                         parts.test.unionAll(parts.training.limit(5)))
    counts = split_overlap_summary(ratings, overlapping)
    assert counts["sum_of_splits"] - counts["distinct_pairs_in_splits"] == 5
    missing = Splits(parts.training, parts.validation, parts.test.limit(10))
    counts = split_overlap_summary(ratings, missing)
    assert counts["sum_of_splits"] == counts["distinct_pairs_in_splits"] < 3_000


def test_split_hashes_add_up_to_the_ratings_only_for_an_exact_partition(ratings):
    parts = split_ratings(ratings, (0.6, 0.2, 0.2), 42)

    def adds_up(training, validation, test):
        hashes = content_hashes({"ratings": ratings, "training": training,
                                 "validation": validation, "test": test})
        return hashes_add_up([hashes[n] for n in ("training", "validation", "test")],
                             hashes["ratings"])

    assert adds_up(parts.training, parts.validation, parts.test)
    assert not adds_up(parts.training, parts.validation,
                       parts.test.unionAll(parts.training.limit(5)))  # pairs in two splits
    assert not adds_up(parts.training, parts.validation, parts.test.limit(10))  # rows missing
    one = parts.test.limit(1).collect()[0]
    changed = parts.test.withColumn(  # same rows and pairs, one rating changed
        "rating", F.when((F.col("user_id") == one["user_id"])
                         & (F.col("movie_id") == one["movie_id"]),
                         F.col("rating") + 0.5).otherwise(F.col("rating")))
    assert not adds_up(parts.training, parts.validation, changed)
    # Moving rows between splits keeps the union: still the ratings' rows exactly once.
    user = parts.validation.first()["user_id"]
    moved = F.col("user_id") == user
    assert adds_up(parts.training.unionAll(parts.validation.filter(moved)),
                   parts.validation.filter(~moved), parts.test)


@pytest.mark.parametrize("max_iter,uncheckpointed,interval", [
    (1, 10, -1), (10, 10, -1), (11, 10, 10), (15, 10, 10), (30, 10, 10),
    (15, 30, -1), (30, 30, -1), (31, 30, 30), (90, 30, 30)])
def test_only_fits_longer_than_the_session_allows_checkpoint(spark, max_iter, uncheckpointed,
                                                            interval):
    als = make_als(AlsParams(rank=5, max_iter=max_iter, reg_param=0.1), False, "drop", 1, 1,
                   uncheckpointed=uncheckpointed)
    assert als.getCheckpointInterval() == interval
    assert als.getMaxIter() == max_iter
    assert als.getFinalStorageLevel() == "MEMORY_AND_DISK"


def test_the_driver_finds_sparks_most_read_jars_first(spark):
    from als_assets.core.jvm_archive import first_on_classpath

    first = first_on_classpath()
    assert [Path(p).name.split("_")[0] for p in first] == [
        "spark-mllib", "spark-core", "spark-common-utils", "spark-sql"]
    conf = session_conf(SparkSettings(master="local[2]"))
    assert conf["spark.driver.extraClassPath"] == os.pathsep.join(first)
    # A classpath of the user's own keeps its precedence.
    own = session_conf(SparkSettings(master="local[2]", extra_conf=(
        ("spark.driver.extraClassPath", "/opt/mine.jar"),)))
    assert own["spark.driver.extraClassPath"] == os.pathsep.join(("/opt/mine.jar", *first))
    # The running driver JVM was started so: Spark's jars before the other ~280.
    classpath = spark.sparkContext._jvm.java.lang.System.getProperty("java.class.path")
    assert classpath.split(os.pathsep)[:len(first)] == list(first)


def test_sessions_the_package_builds_have_deep_stacks_and_others_do_not(spark):
    assert uncheckpointed_iterations(spark) == DEEP_STACK_ITERATIONS
    conf = session_conf(SparkSettings(master="spark://h:7077"))
    assert conf["spark.driver.extraJavaOptions"] == f"{THREAD_STACK_OPTION} {JIT_OPTIONS}"
    # A cluster's executors do the heavy work: they keep the JVM's own JIT thresholds.
    assert conf["spark.executor.extraJavaOptions"] == THREAD_STACK_OPTION

    def session_with(options: dict[str, str]):
        conf = SparkConf(loadDefaults=False).setAll(list(options.items()))
        return SimpleNamespace(sparkContext=SimpleNamespace(getConf=lambda: conf))

    both = {"spark.driver.extraJavaOptions": "-verbose:gc " + THREAD_STACK_OPTION,
            "spark.executor.extraJavaOptions": THREAD_STACK_OPTION}
    assert uncheckpointed_iterations(session_with(both)) == DEEP_STACK_ITERATIONS
    # A session whose executors (or driver) start with default stacks.
    for missing in both:
        partial = {k: v for k, v in both.items() if k != missing}
        assert uncheckpointed_iterations(session_with(partial)) == DEFAULT_STACK_ITERATIONS
    assert uncheckpointed_iterations(session_with({})) == DEFAULT_STACK_ITERATIONS


def test_the_driver_jvm_runs_with_the_raised_jit_thresholds(spark):
    """The session fixture's JVM was started as the package starts its driver: HotSpot took
    every JIT option (an option it did not know would have been ignored, not applied)."""
    jvm = spark.sparkContext._jvm
    args = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert set(JIT_OPTIONS.split()) <= set(args)
    bean = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean"))
    for option in JIT_OPTIONS.split():
        if "=" in option:
            name, value = option.removeprefix("-XX:").split("=")
            assert bean.getVMOption(name).getValue() == value, name


def test_the_deep_stacks_carry_a_fit_of_the_longest_uncheckpointed_length(ratings):
    # With the JVM's default stacks 20 iterations without a checkpoint overflowed the stack
    # (which ends the JVM); the session fixture is built like the package's sessions.
    params = AlsParams(rank=3, max_iter=DEEP_STACK_ITERATIONS, reg_param=0.1)
    als = make_als(params, False, "drop", 1, 1, uncheckpointed=DEEP_STACK_ITERATIONS)
    assert als.getCheckpointInterval() == -1
    model = als.fit(ratings)
    assert model.userFactors.count() > 0


def test_a_model_scored_once_is_not_cached_and_has_the_same_factors(ratings):
    params = AlsParams(rank=4, max_iter=5, reg_param=0.1)
    models = [make_als(params, False, "drop", 7, 1, scored_once=once).fit(ratings)
              for once in (False, True)]
    assert [m._java_obj.parent().getFinalStorageLevel() for m in models] == \
        ["MEMORY_AND_DISK", "NONE"]
    for table in ("userFactors", "itemFactors"):
        kept, scored = (sorted((r["id"], tuple(r["features"])) for r in getattr(m, table).collect())
                        for m in models)
        assert kept == scored


def test_costliest_fits_run_first_and_ties_keep_grid_order():
    points = [AlsParams(rank, max_iter, 0.1) for rank, max_iter in
              [(10, 10), (50, 15), (10, 15), (50, 10), (10, 10), (20, 15)]]
    assert fit_order(points) == [1, 5, 2, 3, 0, 4]


@pytest.mark.parametrize(("positives", "confidence", "expected"), [
    # The notebook's interactions: a rating >= 4 is 1, anything else 0 (no observation).
    ("threshold", "binary", [0.0, 1.0, 1.0, 0.0]),
    ("threshold", "rating", [0.0, 4.0, 5.0, 0.0]),
    ("threshold", "log", [0.0, math.log1p(4.0), math.log1p(5.0), 0.0]),
    ("all", "binary", [1.0, 1.0, 1.0, 1.0]),
    ("all", "rating", [3.5, 4.0, 5.0, 0.5]),
    ("all", "log", [math.log1p(3.5), math.log1p(4.0), math.log1p(5.0), math.log1p(0.5)]),
])
def test_interactions_follow_positives_and_confidence(spark, positives, confidence, expected):
    frame = spark.createDataFrame(
        [(1, 1, 3.5, 0), (1, 2, 4.0, 0), (2, 1, 5.0, 0), (2, 2, 0.5, 0)],
        "user_id int, movie_id int, rating float, timestamp long")
    implicit = ImplicitConfig(enabled=True, threshold=4.0, positives=positives,
                              confidence=confidence)
    got = [r["rating"] for r in to_interactions(frame, implicit).orderBy("user_id", "movie_id")
           .collect()]
    assert got == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("method", ["holdout", "tvs", "cv"])
def test_tuning_scores_every_grid_point(ratings, method):
    parts = split_ratings(ratings, (0.6, 0.2, 0.2), 42)
    grid = GridConfig(rank=(2, 4), max_iter=(3,), reg_param=(0.1,))
    config = replace(ExperimentConfig(name="t"),
                     tuning=TuningConfig(method=method, grid=grid, num_folds=2, parallelism=2))
    result = tune(parts.training, parts.validation, config, blocks=2)
    assert [g.params for g in result.grid] == [AlsParams(2, 3, 0.1), AlsParams(4, 3, 0.1)]
    assert result.best_score == min(g.score for g in result.grid)
    assert result.metric == "rmse" and all(0.3 < g.score < 5.0 for g in result.grid), result.grid
    assert "| rank |" in result.markdown_table() and "**best**" in result.markdown_table()
    assert result.tuning_rows == parts.training.count()
    # Only holdout fits its points on the whole of training: its best model is kept.
    assert (result.best_model is not None) == (method == "holdout")
    if method == "holdout":
        assert result.best_model.rank == result.best.rank
    assert parts.training.filter(F.col("rating").isNull()).count() == 0


def test_tuning_result_stores_its_best_model_beside_its_json(ratings, tmp_path, spark):
    parts = split_ratings(ratings, (0.6, 0.2, 0.2), 42)
    grid = GridConfig(rank=(2, 4), max_iter=(3,), reg_param=(0.1,))
    config = replace(ExperimentConfig(name="t"), tuning=TuningConfig(grid=grid))
    result = tune(parts.training, parts.validation, config, blocks=2)
    store = VersionedStore(tmp_path)
    stored = store.write(("tuned_params",), "t", result)
    assert stored.kind == "json"
    back = store.read(("tuned_params",), "t")
    assert back.best_model is None and back.best_model_path.startswith(str(tmp_path))
    assert back == replace(result, best_model_path=back.best_model_path)
    model = back.load_best_model()
    expected = sorted((r["id"], tuple(r["features"])) for r in result.best_model.itemFactors.collect())
    assert sorted((r["id"], tuple(r["features"])) for r in model.itemFactors.collect()) == expected


def test_heldout_rmse_equals_sparks_evaluator(ratings):
    """The driver-side RMSE used in tuning is RegressionEvaluator's on transform (drop)."""
    parts = split_ratings(ratings, (0.6, 0.2, 0.2), 42)
    model = ALS(userCol="user_id", itemCol="movie_id", ratingCol="rating", rank=4, maxIter=4,
                seed=1, coldStartStrategy="drop").fit(parts.training)
    expected = RegressionEvaluator(metricName="rmse", labelCol="rating").evaluate(
        model.transform(parts.test))
    rmse, _ = heldout_rmses(model, HeldOutRatings.collect(parts.test), 0.0)
    assert rmse == pytest.approx(expected, rel=1e-6)


def test_heldout_rmse_leaves_out_unknown_users_and_items(spark):
    training = spark.createDataFrame(
        [(1, 10, 4.0), (1, 11, 2.0), (2, 10, 5.0), (2, 11, 1.0)],
        "user_id int, movie_id int, rating float")
    model = ALS(userCol="user_id", itemCol="movie_id", ratingCol="rating", rank=2, maxIter=5,
                seed=1).fit(training)
    users = {r["id"]: np.array(r["features"]) for r in model.userFactors.collect()}
    items = {r["id"]: np.array(r["features"]) for r in model.itemFactors.collect()}
    # (3, 10) has an unknown user, (1, 99) an unknown item: both are left out.
    held = HeldOutRatings(np.array([1, 2, 3, 1]), np.array([11, 10, 10, 99]),
                          np.array([3.0, 4.0, 5.0, 1.0]))
    errors = [float(users[1] @ items[11]) - 3.0, float(users[2] @ items[10]) - 4.0]
    assert heldout_rmses(model, held, 0.0)[0] == pytest.approx(
        math.sqrt(np.mean(np.square(errors))), rel=1e-5)
    # The mean's RMSE over the same two rows (ratings 3 and 4), not over all four.
    expected = (heldout_rmses(model, held, 0.0)[0], math.sqrt(0.5))
    assert heldout_rmses(model, held, 3.0) == pytest.approx(expected, rel=1e-12)
    frame = spark.createDataFrame(list(zip(held.users.tolist(), held.items.tolist(),
                                           held.ratings.tolist(), strict=True)),
                                  "user_id int, movie_id int, rating double")
    assert spark_rmses(model, frame, 3.0) == pytest.approx(expected, rel=1e-6)
    assert math.isnan(heldout_rmses(model, HeldOutRatings(np.array([7]), np.array([10]),
                                                          np.array([1.0])), 0.0)[0])


@pytest.mark.parametrize("method", ["cv", "tvs"])
def test_folds_are_sparks_folds(ratings, method):
    """Our folds are the ones Spark's CrossValidator / TrainValidationSplit would use."""
    tuning = TuningConfig(method=method, num_folds=3, train_ratio=0.75, seed=7)
    ours = fold_pairs(ratings, tuning)
    if method == "cv":
        theirs = CrossValidator(numFolds=3, seed=7)._kFold(ratings)
    else:
        rand = F.rand(7)
        df = ratings.select("*", rand.alias("r"))
        theirs = [(df.filter(~(df["r"] >= 0.75)), df.filter(df["r"] >= 0.75))]
    assert len(ours) == len(theirs) == (3 if method == "cv" else 1)

    def rows(frame):
        return sorted(tuple(r) for r in frame.select("user_id", "movie_id", "rating").collect())

    for (train, val), (train_s, val_s) in zip(ours, theirs, strict=True):
        assert rows(val) == rows(val_s) and rows(train) == rows(train_s)
        assert len(rows(train)) + len(rows(val)) == ratings.count()


@pytest.mark.parametrize("implicit", [False, True])
@pytest.mark.parametrize("method", ["holdout", "tvs", "cv"])
def test_tuning_on_a_ranking_metric(ratings, method, implicit):
    parts = split_ratings(ratings, (0.6, 0.2, 0.2), 42)
    grid = GridConfig(rank=(2, 4), max_iter=(3,), reg_param=(0.1,))
    config = replace(ExperimentConfig(name="t", implicit=ImplicitConfig(enabled=implicit)),
                     tuning=TuningConfig(method=method, grid=grid, num_folds=2, parallelism=2,
                                         metric="ndcg_at_k"))
    result = tune(parts.training, parts.validation, config, blocks=2)
    assert result.metric == "ndcg_at_10" and not result.lower_is_better
    assert result.best_score == max(g.score for g in result.grid)
    assert all(0.0 <= g.score <= 1.0 and g.error is None for g in result.grid), result.grid
    assert result.baseline == "most-popular" and 0.0 < result.baseline_score < 1.0
    if method == "holdout":
        # The score is the one the evaluation's own Spark path gives the kept model: its top-10
        # without training movies, against validation ratings >= 4.
        model = result.best_model
        recs = recommend_for_users(model.userFactors, model.itemFactors, 10, parts.training)
        expected = ranking_metrics(recs, relevant_items(parts.validation, 4.0), 10).ndcg_at_k
        assert result.best_score == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("metric", ["rmse", "ndcg_at_k"])
@pytest.mark.parametrize("method", ["holdout", "cv"])
def test_tuning_scores_the_same_on_the_executors_path(ratings, spark, monkeypatch, method,
                                                       metric):
    """Data too large to collect is scored in Spark (RMSE by a join, ranking metrics judged in
    tasks): the same scores and baseline as the driver's, and no held-out row collected."""
    parts = split_ratings(ratings, (0.6, 0.2, 0.2), 42)
    grid = GridConfig(rank=(2, 4), max_iter=(3,), reg_param=(0.1,))
    config = replace(ExperimentConfig(name="t"),
                     tuning=TuningConfig(method=method, grid=grid, num_folds=2, parallelism=2,
                                         metric=metric))
    results = {}
    try:
        for path in ("driver", "executors"):
            spark.conf.set(PATH_CONF, path)
            if path == "executors":
                def refuse(*_args, **_kwargs):
                    raise AssertionError("held-out rows were collected to the driver")

                monkeypatch.setattr(HeldOutRatings, "collect", refuse)
                monkeypatch.setattr(HeldOut, "collect", refuse)
            results[path] = tune(parts.training, parts.validation, config, blocks=2)
    finally:
        spark.conf.unset(PATH_CONF)
    driver, executors = results["driver"], results["executors"]
    assert executors.best == driver.best
    for a, b in zip(executors.grid, driver.grid, strict=True):
        assert a.error is None and a.score == pytest.approx(b.score, rel=1e-6, abs=1e-12)
    assert executors.baseline_score == pytest.approx(driver.baseline_score, rel=1e-9)
    # Holdout by RMSE keeps its best model with the mean's RMSE on the rows that model scores:
    # what als_model's check compares, the same on both paths and as Spark computes it anew.
    if method == "holdout" and metric == "rmse":
        mu = parts.training.agg(F.avg("rating")).first()[0]
        expected = spark_rmses(driver.best_model, parts.validation, mu)
        for result in (driver, executors):
            # The driver's float32 dot products round apart from Spark's (as the scores above).
            assert result.best_score == pytest.approx(expected[0], rel=1e-6)
            assert result.best_scored_baseline == pytest.approx(expected[1], rel=1e-9)
    else:
        assert driver.best_scored_baseline is None and executors.best_scored_baseline is None


def test_the_rmse_switch_is_by_held_out_rows(spark):
    assert choose_path(spark, DRIVER_MAX_ROWS, 1, DRIVER_MAX_ROWS) == "driver"
    assert choose_path(spark, DRIVER_MAX_ROWS + 1, 1, DRIVER_MAX_ROWS) == "executors"


def test_a_failed_grid_point_is_recorded_and_the_search_goes_on(ratings):
    parts = split_ratings(ratings, (0.6, 0.2, 0.2), 42)
    # rank 0 is refused by Spark itself when the fit starts. The config refuses it first, so
    # the grid is edited past the config's validation to reach Spark's refusal.
    grid = GridConfig(rank=(1, 3), max_iter=(3,), reg_param=(0.1,))
    object.__setattr__(grid, "rank", (0, 3))
    config = replace(ExperimentConfig(name="t"),
                     tuning=TuningConfig(grid=grid, parallelism=2))
    result = tune(parts.training, parts.validation, config, blocks=2)
    assert [g.params.rank for g in result.failed] == [0]
    assert "rank" in result.failed[0].error and math.isnan(result.failed[0].score)
    assert result.best.rank == 3 and math.isfinite(result.best_score)
    assert "failed: " in result.markdown_table()


def test_every_point_failing_fails_the_search_naming_each_error(spark):
    # Ids beyond int32 make every ALS fit fail inside its Spark task.
    rows = [(3_000_000_000 + u, m, float(1 + (u * m) % 5)) for u in range(8) for m in range(6)]
    frame = spark.createDataFrame(rows, "user_id long, movie_id int, rating float")
    config = replace(ExperimentConfig(name="t"), tuning=TuningConfig(
        grid=GridConfig(rank=(2, 3), max_iter=(2,), reg_param=(0.1,))))
    with pytest.raises(AllPointsFailedError) as err:
        tune(frame, frame, config, blocks=1)
    message = str(err.value)
    assert message.startswith("every grid point failed (2 of 2): rank=2 ")
    # Each point's own error, from inside the failed task, names the value that broke it.
    assert "rank=3" in message and message.count("3000000000") == 2, message
