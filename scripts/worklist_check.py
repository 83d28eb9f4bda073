#!/usr/bin/env python3
"""The planners' worklist on a demo lake, read back with pyarrow: critical
and warning anomalies per 100 series (reorder_plans rows) for one night,
and where each injected anomaly (truth/anomalies) ranks.

    python3 scripts/worklist_check.py LAKE DS
"""
import sys
from collections import Counter

import pyarrow.parquet as pq

if len(sys.argv) != 3:
    sys.exit(__doc__)
lake, ds = sys.argv[1:]
rows = pq.read_table(f"{lake}/anomalies/ds={ds}").to_pylist()
plans = pq.read_table(f"{lake}/reorder_plans/ds={ds}").num_rows
by = Counter(r["severity"] for r in rows)
loud = by["critical"] + by["warning"]
print(f"{ds}: {len(rows)} anomalies over {plans} series: {dict(by)}")
print(f"critical + warning per 100 series: {100.0 * loud / max(plans, 1):.2f}")
print(f"headline lines: {sum(1 for r in rows if r['headline'])}")
truth = pq.read_table(f"{lake}/truth/anomalies").to_pylist()
for t in truth:
    hit = [r for r in rows if r["type"] == t["expected_type"]
           and r["store"] == t["store"] and r["sku"] == t["sku"]]
    where = ", ".join(f"rank {h['rank']} headline={h['headline']} {h['severity']}" for h in hit)
    print(f"injected {t['kind']:<16} {t['store']} {t['sku'] or '':<14} {where or 'MISSING'}")
