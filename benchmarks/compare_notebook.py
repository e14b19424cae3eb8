"""The seed notebook (baseline script) against the project doing the same work through Dagster.

usage (from the repo root):
    python benchmarks/compare_notebook.py [--data DIR] [--repeat 3]
        [--out benchmarks/results/compare_notebook.json] [--project-mode driver|cli]

Each repetition runs both sides on the same data and machine, alternating which goes first:
  baseline: python ../shared/bench/seed_notebook.py --data DIR --master local[2]
  project:  the experiments of benchmarks/notebook_experiments.yaml (the notebook's stages and
            grids) materialized through Dagster with SPARK_MASTER=local[2],
            SPARK_DRIVER_MEMORY=6g (the baseline's default), a fresh DAGSTER_HOME and storage.
            --project-mode driver (default): one Python process, one SparkSession/JVM; it runs
            `ratings,movies` once, then one in-process Dagster run per experiment partition
            (the same implicit asset job and in-process executor `dagster asset materialize`
            uses). --project-mode cli: one `dagster asset materialize` invocation for the
            sources and one per experiment (a new Python + JVM each).
Wall time and peak RSS of each side's whole process tree (Python + the JVM child, sampled from
/proc every 0.2 s), and CPU seconds used by other processes during the run, are recorded.
Project figures come from the Dagster instance's materialization metadata and the stored
values the metadata points at; baseline figures from the script's JSON.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from _common import (  # noqa: E402
    BENCH,
    REPO,
    RESULTS,
    VENV_PY,
    ensure_class_archive,
    machine_info,
    median,
    publish_report,
    run_bounds,
    run_measured,
    step_durations,
    step_windows,
    write_json,
)

BASELINE_SCRIPT = (REPO.parent / "shared" / "bench" / "seed_notebook.py").resolve()
DEFAULT_DATA = (REPO.parent / "shared" / "data" / "ml-latest-small").resolve()
EXPERIMENTS_FILE = BENCH / "notebook_experiments.yaml"
PARTITIONS = ["nb_manual_grid", "nb_cv", "nb_tvs", "nb_final", "nb_implicit"]
SHOWCASE = (1, 2571, 318)
# What each notebook cell computes, as the assets to materialize (default: every per-experiment
# asset). The notebook's final cells print no per-user report, and its implicit cell only fits
# the model and recommends for one user (no evaluation, cold start or similarity).
EXPERIMENT_ASSETS = "tag:scope=experiment"
_SPLITS_TO_RECS = "training,validation,test,tuned_params,als_model,user_factors,item_factors," \
    "user_recommendations"
SELECTIONS = {
    "nb_final": _SPLITS_TO_RECS + ",item_similarity,evaluation,cold_start_report",
    "nb_implicit": _SPLITS_TO_RECS,
}
DAGSTER = str(Path(sys.executable).with_name("dagster"))


# ---------------------------------------------------------------------------------------------
# Project side, driver mode: runs inside its own process (sampled by the parent).


def spark_jobs_by_window(windows: dict[str, tuple[float, float]]) -> dict:
    """Spark jobs of the live SparkContext, assigned to the step whose time window holds their
    submission, with counts per call site (job name)."""
    from pyspark import SparkContext

    sc = SparkContext._active_spark_context
    if sc is None:
        return {}
    jobs = sc._jsc.sc().statusStore().jobsList(None)
    out: dict[str, dict] = {}
    n = jobs.size()
    for i in range(n):
        j = jobs.apply(i)
        sub = j.submissionTime()
        if sub.isEmpty():
            continue
        t = sub.get().getTime() / 1000.0
        done = j.completionTime()
        dur = (done.get().getTime() / 1000.0 - t) if not done.isEmpty() else None
        name = j.name()
        step = next((k for k, (a, b) in windows.items() if a <= t <= b), "(between steps)")
        slot = out.setdefault(step, {"jobs": 0, "job_seconds": 0.0, "by_callsite": {}})
        slot["jobs"] += 1
        slot["job_seconds"] += dur or 0.0
        site = slot["by_callsite"].setdefault(name, [0, 0.0])
        site[0] += 1
        site[1] += dur or 0.0
    for slot in out.values():
        slot["job_seconds"] = round(slot["job_seconds"], 2)
        slot["by_callsite"] = {k: [v[0], round(v[1], 2)] for k, v in sorted(
            slot["by_callsite"].items(), key=lambda kv: -kv[1][1])}
    return {"total_jobs": n, "by_step": out}


class PeakRss:
    """Peak resident memory of this process (the Dagster/Python driver, not its JVM) since the
    last `take()`, sampled from /proc every 0.1 s: each run's own peak, so the experiment's is
    not hidden under the sources run's."""

    def __init__(self) -> None:
        self._peak = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._sample, daemon=True).start()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while True:
            with self._lock:
                self._peak = max(self._peak, self._rss())
            time.sleep(0.1)

    def take(self) -> tuple[float, float]:
        """(the peak in MB since the last call, the RSS now); a new window starts. Memory the
        previous run freed is first handed back to the system (glibc's malloc_trim), so the
        next window starts from what the process still holds, not from freed heap pages."""
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        with self._lock:
            peak, now = max(self._peak, self._rss()), self._rss()
            self._peak = now
        return round(peak / 2**20, 1), round(now / 2**20, 1)


def fit_seconds(instance, partition: str) -> float | None:
    """The ALS fit's own seconds as `als_model` recorded them (the tuning fit it reused)."""
    from dagster import AssetKey, AssetRecordsFilter

    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("als_model"), asset_partitions=[partition]),
        limit=1).records
    if not records:
        return None
    value = records[0].asset_materialization.metadata.get("fit_seconds")
    return None if value is None else round(float(value.value), 2)


def driver_main(workdir: Path, partitions: list[str], collect_jobs: bool,
                attribute: bool = False) -> None:
    t0 = time.time()
    from dagster import AssetSelection, DagsterInstance

    t_dagster = time.time() - t0
    from als_assets.definitions import defs

    t_import = time.time() - t0
    report = {"import_s": round(t_import, 2), "import_dagster_s": round(t_dagster, 2),
              "runs": [], "bookkeeping_s": 0.0}
    attribution = None
    if attribute:  # overhead.py: where the seconds outside the asset bodies go
        from _attribution import install

        attribution = install()
    rss = PeakRss()
    rss_at_start = [rss.take()[1]]  # the RSS each run starts from
    with DagsterInstance.get() as instance:
        repo = defs.get_repository_def()
        graph = repo.asset_graph
        windows: dict[str, tuple[float, float]] = {}

        def go(select: str, partition: str | None, label: str) -> None:
            keys = AssetSelection.from_coercible(select.split(",")).resolve(graph)
            job = repo.get_implicit_job_def_for_assets(keys)
            start = time.time()
            result = job.execute_in_process(instance=instance, partition_key=partition,
                                            asset_selection=list(keys))
            seconds = time.time() - start
            peak_rss, rss_after = rss.take()
            run_id = result.run_id
            # The benchmark's own event-log queries, not a user's: timed apart (bookkeeping_s)
            # so that overhead.py can tell them from what Dagster costs.
            t_books = time.time()
            report["runs"].append({
                "label": label, "partition": partition, "run_id": run_id,
                "success": result.success, "seconds": round(seconds, 2),
                "driver_rss_at_start_mb": rss_at_start[0], "driver_peak_rss_mb": peak_rss,
                "fit_seconds": fit_seconds(instance, partition) if partition else None,
                "steps": step_durations(instance, run_id), **run_bounds(instance, run_id),
            })
            rss_at_start[0] = rss_after
            windows.update({f"{label}:{k}": w
                            for k, w in step_windows(instance, run_id).items()})
            report["bookkeeping_s"] = round(report["bookkeeping_s"] + time.time() - t_books, 3)
            print(f"[driver] {label}: {seconds:.1f}s success={result.success}", file=sys.stderr,
                  flush=True)
            if not result.success:
                raise SystemExit(f"run {label} failed")

        go("ratings,movies", None, "sources")
        for p in partitions:
            go(SELECTIONS.get(p, EXPERIMENT_ASSETS), p, p)
        report["materialize_total_s"] = round(time.time() - t0 - t_import, 2)
        if collect_jobs:
            t1 = time.time()
            report["spark_jobs"] = spark_jobs_by_window(windows)
            report["spark_jobs_collect_s"] = round(time.time() - t1, 2)
    report["process_s_before_exit"] = round(time.time() - t0, 2)
    if attribution is not None:
        report["attribution"] = attribution.report()
    write_json(workdir / "driver.json", report)


# ---------------------------------------------------------------------------------------------
# Parent: run sides, measure, collect figures.


def project_env(workdir: Path, data: Path, master: str, driver_memory: str,
                retained_jobs: bool) -> dict:
    home = workdir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").touch()
    env = dict(os.environ)
    env.update({
        "SPARK_LOCAL_IP": "127.0.0.1",
        "ALS_SOURCE": "movielens",
        "ALS_MOVIELENS_DIR": str(data),
        "ALS_EXPERIMENTS_FILE": os.environ.get("ALS_BENCH_EXPERIMENTS", str(EXPERIMENTS_FILE)),
        "ALS_STORAGE_ROOT": str(workdir / "storage"),
        "DAGSTER_HOME": str(home),
        "SPARK_MASTER": master,
        "SPARK_DRIVER_MEMORY": driver_memory,
    })
    if retained_jobs:
        # Keep every Spark job in the status store (default 1000) so they can be counted.
        # Driver-side bookkeeping only; it does not change what Spark computes.
        env["PYSPARK_SUBMIT_ARGS"] = "--conf spark.ui.retainedJobs=100000 pyspark-shell"
    return env


def run_baseline(data: Path, master: str, logdir: Path) -> dict:
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
    cmd = [VENV_PY, str(BASELINE_SCRIPT), "--data", str(data), "--master", master]
    res = run_measured(cmd, env=env, cwd=str(REPO), log_path=logdir / "baseline.stderr")
    if res["returncode"] != 0:
        raise SystemExit(f"baseline failed ({res['returncode']}); see {logdir}/baseline.stderr")
    line = [x for x in res["stdout"].splitlines() if x.startswith("{")][-1]
    res["result"] = json.loads(line)
    del res["stdout"]
    return res


def run_project(mode: str, data: Path, master: str, driver_memory: str, workdir: Path,
                partitions: list[str], collect_jobs: bool) -> dict:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    env = project_env(workdir, data, master, driver_memory, retained_jobs=collect_jobs)
    if mode == "driver":
        cmd = [VENV_PY, str(Path(__file__).resolve()), "--_driver", str(workdir),
               "--partitions", ",".join(partitions)] + (["--_jobs"] if collect_jobs else [])
    else:
        parts = [f"{DAGSTER} asset materialize -m als_assets.definitions --select ratings,movies"]
        parts += [f"{DAGSTER} asset materialize -m als_assets.definitions --select "
                  f"'{SELECTIONS.get(p, EXPERIMENT_ASSETS)}' --partition {p}" for p in partitions]
        cmd = ["bash", "-c", " && ".join(parts)]
    res = run_measured(cmd, env=env, cwd=str(REPO), log_path=workdir / "project.stderr")
    del res["stdout"]
    if res["returncode"] != 0:
        raise SystemExit(f"project failed ({res['returncode']}); see {workdir}/project.stderr")
    if mode == "driver":
        res["driver"] = json.loads((workdir / "driver.json").read_text())
    return res


def _meta(record) -> dict:
    out = {}
    for k, v in record.asset_materialization.metadata.items():
        val = v.value
        out[k] = val if isinstance(val, (int, float, str, bool, type(None))) else str(val)
    return out


def project_figures(workdir: Path, partitions: list[str]) -> dict:
    """Figures from the instance's materializations and the stored values they point at."""
    import pandas as pd
    from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

    os.environ["DAGSTER_HOME"] = str(workdir / "dagster_home")
    figs: dict = {"experiments": {}}
    with DagsterInstance.get() as instance:
        def latest(key: str, partition: str | None):
            f = AssetRecordsFilter(asset_key=AssetKey(key),
                                   asset_partitions=[partition] if partition else None)
            recs = instance.fetch_materializations(f, limit=1).records
            return recs[0] if recs else None

        r = latest("ratings", None)
        figs["ratings"] = _meta(r)["rows"] if r else None
        m = latest("movies", None)
        figs["movies"] = _meta(m)["rows"] if m else None
        # runs, with per-step durations (also for --project-mode cli)
        figs["runs"] = []
        for run in reversed(instance.get_runs()):
            figs["runs"].append({"run_id": run.run_id, "tags": {
                k: v for k, v in run.tags.items() if k == "dagster/partition"},
                "steps": step_durations(instance, run.run_id), **run_bounds(instance, run.run_id)})
        for p in partitions:
            e: dict = {}
            for key in ("training", "validation", "test", "tuned_params", "als_model",
                        "evaluation", "cold_start_report", "item_similarity",
                        "user_recommendations"):
                rec = latest(key, p)
                if rec is not None:
                    e[key] = _meta(rec)
            tp = e.get("tuned_params", {}).get("storage_path")
            if tp:
                from als_assets.core.serialization import load

                result = load(Path(tp))
                e["grid"] = [[g.params.rank, g.params.max_iter, g.params.reg_param, g.score]
                             for g in result.grid]
            sim_path = e.get("item_similarity", {}).get("storage_path")
            if sim_path:
                sim = pd.read_parquet(sim_path)
                e["similar"] = {
                    str(mid): sim[sim.movie_id == mid].sort_values("rank")[
                        "similar_movie_id"].tolist() for mid in SHOWCASE}
            recs_path = e.get("user_recommendations", {}).get("storage_path")
            if recs_path:
                recs = pd.read_parquet(recs_path)
                e["user42"] = recs[recs.user_id == 42].sort_values("rank")["movie_id"].tolist()
            figs["experiments"][p] = e
    return figs


def _f(x, nd=4):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def side_by_side(base: dict, proj: dict) -> list[tuple[str, str, str]]:
    """(figure, baseline, project) rows showing that both sides did the same work."""
    b = base["figures"]
    ex = proj["experiments"]
    rows = [("ratings / movies", f"{b['ratings']} / {b['movies']}",
             f"{proj['ratings']} / {proj['movies']}")]
    fin = ex.get("nb_final", {})
    if fin:
        rows.append(("split train/val/test", "/".join(map(str, b["split"])), "/".join(
            str(fin.get(k, {}).get("rows")) for k in ("training", "validation", "test"))))
    mg = ex.get("nb_manual_grid", {})
    if mg:
        pt = {(g[0], g[2]): g[3] for g in mg.get("grid", [])}
        rows.append(("val RMSE rank10 reg0.1 (notebook 'baseline')",
                     _f(b["baseline_val_rmse"]), _f(pt.get((10, 0.1)))))
        for rank, reg, rmse, _mae in b["manual_grid"]:
            rows.append((f"  manual grid rank {rank} reg {reg:g} val RMSE", _f(rmse),
                         _f(pt.get((rank, reg)))))
        bb = b["manual_best"]
        t = mg.get("tuned_params", {})
        rows.append(("manual grid best (rank, reg, RMSE)", f"{bb[0]}, {bb[1]:g}, {bb[2]:.4f}",
                     f"{t.get('best_rank')}, {t.get('best_reg_param'):g}, "
                     f"{_f(t.get('best_score'))}" if t else "-"))
    for name, key in (("CV", "nb_cv"), ("TVS", "nb_tvs")):
        t = ex.get(key, {}).get("tuned_params", {})
        low = name.lower()
        if f"{low}_best_rank" in b or t:
            rows.append((f"{name} sample rows", _f(b.get("cv_sample_rows")),
                         _f(t.get("tuning_rows"))))
            rows.append((f"{name} best rank (notebook reports rank only)",
                         _f(b.get(f"{low}_best_rank")),
                         f"{t.get('best_rank')} (maxIter {t.get('best_max_iter')}, "
                         f"reg {t.get('best_reg_param')})" if t else "-"))
            rows.append((f"{name} best RMSE", _f(b.get(f"{low}_best_rmse")),
                         _f(t.get("best_score"))))
    cs = fin.get("cold_start_report", {})
    ev = fin.get("evaluation", {})
    if fin:
        rows += [
            ("cold start NaN / test rows", f"{b['cold_nan'][0]} / {b['cold_nan'][1]}",
             f"{cs.get('nan_predictions')} / {cs.get('test_rows')}"),
            ("cold start RMSE, NaN -> global mean", _f(b["cold_rmse_global_avg"]),
             _f(cs.get("rmse_global_mean_fill"))),
            ("cold start RMSE, NaN -> movie mean", _f(b["cold_rmse_movie_avg"]),
             _f(cs.get("rmse_item_mean_fill"))),
            ("test RMSE (rank 20, reg 0.1)", _f(b["test_rmse"]), _f(ev.get("rmse"))),
            ("test MAE", _f(b["test_mae"]), _f(ev.get("mae"))),
            ("Precision@10", _f(b["precision_at_10"]), _f(ev.get("precision_at_k"))),
            ("Recall@10", _f(b["recall_at_10"]), _f(ev.get("recall_at_k"))),
            ("NDCG@10", _f(b["ndcg_at_10"]), _f(ev.get("ndcg_at_k"))),
            ("test RMSE of the reloaded model", _f(b["loaded_rmse"]),
             _f(ev.get("rmse")) + " (evaluation reads the stored model)"),
        ]
        for mid in SHOWCASE:
            bl = b["similar"].get(str(mid), b["similar"].get(mid, []))
            pl = fin.get("similar", {}).get(str(mid), [])
            rows.append((f"similar to movie {mid}: top-10 ids (overlap)",
                         ",".join(map(str, bl[:10])),
                         ",".join(map(str, pl[:10])) + f"  ({len(set(bl) & set(pl))}/10)"))
    imp = ex.get("nb_implicit", {})
    if imp:
        bl = b.get("implicit_user42", [])
        pl = imp.get("user42", [])
        rows.append(("implicit: user 42 top-10 (overlap)", ",".join(map(str, bl)),
                     ",".join(map(str, pl)) + f"  ({len(set(bl) & set(pl))}/10)"))
        rows.append(("implicit: NDCG@10 on validation (project only)", "-",
                     _f(imp.get("tuned_params", {}).get("best_score"))))
    return rows


def table(rows, headers) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = " | ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True))
    sep = "-+-".join("-" * w for w in widths)
    body = [" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, sep, *body])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="6g", help="project's SPARK_DRIVER_MEMORY "
                    "(the baseline script's default is 6g)")
    ap.add_argument("--project-mode", choices=["driver", "cli"], default="driver")
    ap.add_argument("--out", default=str(RESULTS / "compare_notebook.json"))
    ap.add_argument("--workdir", default="/tmp/als_bench/compare")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--skip-project", action="store_true")
    ap.add_argument("--partitions", default=",".join(PARTITIONS))
    ap.add_argument("--job-count", action="store_true",
                    help="count Spark jobs per step for profile_report.py (driver mode). Keeps "
                    "every job in Spark's status store, which made the project side ~8%% slower "
                    "in a measured run: off for the timed comparison")
    ap.add_argument("--experiments", metavar="FILE", default=str(EXPERIMENTS_FILE),
                    help="the project side's experiments (default: the notebook's stages); "
                    "a variant file measures a lever, e.g. other tuning.parallelism")
    ap.add_argument("--class-archive", metavar="DIR", default="",
                    help="start the project's JVM from the class-data archive in DIR "
                    "(ALS_JVM_CLASS_ARCHIVE; opt-in, as in the project), primed first by an "
                    "untimed run when missing; default: no archive")
    ap.add_argument("--_driver", help=argparse.SUPPRESS)
    ap.add_argument("--_jobs", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_attribute", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    partitions = [p for p in args.partitions.split(",") if p]

    if args._driver:
        driver_main(Path(args._driver), partitions, args._jobs, args._attribute)
        return

    data = Path(args.data).resolve()
    info = machine_info()
    # The project side's runs (child processes too) read the archive folder from here.
    os.environ["ALS_JVM_CLASS_ARCHIVE"] = args.class_archive or "off"
    os.environ["ALS_BENCH_EXPERIMENTS"] = str(Path(args.experiments).resolve())
    if not args.skip_project:
        # With an archive folder, the project's driver JVM maps the class-data archive its first
        # run writes (als_assets/core/jvm_archive.py). Time what users see from their second run
        # on: an untimed run of nb_final writes the archive first if there is none.
        info["class_archive"] = ensure_class_archive(
            args.driver_memory,
            lambda: run_project(args.project_mode, data, args.master, args.driver_memory,
                                Path(args.workdir) / "prime_class_archive", ["nb_final"],
                                False))
    reps = []
    for i in range(args.repeat):
        order = ["baseline", "project"] if i % 2 == 0 else ["project", "baseline"]
        rep: dict = {"index": i, "order": order}
        for side in order:
            if side == "baseline" and not args.skip_baseline:
                print(f"[rep {i + 1}/{args.repeat}] baseline ...", file=sys.stderr, flush=True)
                logdir = Path(args.workdir) / f"rep{i}"
                logdir.mkdir(parents=True, exist_ok=True)
                rep["baseline"] = run_baseline(data, args.master, logdir)
                print(f"  baseline {rep['baseline']['wall_s']} s, peak "
                      f"{rep['baseline']['peak_rss_mb']} MB, foreign CPU "
                      f"{rep['baseline']['foreign_cpu_s']} s", file=sys.stderr, flush=True)
            if side == "project" and not args.skip_project:
                print(f"[rep {i + 1}/{args.repeat}] project ({args.project_mode}) ...",
                      file=sys.stderr, flush=True)
                workdir = Path(args.workdir) / f"rep{i}_project"
                res = run_project(args.project_mode, data, args.master, args.driver_memory,
                                  workdir, partitions, args.job_count)
                res["figures"] = project_figures(workdir, partitions)
                rep["project"] = res
                print(f"  project {res['wall_s']} s, peak {res['peak_rss_mb']} MB, foreign "
                      f"CPU {res['foreign_cpu_s']} s", file=sys.stderr, flush=True)
        reps.append(rep)
        write_json(Path(args.out), {"machine": info, "args": vars(args), "repetitions": reps})

    def med(side, key):
        return median([r[side][key] for r in reps if side in r])

    summary = {}
    for side in ("baseline", "project"):
        if any(side in r for r in reps):
            summary[side] = {k: med(side, k) for k in ("wall_s", "peak_rss_mb", "tree_cpu_s",
                                                       "foreign_cpu_s")}
    if "baseline" in summary and "project" in summary:
        summary["ratio_wall_project_over_baseline"] = round(
            summary["project"]["wall_s"] / summary["baseline"]["wall_s"], 3)
        summary["ratio_rss_project_over_baseline"] = round(
            summary["project"]["peak_rss_mb"] / summary["baseline"]["peak_rss_mb"], 3)
        summary["ratio_cpu_project_over_baseline"] = round(
            summary["project"]["tree_cpu_s"] / summary["baseline"]["tree_cpu_s"], 3)
        summary["per_rep_ratio"] = [round(r["project"]["wall_s"] / r["baseline"]["wall_s"], 3)
                                    for r in reps if "project" in r and "baseline" in r]
    # baseline per-stage medians
    if "baseline" in summary:
        stages = reps[0]["baseline"]["result"]["timings"].keys()
        summary["baseline_stages_s"] = {s: median([r["baseline"]["result"]["timings"].get(s)
                                                   for r in reps if "baseline" in r])
                                        for s in stages}
    if "project" in summary and args.project_mode == "driver":
        runs: dict = {}
        for r in reps:
            if "project" not in r:
                continue
            for run in r["project"]["driver"]["runs"]:
                runs.setdefault(run["label"], []).append(run["seconds"])
        summary["project_runs_s"] = {k: median(v) for k, v in runs.items()}
        summary["project_import_s"] = median([r["project"]["driver"]["import_s"]
                                              for r in reps if "project" in r])
    out = {"machine": info, "args": vars(args), "summary": summary, "repetitions": reps}

    lines = [f"machine: {info['nproc']} cores, {info['memory_gib']} GiB, {info['cpu_model']}, "
             f"{info['java']}, Spark {info['spark']}, Dagster {info['dagster']}, "
             f"{info['date_utc']} UTC", ""]
    rows = []
    for side in ("baseline", "project"):
        if side in summary:
            s = summary[side]
            rows.append((side, _f(s["wall_s"], 1), _f(s["peak_rss_mb"], 0),
                         _f(s["tree_cpu_s"], 1), _f(s["foreign_cpu_s"], 1),
                         ", ".join(_f(r[side]["wall_s"], 1) for r in reps if side in r)))
    lines.append(f"medians over {args.repeat} repetition(s), project mode {args.project_mode}:")
    lines.append(table(rows, ("side", "wall s", "peak RSS MB (tree)", "CPU s (tree)",
                              "CPU s by others", "wall s per rep")))
    if "ratio_wall_project_over_baseline" in summary:
        lines.append(f"\nratio project/baseline: wall {summary['ratio_wall_project_over_baseline']}"
                     f" (target <= 0.35), CPU seconds {summary['ratio_cpu_project_over_baseline']}"
                     f", peak RSS {summary['ratio_rss_project_over_baseline']}")
    if "baseline_stages_s" in summary:
        lines.append("\nbaseline stages (median s): " + ", ".join(
            f"{k} {v}" for k, v in summary["baseline_stages_s"].items()))
    if "project_runs_s" in summary:
        lines.append("project Dagster runs (median s): " + ", ".join(
            f"{k} {v}" for k, v in summary["project_runs_s"].items())
            + f"; import {summary['project_import_s']}")
    last = reps[-1]
    if "baseline" in last and "project" in last:
        lines.append("\nfigures (last repetition):")
        lines.append(table(side_by_side(last["baseline"]["result"], last["project"]["figures"]),
                           ("figure", "baseline (notebook)", "project (Dagster)")))
    publish_report(out, lines, Path(args.out))


if __name__ == "__main__":
    main()
