"""Versioned, atomically switched storage for asset values (no Dagster imports).

Layout under the root: <asset>/<partition>/<version>/ holds one value, and
<asset>/<partition>/CURRENT names the version readers get. A value is written into a new version
folder first and CURRENT is switched with an atomic rename only once the write succeeded, so a
failed write leaves the previous version current and readable, and a reader never sees a half
written folder. The previous version is kept too (a run that started reading it can finish);
older ones are removed.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEEP_VERSIONS = 2
UNPARTITIONED = "__all__"
# File or folder name of a stored value of each Spark kind, inside its version folder.
STORED_NAMES = {"dataframe": "data.parquet", "als_model": "model"}


class StorageError(RuntimeError):
    """A stored value is missing or unreadable; the message names the asset and path."""


@dataclass(frozen=True)
class StoredValue:
    kind: str  # "dataframe" | "als_model" | "pickle"
    path: str  # folder or file holding the value
    version: str


@dataclass(frozen=True)
class StoredCopy:
    """A value already stored under the root (`StoredValue.path`), to store again under another
    asset partition by linking its files instead of serializing it anew. Stored files never
    change once written, so a hard link is as good as a copy; where the filesystem cannot link,
    the files are copied."""

    kind: str
    path: str


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _is_dataframe(value: Any) -> bool:
    try:
        from pyspark.sql import DataFrame
    except ImportError:  # pragma: no cover
        return False
    return isinstance(value, DataFrame)


def _is_als_model(value: Any) -> bool:
    try:
        from pyspark.ml.recommendation import ALSModel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(value, ALSModel)


class VersionedStore:
    """Reads and writes values under a local or shared-filesystem root."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().absolute()

    def slot(self, asset: tuple[str, ...], partition: str | None) -> Path:
        return self.root.joinpath(*asset, partition or UNPARTITIONED)

    def current(self, asset: tuple[str, ...], partition: str | None) -> StoredValue | None:
        slot = self.slot(asset, partition)
        try:
            version = (slot / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        manifest = json.loads((slot / version / "manifest.json").read_text())
        return StoredValue(manifest["kind"], str(slot / version / manifest["name"]), version)

    def write(self, asset: tuple[str, ...], partition: str | None, value: Any,
              tag: str = "") -> StoredValue:
        """Write a value as a new version and make it current only if the write succeeds."""
        slot = self.slot(asset, partition)
        slot.mkdir(parents=True, exist_ok=True)
        now = time.time_ns()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now / 1e9))
        # Names sort by creation time (nanoseconds), which is what pruning relies on.
        version = f"v{stamp}.{now % 10**9:09d}-{tag[:8] or 'local'}-{uuid.uuid4().hex[:6]}"
        folder = slot / version
        folder.mkdir()
        try:
            if isinstance(value, StoredCopy):
                # Under the name a value of its kind is written with, so a copy looks like one.
                kind = value.kind
                name = STORED_NAMES.get(kind, Path(value.path).name)
                if Path(value.path).is_dir():
                    shutil.copytree(value.path, folder / name, copy_function=_link_or_copy)
                else:
                    _link_or_copy(value.path, str(folder / name))
            elif _is_dataframe(value):
                kind = "dataframe"
                name = STORED_NAMES[kind]
                value.write.mode("error").parquet(str(folder / name))
            elif _is_als_model(value):
                kind = "als_model"
                name = STORED_NAMES[kind]
                value.save(str(folder / name))
            else:
                kind, name = "pickle", "value.pkl"
                # A value holding Spark objects saves them beside the pickle and pickles paths.
                if hasattr(value, "prepare_for_storage"):
                    value = value.prepare_for_storage(folder)
                with open(folder / name, "wb") as fh:
                    pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
            (folder / "manifest.json").write_text(
                json.dumps({"kind": kind, "name": name, "created": stamp, "tag": tag}))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        tmp = slot / f".CURRENT.{uuid.uuid4().hex}"
        tmp.write_text(version)
        os.replace(tmp, slot / "CURRENT")
        self._prune(slot, keep=version)
        return StoredValue(kind, str(folder / name), version)

    def _prune(self, slot: Path, keep: str) -> None:
        versions = sorted(p for p in slot.iterdir() if p.is_dir() and p.name.startswith("v"))
        old = [p for p in versions if p.name != keep][: max(0, len(versions) - KEEP_VERSIONS)]
        for path in old:
            shutil.rmtree(path, ignore_errors=True)

    def read(self, asset: tuple[str, ...], partition: str | None,
             get_spark: Callable[[], Any] | None = None) -> Any:
        """The current value; `get_spark` is called only for Spark values."""
        stored = self.current(asset, partition)
        name = "/".join(asset) + (f" [{partition}]" if partition else "")
        if stored is None:
            raise StorageError(
                f"{name} has not been materialized yet: nothing stored under "
                f"{self.slot(asset, partition)}")
        if stored.kind == "pickle":
            with open(stored.path, "rb") as fh:
                return pickle.load(fh)
        if get_spark is None:
            raise StorageError(f"{name} is a Spark value: reading it needs a SparkSession")
        spark = get_spark()
        if stored.kind == "dataframe":
            return spark.read.parquet(stored.path)
        from pyspark.ml.recommendation import ALSModel

        return ALSModel.load(stored.path)
