"""Experiments as partitions: every name in the experiments YAML is a partition key."""

from __future__ import annotations

from dagster import AssetExecutionContext, StaticPartitionsDefinition

from .core.experiments import ExperimentConfig, load_experiments
from .settings import experiments_file

EXPERIMENTS: dict[str, ExperimentConfig] = load_experiments(experiments_file())

experiment_partitions = StaticPartitionsDefinition(list(EXPERIMENTS))

# Selects every per-experiment asset: `--select 'tag:scope=experiment' --partition NAME`.
EXPERIMENT_TAGS = {"scope": "experiment"}


def experiment_config(context: AssetExecutionContext) -> ExperimentConfig:
    """The config of the partition being materialized."""
    return EXPERIMENTS[context.partition_key]
