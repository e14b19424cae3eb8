#!/usr/bin/env bash
# Quickstart: materialize the sources, one experiment and the ranking study end to end, the
# leaderboard and the champion (the experiment whose lists are served), on the embedded synthetic
# data unless ALS_SOURCE says otherwise. Usage: scripts/demo.sh [EXPERIMENT]
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
EXPERIMENT="${1:-final_task}"
experiments=("$EXPERIMENT")
[ "$EXPERIMENT" = implicit_ranking ] || experiments+=(implicit_ranking)

dagster asset materialize -m als_assets.definitions --select 'ratings,movies'
for name in "${experiments[@]}"; do
  dagster asset materialize -m als_assets.definitions --select 'tag:scope=experiment' \
    --partition "$name"
done
dagster asset materialize -m als_assets.definitions --select 'experiment_leaderboard,champion'
python -m als_assets.summary "$EXPERIMENT"
