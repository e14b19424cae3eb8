"""The SparkSession's checkpoint folder: one per process, removed when it ends (no Dagster).

`SparkContext.setCheckpointDir(d)` creates `d/<uuid>` at once, whether or not anything is ever
checkpointed (most fits here checkpoint nothing), and nothing removes it: every session used to
leave an empty folder in the storage root. Each process now checkpoints into its own
`_checkpoints/session-<host>-<pid>-<hex>/`, marked with the process (core/liveness.py), and
removes it at exit. A process killed with SIGKILL cannot, so every new session (and
`python -m als_assets.cleanup`) removes the folders of processes that are gone.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import socket
import time
import uuid
from pathlib import Path

from .liveness import STALE_AFTER, WriterMark

MARK = ".session.json"
SESSION_PREFIX = "session-"
# Spark's own <uuid> folders, created right under the checkpoint root by earlier versions.
SPARK_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A session folder without a readable mark younger than this may be one being created now.
UNMARKED_GRACE = 60.0

# The folder this process checkpoints into, per checkpoint root.
_SESSION_DIRS: dict[str, Path] = {}


def session_checkpoint_dir(root: str) -> Path:
    """This process's checkpoint folder under `root` (a local path), created and marked on
    first use, removed at exit; abandoned folders of other processes are removed first."""
    key = str(Path(root).absolute())
    Path(key).mkdir(parents=True, exist_ok=True)
    # At every run's session, not only at this process's first: runs killed meanwhile count.
    clean_checkpoints(Path(key))
    folder = _SESSION_DIRS.get(key)
    if folder is not None and folder.is_dir():
        return folder
    folder = Path(key) / (f"{SESSION_PREFIX}{_safe(socket.gethostname())}-{os.getpid()}-"
                          f"{uuid.uuid4().hex[:8]}")
    folder.mkdir()
    (folder / MARK).write_text(json.dumps(WriterMark.of_this_process().to_dict()))
    _SESSION_DIRS[key] = folder
    atexit.register(shutil.rmtree, folder, True)
    return folder


def set_checkpoint_dir(spark_context, root: str) -> None:
    """Points the context at this process's folder under `root` (a URL such as hdfs://... is
    passed to Spark as it is: its folders are not this module's to manage)."""
    if "://" in root:
        spark_context.setCheckpointDir(root)
        return
    folder = session_checkpoint_dir(root)
    current = spark_context.getCheckpointDir() or ""
    if str(folder) not in current:  # getOrCreate returned a session that already has it
        spark_context.setCheckpointDir(str(folder))


def clean_checkpoints(root: Path, dry_run: bool = False,
                      stale_after: float = STALE_AFTER) -> list[Path]:
    """Removes session folders whose process is gone, and empty `<uuid>` folders earlier
    versions left; returns what was (or, with dry_run, would be) removed."""
    removed = []
    try:
        children = list(root.iterdir())
    except FileNotFoundError:
        return removed
    for path in children:
        if not path.is_dir() or path in _SESSION_DIRS.values():
            continue
        if path.name.startswith(SESSION_PREFIX):
            gone = _session_gone(path, stale_after)
        elif SPARK_UUID.fullmatch(path.name):
            # Not marked, so whose it is cannot be told; a folder with no files in it holds
            # nothing a session could need (Spark recreates the folders it writes into).
            gone = not any(p.is_file() for p in path.rglob("*"))
        else:
            continue
        if gone:
            removed.append(path)
            if not dry_run:
                shutil.rmtree(path, ignore_errors=True)
    return removed


def _session_gone(folder: Path, stale_after: float) -> bool:
    try:
        mark = WriterMark.from_dict(json.loads((folder / MARK).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        try:
            return time.time() - folder.stat().st_mtime > UNMARKED_GRACE
        except FileNotFoundError:
            return False
    return mark.is_gone(stale_after)


def _safe(host: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", host)[:40] or "host"
