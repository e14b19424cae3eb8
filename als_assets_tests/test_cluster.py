"""A real Spark standalone cluster on loopback: master and two workers from pyspark's spark-class.

The experiment runs through the same `dagster asset materialize` command users run, in a
subprocess (this test process already owns a local SparkContext).
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyspark
import pytest

from als_assets.core.jdbc import find_jdbc_driver
from als_assets.core.pg import connect
from als_assets.core.sources import write_movielens_folder
from als_assets.core.spark import (
    SparkMasterUnreachable,
    StorageNotShared,
    check_master_reachable,
    check_shared_storage,
)

HERE = Path(__file__).resolve().parent
SPARK_HOME = Path(pyspark.__file__).resolve().parent
DAGSTER = Path(sys.executable).with_name("dagster")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return json.load(response)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
        time.sleep(1)
    raise TimeoutError(f"{what} not ready after {timeout}s (last error: {last})")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A master and two 1-core workers on 127.0.0.1; all stopped afterwards, also on failure."""
    work = tmp_path_factory.mktemp("cluster")
    port, master_ui = free_port(), free_port()
    worker_uis = [free_port(), free_port()]
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_LOG_DIR": str(work / "logs"), "PYSPARK_PYTHON": sys.executable}
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    procs = []
    try:
        procs.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(port), "--webui-port", str(master_ui)],
            env=env, stdout=open(work / "master.log", "w"), stderr=subprocess.STDOUT,
            start_new_session=True))
        url = f"spark://127.0.0.1:{port}"
        wait_for(lambda: check_master_reachable(url, 1) is None, 60, "master")
        for n, ui in enumerate(worker_uis):
            procs.append(subprocess.Popen(
                [spark_class, "org.apache.spark.deploy.worker.Worker", url, "--host",
                 "127.0.0.1", "--cores", "1", "--memory", "2g", "--webui-port", str(ui),
                 "--work-dir", str(work / f"worker{n}")],
                env=env, stdout=open(work / f"worker{n}.log", "w"), stderr=subprocess.STDOUT,
                start_new_session=True))
        master_json = f"http://127.0.0.1:{master_ui}/json/"
        wait_for(lambda: get_json(master_json)["aliveworkers"] == 2, 90, "workers")
        yield {"url": url, "master_json": master_json,
               "worker_jsons": [f"http://127.0.0.1:{ui}/json/" for ui in worker_uis],
               "work": work}
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def spark_conf_dir(path: Path, events: Path) -> Path:
    """A SPARK_CONF_DIR whose spark-defaults.conf sends the per-user work to the executors
    (this data is small enough for the driver path) and keeps an event log of every task."""
    path.mkdir()
    events.mkdir()
    (path / "spark-defaults.conf").write_text(
        "spark.als.topk.path executors\n"
        "spark.eventLog.enabled true\n"
        f"spark.eventLog.dir {events.as_uri()}\n"
        "spark.eventLog.compress false\n"
        # Tasks go to whichever worker has a free core instead of waiting for shuffle locality.
        "spark.locality.wait 0s\n")
    return path


def python_tasks_by_step(events: Path, app_id: str) -> dict[str, set[str]]:
    """From the application's event log: for each step (the job description the IO manager
    sets, without its partition), the executor ids that ran tasks of its `mapInPandas` stages:
    the per-user and per-movie ranking, not just the reads around it."""
    by_step: dict[str, set[str]] = {}
    step_of_stage: dict[int, str] = {}
    python_stages: set[int] = set()
    # Spark 4 writes an application's log as a folder of rolled files (eventlog_v2_<app>).
    for log in sorted((events / f"eventlog_v2_{app_id}").glob("events_*")):
        for line in log.read_text().splitlines():
            event = json.loads(line)
            kind = event["Event"]
            if kind == "SparkListenerJobStart":
                described = (event.get("Properties") or {}).get("spark.job.description")
                for stage in event["Stage IDs"]:
                    if described:
                        step_of_stage[stage] = described.split(" [")[0]
            elif kind == "SparkListenerStageSubmitted":
                info = event["Stage Info"]
                if any('"MapInPandas"' in (rdd.get("Scope") or "") for rdd in info["RDD Info"]):
                    python_stages.add(info["Stage ID"])
            elif kind == "SparkListenerTaskEnd" and event["Stage ID"] in python_stages:
                step = step_of_stage.get(event["Stage ID"])
                if step:
                    by_step.setdefault(step, set()).add(event["Task Info"]["Executor ID"])
    return by_step


def materialize_cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(DAGSTER), "asset", "materialize", "-m", "als_assets.definitions",
                           *args], env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(not find_jdbc_driver().found, reason="no PostgreSQL JDBC driver")
def test_postgres_experiment_materializes_on_a_standalone_cluster(cluster, pg_settings,
                                                                   tmp_path):
    """The notebook's setting: MovieLens in PostgreSQL, read over JDBC by a standalone cluster
    of two workers, results published back; the same commands as in the README. The
    recommendation, evaluation and similarity tasks run on both workers."""
    folder = write_movielens_folder(tmp_path / "ml", 20_000)
    load = subprocess.run([str(DAGSTER.with_name("als-load-movielens")), str(folder), "--quiet",
                           "--database", pg_settings.database], capture_output=True, text=True,
                          timeout=300)
    assert load.returncode == 0 and "ratings: 20000 rows" in load.stdout, load.stderr

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("")
    events = tmp_path / "events"
    env = {**os.environ, "SPARK_MASTER": cluster["url"], "DAGSTER_HOME": str(home),
           "ALS_STORAGE_ROOT": str(tmp_path / "shared_storage"),
           "ALS_EXPERIMENTS_FILE": str(HERE / "e2e_experiments.yaml"),
           "ALS_SOURCE": "postgres", "ALS_PG_DATABASE": pg_settings.database,
           "ALS_JDBC_PARTITIONS": "2", "SPARK_DRIVER_MEMORY": "1g",
           "SPARK_CONF_DIR": str(spark_conf_dir(tmp_path / "conf", events)),
           "PYSPARK_PYTHON": sys.executable}
    sources = materialize_cli(env, "--select", "ratings,movies")
    assert sources.returncode == 0, sources.stderr[-3000:]
    run = materialize_cli(env, "--select", "tag:scope=experiment or tag:scope=publish",
                          "--partition", "e2e_holdout")
    assert run.returncode == 0, run.stderr[-3000:]
    conn = connect(pg_settings)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM als.item_similarity WHERE experiment = %s "
                        "AND movie_id = 1", ("e2e_holdout",))
            assert cur.fetchone()[0] == 5
            cur.execute("SELECT count(*) FROM als.user_recommendations WHERE experiment = %s "
                        "AND user_id = 42", ("e2e_holdout",))
            assert cur.fetchone()[0] == 10
    finally:
        conn.close()

    master = get_json(cluster["master_json"])
    apps = [a for a in master["completedapps"] + master["activeapps"]
            if a["name"] == "als_assets"]
    assert len(apps) == 2, master  # one application per dagster run
    experiment_app = max(apps, key=lambda a: a["starttime"])["id"]
    # Which worker hosted which executor of the experiment's application, from the workers.
    worker_of: dict[str, int] = {}
    for n, url in enumerate(cluster["worker_jsons"]):
        worker = get_json(url)
        for e in worker["finishedexecutors"] + worker["executors"]:
            if e["appid"] == experiment_app:
                worker_of[str(e["id"])] = n
    assert set(worker_of.values()) == {0, 1}, worker_of
    # The per-user work (lists, their judgement) and the similarity ran on both workers.
    by_step = python_tasks_by_step(events, experiment_app)
    for step in ("user_recommendations", "evaluation", "item_similarity"):
        assert {worker_of[e] for e in by_step.get(step, ()) if e in worker_of} == {0, 1}, \
            (step, by_step)
    # The model was written by executors into the shared storage root.
    assert list((tmp_path / "shared_storage" / "als_model" / "e2e_holdout").glob("v*/model"))


def test_unreachable_master_fails_fast_and_clearly():
    start = time.monotonic()
    with pytest.raises(SparkMasterUnreachable, match="spark://127.0.0.1:1 is unreachable"):
        check_master_reachable("spark://127.0.0.1:1", timeout=3)
    assert time.monotonic() - start < 10


def test_remote_master_refuses_driver_only_storage():
    with pytest.raises(StorageNotShared, match="ALS_STORAGE_ROOT"):
        check_shared_storage("spark://10.0.0.5:7077", "/home/me/.dagster_home/als_storage",
                             explicit=False)
    check_shared_storage("spark://10.0.0.5:7077", "/mnt/shared", explicit=True)
    check_shared_storage("local[2]", "/home/me/.dagster_home/als_storage", explicit=False)
