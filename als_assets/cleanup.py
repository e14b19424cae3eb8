"""`python -m als_assets.cleanup`: remove what killed runs left in the storage root.

A run killed with SIGKILL (or by the OOM killer, or a lost machine) leaves half-written version
folders, with Spark's `_temporary` folders in them, its session's checkpoint folder and, killed
in `splits`, a staging folder (`_staging/`). Readers and pruning already ignore them and the next
write to the same asset removes its own; this command clears the whole root at once, e.g. after
a crash or before taking a backup. What a process that still runs is writing is left alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core.checkpoints import clean_checkpoints
from .core.liveness import STALE_AFTER
from .core.storage import VersionedStore


def cleanup(root: str, dry_run: bool = False, stale_after: float = STALE_AFTER) -> list[Path]:
    """Removes (or, with dry_run, lists) abandoned versions, staging and checkpoint folders."""
    store = VersionedStore(root, stale_after=stale_after)
    removed = store.cleanup(dry_run=dry_run)
    removed += clean_checkpoints(store.root / "_checkpoints", dry_run=dry_run,
                                 stale_after=stale_after)
    return removed


def main(argv: list[str] | None = None) -> int:
    from .settings import storage_root

    parser = argparse.ArgumentParser(
        prog="python -m als_assets.cleanup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None,
                        help="storage root (default: ALS_STORAGE_ROOT, else "
                        "$DAGSTER_HOME/als_storage)")
    parser.add_argument("--dry-run", action="store_true", help="list, do not remove")
    parser.add_argument("--stale-hours", type=float, default=STALE_AFTER / 3600,
                        help="a write started on another host counts as abandoned after this "
                        "many hours (on this host: as soon as its process is gone); default "
                        "%(default)g")
    args = parser.parse_args(argv)
    root = Path(args.root or storage_root()).expanduser()
    if not root.is_dir():
        print(f"error: storage root {root} does not exist", file=sys.stderr)
        return 2
    removed = cleanup(str(root), args.dry_run, args.stale_hours * 3600)
    verb = "would remove" if args.dry_run else "removed"
    for path in removed:
        print(f"{verb} {path}")
    print(f"{len(removed)} leftover(s) {'to remove' if args.dry_run else 'removed'} under {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
