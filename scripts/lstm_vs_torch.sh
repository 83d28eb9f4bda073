#!/usr/bin/env bash
# restock's LSTM training step against PyTorch's on the same shapes, back
# to back on this machine: builds benches/lstm.rs (bench-opt profile) first
# so no build runs while either side is timed, then alternates the PyTorch
# anchor and restock RUNS times and prints the median windows/s of each and
# their ratio (restock / PyTorch) per config, with the load average.
#
#   scripts/lstm_vs_torch.sh            # RUNS=3
#   TORCH_LSTM_BENCH=path/to/torch_lstm_bench.py RUNS=5 scripts/lstm_vs_torch.sh
#
# STEPS (timed steps per config, default 50, both sides), MAX_WAIT (seconds
# the anchor waits for an idle machine before each config, default 5),
# PROFILE (default bench-opt) and CARGO_ARGS (extra cargo arguments, split
# on spaces, e.g. `--config profile.dev.package.restock.opt-level=3`) pick
# the build.
#
# PyTorch: `apt-get install -y python3-torch libopenblas0-openmp`, run with
# /usr/bin/python3 and OpenBLAS (see the anchor's README).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-3}"
BENCH="${TORCH_LSTM_BENCH:-../shared/anchors/torch_lstm_bench.py}"
PY="${TORCH_PYTHON:-/usr/bin/python3}"
[ -f "$BENCH" ] || { echo "no PyTorch anchor at $BENCH (set TORCH_LSTM_BENCH)" >&2; exit 2; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/restock-target}"
if command -v mold >/dev/null 2>&1 && [ -z "${RUSTFLAGS:-}" ]; then
  export RUSTFLAGS="-C link-arg=-fuse-ld=mold"
fi
PROFILE="${PROFILE:-bench-opt}"
read -r -a CARGO_EXTRA <<< "${CARGO_ARGS:-}"
cargo bench --profile "$PROFILE" "${CARGO_EXTRA[@]}" --bench lstm --no-run
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq 1 "$RUNS"); do
  "$PY" "$BENCH" --runs 1 --blas openblas --steps "${STEPS:-50}" --max-wait "${MAX_WAIT:-5}" --max-tries 1 \
    --json "$out/torch$i.json" >/dev/null
  RESTOCK_BENCH_THREADS=2 RESTOCK_BENCH_STEPS="${STEPS:-50}" cargo bench -q --profile "$PROFILE" "${CARGO_EXTRA[@]}" --bench lstm | tee "$out/restock$i.txt" >&2
  echo "run $i/$RUNS done, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
"$PY" - "$out" "$RUNS" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
torch, ours = [], []
for i in range(1, runs + 1):
    t = json.load(open(f"{out}/torch{i}.json"))["openblas"]["runs"][0]
    torch.append({**{"train " + k: v["windows_per_s"] for k, v in t["train"].items()},
                  **{"inference " + k: v["windows_per_s"] for k, v in t["infer"].items()}})
    line = [l for l in open(f"{out}/restock{i}.txt") if l.startswith('{"train"')][-1]
    r = json.loads(line)
    ours.append({**{"train " + k: v for k, v in r["train"].items()},
                 **{"inference " + k: v for k, v in r["infer"].items()}})
print(f"| config (2 threads) | PyTorch windows/s | restock windows/s | restock / PyTorch (median of {runs}) | per-run ratios |")
print("|---|---:|---:|---:|---|")
for k in torch[0]:
    ratios = [o[k] / t[k] for t, o in zip(torch, ours)]
    print(f"| {k} | {statistics.median(t[k] for t in torch):,.0f} | {statistics.median(o[k] for o in ours):,.0f} | "
          f"{statistics.median(ratios):.2f}x | {', '.join(f'{x:.2f}' for x in ratios)} |")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
