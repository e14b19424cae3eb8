"""Per-experiment train / validation / test splits of the ratings."""

from dagster import AssetCheckResult, AssetExecutionContext, AssetOut, Output, multi_asset

from ..checks import SPLITS_DISJOINT, gate
from ..core.modeling import split_overlap_summary, split_ratings
from ..partitions import experiment_config, experiment_partitions
from ..versions import OWNERS, content_data_version, experiment_tags

SPLITS_CODE_VERSION = "splits-1"
SPLIT_TAGS = experiment_tags(stage="split")


@multi_asset(
    outs={
        "training": AssetOut(description="Ratings the models are fitted on.",
                             kinds={"spark", "parquet"}, tags=SPLIT_TAGS, owners=OWNERS,
                             code_version=SPLITS_CODE_VERSION),
        "validation": AssetOut(description="Ratings the hyperparameters are chosen on.",
                               kinds={"spark", "parquet"}, tags=SPLIT_TAGS, owners=OWNERS,
                               code_version=SPLITS_CODE_VERSION),
        "test": AssetOut(description="Ratings held out for the final evaluation only.",
                         kinds={"spark", "parquet"}, tags=SPLIT_TAGS, owners=OWNERS,
                         code_version=SPLITS_CODE_VERSION),
    },
    group_name="splits",
    partitions_def=experiment_partitions,
    check_specs=[SPLITS_DISJOINT],
)
def splits(context: AssetExecutionContext, ratings):
    """Random split of `ratings` with the experiment's ratios and seed."""
    config = experiment_config(context)
    parts = split_ratings(ratings, config.split.ratios, config.split.seed)
    counts = split_overlap_summary(ratings, parts)
    complete = counts["sum_of_splits"] == counts["ratings"]
    disjoint = counts["distinct_pairs_in_splits"] == counts["sum_of_splits"]
    problems = []
    if not complete:
        problems.append(f"splits hold {counts['sum_of_splits']} rows, ratings {counts['ratings']}")
    if not disjoint:
        problems.append(f"{counts['sum_of_splits'] - counts['distinct_pairs_in_splits']} pairs "
                        "are in more than one split")
    yield from gate([AssetCheckResult(
        asset_key="training", check_name=SPLITS_DISJOINT.name, passed=not problems,
        description="; ".join(problems) or "disjoint and complete", metadata=counts)])
    total = counts["ratings"]
    for name, frame in (("training", parts.training), ("validation", parts.validation),
                        ("test", parts.test)):
        # Hashing the rows captures both the ratings and the split config (ratios, seed).
        yield Output(frame, output_name=name, data_version=content_data_version(frame),
                     metadata={
                         "experiment": context.partition_key,
                         "rows": counts[name],
                         "share": counts[name] / total if total else 0.0,
                         "ratios": str(list(config.split.ratios)),
                         "seed": config.split.seed,
                     })
