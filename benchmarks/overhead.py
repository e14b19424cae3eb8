"""Dagster overhead: one experiment computed by the project's core functions from a plain Python
script, against the same experiment materialized through Dagster.

usage (from the repo root):
    python benchmarks/overhead.py [--experiment nb_final] [--repeat 1]
        [--data DIR] [--out benchmarks/results/overhead.json]

Three variants, each a fresh process (own JVM), same data (ml-latest-small), local[2], 6g,
experiments from benchmarks/notebook_experiments.yaml:
  plain:          the asset bodies' calls (load+validate ratings, movies, split + check, tune,
                  fit + baseline check, factors, recommendations, similarity, evaluation, cold
                  start, and the sample-user report where the Dagster side's selection has it:
                  not for nb_final), DataFrames passed in memory, nothing written.
  plain+storage:  the same, but every asset output is written with the project's VersionedStore
                  and read back for its consumers, as the IO manager does.
  dagster:        sources then the experiment partition through Dagster (compare_notebook.py's
                  driver: in-process runs, one SparkSession).
overhead of Dagster = dagster / plain - 1; the storage share = plain+storage / plain - 1.
The repetitions take the variants in the six orders of ORDERS in turn: with --repeat 6 (or a
multiple) each variant runs in each place, and right after each other variant, equally often,
so an effect of place or of the run before cancels in the means (overhead_balanced_means).
--pause S sleeps S seconds, untimed, before every measured run.
The dagster variant also times where its seconds go outside the asset bodies' own work
(_attribution.py): Dagster's machinery (its import, the instance, run creation, the event log,
the inputs' data versions) apart from the project's glue (IO manager, plots, data-version
queries).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _attribution import DAGSTER_PARTS  # noqa: E402
from _common import (  # noqa: E402
    BENCH,
    REPO,
    RESULTS,
    VENV_PY,
    ensure_class_archive,
    machine_info,
    median,
    publish_report,
    run_measured,
)
from compare_notebook import SELECTIONS  # noqa: E402

DEFAULT_DATA = (REPO.parent / "shared" / "data" / "ml-latest-small").resolve()
EXPERIMENTS_FILE = BENCH / "notebook_experiments.yaml"
# A Williams design for three variants: over the six orders each variant takes each place twice
# and follows each other variant twice. The first two are the orders of earlier results (--repeat
# 2 runs as before). On some machines the pairs followed the order (Dagster slower right after
# plain+storage than before it), so a figure that does not depend on the order needs all six.
ORDERS = (
    ("plain", "plain+storage", "dagster"),
    ("dagster", "plain+storage", "plain"),
    ("plain+storage", "dagster", "plain"),
    ("plain", "dagster", "plain+storage"),
    ("dagster", "plain", "plain+storage"),
    ("plain+storage", "plain", "dagster"),
)


def plain_main(experiment: str, persist: bool, store_root: str, out_path: str) -> None:
    t0 = time.time()
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from als_assets.assets.similarity import neighbours_markdown, rating_counts, showcase_movies
    from als_assets.core.baselines import compare_with_baseline
    from als_assets.core.cold_start import cold_start_report
    from als_assets.core.evaluation import evaluate_model
    from als_assets.core.experiments import load_experiments
    from als_assets.core.modeling import SPLIT_LABEL, fit_als, split_ratings, write_splits
    from als_assets.core.reports import pick_sample_user, sample_user_view
    from als_assets.core.spark import SparkSettings, als_blocks, build_spark_session
    from als_assets.core.storage import StoredCopy, VersionedStore
    from als_assets.core.tuning import tune
    from als_assets.resources import RatingsSource
    from als_assets.versions import combined, content_version, labelled_content_hashes

    stages: dict[str, float] = {"import": round(time.time() - t0, 2)}
    config = load_experiments(os.environ["ALS_EXPERIMENTS_FILE"])[experiment]
    store = VersionedStore(store_root)
    spark_holder = {}

    def keep(name, value, partition=experiment):
        """The IO manager's round trip (write, then consumers read the stored value)."""
        if not persist:
            return value
        store.write((name,), partition, value, tag="plain")
        return store.read((name,), partition, lambda: spark_holder["s"])

    def stage(name):
        class S:
            def __enter__(self):
                self.t = time.time()

            def __exit__(self, *a):
                stages[name] = round(time.time() - self.t, 2)
        return S()

    with stage("spark_session"):
        # The same JVM the Dagster side's resource starts: JDBC jar, class-data archive.
        from als_assets import settings
        from als_assets.core.jdbc import find_jdbc_driver

        jar = find_jdbc_driver().jar
        spark = build_spark_session(SparkSettings(
            master=os.environ["SPARK_MASTER"], driver_memory=os.environ["SPARK_DRIVER_MEMORY"],
            checkpoint_dir=str(Path(store_root) / "_checkpoints"),
            jars=(jar,) if jar else (), class_archive_dir=settings.class_archive_dir() or None))
        spark_holder["s"] = spark
        blocks = als_blocks(spark)
    from als_assets.core.ratings_check import summarize_ratings
    from als_assets.core.sources import clean_columns, clean_ratings

    source = RatingsSource(kind="movielens", movielens_dir=os.environ["ALS_MOVIELENS_DIR"])
    with stage("ratings"):
        raw = source.load_ratings(spark).persist(StorageLevel.MEMORY_AND_DISK)
        # As the asset: the cleaned rows' content hash (the data version) in the same pass.
        summary = summarize_ratings(raw, content_of=clean_columns(raw))
        assert not summary.problems, summary.problems
        ratings = keep("ratings", clean_ratings(raw), None)
        ratings_version = content_version(ratings.columns, *summary.content)
    with stage("movies"):
        movies = source.load_movies(spark).persist(StorageLevel.MEMORY_AND_DISK)
        movies.count()
        movies = keep("movies", movies, None)
    with stage("splits"):
        names = ("training", "validation", "test")
        if persist:
            # As the asset: every split written in one pass into a staging folder, hashed from
            # those files, and stored by linking them.
            with store.staging("splits") as directory:
                written = write_splits(ratings, config.split.ratios, config.split.seed,
                                       directory)
                hashes = labelled_content_hashes(written.splits.labelled, SPLIT_LABEL, names)
                for name, path in zip(names, written.paths, strict=True):
                    store.write((name,), experiment, StoredCopy("dataframe", path), tag="plain")
            training, validation, test = (store.read((name,), experiment, lambda: spark)
                                          for name in names)
        else:
            parts = split_ratings(ratings, config.split.ratios, config.split.seed)
            hashes = labelled_content_hashes(parts.labelled, SPLIT_LABEL, names)
            training, validation, test = parts.training, parts.validation, parts.test
        # The splits' content hashes (their data versions) add up to the ratings' version
        # (the disjoint-and-complete proof).
        assert combined(list(hashes.values())).data_version == ratings_version
    with stage("tuned_params"):
        tuned = keep("tuned_params", tune(training, validation, config, blocks))
    with stage("als_model"):
        # As the asset: holdout tuning's own fit of the best point, else a new fit.
        model = tuned.load_best_model()
        if model is None:
            model, _ = fit_als(training, tuned.best, config, blocks)
        compare_with_baseline(model, training, validation, config)
        model = keep("als_model", model)
    with stage("factors"):
        uf = model.userFactors.select(F.col("id").alias("user_id"), "features")
        itf = model.itemFactors.select(F.col("id").alias("movie_id"), "features")
        uf.count()
        itf.count()
        uf = keep("user_factors", uf)
        itf = keep("item_factors", itf)
    from als_assets.core.ranking import rated_outside
    from als_assets.core.topk import SIMILARITY_SCHEMA, recommend_for_users, similar_items

    with stage("user_recommendations"):
        seen = rated_outside(training, validation) if config.ranking.exclude_seen else None
        recs = recommend_for_users(uf, itf, config.ranking.k, seen).persist()
        recs.count()
        uf.count()
        recs = keep("user_recommendations", recs)
    with stage("item_similarity"):
        sim_cfg = config.similarity
        counts = rating_counts(training)
        eligible = counts.loc[counts["count"] >= sim_cfg.min_ratings, "movie_id"].to_numpy()
        neighbours = similar_items(itf, eligible, sim_cfg.top_n)
        table = spark.createDataFrame(neighbours, schema=SIMILARITY_SCHEMA)
        neighbours_markdown(neighbours, movies, showcase_movies(neighbours, counts))
        keep("item_similarity", table)
    with stage("evaluation"):
        keep("evaluation", evaluate_model(model, training, validation, test, recs, config))
    with stage("cold_start_report"):
        keep("cold_start_report", cold_start_report(model, training, test,
                                                    explicit=not config.implicit.enabled))
    # The same assets as the Dagster side materializes (compare_notebook.py's selection for
    # the experiment: nb_final leaves the sample-user report out, as the notebook prints none).
    selection = SELECTIONS.get(experiment)
    if selection is None or "sample_user_report" in selection.split(","):
        with stage("sample_user_report"):
            user = pick_sample_user(recs, test, config.sample_user)
            keep("sample_user_report", sample_user_view(training, test, recs, movies, user))
    stages["total_in_process"] = round(time.time() - t0, 2)
    Path(out_path).write_text(json.dumps(stages))


def mean_wall(rs: list[dict]) -> float:
    return sum(r["wall_s"] for r in rs) / len(rs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--experiment", default="nb_final")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="6g")
    ap.add_argument("--workdir", default="/tmp/als_bench/overhead")
    ap.add_argument("--out", default=str(RESULTS / "overhead.json"))
    ap.add_argument("--pause", type=float, default=0.0, metavar="S",
                    help="sleep S seconds (untimed) before every measured run")
    ap.add_argument("--class-archive", metavar="DIR", default="",
                    help="start every variant's JVM from the class-data archive in DIR "
                    "(ALS_JVM_CLASS_ARCHIVE; opt-in, as in the project), primed first when "
                    "missing; default: no archive")
    ap.add_argument("--_plain", help=argparse.SUPPRESS)
    ap.add_argument("--_persist", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_store", help=argparse.SUPPRESS)
    ap.add_argument("--_stages", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._plain:
        plain_main(args._plain, args._persist, args._store, args._stages)
        return
    # Every variant (child processes inherit it) reads the archive folder from here.
    os.environ["ALS_JVM_CLASS_ARCHIVE"] = args.class_archive or "off"

    variants = list(ORDERS[0])
    runs: dict[str, list] = {v: [] for v in variants}
    orders: list[tuple[str, ...]] = []
    previous = "none"

    def variant_env(wd: Path) -> dict:
        if wd.exists():
            shutil.rmtree(wd)
        home = wd / "dagster_home"
        home.mkdir(parents=True)
        (home / "dagster.yaml").touch()
        env = dict(os.environ)
        env.update({
            "SPARK_LOCAL_IP": "127.0.0.1", "ALS_SOURCE": "movielens",
            "ALS_MOVIELENS_DIR": str(Path(args.data).resolve()),
            "ALS_EXPERIMENTS_FILE": str(EXPERIMENTS_FILE),
            "ALS_STORAGE_ROOT": str(wd / "storage"), "DAGSTER_HOME": str(home),
            "SPARK_MASTER": args.master, "SPARK_DRIVER_MEMORY": args.driver_memory,
        })
        return env

    def prime() -> None:
        wd = Path(args.workdir) / "prime_class_archive"
        subprocess.run([VENV_PY, str(BENCH / "compare_notebook.py"), "--_driver", str(wd),
                        "--partitions", args.experiment], env=variant_env(wd), cwd=str(REPO),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # Both sides start the same JVM: with --class-archive, from the archive a user of that
    # folder has after a first run.
    class_archive = ensure_class_archive(args.driver_memory, prime)
    for i in range(args.repeat):
        order = ORDERS[i % len(ORDERS)]
        orders.append(order)
        for v in order:
            if args.pause:
                time.sleep(args.pause)
            wd = Path(args.workdir) / f"{v.replace('+', '_')}_{i}"
            env = variant_env(wd)
            if v == "dagster":
                cmd = [VENV_PY, str(BENCH / "compare_notebook.py"), "--_driver", str(wd),
                       "--partitions", args.experiment, "--_attribute"]
            else:
                cmd = [VENV_PY, __file__, "--_plain", args.experiment, "--_store",
                       str(wd / "storage"), "--_stages", str(wd / "stages.json")]
                if v == "plain+storage":
                    cmd.append("--_persist")
            print(f"[{i + 1}/{args.repeat}] {v} ...", file=sys.stderr, flush=True)
            res = run_measured(cmd, env=env, cwd=str(REPO), log_path=wd / "stderr.log")
            del res["stdout"]
            res["place"], res["after"] = order.index(v), previous
            previous = v
            if res["returncode"] != 0:
                raise SystemExit(f"{v} failed; see {wd}/stderr.log")
            if v == "dagster":
                drv = json.loads((wd / "driver.json").read_text())
                # The benchmark's own event-log queries after each run (per-step times for this
                # report): in the process's wall time, but no user's.
                res["bookkeeping_s"] = drv["bookkeeping_s"]
                res["stages"] = {"import": drv["import_s"]}
                res["attribution"] = {"import dagster": {"seconds": drv["import_dagster_s"],
                                                         "calls": 1},
                                      **drv["attribution"]}
                for run in drv["runs"]:
                    res["stages"].update(run["steps"])
                    res["stages"][f"run:{run['label']}"] = run["seconds"]
            else:
                res["stages"] = json.loads((wd / "stages.json").read_text())
            print(f"  {res['wall_s']} s, peak {res['peak_rss_mb']} MB, foreign CPU "
                  f"{res['foreign_cpu_s']} s", file=sys.stderr, flush=True)
            runs[v].append(res)

    summary = {v: {"wall_s": median([r["wall_s"] for r in rs]),
                   "peak_rss_mb": median([r["peak_rss_mb"] for r in rs]),
                   "foreign_cpu_s": median([r["foreign_cpu_s"] for r in rs]),
                   "tree_cpu_s": median([r["tree_cpu_s"] for r in rs])}
               for v, rs in runs.items()}
    plain = summary["plain"]["wall_s"]
    summary["overhead_dagster_vs_plain"] = round(summary["dagster"]["wall_s"] / plain - 1, 3)
    summary["overhead_storage_vs_plain"] = round(summary["plain+storage"]["wall_s"] / plain - 1, 3)
    summary["overhead_dagster_vs_plain_storage"] = round(
        summary["dagster"]["wall_s"] / summary["plain+storage"]["wall_s"] - 1, 3)
    # Each repetition's runs follow one another, so a ratio within one repetition sees one
    # state of the machine; its median is steadier than the ratio of medians when it drifts.
    paired = [round(d["wall_s"] / p["wall_s"] - 1, 3)
              for d, p in zip(runs["dagster"], runs["plain+storage"], strict=True)]
    summary["paired_overhead_vs_plain_storage"] = paired
    summary["paired_overhead_vs_plain_storage_median"] = median(paired)
    # The variants alternate their order. Where the pairs' ratios follow the order (Dagster
    # slower when it runs after plain+storage than before it), that is a bias of position, which
    # the mean of the two orders' medians cancels when both orders ran.
    after = [x for x, o in zip(paired, orders, strict=True)
             if o.index("dagster") > o.index("plain+storage")]
    before = [x for x, o in zip(paired, orders, strict=True)
              if o.index("dagster") < o.index("plain+storage")]
    summary["paired_overhead_dagster_after"] = after
    summary["paired_overhead_dagster_before"] = before
    summary["paired_overhead_order_balanced"] = (
        round((median(after) + median(before)) / 2, 3) if after and before else None)
    # In a balanced design (every order equally often) place and predecessor effects cancel in
    # the means over all runs; the medians need not.
    balanced = args.repeat % len(ORDERS) == 0
    summary["overhead_balanced_means"] = (
        round(mean_wall(runs["dagster"]) / mean_wall(runs["plain+storage"]) - 1, 3)
        if balanced else None)
    summary["dagster_bookkeeping_s"] = median([r["bookkeeping_s"] for r in runs["dagster"]])
    summary["wall_by_place"] = {v: {p: round(mean_wall([r for r in rs if r["place"] == p]), 2)
                                    for p in sorted({r["place"] for r in rs})}
                                for v, rs in runs.items()}
    summary["wall_by_previous_run"] = {
        v: {a: round(mean_wall([r for r in rs if r["after"] == a]), 2)
            for a in sorted({r["after"] for r in rs})} for v, rs in runs.items()}
    cpu = summary["plain"]["tree_cpu_s"]
    summary["cpu_overhead_dagster_vs_plain"] = round(summary["dagster"]["tree_cpu_s"] / cpu - 1, 3)
    summary["cpu_overhead_dagster_vs_plain_storage"] = round(
        summary["dagster"]["tree_cpu_s"] / summary["plain+storage"]["tree_cpu_s"] - 1, 3)
    parts = list(runs["dagster"][0]["attribution"])
    summary["dagster_parts_s"] = {
        part: median([r["attribution"][part]["seconds"] for r in runs["dagster"]])
        for part in parts}
    dagster_own = [p for p in parts if p == "import dagster" or p in DAGSTER_PARTS]
    summary["dagster_machinery_s"] = round(
        median([sum(r["attribution"][p]["seconds"] for p in dagster_own)
                for r in runs["dagster"]]), 2)
    summary["dagster_machinery_vs_plain_storage"] = round(
        summary["dagster_machinery_s"] / summary["plain+storage"]["wall_s"], 3)
    stage_names = list(runs["plain"][0]["stages"])
    lines = [f"experiment {args.experiment}, {args.repeat} repetition(s), medians:",
             "| variant | wall s | CPU s (tree) | peak RSS MB | CPU s by others |",
             "|---|---:|---:|---:|---:|"]
    for v in variants:
        s = summary[v]
        lines.append(f"| {v} | {s['wall_s']} | {s['tree_cpu_s']} | {s['peak_rss_mb']} | "
                     f"{s['foreign_cpu_s']} |")
    lines.append(f"\nDagster vs plain: {summary['overhead_dagster_vs_plain']:+.1%} (target < 10%); "
                 f"storage round trips alone: {summary['overhead_storage_vs_plain']:+.1%}; "
                 f"Dagster vs plain+storage: {summary['overhead_dagster_vs_plain_storage']:+.1%}")
    lines.append("Dagster vs plain+storage within each repetition: "
                 + ", ".join(f"{x:+.1%}" for x in paired)
                 + f" (median {summary['paired_overhead_vs_plain_storage_median']:+.1%})")
    if summary["paired_overhead_order_balanced"] is not None:
        lines.append(f"the same by order: Dagster after plain+storage "
                     f"{median(after):+.1%} ({len(after)}), before it {median(before):+.1%} "
                     f"({len(before)}); the two orders' mean "
                     f"{summary['paired_overhead_order_balanced']:+.1%}")
    if balanced:
        lines.append(f"balanced over all {len(ORDERS)} orders, by the means: Dagster vs "
                     f"plain+storage {summary['overhead_balanced_means']:+.1%}")
    lines.append(f"of the Dagster process's wall, the benchmark's own event-log queries (no "
                 f"user's): {summary['dagster_bookkeeping_s']} s")
    lines.append("mean wall s by place (0 first): " + "; ".join(
        f"{v} " + ", ".join(f"{p}: {w}" for p, w in by.items())
        for v, by in summary["wall_by_place"].items()))
    lines.append("mean wall s by the run before: " + "; ".join(
        f"{v} " + ", ".join(f"after {a}: {w}" for a, w in by.items())
        for v, by in summary["wall_by_previous_run"].items()))
    lines.append(f"by CPU seconds of the process tree (less sensitive to other load): Dagster vs "
                 f"plain {summary['cpu_overhead_dagster_vs_plain']:+.1%}, vs plain+storage "
                 f"{summary['cpu_overhead_dagster_vs_plain_storage']:+.1%}")
    lines += ["", "the Dagster side's seconds outside the asset bodies' own work, medians "
              "(benchmarks/_attribution.py):", "| part | seconds | calls (last repetition) |",
              "|---|---:|---:|"]
    for part in parts:
        owner = "Dagster" if part in dagster_own else "project"
        lines.append(f"| {owner}: {part} | {summary['dagster_parts_s'][part]} | "
                     f"{runs['dagster'][-1]['attribution'][part]['calls']} |")
    lines.append(f"\nDagster's own machinery (imports, instance, run creation, event log, inputs' "
                 f"data versions): {summary['dagster_machinery_s']} s, "
                 f"{summary['dagster_machinery_vs_plain_storage']:.1%} of plain+storage's wall")
    lines += ["", "per stage, seconds (last repetition):",
              "| stage | plain | plain+storage | dagster step |", "|---|---:|---:|---:|"]
    for s in stage_names + [k for k in runs["dagster"][-1]["stages"] if k not in stage_names]:
        lines.append(f"| {s} | " + " | ".join(str(runs[v][-1]["stages"].get(s, "-"))
                                             for v in variants) + " |")
    publish_report({"machine": {**machine_info(), "class_archive": class_archive},
                    "args": vars(args), "summary": summary,
                    "runs": runs}, lines, Path(args.out))


if __name__ == "__main__":
    main()
