"""The project's settings: one set of defaults, by the environment variable that overrides each.

The resources (`resources.py`) take their field defaults from `DEFAULTS`, `definitions.py` hands
them the variables a user sets as Dagster `EnvVar`s, and the command-line tools (loader,
cleanup, benchmarks) read the same variables through the functions below. Nothing here reads
the environment when it is imported; the README lists every variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .core import pg

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_EXPERIMENTS_FILE = PACKAGE_DIR / "experiments.yaml"

DEFAULTS: dict[str, Any] = {
    # Spark (resources.SparkResource)
    "SPARK_MASTER": "local[*]",
    "SPARK_DRIVER_MEMORY": "4g",
    "ALS_STORAGE_ROOT": "",  # empty: $DAGSTER_HOME/als_storage, see storage_root()
    "ALS_SPARK_DRIVER_HOST": "",
    "ALS_JVM_CLASS_ARCHIVE": "",  # empty: no class-data archive (opt-in)
    "ALS_JDBC_JAR": "",  # both empty: Debian's jar if installed (core/jdbc.py)
    "ALS_JDBC_PACKAGE": "",
    # The ratings source (resources.RatingsSource)
    "ALS_SOURCE": "synthetic",
    "ALS_SYNTHETIC_RATINGS": 100_000,
    "ALS_MOVIELENS_DIR": "",
    "ALS_PG_RATINGS_TABLE": "movielens.ratings",
    "ALS_PG_MOVIES_TABLE": "movielens.movies",
    "ALS_JDBC_PARTITIONS": 4,
    "ALS_KEEP_EMPTY_TIMESTAMPS": False,
    "ALS_KEEP_UNKNOWN_MOVIES": False,
    # PostgreSQL (resources.PostgresResource; core/pg.py owns the connection defaults)
    "ALS_PG_HOST": pg.DEFAULT_HOST,
    "ALS_PG_PORT": pg.DEFAULT_PORT,
    "ALS_PG_DATABASE": pg.DEFAULT_DATABASE,
    "ALS_PG_USER": pg.DEFAULT_USER,
    "ALS_PG_PASSWORD": "",
    "ALS_PG_CONNECT_TIMEOUT": pg.DEFAULT_CONNECT_TIMEOUT,
    "ALS_PG_PUBLISH_SCHEMA": "als",
}


def env(name: str, default: str | None = None,
        environ: Mapping[str, str] | None = None) -> str:
    """The variable's value, else `default`, else its entry in DEFAULTS (as text)."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    if value:
        return value
    return default if default is not None else str(DEFAULTS.get(name, ""))


def env_int(name: str, default: int | None = None,
            environ: Mapping[str, str] | None = None) -> int:
    raw = env(name, None if default is None else str(default), environ)
    try:
        return int(raw.replace("_", ""))
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_flag(name: str, raw: str, default: bool = False) -> bool:
    """A yes/no setting: 1/true/yes/on or 0/false/no/off (any case); empty means the default.

    Anything else is an error naming the variable: a typo must not silently mean "no".
    """
    raw = raw.strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{name} must be one of {', '.join(_TRUE + _FALSE)}, got {raw!r}")


def env_flag(name: str, default: bool | None = None,
             environ: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get(name, "")
    return parse_flag(name, value, bool(DEFAULTS.get(name, False)) if default is None else default)


def dagster_home() -> Path:
    """DAGSTER_HOME, or `.dagster_home` in the working folder when it is unset."""
    return Path(env("DAGSTER_HOME", str(Path.cwd() / ".dagster_home"))).expanduser()


def experiments_file() -> Path:
    """ALS_EXPERIMENTS_FILE. Read when the code location loads, not at run time: the
    experiments are the partitions, part of the graph's definition."""
    return Path(env("ALS_EXPERIMENTS_FILE", str(DEFAULT_EXPERIMENTS_FILE))).expanduser()


def storage_root(configured: str = "") -> str:
    """The storage root: `configured` (a resource's field) or ALS_STORAGE_ROOT, else
    $DAGSTER_HOME/als_storage."""
    return configured or env("ALS_STORAGE_ROOT", str(dagster_home() / "als_storage"))


def class_archive_dir(configured: str | None = None) -> str:
    """The class-data archive's folder: `configured` (a resource's field) or, when None,
    ALS_JVM_CLASS_ARCHIVE; empty (the default) or `off`: none. Opt-in, because writing it
    costs the first run a busy core and a large file in that folder."""
    value = env("ALS_JVM_CLASS_ARCHIVE") if configured is None else configured.strip()
    return "" if value.lower() in ("off", "0", "false", "no", "none") else value
