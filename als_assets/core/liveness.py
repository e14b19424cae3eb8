"""Who is writing: a mark naming a process, and whether that process still runs (no Dagster).

A process killed with SIGKILL cleans nothing up, so what it was writing (a storage version, a
checkpoint folder) stays behind with the mark it left. The next process decides from the mark
whether the writer is gone: on this host by asking the kernel about the pid (and its start
time, so a reused pid does not count as the writer); on another host it cannot ask, so only
marks older than `stale_after` seconds count as abandoned.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass

# A writer on another host is presumed gone after this long: no value of this project takes a
# day to write, and removing a live writer's folder would fail its run.
STALE_AFTER = 24 * 3600.0


def _stat(pid: int) -> tuple[str, str]:
    """The process's state letter and start time (clock ticks since boot) from Linux's /proc;
    ('', '') where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            # Fields 3 and 22; the command name (field 2) may hold spaces: split after its ')'.
            fields = fh.read().rsplit(")", 1)[1].split()
        return fields[0], fields[19]
    except (OSError, IndexError):
        return "", ""


def _start_time(pid: int) -> str:
    return _stat(pid)[1]


@dataclass(frozen=True)
class WriterMark:
    host: str
    pid: int
    started: str  # the process's start time ('' where unknown)
    since: float  # when the write began (epoch seconds)

    @staticmethod
    def of_this_process() -> WriterMark:
        return WriterMark(socket.gethostname(), os.getpid(), _start_time(os.getpid()),
                          time.time())

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict) -> WriterMark:
        return WriterMark(str(data["host"]), int(data["pid"]), str(data.get("started", "")),
                          float(data["since"]))

    def is_gone(self, stale_after: float = STALE_AFTER, now: float | None = None) -> bool:
        """True when the process that left this mark no longer runs (or, on another host,
        when the mark is older than `stale_after`)."""
        if self.host != socket.gethostname():
            return ((now if now is not None else time.time()) - self.since) > stale_after
        return not pid_alive(self.pid, self.started)


def pid_alive(pid: int, started: str = "") -> bool:
    """Whether `pid` runs on this host and, when `started` is known, is the same process."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    state, now = _stat(pid)
    if state == "Z":  # killed, not yet reaped by its parent: it writes nothing any more
        return False
    return not started or not now or now == started
