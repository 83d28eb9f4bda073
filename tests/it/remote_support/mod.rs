//! Shared by the Slurm and Ray tests: a scratch project whose lake is a
//! folder the single-node cluster shares, the real `restock daemon`, and
//! questions asked of the engine itself (job records, job counts).
//!
//! The engines are real: `scripts/start_slurm.sh` and
//! `scripts/start_ray.sh` start them (CI does in `.ci/run`). A test whose
//! engine is not running fails and says how to start it, unless
//! `RESTOCK_SKIP_CLUSTER=1` is set, when it says it skipped.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const RAY_ADDRESS: &str = "http://127.0.0.1:8265";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Slurm,
    Ray,
}

impl Engine {
    /// Whether the engine is up; panics with how to start it otherwise
    /// (or returns false under RESTOCK_SKIP_CLUSTER=1).
    pub fn require(self) -> bool {
        let (up, how) = match self {
            Engine::Slurm => (
                sh("sinfo -h -o %T").is_some_and(|s| {
                    s.lines().any(|l| {
                        let st = l
                            .trim()
                            .trim_end_matches(['*', '~', '#', '!', '%', '$', '@', '^', '-']);
                        ["idle", "mixed", "allocated", "completing"].contains(&st)
                    })
                }),
                "sudo scripts/start_slurm.sh",
            ),
            Engine::Ray => (
                sh(&format!("curl -fsS {RAY_ADDRESS}/api/version")).is_some(),
                "scripts/start_ray.sh",
            ),
        };
        if up {
            return true;
        }
        if std::env::var("RESTOCK_SKIP_CLUSTER").as_deref() == Ok("1") {
            eprintln!("SKIPPED: {self:?} is not running and RESTOCK_SKIP_CLUSTER=1");
            return false;
        }
        panic!(
            "{self:?} is not running on this machine; start it with `{how}` (or set RESTOCK_SKIP_CLUSTER=1 to skip the cluster tests)"
        );
    }

    /// The `executors:` entry for a GPU executor named `gpu`.
    pub fn executor_yaml(self, extra: &str) -> String {
        match self {
            Engine::Slurm => format!(
                "  gpu: {{ kind: slurm, partition: gpu, gres: \"gpu:1\", time_limit: 30m, shared_filesystem: true, poll_interval: 200ms{extra} }}\n"
            ),
            Engine::Ray => format!(
                "  gpu: {{ kind: ray, address: \"{RAY_ADDRESS}\", num_gpus: 1, shared_filesystem: true, poll_interval: 200ms{extra} }}\n"
            ),
        }
    }

    /// Every job the engine knows whose name starts with `prefix`, with
    /// its state.
    pub fn jobs(self, prefix: &str) -> Vec<(String, String)> {
        match self {
            Engine::Slurm => sh("squeue -h -t all -o '%j|%T'")
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split_once('|'))
                .filter(|(n, _)| n.starts_with(prefix))
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect(),
            Engine::Ray => {
                let body = sh(&format!("curl -fsS {RAY_ADDRESS}/api/jobs/")).unwrap_or_default();
                let jobs: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
                jobs.iter()
                    .filter_map(|j| {
                        let id = j["submission_id"].as_str()?;
                        id.starts_with(prefix).then(|| {
                            (
                                id.to_string(),
                                j["status"].as_str().unwrap_or("").to_string(),
                            )
                        })
                    })
                    .collect()
            }
        }
    }

    /// The engine's own record of a job: what it was asked for.
    pub fn record(self, name: &str) -> String {
        match self {
            Engine::Slurm => {
                let id = sh(&format!("squeue -h -t all --name '{name}' -o %i")).unwrap_or_default();
                sh(&format!("scontrol show job -o {}", id.trim())).unwrap_or_default()
            }
            Engine::Ray => {
                let job =
                    sh(&format!("curl -fsS {RAY_ADDRESS}/api/jobs/{name}")).unwrap_or_default();
                let actors = sh(&format!(
                    "curl -fsS '{RAY_ADDRESS}/api/v0/actors?detail=1&limit=10000'"
                ))
                .unwrap_or_default();
                // The job's supervisor actor holds the entrypoint's resources.
                let v: serde_json::Value = serde_json::from_str(&actors).unwrap_or_default();
                let mine = v["data"]["result"]["result"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["name"].as_str().is_some_and(|n| n.ends_with(name)))
                    .map(|a| a["required_resources"].to_string())
                    .unwrap_or_default();
                format!("{job}\nrequired_resources={mine}")
            }
        }
    }

    /// A job that holds the one GPU until dropped.
    pub fn hold_gpu(self) -> GpuHold {
        let name = format!("restock-test-hold-{}", std::process::id());
        match self {
            Engine::Slurm => {
                sh(&format!("sbatch --parsable --job-name={name} --gres=gpu:1 --output=/dev/null --wrap 'sleep 300'"))
                    .expect("sbatch a GPU holder");
            }
            Engine::Ray => {
                let body = serde_json::json!({"entrypoint": "sleep 300", "submission_id": name, "entrypoint_num_gpus": 1});
                sh(&format!(
                    "curl -fsS -X POST -H 'content-type: application/json' -d '{body}' {RAY_ADDRESS}/api/jobs/"
                ))
                .expect("submit a GPU holder");
            }
        }
        let hold = GpuHold { engine: self, name };
        let running = common_wait(Duration::from_secs(60), || {
            self.jobs(&hold.name)
                .iter()
                .any(|(_, s)| s == "RUNNING")
                .then_some(())
        });
        assert!(running.is_some(), "the GPU holder job never started");
        hold
    }

    pub fn cancel(self, name: &str) {
        match self {
            Engine::Slurm => {
                let _ = sh(&format!("scancel --name '{name}'"));
            }
            Engine::Ray => {
                let _ = sh(&format!(
                    "curl -fsS -X POST {RAY_ADDRESS}/api/jobs/{name}/stop"
                ));
            }
        }
    }

    /// Final states the engine reports for a job that was stopped.
    pub fn is_stopped(self, state: &str) -> bool {
        match self {
            Engine::Slurm => state == "CANCELLED",
            Engine::Ray => state == "STOPPED",
        }
    }

    pub fn is_ended(self, state: &str) -> bool {
        !matches!(state, "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING")
    }
}

/// The first run the daemon started (by logical date).
const FIRST_RUN: &str = "SELECT run_id FROM dag_runs ORDER BY logical_date LIMIT 1";

pub struct GpuHold {
    engine: Engine,
    name: String,
}

impl Drop for GpuHold {
    fn drop(&mut self) {
        self.engine.cancel(&self.name);
    }
}

fn sh(cmd: &str) -> Option<String> {
    let out = Command::new("sh").arg("-c").arg(cmd).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn common_wait<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A project folder with `restock.yaml` naming the engine's executor and
/// a local lake inside it (the single-node cluster shares the disk).
pub struct RemoteProject {
    pub dir: tempfile::TempDir,
    pub engine: Engine,
}

impl RemoteProject {
    pub fn new(engine: Engine, executor_extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("jobs")).expect("jobs dir");
        let yaml = format!(
            "lake: {}\nexecutors:\n{}",
            dir.path().join("lake").display(),
            engine.executor_yaml(executor_extra)
        );
        std::fs::write(dir.path().join("restock.yaml"), yaml).expect("restock.yaml");
        Self { dir, engine }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write_dag(&self, name: &str, yaml: &str) -> PathBuf {
        let p = self.path().join("jobs").join(name);
        std::fs::write(&p, yaml).expect("write dag");
        p
    }

    pub fn restock(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_restock"));
        c.current_dir(self.path());
        c.env_remove("RESTOCK_CONFIG");
        c.env("RESTOCK_LOG", "info");
        c
    }

    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        if !self.path().join(".restock/state.db").exists() {
            return Vec::new();
        }
        let conn =
            rusqlite::Connection::open(self.path().join(".restock/state.db")).expect("open state");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        // The daemon may not have created its tables yet.
        let Ok(mut stmt) = conn.prepare(sql) else {
            return Vec::new();
        };
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                (0..n)
                    .map(|i| {
                        let v: rusqlite::types::Value = r.get(i)?;
                        Ok(match v {
                            rusqlite::types::Value::Null => "NULL".to_string(),
                            rusqlite::types::Value::Integer(i) => i.to_string(),
                            rusqlite::types::Value::Real(f) => f.to_string(),
                            rusqlite::types::Value::Text(t) => t,
                            rusqlite::types::Value::Blob(_) => "<blob>".to_string(),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .expect("query");
        rows.collect::<rusqlite::Result<Vec<_>>>().expect("rows")
    }

    /// The attempts of `task`: (try, state, error).
    /// The tests judge the run the daemon found due at start; a test that
    /// crosses midnight UTC sees the daily schedule's next run start too.
    pub fn attempts(&self, task: &str) -> Vec<(String, String, String)> {
        self.query(&format!(
            "SELECT try_number, state, IFNULL(error, '') FROM task_attempts WHERE task_id = '{task}' \
             AND run_id = ({FIRST_RUN}) ORDER BY try_number"
        ))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect()
    }

    pub fn run_state(&self) -> Option<String> {
        self.query(&format!(
            "SELECT state FROM dag_runs WHERE run_id = ({FIRST_RUN})"
        ))
        .first()
        .map(|r| r[0].clone())
    }

    /// The job-name prefix of a DAG's jobs.
    pub fn prefix(dag: &str) -> String {
        format!("restock-{dag}-")
    }

    pub fn start_daemon(&self, grace: &str) -> Daemon {
        let n = std::fs::read_dir(self.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let log = self.path().join(format!("daemon-{n}.log"));
        let child = self
            .restock()
            .arg("daemon")
            .env("RESTOCK_SHUTDOWN_GRACE", grace)
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("start daemon");
        Daemon { child, log }
    }

    /// Everything the state database and the logs say, for failures.
    pub fn diagnose(&self, d: &Daemon) -> String {
        let atts =
            self.query("SELECT task_id, try_number, state, IFNULL(error,'') FROM task_attempts");
        let mut logs = String::new();
        for e in walk(&self.path().join(".restock/logs")) {
            logs.push_str(&format!(
                "--- {}\n{}\n",
                e.display(),
                std::fs::read_to_string(&e).unwrap_or_default()
            ));
        }
        format!(
            "attempts: {atts:?}\ndaemon log:\n{}\nattempt logs:\n{logs}",
            d.log()
        )
    }
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).expect("signal");
    }

    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let st = common_wait(Duration::from_secs(secs), || {
            self.child.try_wait().ok().flatten()
        });
        match st {
            Some(s) => s,
            None => {
                let _ = self.child.kill();
                panic!("daemon did not exit in {secs}s:\n{}", self.log());
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll until `f` gives Some or `secs` pass.
pub fn wait<T>(secs: u64, f: impl FnMut() -> Option<T>) -> Option<T> {
    common_wait(Duration::from_secs(secs), f)
}

/// A DAG scheduled daily in UTC with `catchup: last`: the daemon starts
/// yesterday's run as soon as it starts.
pub fn daily_dag(id: &str, defaults: &str, tasks: &str) -> String {
    format!(
        "id: {id}\nschedule: {{ cron: \"0 0 * * *\", timezone: UTC, catchup: last }}\nmax_active_runs: 1\ndefaults: {{ {defaults} }}\ntasks:\n{tasks}"
    )
}
