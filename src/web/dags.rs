//! DAGs: the list (with the last runs as squares and broken files with
//! their errors), one DAG with its grid of runs × tasks, and pausing.
//! API: `GET /api/v1/dags`, `GET /api/v1/dags/{id}`,
//! `GET /api/v1/dags/{id}/grid`, `POST /api/v1/dags/{id}/pause`; pages:
//! `/` and `/dags/{id}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::auth::SessionInfo;
use super::pages::{Paging, page};
use super::runs::RunJson;
use super::{AppState, WebError};
use crate::daemon::CatalogEntry;
use crate::dag::Dag;
use crate::store::{self, State as RunState};

/// How many recent runs the DAG list shows per DAG.
const RECENT: usize = 14;

#[derive(Debug, Serialize)]
pub struct DagJson {
    pub dag_id: String,
    pub description: Option<String>,
    pub file: String,
    pub schedule: Option<String>,
    pub timezone: String,
    /// When the next scheduled run starts, in the DAG's zone.
    pub next_run: Option<String>,
    pub is_paused: bool,
    pub max_active_runs: Option<usize>,
    pub tags: Vec<String>,
    /// Errors of the file as it is now; the version in `tasks` (the last
    /// that compiled) keeps running meanwhile.
    pub errors: Vec<String>,
    pub recent_runs: Vec<RunBrief>,
}

#[derive(Debug, Serialize, Clone)]
pub struct RunBrief {
    pub dag_run_id: String,
    pub ds: String,
    pub state: RunState,
}

#[derive(Debug, Serialize)]
struct TaskJson {
    task_id: String,
    kind: String,
    description: Option<String>,
    upstream: Vec<String>,
    trigger_rule: String,
    retries: u32,
}

fn file_stem(e: &CatalogEntry) -> String {
    e.file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn summary(e: &CatalogEntry, paused: bool, recent: Vec<RunBrief>) -> DagJson {
    let now = Utc::now();
    let d = e.dag.as_deref();
    DagJson {
        dag_id: d.map(|d| d.id.clone()).unwrap_or_else(|| file_stem(e)),
        description: d.and_then(|d| d.description.clone()),
        file: e.file.display().to_string(),
        schedule: d.and_then(|d| d.schedule.as_ref().map(|s| s.expr().to_string())),
        timezone: d.map(|d| d.tz.to_string()).unwrap_or_default(),
        next_run: d.and_then(|d| {
            let s = d.schedule.as_ref()?;
            let t = s.next_after(now)?;
            Some(t.with_timezone(&d.tz).to_rfc3339())
        }),
        is_paused: paused,
        max_active_runs: d.map(|d| d.max_active_runs),
        tags: d.map(|d| d.tags.clone()).unwrap_or_default(),
        errors: e.errors.clone(),
        recent_runs: recent,
    }
}

/// Every DAG with its recent runs: one blocking call, one indexed query
/// per DAG.
async fn dag_list(app: &AppState) -> Result<Vec<DagJson>, WebError> {
    let catalog = app.shared().catalog();
    let ids: Vec<String> = catalog.iter().map(dag_key).collect();
    let (paused, recent) = app
        .store()
        .call(move |c| {
            let paused = store::paused_dags(c)?;
            let mut recent = HashMap::new();
            for id in ids {
                let runs = store::runs_page(c, Some(&id), None, RECENT, 0)?;
                recent.insert(id, runs);
            }
            Ok((paused, recent))
        })
        .await?;
    let mut out: Vec<DagJson> = catalog
        .iter()
        .map(|e| {
            let id = dag_key(e);
            let runs = recent
                .get(&id)
                .map(|rs| rs.iter().rev().map(brief).collect())
                .unwrap_or_default();
            summary(e, paused.contains(&id), runs)
        })
        .collect();
    out.sort_by(|a, b| a.dag_id.cmp(&b.dag_id));
    Ok(out)
}

fn dag_key(e: &CatalogEntry) -> String {
    e.dag
        .as_ref()
        .map(|d| d.id.clone())
        .unwrap_or_else(|| file_stem(e))
}

pub fn brief(r: &store::RunRecord) -> RunBrief {
    RunBrief {
        dag_run_id: r.run_id.clone(),
        ds: r.ds.clone(),
        state: r.state,
    }
}

/// The loaded DAG, or 404.
pub fn loaded(app: &AppState, id: &str) -> Result<Arc<Dag>, WebError> {
    app.shared()
        .dag(id)
        .ok_or_else(|| WebError::NotFound(format!("no DAG `{id}`")))
}

pub(super) fn entry(app: &AppState, id: &str) -> Result<CatalogEntry, WebError> {
    app.shared()
        .catalog()
        .iter()
        .find(|e| dag_key(e) == id)
        .cloned()
        .ok_or_else(|| WebError::NotFound(format!("no DAG `{id}`")))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/dags", get(api_list))
        .route("/api/v1/dags/{dag_id}", get(api_get))
        .route("/api/v1/dags/{dag_id}/grid", get(api_grid))
        .route("/api/v1/dags/{dag_id}/pause", post(api_pause))
        .route("/", get(list_page))
        .route("/dags/{dag_id}", get(dag_page))
}

async fn api_list(
    State(app): State<AppState>,
    q: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<serde_json::Value>, WebError> {
    let Query(q) = q?;
    let (limit, offset) = q.get();
    let all = dag_list(&app).await?;
    let total = all.len();
    let page: Vec<DagJson> = all.into_iter().skip(offset).take(limit).collect();
    Ok(Json(
        serde_json::json!({ "dags": page, "total_entries": total }),
    ))
}

async fn api_get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, WebError> {
    let e = entry(&app, &id)?;
    let key = id.clone();
    let (paused, recent) = app
        .store()
        .call(move |c| {
            Ok((
                store::paused_dags(c)?.contains(&key),
                store::runs_page(c, Some(&key), None, RECENT, 0)?,
            ))
        })
        .await?;
    let tasks: Vec<TaskJson> = e
        .dag
        .as_deref()
        .map(|d| {
            d.tasks
                .iter()
                .map(|t| TaskJson {
                    task_id: t.id.clone(),
                    kind: t.kind.clone(),
                    description: t.description.clone(),
                    upstream: t.upstream.iter().map(|&u| d.tasks[u].id.clone()).collect(),
                    trigger_rule: format!("{:?}", t.trigger_rule),
                    retries: t.retry.retries,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut v = serde_json::to_value(summary(
        &e,
        paused,
        recent.iter().rev().map(brief).collect(),
    ))
    .map_err(|e| WebError::Internal(e.to_string()))?;
    v["tasks"] = serde_json::to_value(tasks).map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(Json(v))
}

/// Runs × tasks for the newest runs of a DAG.
#[derive(Debug, Serialize)]
pub struct Grid {
    pub tasks: Vec<String>,
    /// Oldest first, as Airflow's grid reads left to right.
    pub runs: Vec<RunJson>,
    /// `cells[i][j]`: state of `tasks[j]` in `runs[i]` (null: no record).
    pub cells: Vec<Vec<Option<RunState>>>,
    pub total_entries: u64,
}

pub async fn grid(
    app: &AppState,
    dag: &Dag,
    limit: usize,
    offset: usize,
) -> Result<Grid, WebError> {
    let id = dag.id.clone();
    let (runs, tis, total) = app
        .store()
        .call(move |c| {
            let runs = store::runs_page(c, Some(&id), None, limit, offset)?;
            let ids: Vec<String> = runs.iter().map(|r| r.run_id.clone()).collect();
            let tis = store::task_instances_of(c, &ids)?;
            let total = store::count_runs(c, Some(&id), None)?;
            Ok((runs, tis, total))
        })
        .await?;
    let tasks: Vec<String> = dag.tasks.iter().map(|t| t.id.clone()).collect();
    let mut by_run: HashMap<&str, HashMap<&str, RunState>> = HashMap::new();
    for (rid, ti) in &tis {
        by_run
            .entry(rid.as_str())
            .or_default()
            .insert(ti.task_id.as_str(), ti.state);
    }
    let runs: Vec<RunJson> = runs.iter().rev().map(RunJson::from).collect();
    let cells = runs
        .iter()
        .map(|r| {
            let m = by_run.get(r.dag_run_id.as_str());
            tasks
                .iter()
                .map(|t| m.and_then(|m| m.get(t.as_str()).copied()))
                .collect()
        })
        .collect();
    Ok(Grid {
        tasks,
        runs,
        cells,
        total_entries: total,
    })
}

async fn api_grid(
    State(app): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<Grid>, WebError> {
    let Query(q) = q?;
    let (limit, offset) = q.get();
    let dag = loaded(&app, &id)?;
    Ok(Json(grid(&app, &dag, limit, offset).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    is_paused: bool,
}

async fn api_pause(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<PauseBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, WebError> {
    let Json(body) = body?;
    entry(&app, &id)?;
    let key = id.clone();
    let paused = body.is_paused;
    app.store()
        .call(move |c| store::set_paused(c, &key, paused, Utc::now()))
        .await?;
    tracing::info!(dag = %id, paused, "DAG pause changed");
    Ok(Json(
        serde_json::json!({ "dag_id": id, "is_paused": paused }),
    ))
}

async fn list_page(
    State(app): State<AppState>,
    session: Option<Extension<SessionInfo>>,
) -> Result<Html<String>, WebError> {
    let dags = dag_list(&app).await?;
    page(
        &app,
        session.as_deref(),
        "dags.html",
        minijinja::context! { dags => minijinja::Value::from(minijinja::value::Serde(&dags)), title => "DAGs" },
    )
}

async fn dag_page(
    State(app): State<AppState>,
    Path(id): Path<String>,
    session: Option<Extension<SessionInfo>>,
    q: Result<Query<Paging>, QueryRejection>,
) -> Result<Html<String>, WebError> {
    let Query(q) = q?;
    let (limit, offset) = q.get();
    let e = entry(&app, &id)?;
    let dag = e
        .dag
        .clone()
        .ok_or_else(|| WebError::NotFound(format!("DAG file of `{id}` has never compiled")))?;
    let g = grid(&app, &dag, limit, offset).await?;
    let key = id.clone();
    let paused = app
        .store()
        .call(move |c| Ok(store::paused_dags(c)?.contains(&key)))
        .await?;
    let info = summary(&e, paused, Vec::new());
    let newer = offset.checked_sub(limit).or((offset > 0).then_some(0));
    let older = (offset + limit < g.total_entries as usize).then_some(offset + limit);
    page(
        &app,
        session.as_deref(),
        "dag.html",
        minijinja::context! {
            dag => minijinja::Value::from(minijinja::value::Serde(&info)), grid => minijinja::Value::from(minijinja::value::Serde(&g)), title => id,
            limit => limit, offset => offset, newer => newer, older => older,
            has_planning => super::planning::has_planning(&dag),
            has_overrides => dag.tables.contains_key("overrides"),
        },
    )
}
