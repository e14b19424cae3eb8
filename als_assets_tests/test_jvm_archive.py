"""The driver JVM's class-data archive: when it is written, promoted, used, and for what."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from als_assets.core.jvm_archive import (
    DYNAMIC_ARCHIVE_MAGIC,
    QUIET_DUMP,
    archive_key,
    archive_path,
    first_on_classpath,
    heap_bytes,
    prepare_class_archive,
    record_dumping_jvm,
)
from als_assets.core.spark import require_java


def _dead(pid: int) -> bool:
    return False


def _alive(pid: int) -> bool:
    return True


@pytest.fixture()
def fake_install(tmp_path):
    home = tmp_path / "spark"
    (home / "jars").mkdir(parents=True)
    (home / "jars" / "spark-core.jar").write_bytes(b"x" * 10)
    (home / "jars" / "scala-library.jar").write_bytes(b"y" * 20)
    java = tmp_path / "java"
    java.write_bytes(b"\x7fELF")
    return home, java


def test_heap_bytes():
    assert heap_bytes("4g") == 4 * 2**30
    assert heap_bytes("512m") == 512 * 2**20
    assert heap_bytes("2048k") == 2048 * 2**10
    assert heap_bytes("1G") == 2**30
    assert heap_bytes("1000") == 1000


def test_key_follows_what_the_jvm_checks(fake_install, tmp_path):
    home, java = fake_install
    base = archive_key(str(java), (), "4g", home)
    assert archive_key(str(java), (), "4g", home) == base
    # Another heap under 32 GB keeps compressed pointers: the same archive serves it.
    assert archive_key(str(java), (), "8g", home) == base
    assert archive_key(str(java), (), "40g", home) != base
    extra = tmp_path / "postgresql.jar"
    extra.write_bytes(b"z")
    assert archive_key(str(java), (str(extra),), "4g", home) != base
    # A jar of the installation changes (an upgrade): a new archive.
    (home / "jars" / "spark-core.jar").write_bytes(b"x" * 11)
    assert archive_key(str(java), (), "4g", home) != base
    other_java = tmp_path / "java21"
    other_java.write_bytes(b"\x7fELF-21")
    assert archive_key(str(other_java), (), "4g", home) != archive_key(str(java), (), "4g", home)


def test_spark_jars_the_driver_reads_most_come_first(fake_install, tmp_path):
    home, java = fake_install
    jars = home / "jars"
    for name in ("spark-sql_2.13-4.3.0.jar", "spark-sql-api_2.13-4.3.0.jar",
                 "spark-mllib_2.13-4.3.0.jar", "spark-core_2.13-4.3.0.jar",
                 "spark-mllib-local_2.13-4.3.0.jar"):
        (jars / name).write_bytes(b"j")
    assert [Path(p).name for p in first_on_classpath(home)] == [
        "spark-mllib_2.13-4.3.0.jar", "spark-core_2.13-4.3.0.jar", "spark-sql_2.13-4.3.0.jar"]
    assert all(Path(p).parent == jars for p in first_on_classpath(home))
    assert first_on_classpath(tmp_path / "no-spark-here") == ()
    # An archive is only valid for the classpath order it was written with: the key follows it.
    before = archive_key(str(java), (), "4g", home)
    (jars / "spark-common-utils_2.13-4.3.0.jar").write_bytes(b"j")
    assert "spark-common-utils_2.13-4.3.0.jar" in [Path(p).name for p in first_on_classpath(home)]
    assert archive_key(str(java), (), "4g", home) != before


def test_first_run_dumps_at_exit(tmp_path):
    plan = prepare_class_archive(tmp_path, "k1", alive=_dead)
    assert not plan.in_use
    assert plan.dump_to is not None and plan.dump_to.parent == tmp_path
    assert plan.java_options == f"-XX:ArchiveClassesAtExit={plan.dump_to} {QUIET_DUMP}"
    assert not plan.archive.exists() and not plan.dump_to.exists()


def _dump(plan, pid: int, finished: bool) -> None:
    record_dumping_jvm(plan, pid)
    header = DYNAMIC_ARCHIVE_MAGIC if finished else b"\0\0\0\0"
    plan.dump_to.write_bytes(header + b"\1" * 100)


def test_finished_dump_is_promoted_and_used(tmp_path):
    first = prepare_class_archive(tmp_path, "k1", alive=_dead)
    _dump(first, 4242, finished=True)
    plan = prepare_class_archive(tmp_path, "k1", alive=_dead)
    assert plan.in_use
    assert plan.java_options == f"-XX:SharedArchiveFile={tmp_path / 'spark-k1.jsa'}"
    assert plan.archive.read_bytes()[:4] == DYNAMIC_ARCHIVE_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spark-k1.jsa"]
    # Other keys are other archives.
    assert not prepare_class_archive(tmp_path, "k2", alive=_dead).in_use


def test_dump_of_a_jvm_still_running_is_left_alone(tmp_path):
    first = prepare_class_archive(tmp_path, "k1", alive=_dead)
    _dump(first, 4242, finished=False)
    plan = prepare_class_archive(tmp_path, "k1", alive=_alive)
    # No second dump while one JVM writes; its files stay.
    assert plan.java_options == "" and not plan.in_use and plan.dump_to is None
    assert first.dump_to.exists() and first.marker.exists()


def test_half_written_dump_is_removed(tmp_path):
    first = prepare_class_archive(tmp_path, "k1", alive=_dead)
    _dump(first, 4242, finished=False)  # the JVM died before writing the header
    plan = prepare_class_archive(tmp_path, "k1", alive=_dead)
    assert not first.dump_to.exists() and not first.marker.exists()
    assert not plan.archive.exists()
    assert plan.dump_to is not None and plan.dump_to != first.dump_to


def test_writing_a_new_key_evicts_the_other_keys(tmp_path):
    old = prepare_class_archive(tmp_path, "k1", alive=_dead)
    _dump(old, 4242, finished=True)
    assert prepare_class_archive(tmp_path, "k1", alive=_dead).in_use
    # Dumps of two more keys: one whose JVM still writes it, one whose JVM died.
    running, dead = tmp_path / "spark-k3.a.tmp", tmp_path / "spark-k4.b.tmp"
    for dump, pid in ((running, 4343), (dead, 4444)):
        dump.write_bytes(b"\0" * 8)
        dump.with_suffix(".pid").write_text(f"{pid}\n")

    def alive(pid: int) -> bool:
        return pid == 4343

    plan = prepare_class_archive(tmp_path, "k2", alive=alive)
    assert plan.dump_to is not None
    assert not archive_path(tmp_path, "k1").exists()
    assert running.exists() and running.with_suffix(".pid").exists()
    assert not dead.exists() and not dead.with_suffix(".pid").exists()


def test_using_an_archive_evicts_nothing(tmp_path):
    first = prepare_class_archive(tmp_path, "k1", alive=_dead)
    _dump(first, 4242, finished=True)
    prepare_class_archive(tmp_path, "k1", alive=_dead)
    other = archive_path(tmp_path, "k2")
    other.write_bytes(DYNAMIC_ARCHIVE_MAGIC)
    # k1 exists: it is used, and k2 (another checkout's, say) stays.
    assert prepare_class_archive(tmp_path, "k1", alive=_dead).in_use
    assert other.exists()


def test_the_archive_is_off_unless_configured(monkeypatch):
    from als_assets.settings import class_archive_dir

    monkeypatch.delenv("ALS_JVM_CLASS_ARCHIVE", raising=False)
    assert class_archive_dir() == ""
    monkeypatch.setenv("ALS_JVM_CLASS_ARCHIVE", "off")
    assert class_archive_dir() == ""
    monkeypatch.setenv("ALS_JVM_CLASS_ARCHIVE", "/var/cache/als")
    assert class_archive_dir() == "/var/cache/als"


def test_old_dump_without_marker_is_removed(tmp_path):
    orphan = tmp_path / "spark-k1.dead.tmp"
    orphan.write_bytes(DYNAMIC_ARCHIVE_MAGIC)
    recent = tmp_path / "spark-k1.new.tmp"
    recent.write_bytes(DYNAMIC_ARCHIVE_MAGIC)
    old = time.time() - 2 * 3600
    os.utime(orphan, (old, old))
    prepare_class_archive(tmp_path, "k1", alive=_dead)
    assert not orphan.exists() and recent.exists()


_SESSION = textwrap.dedent("""
    import json, sys
    from als_assets.core.spark import SparkSettings, build_spark_session
    spark = build_spark_session(SparkSettings(master="local[1]", driver_memory="1g",
                                              class_archive_dir=sys.argv[1]))
    jvm = spark.sparkContext._jvm
    args = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    print(json.dumps({"rows": spark.range(5).count(), "args": args,
                      "pid": jvm.java.lang.ProcessHandle.current().pid()}))
""")


def _session(archive_dir: Path) -> tuple[dict, str]:
    import json

    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
    out = subprocess.run([sys.executable, "-c", _SESSION, str(archive_dir)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [x for x in out.stdout.splitlines() if x.startswith("{")][-1]
    return json.loads(line), out.stdout + out.stderr


def _wait_gone(pid: int, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    raise AssertionError(f"JVM {pid} still running after {timeout:g}s")


@pytest.mark.slow
def test_a_real_jvm_writes_the_archive_and_the_next_one_maps_it(tmp_path):
    require_java()
    first, _ = _session(tmp_path)
    assert first["rows"] == 5
    assert any(a.startswith("-XX:ArchiveClassesAtExit=") for a in first["args"])
    _wait_gone(first["pid"])  # the JVM writes the archive as it exits
    second, output = _session(tmp_path)
    archives = list(tmp_path.glob("spark-*.jsa"))
    assert len(archives) == 1 and archives[0].read_bytes()[:4] == DYNAMIC_ARCHIVE_MAGIC
    assert f"-XX:SharedArchiveFile={archives[0]}" in second["args"]
    # The JVM says so when it cannot map an archive (other JVM, other classpath).
    assert "Unable to use shared archive" not in output
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".jsa"]



def test_archive_folders_the_jvm_can_be_given():
    from als_assets.core.spark import usable_archive_dir

    assert usable_archive_dir("/home/u/.cache/als_assets/jvm")
    assert not usable_archive_dir("/home/u/my cache/jvm")
    assert not usable_archive_dir("")
    assert not usable_archive_dir(None)


def test_no_archive_for_a_jvm_already_running(spark, tmp_path):
    from als_assets.core.spark import SparkSettings, _class_archive_plan

    # This process's JVM (the session fixture's) is running: its options cannot change.
    assert _class_archive_plan(SparkSettings(class_archive_dir=str(tmp_path)),
                               require_java()) is None
    assert list(tmp_path.iterdir()) == []
