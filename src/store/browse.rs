//! Reads for browsing the history (the web UI, the API and `/metrics`):
//! paged run lists, the states of many runs at once, one attempt, the
//! paused flag of each DAG and the aggregates behind the metrics.
//!
//! Every query here is served by an index, so a page costs the same with
//! 100 runs as with 100,000: runs by DAG walk the
//! `(dag_id, logical_date, generation)` unique index backwards, task
//! instances and attempts are found by their primary keys.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Attempt, RUN_COLS, RunRecord, State, StoreError, TaskInstance, parse_ts, ts};

/// Runs newest first (by logical date, then generation), optionally of one
/// DAG and in one state.
pub fn runs_page(
    c: &Connection,
    dag_id: Option<&str>,
    state: Option<State>,
    limit: usize,
    offset: usize,
) -> Result<Vec<RunRecord>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {RUN_COLS} FROM dag_runs
         WHERE (?1 IS NULL OR dag_id = ?1) AND (?2 IS NULL OR state = ?2)
         ORDER BY logical_date DESC, generation DESC LIMIT ?3 OFFSET ?4"
    ))?;
    let rows = stmt.query_map(
        params![
            dag_id,
            state.map(State::as_str),
            limit as i64,
            offset as i64
        ],
        super::run_from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many runs `runs_page` pages through.
pub fn count_runs(
    c: &Connection,
    dag_id: Option<&str>,
    state: Option<State>,
) -> Result<u64, StoreError> {
    let n: i64 = c.prepare_cached(
        "SELECT COUNT(*) FROM dag_runs WHERE (?1 IS NULL OR dag_id = ?1) AND (?2 IS NULL OR state = ?2)",
    )?
    .query_row(params![dag_id, state.map(State::as_str)], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// Task instances of several runs (the grid), as `(run_id, instance)`.
pub fn task_instances_of(
    c: &Connection,
    run_ids: &[String],
) -> Result<Vec<(String, TaskInstance)>, StoreError> {
    let mut out = Vec::new();
    let mut stmt = c.prepare_cached(
        "SELECT task_id, state, tries, error FROM task_instances WHERE run_id = ?1",
    )?;
    for run_id in run_ids {
        let rows = stmt.query_map(params![run_id], |r| {
            Ok(TaskInstance {
                task_id: r.get(0)?,
                state: State::parse(&r.get::<_, String>(1)?),
                tries: r.get(2)?,
                outputs: serde_json::Value::Null,
                error: r.get(3)?,
            })
        })?;
        for ti in rows {
            out.push((run_id.clone(), ti?));
        }
    }
    Ok(out)
}

/// One attempt, if the history has it.
pub fn attempt(
    c: &Connection,
    run_id: &str,
    task_id: &str,
    try_number: i64,
) -> Result<Option<Attempt>, StoreError> {
    let mut all = super::attempts(c, run_id)?;
    all.retain(|a| a.task_id == task_id && a.try_number == try_number);
    Ok(all.pop())
}

/// Pause or unpause a DAG (persisted; the scheduler reads it every beat).
pub fn set_paused(
    c: &Connection,
    dag_id: &str,
    paused: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO dag_pauses (dag_id, paused, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (dag_id) DO UPDATE SET paused = ?2, updated_at = ?3",
        params![dag_id, paused, ts(now)],
    )?;
    Ok(())
}

/// DAGs paused now.
pub fn paused_dags(c: &Connection) -> Result<HashSet<String>, StoreError> {
    let mut stmt = c.prepare_cached("SELECT dag_id FROM dag_pauses WHERE paused = 1")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Put tasks of a run back to `queued` (keeping their try count, so the
/// next attempt gets the next try number) and the run with them, so that
/// executing the run again runs just those tasks. Returns how many task
/// instances changed.
pub fn clear_tasks(
    c: &mut Connection,
    run_id: &str,
    task_ids: &[String],
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let tx = c.transaction()?;
    let mut n = 0;
    {
        let mut stmt = tx.prepare(
            "UPDATE task_instances SET state = 'queued', error = NULL, updated_at = ?3
             WHERE run_id = ?1 AND task_id = ?2",
        )?;
        for t in task_ids {
            n += stmt.execute(params![run_id, t, ts(now)])?;
        }
    }
    tx.execute(
        "UPDATE dag_runs SET state = 'queued', ended_at = NULL WHERE run_id = ?1",
        params![run_id],
    )?;
    tx.commit()?;
    Ok(n)
}

/// Runs per DAG and state.
pub fn run_counts(c: &Connection) -> Result<Vec<(String, State, u64)>, StoreError> {
    let mut stmt =
        c.prepare_cached("SELECT dag_id, state, COUNT(*) FROM dag_runs GROUP BY dag_id, state")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            State::parse(&r.get::<_, String>(1)?),
            r.get::<_, i64>(2)?.max(0) as u64,
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One finished attempt's figures, for the metrics' aggregation.
#[derive(Debug, Clone)]
pub struct AttemptFigure {
    pub dag_id: String,
    pub task_id: String,
    pub state: State,
    /// Seconds from start to end, when both are recorded.
    pub seconds: Option<f64>,
}

/// Every attempt with its DAG, state and duration, streamed to `each` so
/// a million attempts are never held at once.
pub fn for_each_attempt(
    c: &Connection,
    mut each: impl FnMut(AttemptFigure),
) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT r.dag_id, a.task_id, a.state, a.started_at, a.ended_at
         FROM task_attempts a JOIN dag_runs r ON r.run_id = a.run_id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let start = r
            .get_ref(3)?
            .as_str_or_null()
            .ok()
            .flatten()
            .and_then(parse_ts);
        let end = r
            .get_ref(4)?
            .as_str_or_null()
            .ok()
            .flatten()
            .and_then(parse_ts);
        let seconds = match (start, end) {
            (Some(s), Some(e)) => Some((e - s).num_milliseconds() as f64 / 1000.0),
            _ => None,
        };
        each(AttemptFigure {
            dag_id: r.get(0)?,
            task_id: r.get(1)?,
            state: State::parse(r.get_ref(2)?.as_str().unwrap_or("failed")),
            seconds,
        });
    }
    Ok(())
}

/// Scheduled runs' start delay (started minus due, the interval's end), in
/// seconds, per DAG: the newest `per_dag` runs of each.
pub fn schedule_delays(
    c: &Connection,
    dag_id: &str,
    per_dag: usize,
) -> Result<Vec<f64>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT data_interval_end, started_at FROM dag_runs
         WHERE dag_id = ?1 AND run_type IN ('scheduled', 'catchup') AND started_at IS NOT NULL
         ORDER BY logical_date DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![dag_id, per_dag as i64], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (due, started) = row?;
        if let (Some(d), Some(s)) = (parse_ts(&due), parse_ts(&started)) {
            out.push((s - d).num_milliseconds() as f64 / 1000.0);
        }
    }
    Ok(out)
}

/// The run with this id, or `None`.
pub fn find_run_by_id(c: &Connection, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
    Ok(c.prepare_cached(&format!(
        "SELECT {RUN_COLS} FROM dag_runs WHERE run_id = ?1"
    ))?
    .query_row(params![run_id], super::run_from_row)
    .optional()?)
}
