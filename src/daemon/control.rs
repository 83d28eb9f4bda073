//! What the daemon shares with its web server, and the commands the web
//! server sends it.
//!
//! The daemon's loop owns its DAGs, queues and running runs; the web server
//! never touches them. It reads a [`Shared`] snapshot (the DAG files with
//! their errors, the last heartbeat, how many runs each DAG has queued) and
//! asks for changes with a [`Command`] over a channel, each carrying a
//! reply. Pausing is not a command: it is persisted in the run history and
//! the scheduler reads it on every beat, so it also works from
//! `restock serve` on another machine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::{mpsc, oneshot};

use super::reload::CatalogEntry;
use crate::dag::Dag;
use crate::schedule::{self, Interval};

/// Why the daemon refused a command.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("no DAG `{0}` is loaded")]
    NoDag(String),
    #[error("no run `{0}`")]
    NoRun(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("run history: {0}")]
    Store(String),
    #[error("the scheduler is shutting down")]
    Stopping,
}

pub type Reply<T> = oneshot::Sender<Result<T, ControlError>>;

/// A change asked of the scheduler.
#[derive(Debug)]
pub enum Command {
    /// Create a manual run for the interval of `date` (default: the newest
    /// complete one) and queue it behind `max_active_runs`.
    Trigger {
        dag_id: String,
        date: Option<NaiveDate>,
        force: bool,
        reply: Reply<String>,
    },
    /// Create backfill runs for every interval starting in `[from, to]`;
    /// dates that already have a run are left alone. Replies with the new
    /// run ids.
    Backfill {
        dag_id: String,
        from: NaiveDate,
        to: NaiveDate,
        reply: Reply<Vec<String>>,
    },
    /// Stop a running or queued run; it ends `failed`.
    Cancel { run_id: String, reply: Reply<()> },
    /// Put `tasks` of a finished run back to queued and run them again
    /// (clear, rerun failed). Refused while the run is active.
    Clear {
        run_id: String,
        tasks: Vec<String>,
        reply: Reply<usize>,
    },
}

/// The scheduler's state as the web server may show it.
#[derive(Debug, Clone, Default)]
pub struct SchedulerStatus {
    /// When the scheduler last looked for due intervals.
    pub last_beat: Option<DateTime<Utc>>,
    /// Runs waiting for a `max_active_runs` slot, per DAG.
    pub queued: HashMap<String, usize>,
    /// Runs executing now, per DAG.
    pub active: HashMap<String, usize>,
}

/// Read-mostly state published by the daemon loop.
#[derive(Debug, Default)]
pub struct Shared {
    catalog: RwLock<Arc<Vec<CatalogEntry>>>,
    status: Mutex<SchedulerStatus>,
}

impl Shared {
    pub fn catalog(&self) -> Arc<Vec<CatalogEntry>> {
        match self.catalog.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn set_catalog(&self, entries: Vec<CatalogEntry>) {
        let mut g = match self.catalog.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = Arc::new(entries);
    }

    pub fn status(&self) -> SchedulerStatus {
        match self.status.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn update_status(&self, f: impl FnOnce(&mut SchedulerStatus)) {
        let mut g = match self.status.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g);
    }

    /// The loaded DAG with this id.
    pub fn dag(&self, id: &str) -> Option<Arc<Dag>> {
        self.catalog()
            .iter()
            .filter_map(|e| e.dag.as_ref())
            .find(|d| d.id == id)
            .cloned()
    }
}

/// The daemon's end of its link with a web server.
pub struct DaemonLink {
    pub commands: mpsc::Receiver<Command>,
    pub shared: Arc<Shared>,
}

/// The web server's end: a command sender and the shared snapshot.
#[derive(Clone)]
pub struct ControlHandle {
    pub commands: mpsc::Sender<Command>,
    pub shared: Arc<Shared>,
}

impl ControlHandle {
    /// Send a command and wait for its reply.
    pub async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ControlError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| ControlError::Stopping)?;
        rx.await.map_err(|_| ControlError::Stopping)?
    }
}

/// A linked pair: give the first to the daemon, the second to the server.
pub fn link() -> (DaemonLink, ControlHandle) {
    let (tx, rx) = mpsc::channel(64);
    let shared = Arc::new(Shared::default());
    (
        DaemonLink {
            commands: rx,
            shared: shared.clone(),
        },
        ControlHandle {
            commands: tx,
            shared,
        },
    )
}

/// The interval a manual run for `date` covers (default: the newest
/// complete interval, or today's for an unscheduled DAG).
pub fn interval_for(dag: &Dag, date: Option<NaiveDate>, now: DateTime<Utc>) -> Option<Interval> {
    match (date, &dag.schedule) {
        (Some(d), Some(s)) => s.interval_for_date(d),
        (Some(d), None) => schedule::day_interval(&dag.tz, d),
        (None, Some(s)) => s.latest_complete(now),
        (None, None) => schedule::day_interval(&dag.tz, now.with_timezone(&dag.tz).date_naive()),
    }
}

/// Every interval starting on a date in `[from, to]`.
pub fn intervals_between(dag: &Dag, from: NaiveDate, to: NaiveDate) -> Vec<Interval> {
    match &dag.schedule {
        Some(s) => s.intervals_between(from, to),
        None => from
            .iter_days()
            .take_while(|d| *d <= to)
            .filter_map(|d| schedule::day_interval(&dag.tz, d))
            .collect(),
    }
}
