"""When assets run by themselves: Dagster automation conditions, evaluated by the `als_automation`
sensor (sensors.py).

The chain a new ratings file sets off, one run per step of the chain's partitioning:
- `ratings_input` (observable source) gets a new data version: its sensor observed a change;
- `ratings` and `movies`: eager, so they run once their input has a new version;
- each experiment that opts in (`automate: true` in its config): all of its chain in one run
  per experiment, once the sources have new data (a new data version: the same rows loaded
  again change nothing downstream); an unpartitioned asset cannot run in the same run as
  partitioned ones, so this is the sources' next tick;
- `experiment_leaderboard`: once an experiment's model or evaluation updated and none is still
  running, then `champion` once the leaderboard has.

Experiments that do not opt in never run by themselves: their partitions are stale in the UI
until someone materializes them.
"""

from __future__ import annotations

from collections.abc import Iterable

from dagster import AutomationCondition, AutomationContext, AutomationResult

from .partitions import EXPERIMENTS


class ExperimentOptedIn(AutomationCondition):
    """True for the partitions of the experiments that opt in to automation.

    Opt-in is per partition, so it cannot be an asset's condition alone: this narrows the
    partitions another condition (eager) then looks at. Written in Python, it is not
    serializable, so the sensor evaluating it runs in the code server (use_user_code_server).
    """

    def __init__(self, experiments: Iterable[str]):
        self.experiments = frozenset(experiments)

    @property
    def name(self) -> str:
        return "experiment_opted_in"

    @property
    def description(self) -> str:
        names = ", ".join(sorted(self.experiments)) or "none"
        return f"the experiment opts in (automate: true): {names}"

    @property
    def requires_cursor(self) -> bool:
        return False

    def evaluate(self, context: AutomationContext) -> AutomationResult:
        subset = context.candidate_subset.compute_intersection_with_partition_keys(
            self.experiments)
        return AutomationResult(context, subset)


def automated_experiments() -> list[str]:
    """The experiments whose config says `automate: true`, in file order."""
    return [name for name, config in EXPERIMENTS.items() if config.automate]


# The sources: once `ratings_input` has a new data version (or they are missing), unless it was
# never observed or a run of theirs is in progress.
SOURCES_CONDITION = AutomationCondition.eager()

# A dependency has new data: a new data version, not merely a new materialization. Re-loading
# unchanged ratings (a touched file) gives them the same version (their rows' hash), and the
# experiments must not re-fit on it. As in eager, an update made by the run that also made
# this asset does not count, and a dependency requested this tick in the same run does.
DEPS_HAVE_NEW_DATA = AutomationCondition.any_deps_match(
    (AutomationCondition.data_version_changed()
     & ~AutomationCondition.executed_with_root_target())
    | AutomationCondition.will_be_requested()
).with_label("any_deps_have_new_data")

# Each per-experiment asset: eager on new data, for the experiments that opt in only. Opt-in
# comes first, so the other parts look at those partitions only.
EXPERIMENT_CONDITION = (
    ExperimentOptedIn(automated_experiments())
    & (AutomationCondition.newly_missing() | DEPS_HAVE_NEW_DATA).since_last_handled()
    & ~AutomationCondition.any_deps_missing()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("eager on new data, if the experiment opts in")

# The leaderboard reads every experiment: not eager, whose "no dependency missing" would wait
# for experiments that never run by themselves. It lists those as not materialized instead.
SUMMARY_CONDITION = (
    AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("once its inputs updated and none is running")

# The champion follows the leaderboard it is chosen from.
CHAMPION_CONDITION = AutomationCondition.eager()
