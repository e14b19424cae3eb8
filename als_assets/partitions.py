"""Experiments as partitions: every name in the experiments YAML is a partition key."""

from __future__ import annotations

import difflib
import warnings

from dagster import AssetExecutionContext, BetaWarning, Failure, StaticPartitionsDefinition
from dagster._core.errors import DagsterInvalidSubsetError

from .core.experiments import ChampionRule, ExperimentConfig, load_experiments_file
from .settings import experiments_file

_FILE = load_experiments_file(experiments_file())
EXPERIMENTS: dict[str, ExperimentConfig] = _FILE.experiments
# How the experiment to serve is chosen (the file's `champion:` section).
CHAMPION_RULE: ChampionRule = _FILE.champion

# Selects every per-experiment asset: `--select 'tag:scope=experiment' --partition NAME`.
EXPERIMENT_TAGS = {"scope": "experiment"}
# Dagster's parser of selection strings passes a beta parameter of its own to AssetSelection.tag
# and warns about it at every `tag:` selection, the one this project documents for running an
# experiment. The user cannot act on it; the code location loads before the selection is parsed,
# so this filter, for that message only, keeps the command quiet.
warnings.filterwarnings(
    "ignore", message=r"Parameter `include_sources` of function `AssetSelection\.tag`",
    category=BetaWarning)


class UnknownExperimentError(DagsterInvalidSubsetError):
    """A partition key that names no experiment; the message lists the ones there are."""


def unknown_experiment_message(name: str, names: list[str] | None = None) -> str:
    """"unknown experiment 'nope': ... are a, b, c", with a close match first when there is one
    (a typo is the usual cause)."""
    names = list(EXPERIMENTS) if names is None else names
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (f"unknown experiment {name!r} (the partition key is an experiment's name): {hint}"
            f"the experiments in {experiments_file()} are {', '.join(names) or 'none'}")


class ExperimentPartitions(StaticPartitionsDefinition):
    """The experiments' names as partitions; an unknown name is an error that lists them.

    Dagster's CLI replaces its own unknown-partition error (DagsterUnknownPartitionError) by
    "All selected assets must have a PartitionsDefinition containing the passed partition key",
    which does not say which keys there are; this raises another error type, which the CLI
    passes through, with the names.
    """

    def validate_partition_key(self, partition_key: str, context) -> None:
        keys = list(self.get_partition_keys())
        if partition_key not in keys:
            raise UnknownExperimentError(unknown_experiment_message(partition_key, keys))
        super().validate_partition_key(partition_key, context)


experiment_partitions = ExperimentPartitions(list(EXPERIMENTS))


def experiment_config(context: AssetExecutionContext) -> ExperimentConfig:
    """The config of the partition being materialized."""
    config = EXPERIMENTS.get(context.partition_key)
    if config is None:  # a run launched by another way than the CLI, e.g. the Python API
        raise Failure(description=unknown_experiment_message(context.partition_key),
                      allow_retries=False)
    return config
