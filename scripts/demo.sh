#!/usr/bin/env bash
# Quickstart: materialize the sources, one experiment end to end and the leaderboard, on the
# embedded synthetic data unless ALS_SOURCE says otherwise. Usage: scripts/demo.sh [EXPERIMENT]
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
EXPERIMENT="${1:-final_task}"

dagster asset materialize -m als_assets.definitions --select 'ratings,movies'
dagster asset materialize -m als_assets.definitions --select 'tag:scope=experiment' \
  --partition "$EXPERIMENT"
dagster asset materialize -m als_assets.definitions --select experiment_leaderboard
python -m als_assets.summary "$EXPERIMENT"
