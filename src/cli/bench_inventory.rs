//! `restock bench inventory`: `reorder` plus `monitor` over a generated
//! lake shaped like the M5 demo (30,000 store×sku series by default): this
//! run's 28-step forecasts, 16 previous runs' step-1 forecasts, the stock
//! snapshot, the product master and 60 days of sales partitions.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use arrow::array::{ArrayRef, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use chrono::{Duration, NaiveDate};
use parquet::arrow::ArrowWriter;
use tokio_util::sync::CancellationToken;

use restock::config::Config;
use restock::dag;
use restock::executor::{Executor, RunRequest};

use super::bench::{Quiet, peak_rss_mib};
use restock::schedule::Interval;
use restock::store::{self, RunType, State, Store};
use restock::tasks::{Registry, Services};

/// A small deterministic generator (xorshift64*), enough for synthetic
/// benchmark inputs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn d32(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
}

fn write(lake: &Path, rel: &str, cols: Vec<(&str, ArrayRef)>) -> Result<()> {
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        cols.into_iter().map(|(_, a)| a).collect(),
    )?;
    let path = lake.join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let props = restock::lake::publish::writer_properties();
    let mut w = ArrowWriter::try_new(std::fs::File::create(&path)?, batch.schema(), Some(props))?;
    w.write(&batch)?;
    w.close()?;
    Ok(())
}

const DAG: &str = r#"id: bench_inventory
tables:
  forecasts: { path: forecasts, partition_by: [ds] }
  inventory_position: { path: curated/inventory_position, partition_by: [ds] }
  product_master: { path: curated/product_master }
  sales: { path: raw/sales, partition_by: [ds] }
  reorder_plans: { path: reorder_plans, partition_by: [ds] }
tasks:
  - id: reorder
    kind: reorder
  - id: monitor
    kind: monitor
    depends_on: [reorder]
    plans: reorder_plans
    forecasts: forecasts
"#;

fn generate(lake: &Path, series: usize, as_of: NaiveDate) -> Result<usize> {
    let stores = 10usize;
    let skus = series.div_ceil(stores);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let sku_names: Vec<String> = (0..skus).map(|i| format!("SKU_{i:05}")).collect();
    let store_names: Vec<String> = (0..stores).map(|i| format!("S{i:02}")).collect();
    let level: Vec<f64> = (0..skus).map(|_| 0.2 + 20.0 * rng.next().powi(2)).collect();
    let keys: Vec<(usize, usize)> = (0..stores)
        .flat_map(|s| (0..skus).map(move |k| (s, k)))
        .take(series)
        .collect();
    let mut rows = 0usize;

    // This run's forecasts: 28 steps.
    let (mut st, mut sk, mut fd, mut step, mut p10, mut p50, mut p90, mut mean) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    for &(s, k) in &keys {
        for h in 1..=28i64 {
            let m = level[k] * (1.0 + 0.2 * ((h % 7) as f64 / 7.0));
            st.push(store_names[s].as_str());
            sk.push(sku_names[k].as_str());
            fd.push(d32(as_of + Duration::days(h)));
            step.push(h);
            p10.push((m - 1.28 * m.sqrt()).max(0.0));
            p50.push(m);
            p90.push(m + 1.28 * m.sqrt());
            mean.push(m);
        }
    }
    rows += st.len();
    write(
        lake,
        &format!("forecasts/ds={as_of}/part-00000.parquet"),
        vec![
            ("store", Arc::new(StringArray::from(st))),
            ("sku", Arc::new(StringArray::from(sk))),
            ("forecast_date", Arc::new(Date32Array::from(fd))),
            ("step", Arc::new(Int64Array::from(step))),
            ("p10", Arc::new(Float64Array::from(p10))),
            ("p50", Arc::new(Float64Array::from(p50))),
            ("p90", Arc::new(Float64Array::from(p90))),
            ("mean", Arc::new(Float64Array::from(mean))),
        ],
    )?;
    // Previous runs' step-1 forecasts and 60 days of sales.
    for back in 1..=60i64 {
        let day = as_of - Duration::days(back - 1);
        let (mut st, mut sk, mut dd, mut units) = (vec![], vec![], vec![], vec![]);
        for &(s, k) in &keys {
            // Store 9 stopped sending data three days ago.
            if s == 9 && back <= 3 {
                continue;
            }
            st.push(store_names[s].as_str());
            sk.push(sku_names[k].as_str());
            dd.push(d32(day));
            units.push((level[k] * (0.5 + rng.next())).round() as i64);
        }
        rows += st.len();
        write(
            lake,
            &format!("raw/sales/ds={day}/part-00000.parquet"),
            vec![
                ("date", Arc::new(Date32Array::from(dd))),
                ("store", Arc::new(StringArray::from(st))),
                ("sku", Arc::new(StringArray::from(sk))),
                ("units", Arc::new(Int64Array::from(units))),
            ],
        )?;
        if back <= 16 {
            let made = day - Duration::days(1);
            let (mut st, mut sk, mut fd, mut m, mut lo, mut hi) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            for &(s, k) in &keys {
                st.push(store_names[s].as_str());
                sk.push(sku_names[k].as_str());
                fd.push(d32(day));
                m.push(level[k]);
                lo.push((level[k] - 1.28 * level[k].sqrt()).max(0.0));
                hi.push(level[k] + 1.28 * level[k].sqrt());
            }
            let n = st.len();
            rows += n;
            write(
                lake,
                &format!("forecasts/ds={made}/part-00000.parquet"),
                vec![
                    ("store", Arc::new(StringArray::from(st))),
                    ("sku", Arc::new(StringArray::from(sk))),
                    ("forecast_date", Arc::new(Date32Array::from(fd))),
                    ("step", Arc::new(Int64Array::from(vec![1i64; n]))),
                    ("p10", Arc::new(Float64Array::from(lo))),
                    ("p50", Arc::new(Float64Array::from(m.clone()))),
                    ("p90", Arc::new(Float64Array::from(hi))),
                    ("mean", Arc::new(Float64Array::from(m))),
                ],
            )?;
        }
    }
    let (mut st, mut sk, mut oh, mut oo) = (vec![], vec![], vec![], vec![]);
    for &(s, k) in &keys {
        st.push(store_names[s].as_str());
        sk.push(sku_names[k].as_str());
        let r = rng.next();
        oh.push(if r < 0.02 {
            0
        } else if r < 0.025 {
            -3
        } else {
            (level[k] * 30.0 * rng.next()) as i64
        });
        oo.push(if rng.next() < 0.3 {
            (level[k] * 7.0) as i64
        } else {
            0
        });
    }
    rows += st.len();
    write(
        lake,
        &format!("curated/inventory_position/ds={as_of}/part-00000.parquet"),
        vec![
            ("store", Arc::new(StringArray::from(st))),
            ("sku", Arc::new(StringArray::from(sk))),
            ("on_hand", Arc::new(Int64Array::from(oh))),
            ("on_order", Arc::new(Int64Array::from(oo))),
        ],
    )?;
    let n = skus;
    write(
        lake,
        "curated/product_master/part-00000.parquet",
        vec![
            ("sku", Arc::new(StringArray::from(sku_names.clone()))),
            (
                "unit_cost",
                Arc::new(Float64Array::from(
                    (0..n).map(|i| 1.0 + (i % 50) as f64).collect::<Vec<_>>(),
                )),
            ),
            (
                "case_pack",
                Arc::new(Int64Array::from(
                    (0..n).map(|i| [1, 6, 12, 24][i % 4]).collect::<Vec<i64>>(),
                )),
            ),
            (
                "moq",
                Arc::new(Int64Array::from(
                    (0..n).map(|i| [0, 12, 24][i % 3]).collect::<Vec<i64>>(),
                )),
            ),
            (
                "lead_time_days",
                Arc::new(Float64Array::from(
                    (0..n).map(|i| 2.0 + (i % 10) as f64).collect::<Vec<_>>(),
                )),
            ),
            (
                "lead_time_std_days",
                Arc::new(Float64Array::from(vec![1.0; n])),
            ),
            (
                "review_period_days",
                Arc::new(Int64Array::from(vec![7i64; n])),
            ),
            ("service_level", Arc::new(Float64Array::from(vec![0.95; n]))),
        ],
    )?;
    Ok(rows + n)
}

pub async fn bench(config: Config, series: usize) -> Result<()> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let lake = dir.path().join("lake");
    let as_of = NaiveDate::from_ymd_opt(2026, 11, 27).context("date")?;
    println!(
        "restock bench inventory: {series} series (10 stores), 28-step forecasts, 60 days of sales"
    );
    let t = Instant::now();
    let l = lake.clone();
    let rows = tokio::task::spawn_blocking(move || generate(&l, series, as_of)).await??;
    println!(
        "generated {rows} input rows in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut cfg = config;
    cfg.lake = lake.display().to_string();
    let registry = Registry::builtin();
    let dag = dag::compile_str(&dir.path().join("bench.yaml"), DAG, &registry, dir.path())
        .map_err(|d| anyhow::anyhow!("bench DAG invalid: {}", d[0]))?;
    let exec = Executor {
        store: Store::open(&dir.path().join("state.db"))?,
        services: Arc::new(Services::new(cfg)?),
        logs_dir: dir.path().join("logs"),
        observer: Arc::new(Quiet),
        write_logs: true,
        drain: CancellationToken::new(),
    };
    let start =
        restock::schedule::local_midnight(&chrono_tz::Tz::UTC, as_of).context("midnight")?;
    let t = Instant::now();
    let run = exec
        .run(
            Arc::new(dag),
            RunRequest {
                interval: Interval {
                    start,
                    end: start + Duration::days(1),
                },
                run_type: RunType::Manual,
                force: false,
                only: None,
            },
            CancellationToken::new(),
        )
        .await?;
    let total = t.elapsed();
    let attempts = exec.store.with(|c| store::attempts(c, &run.run_id))?;
    anyhow::ensure!(
        run.state == State::Succeeded,
        "bench run {}: {:?}",
        run.state,
        attempts.iter().map(|a| a.error.clone()).collect::<Vec<_>>()
    );
    for a in &attempts {
        let secs = match (a.started_at, a.ended_at) {
            (Some(s), Some(e)) => (e - s).num_milliseconds() as f64 / 1000.0,
            _ => f64::NAN,
        };
        println!("{:<8} {:>7.2} s  outputs {}", a.task_id, secs, a.outputs);
    }
    println!(
        "reorder + monitor: {:.2} s wall for {series} series; peak RSS {:.0} MiB",
        total.as_secs_f64(),
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}
