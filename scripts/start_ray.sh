#!/usr/bin/env bash
# Start a single-node Ray cluster on loopback for the remote-executor tests
# and for trying the `ray` executor by hand: a head node on 127.0.0.1 with
# one (declared) GPU and the Jobs API on http://127.0.0.1:8265. Needs
# `pip install 'ray[default]'` (the dashboard serves the Jobs API).
# Idempotent: a running head is left alone.
set -euo pipefail
address="${RAY_DASHBOARD_ADDRESS:-http://127.0.0.1:8265}"
if curl -fsS "$address/api/version" >/dev/null 2>&1; then
  echo "ray: already running at $address"
  exit 0
fi
# Fewer background workers: this runs on small machines.
export RAY_USAGE_STATS_ENABLED=0
ray start --head --node-ip-address=127.0.0.1 --num-gpus=1 --num-cpus="$(nproc)" \
  --dashboard-host=127.0.0.1 --dashboard-port=8265 --include-dashboard=true \
  --disable-usage-stats >/tmp/ray-start.log 2>&1 || { cat /tmp/ray-start.log >&2; exit 1; }
for _ in $(seq 1 120); do
  if curl -fsS "$address/api/version" >/dev/null 2>&1; then
    echo "ray: up at $address"
    exit 0
  fi
  sleep 0.5
done
echo "ray: the Jobs API did not answer at $address" >&2
cat /tmp/ray-start.log >&2
exit 1
