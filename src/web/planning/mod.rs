//! Planning: what the newest run of a DAG with `forecast`, `reorder` or
//! `monitor` tasks decided, read from the tables those tasks published.
//! The night's headline as the report mail lists it (the mail's own
//! ranking, cap and share code over the monitor's headline rows), the
//! anomalies in worklist order (filtered by type and severity), the
//! orders to place with the held lines apart, and one SKU with its history,
//! forecast band (the report mail's chart, as SVG), plan line and anomalies.
//!
//! API: `GET /api/v1/dags/{id}/planning`, `…/planning/anomalies`,
//! `…/planning/orders`, `…/planning/held`,
//! `…/planning/skus/{store}/{sku}`; pages: `/dags/{id}/planning` and
//! `/dags/{id}/planning/skus/{store}/{sku}` (see `page.rs`).
//!
//! Which run: the newest run (by logical date) in which one of those tasks
//! succeeded, so a run still computing or a failed night does not blank
//! the page. Where the tables are: each task says so itself
//! ([`TaskRunner::planning`](crate::tasks::TaskRunner::planning)).

mod page;
mod read;

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::dags::loaded;
use super::pages::Paging;
use super::{AppState, WebError};
use crate::dag::Dag;
use crate::dag::model::Table;
use crate::inventory::monitor::{Kind, Severity};
use crate::store::{self, State as RunState};
use crate::tasks::{HistorySource, PlanningTable};

pub use read::Session;
use read::{AnomalyFilter, AnomalyRow, Lines, OrderRow, Page, PlanTotals};

/// How many of a DAG's newest runs are searched for a finished plan.
const SEARCH_RUNS: usize = 50;

/// Where one DAG's planning tables are, and which run they are read for.
pub struct Planning {
    pub dag: Arc<Dag>,
    pub dag_run_id: String,
    pub ds: String,
    forecasts: Option<(String, HistorySource)>,
    plans: Option<String>,
    anomalies: Option<String>,
    session: Session,
}

/// The planning tables of `dag`, with the tasks that write them.
fn tables_of(dag: &Dag) -> (Vec<String>, Found) {
    let mut p = Found::default();
    let mut tasks = Vec::new();
    for t in &dag.tasks {
        let Some(table) = t.runner.planning() else {
            continue;
        };
        match table {
            PlanningTable::Forecasts { path, history } => p.forecasts = Some((path, history)),
            PlanningTable::Plans { path } => p.plans = Some(path),
            PlanningTable::Anomalies { path } => p.anomalies = Some(path),
            PlanningTable::Accuracy { .. } => continue,
        }
        tasks.push(t.id.clone());
    }
    (tasks, p)
}

#[derive(Default)]
struct Found {
    forecasts: Option<(String, HistorySource)>,
    plans: Option<String>,
    anomalies: Option<String>,
}

/// Whether `dag` has a task whose tables the planning pages show.
pub fn has_planning(dag: &Dag) -> bool {
    !tables_of(dag).0.is_empty()
}

/// The newest run of `dag_id` in which one of `tasks` succeeded.
async fn newest_planned_run(
    app: &AppState,
    dag_id: &str,
    tasks: Vec<String>,
) -> Result<Option<(String, String)>, WebError> {
    let id = dag_id.to_string();
    Ok(app
        .store()
        .call(move |c| {
            let runs = store::runs_page(c, Some(&id), None, SEARCH_RUNS, 0)?;
            let ids: Vec<String> = runs.iter().map(|r| r.run_id.clone()).collect();
            let planned: HashSet<String> = store::task_instances_of(c, &ids)?
                .into_iter()
                .filter(|(_, ti)| ti.state == RunState::Succeeded && tasks.contains(&ti.task_id))
                .map(|(rid, _)| rid)
                .collect();
            Ok(runs
                .into_iter()
                .find(|r| planned.contains(&r.run_id))
                .map(|r| (r.run_id, r.ds)))
        })
        .await?)
}

/// Find the DAG's planning tables and the run to read them for, and
/// register the tables on one lake session.
pub async fn locate(app: &AppState, dag_id: &str) -> Result<Planning, WebError> {
    let dag = loaded(app, dag_id)?;
    let (tasks, p) = tables_of(&dag);
    if tasks.is_empty() {
        return Err(WebError::NotFound(format!(
            "DAG `{dag_id}` has no forecast, reorder or monitor task"
        )));
    }
    let lake = app.lake()?;
    let (dag_run_id, ds) = newest_planned_run(app, dag_id, tasks)
        .await?
        .ok_or_else(|| {
            WebError::NotFound(format!(
                "no run of `{dag_id}` has finished a forecast, reorder or monitor task yet"
            ))
        })?;
    let session = Session::new(lake);
    let mut planning = Planning {
        dag,
        dag_run_id,
        ds,
        forecasts: None,
        plans: None,
        anomalies: None,
        session,
    };
    if let Some((path, history)) = p.forecasts {
        if planning.session.register_output("forecasts", &path).await? {
            planning.forecasts = Some((path, history));
        }
    }
    if let Some(path) = p.plans {
        if planning.session.register_output("plans", &path).await? {
            planning.plans = Some(path);
        }
    }
    if let Some(path) = p.anomalies {
        if planning.session.register_output("anomalies", &path).await? {
            planning.anomalies = Some(path);
        }
    }
    Ok(planning)
}

/// The run a planning answer was read for.
#[derive(Debug, Serialize)]
pub struct RunRef {
    pub dag_id: String,
    pub dag_run_id: String,
    pub ds: String,
}

impl Planning {
    fn run(&self) -> RunRef {
        RunRef {
            dag_id: self.dag.id.clone(),
            dag_run_id: self.dag_run_id.clone(),
            ds: self.ds.clone(),
        }
    }

    fn need(&self, what: &str, have: bool) -> Result<(), WebError> {
        if have {
            Ok(())
        } else {
            Err(WebError::NotFound(format!(
                "DAG `{}` has no {what} table for {} (no such task, or it wrote nothing yet)",
                self.dag.id, self.ds
            )))
        }
    }

    pub async fn anomalies(
        &self,
        filter: AnomalyFilter,
        sku: Option<(&str, &str)>,
        paging: (usize, usize),
    ) -> Result<Page<AnomalyRow>, WebError> {
        self.need("anomalies", self.anomalies.is_some())?;
        read::anomalies(&self.session, &self.ds, filter, sku, paging).await
    }

    pub async fn lines(
        &self,
        which: Lines,
        sku: Option<(&str, &str)>,
        paging: (usize, usize),
    ) -> Result<Page<OrderRow>, WebError> {
        self.need("reorder plan", self.plans.is_some())?;
        read::plan_lines(&self.session, &self.ds, which, sku, paging).await
    }

    pub async fn summary(&self) -> Result<Summary, WebError> {
        let severities = match self.anomalies {
            Some(_) => read::severity_counts(&self.session, &self.ds).await?,
            None => Vec::new(),
        };
        let plan = match self.plans {
            Some(_) => Some(read::plan_totals(&self.session, &self.ds).await?),
            None => None,
        };
        let headline = match self.anomalies {
            Some(_) => Some(self.headline().await?),
            None => None,
        };
        Ok(Summary {
            run: self.run(),
            anomalies: severities.iter().map(|(_, n)| n).sum(),
            by_severity: severities.into_iter().collect(),
            headline,
            plan,
            has_forecasts: self.forecasts.is_some(),
        })
    }

    /// The headline cap of the `email` task that reports on this page's
    /// anomalies table (by declared name or path), else of the first
    /// email task, else the default 25.
    fn report_cap(&self) -> usize {
        let reports: Vec<crate::tasks::ReportHeadline> = self
            .dag
            .tasks
            .iter()
            .filter_map(|t| t.runner.report_headline())
            .collect();
        let path_of = |name: &str| -> String {
            let path = self.dag.tables.get(name).map_or(name, |t| t.path.as_str());
            path.trim_end_matches('/').to_string()
        };
        reports
            .iter()
            .find(|r| self.anomalies.as_deref() == Some(path_of(&r.anomalies).as_str()))
            .or(reports.first())
            .map_or(crate::mail::report::HEADLINE, |r| r.lines)
    }

    /// The night's headline as the report mail lists it: the monitor's
    /// headline rows, ordered and capped by [`crate::mail::Report`]'s own
    /// code at the cap the DAG's `email` task uses, with the share of the
    /// night's money at risk they cover, computed as the mail computes it.
    /// Only the headline rows and one sum are read, not the whole table.
    pub async fn headline(&self) -> Result<Headline, WebError> {
        self.need("anomalies", self.anomalies.is_some())?;
        let cap = self.report_cap();
        let candidates = read::headline_candidates(&self.session, &self.ds).await?;
        let total = read::money_at_risk_total(&self.session, &self.ds).await?;
        let report = crate::mail::Report {
            anomalies: candidates.iter().map(AnomalyRow::report_row).collect(),
            ..Default::default()
        };
        let order = report.headline_indices(cap);
        let lines: Vec<&crate::mail::Anomaly> =
            order.iter().map(|&i| &report.anomalies[i]).collect();
        let money_at_risk = lines.iter().filter_map(|a| a.money_at_risk).sum();
        let share = total.map(|t| crate::mail::report::headline_share(t, &lines));
        let rows: Vec<AnomalyRow> = order.iter().map(|&i| candidates[i].clone()).collect();
        let sentence = match (total, share) {
            (Some(total), Some(share)) if !rows.is_empty() => {
                Some(share_sentence(rows.len(), total, share))
            }
            _ => None,
        };
        Ok(Headline {
            cap,
            rows,
            money_at_risk,
            total_money_at_risk: total,
            share,
            sentence,
        })
    }

    /// History, forecast band, plan lines and anomalies of one series.
    pub async fn sku(&self, store: &str, sku: &str) -> Result<SkuJson, WebError> {
        let key = (store, sku);
        let (history, forecast) = match &self.forecasts {
            Some((_, src)) => {
                let table = self.history_table(src);
                let history = match table {
                    Some(t) => read::history(&self.session, &t, src, &self.ds, key).await?,
                    None => Vec::new(),
                };
                let forecast = read::forecast(&self.session, &self.ds, src, key).await?;
                (history, forecast)
            }
            None => (Vec::new(), Vec::new()),
        };
        let all = (super::pages::MAX_PAGE, 0);
        let mut plan = Vec::new();
        if self.plans.is_some() {
            plan.extend(self.lines(Lines::Orders, Some(key), all).await?.rows);
            plan.extend(self.lines(Lines::Held, Some(key), all).await?.rows);
        }
        let anomalies = match self.anomalies {
            Some(_) => {
                self.anomalies(AnomalyFilter::default(), Some(key), all)
                    .await?
                    .rows
            }
            None => Vec::new(),
        };
        if history.is_empty() && forecast.is_empty() && plan.is_empty() && anomalies.is_empty() {
            return Err(WebError::NotFound(format!(
                "no series `{sku}` at store `{store}` in the planning tables of {}",
                self.ds
            )));
        }
        Ok(SkuJson {
            run: self.run(),
            store: store.to_string(),
            sku: sku.to_string(),
            history,
            forecast,
            plan,
            anomalies,
        })
    }

    /// The declared table the forecast's history comes from, named apart
    /// from the session's other tables.
    fn history_table(&self, src: &HistorySource) -> Option<Table> {
        self.dag.tables.get(&src.table).map(|t| Table {
            name: "history".into(),
            path: t.path.clone(),
            partition_by: t.partition_by.clone(),
            columns: t.columns.clone(),
        })
    }
}

/// "These 3 lines cover 40% of tonight's money at risk (total 1,000.00)."
fn share_sentence(lines: usize, total: f64, share: f64) -> String {
    let lines = match lines {
        1 => "This line covers".to_string(),
        n => format!("These {n} lines cover"),
    };
    format!(
        "{lines} {} of tonight's money at risk (total {}).",
        crate::mail::report::format_share(share),
        crate::mail::report::format_number(total, 2)
    )
}

/// The night's headline list: what the report mail's worklist shows.
#[derive(Debug, Serialize)]
pub struct Headline {
    /// Lines the list is capped at: the DAG's `email` task's `headline:`,
    /// else 25.
    pub cap: usize,
    /// The lines in the mail's order (money at risk, largest first).
    pub rows: Vec<AnomalyRow>,
    /// Money at risk of these lines.
    pub money_at_risk: f64,
    /// Money at risk of all the night's anomalies (the rest are in the
    /// anomalies list and the mail's CSV); `None` when none has a figure.
    pub total_money_at_risk: Option<f64>,
    /// The share of `total_money_at_risk` these lines cover (0 to 1).
    pub share: Option<f64>,
    /// The share in words, as the page says it.
    pub sentence: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    #[serde(flatten)]
    pub run: RunRef,
    pub anomalies: i64,
    pub by_severity: std::collections::BTreeMap<String, i64>,
    /// `None` when the DAG has no anomalies table.
    pub headline: Option<Headline>,
    /// `None` when the DAG has no reorder plan.
    pub plan: Option<PlanTotals>,
    pub has_forecasts: bool,
}

#[derive(Debug, Serialize)]
pub struct SkuJson {
    #[serde(flatten)]
    pub run: RunRef,
    pub store: String,
    pub sku: String,
    pub history: Vec<crate::mail::HistoryPoint>,
    pub forecast: Vec<crate::mail::ForecastPoint>,
    pub plan: Vec<OrderRow>,
    pub anomalies: Vec<AnomalyRow>,
}

impl SkuJson {
    /// The chart's input: this series alone.
    pub fn series(&self) -> crate::mail::SkuSeries {
        crate::mail::SkuSeries {
            sku: self.sku.clone(),
            store: self.store.clone(),
            history: self.history.clone(),
            forecast: self.forecast.clone(),
        }
    }
}

/// `?type=&severity=&limit=&offset=` of the anomalies list.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AnomalyQuery {
    #[serde(rename = "type")]
    pub kind: Option<Kind>,
    pub severity: Option<Severity>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

impl AnomalyQuery {
    pub fn filter(&self) -> AnomalyFilter {
        AnomalyFilter {
            kind: self.kind,
            severity: self.severity,
        }
    }

    pub fn paging(&self) -> (usize, usize) {
        Paging {
            limit: self.limit,
            offset: self.offset,
        }
        .get()
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/dags/{dag_id}/planning", get(api_summary))
        .route(
            "/api/v1/dags/{dag_id}/planning/anomalies",
            get(api_anomalies),
        )
        .route("/api/v1/dags/{dag_id}/planning/orders", get(api_orders))
        .route("/api/v1/dags/{dag_id}/planning/held", get(api_held))
        .route(
            "/api/v1/dags/{dag_id}/planning/skus/{store}/{sku}",
            get(api_sku),
        )
        .merge(page::routes())
}

async fn api_summary(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Summary>, WebError> {
    Ok(Json(locate(&app, &id).await?.summary().await?))
}

async fn api_anomalies(
    State(app): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<AnomalyQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, WebError> {
    let Query(q) = q?;
    let p = locate(&app, &id).await?;
    let page = p.anomalies(q.filter(), None, q.paging()).await?;
    Ok(Json(serde_json::json!({
        "dag_id": p.dag.id, "dag_run_id": p.dag_run_id, "ds": p.ds,
        "anomalies": page.rows, "total_entries": page.total_entries,
    })))
}

async fn lines_json(
    app: &AppState,
    id: &str,
    which: Lines,
    q: Paging,
) -> Result<Json<serde_json::Value>, WebError> {
    let p = locate(app, id).await?;
    let page = p.lines(which, None, q.get()).await?;
    let totals = read::plan_totals(&p.session, &p.ds).await?;
    let key = match which {
        Lines::Orders => "orders",
        Lines::Held => "held",
    };
    Ok(Json(serde_json::json!({
        "dag_id": p.dag.id, "dag_run_id": p.dag_run_id, "ds": p.ds,
        key: page.rows, "total_entries": page.total_entries, "totals": totals,
    })))
}

async fn api_orders(
    State(app): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<serde_json::Value>, WebError> {
    let Query(q) = q?;
    lines_json(&app, &id, Lines::Orders, q).await
}

async fn api_held(
    State(app): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<serde_json::Value>, WebError> {
    let Query(q) = q?;
    lines_json(&app, &id, Lines::Held, q).await
}

async fn api_sku(
    State(app): State<AppState>,
    Path((id, store, sku)): Path<(String, String, String)>,
) -> Result<Json<SkuJson>, WebError> {
    Ok(Json(locate(&app, &id).await?.sku(&store, &sku).await?))
}
