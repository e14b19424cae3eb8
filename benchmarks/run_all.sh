#!/usr/bin/env bash
# Runs every benchmark of this folder, one after the other (they would disturb each other's
# timings if run at once). Results go to benchmarks/results/. Usage, from anywhere:
#   bash benchmarks/run_all.sh [REPEAT]      # REPEAT for compare_notebook.py, default 3
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
REPEAT=${1:-3}
export SPARK_LOCAL_IP=127.0.0.1
mkdir -p benchmarks/results
"$PY" benchmarks/compare_notebook.py --repeat "$REPEAT" --out benchmarks/results/compare_notebook.json \
  | tee benchmarks/results/compare_notebook.txt
"$PY" benchmarks/overhead.py --repeat 6 --out benchmarks/results/overhead.json | tee benchmarks/results/overhead.txt
"$PY" benchmarks/micro.py --out benchmarks/results/micro.json | tee benchmarks/results/micro.txt
"$PY" benchmarks/scale_curve.py --out benchmarks/results/scale_curve.json \
  --png benchmarks/results/scale_curve.png | tee benchmarks/results/scale_curve.txt
