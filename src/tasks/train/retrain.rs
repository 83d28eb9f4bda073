//! The `retrain` policy of the `train` kind: which groups a run trains
//! and which saved models it reuses, by age (`always`, `weekly`,
//! `monthly`) or by realized accuracy (`on_drift`). A model trained with
//! another input mapping than the task's (see [`crate::tasks::inherit`])
//! is never reused.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::Deserialize;

use super::TrainRunner;
use crate::forecast::{self, artifact::ModelMeta};
use crate::tasks::model_store::ModelStore;
use crate::tasks::{AttemptContext, TaskError, accuracy, inherit};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Retrain {
    #[default]
    Always,
    Weekly,
    Monthly,
    /// Reuse the newest model until its realized accuracy drifts.
    OnDrift,
}

impl Retrain {
    /// Age below which a model is reused; `None`: age does not decide.
    pub(super) fn max_age_days(self) -> Option<i64> {
        match self {
            Retrain::Always => Some(0),
            Retrain::Weekly => Some(7),
            Retrain::Monthly => Some(28),
            Retrain::OnDrift => None,
        }
    }
}

/// What the retrain policy decided, per group.
#[derive(Default)]
pub(super) struct Plan {
    /// Groups to train in this run.
    pub train: BTreeSet<String>,
    pub reused: Vec<String>,
    pub drifted: Vec<String>,
    pub decisions: BTreeMap<String, accuracy::GroupDecision>,
}

impl TrainRunner {
    /// Step 3 of a run: which groups to train and which models to reuse, per the
    /// retrain policy (age, or realized accuracy with `on_drift`).
    pub(super) async fn plan(
        &self,
        cx: &AttemptContext,
        ds: NaiveDate,
        series: &[forecast::Series],
        realized: &[forecast::accuracy::GroupAccuracy],
    ) -> Result<Plan, TaskError> {
        let models = ModelStore::new(cx.services.lake.store().as_ref(), &cx.dag_id);
        let mut plan = Plan {
            train: series.iter().map(|s| s.group.clone()).collect(),
            ..Plan::default()
        };
        for g in plan.train.clone() {
            let newest = models
                .newest(&g, ds)
                .await
                .map_err(|e| TaskError::Failed(format!("listing models of {g}: {e}")))?;
            let decision = plan.decisions.entry(g.clone()).or_default();
            decision.action = "trained".into();
            let Some(stored) = newest else {
                continue;
            };
            let meta = models
                .read_meta(&stored)
                .await
                .map_err(|e| TaskError::Failed(format!("reading the model of {g}: {e}")))?;
            // An unreadable model is replaced, not an error: training fixes it.
            let served = meta.as_ref().map(|m| {
                let kind = m.champion.as_str().to_string();
                let rmsse = m
                    .backtest
                    .iter()
                    .find(|b| b.kind == m.champion)
                    .map(|b| b.metrics.rmsse);
                (kind, rmsse)
            });
            let drift = served.as_ref().and_then(|(kind, expected)| {
                realized
                    .iter()
                    .find(|a| {
                        a.group.as_deref() == Some(g.as_str())
                            && a.model_kind.as_deref() == Some(kind.as_str())
                    })
                    .filter(|a| a.points >= self.drift_min_points)
                    .and_then(|a| Some((a.drift(*expected)?, a.metrics.rmsse, (*expected)?)))
            });
            decision.served = served;
            let reuse = match (self.retrain.max_age_days(), drift) {
                (Some(max_age), _) => (ds - stored.date).num_days() < max_age,
                (None, Some((d, realized, expected))) if d > self.drift_threshold => {
                    cx.log.progress(&format!(
                        "group {g}: realized RMSSE {realized:.3} is {:.0}% above the backtest's {expected:.3}; retraining",
                        d * 100.0
                    ));
                    plan.drifted.push(g.clone());
                    decision.action = "retrained_on_drift".into();
                    false
                }
                (None, _) => meta.is_some(),
            };
            let changed = meta
                .as_ref()
                .and_then(|m| self.input_changed(m).or_else(|| self.model_changed(m)));
            let reuse = match changed {
                Some(why) if reuse => {
                    cx.log.progress(&format!(
                        "group {g}: the model of {} does not fit the task's settings ({why}); retraining",
                        stored.date
                    ));
                    false
                }
                _ => reuse,
            };
            if reuse {
                cx.log
                    .progress(&format!("group {g}: reusing the model of {}", stored.date));
                decision.action = "reused".into();
                plan.reused.push(g.clone());
                plan.train.remove(&g);
            } else if decision.action == "trained" && self.retrain != Retrain::Always {
                decision.action = "retrained".into();
            }
        }
        Ok(plan)
    }

    /// Which `model:` settings changed since the stored model was trained;
    /// `None` when none did.
    fn model_changed(&self, meta: &ModelMeta) -> Option<String> {
        let changed = self.config.changes_from(&meta.config);
        (!changed.is_empty()).then(|| format!("model settings changed: {}", changed.join(", ")))
    }

    /// Why a stored model no longer fits this task's input mapping (it was
    /// trained with other settings); `None` when it fits, or when it was
    /// saved before the mapping was stored.
    fn input_changed(&self, meta: &ModelMeta) -> Option<String> {
        match inherit::stored(meta) {
            Ok(None) => None,
            Ok(Some(trained)) => match inherit::differences(&self.input, &trained) {
                Ok(d) if d.is_empty() => None,
                Ok(d) => Some(inherit::describe(
                    &d,
                    "the task reads",
                    "the model was trained with",
                )),
                Err(e) => Some(e.to_string()),
            },
            Err(e) => Some(e.to_string()),
        }
    }
}
