"""A class-data archive for Spark's driver JVM (Java's AppCDS), made once, used by every later run.

Opt-in (a folder in the Spark resource's `class_archive_dir`, or ALS_JVM_CLASS_ARCHIVE): it
saves part of every later driver start, but the first process pays for it after it exits, with
a core busy writing a file of a couple of hundred megabytes; benchmarks/history.md has the
figures. A JVM that starts Spark loads and verifies thousands of classes from Spark's jars, and
most of a session's first seconds go there. Java 13+ can write the classes a process loaded into
an archive when it exits (`-XX:ArchiveClassesAtExit`) and map that archive into the next process
(`-XX:SharedArchiveFile`), which then skips parsing and verifying them.

The archive is only valid for the exact JVM and classpath it was written with (the JVM checks and
ignores it otherwise, with a warning), so its file name carries a key of both. A process that
starts writing the archive of a new key removes the archives of other keys in the folder (a
Java or Spark upgrade would otherwise leave every old one behind). Dumps are written to a
temporary name and promoted by a later process once the writing JVM has exited and the file's
header is there (the JVM writes the header last), so concurrent runs never see half a file.
Nothing here imports Dagster.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

ARCHIVE_SUFFIX = ".jsa"
# The first four bytes of a finished dynamic archive (HotSpot's CDS_DYNAMIC_ARCHIVE_MAGIC,
# little-endian as written on x86 and ARM).
DYNAMIC_ARCHIVE_MAGIC = (0xF00BABA8).to_bytes(4, "little")
# Writing the archive logs a warning per class CDS cannot keep (old bytecode, signed jars) to
# stdout; they are expected and would drown a CLI run's output.
QUIET_DUMP = "-Xlog:cds=off -Xlog:cds+dynamic=off"
# Heaps of 32 GB and more switch compressed object pointers off, which makes another archive.
COMPRESSED_OOPS_LIMIT = 32 * 2**30


@dataclass(frozen=True)
class ClassArchive:
    """What the next driver JVM is started with: use an archive, write one at exit, or neither."""

    java_options: str
    archive: Path
    dump_to: Path | None = None
    marker: Path | None = None

    @property
    def in_use(self) -> bool:
        return self.dump_to is None and bool(self.java_options)


def heap_bytes(memory: str) -> int:
    """'4g' / '512m' / '2048k' / bytes -> bytes (Spark's driver-memory format)."""
    text = memory.strip().lower().rstrip("b")
    units = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def spark_home() -> Path:
    """The Spark installation pyspark's launcher uses: SPARK_HOME, else the pyspark package."""
    if os.environ.get("SPARK_HOME"):
        return Path(os.environ["SPARK_HOME"])
    import pyspark

    return Path(pyspark.__file__).resolve().parent


# Spark's jars whose classes the driver reads on every RDD operation: Spark's closure cleaner
# reads the class that declared each lambda (for ALS's iterations `ALS$`, for RDD operations
# `RDD` and `PairRDDFunctions`) from its jar, with no cache. The class loader asks the
# classpath's jars in order, and pyspark's launcher lists `jars/*` in directory order, where
# these can come after some 200 others: every read looks the name up in all of them first.
FIRST_JAR_PREFIXES = ("spark-mllib_", "spark-core_", "spark-common-utils_", "spark-sql_")


def first_on_classpath(home: Path | None = None) -> tuple[str, ...]:
    """Paths of the installation's jars to put first on the driver's classpath (those of
    FIRST_JAR_PREFIXES it has, in that order); () for an installation without a jars folder."""
    jars_dir = (home or spark_home()) / "jars"
    if not jars_dir.is_dir():
        return ()
    found = []
    for prefix in FIRST_JAR_PREFIXES:
        found += sorted(str(j) for j in jars_dir.glob(f"{prefix}*.jar"))
    return tuple(found)


def archive_key(java: str, jars: tuple[str, ...] = (), driver_memory: str = "4g",
                home: Path | None = None) -> str:
    """What an archive is valid for: the java binary, every jar on Spark's classpath (name,
    size, modification time: the JVM compares those), the extra jars, the classpath-changing
    environment variables, and whether the heap uses compressed pointers."""
    home = home or spark_home()
    java_path = Path(java).resolve()
    java_stat = java_path.stat()
    listing = []
    jars_dir = home / "jars"
    for jar in sorted(jars_dir.glob("*.jar")) if jars_dir.is_dir() else []:
        st = jar.stat()
        listing.append((jar.name, st.st_size, int(st.st_mtime)))
    extra = []
    for jar in jars:
        p = Path(jar)
        st = p.stat() if p.is_file() else None
        extra.append((str(p), st.st_size if st else None, int(st.st_mtime) if st else None))
    env = {k: os.environ.get(k, "") for k in (
        "SPARK_CONF_DIR", "SPARK_DIST_CLASSPATH", "HADOOP_CONF_DIR", "YARN_CONF_DIR",
        "SPARK_CLASSPATH")}
    payload = {
        "java": [str(java_path), java_stat.st_size, int(java_stat.st_mtime)],
        "spark_home": str(home.resolve()),
        "jars": listing,
        "extra_jars": extra,
        # The archive is only valid for the classpath it was written with, in its order.
        "first_on_classpath": [Path(j).name for j in first_on_classpath(home)],
        "env": env,
        "compressed_oops": heap_bytes(driver_memory) < COMPRESSED_OOPS_LIMIT,
    }
    digest = hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return digest[:16]


def is_finished_archive(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == DYNAMIC_ARCHIVE_MAGIC
    except OSError:
        return False


def _java_alive(pid: int) -> bool:
    """Is `pid` a running JVM? (A pid recycled by another program does not count.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    comm = Path(f"/proc/{pid}/comm")
    if comm.exists():
        try:
            return comm.read_text().strip() == "java"
        except OSError:
            return False
    return True


def archive_path(directory: Path, key: str) -> Path:
    return directory / f"spark-{key}{ARCHIVE_SUFFIX}"


def _dump_markers(directory: Path, key: str) -> list[tuple[Path, int]]:
    """(marker file, pid of the JVM that writes or will write the dump; 0 if unreadable)."""
    found = []
    for marker in sorted(directory.glob(f"spark-{key}.*.pid")):
        try:
            pid = int(marker.read_text().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        found.append((marker, pid))
    return found


def prepare_class_archive(directory: Path, key: str, alive=_java_alive) -> ClassArchive:
    """Decide the driver JVM's class-archive options for archive `key` in `directory`.

    Promotes a dump an earlier process finished, removes dumps whose JVM died half-way, and
    asks for a new dump only when no archive exists and no other JVM is writing one.
    """
    directory.mkdir(parents=True, exist_ok=True)
    archive = archive_path(directory, key)
    _remove_orphan_dumps(directory)
    if not archive.exists():
        writing = False
        for marker, pid in _dump_markers(directory, key):
            dump = marker.with_suffix(".tmp")
            if pid and alive(pid):
                writing = True
                continue
            if is_finished_archive(dump) and not archive.exists():
                os.replace(dump, archive)
            dump.unlink(missing_ok=True)
            marker.unlink(missing_ok=True)
        if not archive.exists():
            if writing:
                return ClassArchive(java_options="", archive=archive)
            evict_other_keys(directory, key, alive)
            token = secrets.token_hex(4)
            dump = directory / f"spark-{key}.{token}.tmp"
            return ClassArchive(
                java_options=f"-XX:ArchiveClassesAtExit={dump} {QUIET_DUMP}",
                archive=archive, dump_to=dump, marker=dump.with_suffix(".pid"))
    return ClassArchive(java_options=f"-XX:SharedArchiveFile={archive}", archive=archive)


def evict_other_keys(directory: Path, key: str, alive=_java_alive) -> list[Path]:
    """Remove the archives of keys other than `key`, and their dumps whose JVM is gone.

    Called when this key's archive is about to be written: the folder then keeps one archive
    (plus dumps in progress), not one per Java or Spark version ever used. A JVM that maps a
    removed archive keeps its mapping (the file goes when it exits); one still writing a dump
    of another key is left alone.
    """
    removed = []
    own = archive_path(directory, key).name
    for old in directory.glob(f"spark-*{ARCHIVE_SUFFIX}"):
        if old.name != own:
            old.unlink(missing_ok=True)
            removed.append(old)
    for marker in directory.glob("spark-*.*.pid"):
        if marker.name.startswith(f"spark-{key}."):
            continue
        try:
            pid = int(marker.read_text().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid and alive(pid):
            continue
        for path in (marker.with_suffix(".tmp"), marker):
            if path.exists():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def _remove_orphan_dumps(directory: Path, older_than_s: float = 3600.0) -> None:
    """Dumps with no marker: their process died before it could name its JVM."""
    for dump in directory.glob("spark-*.*.tmp"):
        if dump.with_suffix(".pid").exists():
            continue
        try:
            if time.time() - dump.stat().st_mtime > older_than_s:
                dump.unlink(missing_ok=True)
        except OSError:
            pass


def wait_for_dumps(directory: Path, key: str, timeout_s: float = 600.0,
                   alive=_java_alive) -> bool:
    """Wait until no JVM is writing archive `key` (True), or `timeout_s` passed (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(pid and alive(pid) for _, pid in _dump_markers(directory, key)):
            return True
        time.sleep(0.5)
    return False


def record_dumping_jvm(plan: ClassArchive, jvm_pid: int) -> None:
    """Note which JVM writes the dump, so other processes wait for it instead of promoting a
    file it has not finished (or starting a dump of their own)."""
    if plan.marker is not None:
        plan.marker.write_text(f"{jvm_pid}\n")
