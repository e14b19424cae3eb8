"""Reports for people: a sample user's recommendations, and the leaderboard of experiments."""


from urllib.parse import quote

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    MetadataValue,
    Output,
    asset,
)

from ..core.reports import leaderboard_frame, pick_sample_user, sample_user_view
from ..partitions import EXPERIMENTS, experiment_config, experiment_partitions
from ..versions import OWNERS, config_data_version, config_hash, experiment_tags
from .evaluation import evaluation

SAMPLE_USER_REPORT_CODE_VERSION = "sample_user_report-1"
LEADERBOARD_CODE_VERSION = "experiment_leaderboard-1"


@asset(
    group_name="reports",
    partitions_def=experiment_partitions,
    tags=experiment_tags(model="als"),
    owners=OWNERS,
    kinds={"spark"},
    code_version=SAMPLE_USER_REPORT_CODE_VERSION,
    description="A user's top-10 rated movies beside their top-10 recommendations, with titles.",
)
def sample_user_report(context: AssetExecutionContext, training, test, user_recommendations,
                       movies):
    config = experiment_config(context)
    user = pick_sample_user(user_recommendations, test, config.sample_user)
    report = sample_user_view(training, test, user_recommendations, movies, user)
    hits = int(report.recommended["test_rating"].notna().sum())
    version = config_data_version(context, SAMPLE_USER_REPORT_CODE_VERSION,
                                  ["training", "test", "user_recommendations", "movies"],
                                  {"sample_user": config.sample_user})
    return Output(report, data_version=version, metadata={
        "experiment": context.partition_key,
        "user_id": user,
        "hits_in_test": hits,
        "report": MetadataValue.md(report.markdown()),
    })


LEADERBOARD_PARAMS = ("rank", "max_iter", "reg_param", "alpha", "tuning_method", "implicit", "k")


def partition_link(asset: str, partition: str) -> str:
    """A link to the asset's partition page in the Dagster UI (relative: it works on any host)."""
    return f"/assets/{asset}?view=partitions&partition={quote(partition, safe='')}"


def leaderboard_markdown(frame: pd.DataFrame) -> str:
    """The leaderboard as a markdown table, each experiment linked to its evaluation page."""
    if not len(frame):
        return "No experiment has been evaluated yet."
    shown = frame.copy()
    shown["experiment"] = [f"[{name}]({partition_link('evaluation', name)})"
                           for name in shown["experiment"]]
    if "run_id" in shown:
        shown["run_id"] = [f"[{run[:8]}](/runs/{run})" for run in shown["run_id"]]
    return shown.to_markdown(index=False, floatfmt=".4f")


@asset(
    group_name="reports",
    deps=[evaluation],
    owners=OWNERS,
    kinds={"pandas"},
    code_version=LEADERBOARD_CODE_VERSION,
    description="Every materialized experiment's params and test metrics, best first.",
)
def experiment_leaderboard(context: AssetExecutionContext):
    """Read from the latest `evaluation` materialization of each experiment; experiments never
    materialized, and tuning studies (`stop_after: tuned_params`, no test metrics), are listed
    apart."""
    rows, missing, tuning_only = [], [], []
    for name in EXPERIMENTS:
        if EXPERIMENTS[name].stop_after is not None:
            tuning_only.append(name)
            continue
        records = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("evaluation"), asset_partitions=[name]),
            limit=1,
        ).records
        if not records:
            missing.append(name)
            continue
        event = records[0].asset_materialization
        meta = {k: v.value for k, v in event.metadata.items()}
        row = {"experiment": name, "run_id": records[0].run_id}
        row.update({k: meta.get(k) for k in LEADERBOARD_PARAMS})
        row.update({k: meta.get(k) for k in ("ndcg_at_k", "precision_at_k", "recall_at_k",
                                             "map_at_k", "rmse", "mae")})
        # Whether the experiment's config still is what this evaluation ran with.
        recorded = meta.get("config_hash")
        row["config"] = ("unknown" if recorded is None else
                         "current" if recorded == config_hash(EXPERIMENTS[name]) else "edited")
        rows.append(row)
    frame = leaderboard_frame(rows)
    return Output(frame, metadata={
        "experiments": len(frame),
        "not_materialized": ", ".join(missing) or "none",
        # Their best params and scores are on each one's tuned_params page.
        "tuning_only": ", ".join(tuning_only) or "none",
        "leaderboard": MetadataValue.md(leaderboard_markdown(frame)),
    })
