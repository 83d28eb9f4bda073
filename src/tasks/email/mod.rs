//! The `email` kind: mail the planners' report of a run.
//!
//! Reads the anomalies, reorder plan and forecasts (optionally a history
//! table) the run wrote, builds a [`crate::mail::Report`] and hands it to
//! [`crate::mail::send_report`]. Each table key names a declared table
//! (`tables:`) or a lake path (templated, e.g. `anomalies/ds={{ ds }}`);
//! `read.rs` reads them through the lake's session layer by the columns
//! the `monitor`, `reorder` and `forecast` kinds write
//! ([`crate::tasks::schemas`]). The run's rows only: its `ds` partition,
//! or its `ds` values where the table has that column. The history table
//! is read from its newest `ds=` partition up to the run's date (a
//! partition holds the history window up to its date), or from the last
//! `history_days` partitions, and only for the charted SKUs: its `store`,
//! `sku`, `date` and `history_value` (default `units`) columns.
//!
//! Owns the task's keys and sending; rendering the mail is
//! [`crate::mail::report`]'s.

mod read;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::{AttemptContext, KindCompileCx, Outputs, TaskError, TaskKind, TaskRunner};
use crate::dag::model::Table;
use crate::mail::{Addressing, Mailer, Outcome, RenderOptions};

pub use read::ReadError;

/// The history table's value column unless `history_value` names another:
/// the units sold, as the demo's sales and the sample SQL carry them.
const HISTORY_VALUE: &str = "units";

pub struct EmailKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailSpec {
    subject_prefix: Option<String>,
    to: Option<Vec<String>>,
    cc: Option<Vec<String>>,
    anomalies: String,
    reorder_plans: Option<String>,
    forecasts: Option<String>,
    history: Option<String>,
    /// The history table's value column (default `units`).
    history_value: Option<String>,
    /// Read `history` from the `ds=` partitions of the last N days (a table
    /// with one partition per day, like raw sales); without it, from its
    /// newest partition up to the run's date.
    history_days: Option<u32>,
    /// Lines of the headline list (default 25).
    headline: Option<usize>,
    /// Mail even if this DAG and date were already mailed.
    #[serde(default)]
    force: bool,
    /// The lake's columns for the store and sku keys of `forecasts` and
    /// `history`, when the task names them; else from the DAG
    /// ([`super::keys`]).
    #[serde(default)]
    series_key: Option<super::tables::KeyMap>,
    /// The keys resolved at compile time.
    #[serde(skip)]
    keys: super::tables::KeyMap,
}

#[derive(Debug)]
struct EmailRunner {
    spec: EmailSpec,
}

impl TaskKind for EmailKind {
    fn name(&self) -> &'static str {
        "email"
    }

    fn compile(
        &self,
        spec: serde_yaml::Value,
        cx: &mut KindCompileCx,
    ) -> Option<Arc<dyn TaskRunner>> {
        let mut spec: EmailSpec = cx.deserialize(spec)?;
        let reads = super::keys::Reads {
            forecasts: spec.forecasts.as_deref(),
            plans: spec.reorder_plans.as_deref(),
        };
        spec.keys = super::keys::resolve(cx, spec.series_key.clone(), reads).unwrap_or_default();
        for (key, value) in [
            ("anomalies", Some(&spec.anomalies)),
            ("reorder_plans", spec.reorder_plans.as_ref()),
            ("forecasts", spec.forecasts.as_ref()),
            ("history", spec.history.as_ref()),
        ] {
            if let Some(v) = value {
                cx.template(key, v);
            }
        }
        check_declared_columns(&spec, cx);
        for (key, list) in [("to", &spec.to), ("cc", &spec.cc)] {
            for a in list.iter().flatten() {
                if a.parse::<lettre::message::Mailbox>().is_err() {
                    cx.error(key, format!("invalid address `{a}`"));
                }
            }
        }
        Some(Arc::new(EmailRunner { spec }))
    }
}

/// Where a table key names a declared table with its `columns:`, check
/// at validate time that it has the columns the report cannot do without.
fn check_declared_columns(spec: &EmailSpec, cx: &mut KindCompileCx) {
    use super::schemas::{anomalies as a, forecasts as f, plans as p, series as k};
    let history_value = spec.history_value.as_deref().unwrap_or(HISTORY_VALUE);
    let history_need = [k::STORE.name, k::SKU.name, "date", history_value];
    let checks: [(&str, Option<&String>, &[&str]); 4] = [
        (
            "anomalies",
            Some(&spec.anomalies),
            &[
                a::DATE.name,
                a::STORE.name,
                a::SKU.name,
                a::TYPE.name,
                a::SEVERITY.name,
                a::OBSERVED.name,
            ],
        ),
        (
            "reorder_plans",
            spec.reorder_plans.as_ref(),
            &[p::STORE.name, p::SKU.name, p::ORDER_QTY.name],
        ),
        (
            "forecasts",
            spec.forecasts.as_ref(),
            &[k::STORE.name, k::SKU.name, f::FORECAST_DATE.name],
        ),
        ("history", spec.history.as_ref(), &history_need),
    ];
    for (key, table, need) in checks {
        if let Some(t) = table.filter(|t| cx.tables.contains_key(t.as_str())) {
            let declared = cx.declared_columns(t).unwrap_or_default();
            cx.needs_columns(key, t, &spec.keys.lake_names(need, &declared));
        }
    }
}

impl EmailRunner {
    /// Lines of the report's headline list: `headline:`, else 25.
    fn headline_lines(&self) -> usize {
        self.spec.headline.unwrap_or(crate::mail::report::HEADLINE)
    }
}

#[async_trait]
impl TaskRunner for EmailRunner {
    fn report_headline(&self) -> Option<super::ReportHeadline> {
        Some(super::ReportHeadline {
            anomalies: self.spec.anomalies.clone(),
            lines: self.headline_lines(),
        })
    }

    async fn run(&self, cx: &AttemptContext) -> Result<Outputs, TaskError> {
        let config = &cx.services.config;
        let table = |key: &'static str, rel: &str| -> Result<Table, TaskError> {
            Ok(read::resolve(&cx.dag, key, &cx.render(rel)?))
        };
        let sp = &self.spec;
        let sources = read::Sources {
            anomalies: table("anomalies", &sp.anomalies)?,
            orders: sp
                .reorder_plans
                .as_deref()
                .map(|t| table("reorder_plans", t))
                .transpose()?,
            forecasts: sp
                .forecasts
                .as_deref()
                .map(|t| table("forecasts", t))
                .transpose()?,
            history: match sp.history.as_deref() {
                Some(t) => Some((
                    table("history", t)?,
                    sp.history_value
                        .clone()
                        .unwrap_or_else(|| HISTORY_VALUE.to_string()),
                )),
                None => None,
            },
            history_days: sp.history_days,
            keys: sp.keys.clone(),
        };
        let report = read::report(
            &cx.services.lake,
            &sources,
            (&cx.dag_id, &cx.run_id, &cx.vars.ds),
        )
        .await
        .map_err(|e| task_error(e.retryable(), e))?;
        let state = config.state.clone();
        let store = tokio::task::spawn_blocking(move || crate::store::Store::open(&state))
            .await
            .map_err(|e| TaskError::Failed(format!("email: {e}")))?
            .map_err(|e| TaskError::Failed(e.to_string()))?;
        cx.log.progress(&format!(
            "report: {} anomalies, {} orders, {} charted SKUs",
            report.anomalies.len(),
            report.orders.len(),
            report.series.len()
        ));

        let mail = config.mail.clone();
        let addressing = Addressing {
            from: mail
                .as_ref()
                .map(|m| m.from.clone())
                .unwrap_or_else(|| "restock@localhost".into()),
            to: self
                .spec
                .to
                .clone()
                .or_else(|| mail.as_ref().map(|m| m.to.clone()))
                .unwrap_or_default(),
            cc: self
                .spec
                .cc
                .clone()
                .or_else(|| mail.as_ref().map(|m| m.cc.clone()))
                .unwrap_or_default(),
        };
        let mailer = Mailer::new(
            mail.and_then(|m| m.smtp),
            config.outbox.clone(),
            Some(store),
        );
        let opts = RenderOptions {
            subject_prefix: self
                .spec
                .subject_prefix
                .clone()
                .unwrap_or_else(|| RenderOptions::default().subject_prefix),
            headline: self.headline_lines(),
        };
        let outcome =
            crate::mail::send_report(&mailer, &report, &opts, &addressing, self.spec.force)
                .await
                .map_err(|e| task_error(e.retryable(), e))?;
        let mut out = Outputs::new();
        match outcome {
            Outcome::Delivered(d) => {
                cx.log.progress(&format!(
                    "mailed {} to {} via {}",
                    d.message_id,
                    d.recipients.join(", "),
                    d.transport.as_str()
                ));
                out.insert("sent".into(), true.into());
                out.insert("transport".into(), d.transport.as_str().into());
                out.insert("message_id".into(), d.message_id.into());
                out.insert("recipients".into(), d.recipients.into());
                out.insert(
                    "attachments".into(),
                    vec![
                        crate::mail::message::ANOMALIES_CSV,
                        crate::mail::message::ORDERS_CSV,
                    ]
                    .into(),
                );
            }
            Outcome::Skipped(prev) => {
                cx.log.progress(&format!(
                    "already mailed for {} {} ({} at {}); set force: true to mail again",
                    prev.dag_id, prev.ds, prev.message_id, prev.sent_at
                ));
                out.insert("sent".into(), false.into());
                out.insert("transport".into(), prev.transport.into());
                out.insert("message_id".into(), prev.message_id.into());
                out.insert("recipients".into(), prev.recipients.into());
                out.insert("attachments".into(), Vec::<String>::new().into());
            }
        }
        Ok(out)
    }
}

/// A failure that trying again may cure is retried; any other is fatal.
fn task_error(retryable: bool, e: impl std::fmt::Display) -> TaskError {
    if retryable {
        TaskError::Failed(e.to_string())
    } else {
        TaskError::Fatal(e.to_string())
    }
}

#[cfg(test)]
mod tests;
