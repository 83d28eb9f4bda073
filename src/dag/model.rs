//! Validated DAGs: what the executor and the daemon run. Built only by
//! [`super::compile`], so every value here has been checked.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::schedule::Schedule;
use crate::tasks::TaskRunner;

#[derive(Debug)]
pub struct Dag {
    pub id: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub file: PathBuf,
    /// Content hash of the file this DAG was compiled from; a remote
    /// worker refuses a spec whose DAG file has changed since.
    pub source_hash: String,
    pub schedule: Option<Schedule>,
    /// Zone for `ds` and for unscheduled runs (the schedule's, else UTC).
    pub tz: Tz,
    pub max_active_runs: usize,
    pub parallelism: usize,
    pub params: serde_json::Value,
    /// Lake tables declared under `tables:`, by name.
    pub tables: BTreeMap<String, Table>,
    /// In file order; `upstream`/`downstream` index into this.
    pub tasks: Vec<Task>,
    pub by_id: HashMap<String, usize>,
    /// Problems worth reporting that do not stop the DAG from loading.
    pub warnings: Vec<super::Diagnostic>,
}

impl Dag {
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.by_id.get(id).map(|&i| &self.tasks[i])
    }
}

/// A lake table a DAG's SQL may read: Parquet files under `path`, Hive
/// partitioned by `partition_by` (string columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The name SQL uses.
    pub name: String,
    /// Lake-relative folder, without a trailing slash.
    pub path: String,
    pub partition_by: Vec<String>,
    /// Declared columns besides the partition columns (`columns:`);
    /// `None` when the DAG does not declare them, and the files' schema
    /// is only known at run time.
    pub columns: Option<Vec<String>>,
}

impl Table {
    /// Every column the table declares, partition columns included;
    /// `None` when its columns are not declared.
    pub fn declared_columns(&self) -> Option<Vec<&str>> {
        let cols = self.columns.as_ref()?;
        let mut out: Vec<&str> = cols.iter().map(String::as_str).collect();
        for p in &self.partition_by {
            if !out.contains(&p.as_str()) {
                out.push(p);
            }
        }
        Some(out)
    }
}

#[derive(Debug)]
pub struct Task {
    pub id: String,
    pub kind: String,
    pub description: Option<String>,
    pub upstream: Vec<usize>,
    pub downstream: Vec<usize>,
    pub when: Option<String>,
    pub trigger_rule: TriggerRule,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    /// The named remote executor this task runs on; `None` runs it in the
    /// executor's own process (`local`).
    pub executor: Option<String>,
    pub runner: Arc<dyn TaskRunner>,
}

/// When a task may run, given its upstream tasks' final states
/// (Airflow's trigger rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    /// Every upstream succeeded (skipped upstreams skip this task).
    #[default]
    AllSuccess,
    /// Every upstream finished, whatever its state.
    AllDone,
    /// Every upstream failed (or was upstream_failed).
    AllFailed,
    /// At least one upstream succeeded.
    OneSuccess,
    /// At least one upstream failed.
    OneFailed,
    /// No upstream failed; skipped upstreams are fine.
    NoneFailed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    Fixed,
    #[default]
    Exponential,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub retries: u32,
    pub delay: Duration,
    pub backoff: Backoff,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 0,
            delay: Duration::from_secs(30),
            backoff: Backoff::Exponential,
            max_delay: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The un-jittered delay before try `next_try` (2 is the first retry).
    pub fn base_delay(&self, next_try: u32) -> Duration {
        match self.backoff {
            Backoff::Fixed => self.delay.min(self.max_delay),
            Backoff::Exponential => {
                let exp = next_try.saturating_sub(2).min(30);
                self.delay.saturating_mul(1u32 << exp).min(self.max_delay)
            }
        }
    }

    /// The delay with "equal jitter": uniformly in `[base/2, base]`, so
    /// that retries of many tasks failing together spread out while the
    /// delay still grows.
    pub fn delay_before(&self, next_try: u32) -> Duration {
        let base = self.base_delay(next_try);
        if base.is_zero() {
            return base;
        }
        let half = base / 2;
        let extra = rand::rng().random_range(0.0..=1.0);
        half + half.mul_f64(extra)
    }
}
