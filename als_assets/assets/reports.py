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

from ..automation import SUMMARY_CONDITION
from ..core.reports import (
    LEADERBOARD_METRICS,
    leaderboard_frame,
    pick_sample_user,
    sample_user_view,
)
from ..partitions import CHAMPION_RULE, EXPERIMENTS, experiment_config
from ..versions import OWNERS, config_data_version, config_hash
from .evaluation import evaluation
from .experiment_asset import experiment_asset

SAMPLE_USER_REPORT_CODE_VERSION = "sample_user_report-1"
LEADERBOARD_CODE_VERSION = "experiment_leaderboard-2"


@experiment_asset(
    group="reports",
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


LEADERBOARD_PARAMS = ("rank", "max_iter", "reg_param", "alpha", "tuning_method", "tuning_metric",
                      "implicit", "k")


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
    shown["serving"] = ["**★ champion**" if v == "champion" else v for v in shown["serving"]]
    if "run_id" in shown:
        shown["run_id"] = [f"[{run[:8]}](/runs/{run})" for run in shown["run_id"]]
    return shown.to_markdown(index=False, floatfmt=".4f")


def latest_metadata(instance, asset: str, partition: str) -> tuple[dict, str] | None:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]), limit=1,
    ).records
    if not records:
        return None
    event = records[0].asset_materialization
    return {k: v.value for k, v in event.metadata.items()}, records[0].run_id


@asset(
    group_name="reports",
    deps=[evaluation, "als_model"],
    owners=OWNERS,
    automation_condition=SUMMARY_CONDITION,
    kinds={"pandas"},
    code_version=LEADERBOARD_CODE_VERSION,
    description="Every evaluated experiment: validation score vs most-popular (what the "
    "champion is chosen by), test metrics beside the baselines', and which one is served.",
)
def experiment_leaderboard(context: AssetExecutionContext):
    """Read from the latest `als_model` (validation) and `evaluation` (test) materialization of
    each experiment; experiments never evaluated, and tuning studies (`stop_after:
    tuned_params`, no model), are listed apart."""
    rows, missing, tuning_only = [], [], []
    for name in EXPERIMENTS:
        if EXPERIMENTS[name].stop_after is not None:
            tuning_only.append(name)
            continue
        evaluated = latest_metadata(context.instance, "evaluation", name)
        model = latest_metadata(context.instance, "als_model", name)
        if evaluated is None or model is None:
            missing.append(name)
            continue
        meta, run_id = evaluated
        row = {"experiment": name, "run_id": run_id}
        row.update({k: v for k, v in model[0].items() if k.startswith("validation_")
                    and isinstance(v, (int, float))})
        row.update({k: meta.get(k) for k in LEADERBOARD_PARAMS})
        row.update({k: meta.get(k) for k in LEADERBOARD_METRICS})
        # Whether the experiment's config still is what this evaluation ran with.
        recorded = meta.get("config_hash")
        row["config"] = ("unknown" if recorded is None else
                         "current" if recorded == config_hash(EXPERIMENTS[name]) else "edited")
        rows.append(row)
    frame = leaderboard_frame(rows, CHAMPION_RULE)
    served = frame.loc[frame["serving"] == "champion", "experiment"] if len(frame) else []
    return Output(frame, metadata={
        "experiments": len(frame),
        "champion": served.iloc[0] if len(served) else "none eligible",
        "rule": f"best validation {CHAMPION_RULE.metric} at K={CHAMPION_RULE.k}, at least "
                f"{CHAMPION_RULE.min_lift:+.0%} vs most-popular",
        "not_materialized": ", ".join(missing) or "none",
        # Their best params and scores are on each one's tuned_params page.
        "tuning_only": ", ".join(tuning_only) or "none",
        "leaderboard": MetadataValue.md(leaderboard_markdown(frame)),
    })
