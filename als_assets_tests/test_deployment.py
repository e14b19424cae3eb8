"""The docker-compose deployment, without a Docker engine: the compose file's structure, and the
containers' entry points run natively (the Dagster instance on PostgreSQL, the code server)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest
import yaml
from dagster._grpc.client import DagsterGrpcClient
from dagster._grpc.types import ListRepositoriesResponse
from dagster_shared.serdes import deserialize_value
from psycopg2 import sql

from als_assets.core.pg import PgSettings, connect

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
BIN = Path(sys.executable).parent
STORAGE = "/opt/als/storage"


def env_of(service: str) -> dict:
    env = SERVICES[service].get("environment", {})
    return dict(env)


def test_every_service_is_there_and_commented():
    expected = {"postgres", "movielens-loader", "spark-master", "spark-worker", "user-code",
                "webserver", "daemon"}
    assert expected <= set(SERVICES)
    text = (ROOT / "docker-compose.yml").read_text().splitlines()
    for name in SERVICES:
        line = text.index(f"  {name}:")
        assert text[line - 1].strip().startswith("#"), f"service {name} has no comment"


def test_long_running_services_have_health_checks_and_ordering():
    for name in ("postgres", "spark-master", "spark-worker", "user-code", "webserver",
                 "daemon"):
        assert "healthcheck" in SERVICES[name], name
    assert SERVICES["movielens-loader"]["restart"] == "no"
    assert SERVICES["movielens-loader"]["depends_on"]["postgres"]["condition"] == \
        "service_healthy"
    assert SERVICES["webserver"]["depends_on"]["user-code"]["condition"] == "service_healthy"
    assert SERVICES["webserver"]["ports"] == ["3000:3000"]
    assert "7077:7077" in SERVICES["spark-master"]["ports"]


def test_drivers_and_executors_share_the_storage_volume():
    for name in ("spark-worker", "user-code"):
        assert f"als-storage:{STORAGE}" in SERVICES[name]["volumes"], name
        assert env_of(name)["ALS_STORAGE_ROOT"] == STORAGE
    assert "als-storage" in COMPOSE["volumes"]
    assert env_of("user-code")["ALS_SPARK_DRIVER_HOST"] == "user-code"


def test_environment_matches_the_code():
    code = "\n".join(p.read_text() for p in (ROOT / "als_assets").rglob("*.py"))
    env = env_of("user-code")
    for name in env:
        if name.startswith(("ALS_", "SPARK_")):
            assert f'"{name}"' in code, f"compose sets {name}, which the code never reads"
    assert env["ALS_SOURCE"] == "postgres"
    assert env["ALS_PG_HOST"] == "postgres" and env["DAGSTER_PG_HOST"] == "postgres"
    assert env["SPARK_MASTER"] == "spark://spark-master:7077"
    pg_env = SERVICES["postgres"]["environment"]
    assert pg_env["POSTGRES_USER"] == env["ALS_PG_USER"] == env["DAGSTER_PG_USER"]
    assert pg_env["POSTGRES_DB"] == env["ALS_PG_DATABASE"]
    # No literal secret: the password comes from the caller's environment (with a dev default).
    assert env["ALS_PG_PASSWORD"].startswith("${ALS_PG_PASSWORD")
    instance = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    pg = instance["storage"]["postgres"]["postgres_db"]
    for key in ("hostname", "port", "db_name", "username", "password"):
        assert pg[key]["env"] in env, key
    assert "CREATE DATABASE dagster" in (ROOT / "deploy/initdb/01-dagster.sql").read_text()
    assert env["DAGSTER_PG_DB"] == "dagster"


def test_image_installs_what_the_services_run():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("openjdk-17-jre-headless", "libpostgresql-jdbc-java",
                    "libopenblas0-pthread", "dagster-postgres"):
        assert package in dockerfile
    commands = {name: s.get("command", []) for name, s in SERVICES.items()}
    assert commands["movielens-loader"][0] == "als-load-movielens"
    assert commands["user-code"][:3] == ["dagster", "api", "grpc"]
    for name in ("movielens-loader", "user-code", "webserver", "daemon"):
        assert (BIN / commands[name][0]).exists(), f"{commands[name][0]} is not installed"
    assert (BIN / "spark-class").exists()


@pytest.fixture
def dagster_db(pg_settings: PgSettings):
    """A fresh database for Dagster's own storage, inside the test's PostgreSQL."""
    name = f"{pg_settings.database}_dagster"
    conn = connect(pg_settings)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conn.close()
    yield name
    conn = connect(pg_settings)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,))
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    conn.close()


@pytest.mark.integration
def test_dagster_instance_on_postgres(dagster_db, pg_settings, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_PG_HOST": pg_settings.host,
           "DAGSTER_PG_PORT": str(pg_settings.port), "DAGSTER_PG_DB": dagster_db,
           "DAGSTER_PG_USER": pg_settings.user, "DAGSTER_PG_PASSWORD": "unused-with-trust",
           "ALS_STORAGE_ROOT": str(tmp_path / "storage")}
    run = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "als_assets.definitions",
         "--select", "ratings,movies"], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    conn = psycopg2.connect(host=pg_settings.host, port=pg_settings.port, dbname=dagster_db,
                            user=pg_settings.user)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status FROM runs")
            assert [r[0] for r in cur.fetchall()] == ["SUCCESS"]
            cur.execute("SELECT count(*) FROM event_logs WHERE asset_key LIKE %s",
                        ('%"movies"%',))
            assert cur.fetchone()[0] >= 1
    finally:
        conn.close()


@pytest.mark.integration
def test_user_code_server_answers_health_checks(tmp_path):
    port = 4000 + os.getpid() % 1000
    env = {**os.environ, "ALS_STORAGE_ROOT": str(tmp_path / "storage")}
    server = subprocess.Popen(
        [str(BIN / "dagster"), "api", "grpc", "-m", "als_assets.definitions", "-h", "127.0.0.1",
         "-p", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            check = subprocess.run([str(BIN / "dagster"), "api", "grpc-health-check", "-p",
                                    str(port)], capture_output=True, text=True)
            if check.returncode == 0:
                break
            assert server.poll() is None, server.stdout.read()
            time.sleep(2)
        else:
            pytest.fail("the code server never answered its health check")
        assert "gRPC connection successful" in check.stdout, check.stdout + check.stderr
        # Healthy is not enough: the server must serve this project's definitions, loaded
        # without error (an error would come back instead of the listing).
        listed = deserialize_value(
            DagsterGrpcClient(port=port, host="127.0.0.1").list_repositories())
        assert isinstance(listed, ListRepositoriesResponse), listed
        pointers = listed.repository_code_pointer_dict
        assert [getattr(p, "module", None) for p in pointers.values()] == \
            ["als_assets.definitions"], pointers
    finally:
        server.terminate()
        server.wait(timeout=30)
