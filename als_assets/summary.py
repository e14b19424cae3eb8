"""Print what the last materialization of an experiment recorded: `python -m als_assets.summary
NAME`. Reads Dagster's event log (DAGSTER_HOME), so it shows exactly what the UI shows."""

from __future__ import annotations

import argparse
import sys

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

SECTIONS = {
    "tuned_params": ("method", "metric", "best_score", "baseline", "baseline_score",
                     "best_rank", "best_max_iter", "best_reg_param", "best_alpha", "grid_points",
                     "failed_points", "tuning_seconds"),
    "als_model": ("rank", "max_iter", "reg_param", "alpha", "fit_seconds", "validation_rmse",
                  "baseline_validation_rmse", "validation_ndcg_at_k",
                  "validation_most_popular_ndcg_at_k", "storage_path"),
    "evaluation": ("rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k",
                   "ndcg_at_k_all_relevant", "precision_at_k_all_relevant", "k",
                   "users_evaluated", "baseline_rmse_global_mean", "most_popular_ndcg_at_k",
                   "most_popular_precision_at_k", "random_ndcg_at_k", "coverage",
                   "most_popular_coverage", "popularity_bias", "most_popular_popularity_bias",
                   "popular_overlap"),
    "cold_start_report": ("nan_share", "rmse_drop", "rmse_global_mean_fill",
                          "rmse_item_mean_fill", "rmse_bias_fill"),
    "item_similarity": ("rows", "items_with_neighbours", "top_n"),
}


def latest_metadata(instance: DagsterInstance, asset: str, partition: str | None) -> dict:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset),
                           asset_partitions=[partition] if partition else None),
        limit=1,
    ).records
    if not records:
        return {}
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("experiment", help="experiment (partition) name")
    args = parser.parse_args(argv)
    instance = DagsterInstance.get()
    found = False
    print(f"\nExperiment {args.experiment}")
    for asset, keys in SECTIONS.items():
        meta = latest_metadata(instance, asset, args.experiment)
        if not meta:
            continue
        found = True
        print(f"  {asset}:")
        for key in keys:
            if key in meta:
                value = meta[key]
                shown = f"{value:.4f}" if isinstance(value, float) else value
                print(f"    {key:28s} {shown}")
    board = latest_metadata(instance, "experiment_leaderboard", None)
    if board.get("leaderboard"):
        print("\nLeaderboard\n" + board["leaderboard"])
    served = latest_metadata(instance, "champion", None)
    if served.get("summary"):
        print("\nServed\n" + served["summary"])
    if not found:
        print(f"  nothing materialized for {args.experiment!r} in {instance.root_directory}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
