#!/bin/sh
# Kill the daemon N times (default 50) with SIGKILL while it runs the main
# job on a small demo lake, restarting it after each kill, then check that
# the run left exactly one clean result. Prints what each restart found.
#
#   scripts/kill_storm.sh [N]
#
# RESTOCK_KILL_STORM_SEED replays a storm; RESTOCK_KILL_STORM_GAP_MS sets
# the longest random wait before a kill (default 5000/N ms, between 50 and
# 1000, so that N kills fit in one run). The same test runs in CI with 5
# kills.
set -eu
cd "$(dirname "$0")/.."
RESTOCK_KILL_STORM_KILLS="${1:-50}" exec cargo test --test it kill_storm:: -- --nocapture
