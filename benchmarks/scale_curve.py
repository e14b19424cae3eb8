"""How the project's time per stage grows with the data: synthetic source at 0.1M, 1M, 10M
(and, with --with-20m, 20M) ratings, one single-config experiment (holdout, one point: rank 10,
maxIter 10, regParam 0.1).

usage (from the repo root):
    python benchmarks/scale_curve.py [--sizes 100000,1000000,10000000]
        [--with-20m] [--driver-memory 8g] [--out benchmarks/results/scale_curve.json]
    python benchmarks/scale_curve.py --sizes 20000000 --append   # add a size to an earlier run

For each size a fresh DAGSTER_HOME and storage root; one process (compare_notebook.py's driver
mode) materializes `ratings,movies` and then the experiment's partition through Dagster, one
SparkSession. Time per stage = STEP_START -> STEP_SUCCESS of each asset step, read from the
Dagster event log; peak memory = peak RSS of the whole process tree (Python + JVM), sampled
every 0.2 s. Writes JSON and results/scale_curve.png (time per stage vs ratings, log-log).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    BENCH,
    REPO,
    RESULTS,
    VENV_PY,
    machine_info,
    publish_report,
    run_measured,
    write_json,
)

EXPERIMENT = """experiments:
  scale:
    description: "Scale curve: holdout, one point rank 10 maxIter 10 regParam 0.1."
    tuning:
      method: holdout
      grid: {rank: [10], max_iter: [10], reg_param: [0.1]}
"""


def mem_available_gib() -> float:
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable"):
            return int(line.split()[1]) / 2**20
    return 0.0


def run_size(n: int, args, workdir: Path) -> dict:
    if workdir.exists():
        shutil.rmtree(workdir)
    home = workdir / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").touch()
    exp = workdir / "scale_experiments.yaml"
    exp.write_text(EXPERIMENT)
    env = dict(os.environ)
    env.update({
        "SPARK_LOCAL_IP": "127.0.0.1",
        "ALS_SOURCE": "synthetic",
        "ALS_SYNTHETIC_RATINGS": str(n),
        "ALS_EXPERIMENTS_FILE": str(exp),
        "ALS_STORAGE_ROOT": str(workdir / "storage"),
        "DAGSTER_HOME": str(home),
        "SPARK_MASTER": args.master,
        "SPARK_DRIVER_MEMORY": args.driver_memory,
        "PYSPARK_SUBMIT_ARGS": "--conf spark.ui.retainedJobs=100000 pyspark-shell",
    })
    cmd = [VENV_PY, str(BENCH / "compare_notebook.py"), "--_driver", str(workdir),
           "--partitions", "scale", "--_jobs"]
    res = run_measured(cmd, env=env, cwd=str(REPO), log_path=workdir / "stderr.log",
                       timeout=args.timeout)
    del res["stdout"]
    res["ratings"] = n
    if res["returncode"] != 0:
        tail = (workdir / "stderr.log").read_text(errors="replace").splitlines()[-15:]
        res["error_tail"] = tail
        return res
    drv = json.loads((workdir / "driver.json").read_text())
    res["import_s"] = drv["import_s"]
    steps = {}
    for run in drv["runs"]:
        steps.update(run["steps"])
    res["steps_s"] = steps
    res["runs_s"] = {r["label"]: r["seconds"] for r in drv["runs"]}
    # The Python driver's own peak per run (sources, experiment) and the experiment's run over
    # its ALS fit: issue 14's targets.
    res["driver_peak_rss_mb_by_run"] = {r["label"]: r.get("driver_peak_rss_mb")
                                        for r in drv["runs"]}
    res["driver_rss_at_start_mb_by_run"] = {r["label"]: r.get("driver_rss_at_start_mb")
                                            for r in drv["runs"]}
    fit = next((r.get("fit_seconds") for r in drv["runs"] if r["label"] == "scale"), None)
    res["fit_s"] = fit
    res["run_over_fit"] = round(res["runs_s"]["scale"] / fit, 2) if fit else None
    jobs = drv.get("spark_jobs", {})
    res["spark_jobs_total"] = jobs.get("total_jobs")
    res["spark_jobs_by_step"] = {k.split(":", 1)[1]: v["jobs"]
                                 for k, v in jobs.get("by_step", {}).items() if ":" in k}
    res["spark_jobs_detail"] = jobs.get("by_step", {})
    return res


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if r.get("steps_s")]
    if not ok:
        return
    steps = sorted({s for r in ok for s in r["steps_s"]},
                   key=lambda s: -max(r["steps_s"].get(s, 0) for r in ok))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5.5))
    xs = [r["ratings"] for r in ok]
    for s in steps:
        ax.plot(xs, [max(r["steps_s"].get(s, 0), 1e-2) for r in ok], marker="o", label=s)
    ax.plot(xs, [r["wall_s"] for r in ok], marker="s", color="black", lw=2,
            label="process wall (total)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ratings (synthetic)")
    ax.set_ylabel("seconds")
    ax.set_title("time per asset step (Dagster event log), local[2]")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax2.plot(xs, [r["peak_rss_mb"] / 1024 for r in ok], marker="o")
    ax2.set_xscale("log")
    ax2.set_xlabel("ratings (synthetic)")
    ax2.set_ylabel("peak RSS of process tree, GiB")
    ax2.set_title("peak memory (Python + JVM)")
    ax2.grid(True, which="both", alpha=0.3)
    fig.suptitle("als_assets scale curve: holdout, rank 10, maxIter 10, regParam 0.1")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000,10000000")
    ap.add_argument("--with-20m", action="store_true", help="also try 20M ratings")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="8g")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--workdir", default="/tmp/als_bench/scale")
    ap.add_argument("--out", default=str(RESULTS / "scale_curve.json"))
    ap.add_argument("--png", default=str(RESULTS / "scale_curve.png"))
    ap.add_argument("--append", action="store_true",
                    help="keep the results already in --out and add (or replace) these sizes: "
                    "run a large size on its own later, e.g. --sizes 20000000 --append")
    ap.add_argument("--report-only", action="store_true",
                    help="only redraw the plot and table from an existing --out JSON")
    args = ap.parse_args()
    if args.report_only:
        out = json.loads(Path(args.out).read_text())
        plot(out["results"], Path(args.png))
        finish(out, args)
        return
    sizes = [int(x) for x in args.sizes.split(",") if x]
    if args.with_20m:
        sizes.append(20_000_000)

    out = {"machine": machine_info(), "args": vars(args), "results": [], "notes": []}
    if args.append and Path(args.out).exists():
        old = json.loads(Path(args.out).read_text())
        out["results"] = [r for r in old["results"] if r.get("ratings") not in sizes]
        out["notes"] = [n for n in old.get("notes", [])
                        if not any(n.startswith(f"{n_} ratings") for n_ in sizes)]
        out["earlier_runs"] = old.get("earlier_runs", []) + [
            {"machine": old.get("machine"), "args": old.get("args")}]
    for n in sizes:
        if n >= 20_000_000:
            prev = [r for r in out["results"] if r.get("ratings") == 10_000_000 and r.get("steps_s")]
            need = 2 * prev[0]["peak_rss_mb"] / 1024 if prev else None
            avail = mem_available_gib()
            if need and need > 0.9 * avail:
                note = (f"{n} ratings NOT RUN: it does not fit: the 10M run peaked at "
                        f"{prev[0]['peak_rss_mb'] / 1024:.1f} GiB (Python's synthetic "
                        f"generator holds ~4 candidate draws per rating in NumPy, plus the "
                        f"JVM heap), so 20M needs ~{need:.1f} GiB; {avail:.1f} GiB available.")
                print(note, file=sys.stderr)
                out["notes"].append(note)
                continue
        print(f"{n} ratings ...", file=sys.stderr, flush=True)
        try:
            r = run_size(n, args, Path(args.workdir) / f"n{n}")
        except Exception as exc:  # noqa: BLE001 (a timeout is a result here)
            r = {"ratings": n, "returncode": None, "error_tail": [repr(exc)]}
        if r.get("returncode") != 0:
            note = (f"{n} ratings FAILED (exit {r.get('returncode')}, peak "
                    f"{r.get('peak_rss_mb')} MB): " + " / ".join(r.get("error_tail", [])[-5:]))
            out["notes"].append(note)
            print(note, file=sys.stderr)
        else:
            print(f"  {r['wall_s']} s, peak {r['peak_rss_mb']} MB, steps {r['steps_s']}",
                  file=sys.stderr, flush=True)
        out["results"].append(r)
        out["results"].sort(key=lambda x: x.get("ratings", 0))
        write_json(Path(args.out), out)
    plot(out["results"], Path(args.png))
    finish(out, args)


def finish(out: dict, args) -> None:
    ok = [r for r in out["results"] if r.get("steps_s")]
    steps = sorted({s for r in ok for s in r["steps_s"]})
    head = "| step | " + " | ".join(f"{r['ratings']:,}" for r in ok) + " |"
    lines = ["time per asset step, seconds (Spark jobs in brackets):", head,
             "|---|" + "---:|" * len(ok)]
    for s in steps:
        lines.append(f"| {s} | " + " | ".join(
            f"{r['steps_s'].get(s, '-')} ({r['spark_jobs_by_step'].get(s, '-')})" for r in ok)
            + " |")
    lines.append("| **process wall** | " + " | ".join(f"**{r['wall_s']}**" for r in ok) + " |")
    lines.append("| sum of steps | " + " | ".join(
        f"{round(sum(r['steps_s'].values()), 1)}" for r in ok) + " |")
    lines.append("| import (python+dagster+project) | " + " | ".join(
        f"{r['import_s']}" for r in ok) + " |")
    lines.append("| peak RSS MB (tree) | " + " | ".join(f"{r['peak_rss_mb']}" for r in ok) + " |")
    def cell(r, value):
        return "-" if value is None else f"{value}"

    lines.append("| experiment run / ALS fit (s) | " + " | ".join(
        cell(r, r.get("runs_s", {}).get("scale")) + " / " + cell(r, r.get("fit_s")) for r in ok)
        + " |")
    lines.append("| **run over fit** | " + " | ".join(
        f"**{cell(r, r.get('run_over_fit'))}x**" for r in ok) + " |")
    lines.append("| Python driver RSS MB at the experiment run's start | " + " | ".join(
        cell(r, r.get("driver_rss_at_start_mb_by_run", {}).get("scale")) for r in ok) + " |")
    lines.append("| Python driver peak RSS MB: sources run / experiment run | " + " | ".join(
        cell(r, r.get("driver_peak_rss_mb_by_run", {}).get("sources")) + " / "
        + cell(r, r.get("driver_peak_rss_mb_by_run", {}).get("scale")) for r in ok) + " |")
    lines.append("| CPU s by other processes | " + " | ".join(
        f"{r['foreign_cpu_s']}" for r in ok) + " |")
    lines += out["notes"]
    if not any(r.get("ratings") == 20_000_000 for r in out["results"]) and not any(
            n.startswith("20000000 ratings") for n in out["notes"]):
        lines.append("20M ratings: not run (pass --with-20m).")
    publish_report(out, lines, Path(args.out))


if __name__ == "__main__":
    main()
