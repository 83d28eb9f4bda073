#!/usr/bin/env python3
"""Split a shared real dataset for `restock bench accuracy` and score the
statsforecast baselines on the same split.

    accuracy_baselines.py DATASET --data ../shared/data --out DIR

DATASET: tuna | cheese | tourism | tourism-quarterly | tourism-yearly
(tourism: the monthly series; each with the competition's official
train/test split and horizon: 24 months, 8 quarters, 4 years). The weekly
sets hold out the last 13 calendar weeks of every series; a week without a
row there is not scored. statsforecast needs regular series, so its
training data has missing weeks linearly interpolated (restock gets the raw
rows and applies its own gap policy).

Writes DIR/train.parquet and DIR/test.parquet (series_id, date, quantity,
price, display, on_promo = display > 0; zstd), DIR/meta.json (frequency, horizon,
season) and DIR/baselines.json: for Naive, SeasonalNaive, AutoETS and
AutoTheta, the RMSSE, MASE, WAPE, bias and p10/p90 coverage computed with
the same definitions as restock's metrics (scales from the training
history from its first non-zero value; ties count one half in coverage).
"""
import argparse
import json
import os
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

FILES = {
    "tuna": ("dominicks_tuna_weekly.parquet", "weekly", 13, 52),
    "cheese": ("bayesm_cheese_weekly.parquet", "weekly", 13, 52),
    "tourism": ("tourism_competition.parquet", "monthly", 24, 12),
    "tourism-quarterly": ("tourism_competition.parquet", "quarterly", 8, 4),
    "tourism-yearly": ("tourism_competition.parquet", "yearly", 4, 1),
}


def split(name, data):
    file, freq, horizon, season = FILES[name]
    df = pd.read_parquet(os.path.join(data, file))
    if name.startswith("tourism"):
        df = df[df["frequency"] == freq.upper()]
        train, test = df[df["split"] == "train"], df[df["split"] == "test"]
    else:
        df = df.sort_values(["series_id", "date"])
        df["date"] = pd.to_datetime(df["date"])
        last = df.groupby("series_id")["date"].transform("max")
        held = df["date"] > last - pd.Timedelta(weeks=horizon)
        train, test = df[~held], df[held]
    return train, test, freq, horizon, season


def write(df, path):
    out = pd.DataFrame(
        {
            "series_id": df["series_id"].astype(str),
            "date": pd.to_datetime(df["date"]).dt.date,
            "quantity": df["quantity"].astype(float),
            "price": df["price"].astype(float) if "price" in df else np.nan,
            "on_promo": (df["display"] > 0) if "display" in df else False,
            "display": df["display"].astype(float) if "display" in df else 0.0,
        }
    )
    pq.write_table(pa.Table.from_pandas(out, preserve_index=False), path, compression="zstd")


def scales(hist, season):
    nz = np.flatnonzero(hist != 0)
    h = hist[nz[0]:] if len(nz) else hist[:0]
    m = season if len(h) > season else 1
    mase = np.mean(np.abs(h[m:] - h[:-m])) if len(h) > m else np.nan
    rmsse = np.mean((h[1:] - h[:-1]) ** 2) if len(h) > 1 else np.nan
    return (mase if mase > 0 else np.nan), (rmsse if rmsse > 0 else np.nan)


def credit(y, p):
    return np.where(y < p, 1.0, np.where(y == p, 0.5, 0.0))


def score(train, test, fc, col, season):
    mases, rmsses = [], []
    err = abs_err = total = 0.0
    cov_lo = cov_hi = points = 0.0
    for sid, t in test.groupby("series_id"):
        hist = train[train.series_id == sid].sort_values("date").quantity.to_numpy(float)
        t = t.assign(ds=pd.to_datetime(t.date))
        f = fc[fc.unique_id == sid].merge(t[["ds", "quantity"]], on="ds")
        y = f.quantity.to_numpy(float)
        mean = np.maximum(f[col].to_numpy(float), 0.0)
        lo = np.maximum(f[f"{col}-lo-80"].to_numpy(float), 0.0)
        hi = np.maximum(f[f"{col}-hi-80"].to_numpy(float), 0.0)
        s_mase, s_rmsse = scales(hist, season)
        if not np.isnan(s_mase):
            mases.append(np.mean(np.abs(y - mean)) / s_mase)
        if not np.isnan(s_rmsse):
            rmsses.append(np.sqrt(np.mean((y - mean) ** 2) / s_rmsse))
        err += np.sum(mean - y)
        abs_err += np.sum(np.abs(y - mean))
        total += np.sum(y)
        cov_lo += credit(y, lo).sum()
        cov_hi += credit(y, hi).sum()
        points += len(y)
    return {
        "mase": float(np.mean(mases)) if mases else float("nan"),
        "rmsse": float(np.mean(rmsses)) if rmsses else float("nan"),
        "wape": abs_err / total,
        "bias": err / total,
        "coverage_p10": cov_lo / points,
        "coverage_p90": cov_hi / points,
    }


def baselines(train, test, horizon, season, freq):
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta, Naive, SeasonalNaive

    df = pd.DataFrame(
        {"unique_id": train.series_id, "ds": pd.to_datetime(train.date), "y": train.quantity}
    )
    step, alias = {
        "weekly": (pd.offsets.Week(1), "W-MON"),
        "monthly": (pd.offsets.MonthBegin(1), "MS"),
        "quarterly": (pd.offsets.QuarterBegin(1, startingMonth=1), "QS"),
        "yearly": (pd.offsets.YearBegin(1), "YS"),
    }[freq]
    parts = []
    for sid, g in df.groupby("unique_id"):
        g = g.set_index("ds").asfreq(step)
        g["y"] = g["y"].interpolate()
        g["unique_id"] = sid
        parts.append(g.reset_index())
    df = pd.concat(parts)[["unique_id", "ds", "y"]]
    # Seasonal ETS/Theta need two seasons; statsforecast falls back on its own.
    models = [Naive(), SeasonalNaive(season_length=season), AutoETS(season_length=season), AutoTheta(season_length=season)]
    sf = StatsForecast(models=models, freq=alias, n_jobs=1)
    fc = sf.forecast(df=df, h=horizon, level=[80]).reset_index()
    out = {}
    for col in ["Naive", "SeasonalNaive", "AutoETS", "AutoTheta"]:
        out[col] = score(train, test, fc, col, season)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", choices=sorted(FILES))
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-baselines", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    train, test, freq, horizon, season = split(a.dataset, a.data)
    write(train, os.path.join(a.out, "train.parquet"))
    write(test, os.path.join(a.out, "test.parquet"))
    meta = {"frequency": freq, "horizon": horizon, "season": season,
            "series": int(train.series_id.nunique())}
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f)
    if not a.no_baselines:
        res = baselines(train, test, horizon, season, freq)
        res = {k: {m: (None if np.isnan(v) else v) for m, v in d.items()} for k, d in res.items()}
        with open(os.path.join(a.out, "baselines.json"), "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
