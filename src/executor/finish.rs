//! Finishing: the run's final state from its tasks' states, recorded once
//! the loop has nothing left to run; and `abandon`, which stops what is
//! still in flight when the loop itself fails.

use chrono::Utc;

use crate::store::{self, RunRecord, State};

use super::{Done, Event, ExecError, RunLoop};

impl RunLoop {
    /// Record the run's final state and return its row.
    pub(super) async fn finish(&mut self) -> Result<RunRecord, ExecError> {
        let state = self.final_state();
        let rid = self.run_id.clone();
        self.exec
            .store
            .call(move |c| store::set_run_state(c, &rid, state, Utc::now()))
            .await?;
        self.exec.observer.event(
            &self.dag.id,
            &Event::RunFinished {
                run_id: self.run_id.clone(),
                state,
                elapsed: self.t0.elapsed(),
            },
        );
        self.exec.finish_record(&self.run_id).await
    }

    fn final_state(&self) -> State {
        let n = self.slots.len();
        let in_scope = |i: usize| self.selected.as_ref().is_none_or(|s| s.contains(&i));
        let all_final = (0..n).all(|i| !in_scope(i) || self.slots[i].state.is_final());
        let ok = |s: &State| matches!(s, State::Succeeded | State::Skipped);
        let state = if !all_final || self.cancelled {
            State::Interrupted
        } else if (0..n)
            .filter(|&i| in_scope(i))
            .all(|i| ok(&self.slots[i].state))
        {
            State::Succeeded
        } else {
            State::Failed
        };
        if self.selected.is_none() || state == State::Interrupted {
            return state;
        }
        // A partial rerun: the run's state reflects every task.
        let whole_ok = self.slots.iter().all(|s| ok(&s.state));
        let whole_final = self.slots.iter().all(|s| s.state.is_final());
        match (state, whole_ok, whole_final) {
            (State::Succeeded, true, _) => State::Succeeded,
            (State::Succeeded, false, false) => State::Queued,
            _ => State::Failed,
        }
    }

    /// The loop failed (the store is unusable): cancel every attempt in
    /// flight, wait for them within their grace, and record what can still
    /// be recorded, so no attempt stays `running` under a stopped run.
    pub(super) async fn abandon(&mut self, cause: &ExecError) {
        self.cancel.cancel();
        let reason = format!("run stopped: {cause}");
        while let Some(done) = self.running.join_next().await {
            let Ok(Done::Attempt {
                idx, try_number, ..
            }) = done
            else {
                continue;
            };
            let (rid, tid) = (self.run_id.clone(), self.dag.tasks[idx].id.clone());
            let why = reason.clone();
            let _ = self
                .exec
                .store
                .call(move |c| {
                    store::fail_attempt(c, &rid, &tid, i64::from(try_number), &why, Utc::now())
                })
                .await;
        }
        let rid = self.run_id.clone();
        let _ = self
            .exec
            .store
            .call(move |c| store::set_run_state(c, &rid, State::Failed, Utc::now()))
            .await;
    }
}
