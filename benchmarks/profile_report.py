"""Where the project's time goes: per-run and per-step seconds and Spark jobs from a
compare_notebook.py (driver mode) or scale_curve.py JSON.

usage: python benchmarks/profile_report.py benchmarks/results/compare_notebook.json
       [--top 4]   # call sites listed per step
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def report(driver: dict, top: int) -> str:
    jobs = driver.get("spark_jobs", {}).get("by_step", {})
    lines = [f"import (python + dagster + project): {driver.get('import_s')} s", "",
             "| run | step | seconds | Spark jobs | job seconds | top call sites (jobs, s) |",
             "|---|---|---:|---:|---:|---|"]
    total_steps = 0.0
    total_jobs = 0
    for run in driver["runs"]:
        lines.append(f"| **{run['label']}** | (run) | **{run['seconds']}** | | | |")
        for step, sec in sorted(run["steps"].items(), key=lambda kv: -kv[1]):
            j = jobs.get(f"{run['label']}:{step}", {})
            total_steps += sec
            total_jobs += j.get("jobs", 0)
            sites = "; ".join(
                f"{k.split(' at ')[0]}@{k.split('/')[-1] if '/' in k else k.split(' at ')[-1]}"
                f" ({v[0]}, {v[1]})" for k, v in list(j.get("by_callsite", {}).items())[:top])
            lines.append(f"| {run['label']} | {step} | {sec} | {j.get('jobs', '-')} | "
                         f"{j.get('job_seconds', '-')} | {sites} |")
    between = jobs.get("(between steps)", {})
    lines.append(f"\nsum of step seconds {round(total_steps, 1)}; Spark jobs in steps {total_jobs}"
                 f", between steps {between.get('jobs', 0)}; all jobs "
                 f"{driver.get('spark_jobs', {}).get('total_jobs')}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--top", type=int, default=4)
    args = ap.parse_args()
    data = json.loads(Path(args.path).read_text())
    if "repetitions" in data:
        for rep in data["repetitions"]:
            if "project" in rep and "driver" in rep["project"]:
                print(f"## repetition {rep['index'] + 1}\n")
                print(report(rep["project"]["driver"], args.top))
                print()
    else:
        for r in data.get("results", []):
            if "spark_jobs_detail" in r:
                print(f"## {r['ratings']} ratings\n")
                print(report({"import_s": r.get("import_s"), "runs": [
                    {"label": k, "seconds": v, "steps": {
                        s: t for s, t in r["steps_s"].items()
                        if any(d.startswith(f"{k}:{s}") for d in r["spark_jobs_detail"])
                        or (k == "sources" and s in ("ratings", "movies"))}}
                    for k, v in r["runs_s"].items()],
                    "spark_jobs": {"by_step": r["spark_jobs_detail"],
                                   "total_jobs": r.get("spark_jobs_total")}}, args.top))
                print()


if __name__ == "__main__":
    main()
