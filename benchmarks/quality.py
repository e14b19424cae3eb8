"""Recommendation quality: every shipped experiment's lists against most-popular and random.

Materializes the sources, the shipped experiments, the leaderboard and the champion into a
throwaway Dagster home and storage root, then prints, per experiment: the validation score the
champion is chosen by, and the test figures under both relevance protocols beside most-popular's
on the same users (the ratio is the model's over most-popular's), coverage and popularity bias.

    python benchmarks/quality.py --movielens ../shared/data/ml-latest-small
    python benchmarks/quality.py                      # the synthetic default (100k ratings)
    python benchmarks/quality.py --experiments implicit_ranking final_task

Results go to benchmarks/results/quality_<source>.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, git_state, machine_info, publish_report  # noqa: E402

COLUMNS = ("validation_ndcg_at_k", "validation_most_popular_ndcg_at_k", "ndcg_at_k",
           "most_popular_ndcg_at_k", "precision_at_k", "most_popular_precision_at_k",
           "ndcg_at_k_all_relevant", "most_popular_ndcg_at_k_all_relevant",
           "precision_at_k_all_relevant", "most_popular_precision_at_k_all_relevant",
           "random_ndcg_at_k", "coverage", "most_popular_coverage", "popularity_bias",
           "most_popular_popularity_bias", "popular_overlap")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--movielens", help="a MovieLens folder (default: synthetic data)")
    parser.add_argument("--experiments", nargs="*", help="default: every shipped experiment")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="als_quality_"))
    os.environ["DAGSTER_HOME"] = str(work / "home")
    os.environ["ALS_STORAGE_ROOT"] = str(work / "storage")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if args.movielens:
        os.environ["ALS_SOURCE"] = "movielens"
        os.environ["ALS_MOVIELENS_DIR"] = str(Path(args.movielens).resolve())
    (work / "home").mkdir(parents=True)
    (work / "home" / "dagster.yaml").write_text("")

    # The definitions read their settings at import.
    from dagster import AssetSelection, DagsterInstance, materialize

    from als_assets.definitions import all_assets, resources
    from als_assets.partitions import CHAMPION_RULE, EXPERIMENTS

    names = args.experiments or [n for n, c in EXPERIMENTS.items() if c.stop_after is None]
    instance = DagsterInstance.get()
    seconds = {}
    start = time.perf_counter()
    assert materialize(all_assets, resources=resources, instance=instance,
                       selection=AssetSelection.assets("ratings", "movies")).success
    for name in names:
        began = time.perf_counter()
        assert materialize(all_assets, resources=resources, instance=instance,
                           selection=AssetSelection.tag("scope", "experiment"),
                           partition_key=name).success, name
        seconds[name] = time.perf_counter() - began
    board_ok = materialize(all_assets, resources=resources, instance=instance,
                           selection=["experiment_leaderboard", "champion"],
                           raise_on_error=False).success
    from als_assets.definitions import defs

    board = defs.load_asset_value("experiment_leaderboard", instance=instance)
    champion = defs.load_asset_value("champion", instance=instance) if board_ok else None

    source = "movielens" if args.movielens else "synthetic"
    lines = [f"Recommendation quality on {args.movielens or 'the synthetic default'} "
             f"(K={CHAMPION_RULE.k}; ratios are model / most-popular on the same users)", ""]
    rows = []
    for _, row in board.iterrows():
        name = row["experiment"]
        out = {"experiment": name, "serving": row["serving"], "seconds": seconds.get(name)}
        out.update({c: float(row[c]) if row.get(c) is not None else None for c in COLUMNS})
        rows.append(out)

        def ratio(metric, r=out):
            base = r[f"most_popular_{metric}"]
            return r[metric] / base if base else float("nan")

        lines.append(
            f"{name:18s} {row['serving'][:12]:12s} val NDCG {out['validation_ndcg_at_k']:.4f} "
            f"(popular {out['validation_most_popular_ndcg_at_k']:.4f}) | test, rating >= 4 "
            f"relevant: NDCG {out['ndcg_at_k']:.4f} ({ratio('ndcg_at_k'):.2f}x) P "
            f"{out['precision_at_k']:.4f} ({ratio('precision_at_k'):.2f}x) | all relevant: NDCG "
            f"{out['ndcg_at_k_all_relevant']:.4f} ({ratio('ndcg_at_k_all_relevant'):.2f}x) P "
            f"{out['precision_at_k_all_relevant']:.4f} "
            f"({ratio('precision_at_k_all_relevant'):.2f}x) | coverage {out['coverage']:.3f} "
            f"popularity bias {out['popularity_bias']:.1f} | {out['seconds'] or 0:.0f} s")
    lines += ["", f"champion: {champion.experiment if champion else 'none eligible'}",
              f"  {champion.reason if champion else ''}",
              f"total {time.perf_counter() - start:.0f} s"]
    report = {"source": source, "movielens": args.movielens, "rule": vars(CHAMPION_RULE),
              "champion": champion.experiment if champion else None, "experiments": rows,
              "machine": machine_info(), "git": git_state()}
    publish_report(report, lines, RESULTS / f"quality_{source}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
