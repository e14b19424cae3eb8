"""`experiment_asset`: the decorator every per-experiment asset shares, so what makes an asset
per-experiment (the partitions, the tags `--select` uses, owners, automation) is said once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dagster import AssetOut, asset, multi_asset

from ..automation import EXPERIMENT_CONDITION
from ..partitions import experiment_partitions
from ..versions import OWNERS, experiment_tags


def experiment_asset(*, group: str, code_version: str | None = None,
                     kinds: Iterable[str] = ("spark",), tags: Mapping[str, str] | None = None,
                     outs: Mapping[str, str] | None = None, required: bool = True,
                     automate: bool = True, description: str | None = None, **kwargs):
    """`@asset` (or `@multi_asset`, given `outs`: output name -> description) partitioned by
    experiment, in `group`, owned by the team, tagged `scope=experiment` (plus `model=als`
    unless `tags` says otherwise), re-run on new ratings for the experiments that opt in
    unless `automate` is false (a publish needs PostgreSQL: it stays a deliberate step).

    `required=False` makes every output optional (an experiment's chain may end early).
    Other keyword arguments (check specs, retry policy, deps...) go to the decorator as they are.
    """
    common = {
        "tags": dict(tags) if tags is not None else experiment_tags(model="als"),
        "owners": OWNERS,
        "kinds": set(kinds),
        "code_version": code_version,
        "automation_condition": EXPERIMENT_CONDITION if automate else None,
    }
    if outs is None:
        return asset(group_name=group, partitions_def=experiment_partitions,
                     description=description, **common, **kwargs)
    return multi_asset(
        outs={name: AssetOut(description=text, group_name=group, is_required=required, **common)
              for name, text in outs.items()},
        partitions_def=experiment_partitions, description=description, **kwargs)
