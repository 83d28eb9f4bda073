//! `restock bench accuracy DATASET`: the forecaster on a real dataset's
//! holdout (`../shared/data/`: tuna and cheese weekly with price and
//! display, the Tourism competition's monthly, quarterly and yearly series
//! with its official split), next to the statsforecast baselines on the same split.
//!
//! `scripts/accuracy_baselines.py` splits the data (last 13 weeks held out
//! for the weekly sets; the competition's test set for Tourism), writes
//! the two halves as Parquet and scores Naive, SeasonalNaive, AutoETS and
//! AutoTheta with the same metric definitions. This command then trains
//! and forecasts every series with the library's train path (rolling-origin
//! backtest, champion per group, forecast of the `horizon` periods after
//! each series' last training date, with the held-out weeks' planned price
//! and display as the future plan) and scores the served forecast on the
//! holdout. `display > 0` is the promotion flag.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Float64Type};
use chrono::NaiveDate;

use restock::forecast::metrics::{self, Metrics, SeriesEval};
use restock::forecast::{
    Covariate, Frequency, FutureCovariates, GroupResult, ModelConfig, PrepareOptions, Series,
};

#[derive(Debug, serde::Deserialize)]
struct Meta {
    frequency: Frequency,
    horizon: usize,
    season: usize,
}

struct Rows {
    dates: Vec<NaiveDate>,
    values: Vec<f64>,
    price: Vec<f64>,
    promo: Vec<bool>,
    /// Share of stores with a display: a numeric known-future covariate.
    display: Vec<f64>,
}

fn read_rows(path: &Path) -> Result<BTreeMap<String, Rows>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).context("epoch")?;
    let mut out: BTreeMap<String, Rows> = BTreeMap::new();
    for batch in reader {
        let b = batch?;
        let col = |n: &str| {
            b.column_by_name(n)
                .with_context(|| format!("{}: no column {n}", path.display()))
        };
        let ids = arrow::compute::cast(col("series_id")?, &arrow::datatypes::DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let dates = col("date")?.as_primitive::<Date32Type>();
        let qty = col("quantity")?.as_primitive::<Float64Type>();
        let price = col("price")?.as_primitive::<Float64Type>();
        let promo = col("on_promo")?.as_boolean();
        let display = col("display")?.as_primitive::<Float64Type>();
        for r in 0..b.num_rows() {
            let e = out.entry(ids.value(r).to_string()).or_insert_with(|| Rows {
                dates: Vec::new(),
                values: Vec::new(),
                price: Vec::new(),
                promo: Vec::new(),
                display: Vec::new(),
            });
            e.dates
                .push(epoch + chrono::Duration::days(i64::from(dates.value(r))));
            e.values.push(if qty.is_null(r) {
                f64::NAN
            } else {
                qty.value(r)
            });
            e.price.push(if price.is_null(r) {
                f64::NAN
            } else {
                price.value(r)
            });
            e.promo.push(!promo.is_null(r) && promo.value(r));
            e.display.push(if display.is_null(r) {
                f64::NAN
            } else {
                display.value(r)
            });
        }
    }
    Ok(out)
}

/// The model configuration for a dataset's frequency and horizon: small
/// enough for a few hundred short series.
fn config_for(meta: &Meta) -> ModelConfig {
    let (context, origins) = match meta.frequency {
        Frequency::Weekly => (13, 2),
        Frequency::Quarterly => (8, 3),
        Frequency::Yearly => (4, 2),
        _ => (24, 3),
    };
    ModelConfig {
        context,
        hidden: 32,
        horizon: meta.horizon,
        epochs: 30,
        batch_size: 128,
        batches_per_epoch: 20,
        learning_rate: 0.002,
        device: restock::forecast::DeviceChoice::Cpu,
        origins,
        ..ModelConfig::default()
    }
}

fn series_of(
    train: &BTreeMap<String, Rows>,
    test: &BTreeMap<String, Rows>,
    freq: Frequency,
    h: usize,
) -> Result<Vec<Series>> {
    train
        .iter()
        .map(|(id, r)| {
            let plan = test
                .get(id)
                .zip(r.dates.last())
                .map(|(t, &last)| plan_by_date(t, r, freq, last, h))
                .transpose()?;
            let (future, display_plan) = plan.unzip();
            let display = r.display.iter().any(|d| d.is_finite() && *d != 0.0);
            Ok(Series {
                key: vec![id.clone()],
                group: "all".into(),
                dates: r.dates.clone(),
                values: r.values.clone(),
                price: r
                    .price
                    .iter()
                    .any(|p| p.is_finite())
                    .then(|| r.price.clone()),
                on_promo: r.promo.iter().any(|&p| p).then(|| r.promo.clone()),
                future,
                covariates: display
                    .then(|| Covariate {
                        name: "display".into(),
                        known: true,
                        values: r.display.clone(),
                        future: display_plan,
                    })
                    .into_iter()
                    .collect(),
                ..Series::default()
            })
        })
        .collect()
}

/// The held-out periods' price, promotion and display placed on the `h` periods
/// after the series' last training date, as the forecast task places a
/// `future:` table: a period without a row keeps the last known price and
/// no promotion, and is counted as filled.
fn plan_by_date(
    t: &Rows,
    hist: &Rows,
    freq: Frequency,
    last: NaiveDate,
    h: usize,
) -> Result<(FutureCovariates, Vec<f64>)> {
    let mut price = Vec::with_capacity(h);
    let mut promo = Vec::with_capacity(h);
    let mut display = Vec::with_capacity(h);
    let mut filled = 0;
    let mut held = hist.price.iter().rev().copied().find(|p| p.is_finite());
    for step in 1..=h {
        let date = restock::forecast::calendar::date_at(freq, last, step as i64)?;
        match t.dates.iter().position(|d| *d == date) {
            Some(i) => {
                if t.price[i].is_finite() {
                    held = Some(t.price[i]);
                }
                price.push(held.unwrap_or(f64::NAN));
                promo.push(t.promo[i]);
                display.push(t.display[i]);
            }
            None => {
                filled += 1;
                price.push(held.unwrap_or(f64::NAN));
                promo.push(false);
                display.push(0.0);
            }
        }
    }
    let future = FutureCovariates {
        price: Some(price),
        on_promo: Some(promo),
        filled,
    };
    Ok((future, display))
}

/// The served forecast scored on the holdout, matched by date.
fn holdout(
    results: &[GroupResult],
    train: &BTreeMap<String, Rows>,
    test: &BTreeMap<String, Rows>,
    meta: &Meta,
    levels: &[f64],
) -> Metrics {
    let rows: Vec<&restock::forecast::ForecastRow> =
        results.iter().flat_map(|r| &r.forecasts).collect();
    score_rows(&rows, train, test, meta, levels)
}

/// Every candidate of every group made to serve the holdout from the same
/// trained model (the LSTM only where it trained): what the champion rule
/// chose against what it could have chosen, on data it never saw.
fn holdout_by_candidate(
    results: &[GroupResult],
    series: &[Series],
    data: (&BTreeMap<String, Rows>, &BTreeMap<String, Rows>, &Meta),
    opts: &PrepareOptions,
    levels: &[f64],
) -> Result<Vec<(restock::forecast::ModelKind, Metrics)>> {
    let (train, test, meta) = data;
    let mut out = Vec::new();
    for kind in restock::forecast::ModelKind::ALL {
        let mut rows = Vec::new();
        for r in results {
            let Some(model) = &r.model else { continue };
            if kind == restock::forecast::ModelKind::Lstm && model.history.is_empty() {
                continue;
            }
            let mut m = model.clone();
            m.serving = kind;
            let group: Vec<Series> = series
                .iter()
                .filter(|s| s.group == r.group)
                .cloned()
                .collect();
            rows.extend(restock::forecast::forecast_with_model_at(
                &m,
                &group,
                meta.frequency,
                opts,
            )?);
        }
        if !rows.is_empty() {
            let refs: Vec<&restock::forecast::ForecastRow> = rows.iter().collect();
            out.push((kind, score_rows(&refs, train, test, meta, levels)));
        }
    }
    Ok(out)
}

fn score_rows(
    rows: &[&restock::forecast::ForecastRow],
    train: &BTreeMap<String, Rows>,
    test: &BTreeMap<String, Rows>,
    meta: &Meta,
    levels: &[f64],
) -> Metrics {
    let mut evals = Vec::new();
    {
        let mut by_key: BTreeMap<&str, Vec<&restock::forecast::ForecastRow>> = BTreeMap::new();
        for f in rows {
            by_key.entry(f.key[0].as_str()).or_default().push(f);
        }
        for (id, rows) in by_key {
            let (Some(t), Some(hist)) = (test.get(id), train.get(id)) else {
                continue;
            };
            let mut e = SeriesEval {
                actual: Vec::new(),
                mean: Vec::new(),
                quantiles: vec![Vec::new(); levels.len()],
                scales: metrics::scales(&hist.values, meta.season),
            };
            for (d, y) in t.dates.iter().zip(&t.values) {
                let Some(f) = rows.iter().find(|f| f.forecast_date == *d) else {
                    continue;
                };
                e.actual.push(*y);
                e.mean.push(f.mean);
                for (q, v) in e.quantiles.iter_mut().zip(&f.quantiles) {
                    q.push(*v);
                }
            }
            if std::env::var_os("RESTOCK_ACCURACY_DUMP").is_some() {
                eprintln!(
                    "{id}: actual {:?} mean {:?} scales {:?}",
                    e.actual, e.mean, e.scales
                );
            }
            evals.push(e);
        }
    }
    metrics::aggregate(&evals, levels)
}

fn row(name: &str, m: &Metrics) -> String {
    let cov = |i: usize| m.coverage.get(i).copied().unwrap_or(f64::NAN);
    format!(
        "| {name} | {:.3} | {:.3} | {:.3} | {:+.3} | {:.2} / {:.2} ({:.2}) |",
        m.rmsse,
        m.mase,
        m.wape,
        m.bias,
        cov(0),
        cov(m.coverage.len().saturating_sub(1)),
        cov(m.coverage.len().saturating_sub(1)) - cov(0)
    )
}

fn baseline_row(name: &str, v: &serde_json::Value) -> String {
    let g = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    format!(
        "| {name} (statsforecast) | {:.3} | {:.3} | {:.3} | {:+.3} | {:.2} / {:.2} ({:.2}) |",
        g("rmsse"),
        g("mase"),
        g("wape"),
        g("bias"),
        g("coverage_p10"),
        g("coverage_p90"),
        g("coverage_p90") - g("coverage_p10")
    )
}

/// The shared datasets the bench reads, by the names its baseline script
/// takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dataset {
    /// Dominick's canned tuna, weekly, 7 series.
    Tuna,
    /// Borden sliced cheese, weekly, 88 series.
    Cheese,
    /// The Tourism competition's monthly series.
    #[value(alias = "tourism-monthly")]
    Tourism,
    /// The Tourism competition's quarterly series.
    TourismQuarterly,
    /// The Tourism competition's yearly series.
    TourismYearly,
}

impl Dataset {
    fn as_str(self) -> &'static str {
        match self {
            Dataset::Tuna => "tuna",
            Dataset::Cheese => "cheese",
            Dataset::Tourism => "tourism",
            Dataset::TourismQuarterly => "tourism-quarterly",
            Dataset::TourismYearly => "tourism-yearly",
        }
    }
}

pub async fn bench(dataset: Dataset, data: PathBuf, baselines: bool) -> Result<()> {
    let dataset = dataset.as_str();
    let dir = tempfile::tempdir()?;
    let python = std::env::var("RESTOCK_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/accuracy_baselines.py");
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(&script)
        .arg(dataset)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(dir.path());
    if !baselines {
        cmd.arg("--no-baselines");
    }
    let out = cmd.output().with_context(|| format!("running {python}"))?;
    if !out.status.success() {
        bail!(
            "{} failed (it needs pandas, pyarrow and, for the baselines, statsforecast; set RESTOCK_PYTHON to a Python that has them):\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: Meta = serde_json::from_slice(&std::fs::read(dir.path().join("meta.json"))?)?;
    let train = read_rows(&dir.path().join("train.parquet"))?;
    let test = read_rows(&dir.path().join("test.parquet"))?;
    let config = config_for(&meta);
    let series = series_of(&train, &test, meta.frequency, meta.horizon)?;
    println!(
        "restock bench accuracy {dataset}: {} series, {}, horizon {}, context {}, origins {}",
        series.len(),
        meta.frequency.as_str(),
        meta.horizon,
        config.context,
        config.origins
    );
    let started = std::time::Instant::now();
    let opts = PrepareOptions::for_frequency(meta.frequency, None);
    let freq = meta.frequency;
    let cfg = config.clone();
    let all = series.clone();
    let results = tokio::task::spawn_blocking(move || {
        restock::forecast::train_all_groups_with(series, freq, &cfg, &opts, 1, &|_, _| {})
    })
    .await?;
    let mut ok = Vec::new();
    for (g, r) in results {
        ok.push(r.with_context(|| format!("group {g}"))?);
    }
    let secs = started.elapsed().as_secs_f64();
    let levels = config.quantiles.clone();
    println!(
        "\nbacktest ({} origins, mean over series × origins):",
        config.origins
    );
    println!(
        "| candidate | RMSSE | MASE | WAPE | bias | coverage p10 / p90 (p10–p90) |\n|---|---|---|---|---|---|"
    );
    for r in &ok {
        for b in &r.backtest {
            let per: Vec<String> = b
                .by_origin
                .iter()
                .map(|m| format!("{:.3}", m.rmsse))
                .collect();
            let mark = if b.kind == r.champion {
                " (champion)"
            } else {
                ""
            };
            println!(
                "{} per origin {}; spread {:.2}, out-of-origin p10–p90 coverage {}",
                row(&format!("{}{mark}", b.kind.as_str()), &b.metrics),
                per.join(" "),
                b.spread,
                b.spread_coverage
                    .map_or_else(|| "n/a".to_string(), |c| format!("{c:.2}"))
            );
        }
    }
    let served = holdout(&ok, &train, &test, &meta, &levels);
    println!("\nholdout ({} s train + forecast):", secs.round());
    println!(
        "| method | RMSSE | MASE | WAPE | bias | coverage p10 / p90 (p10–p90) |\n|---|---|---|---|---|---|"
    );
    let champions: Vec<&str> = ok.iter().map(|r| r.champion.as_str()).collect();
    println!(
        "{}",
        row(
            &format!("restock served ({})", champions.join(", ")),
            &served
        )
    );
    for (kind, m) in holdout_by_candidate(&ok, &all, (&train, &test, &meta), &opts, &levels)? {
        println!(
            "{}",
            row(&format!("restock {} (every group)", kind.as_str()), &m)
        );
    }
    let path = dir.path().join("baselines.json");
    if baselines && path.exists() {
        let b: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        for k in ["Naive", "SeasonalNaive", "AutoETS", "AutoTheta"] {
            println!("{}", baseline_row(k, &b[k]));
        }
        for k in ["Naive", "AutoETS"] {
            if let Some(v) = b[k]["rmsse"].as_f64() {
                println!("restock served RMSSE / {k}: {:.3}", served.rmsse / v);
            }
        }
    }
    println!("served_rmsse={:.4}", served.rmsse);
    Ok(())
}
