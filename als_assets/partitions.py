"""Experiments as partitions: every name in the experiments YAML is a partition key."""

from __future__ import annotations

from dagster import AssetExecutionContext, StaticPartitionsDefinition

from .core.experiments import ChampionRule, ExperimentConfig, load_experiments_file
from .settings import experiments_file

_FILE = load_experiments_file(experiments_file())
EXPERIMENTS: dict[str, ExperimentConfig] = _FILE.experiments
# How the experiment to serve is chosen (the file's `champion:` section).
CHAMPION_RULE: ChampionRule = _FILE.champion

experiment_partitions = StaticPartitionsDefinition(list(EXPERIMENTS))

# Selects every per-experiment asset: `--select 'tag:scope=experiment' --partition NAME`.
EXPERIMENT_TAGS = {"scope": "experiment"}


def experiment_config(context: AssetExecutionContext) -> ExperimentConfig:
    """The config of the partition being materialized."""
    return EXPERIMENTS[context.partition_key]
