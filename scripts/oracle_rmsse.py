#!/usr/bin/env python3
"""RMSSE of the oracle forecast on a demo lake: the simulation's true mean
demand (truth/expected_demand) scored over a backtest window against the
main job's daily_sales, with the backtest's RMSSE scale (in-sample naive
one-step MSE from the first non-zero sale, history up to the cut-off).
No forecaster can beat it on average; compare forecast_metrics with it.

    python3 scripts/oracle_rmsse.py LAKE DS CUTOFF [--uncensored] [--days=N]

DS is the daily_sales partition (the run date); the window is the days
after CUTOFF (DS minus the horizon), or only the first N of them with
--days=N (an earlier backtest origin: CUTOFF = DS minus horizon minus k
origin steps, N = the horizon). --uncensored keeps only days whose
end-of-day stock was positive, where sales equal demand.
"""
import sys

import duckdb

args = [a for a in sys.argv[1:] if not a.startswith("--")]
if len(args) != 3:
    sys.exit(__doc__)
lake, ds, cut = args
uncensored = "--uncensored" in sys.argv
days = next((int(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--days=")), None)
until = f"AND h.date <= DATE '{cut}' + INTERVAL {days} DAY" if days else ""
inv_join = (
    f"JOIN (SELECT store, sku, date, on_hand FROM read_parquet('{lake}/raw/inventory/*/*.parquet', "
    f"hive_partitioning = true) WHERE ds > '{cut}') inv USING (store, sku, date)"
    if uncensored
    else ""
)
inv_cond = "AND inv.on_hand > 0" if uncensored else ""
print(duckdb.sql(f"""
WITH h AS (SELECT store, sku, date, units::DOUBLE y
           FROM read_parquet('{lake}/curated/daily_sales/ds={ds}/*.parquet')),
nz AS (SELECT store, sku, MIN(date) f FROM h WHERE y <> 0 GROUP BY ALL),
d AS (SELECT h.store, h.sku, h.y - LAG(h.y) OVER (PARTITION BY h.store, h.sku ORDER BY h.date) dy
      FROM h JOIN nz USING (store, sku) WHERE h.date >= nz.f AND h.date <= DATE '{cut}'),
sc AS (SELECT store, sku, AVG(dy * dy) s FROM d WHERE dy IS NOT NULL GROUP BY ALL),
t AS (SELECT store, sku, date, expected_units
      FROM read_parquet('{lake}/truth/expected_demand/*/*.parquet')),
w AS (SELECT h.store, h.sku, AVG((h.y - t.expected_units) ^ 2) mse, COUNT(*) n
      FROM h JOIN t USING (store, sku, date) {inv_join}
      WHERE h.date > DATE '{cut}' {until} {inv_cond} GROUP BY ALL)
SELECT round(AVG(sqrt(mse / s)), 3) AS oracle_rmsse, COUNT(*) AS series
FROM w JOIN sc USING (store, sku) WHERE s > 0 AND n >= 20
"""))
