//! Run history in SQLite (WAL): DAG runs, task instances and their
//! attempts.
//!
//! The store owns the schema and its migrations (`PRAGMA user_version`),
//! and knows nothing about how tasks run. Calls from async code go through
//! [`Store::call`], which runs the closure on the blocking pool so the
//! runtime never waits on the disk. `restock runs`/`show` use the same
//! functions synchronously.
//!
//! Concurrency: every transaction is `IMMEDIATE` (it takes the write lock
//! when it begins, so a read-then-write never fails half way with
//! `SQLITE_BUSY`), a connection waits at most its busy timeout for another
//! process's lock and then fails with [`StoreError::Locked`] naming the
//! file, and migrations run in one `EXCLUSIVE` transaction that reads the
//! schema version itself, so two processes opening a new file cannot both
//! migrate it. Which process executes a run is decided by the run lock
//! (`lock.rs`), not by the database. The file, its WAL and the lock folder
//! are created readable by the owner only.

mod browse;
mod lock;
mod schema;

pub use browse::*;
pub use lock::RunLock;

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database is locked by another process (waited {}s): {}", .waited.as_secs(), .path.display())]
    Locked { path: PathBuf, waited: Duration },
    /// SQLite could not grow the database or its WAL: the disk (or quota)
    /// is full. The transaction was rolled back, so the history is intact.
    #[error("the disk is full writing the state database {}; free space and run again ({detail})", .path.display())]
    DiskFull { path: PathBuf, detail: String },
    #[error("{}: not a restock state database, or corrupt ({detail}); move it aside to start a new history", .path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "a run of `{dag_id}` for {logical_date} is being executed by another process (pid {owner}); not running it twice"
    )]
    RunBusy {
        dag_id: String,
        logical_date: String,
        owner: String,
    },
    #[error("run lock {}: {source}", .path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state database was written by a newer restock (schema {found}, this build knows {known})"
    )]
    TooNew { found: i64, known: i64 },
    #[error(
        "a run of `{dag_id}` for {logical_date} already exists ({run_id}, {state}); use --force to run it again"
    )]
    RunExists {
        dag_id: String,
        logical_date: String,
        run_id: String,
        state: String,
    },
    #[error("no run `{0}`")]
    NoRun(String),
    #[error("state database task failed: {0}")]
    Join(String),
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why a run exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunType {
    Scheduled,
    Manual,
    Backfill,
    Catchup,
}

impl RunType {
    pub fn as_str(self) -> &'static str {
        match self {
            RunType::Scheduled => "scheduled",
            RunType::Manual => "manual",
            RunType::Backfill => "backfill",
            RunType::Catchup => "catchup",
        }
    }
}

/// States of runs, task instances and attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Queued,
    Running,
    Succeeded,
    Failed,
    UpForRetry,
    Skipped,
    UpstreamFailed,
    Interrupted,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Running => "running",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::UpForRetry => "up_for_retry",
            State::Skipped => "skipped",
            State::UpstreamFailed => "upstream_failed",
            State::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> State {
        match s {
            "queued" => State::Queued,
            "running" => State::Running,
            "succeeded" => State::Succeeded,
            "up_for_retry" => State::UpForRetry,
            "skipped" => State::Skipped,
            "upstream_failed" => State::UpstreamFailed,
            "interrupted" => State::Interrupted,
            _ => State::Failed,
        }
    }

    /// A task in this state will not run again in this run.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Succeeded | State::Failed | State::Skipped | State::UpstreamFailed
        )
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub dag_id: String,
    pub logical_date: DateTime<Utc>,
    pub ds: String,
    pub data_interval_start: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
    pub run_type: String,
    pub state: State,
    pub generation: i64,
    pub created_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Time spent executing, summed over the run's executions (a resumed
    /// run or a `--task` rerun adds only its own time).
    pub ran_ms: i64,
}

#[derive(Debug, Clone)]
pub struct NewRun {
    pub dag_id: String,
    pub ds: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub run_type: RunType,
    pub force: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskInstance {
    pub task_id: String,
    pub state: State,
    pub tries: i64,
    pub outputs: serde_json::Value,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub run_id: String,
    pub task_id: String,
    pub try_number: i64,
    pub state: State,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub outputs: serde_json::Value,
    pub log_path: Option<String>,
}

/// How long a connection waits for another process's lock by default.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A handle to the state database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    /// The database file (`None` in memory): named in lock and corruption
    /// errors, and the run locks live beside it.
    path: Option<PathBuf>,
    busy: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Open (creating if needed) and migrate the database at `path`,
    /// waiting up to [`DEFAULT_BUSY_TIMEOUT`] for other processes' locks.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_timeout(path, DEFAULT_BUSY_TIMEOUT)
    }

    /// Open with a chosen bound on waiting for other processes' locks.
    pub fn open_with_timeout(path: &Path, busy: Duration) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| StoreError::Dir {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        // Create the file ourselves so it is owner-only from the start;
        // SQLite gives its WAL and shared-memory files the same mode.
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::Dir {
                path: path.to_path_buf(),
                source: e,
            })?;
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        conn.busy_timeout(busy)?;
        let store = Self {
            conn: Arc::new(Mutex::new(conn)),
            path: Some(path.to_path_buf()),
            busy,
        };
        store.init_waiting()?;
        Ok(store)
    }

    /// Set the pragmas and migrate, retrying while another process holds
    /// the file, up to the busy timeout. Switching a new file to WAL
    /// upgrades a read transaction to a write one (`sqlite3BtreeSetVersion`),
    /// and SQLite never waits on an upgrade, so of several processes
    /// creating the database at once the losers get `SQLITE_BUSY` at once.
    /// Each step is idempotent, so trying again is safe.
    fn init_waiting(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        loop {
            match self.with(init) {
                Err(StoreError::Locked { .. }) if started.elapsed() < self.busy => {
                    std::thread::sleep(Duration::from_millis(25));
                }
                other => return other,
            }
        }
    }

    pub fn open_in_memory() -> Result<Self, StoreError> {
        let store = Self {
            conn: Arc::new(Mutex::new(Connection::open_in_memory()?)),
            path: None,
            busy: DEFAULT_BUSY_TIMEOUT,
        };
        store.with(init)?;
        Ok(store)
    }

    /// Run `f` with the connection, synchronously. SQLite's busy and
    /// corruption errors come back naming the file.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = match self.conn.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut guard).map_err(|e| self.explain(e))
    }

    fn explain(&self, e: StoreError) -> StoreError {
        let path = || self.path.clone().unwrap_or_else(|| ":memory:".into());
        let sqlite = match &e {
            StoreError::Sql(s) | StoreError::Open { source: s, .. } => Some(s),
            _ => None,
        };
        let code = sqlite.and_then(|s| s.sqlite_error_code());
        if sqlite.is_some_and(is_shm_full) {
            return StoreError::DiskFull {
                path: path(),
                detail: format!("cannot grow its shared-memory file: {e}"),
            };
        }
        match code {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked {
                path: path(),
                waited: self.busy,
            },
            Some(ErrorCode::DiskFull) => StoreError::DiskFull {
                path: path(),
                detail: e.to_string(),
            },
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
                path: path(),
                detail: e.to_string(),
            },
            _ => e,
        }
    }

    /// Take the run lock of (`dag_id`, logical date `start`) without
    /// waiting: [`StoreError::RunBusy`] when another process (or another
    /// handle in this one) executes that run. Hold the lock for as long as
    /// the run executes.
    pub fn lock_run(&self, dag_id: &str, start: DateTime<Utc>) -> Result<RunLock, StoreError> {
        let dir = self.path.as_deref().map(lock::locks_dir);
        lock::lock_run(dir.as_deref(), dag_id, start)
    }

    /// Run `f` with the connection on the blocking pool.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.with(f))
            .await
            .map_err(|e| StoreError::Join(e.to_string()))?
    }

    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.with(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
    }
}

/// `SQLITE_IOERR_SHMSIZE`: SQLite could not allocate the pages of the WAL
/// index (`-shm`), which on a full disk it reports instead of `SQLITE_FULL`.
fn is_shm_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_IOERR_SHMSIZE)
}

fn init(conn: &mut Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_transaction_behavior(TransactionBehavior::Immediate);
    schema::migrate(conn)
}

const RUN_COLS: &str = "run_id, dag_id, logical_date, ds, data_interval_start, data_interval_end, run_type, state, generation, created_at, started_at, ended_at, ran_ms";

fn run_from_row(r: &rusqlite::Row) -> rusqlite::Result<RunRecord> {
    let t = |i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
        Ok(r.get::<_, Option<String>>(i)?.as_deref().and_then(parse_ts))
    };
    Ok(RunRecord {
        run_id: r.get(0)?,
        dag_id: r.get(1)?,
        logical_date: t(2)?.unwrap_or_default(),
        ds: r.get(3)?,
        data_interval_start: t(4)?.unwrap_or_default(),
        data_interval_end: t(5)?.unwrap_or_default(),
        run_type: r.get(6)?,
        state: State::parse(&r.get::<_, String>(7)?),
        generation: r.get(8)?,
        created_at: t(9)?,
        started_at: t(10)?,
        ended_at: t(11)?,
        ran_ms: r.get(12)?,
    })
}

/// `nightly.20261127T020000Z`, plus `.2`, `.3` … for forced reruns.
pub fn make_run_id(dag_id: &str, start: DateTime<Utc>, generation: i64) -> String {
    let stamp = start.format("%Y%m%dT%H%M%SZ");
    if generation <= 1 {
        format!("{dag_id}.{stamp}")
    } else {
        format!("{dag_id}.{stamp}.{generation}")
    }
}

/// Create the run for (DAG, logical date). Refuses a second one unless
/// `force`, which adds a new generation (the old run stays in history).
pub fn create_run(
    c: &mut Connection,
    new: &NewRun,
    now: DateTime<Utc>,
) -> Result<RunRecord, StoreError> {
    let tx = c.transaction()?;
    let existing: Option<RunRecord> = tx
        .query_row(
            &format!(
                "SELECT {RUN_COLS} FROM dag_runs WHERE dag_id = ?1 AND logical_date = ?2 ORDER BY generation DESC LIMIT 1"
            ),
            params![new.dag_id, ts(new.start)],
            run_from_row,
        )
        .optional()?;
    let generation = match &existing {
        Some(r) if !new.force => {
            return Err(StoreError::RunExists {
                dag_id: new.dag_id.clone(),
                logical_date: ts(new.start),
                run_id: r.run_id.clone(),
                state: r.state.to_string(),
            });
        }
        Some(r) => r.generation + 1,
        None => 1,
    };
    let run_id = make_run_id(&new.dag_id, new.start, generation);
    let clash: Option<RunRecord> = tx
        .query_row(
            &format!("SELECT {RUN_COLS} FROM dag_runs WHERE run_id = ?1"),
            params![run_id],
            run_from_row,
        )
        .optional()?;
    if let Some(r) = clash {
        // Same interval under another spelling of its start (rows written
        // before boundaries were exact): still the same run.
        return Err(StoreError::RunExists {
            dag_id: new.dag_id.clone(),
            logical_date: ts(new.start),
            run_id: r.run_id,
            state: r.state.to_string(),
        });
    }
    tx.execute(
        "INSERT INTO dag_runs (run_id, dag_id, logical_date, ds, data_interval_start, data_interval_end, run_type, state, generation, created_at)
         VALUES (?1, ?2, ?3, ?4, ?3, ?5, ?6, 'queued', ?7, ?8)",
        params![
            run_id,
            new.dag_id,
            ts(new.start),
            new.ds,
            ts(new.end),
            new.run_type.as_str(),
            generation,
            ts(now)
        ],
    )?;
    let rec = tx.query_row(
        &format!("SELECT {RUN_COLS} FROM dag_runs WHERE run_id = ?1"),
        params![run_id],
        run_from_row,
    )?;
    tx.commit()?;
    Ok(rec)
}

pub fn get_run(c: &Connection, run_id: &str) -> Result<RunRecord, StoreError> {
    c.query_row(
        &format!("SELECT {RUN_COLS} FROM dag_runs WHERE run_id = ?1"),
        params![run_id],
        run_from_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::NoRun(run_id.to_string()))
}

/// The newest generation of the run for (DAG, logical date).
pub fn find_run(
    c: &Connection,
    dag_id: &str,
    start: DateTime<Utc>,
) -> Result<Option<RunRecord>, StoreError> {
    Ok(c.query_row(
        &format!(
            "SELECT {RUN_COLS} FROM dag_runs WHERE dag_id = ?1 AND logical_date = ?2 ORDER BY generation DESC LIMIT 1"
        ),
        params![dag_id, ts(start)],
        run_from_row,
    )
    .optional()?)
}

pub fn list_runs(
    c: &Connection,
    dag_id: Option<&str>,
    limit: usize,
) -> Result<Vec<RunRecord>, StoreError> {
    let mut stmt = c.prepare(&format!(
        "SELECT {RUN_COLS} FROM dag_runs WHERE (?1 IS NULL OR dag_id = ?1)
         ORDER BY created_at DESC, rowid DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![dag_id, limit as i64], run_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Runs a previous process left unfinished (it died or was stopped).
pub fn unfinished_runs(c: &Connection) -> Result<Vec<RunRecord>, StoreError> {
    let mut stmt = c.prepare(&format!(
        "SELECT {RUN_COLS} FROM dag_runs WHERE state IN ('queued', 'running', 'interrupted') ORDER BY logical_date"
    ))?;
    let rows = stmt.query_map([], run_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Start of the newest interval any run of `dag_id` covers.
pub fn latest_logical_date(
    c: &Connection,
    dag_id: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let s: Option<String> = c.query_row(
        "SELECT MAX(logical_date) FROM dag_runs WHERE dag_id = ?1",
        params![dag_id],
        |r| r.get(0),
    )?;
    Ok(s.as_deref().and_then(parse_ts))
}

pub fn count_active_runs(c: &Connection, dag_id: &str) -> Result<usize, StoreError> {
    let n: i64 = c.query_row(
        "SELECT COUNT(*) FROM dag_runs WHERE dag_id = ?1 AND state IN ('queued', 'running')",
        params![dag_id],
        |r| r.get(0),
    )?;
    Ok(n as usize)
}

pub fn set_run_state(
    c: &Connection,
    run_id: &str,
    state: State,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    // An execution ends in any other state: its time is added to `ran_ms`.
    const RAN: &str = "ran_ms = ran_ms + IFNULL(CAST(ROUND((julianday(?3) - julianday(resumed_at)) * 86400000) AS INTEGER), 0), resumed_at = NULL";
    let sql = match state {
        State::Running => {
            "UPDATE dag_runs SET state = ?2, started_at = COALESCE(started_at, ?3), resumed_at = ?3, ended_at = NULL WHERE run_id = ?1".to_string()
        }
        State::Queued => format!("UPDATE dag_runs SET state = ?2, {RAN} WHERE run_id = ?1"),
        _ => format!("UPDATE dag_runs SET state = ?2, ended_at = ?3, {RAN} WHERE run_id = ?1"),
    };
    c.execute(&sql, params![run_id, state.as_str(), ts(now)])?;
    Ok(())
}

pub fn task_instances(c: &Connection, run_id: &str) -> Result<Vec<TaskInstance>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT task_id, state, tries, outputs, error FROM task_instances WHERE run_id = ?1",
    )?;
    let rows = stmt.query_map(params![run_id], |r| {
        let outputs: Option<String> = r.get(3)?;
        Ok(TaskInstance {
            task_id: r.get(0)?,
            state: State::parse(&r.get::<_, String>(1)?),
            tries: r.get(2)?,
            outputs: outputs
                .and_then(|o| serde_json::from_str(&o).ok())
                .unwrap_or(serde_json::Value::Null),
            error: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Record a task instance's state without an attempt (skipped,
/// upstream_failed, up_for_retry, queued).
pub fn set_task_state(
    c: &Connection,
    run_id: &str,
    task_id: &str,
    state: State,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO task_instances (run_id, task_id, state, tries, error, updated_at)
         VALUES (?1, ?2, ?3, 0, ?4, ?5)
         ON CONFLICT (run_id, task_id) DO UPDATE SET state = ?3, error = ?4, updated_at = ?5",
        params![run_id, task_id, state.as_str(), error, ts(now)],
    )?;
    Ok(())
}

/// Start an attempt: the task instance becomes `running`.
pub fn begin_attempt(
    c: &mut Connection,
    run_id: &str,
    task_id: &str,
    try_number: i64,
    log_path: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let tx = c.transaction()?;
    tx.execute(
        "INSERT INTO task_attempts (run_id, task_id, try_number, state, started_at, log_path)
         VALUES (?1, ?2, ?3, 'running', ?4, ?5)",
        params![run_id, task_id, try_number, ts(now), log_path],
    )?;
    tx.execute(
        "INSERT INTO task_instances (run_id, task_id, state, tries, error, updated_at)
         VALUES (?1, ?2, 'running', ?3, NULL, ?4)
         ON CONFLICT (run_id, task_id) DO UPDATE SET state = 'running', tries = ?3, error = NULL, updated_at = ?4",
        params![run_id, task_id, try_number, ts(now)],
    )?;
    tx.commit()?;
    Ok(())
}

/// Finish an attempt; `ti_state` is the task instance's new state (for a
/// failed attempt: `up_for_retry` or `failed`).
#[allow(clippy::too_many_arguments)]
pub fn end_attempt(
    c: &mut Connection,
    run_id: &str,
    task_id: &str,
    try_number: i64,
    attempt_state: State,
    ti_state: State,
    error: Option<&str>,
    outputs: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let out = serde_json::to_string(outputs).unwrap_or_else(|_| "{}".into());
    let tx = c.transaction()?;
    tx.execute(
        "UPDATE task_attempts SET state = ?4, ended_at = ?5, error = ?6, outputs = ?7
         WHERE run_id = ?1 AND task_id = ?2 AND try_number = ?3",
        params![
            run_id,
            task_id,
            try_number,
            attempt_state.as_str(),
            ts(now),
            error,
            out
        ],
    )?;
    tx.execute(
        "UPDATE task_instances SET state = ?3, error = ?4, outputs = ?5, updated_at = ?6
         WHERE run_id = ?1 AND task_id = ?2",
        params![run_id, task_id, ti_state.as_str(), error, out, ts(now)],
    )?;
    tx.commit()?;
    Ok(())
}

/// After a crash: attempts still marked running are failed with `reason`,
/// and their task instances become `interrupted` so the run resumes them.
pub fn fail_orphans(
    c: &mut Connection,
    run_id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    fail_orphans_except(c, run_id, &[], reason, now)
}

/// [`fail_orphans`], except the running attempts of the tasks in `keep`
/// (tasks on remote executors, whose job may outlive this process: the
/// executor adopts them instead).
pub fn fail_orphans_except(
    c: &mut Connection,
    run_id: &str,
    keep: &[String],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let keep_json = serde_json::to_string(keep).unwrap_or_else(|_| "[]".into());
    let tx = c.transaction()?;
    let n = tx.execute(
        "UPDATE task_attempts SET state = 'failed', ended_at = ?2, error = ?3
         WHERE run_id = ?1 AND state = 'running'
           AND task_id NOT IN (SELECT value FROM json_each(?4))",
        params![run_id, ts(now), reason, keep_json],
    )?;
    tx.execute(
        "UPDATE task_instances SET state = 'interrupted', error = ?3, updated_at = ?2
         WHERE run_id = ?1 AND state IN ('running', 'queued', 'up_for_retry')
           AND task_id NOT IN (SELECT value FROM json_each(?4))",
        params![run_id, ts(now), reason, keep_json],
    )?;
    tx.commit()?;
    Ok(n)
}

/// The try number of each task's attempt still marked running.
pub fn running_attempts(
    c: &Connection,
    run_id: &str,
) -> Result<std::collections::HashMap<String, i64>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT task_id, MAX(try_number) FROM task_attempts
         WHERE run_id = ?1 AND state = 'running' GROUP BY task_id",
    )?;
    let rows = stmt.query_map(params![run_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// End one attempt as failed without touching its task instance (a local
/// attempt a previous process left running: it died with that process).
pub fn fail_attempt(
    c: &mut Connection,
    run_id: &str,
    task_id: &str,
    try_number: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE task_attempts SET state = 'failed', ended_at = ?4, error = ?5
         WHERE run_id = ?1 AND task_id = ?2 AND try_number = ?3 AND state = 'running'",
        params![run_id, task_id, try_number, ts(now), reason],
    )?;
    Ok(())
}

pub fn attempts(c: &Connection, run_id: &str) -> Result<Vec<Attempt>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT run_id, task_id, try_number, state, started_at, ended_at, error, outputs, log_path
         FROM task_attempts WHERE run_id = ?1 ORDER BY started_at, task_id, try_number",
    )?;
    let rows = stmt.query_map(params![run_id], |r| {
        let outputs: Option<String> = r.get(7)?;
        Ok(Attempt {
            run_id: r.get(0)?,
            task_id: r.get(1)?,
            try_number: r.get(2)?,
            state: State::parse(&r.get::<_, String>(3)?),
            started_at: r.get::<_, Option<String>>(4)?.as_deref().and_then(parse_ts),
            ended_at: r.get::<_, Option<String>>(5)?.as_deref().and_then(parse_ts),
            error: r.get(6)?,
            outputs: outputs
                .and_then(|o| serde_json::from_str(&o).ok())
                .unwrap_or(serde_json::Value::Null),
            log_path: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_run(force: bool) -> NewRun {
        NewRun {
            dag_id: "d".into(),
            ds: "2026-11-27".into(),
            start: "2026-11-27T02:00:00Z".parse().expect("ts"),
            end: "2026-11-28T02:00:00Z".parse().expect("ts"),
            run_type: RunType::Manual,
            force,
        }
    }

    #[test]
    fn one_run_per_logical_date_unless_forced() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("s/state.db")).expect("open");
        assert_eq!(store.schema_version().expect("v"), schema::LATEST);
        let now = Utc::now();
        let r1 = store
            .with(|c| create_run(c, &new_run(false), now))
            .expect("create");
        assert_eq!(r1.run_id, "d.20261127T020000Z");
        let again = store.with(|c| create_run(c, &new_run(false), now));
        assert!(matches!(again, Err(StoreError::RunExists { .. })));
        let r2 = store
            .with(|c| create_run(c, &new_run(true), now))
            .expect("force");
        assert_eq!(r2.run_id, "d.20261127T020000Z.2");
        assert_eq!(r2.generation, 2);
        // Reopening keeps the data and the schema version.
        drop(store);
        let store = Store::open(&dir.path().join("s/state.db")).expect("reopen");
        let runs = store.with(|c| list_runs(c, Some("d"), 10)).expect("list");
        assert_eq!(runs.len(), 2);
        let journal: String = store
            .with(|c| Ok(c.pragma_query_value(None, "journal_mode", |r| r.get(0))?))
            .expect("pragma");
        assert_eq!(journal, "wal");
    }

    #[test]
    fn attempts_and_orphans() {
        let store = Store::open_in_memory().expect("open");
        let now = Utc::now();
        let run = store
            .with(|c| create_run(c, &new_run(false), now))
            .expect("create");
        store
            .with(|c| begin_attempt(c, &run.run_id, "a", 1, "a/1.log", now))
            .expect("begin");
        store
            .with(|c| {
                end_attempt(
                    c,
                    &run.run_id,
                    "a",
                    1,
                    State::Succeeded,
                    State::Succeeded,
                    None,
                    &serde_json::json!({"rows": 3}),
                    now,
                )
            })
            .expect("end");
        store
            .with(|c| begin_attempt(c, &run.run_id, "b", 1, "b/1.log", now))
            .expect("begin");
        let n = store
            .with(|c| fail_orphans(c, &run.run_id, "process died", now))
            .expect("orphans");
        assert_eq!(n, 1);
        let tis = store.with(|c| task_instances(c, &run.run_id)).expect("tis");
        let b = tis.iter().find(|t| t.task_id == "b").expect("b");
        assert_eq!(b.state, State::Interrupted);
        let a = tis.iter().find(|t| t.task_id == "a").expect("a");
        assert_eq!(a.outputs["rows"], 3);
        let atts = store.with(|c| attempts(c, &run.run_id)).expect("attempts");
        assert_eq!(atts.len(), 2);
        let b_att = atts.iter().find(|a| a.task_id == "b").expect("b");
        assert_eq!(b_att.state, State::Failed);
        assert_eq!(b_att.error.as_deref(), Some("process died"));
    }
}
