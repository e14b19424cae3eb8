"""Where the Dagster side's seconds go outside the asset bodies' own work, for overhead.py.

Wraps the functions that do Dagster's own bookkeeping (the event log, the instance, run
creation, the inputs' data versions) and the project's glue around the asset bodies (the IO
manager, the plots, the project's own data-version queries) with wall-clock timers. Each timer
counts its function's time minus that of the timed functions it calls (run creation writes
events, for one), so the parts add up. The wrappers cost microseconds per call, against
milliseconds for what they time. Benchmark-only: nothing in the package imports this.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections import defaultdict

# part -> (module, class or None, attribute)
DAGSTER_PARTS = {
    "instance (open or create the storage)": (
        "dagster._core.instance", "DagsterInstance", "get"),
    "run creation": ("dagster._core.instance", "DagsterInstance", "create_run_for_job"),
    "event log writes": (
        "dagster._core.instance.methods.event_methods", "EventMethods", "handle_new_event"),
    "inputs' data versions": (
        "dagster._core.execution.context.data_version_cache", "DataVersionCache",
        "_fetch_input_asset_version_info"),
}
PROJECT_PARTS = {
    "IO manager reads": ("als_assets.io_managers", "VersionedSparkIOManager", "load_input"),
    "IO manager writes": ("als_assets.io_managers", "VersionedSparkIOManager", "handle_output"),
    "plots (matplotlib's import included)": ("als_assets.plots", None, "plot_metadata"),
    "the project's data-version queries": ("als_assets.versions", None, "latest_data_version"),
}


class Attribution:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list[float]] = []  # per active timed call: [time in timed callees]

    def wrap(self, part: str, module: str, owner: str | None, name: str) -> None:
        target = __import__(module, fromlist=["_"])
        if owner is not None:
            target = getattr(target, owner)
        static = isinstance(inspect.getattr_static(target, name), staticmethod)
        func = getattr(target, name)

        @functools.wraps(func)
        def timed(*args, **kwargs):
            self._stack.append([0.0])
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                inner = self._stack.pop()[0]
                self.seconds[part] += spent - inner
                self.calls[part] += 1
                if self._stack:
                    self._stack[-1][0] += spent

        setattr(target, name, staticmethod(timed) if static else timed)

    def report(self) -> dict:
        return {part: {"seconds": round(self.seconds[part], 3), "calls": self.calls[part]}
                for part in [*DAGSTER_PARTS, *PROJECT_PARTS]}


def install() -> Attribution:
    """Time every part from now on (call before the runs, after the imports are timed)."""
    attribution = Attribution()
    for part, where in {**DAGSTER_PARTS, **PROJECT_PARTS}.items():
        attribution.wrap(part, *where)
    return attribution
