"""Shared helpers of the benchmarks: process-tree memory/CPU sampling, machine facts, medians.

Memory is measured as the sum of VmRSS over the whole process tree (the Python driver and every
descendant, which includes the JVM that pyspark's launcher starts as a child), read from /proc
every 0.2 s. The same sampler also records CPU time used by processes *outside* the tree
(other users of this 2-core machine), so a contaminated measurement is visible in the output.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
VENV_PY = sys.executable  # the venv running the benchmark
# Spark's Python workers must be the venv's interpreter: the `python3` on PATH lacks pyarrow,
# which Spark 4's Python UDFs (the notebook's NDCG / cosine UDFs) need.
os.environ.setdefault("PYSPARK_PYTHON", VENV_PY)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", VENV_PY)
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                data = fh.read().decode("latin-1")
        except OSError:
            continue
        # pid (comm) state ppid ... ; comm may contain spaces/parens
        rest = data[data.rfind(")") + 2:].split()
        kids.setdefault(int(rest[1]), []).append(int(entry))
    return kids


def tree_pids(root: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE
    except OSError:
        return 0


def _shares_parent_mm(pid: int) -> bool:
    """True for a child caught between vfork/posix_spawn and exec: it shares its parent's address
    space, so its statm repeats the parent's RSS (the JVM spawns `chmod`/`ls` through Hadoop's
    Shell for every local file it writes without the native Hadoop library)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode("latin-1")
        ppid = int(data[data.rfind(")") + 2:].split()[1])
        with open(f"/proc/{pid}/statm") as a, open(f"/proc/{ppid}/statm") as b:
            mine, parent = a.read().split()[:2], b.read().split()[:2]
        return mine == parent
    except (OSError, ValueError, IndexError):
        return False


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            args = fh.read().split(b"\0")
        return " ".join(a.decode(errors="replace") for a in args[:3])[-80:]
    except OSError:
        return "?"


def _cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode("latin-1")
        f = data[data.rfind(")") + 2:].split()
        # utime stime cutime cstime are fields 14-17 (1-based) -> index 11..14 after comm
        return int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    except (OSError, IndexError):
        return 0


def _system_busy_ticks() -> int:
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v[:8]) - idle


class TreeSampler:
    """Samples the RSS sum and CPU ticks of a process tree every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval = pid, interval
        self.peak_rss = 0
        self.peak_breakdown: list = []
        self.peak_procs = 0
        self.samples = 0
        self._cpu_by_pid: dict[int, int] = {}
        self._stop = threading.Event()
        self._busy0 = _system_busy_ticks()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = tree_pids(self.pid)
            per = [(p, _rss_bytes(p)) for p in pids if not _shares_parent_mm(p)]
            rss = sum(r for _, r in per)
            for p in pids:
                t = _cpu_ticks(p)
                if t:
                    self._cpu_by_pid[p] = max(self._cpu_by_pid.get(p, 0), t)
            if rss > self.peak_rss:
                self.peak_rss = rss
                self.peak_breakdown = [(_comm(p), round(r / 2**20)) for p, r in per if r]
            self.peak_procs = max(self.peak_procs, len(pids))
            self.samples += 1
            self._stop.wait(self.interval)

    def stop(self, own_cpu_seconds: float | None = None) -> dict:
        self._stop.set()
        self._thread.join()
        busy = (_system_busy_ticks() - self._busy0) / CLK
        tree_cpu = sum(self._cpu_by_pid.values()) / CLK
        if own_cpu_seconds is not None:  # exact, from the reaped child's rusage
            tree_cpu = max(tree_cpu, own_cpu_seconds)
        return {
            "peak_rss_mb": round(self.peak_rss / 2**20, 1),
            "peak_processes": self.peak_procs,
            "peak_rss_by_process_mb": self.peak_breakdown,
            "memory_samples": self.samples,
            "tree_cpu_s": round(tree_cpu, 1),
            "machine_busy_cpu_s": round(busy, 1),
            "foreign_cpu_s": round(max(0.0, busy - tree_cpu), 1),
        }


def run_measured(cmd: list[str], env: dict | None = None, cwd: str | None = None,
                 log_path: Path | None = None, timeout: float | None = None) -> dict:
    """Run a command, sampling its process tree; returns wall time, memory, CPU, stdout."""
    start = time.perf_counter()
    out_fh = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=out_fh,
                            text=True)
    sampler = TreeSampler(proc.pid).start()
    stdout, _ = proc.communicate(timeout=timeout)
    wall = time.perf_counter() - start
    stats = sampler.stop()
    if log_path:
        out_fh.close()
    return {"cmd": cmd, "returncode": proc.returncode, "wall_s": round(wall, 2),
            "stdout": stdout, **stats}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def machine_info() -> dict:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem_kb = int(line.split()[1])
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    try:
        import pyspark
        spark_version = pyspark.__version__
    except ImportError:
        spark_version = "?"
    try:
        import dagster
        dagster_version = dagster.__version__
    except ImportError:
        dagster_version = "?"
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "cpu_model": cpu,
        "java": java.splitlines()[0] if java else "?",
        "spark": spark_version,
        "dagster": dagster_version,
        "python": platform.python_version(),
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
        **git_state(),
    }


def git_state() -> dict:
    """The project code measured: HEAD and the uncommitted changes (others edit the tree)."""
    import hashlib

    def git(*a):
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout

    diff = git("diff", "HEAD", "--", "als_assets")
    return {"git_head": git("rev-parse", "--short", "HEAD").strip(),
            "git_dirty_als_assets": [ln[3:] for ln in git("status", "--porcelain", "--",
                                                           "als_assets").splitlines()],
            "git_diff_sha1": hashlib.sha1(diff.encode()).hexdigest()[:12] if diff else None}


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=str))


def publish_report(out: dict, lines: list[str], path: Path) -> None:
    """Print the report's table lines and keep them in the JSON as `report_text`."""
    text = "\n".join(lines)
    print(text)
    out["report_text"] = text
    write_json(path, out)


def step_windows(instance, run_id: str) -> dict[str, tuple[float, float]]:
    """Per-step (start, end) timestamps from the run's STEP_START and STEP_SUCCESS (or
    STEP_FAILURE) events."""
    from dagster import DagsterEventType

    starts, out = {}, {}
    for rec in instance.all_logs(run_id):
        ev = rec.dagster_event
        if ev is None:
            continue
        if ev.event_type == DagsterEventType.STEP_START:
            starts[ev.step_key] = rec.timestamp
        elif (ev.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE)
              and ev.step_key in starts):
            out[ev.step_key] = (starts[ev.step_key], rec.timestamp)
    return out


def step_durations(instance, run_id: str) -> dict[str, float]:
    """Per-step seconds."""
    return {k: round(end - start, 2) for k, (start, end) in step_windows(instance, run_id).items()}


def run_bounds(instance, run_id: str) -> dict:
    """Run start->end seconds from RUN_START / RUN_SUCCESS events."""
    from dagster import DagsterEventType

    t0 = t1 = None
    for rec in instance.all_logs(run_id):
        ev = rec.dagster_event
        if ev is None:
            continue
        if ev.event_type == DagsterEventType.RUN_START:
            t0 = rec.timestamp
        elif ev.event_type in (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE):
            t1 = rec.timestamp
    return {"run_s": round(t1 - t0, 2) if t0 and t1 else None}


def class_archive_state(driver_memory: str) -> dict:
    """The project's driver-JVM class archive on this machine (als_assets/core/jvm_archive.py)
    for the settings the project side runs with: where it is, whether it exists."""
    from als_assets import settings
    from als_assets.core.jdbc import find_jdbc_driver
    from als_assets.core.jvm_archive import archive_key, archive_path
    from als_assets.core.spark import require_java

    directory = settings.class_archive_dir()
    if not directory:
        return {"enabled": False}
    jar = find_jdbc_driver().jar
    key = archive_key(require_java(), (jar,) if jar else (), driver_memory)
    path = archive_path(Path(directory).expanduser(), key)
    return {"enabled": True, "directory": str(Path(directory).expanduser()), "key": key,
            "path": str(path), "exists": path.exists(),
            "size_mb": round(path.stat().st_size / 2**20, 1) if path.exists() else None}


def ensure_class_archive(driver_memory: str, prime) -> dict:
    """Make sure the project's runs start with the class archive a user has after their first
    run: if it is missing, call `prime()` (an untimed project run), wait for its JVM to write
    the archive as it exits, and promote it. Returns the archive's state for the results."""
    from als_assets.core.jvm_archive import prepare_class_archive, wait_for_dumps

    state = class_archive_state(driver_memory)
    if not state["enabled"] or state["exists"]:
        return {**state, "primed_s": None}
    print(f"(no class archive at {state['path']}: an untimed priming run writes it)",
          file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    prime()
    directory = Path(state["directory"])
    wait_for_dumps(directory, state["key"])
    prepare_class_archive(directory, state["key"])  # promotes the finished dump
    primed = round(time.perf_counter() - t0, 1)
    return {**class_archive_state(driver_memory), "primed_s": primed}
