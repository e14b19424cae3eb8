#!/usr/bin/env bash
# Runs the test suite (set-up included). Extra arguments go to pytest, e.g. -m "not slow".
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
ruff check .
python -m pytest "$@"
