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

    // The aggregation, run alternately by restock and by DuckDB on the same
    // files, so that both see the same machine: on a shared host the speed
    // drifts between runs, and timing one engine's repeats after the
    // other's folds that drift into the ratio.
    let sales = Table {
        name: "sales".into(),
        path: "raw/sales".into(),
        partition_by: vec!["ds".into()],
        columns: None,
    };
    let mut duck = match lake.local_root() {
        Some(root) => Some(DuckDb::start(root)?),
        None => {
            println!("aggregation, DuckDB: skipped (the lake is not a local folder)");
            None
        }
    };
    let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut checksum = (0usize, 0i64);
    let mut duck_checksum = None;
    for _ in 0..repeat {
        let t = Instant::now();
        checksum = aggregate(&lake, &sales).await?;
        let secs = t.elapsed().as_secs_f64();
        ours.push(secs);
        if let Some(d) = duck.as_mut() {
            match d.run() {
                Ok((dsecs, sum)) => {
                    theirs.push(dsecs);
                    ratios.push(secs / dsecs);
                    duck_checksum = Some(sum);
                }
                Err(e) => {
                    println!("aggregation, DuckDB: failed ({e:#})");
                    duck = None;
                }
            }
        }
    }
    let (best, med) = median(ours);
    println!(
        "aggregation, restock (DataFusion): best {best:.3} s, median {med:.3} s; {} rows, {} units; peak RSS {:.0} MiB",
        checksum.0,
        checksum.1,
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    // DuckDB's checksum is set exactly when at least one of its runs was timed.
    if let Some(sum) = duck_checksum {
        let (db_best, db_med) = median(theirs);
        let (r_best, r_med) = median(ratios);
        println!(
            "aggregation, DuckDB (same files, same threads): best {db_best:.3} s, median {db_med:.3} s; {} rows, {} units",
            sum.0, sum.1
        );
        println!(
            "restock / DuckDB, run by run: median {r_med:.2}x, best {r_best:.2}x{}",
            if sum == checksum {
                ""
            } else {
                "  (results differ!)"
            }
        );
    }
    Ok(())
}

/// One run of the aggregation in a fresh session (as a task gets): rows
/// and total units, to check against DuckDB.
async fn aggregate(lake: &Lake, sales: &Table) -> Result<(usize, i64)> {
    let ctx = session::context(lake);
    session::register_table(&ctx, lake, sales).await?;
    let batches = ctx.sql(AGG_SQL).await?.collect().await?;
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
    Ok((rows, units))
}

/// A Python process holding one DuckDB connection, running the same
/// aggregation over the lake's files each time it is asked.
struct DuckDb {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl DuckDb {
    fn start(root: &std::path::Path) -> Result<Self> {
        let sql = AGG_SQL.replace(
            "FROM sales",
            &format!(
                "FROM read_parquet('{}/raw/sales/*/*.parquet', hive_partitioning = true)",
                root.display().to_string().trim_end_matches('/')
            ),
        );
        let script = format!(
            r#"
import duckdb, os, sys, time
con = duckdb.connect()
con.execute("PRAGMA threads={threads}")
sql = os.environ["RESTOCK_BENCH_SQL"]
for _ in sys.stdin:
    t = time.perf_counter()
    rows = con.execute(sql).fetchall()
    print(time.perf_counter() - t, len(rows), int(sum(r[2] for r in rows)), flush=True)
"#,
            threads = std::thread::available_parallelism().map_or(2, |n| n.get()),
        );
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(&script)
            .env("RESTOCK_BENCH_SQL", sql)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .context("starting python3 for DuckDB")?;
        let stdin = child.stdin.take().context("python3 stdin")?;
        let stdout = std::io::BufReader::new(child.stdout.take().context("python3 stdout")?);
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    /// Seconds, and (rows, units) of the result.
    fn run(&mut self) -> Result<(f64, (usize, i64))> {
        use std::io::{BufRead, Write};
        self.stdin.write_all(b"run\n")?;
        self.stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("python3 with duckdb exited (is the duckdb package installed?)");
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 {
            bail!("unexpected output {line:?}");
        }
        Ok((f[0].parse()?, (f[1].parse()?, f[2].parse()?)))
    }
}

impl Drop for DuckDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
