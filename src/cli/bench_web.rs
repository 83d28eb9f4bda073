//! `restock bench web`: the web server over a large history (100,000 runs
//! and 1,000,000 attempts by default) and a 50 MB log. Reports the median
//! and 95th percentile latency of the DAG list, the DAG grid (newest 25
//! runs), a run page, the log's first page and `/metrics`, the server's
//! RSS, and `wrk` throughput against the DAG list and `/metrics` when `wrk`
//! is installed.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{TimeZone, Utc};
use tokio_util::sync::CancellationToken;

use restock::config::Config;
use restock::daemon::{DagSet, Shared};
use restock::store::{Store, ts};
use restock::tasks::Registry;
use restock::web::{self, AppState, ReadPool};

#[derive(clap::Args, Debug)]
pub struct WebBenchArgs {
    /// Runs in the history, spread over `dags` DAGs.
    #[arg(long, default_value_t = 100_000)]
    pub runs: usize,
    /// DAGs (each has `tasks` tasks; one attempt per task and run).
    #[arg(long, default_value_t = 10)]
    pub dags: usize,
    #[arg(long, default_value_t = 10)]
    pub tasks: usize,
    /// Size of the big log, in MB.
    #[arg(long, default_value_t = 50)]
    pub log_mb: usize,
    /// Requests per endpoint for the latency figures.
    #[arg(long, default_value_t = 100)]
    pub requests: usize,
    /// Seconds of `wrk` per endpoint (0: skip).
    #[arg(long, default_value_t = 10)]
    pub wrk_seconds: u64,
}

fn dag_yaml(id: &str, tasks: usize) -> String {
    let mut s = format!(
        "id: {id}\ndescription: bench DAG {id}\nschedule:\n  cron: \"0 2 * * *\"\n  timezone: Europe/Berlin\ntasks:\n"
    );
    for t in 0..tasks {
        s.push_str(&format!("  - id: t{t}\n    kind: empty\n"));
        if t > 0 {
            s.push_str(&format!("    depends_on: [t{}]\n", t - 1));
        }
    }
    s
}

/// Write the history straight into SQLite in one transaction.
fn fill(store: &Store, a: &WebBenchArgs) -> Result<()> {
    let day0 = Utc
        .with_ymd_and_hms(2000, 1, 1, 1, 0, 0)
        .single()
        .context("epoch")?;
    let per_dag = a.runs.div_ceil(a.dags);
    store.with(|c| {
        let tx = c.transaction()?;
        {
            let mut run = tx.prepare(
                "INSERT INTO dag_runs (run_id, dag_id, logical_date, ds, data_interval_start, data_interval_end, run_type, state, generation, created_at, started_at, ended_at)
                 VALUES (?1, ?2, ?3, ?4, ?3, ?5, 'scheduled', ?6, 1, ?5, ?5, ?7)",
            )?;
            let mut ti = tx.prepare(
                "INSERT INTO task_instances (run_id, task_id, state, tries, outputs, updated_at) VALUES (?1, ?2, ?3, 1, '{\"rows\": 1}', ?4)",
            )?;
            let mut at = tx.prepare(
                "INSERT INTO task_attempts (run_id, task_id, try_number, state, started_at, ended_at, outputs, log_path) VALUES (?1, ?2, 1, ?3, ?4, ?5, '{\"rows\": 1}', NULL)",
            )?;
            for d in 0..a.dags {
                let dag = format!("bench{d}");
                for i in 0..per_dag {
                    let start = day0 + chrono::Duration::days(i as i64);
                    let end = start + chrono::Duration::days(1);
                    let run_id = format!("{dag}.{}", start.format("%Y%m%dT%H%M%SZ"));
                    let failed = i % 37 == 5;
                    let state = if failed { "failed" } else { "succeeded" };
                    let done = end + chrono::Duration::seconds(60);
                    run.execute(rusqlite::params![
                        run_id,
                        dag,
                        ts(start),
                        start.format("%Y-%m-%d").to_string(),
                        ts(end),
                        state,
                        ts(done)
                    ])?;
                    for t in 0..a.tasks {
                        let st = if failed && t == a.tasks - 1 { "failed" } else { "succeeded" };
                        let task = format!("t{t}");
                        let s = end + chrono::Duration::seconds(t as i64 * 5);
                        let e = s + chrono::Duration::seconds(4);
                        ti.execute(rusqlite::params![run_id, task, st, ts(e)])?;
                        at.execute(rusqlite::params![run_id, task, st, ts(s), ts(e)])?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    })?;
    Ok(())
}

fn big_log(path: &Path, mb: usize) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let line = "2026-11-27T02:00:00Z INFO processed a batch of rows; nothing to see here, just a long log line\n";
    let mut written = 0;
    let mut i = 0u64;
    while written < mb * 1_000_000 {
        let l = format!("{i:09} {line}");
        f.write_all(l.as_bytes())?;
        written += l.len();
        i += 1;
    }
    f.flush()?;
    Ok(())
}

fn rss_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with(key))?.to_string();
            l.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

async fn latency(client: &reqwest::Client, url: &str, n: usize) -> Result<(f64, f64, usize)> {
    let mut times = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..3 {
        client.get(url).send().await?.bytes().await?;
    }
    for _ in 0..n {
        let t = Instant::now();
        let r = client.get(url).send().await?;
        if !r.status().is_success() {
            bail!("{url}: {}", r.status());
        }
        bytes = r.bytes().await?.len();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let p = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    Ok((p(0.5), p(0.95), bytes))
}

fn wrk(url: &str, secs: u64) -> Option<String> {
    let out = std::process::Command::new("wrk")
        .args(["-t2", "-c16", &format!("-d{secs}s"), url])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text.lines().find(|l| l.starts_with("Requests/sec:"))?;
    let lat = text.lines().find(|l| l.trim_start().starts_with("Latency"));
    Some(format!(
        "{}  ({})",
        rps.trim(),
        lat.map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    ))
}

pub async fn bench_web(config: Config, a: WebBenchArgs) -> Result<ExitCode> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let mut config = config;
    config.jobs = dir.path().join("jobs");
    config.state = dir.path().join("state.db");
    config.logs = dir.path().join("logs");
    config.outbox = dir.path().join("outbox");
    // The server opens the lake for its planning pages; keep it in here.
    config.lake = dir.path().join("lake").display().to_string();
    std::fs::create_dir_all(&config.jobs)?;
    for d in 0..a.dags {
        std::fs::write(
            config.jobs.join(format!("bench{d}.yaml")),
            dag_yaml(&format!("bench{d}"), a.tasks),
        )?;
    }
    let store = Store::open(&config.state)?;
    let t = Instant::now();
    let store2 = store.clone();
    let a = tokio::task::spawn_blocking(move || fill(&store2, &a).map(|_| a)).await??;
    let per_dag = a.runs.div_ceil(a.dags);
    println!(
        "history: {} runs, {} attempts in {:.1}s",
        per_dag * a.dags,
        per_dag * a.dags * a.tasks,
        t.elapsed().as_secs_f64()
    );
    let newest = Utc
        .with_ymd_and_hms(2000, 1, 1, 1, 0, 0)
        .single()
        .context("epoch")?
        + chrono::Duration::days(per_dag as i64 - 1);
    let run_id = format!("bench0.{}", newest.format("%Y%m%dT%H%M%SZ"));
    let log = config.logs.join("bench0").join(&run_id).join("t0/1.log");
    big_log(&log, a.log_mb)?;
    let lp = log.to_string_lossy().into_owned();
    let rid = run_id.clone();
    store.with(move |c| {
        c.execute(
            "UPDATE task_attempts SET log_path = ?1 WHERE run_id = ?2 AND task_id = 't0'",
            rusqlite::params![lp, rid],
        )?;
        Ok(())
    })?;
    drop(store);

    let shared = Arc::new(Shared::default());
    let mut set = DagSet::new(config.jobs.clone(), config.root.clone());
    set.reload(&Registry::builtin(), true);
    shared.set_catalog(set.catalog());
    let pool = ReadPool::open(&config.state, 4)?;
    let state = AppState::new(config.clone(), pool, shared, None, None)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let server = tokio::spawn(web::serve(listener, state, stop.clone()));
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let rss_before = rss_mib("VmRSS:");
    let t = Instant::now();
    client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .bytes()
        .await?;
    let cold_metrics = t.elapsed().as_secs_f64() * 1000.0;
    println!("endpoint                         median ms    p95 ms     bytes");
    let pages = [
        ("DAG list (page)", "/".to_string()),
        ("DAG list (API)", "/api/v1/dags".to_string()),
        ("DAG grid, 25 runs (page)", "/dags/bench0".to_string()),
        (
            "DAG grid, 25 runs (API)",
            "/api/v1/dags/bench0/grid?limit=25".to_string(),
        ),
        ("run page", format!("/runs/{run_id}")),
        ("run tasks (API)", format!("/api/v1/runs/{run_id}/tasks")),
        (
            "50 MB log, first page",
            format!("/api/v1/runs/{run_id}/tasks/t0/tries/1/log"),
        ),
        (
            "50 MB log, tail",
            format!("/api/v1/runs/{run_id}/tasks/t0/tries/1/log?tail=65536"),
        ),
        ("/metrics (cached)", "/metrics".to_string()),
    ];
    for (name, path) in &pages {
        let (med, p95, bytes) = latency(&client, &format!("{base}{path}"), a.requests).await?;
        println!("{name:<32} {med:>9.2} {p95:>9.2} {bytes:>9}");
    }
    println!("/metrics first (uncached) scrape: {cold_metrics:.0} ms");
    println!(
        "server RSS: {:.0} MiB before requests, {:.0} MiB after, peak {:.0} MiB (whole process)",
        rss_before,
        rss_mib("VmRSS:"),
        rss_mib("VmHWM:")
    );
    if a.wrk_seconds > 0 {
        for path in ["/", "/metrics"] {
            match wrk(&format!("{base}{path}"), a.wrk_seconds) {
                Some(line) => println!("wrk -t2 -c16 -d{}s {path}: {line}", a.wrk_seconds),
                None => println!("wrk not installed or failed; skipped {path}"),
            }
        }
    }
    stop.cancel();
    let _ = server.await;
    Ok(ExitCode::SUCCESS)
}
