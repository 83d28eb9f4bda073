//! Schema migrations, applied in order and recorded in `PRAGMA user_version`.
//! Append new steps; never edit a released one.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: runs, task instances, attempts.
    "CREATE TABLE dag_runs (
        run_id TEXT PRIMARY KEY,
        dag_id TEXT NOT NULL,
        logical_date TEXT NOT NULL,
        ds TEXT NOT NULL,
        data_interval_start TEXT NOT NULL,
        data_interval_end TEXT NOT NULL,
        run_type TEXT NOT NULL,
        state TEXT NOT NULL,
        generation INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        started_at TEXT,
        ended_at TEXT,
        UNIQUE (dag_id, logical_date, generation)
    );
    CREATE INDEX dag_runs_by_state ON dag_runs (state);
    CREATE TABLE task_instances (
        run_id TEXT NOT NULL REFERENCES dag_runs (run_id) ON DELETE CASCADE,
        task_id TEXT NOT NULL,
        state TEXT NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0,
        outputs TEXT,
        error TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (run_id, task_id)
    );
    CREATE TABLE task_attempts (
        run_id TEXT NOT NULL REFERENCES dag_runs (run_id) ON DELETE CASCADE,
        task_id TEXT NOT NULL,
        try_number INTEGER NOT NULL,
        state TEXT NOT NULL,
        started_at TEXT,
        ended_at TEXT,
        error TEXT,
        outputs TEXT,
        log_path TEXT,
        PRIMARY KEY (run_id, task_id, try_number)
    );",
    // 2: reports mailed, one row per delivered message; a (dag, ds) with a
    // row is not mailed again unless forced.
    "CREATE TABLE sent_mail (
        dag_id TEXT NOT NULL,
        ds TEXT NOT NULL,
        message_id TEXT NOT NULL,
        sent_at TEXT NOT NULL,
        transport TEXT NOT NULL,
        recipients TEXT NOT NULL,
        forced INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (dag_id, ds, message_id)
    );",
    // 3: exact interval boundaries. Catchup once stored the sub-second part
    // of the moment it computed an interval (`01:00:00.825Z`), so lookups
    // by the exact boundary missed and the run id clashed; boundaries are
    // whole seconds (cron has no finer unit).
    "UPDATE OR IGNORE dag_runs SET
        logical_date = substr(logical_date, 1, 19) || '.000Z',
        data_interval_start = substr(data_interval_start, 1, 19) || '.000Z',
        data_interval_end = substr(data_interval_end, 1, 19) || '.000Z'
     WHERE substr(logical_date, 20) != '.000Z'
        OR substr(data_interval_start, 20) != '.000Z'
        OR substr(data_interval_end, 20) != '.000Z';",
    // 4: how long a run actually ran. `started_at` is the first start; a
    // run resumed or rerun in part (`--task`) ran only in its executions,
    // so each execution's time (from `resumed_at`) is added to `ran_ms`.
    "ALTER TABLE dag_runs ADD COLUMN resumed_at TEXT;
     ALTER TABLE dag_runs ADD COLUMN ran_ms INTEGER NOT NULL DEFAULT 0;
     UPDATE dag_runs SET ran_ms = CAST(ROUND((julianday(ended_at) - julianday(started_at)) * 86400000) AS INTEGER)
     WHERE started_at IS NOT NULL AND ended_at IS NOT NULL;",
    // 5: DAGs paused from the web UI or API; the scheduler starts no
    // scheduled or catchup run of a paused DAG. A row per DAG ever paused
    // or unpaused, so the history says who changed it last and when.
    "CREATE TABLE dag_pauses (
        dag_id TEXT PRIMARY KEY,
        paused INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX dag_runs_by_date ON dag_runs (logical_date, generation);",
];

pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// Bring the schema up to [`LATEST`] in one exclusive transaction that
/// reads the version itself: of two processes opening a new file at once,
/// the second waits (busy timeout) and then finds nothing left to do.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current == LATEST {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > LATEST {
        return Err(StoreError::TooNew {
            found: current,
            known: LATEST,
        });
    }
    for sql in MIGRATIONS.iter().skip(current as usize) {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", LATEST)?;
    tx.commit()?;
    Ok(())
}
