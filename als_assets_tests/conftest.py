"""Shared pytest fixtures for als_assets tests.

Kept generic on purpose: one local Spark session for the whole test session. End-to-end
fixtures (Dagster instances, materializations) can be added below.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import replace

# Before anything imports als_assets.definitions (or starts a JVM): bind Spark to loopback so the
# tests do not depend on the machine's hostname resolving.
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

# The experiments are the partitions, part of the graph's definition: the code location reads
# their file when it loads, so the tests' small experiments are named before anything imports
# it. Every other setting is given to the resources explicitly (als_assets_tests/project.py).
_HERE = os.path.dirname(os.path.abspath(__file__))
os.environ["ALS_EXPERIMENTS_FILE"] = os.path.join(_HERE, "e2e_experiments.yaml")

import pytest  # noqa: E402
from psycopg2 import sql  # noqa: E402

from als_assets.core.pg import PgConnectionError, PgSettings, connect  # noqa: E402


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """A `local[2]` SparkSession built the way the package builds it, stopped at session end."""
    from als_assets.core.spark import SparkSettings, build_spark_session

    checkpoint_dir = tmp_path_factory.mktemp("spark-checkpoints")
    from als_assets.core.jdbc import find_jdbc_driver
    from als_assets.settings import class_archive_dir

    driver = find_jdbc_driver()
    session = build_spark_session(
        SparkSettings(master="local[2]", driver_memory="2g", checkpoint_dir=str(checkpoint_dir),
                      jars=(driver.jar,) if driver.jar else (),
                      class_archive_dir=class_archive_dir() or None)
    )
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="module")
def pg_settings() -> Iterator[PgSettings]:
    """A uniquely named, empty database for this module; always dropped afterwards."""
    base = PgSettings.from_env()
    admin = replace(base, database="postgres", connect_timeout=5)
    try:
        conn = connect(admin)
    except PgConnectionError as exc:
        if os.environ.get("ALS_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"PostgreSQL is not available: {exc}")
    name = f"als_test_{secrets.token_hex(6)}"
    conn.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield replace(base, database=name)
    finally:
        conn.close()
        # A fresh connection: the first one may have died during the tests.
        conn = connect(admin)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        finally:
            conn.close()
