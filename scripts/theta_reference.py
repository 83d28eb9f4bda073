"""Checks restock's Theta against statsforecast's AutoTheta, forecast for
forecast, on the Tourism monthly training series (no holdout is read).

    python scripts/theta_reference.py export DATA_DIR OUT_DIR
        writes OUT_DIR/series.csv (series_id, values separated by spaces)
        and OUT_DIR/autotheta.csv (series_id, step, mean) with the time
        statsforecast took per series
    RESTOCK_THETA_SERIES=OUT_DIR/series.csv RESTOCK_THETA_OUT=OUT_DIR/restock.csv \
        cargo bench --profile dev --bench theta
    python scripts/theta_reference.py compare OUT_DIR
        prints how far restock's forecasts are from AutoTheta's
"""

import os
import sys
import time

import numpy as np
import pandas as pd

SEASON, HORIZON = 12, 24


def export(data, out):
    from statsforecast.theta import auto_theta, forecast_theta

    df = pd.read_parquet(os.path.join(data, "tourism_competition.parquet"))
    df = df[(df["frequency"] == "MONTHLY") & (df["split"] == "train")]
    os.makedirs(out, exist_ok=True)
    rows, series = [], []
    start = time.perf_counter()
    for sid, g in df.sort_values(["series_id", "t"]).groupby("series_id"):
        y = g["quantity"].to_numpy(dtype=float)
        series.append((sid, " ".join(repr(float(v)) for v in y)))
        mean = forecast_theta(auto_theta(y, SEASON), HORIZON)["mean"]
        rows += [(sid, k, v) for k, v in enumerate(mean)]
    took = time.perf_counter() - start
    pd.DataFrame(series, columns=["series_id", "values"]).to_csv(
        os.path.join(out, "series.csv"), index=False
    )
    pd.DataFrame(rows, columns=["series_id", "step", "mean"]).to_csv(
        os.path.join(out, "autotheta.csv"), index=False
    )
    print(f"{len(series)} series, statsforecast {1e3 * took / len(series):.2f} ms per series")


def compare(out):
    a = pd.read_csv(os.path.join(out, "autotheta.csv"))
    r = pd.read_csv(os.path.join(out, "restock.csv"))
    m = a.merge(r, on=["series_id", "step"], suffixes=("_sf", "_restock"))
    m["rel"] = (m["mean_restock"] - m["mean_sf"]).abs() / m["mean_sf"].abs().clip(lower=1e-9)
    per = m.groupby("series_id")["rel"].max()
    print(f"{len(per)} series compared")
    for tol in [1e-6, 1e-4, 1e-3, 1e-2, 5e-2]:
        print(f"  max relative gap <= {tol:g}: {np.mean(per <= tol):.1%}")
    print("  largest gaps:")
    print(per.sort_values().tail(8).to_string())


if __name__ == "__main__":
    if sys.argv[1] == "export":
        export(sys.argv[2], sys.argv[3])
    else:
        compare(sys.argv[2])
