//! `restock bench lake`: the main job's SQL preparation over a lake (rows
//! per second, wall time, peak RSS), then one aggregation over the whole
//! sales table (units per category and week) timed with restock's
//! DataFusion and with DuckDB on the same files.

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type};
use chrono::NaiveDate;
use tokio_util::sync::CancellationToken;

use restock::config::Config;
use restock::dag::model::Table;
use restock::executor::{Executor, RunRequest};

use super::bench::{Quiet, peak_rss_mib};
use restock::lake::{Lake, session};
use restock::store::{self, RunType, Store};
use restock::tasks::{Registry, Services};

fn median(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}

/// Runs the main job's tasks that `pick` selects for one date (forced),
/// with state in a scratch SQLite file. Returns the DAG, the wall time and
/// the attempts; fails naming the first failed task.
pub async fn run_tasks(
    config: &Config,
    date: Option<NaiveDate>,
    pick: impl Fn(&restock::dag::model::Task) -> bool,
) -> Result<(Arc<restock::dag::Dag>, f64, Vec<store::Attempt>)> {
    let registry = Registry::builtin();
    let dag = super::resolve_dag(config, &registry, "nightly_inventory")?;
    let only: Vec<String> = dag
        .tasks
        .iter()
        .filter(|t| pick(t))
        .map(|t| t.id.clone())
        .collect();
    let dir = tempfile::tempdir()?;
    let exec = Executor {
        store: Store::open(&dir.path().join("state.db"))?,
        services: Arc::new(Services::new(config.clone())?),
        logs_dir: dir.path().join("logs"),
        observer: Arc::new(Quiet),
        write_logs: true,
        drain: CancellationToken::new(),
    };
    let ivs = super::run::intervals(&dag, date, None)?;
    let iv = ivs.first().context("no interval")?;
    let t = Instant::now();
    let run = exec
        .run(
            dag.clone(),
            RunRequest {
                interval: *iv,
                run_type: RunType::Manual,
                force: true,
                only: Some(only),
            },
            CancellationToken::new(),
        )
        .await?;
    let wall = t.elapsed().as_secs_f64();
    let mut attempts = exec.store.with(|c| store::attempts(c, &run.run_id))?;
    // The last try of each task decides.
    attempts.sort_by(|a, b| (&a.task_id, a.try_number).cmp(&(&b.task_id, b.try_number)));
    attempts.dedup_by(|later, earlier| {
        let same = later.task_id == earlier.task_id;
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
    for a in &attempts {
        if let Some(e) = &a.error {
            bail!("task {} failed: {e}", a.task_id);
        }
    }
    Ok((dag, wall, attempts))
}

const AGG_SQL: &str = include_str!("../../sql/weekly_category_units.sql");

pub async fn bench(
    config: Config,
    date: Option<NaiveDate>,
    repeat: usize,
    skip_prep: bool,
) -> Result<()> {
    let repeat = repeat.max(1);
    let lake = Lake::open(&config.lake).with_context(|| format!("opening lake {}", config.lake))?;
    println!("restock bench lake: lake {}", config.lake);

    if !skip_prep {
        let (dag, wall, attempts) = run_tasks(&config, date, |t| t.kind == "sql").await?;
        let sql_tasks = attempts.len();
        let mut rows = 0u64;
        for a in &attempts {
            let r = a.outputs["rows"].as_u64().unwrap_or(0);
            rows += r;
            let secs = match (a.started_at, a.ended_at) {
                (Some(s), Some(e)) => (e - s).num_milliseconds() as f64 / 1000.0,
                _ => f64::NAN,
            };
            println!("  {:<20} {:>12} rows {:>8.2} s", a.task_id, r, secs);
        }
        println!(
            "SQL preparation ({} tasks, parallelism {}): {rows} rows in {wall:.2} s = {:.0} rows/s; peak RSS so far {:.0} MiB",
            sql_tasks,
            dag.parallelism,
            rows as f64 / wall,
            peak_rss_mib().unwrap_or(f64::NAN)
        );
    }

    // The aggregation with restock.
    let sales = Table {
        name: "sales".into(),
        path: "raw/sales".into(),
        partition_by: vec!["ds".into()],
    };
    let mut ours = Vec::new();
    let mut checksum = (0usize, 0i64);
    for _ in 0..repeat {
        let ctx = session::context(&lake);
        let t = Instant::now();
        session::register_table(&ctx, &lake, &sales).await?;
        let batches = ctx.sql(AGG_SQL).await?.collect().await?;
        ours.push(t.elapsed().as_secs_f64());
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let mut units = 0i64;
        for b in &batches {
            let col = b.column_by_name("units").context("units column")?;
            match col.data_type() {
                arrow::datatypes::DataType::Int64 => {
                    let a = col.as_primitive::<Int64Type>();
                    units += (0..a.len()).map(|i| a.value(i)).sum::<i64>();
                }
                _ => {
                    let c = arrow::compute::cast(col, &arrow::datatypes::DataType::Float64)?;
                    let a = c.as_primitive::<Float64Type>();
                    units += (0..a.len()).map(|i| a.value(i)).sum::<f64>() as i64;
                }
            }
        }
        checksum = (rows, units);
    }
    let (best, med) = median(ours);
    println!(
        "aggregation, restock (DataFusion): best {best:.3} s, median {med:.3} s; {} rows, {} units; peak RSS {:.0} MiB",
        checksum.0,
        checksum.1,
        peak_rss_mib().unwrap_or(f64::NAN)
    );

    // The same query with DuckDB on the same files.
    let Some(root) = config
        .lake
        .strip_prefix("file://")
        .or(Some(config.lake.as_str()))
    else {
        return Ok(());
    };
    if root.contains("://") {
        println!("aggregation, DuckDB: skipped (the lake is not a local folder)");
        return Ok(());
    }
    let duck_sql = AGG_SQL.replace(
        "FROM sales",
        &format!(
            "FROM read_parquet('{}/raw/sales/*/*.parquet', hive_partitioning = true)",
            root.trim_end_matches('/')
        ),
    );
    let script = format!(
        r#"
import duckdb, time, sys
con = duckdb.connect()
con.execute("PRAGMA threads={threads}")
sql = sys.stdin.read()
times = []
for _ in range({repeat}):
    t = time.perf_counter()
    rows = con.execute(sql).fetchall()
    times.append(time.perf_counter() - t)
times.sort()
print(times[0], times[len(times)//2], len(rows), int(sum(r[2] for r in rows)))
"#,
        threads = std::thread::available_parallelism().map_or(2, |n| n.get()),
    );
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting python3 for DuckDB")?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(duck_sql.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        println!(
            "aggregation, DuckDB: failed ({})",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    if f.len() == 4 {
        let (db_best, db_med): (f64, f64) = (f[0].parse()?, f[1].parse()?);
        println!(
            "aggregation, DuckDB (same files, same threads): best {db_best:.3} s, median {db_med:.3} s; {} rows, {} units",
            f[2], f[3]
        );
        println!(
            "restock / DuckDB (median): {:.2}x{}",
            med / db_med,
            if f[2] == checksum.0.to_string() && f[3] == checksum.1.to_string() {
                ""
            } else {
                "  (results differ!)"
            }
        );
    }
    Ok(())
}
