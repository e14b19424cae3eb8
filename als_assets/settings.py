"""Environment variables the project reads, with their defaults (the README lists them all)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_EXPERIMENTS_FILE = PACKAGE_DIR / "experiments.yaml"


def env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def env_int(name: str, default: int) -> int:
    raw = env(name, str(default))
    try:
        return int(raw.replace("_", ""))
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def env_flag(name: str, default: bool = False) -> bool:
    """A yes/no setting: 1/true/yes/on or 0/false/no/off (any case); empty means the default.

    Anything else is an error naming the variable: a typo must not silently mean "no".
    """
    raw = env(name, "").lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{name} must be one of {', '.join(_TRUE + _FALSE)}, got {raw!r}")


def dagster_home() -> Path:
    """DAGSTER_HOME, or `.dagster_home` in the working folder when it is unset."""
    return Path(env("DAGSTER_HOME", str(Path.cwd() / ".dagster_home"))).expanduser()


def experiments_file() -> Path:
    return Path(env("ALS_EXPERIMENTS_FILE", str(DEFAULT_EXPERIMENTS_FILE))).expanduser()


def storage_root() -> str:
    return env("ALS_STORAGE_ROOT", str(dagster_home() / "als_storage"))


def spark_master() -> str:
    return env("SPARK_MASTER", "local[*]")


def class_archive_dir() -> str:
    """ALS_JVM_CLASS_ARCHIVE: folder of the driver JVM's class-data archive; empty (the
    default) or `off`: none. Opt-in, because writing it costs the first run a busy core and a
    large file in that folder."""
    value = env("ALS_JVM_CLASS_ARCHIVE", "")
    return "" if value.lower() in ("off", "0", "false", "no", "none") else value
