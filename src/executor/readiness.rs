//! Readiness: load what a previous process recorded for a run, count each
//! task's unfinished upstreams, and decide every ready task (run it, skip
//! it or fail it) from its trigger rule and `when`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::dag::Dag;
use crate::store::{self, RunRecord, State};
use crate::template::{RunVars, TaskVars};

use super::rules::{Decision, decide};
use super::{Event, ExecError, Executor, RunLoop, Slot};

impl RunLoop {
    /// Mark the run running and build its in-memory state from the store:
    /// final task states are kept, the rest are queued again.
    pub(super) async fn load(
        exec: Executor,
        dag: Arc<Dag>,
        run: &RunRecord,
        only: Option<Vec<String>>,
        cancel: CancellationToken,
    ) -> Result<Self, ExecError> {
        let run_id = run.run_id.clone();
        let rid = run_id.clone();
        // The caller holds the run's lock, so an attempt still marked
        // running belongs to a process that died. Attempts on remote
        // executors may still run on their engine: those are adopted.
        let remote: Vec<String> = dag
            .tasks
            .iter()
            .filter(|t| t.executor.is_some())
            .map(|t| t.id.clone())
            .collect();
        let (prior, running, orphans) = exec
            .store
            .call(move |c| {
                let orphans =
                    store::fail_orphans_except(c, &rid, &remote, "process died", Utc::now())?;
                let tis = store::task_instances(c, &rid)?;
                let running = store::running_attempts(c, &rid)?;
                store::set_run_state(c, &rid, State::Running, Utc::now())?;
                Ok((tis, running, orphans))
            })
            .await?;
        if orphans > 0 {
            tracing::info!(run = %run_id, orphaned_attempts = orphans, "previous owner died; its attempts are failed");
        }
        let prior: HashMap<String, store::TaskInstance> =
            prior.into_iter().map(|t| (t.task_id.clone(), t)).collect();
        let selected: Option<HashSet<usize>> = only.as_ref().map(|ids| {
            ids.iter()
                .filter_map(|id| dag.by_id.get(id).copied())
                .collect()
        });
        let mut slots: Vec<Slot> = dag
            .tasks
            .iter()
            .map(|t| initial_slot(prior.get(&t.id), running.get(&t.id).copied()))
            .collect();
        if let Some(sel) = &selected {
            for &i in sel {
                slots[i].state = State::Queued;
            }
        }
        let vars = base_vars(&dag, run, &slots);
        let resumed = slots.iter().filter(|s| s.state.is_final()).count();
        exec.observer.event(
            &dag.id,
            &Event::RunStarted {
                run_id: run_id.clone(),
                resumed,
            },
        );
        let mut lp = RunLoop {
            exec,
            dag,
            run_key: run_key(run),
            run_id,
            t0: Instant::now(),
            slots,
            vars,
            selected,
            ready: VecDeque::new(),
            launch_queue: VecDeque::new(),
            running: JoinSet::new(),
            active: 0,
            cancel,
            cancelled: false,
        };
        lp.initial_ready();
        Ok(lp)
    }

    /// A queued task waits for its non-final upstreams. With `only`, the
    /// others never run, and a selected task waits only for its selected
    /// upstreams (the recorded outcome of the rest stands).
    fn initial_ready(&mut self) {
        for i in 0..self.dag.tasks.len() {
            if self.slots[i].state.is_final() {
                continue;
            }
            let sel = self.selected.as_ref();
            if sel.is_some_and(|s| !s.contains(&i)) {
                continue;
            }
            let waiting = self.dag.tasks[i]
                .upstream
                .iter()
                .filter(|&&u| !self.slots[u].state.is_final())
                .filter(|u| sel.is_none_or(|s| s.contains(u)))
                .count();
            self.slots[i].waiting = waiting;
            if waiting == 0 {
                self.ready.push_back(i);
            }
        }
    }

    /// Decide every ready task: queue it for launch, skip it or fail it.
    pub(super) async fn decide_ready(&mut self) -> Result<(), ExecError> {
        while let Some(i) = self.ready.pop_front() {
            let (state, reason, error) = match self.decision(i) {
                Decision::Run => {
                    self.launch_queue.push_back(i);
                    continue;
                }
                Decision::Skip(r) => (State::Skipped, r, None),
                Decision::UpstreamFailed(r) => (State::UpstreamFailed, r, None),
                Decision::Fail(r) => (State::Failed, r.clone(), Some(r)),
            };
            self.finish_without_attempt(i, state, &reason, error)
                .await?;
            self.release(i, state);
        }
        Ok(())
    }

    fn decision(&self, i: usize) -> Decision {
        let task = &self.dag.tasks[i];
        // An adopted attempt was decided by the process that started it.
        if self.slots[i].adopt.is_some() {
            return Decision::Run;
        }
        if let Some(sel) = &self.selected {
            // A selected task runs; trigger rules apply among the selected
            // tasks only.
            let ups: Vec<State> = task
                .upstream
                .iter()
                .filter(|u| sel.contains(u))
                .map(|&u| self.slots[u].state)
                .collect();
            return if ups.is_empty() {
                Decision::Run
            } else {
                decide(task.trigger_rule, &ups)
            };
        }
        let ups: Vec<State> = task.upstream.iter().map(|&u| self.slots[u].state).collect();
        match (decide(task.trigger_rule, &ups), &task.when) {
            (Decision::Run, Some(expr)) => match self.vars.eval_bool(expr) {
                Ok(true) => Decision::Run,
                Ok(false) => Decision::Skip(format!("`when` is false: {expr}")),
                Err(e) => Decision::Fail(format!("`when` failed: {e}")),
            },
            (d, _) => d,
        }
    }

    async fn finish_without_attempt(
        &self,
        idx: usize,
        state: State,
        reason: &str,
        error: Option<String>,
    ) -> Result<(), ExecError> {
        let (rid, tid) = (self.run_id.clone(), self.dag.tasks[idx].id.clone());
        self.exec
            .store
            .call(move |c| {
                store::set_task_state(c, &rid, &tid, state, error.as_deref(), Utc::now())
            })
            .await?;
        self.exec.observer.event(
            &self.dag.id,
            &Event::TaskDecided {
                task: self.dag.tasks[idx].id.clone(),
                state,
                reason: reason.to_string(),
            },
        );
        Ok(())
    }
}

/// Eight hex digits from the run id and the run row's creation time.
fn run_key(run: &RunRecord) -> String {
    let created = run.created_at.map(|t| t.timestamp_micros()).unwrap_or(0);
    let text = format!("{}|{created}", run.run_id);
    let d = crate::dag::compile::source_hash(&text);
    d[..8].to_string()
}

fn initial_slot(prior: Option<&store::TaskInstance>, running_try: Option<i64>) -> Slot {
    let mut state = prior.map_or(State::Queued, |p| p.state);
    if !state.is_final() {
        state = State::Queued;
    }
    Slot {
        state,
        tries: prior.map_or(0, |p| p.tries.max(0) as u32),
        tries_here: 0,
        outputs: prior.map(|p| p.outputs.clone()).unwrap_or_default(),
        waiting: 0,
        adopt: running_try.map(|t| t.max(0) as u32),
    }
}

/// The run's template variables, with the outputs of tasks already final.
fn base_vars(dag: &Dag, run: &RunRecord, slots: &[Slot]) -> RunVars {
    let mut vars = RunVars::new(
        &dag.id,
        &run.run_id,
        &dag.tz,
        run.data_interval_start,
        run.data_interval_end,
        dag.params.clone(),
    );
    for (t, slot) in dag.tasks.iter().zip(slots) {
        if slot.state.is_final() {
            vars.tasks.insert(
                t.id.clone(),
                TaskVars {
                    state: slot.state.to_string(),
                    outputs: slot.outputs.clone(),
                },
            );
        }
    }
    vars
}
