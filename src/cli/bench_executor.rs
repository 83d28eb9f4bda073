//! `restock bench executor`: what a remote executor costs per attempt,
//! per engine, against the local executor in the same run, and whether
//! remote attempts in flight slow the scheduling of local tasks.
//!
//! Per engine: `attempts` sequential `empty` attempts (parallelism 1),
//! reporting submit→start (the spec's `submitted_at` to the worker's
//! `started_at`, both from the lake) and end-to-end per attempt (the
//! attempt's row, begin to end, against the same DAG run locally). Then
//! `in_flight` remote `sleep` attempts are started and, while they are in
//! flight, a fan-out of `local_tasks` `empty` tasks runs in the same
//! executor; its overhead per task is reported beside the same fan-out
//! with nothing in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio_util::sync::CancellationToken;

use restock::config::Config;
use restock::dag::{self, Dag};
use restock::executor::{Executor, RunRequest};
use restock::schedule::Interval;
use restock::store::{self, RunRecord, RunType, State, Store};
use restock::tasks::{Registry, Services};
use restock::worker::spec::{AttemptResult, AttemptSpec};

use super::bench::Quiet;

pub struct Args {
    pub engines: Vec<String>,
    pub attempts: usize,
    pub in_flight: usize,
    pub local_tasks: usize,
    pub ray_address: String,
    pub slurm_partition: Option<String>,
    pub poll_interval: String,
}

pub async fn bench(config: Config, a: Args) -> Result<()> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let root = std::fs::canonicalize(dir.path())?;
    let mut config = config;
    config.root = root.clone();
    config.lake = root.join("lake").display().to_string();
    let mut yaml = String::new();
    for e in &a.engines {
        yaml.push_str(&match e.as_str() {
            "slurm" => format!(
                "slurm: {{ kind: slurm, shared_filesystem: true, poll_interval: {}{} }}\n",
                a.poll_interval,
                a.slurm_partition.as_ref().map_or(String::new(), |p| format!(", partition: {p}"))
            ),
            "ray" => format!(
                "ray: {{ kind: ray, address: \"{}\", shared_filesystem: true, poll_interval: {} }}\n",
                a.ray_address, a.poll_interval
            ),
            other => bail!("unknown engine `{other}` (slurm, ray)"),
        });
    }
    let raw = serde_yaml::from_str(&yaml)?;
    config.executors = restock::remote::config::compile(raw, |_| None)
        .map_err(|e| anyhow::anyhow!("{}", e.join("\n")))?;
    println!(
        "restock bench executor: {} sequential empty attempts per engine, {} remote attempts in flight vs {} local tasks; poll {}",
        a.attempts, a.in_flight, a.local_tasks, a.poll_interval
    );
    let b = Bench { config, root };
    let local = b.sequential(None, a.attempts).await?;
    println!("local   wall per attempt {:.2} ms", local.wall_per_attempt);
    for e in &a.engines {
        let r = b.sequential(Some(e), a.attempts).await?;
        println!(
            "{e:<7} submit->start: median {:.0} ms, p90 {:.0} ms; end-to-end per attempt: median {:.0} ms, p90 {:.0} ms; wall per attempt {:.0} ms ({:.0}x local)",
            r.submit_to_start.0,
            r.submit_to_start.1,
            r.end_to_end.0,
            r.end_to_end.1,
            r.wall_per_attempt,
            r.wall_per_attempt / local.wall_per_attempt.max(0.001)
        );
    }
    for e in &a.engines {
        let (idle, busy) = b.overhead_under_load(e, a.in_flight, a.local_tasks).await?;
        println!(
            "{e:<7} local scheduling overhead: {idle:.3} ms/task idle, {busy:.3} ms/task with {} remote attempts in flight (ratio {:.2}, target <= 2 ms/task)",
            a.in_flight,
            busy / idle.max(0.0001)
        );
    }
    Ok(())
}

struct Bench {
    config: Config,
    root: std::path::PathBuf,
}

/// (median, p90) in milliseconds.
type Quantiles = (f64, f64);

struct Sequential {
    submit_to_start: Quantiles,
    end_to_end: Quantiles,
    /// The whole run's wall time over its attempts (the store's
    /// millisecond timestamps are too coarse for local attempts).
    wall_per_attempt: f64,
}

fn quantiles(mut v: Vec<f64>) -> Quantiles {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9))
}

impl Bench {
    fn executor(&self, name: &str) -> Result<Executor> {
        let store = Store::open(&self.root.join(format!("{name}.db")))?;
        Ok(Executor {
            store,
            services: Arc::new(Services::new(self.config.clone())?),
            logs_dir: self.root.join(format!("logs-{name}")),
            observer: Arc::new(Quiet),
            write_logs: true,
            drain: CancellationToken::new(),
        })
    }

    fn dag(&self, id: &str, yaml: &str) -> Result<Arc<Dag>> {
        let file = self.root.join(format!("{id}.yaml"));
        std::fs::write(&file, yaml)?;
        let registry = Registry::builtin();
        let dag = dag::compile_file(&file, &registry, &self.root)
            .map_err(|d| anyhow::anyhow!("generated DAG invalid: {}", d[0]))?;
        Ok(Arc::new(dag))
    }

    async fn run(
        &self,
        exec: &Executor,
        dag: Arc<Dag>,
        cancel: CancellationToken,
    ) -> Result<RunRecord> {
        let start = "2026-11-27T00:00:00Z".parse()?;
        let end = "2026-11-28T00:00:00Z".parse()?;
        let req = RunRequest {
            interval: Interval { start, end },
            run_type: RunType::Manual,
            force: true,
            only: None,
        };
        Ok(exec.run(dag, req, cancel).await?)
    }

    async fn sequential(&self, engine: Option<&str>, n: usize) -> Result<Sequential> {
        let name = engine.unwrap_or("local");
        let id = format!("seq_{name}");
        let mut yaml = format!("id: {id}\nparallelism: 1\ntasks:\n");
        for i in 0..n {
            yaml.push_str(&format!("  - id: t{i}\n    kind: empty\n"));
            if let Some(e) = engine {
                yaml.push_str(&format!("    executor: {e}\n"));
            }
        }
        let exec = self.executor(&id)?;
        let dag = self.dag(&id, &yaml)?;
        let t = Instant::now();
        let run = self.run(&exec, dag, CancellationToken::new()).await?;
        let wall_per_attempt = t.elapsed().as_secs_f64() * 1000.0 / n.max(1) as f64;
        anyhow::ensure!(
            run.state == State::Succeeded,
            "{name}: bench run ended {}",
            run.state
        );
        let rid = run.run_id.clone();
        let atts = exec.store.call(move |c| store::attempts(c, &rid)).await?;
        let mut e2e = Vec::new();
        let mut s2s = Vec::new();
        for att in &atts {
            if let (Some(s), Some(e)) = (att.started_at, att.ended_at) {
                e2e.push((e - s).num_microseconds().unwrap_or(0) as f64 / 1000.0);
            }
            if engine.is_some() {
                let base = self.root.join(format!(
                    "lake/_attempts/{id}/{}/{}/{}",
                    run.run_id, att.task_id, att.try_number
                ));
                let spec: AttemptSpec = serde_json::from_slice(&std::fs::read(format!(
                    "{}.spec.json",
                    base.display()
                ))?)?;
                let res: AttemptResult = serde_json::from_slice(&std::fs::read(format!(
                    "{}.result.json",
                    base.display()
                ))?)?;
                s2s.push(
                    (res.started_at - spec.submitted_at)
                        .num_microseconds()
                        .unwrap_or(0) as f64
                        / 1000.0,
                );
            }
        }
        Ok(Sequential {
            submit_to_start: quantiles(s2s),
            end_to_end: quantiles(e2e),
            wall_per_attempt,
        })
    }

    /// Local fan-out overhead per task, idle and with `in_flight` remote
    /// attempts running or queued on `engine`.
    async fn overhead_under_load(
        &self,
        engine: &str,
        in_flight: usize,
        tasks: usize,
    ) -> Result<(f64, f64)> {
        let exec = self.executor(&format!("load_{engine}"))?;
        let fan = self.dag(&format!("fan_{engine}"), &super::bench::fanout_yaml(tasks))?;
        let idle = self.timed(&exec, fan.clone()).await? / tasks as f64;
        let mut yaml = format!("id: load_{engine}\nparallelism: {in_flight}\ntasks:\n");
        for i in 0..in_flight {
            yaml.push_str(&format!(
                "  - id: s{i}\n    kind: command\n    executor: {engine}\n    command: [\"sleep\", \"600\"]\n"
            ));
        }
        let load = self.dag(&format!("load_{engine}"), &yaml)?;
        let cancel = CancellationToken::new();
        let bg = {
            let (this_exec, c) = (exec.clone(), cancel.clone());
            let this = Bench {
                config: self.config.clone(),
                root: self.root.clone(),
            };
            tokio::spawn(async move { this.run(&this_exec, load, c).await })
        };
        // Wait until every remote attempt has been submitted.
        let t0 = Instant::now();
        loop {
            let n = exec
                .store
                .call(|c| {
                    Ok(c.query_row(
                        "SELECT COUNT(*) FROM task_attempts WHERE state = 'running'",
                        [],
                        |r| r.get::<_, i64>(0),
                    )?)
                })
                .await?;
            if n as usize >= in_flight {
                break;
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(120),
                "{engine}: only {n} attempts started"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let busy = self.timed(&exec, fan).await? / tasks as f64;
        cancel.cancel();
        bg.await.context("load run")??;
        Ok((idle, busy))
    }

    async fn timed(&self, exec: &Executor, dag: Arc<Dag>) -> Result<f64> {
        let t = Instant::now();
        let run = self.run(exec, dag, CancellationToken::new()).await?;
        anyhow::ensure!(
            run.state == State::Succeeded,
            "fan-out run ended {}",
            run.state
        );
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    }
}
