"""Checkpoint folders: one per process, removed at exit; what killed sessions left is removed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from als_assets.core import checkpoints
from als_assets.core.checkpoints import MARK, clean_checkpoints
from als_assets.core.liveness import WriterMark

from .killed_writes import Blocked

UUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def test_clean_checkpoints_removes_folders_of_gone_processes_only(tmp_path):
    root = tmp_path / "_checkpoints"
    root.mkdir()
    dead = Blocked(tmp_path / "k", "value", str(tmp_path / "store"), "a", "p")
    dead.kill()
    gone = root / f"session-h-{dead.proc.pid}-aaaa"
    (gone / UUID / "rdd-3").mkdir(parents=True)
    (gone / UUID / "rdd-3" / "part-00000").write_text("x")
    mark = json.loads((Path(dead.said) / ".writer.json").read_text())
    (gone / MARK).write_text(json.dumps(mark))
    alive = root / "session-h-live-bbbb"
    alive.mkdir()
    (alive / MARK).write_text(json.dumps(WriterMark.of_this_process().to_dict()))
    empty_legacy = root / UUID
    (empty_legacy / "rdd-1").mkdir(parents=True)
    used_legacy = root / UUID.replace("0f", "aa")
    (used_legacy / "rdd-2").mkdir(parents=True)
    (used_legacy / "rdd-2" / "part-00000").write_text("x")
    unmarked_new = root / "session-h-1-cccc"
    unmarked_new.mkdir()
    unmarked_old = root / "session-h-2-dddd"
    unmarked_old.mkdir()
    os.utime(unmarked_old, (time.time() - 3600, time.time() - 3600))
    other = root / "notes"
    other.mkdir()

    assert sorted(clean_checkpoints(root, dry_run=True)) == sorted(
        [gone, empty_legacy, unmarked_old])
    assert gone.exists()
    assert sorted(clean_checkpoints(root)) == sorted([gone, empty_legacy, unmarked_old])
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [alive.name, used_legacy.name, unmarked_new.name, other.name])


@pytest.mark.slow
def test_no_checkpoint_folder_outlives_its_session(tmp_path):
    """Two real Spark sessions on one storage root: the first killed with SIGKILL, the second
    ending normally. Spark creates its <uuid> folder inside the process's own folder; the
    second session removes the first's at start and its own at exit: nothing is left."""
    root = tmp_path / "store"
    killed = Blocked(tmp_path / "k1", "session", str(root))
    spark_dir = Path(killed.said.removeprefix("file:"))
    own = spark_dir.parent
    assert own.parent == root / "_checkpoints" and own.name.startswith(
        f"session-{checkpoints._safe(os.uname().nodename)}-{killed.proc.pid}-")
    assert checkpoints.SPARK_UUID.fullmatch(spark_dir.name) and spark_dir.is_dir()
    killed.kill()
    assert own.is_dir()  # a SIGKILL runs no exit handler

    ending = Blocked(tmp_path / "k2", "session", str(root), env={"KILLED_WRITES_EXIT": "1"})
    second = Path(ending.said.removeprefix("file:")).parent
    assert not own.exists() and second != own
    assert ending.wait() == 0
    assert list((root / "_checkpoints").iterdir()) == []
