"""Versioned, atomically switched storage for asset values (no Dagster imports).

Layout under the root: <asset>/<partition>/<version>/ holds one value, and
<asset>/<partition>/CURRENT names the version readers get. A value is written into a new version
folder first and CURRENT is switched with an atomic rename only once the write succeeded, so a
failed write leaves the previous version current and readable, and a reader never sees a half
written folder. The previous version is kept too (a run that started reading it can finish);
older ones are removed.

A process killed with SIGKILL runs no `except` and no `finally`: its version folder stays, half
written (Spark leaves `_temporary` folders in it). So a version is complete only once its
`manifest.json` exists, and the manifest is written last; while the write runs, a `.writer.json`
mark names the writing process (core/liveness.py). Pruning keeps the current version and the
newest other complete one, never counting incomplete folders; incomplete folders whose writer is
gone are removed by the next write to the slot and by `python -m als_assets.cleanup`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import serialization
from .liveness import STALE_AFTER, WriterMark

KEEP_VERSIONS = 2
UNPARTITIONED = "__all__"
# File or folder name of a stored value of each Spark kind, inside its version folder.
STORED_NAMES = {"dataframe": "data.parquet", "als_model": "model"}
MANIFEST = "manifest.json"
JSON_NAME = "value.json"
WRITER = ".writer.json"
# A version folder's name: v<UTC second>.<nanoseconds>-<tag>-<hex>; nothing else is touched.
VERSION_NAME = re.compile(r"v\d{8}T\d{6}\.\d{9}-[^/]+")
# Scratch folders for files that versions link to (`VersionedStore.staging`); the leading
# underscore keeps them out of `slots()`.
STAGING = "_staging"
# A folder with neither manifest nor writer mark younger than this may be one a writer has just
# created (its mark follows at once); older, it is the leftover of a killed write.
UNMARKED_GRACE = 60.0


class StorageError(RuntimeError):
    """A stored value is missing or unreadable; the message names the asset and path."""


@dataclass(frozen=True)
class StoredValue:
    kind: str  # "dataframe" | "als_model" | "json" ("pickle": an earlier release's, not read)
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

    def __init__(self, root: str | os.PathLike, stale_after: float = STALE_AFTER):
        self.root = Path(root).expanduser().absolute()
        self.stale_after = stale_after

    def slot(self, asset: tuple[str, ...], partition: str | None) -> Path:
        return self.root.joinpath(*asset, partition or UNPARTITIONED)

    def current(self, asset: tuple[str, ...], partition: str | None) -> StoredValue | None:
        slot = self.slot(asset, partition)
        try:
            version = (slot / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        try:
            manifest = json.loads((slot / version / MANIFEST).read_text())
        except (FileNotFoundError, json.JSONDecodeError) as exc:
            raise StorageError(
                f"{_label(asset, partition)}: CURRENT names version {version}, which has no "
                f"readable {MANIFEST} under {slot} ({exc.__class__.__name__}); it was changed "
                "outside als_assets: materialize the asset again") from None
        return StoredValue(manifest["kind"], str(slot / version / manifest["name"]), version)

    def write(self, asset: tuple[str, ...], partition: str | None, value: Any,
              tag: str = "") -> StoredValue:
        """Write a value as a new version and make it current only if the write succeeds."""
        slot = self.slot(asset, partition)
        slot.mkdir(parents=True, exist_ok=True)
        # What a killed earlier write left here goes first, whether or not this one succeeds.
        self.clean_slot(slot)
        now = time.time_ns()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now / 1e9))
        # Names sort by creation time (nanoseconds), which is what pruning relies on.
        version = f"v{stamp}.{now % 10**9:09d}-{tag[:8] or 'local'}-{uuid.uuid4().hex[:6]}"
        folder = slot / version
        folder.mkdir()
        try:
            (folder / WRITER).write_text(json.dumps(WriterMark.of_this_process().to_dict()))
            kind, name = self._write_value(folder, value)
            _write_atomically(folder / MANIFEST, json.dumps(
                {"kind": kind, "name": name, "created": stamp, "tag": tag}))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        _write_atomically(slot / "CURRENT", version)
        (folder / WRITER).unlink()
        self._prune(slot, keep=version)
        return StoredValue(kind, str(folder / name), version)

    def _write_value(self, folder: Path, value: Any) -> tuple[str, str]:
        """Writes the value into its version folder; returns its kind and file name."""
        if isinstance(value, StoredCopy):
            # Under the name a value of its kind is written with, so a copy looks like one.
            name = STORED_NAMES.get(value.kind, Path(value.path).name)
            if Path(value.path).is_dir():
                shutil.copytree(value.path, folder / name, copy_function=_link_or_copy)
            else:
                _link_or_copy(value.path, str(folder / name))
            return value.kind, name
        if _is_dataframe(value):
            value.write.mode("error").parquet(str(folder / STORED_NAMES["dataframe"]))
            return "dataframe", STORED_NAMES["dataframe"]
        if _is_als_model(value):
            value.save(str(folder / STORED_NAMES["als_model"]))
            return "als_model", STORED_NAMES["als_model"]
        # A value holding Spark objects saves them beside its JSON and keeps their paths.
        if hasattr(value, "prepare_for_storage"):
            value = value.prepare_for_storage(folder)
        serialization.dump(value, folder / JSON_NAME)
        return "json", JSON_NAME

    # -- crash leftovers ------------------------------------------------------------------------

    def _state(self, folder: Path) -> str:
        """'complete', 'writing' (a live writer is at it) or 'abandoned' (its writer is gone)."""
        try:
            mark = WriterMark.from_dict(json.loads((folder / WRITER).read_text()))
        except FileNotFoundError:
            mark = None
        except (ValueError, KeyError, TypeError):  # killed while writing the mark itself
            mark = None
        if mark is not None:
            return "abandoned" if mark.is_gone(self.stale_after) else "writing"
        if (folder / MANIFEST).is_file():
            return "complete"
        try:
            age = time.time() - folder.stat().st_mtime
        except FileNotFoundError:
            return "abandoned"
        return "abandoned" if age > UNMARKED_GRACE else "writing"

    def clean_slot(self, slot: Path, dry_run: bool = False) -> list[Path]:
        """Removes what killed writes left in a slot: version folders whose writer is gone
        (with Spark's `_temporary` folders in them) and temporary CURRENT files. The current
        version is never removed. Returns what was (or, with dry_run, would be) removed."""
        current = _read_current(slot)
        removed = []
        for path in _children(slot):
            if path.is_dir() and VERSION_NAME.fullmatch(path.name):
                if self._state(path) != "abandoned":
                    continue
                if path.name == current:
                    # Killed between switching CURRENT and dropping its mark: complete.
                    if not dry_run:
                        (path / WRITER).unlink(missing_ok=True)
                    continue
                removed.append(path)
                if not dry_run:
                    shutil.rmtree(path, ignore_errors=True)
            elif (path.is_file() and path.name.startswith(".CURRENT.")
                  and time.time() - path.stat().st_mtime > UNMARKED_GRACE):
                removed.append(path)
                if not dry_run:
                    path.unlink(missing_ok=True)
        return removed

    def _prune(self, slot: Path, keep: str) -> None:
        """Keeps `keep` and the newest other complete version; removes older complete ones.
        Folders still being written are not versions yet and count for nothing."""
        complete = sorted(p for p in _children(slot)
                          if p.is_dir() and VERSION_NAME.fullmatch(p.name) and p.name != keep
                          and self._state(p) == "complete")
        for path in complete[: max(0, len(complete) - (KEEP_VERSIONS - 1))]:
            shutil.rmtree(path, ignore_errors=True)

    def slots(self) -> list[Path]:
        """Every slot under the root: folders holding CURRENT or version folders."""
        found = set()
        for dirpath, dirnames, filenames in os.walk(self.root):
            here = Path(dirpath)
            if here == self.root:
                dirnames[:] = [d for d in dirnames if not d.startswith("_")]
            versions = [d for d in dirnames if VERSION_NAME.fullmatch(d)]
            if versions or "CURRENT" in filenames:
                found.add(here)
                # A version's own folders hold no slots.
                dirnames[:] = [d for d in dirnames if d not in versions]
        return sorted(found)

    def cleanup(self, dry_run: bool = False) -> list[Path]:
        """`clean_slot` over every slot under the root, and abandoned staging folders."""
        return [path for slot in self.slots() for path in self.clean_slot(slot, dry_run)] \
            + self.clean_staging(dry_run)

    def clean_staging(self, dry_run: bool = False) -> list[Path]:
        """Removes the staging folders whose writer is gone (killed before its block ended)."""
        removed = [p for p in _children(self.root / STAGING)
                   if p.is_dir() and self._state(p) == "abandoned"]
        if not dry_run:
            for path in removed:
                shutil.rmtree(path, ignore_errors=True)
        return removed

    @contextmanager
    def staging(self, name: str) -> Iterator[Path]:
        """A path under the root (not yet created) for files that new versions then store by
        `StoredCopy`: on the same filesystem, so they are linked, not copied. Its folder is
        removed when the block ends, the versions keep their links; one that a killed process
        left is removed by the next staging block or `cleanup`."""
        self.clean_staging()
        folder = self.root / STAGING / f"{name}-{uuid.uuid4().hex[:12]}"
        folder.mkdir(parents=True)
        try:
            (folder / WRITER).write_text(json.dumps(WriterMark.of_this_process().to_dict()))
            yield folder / "files"
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def read(self, asset: tuple[str, ...], partition: str | None,
             get_spark: Callable[[], Any] | None = None) -> Any:
        """The current value; `get_spark` is called only for Spark values."""
        stored = self.current(asset, partition)
        name = _label(asset, partition)
        if stored is None:
            raise StorageError(
                f"{name} has not been materialized yet: nothing stored under "
                f"{self.slot(asset, partition)}")
        if stored.kind == "json":
            try:
                return serialization.load(Path(stored.path))
            except serialization.SerializationError as exc:
                raise StorageError(f"{name}, version {stored.version}: {exc}") from None
        if stored.kind == "pickle":
            raise StorageError(
                f"{name} is stored as a pickle (version {stored.version}, written by an earlier "
                "release of als_assets), which is no longer read: loading a pickle can run any "
                f"code that was written into it. Materialize {name} again")
        if get_spark is None:
            raise StorageError(f"{name} is a Spark value: reading it needs a SparkSession")
        spark = get_spark()
        if stored.kind == "dataframe":
            return spark.read.parquet(stored.path)
        from pyspark.ml.recommendation import ALSModel

        return ALSModel.load(stored.path)


def _label(asset: tuple[str, ...], partition: str | None) -> str:
    return "/".join(asset) + (f" [{partition}]" if partition else "")


def _children(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except FileNotFoundError:
        return []


def _read_current(slot: Path) -> str | None:
    try:
        return (slot / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None


def _write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the whole new one: written beside it, then renamed."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(text)
    os.replace(tmp, path)
