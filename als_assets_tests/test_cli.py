"""The commands a user types: `dagster asset materialize` and `dg launch`, in subprocesses on a
throwaway Dagster home, printing no warning the user cannot act on.

The slow tests share one home: the observation and one command materializing the sources and
an experiment together, then `dagster dev`'s daemon picking up a changed ratings file.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DagsterRunStatus, RunsFilter

from als_assets.core.sources import write_movielens_folder

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
# Warnings about the project's own use of Dagster's APIs, which the user can do nothing about.
NOISE = re.compile(r"(BetaWarning|PreviewWarning|SupersessionWarning)")
# Dagster's CLI says `dagster asset materialize` is superseded by `dg launch` before it loads
# any project code: the README shows both, and CI keeps the first.
CLI_NOTICE = "SupersessionWarning: Function `asset_materialize_command` is superseded"
EXPERIMENTS = """\
champion: {metric: ndcg_at_k, k: 10, min_lift: -0.99}
experiments:
  auto_implicit:
    automate: true
    implicit: {enabled: true, alpha: 10, threshold: 3.5}
    tuning: {method: holdout, grid: {rank: [4], max_iter: [3], reg_param: [0.1]}}
    similarity: {top_n: 3, min_ratings: 2}
  by_hand:
    tuning: {method: holdout, grid: {rank: [4], max_iter: [3], reg_param: [0.1]}}
"""
CHAIN = ("training", "validation", "test", "tuned_params", "als_model", "user_factors",
         "item_factors", "item_similarity", "user_recommendations", "evaluation",
         "cold_start_report", "sample_user_report")
HELD_BACK = 150  # ratings lines appended later: the new ratings
BUSY = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED]


def environment(home: Path, **extra: str) -> dict[str, str]:
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (home / "experiments.yaml").write_text(EXPERIMENTS)
    return {**os.environ, "DAGSTER_HOME": str(home / "dagster"),
            "ALS_STORAGE_ROOT": str(home / "storage"),
            "ALS_EXPERIMENTS_FILE": str(home / "experiments.yaml"),
            "ALS_SOURCE": "movielens", "ALS_MOVIELENS_DIR": str(home / "movielens"),
            "SPARK_MASTER": "local[2]", "SPARK_DRIVER_MEMORY": "1g", **extra}


def run(args: list[str], env: dict[str, str], timeout: int = 900) -> str:
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output


def warnings_in(output: str) -> list[str]:
    return [line for line in output.splitlines()
            if NOISE.search(line) and CLI_NOTICE not in line]


def latest(instance: DagsterInstance, asset: str, partition: str | None = None):
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset),
                           asset_partitions=[partition] if partition else None), limit=1).records
    return records[0] if records else None


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """Small MovieLens-layout files, the last ratings held back for later."""
    home = tmp_path_factory.mktemp("cli")
    folder = write_movielens_folder(home / "movielens", n_ratings=3000)
    lines = (folder / "ratings.csv").read_text().splitlines(keepends=True)
    (folder / "ratings.csv").write_text("".join(lines[:-HELD_BACK]))
    (home / "held_back.csv").write_text("".join(lines[-HELD_BACK:]))
    return home


def test_loading_and_launching_print_no_warning(tmp_path):
    """No Spark: the leaderboard reads the (empty) instance. Loading the code location is
    where most warnings came from, so both commands load it."""
    env = environment(tmp_path)
    out = run([str(BIN / "dagster"), "asset", "materialize", "-m", "als_assets.definitions",
               "--select", "experiment_leaderboard"], env)
    assert "RUN_SUCCESS" in out and warnings_in(out) == [], warnings_in(out)
    out = run([str(BIN / "dg"), "launch", "--assets", "experiment_leaderboard"], env)
    assert "RUN_SUCCESS" in out and not NOISE.search(out), out[-3000:]


@pytest.fixture(scope="module")
def materialized(home) -> Path:
    """The input observed (dg launch --job), then sources and an experiment in one command."""
    env = environment(home)
    run([str(BIN / "dg"), "launch", "--job", "observe_ratings_input"], env)
    out = run([str(BIN / "dagster"), "asset", "materialize", "-m", "als_assets.definitions",
               "--select", "ratings,movies,tag:scope=experiment", "--partition",
               "auto_implicit"], env)
    (home / "materialize.log").write_text(out)
    return home


@pytest.mark.slow
def test_sources_and_an_experiment_in_one_command(materialized):
    out = (materialized / "materialize.log").read_text()
    assert warnings_in(out) == [], warnings_in(out)
    with DagsterInstance.from_config(str(materialized / "dagster")) as instance:
        assert latest(instance, "ratings") is not None
        for name in CHAIN:
            assert latest(instance, name, "auto_implicit") is not None, name
        assert latest(instance, "training", "by_hand") is None


@pytest.mark.slow
def test_daemon_reruns_sources_and_opted_in_experiment_on_new_ratings(materialized):
    """`dagster dev` with automation on: appended ratings are observed, the sources and the
    experiment that opts in run again, then the leaderboard; the other experiment does not."""
    env = environment(materialized, ALS_AUTOMATION="1", ALS_AUTOMATION_INTERVAL="5")
    home = str(materialized / "dagster")
    with DagsterInstance.from_config(home) as instance:
        before = {name: latest(instance, name).storage_id for name in ("ratings",)}
        before["evaluation"] = latest(instance, "evaluation", "auto_implicit").storage_id
    port = 3400 + os.getpid() % 500
    log = open(materialized / "dagster_dev.log", "w")
    dev = subprocess.Popen([str(BIN / "dagster"), "dev", "-m", "als_assets.definitions", "-h",
                            "127.0.0.1", "-p", str(port)], env=env, cwd=ROOT, stdout=log,
                           stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # New ratings: the observation sensor sees the file change.
        with open(materialized / "movielens" / "ratings.csv", "a") as fh:
            fh.write((materialized / "held_back.csv").read_text())
        deadline = time.monotonic() + 900
        with DagsterInstance.from_config(home) as instance:
            while time.monotonic() < deadline:
                assert dev.poll() is None, (materialized / "dagster_dev.log").read_text()[-3000:]
                board = latest(instance, "experiment_leaderboard")
                evaluation = latest(instance, "evaluation", "auto_implicit")
                if (board is not None and evaluation.storage_id > before["evaluation"]
                        and not instance.get_runs_count(RunsFilter(statuses=BUSY))):
                    break
                time.sleep(5)
            else:
                pytest.fail("no re-run after the ratings changed: "
                            + (materialized / "dagster_dev.log").read_text()[-3000:])
            ratings = latest(instance, "ratings")
            assert ratings.storage_id > before["ratings"]
            assert ratings.asset_materialization.metadata["rows"].value == 3000
            assert board.storage_id > evaluation.storage_id, "the leaderboard followed"
            assert latest(instance, "training", "by_hand") is None, "did not opt in"
            assert latest(instance, "champion") is not None, "chosen with the leaderboard"
            runs = instance.get_runs()
            assert {r.job_name for r in runs} >= {"observe_ratings_input", "__ASSET_JOB"}
            assert all(r.status == DagsterRunStatus.SUCCESS for r in runs), \
                [(r.job_name, r.status) for r in runs]
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
        log.close()
