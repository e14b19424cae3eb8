"""Building the SparkSession: sized for the machine, checkpointed, with a clear error without Java."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import SparkSession

from .checkpoints import set_checkpoint_dir
from .jvm_archive import (
    ClassArchive,
    archive_key,
    first_on_classpath,
    prepare_class_archive,
    record_dumping_jvm,
)


class JavaNotFoundError(RuntimeError):
    """Spark needs a Java runtime; pyspark's own error is a gateway stack trace."""


class SparkMasterUnreachable(RuntimeError):
    """No master of a spark:// URL accepts connections; Spark itself would retry for minutes."""


class StorageNotShared(ValueError):
    """A remote cluster was asked to use storage only the driver's machine sees."""


MASTER_CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class SparkSettings:
    """What the session is built from. `parallelism` None means: the cores Spark will use."""

    master: str = "local[*]"
    app_name: str = "als_assets"
    driver_memory: str = "4g"
    checkpoint_dir: str | None = None
    parallelism: int | None = None
    ui_enabled: bool = False
    jars: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    driver_host: str = ""
    # Where the driver JVM's class-data archive lives (core/jvm_archive.py); None: no archive.
    class_archive_dir: str | None = None
    extra_conf: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def is_remote(master: str) -> bool:
    return not master.startswith("local")


def check_master_reachable(master: str, timeout: float = MASTER_CONNECT_TIMEOUT) -> None:
    """Fail within `timeout` seconds when no master of a spark://h1:p1,h2:p2 URL answers."""
    if not master.startswith("spark://"):
        return
    import socket

    errors = []
    for hostport in master[len("spark://"):].split(","):
        host, _, port = hostport.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return
        except (OSError, ValueError) as exc:
            errors.append(f"{hostport}: {exc}")
    raise SparkMasterUnreachable(
        f"Spark master {master} is unreachable within {timeout:g}s ({'; '.join(errors)}). "
        "Is the cluster up, and is SPARK_MASTER right?"
    )


def check_shared_storage(master: str, storage_root: str, explicit: bool) -> None:
    """On a remote cluster, executors write Parquet, models and checkpoints themselves: the
    storage root must be one every node reaches, so a default only the driver sees is refused."""
    if is_remote(master) and not explicit:
        raise StorageNotShared(
            f"SPARK_MASTER={master} is a remote cluster, but ALS_STORAGE_ROOT is not set and the "
            f"default {storage_root} is on this machine only. Set ALS_STORAGE_ROOT to a path "
            "every Spark node reaches (a shared volume, NFS mount, or hdfs:// / s3a:// is not "
            "supported by the versioned store: use a shared filesystem path)."
        )


def require_java() -> str:
    """Return the java executable Spark will use, or raise naming the fix."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        where = f"JAVA_HOME={java_home} has no bin/java" if java_home else "no `java` on PATH"
        raise JavaNotFoundError(
            f"Spark needs Java 17 or newer, but {where}. Install it (Debian/Ubuntu: "
            "`apt-get install openjdk-17-jre-headless`; macOS: `brew install openjdk@17`) "
            "or set JAVA_HOME to a JDK/JRE 17+ folder."
        )
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JavaNotFoundError(f"`{java} -version` failed: {exc}") from None
    text = out.stderr + out.stdout
    version = _java_major(text)
    if version is not None and version < 17:
        raise JavaNotFoundError(
            f"Spark 4 needs Java 17 or newer, but {java} is Java {version}. "
            "Install Java 17+ or point JAVA_HOME at one."
        )
    return java


def _java_major(version_text: str) -> int | None:
    import re

    m = re.search(r'version "(\d+)(?:\.(\d+))?', version_text)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major


def local_cores(master: str) -> int:
    """Cores a master string gives Spark: local[N], local[*] -> all cores, remote -> all cores."""
    cpu = os.cpu_count() or 2
    if master.startswith("local"):
        inner = master[master.find("[") + 1 : master.find("]")] if "[" in master else "1"
        inner = inner.split(",")[0]
        return cpu if inner == "*" else max(1, int(inner))
    return cpu


# Spark's JVM threads get 16 MB stacks instead of the JVM's default. Scheduling and serializing
# an RDD lineage recurses once per RDD, and ALS adds RDDs with every iteration: with default
# stacks a fit of 20 iterations without a checkpoint ended the JVM with a StackOverflowError,
# with 16 MB stacks 100 iterations ran (ml-latest-small, 1 block). Stacks are reserved, not
# used: a thread only touches the pages its calls reach.
THREAD_STACK_OPTION = "-Xss16m"
# The driver JVM's JIT: HotSpot's optimising compiler (C2) starts on a method at ten times the
# invocation and loop counts it would by default. A Spark job of small data costs the driver
# more than the executors: cleaning closures (which parses class files), planning, serializing
# tasks, each a little different per job, so C2 keeps compiling and deoptimising that code
# through a grid search and its threads take cores the fits need. At the higher thresholds the
# hot loops of large data (ALS's per-rating work runs millions of times) still reach C2 within
# moments; the rest stays at C1's level. The options are HotSpot's own; another JVM ignores them.
JIT_OPTIONS = ("-XX:+IgnoreUnrecognizedVMOptions -XX:Tier4InvocationThreshold=50000 "
               "-XX:Tier4MinInvocationThreshold=6000 -XX:Tier4CompileThreshold=150000 "
               "-XX:Tier4BackEdgeThreshold=400000")
# ALS iterations a fit may run without a checkpoint: with the stacks above, and without them.
DEEP_STACK_ITERATIONS = 30
DEFAULT_STACK_ITERATIONS = 10


def session_conf(settings: SparkSettings) -> dict[str, str]:
    """Spark configuration sized to the cores, instead of the 200-partition defaults."""
    cores = settings.parallelism or local_cores(settings.master)
    conf = {
        "spark.driver.memory": settings.driver_memory,
        # Small data, few cores: 200 shuffle partitions is mostly scheduling overhead.
        "spark.sql.shuffle.partitions": str(max(2, 2 * cores)),
        "spark.default.parallelism": str(max(2, 2 * cores)),
        "spark.sql.adaptive.enabled": "true",
        "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": "true" if settings.ui_enabled else "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        # Read when the JVMs start: for local mode the driver is launched with it.
        "spark.driver.extraJavaOptions": f"{THREAD_STACK_OPTION} {JIT_OPTIONS}",
        "spark.executor.extraJavaOptions": THREAD_STACK_OPTION,
    }
    if settings.jars:
        conf["spark.jars"] = ",".join(settings.jars)
    if settings.packages:
        conf["spark.jars.packages"] = ",".join(settings.packages)
    if settings.driver_host:
        # In containers: executors connect back to the driver by this name.
        conf["spark.driver.host"] = settings.driver_host
        conf["spark.driver.bindAddress"] = "0.0.0.0"
    if is_remote(settings.master):
        # Executors on other nodes must not depend on this machine's default cores/memory.
        conf.setdefault("spark.executor.memory", "2g")
    extra = dict(settings.extra_conf)
    # Spark's most-read jars first (core/jvm_archive.py, FIRST_JAR_PREFIXES): they are on the
    # classpath anyway; the driver finds their classes without asking every other jar. A
    # classpath the user sets keeps its precedence, before them.
    classpath = [extra.pop("spark.driver.extraClassPath", ""), *first_on_classpath()]
    conf.update(extra)
    if any(classpath):
        conf["spark.driver.extraClassPath"] = os.pathsep.join(p for p in classpath if p)
    return conf


def build_spark_session(settings: SparkSettings) -> SparkSession:
    """Get or create the process's SparkSession and give it a checkpoint directory.

    ALS's lineage grows with every iteration; without a checkpoint directory Spark ignores
    checkpointInterval and a 15-iteration fit overflows the JVM stack.
    """
    java = require_java()
    check_master_reachable(settings.master)
    conf = session_conf(settings)
    plan = _class_archive_plan(settings, java)
    if plan is not None and plan.java_options:
        conf["spark.driver.extraJavaOptions"] = (
            conf.get("spark.driver.extraJavaOptions", "") + " " + plan.java_options).strip()
    builder = SparkSession.builder.appName(settings.app_name).master(settings.master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if plan is not None and plan.dump_to is not None:
        record_dumping_jvm(plan, spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
    spark.sparkContext.setLogLevel("WARN")
    if settings.checkpoint_dir:
        # This process's own folder under it, removed at exit (core/checkpoints.py).
        set_checkpoint_dir(spark.sparkContext, settings.checkpoint_dir)
    return spark


def usable_archive_dir(directory: str | None) -> bool:
    """Set, not on Windows (no /proc, other signals), and free of whitespace: Spark splits
    extraJavaOptions at whitespace, so such a path cannot be passed to the JVM."""
    return bool(directory) and os.name != "nt" and not any(ch.isspace() for ch in directory)


def _class_archive_plan(settings: SparkSettings, java: str) -> ClassArchive | None:
    """The class-archive options for a driver JVM this call will start; None when a JVM is
    already running in this process (its options are fixed) or the archive is switched off."""
    from pyspark import SparkContext

    if not usable_archive_dir(settings.class_archive_dir) or SparkContext._gateway is not None:
        return None
    try:
        key = archive_key(java, settings.jars, settings.driver_memory)
        return prepare_class_archive(Path(settings.class_archive_dir).expanduser(), key)
    except OSError:
        # An unwritable cache costs start-up time, never the run.
        return None


def uncheckpointed_iterations(spark: SparkSession) -> int:
    """How many ALS iterations a fit may run without a checkpoint in this session: more where
    the session's JVMs were started with the deep stacks (a session built elsewhere may not)."""
    conf = spark.sparkContext.getConf()
    deep = all(THREAD_STACK_OPTION in (conf.get(key) or "").split()
               for key in ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions"))
    return DEEP_STACK_ITERATIONS if deep else DEFAULT_STACK_ITERATIONS


def als_blocks(spark: SparkSession) -> int:
    """ALS user/item blocks: one per core Spark has, not the default 10."""
    return max(1, spark.sparkContext.defaultParallelism // 2)
