"""Read a run's planning tables with pyarrow, independently of restock,
and print what the planning API and /metrics must agree with, as JSON.
Usage: planning_truth.py LAKE DS PREVIOUS_DS"""
import json
import sys

import pyarrow.parquet as pq

lake, ds, prev = sys.argv[1:4]


def rows(table, part):
    return pq.read_table(f"{lake}/{table}/ds={part}/part-00000.parquet").to_pylist()


anomalies = rows("anomalies", ds)
plans = rows("reorder_plans", ds)
forecasts = rows("forecasts", ds)
by_sev, by_type = {}, {}
for a in anomalies:
    by_sev[a["severity"]] = by_sev.get(a["severity"], 0) + 1
    by_type[a["type"]] = by_type.get(a["type"], 0) + 1
orders = [p for p in plans if p["status"] == "order"]
held = [p for p in plans if p["status"] == "held"]
steps = {}
for f in forecasts:
    k = f'{f["store"]}/{f["sku"]}'
    steps[k] = steps.get(k, 0) + 1
backtest = {
    r["group"]: r["rmsse"]
    for r in rows("forecast_metrics", prev)
    if r["champion"] and r["rmsse"] is not None
}
realized = {
    f'{r["group"]}/{r["model_kind"]}': r["rmsse"]
    for r in rows("forecast_accuracy", ds)
    if r["rmsse"] is not None
}
json.dump(
    {
        "anomalies": len(anomalies),
        "by_severity": by_sev,
        "by_type": by_type,
        "ranked": [[a["rank"], a["store"], a["sku"]] for a in sorted(anomalies, key=lambda a: a["rank"])],
        "order_lines": len(orders),
        "order_value": sum(p["order_value"] or 0 for p in orders),
        "held_lines": len(held),
        "held_value": sum(p["held_order_value"] or 0 for p in held),
        "forecast_steps": steps,
        "backtest_rmsse": backtest,
        "realized_rmsse": realized,
    },
    sys.stdout,
)
