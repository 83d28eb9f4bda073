//! The daemon's side of the web server's commands (trigger, backfill,
//! cancel, clear) and of the snapshot it publishes. Commands only change
//! the history and the loop's queues; the loop starts the runs, so
//! `max_active_runs` holds for runs started from the web as well.

use std::collections::HashMap;

use chrono::Utc;
use tokio::sync::mpsc;

use super::control::{self, Command, ControlError};
use super::{Daemon, DagSet, DagSlot, Live, Queued, RunKey};
use crate::store::{self, NewRun, RunType, State, StoreError};

/// The next command, or never when the daemon has no web server.
pub(super) async fn next_command(rx: &mut Option<mpsc::Receiver<Command>>) -> Option<Command> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn store_err(e: StoreError) -> ControlError {
    match e {
        StoreError::RunExists { .. } => ControlError::Conflict(e.to_string()),
        StoreError::NoRun(id) => ControlError::NoRun(id),
        other => ControlError::Store(other.to_string()),
    }
}

impl Daemon {
    /// Publish the DAG files and the queue lengths for the web server.
    pub(super) fn publish(&self, dags: &DagSet, slots: Option<&HashMap<String, DagSlot>>) {
        let Some(shared) = &self.shared else { return };
        shared.set_catalog(dags.catalog());
        if let Some(slots) = slots {
            shared.update_status(|s| {
                s.queued = slots
                    .iter()
                    .map(|(id, slot)| (id.clone(), slot.queue.len()))
                    .collect();
                s.active = slots
                    .iter()
                    .map(|(id, slot)| (id.clone(), slot.active))
                    .collect();
            });
        }
    }

    pub(super) async fn command(
        &self,
        cmd: Command,
        dags: &DagSet,
        slots: &mut HashMap<String, DagSlot>,
        live: &mut Live,
    ) {
        match cmd {
            Command::Trigger {
                dag_id,
                date,
                force,
                reply,
            } => {
                let r = self.trigger(dags, slots, &dag_id, date, force).await;
                let _ = reply.send(r);
            }
            Command::Backfill {
                dag_id,
                from,
                to,
                reply,
            } => {
                let r = self.backfill(dags, slots, &dag_id, from, to).await;
                let _ = reply.send(r);
            }
            Command::Cancel { run_id, reply } => {
                let r = self.cancel(slots, live, &run_id).await;
                let _ = reply.send(r);
            }
            Command::Clear {
                run_id,
                tasks,
                reply,
            } => {
                let r = self.clear(dags, slots, live, &run_id, tasks).await;
                let _ = reply.send(r);
            }
        }
    }

    async fn create(
        &self,
        dag: &crate::dag::Dag,
        iv: crate::schedule::Interval,
        run_type: RunType,
        force: bool,
    ) -> Result<store::RunRecord, ControlError> {
        let new = NewRun {
            dag_id: dag.id.clone(),
            ds: iv
                .start
                .with_timezone(&dag.tz)
                .format("%Y-%m-%d")
                .to_string(),
            start: iv.start,
            end: iv.end,
            run_type,
            force,
        };
        self.executor
            .store
            .call(move |c| store::create_run(c, &new, Utc::now()))
            .await
            .map_err(store_err)
    }

    async fn trigger(
        &self,
        dags: &DagSet,
        slots: &mut HashMap<String, DagSlot>,
        dag_id: &str,
        date: Option<chrono::NaiveDate>,
        force: bool,
    ) -> Result<String, ControlError> {
        let dag = dags
            .get(dag_id)
            .ok_or_else(|| ControlError::NoDag(dag_id.into()))?;
        let iv = control::interval_for(&dag, date, self.clock.now()).ok_or_else(|| {
            ControlError::Invalid(format!("`{dag_id}` has no interval for that date"))
        })?;
        let run = self.create(&dag, iv, RunType::Manual, force).await?;
        let id = run.run_id.clone();
        tracing::info!(dag = dag_id, run = %id, "run triggered");
        slots
            .entry(dag_id.to_string())
            .or_default()
            .queue
            .push_back(Queued::Run(run));
        Ok(id)
    }

    async fn backfill(
        &self,
        dags: &DagSet,
        slots: &mut HashMap<String, DagSlot>,
        dag_id: &str,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<String>, ControlError> {
        let dag = dags
            .get(dag_id)
            .ok_or_else(|| ControlError::NoDag(dag_id.into()))?;
        if from > to {
            return Err(ControlError::Invalid(format!(
                "from {from} is after to {to}"
            )));
        }
        let ivs = control::intervals_between(&dag, from, to);
        if ivs.is_empty() {
            return Err(ControlError::Invalid(format!(
                "no interval of `{dag_id}` starts between {from} and {to}"
            )));
        }
        let mut ids = Vec::new();
        for iv in ivs {
            match self.create(&dag, iv, RunType::Backfill, false).await {
                Ok(run) => {
                    ids.push(run.run_id.clone());
                    let slot = slots.entry(dag_id.to_string()).or_default();
                    slot.last_start = slot.last_start.max(Some(iv.start));
                    slot.queue.push_back(Queued::Run(run));
                }
                Err(ControlError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        tracing::info!(dag = dag_id, runs = ids.len(), "backfill queued");
        Ok(ids)
    }

    async fn cancel(
        &self,
        slots: &mut HashMap<String, DagSlot>,
        live: &mut Live,
        run_id: &str,
    ) -> Result<(), ControlError> {
        let rid = run_id.to_string();
        let run = self
            .executor
            .store
            .call(move |c| store::get_run(c, &rid))
            .await
            .map_err(store_err)?;
        let key: RunKey = (run.dag_id.clone(), run.logical_date);
        if let Some(token) = live.tokens.get(&key) {
            live.cancelled.insert(key);
            token.cancel();
            tracing::info!(run = run_id, "run cancelled");
            return Ok(());
        }
        let slot = slots.entry(run.dag_id.clone()).or_default();
        let before = slot.queue.len();
        slot.queue.retain(|q| q.key(&run.dag_id) != key);
        if slot.queue.len() == before {
            return Err(ControlError::Conflict(format!(
                "run `{run_id}` is {} and not running",
                run.state
            )));
        }
        self.mark_cancelled(run.run_id.clone());
        Ok(())
    }

    /// A cancelled run ends `failed` (not `interrupted`, which a restarted
    /// daemon would resume).
    pub(super) fn mark_cancelled(&self, run_id: String) {
        let store = self.executor.store.clone();
        tokio::spawn(async move {
            let r = store
                .call(move |c| store::set_run_state(c, &run_id, State::Failed, Utc::now()))
                .await;
            if let Err(e) = r {
                tracing::error!("recording a cancelled run: {e}");
            }
        });
    }

    async fn clear(
        &self,
        dags: &DagSet,
        slots: &mut HashMap<String, DagSlot>,
        live: &Live,
        run_id: &str,
        tasks: Vec<String>,
    ) -> Result<usize, ControlError> {
        let rid = run_id.to_string();
        let run = self
            .executor
            .store
            .call(move |c| store::get_run(c, &rid))
            .await
            .map_err(store_err)?;
        let key: RunKey = (run.dag_id.clone(), run.logical_date);
        let queued = slots
            .get(&run.dag_id)
            .is_some_and(|s| s.queue.iter().any(|q| q.key(&run.dag_id) == key));
        if live.tokens.contains_key(&key) || queued {
            return Err(ControlError::Conflict(format!(
                "run `{run_id}` is active; cancel it or wait for it to finish"
            )));
        }
        let dag = dags
            .get(&run.dag_id)
            .ok_or_else(|| ControlError::NoDag(run.dag_id.clone()))?;
        if let Some(t) = tasks.iter().find(|t| dag.task(t).is_none()) {
            return Err(ControlError::Invalid(format!(
                "task `{t}` is not in DAG `{}`",
                dag.id
            )));
        }
        if tasks.is_empty() {
            return Err(ControlError::Invalid("no task to clear".into()));
        }
        let rid = run.run_id.clone();
        let n = self
            .executor
            .store
            .call(move |c| store::clear_tasks(c, &rid, &tasks, Utc::now()))
            .await
            .map_err(store_err)?;
        tracing::info!(run = run_id, tasks = n, "tasks cleared");
        slots
            .entry(run.dag_id.clone())
            .or_default()
            .queue
            .push_back(Queued::Run(run));
        Ok(n)
    }
}
