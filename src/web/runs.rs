//! Runs: a DAG's run list, one run with its task instances and attempts,
//! and the actions on runs (trigger, backfill, cancel, clear, rerun
//! failed), which go to the daemon as commands.
//! API: `/api/v1/dags/{id}/runs` (GET, POST = trigger),
//! `/api/v1/dags/{id}/backfill`, `/api/v1/runs/{run_id}`,
//! `/api/v1/runs/{run_id}/tasks`, `/api/v1/runs/{run_id}/tasks/{task}/tries`,
//! `/api/v1/runs/{run_id}/{cancel,clear,rerun_failed}`; page:
//! `/runs/{run_id}`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::auth::SessionInfo;
use super::dags::loaded;
use super::pages::{Paging, page};
use super::{AppState, WebError};
use crate::daemon::Command;
use crate::store::{self, Attempt, RunRecord, State as RunState};

#[derive(Debug, Serialize, Clone)]
pub struct RunJson {
    pub dag_run_id: String,
    pub dag_id: String,
    pub logical_date: DateTime<Utc>,
    pub ds: String,
    pub data_interval_start: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
    pub run_type: String,
    pub state: RunState,
    pub generation: i64,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
}

impl From<&RunRecord> for RunJson {
    fn from(r: &RunRecord) -> Self {
        RunJson {
            dag_run_id: r.run_id.clone(),
            dag_id: r.dag_id.clone(),
            logical_date: r.logical_date,
            ds: r.ds.clone(),
            data_interval_start: r.data_interval_start,
            data_interval_end: r.data_interval_end,
            run_type: r.run_type.clone(),
            state: r.state,
            generation: r.generation,
            start_date: r.started_at,
            end_date: r.ended_at,
        }
    }
}

/// A task instance with its newest attempt's times.
#[derive(Debug, Serialize)]
pub struct TaskInstanceJson {
    pub task_id: String,
    pub kind: String,
    pub state: Option<RunState>,
    pub try_number: i64,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    pub executor: String,
    pub error: Option<String>,
    pub outputs: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub struct TryJson {
    pub task_id: String,
    pub try_number: i64,
    pub state: RunState,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    pub error: Option<String>,
}

fn seconds(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<f64> {
    Some((b? - a?).num_milliseconds() as f64 / 1000.0)
}

impl From<&Attempt> for TryJson {
    fn from(a: &Attempt) -> Self {
        TryJson {
            task_id: a.task_id.clone(),
            try_number: a.try_number,
            state: a.state,
            start_date: a.started_at,
            end_date: a.ended_at,
            duration: seconds(a.started_at, a.ended_at.or(Some(Utc::now()))),
            error: a.error.clone(),
        }
    }
}

/// Everything the run page and `/tasks` show about one run.
pub struct RunView {
    pub run: RunRecord,
    pub tasks: Vec<TaskInstanceJson>,
    pub attempts: Vec<Attempt>,
}

pub async fn run_view(app: &AppState, run_id: &str) -> Result<RunView, WebError> {
    let rid = run_id.to_string();
    let (run, tis, attempts) = app
        .store()
        .call(move |c| {
            let run =
                store::find_run_by_id(c, &rid)?.ok_or(store::StoreError::NoRun(rid.clone()))?;
            Ok((
                run,
                store::task_instances(c, &rid)?,
                store::attempts(c, &rid)?,
            ))
        })
        .await?;
    // Task order: the DAG's, when it is loaded; else as recorded.
    let dag = app.shared().dag(&run.dag_id);
    let mut order: Vec<(String, String)> = match &dag {
        Some(d) => d
            .tasks
            .iter()
            .map(|t| (t.id.clone(), t.kind.clone()))
            .collect(),
        None => tis
            .iter()
            .map(|t| (t.task_id.clone(), String::new()))
            .collect(),
    };
    for t in &tis {
        if !order.iter().any(|(id, _)| id == &t.task_id) {
            order.push((t.task_id.clone(), String::new()));
        }
    }
    let tasks = order
        .into_iter()
        .map(|(id, kind)| {
            let ti = tis.iter().find(|t| t.task_id == id);
            let last = attempts
                .iter()
                .filter(|a| a.task_id == id)
                .max_by_key(|a| a.try_number);
            let end = last.and_then(|a| a.ended_at);
            TaskInstanceJson {
                kind,
                state: ti.map(|t| t.state),
                try_number: ti.map(|t| t.tries).unwrap_or(0),
                start_date: last.and_then(|a| a.started_at),
                end_date: end,
                duration: last.and_then(|a| seconds(a.started_at, end.or(Some(Utc::now())))),
                executor: "local".into(),
                error: ti.and_then(|t| t.error.clone()),
                outputs: ti.map(|t| t.outputs.clone()).unwrap_or_default(),
                task_id: id,
            }
        })
        .collect();
    Ok(RunView {
        run,
        tasks,
        attempts,
    })
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/dags/{dag_id}/runs",
            get(api_runs).post(api_trigger),
        )
        .route("/api/v1/dags/{dag_id}/backfill", post(api_backfill))
        .route("/api/v1/runs/{run_id}", get(api_run))
        .route("/api/v1/runs/{run_id}/tasks", get(api_tasks))
        .route(
            "/api/v1/runs/{run_id}/tasks/{task_id}/tries",
            get(api_tries),
        )
        .route("/api/v1/runs/{run_id}/cancel", post(api_cancel))
        .route("/api/v1/runs/{run_id}/clear", post(api_clear))
        .route("/api/v1/runs/{run_id}/rerun_failed", post(api_rerun_failed))
        .route("/runs/{run_id}", get(run_page))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    limit: Option<usize>,
    offset: Option<usize>,
    state: Option<String>,
}

fn parse_state(s: &str) -> Result<RunState, WebError> {
    let st = RunState::parse(s);
    if st.as_str() != s {
        return Err(WebError::BadRequest(format!("unknown state `{s}`")));
    }
    Ok(st)
}

async fn api_runs(
    State(app): State<AppState>,
    Path(dag_id): Path<String>,
    q: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, WebError> {
    let Query(q) = q?;
    let (limit, offset) = Paging {
        limit: q.limit,
        offset: q.offset,
    }
    .get();
    let state = q.state.as_deref().map(parse_state).transpose()?;
    let known = app
        .shared()
        .catalog()
        .iter()
        .any(|e| e.dag.as_ref().is_some_and(|d| d.id == dag_id));
    let id = dag_id.clone();
    let (runs, total) = app
        .store()
        .call(move |c| {
            Ok((
                store::runs_page(c, Some(&id), state, limit, offset)?,
                store::count_runs(c, Some(&id), state)?,
            ))
        })
        .await?;
    if !known && total == 0 {
        return Err(WebError::NotFound(format!("no DAG `{dag_id}`")));
    }
    let runs: Vec<RunJson> = runs.iter().map(RunJson::from).collect();
    Ok(Json(
        serde_json::json!({ "dag_runs": runs, "total_entries": total }),
    ))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    /// `YYYY-MM-DD`; default: the newest complete interval.
    logical_date: Option<NaiveDate>,
    #[serde(default)]
    force: bool,
}

async fn api_trigger(
    State(app): State<AppState>,
    Path(dag_id): Path<String>,
    body: Result<Json<TriggerBody>, JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<serde_json::Value>), WebError> {
    let Json(body) = body?;
    loaded(&app, &dag_id)?;
    let id = app
        .control()?
        .ask(|reply| Command::Trigger {
            dag_id: dag_id.clone(),
            date: body.logical_date,
            force: body.force,
            reply,
        })
        .await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(serde_json::json!({ "dag_run_id": id, "dag_id": dag_id })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackfillBody {
    from: NaiveDate,
    to: NaiveDate,
}

async fn api_backfill(
    State(app): State<AppState>,
    Path(dag_id): Path<String>,
    body: Result<Json<BackfillBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, WebError> {
    let Json(body) = body?;
    loaded(&app, &dag_id)?;
    let ids = app
        .control()?
        .ask(|reply| Command::Backfill {
            dag_id: dag_id.clone(),
            from: body.from,
            to: body.to,
            reply,
        })
        .await?;
    Ok(Json(
        serde_json::json!({ "dag_id": dag_id, "dag_run_ids": ids }),
    ))
}

async fn api_run(
    State(app): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<RunJson>, WebError> {
    let rid = run_id.clone();
    let run = app
        .store()
        .call(move |c| store::find_run_by_id(c, &rid))
        .await?
        .ok_or_else(|| WebError::NotFound(format!("no run `{run_id}`")))?;
    Ok(Json(RunJson::from(&run)))
}

async fn api_tasks(
    State(app): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<serde_json::Value>, WebError> {
    let v = run_view(&app, &run_id).await?;
    let total = v.tasks.len();
    Ok(Json(serde_json::json!({
        "dag_run": RunJson::from(&v.run),
        "task_instances": v.tasks,
        "total_entries": total,
    })))
}

async fn api_tries(
    State(app): State<AppState>,
    Path((run_id, task_id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, WebError> {
    let v = run_view(&app, &run_id).await?;
    if !v.tasks.iter().any(|t| t.task_id == task_id) {
        return Err(WebError::NotFound(format!(
            "no task `{task_id}` in run `{run_id}`"
        )));
    }
    let tries: Vec<TryJson> = v
        .attempts
        .iter()
        .filter(|a| a.task_id == task_id)
        .map(TryJson::from)
        .collect();
    let total = tries.len();
    Ok(Json(
        serde_json::json!({ "tries": tries, "total_entries": total }),
    ))
}

async fn api_cancel(
    State(app): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<serde_json::Value>, WebError> {
    app.control()?
        .ask(|reply| Command::Cancel {
            run_id: run_id.clone(),
            reply,
        })
        .await?;
    Ok(Json(
        serde_json::json!({ "dag_run_id": run_id, "cancelled": true }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClearBody {
    task_id: String,
    #[serde(default)]
    downstream: bool,
}

async fn clear(app: &AppState, run_id: &str, tasks: Vec<String>) -> Result<usize, WebError> {
    let rid = run_id.to_string();
    Ok(app
        .control()?
        .ask(|reply| Command::Clear {
            run_id: rid,
            tasks,
            reply,
        })
        .await?)
}

async fn api_clear(
    State(app): State<AppState>,
    Path(run_id): Path<String>,
    body: Result<Json<ClearBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, WebError> {
    let Json(body) = body?;
    let v = run_view(&app, &run_id).await?;
    let dag = loaded(&app, &v.run.dag_id)?;
    let Some(&start) = dag.by_id.get(&body.task_id) else {
        return Err(WebError::NotFound(format!(
            "no task `{}` in DAG `{}`",
            body.task_id, dag.id
        )));
    };
    let mut pick = vec![start];
    if body.downstream {
        let mut i = 0;
        while i < pick.len() {
            for &d in &dag.tasks[pick[i]].downstream {
                if !pick.contains(&d) {
                    pick.push(d);
                }
            }
            i += 1;
        }
    }
    let tasks: Vec<String> = pick.iter().map(|&i| dag.tasks[i].id.clone()).collect();
    let n = clear(&app, &run_id, tasks.clone()).await?;
    Ok(Json(
        serde_json::json!({ "dag_run_id": run_id, "cleared": tasks, "count": n }),
    ))
}

async fn api_rerun_failed(
    State(app): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<serde_json::Value>, WebError> {
    let v = run_view(&app, &run_id).await?;
    let tasks: Vec<String> = v
        .tasks
        .iter()
        .filter(|t| {
            matches!(
                t.state,
                Some(RunState::Failed | RunState::UpstreamFailed | RunState::Interrupted)
            )
        })
        .map(|t| t.task_id.clone())
        .collect();
    if tasks.is_empty() {
        return Err(WebError::Conflict(format!(
            "run `{run_id}` has no failed task"
        )));
    }
    let n = clear(&app, &run_id, tasks.clone()).await?;
    Ok(Json(
        serde_json::json!({ "dag_run_id": run_id, "cleared": tasks, "count": n }),
    ))
}

/// One bar of the Gantt chart, as fractions of the run's span.
#[derive(Debug, Serialize)]
struct Bar {
    task_id: String,
    try_number: i64,
    state: RunState,
    left: f64,
    width: f64,
    seconds: f64,
}

fn gantt(attempts: &[Attempt]) -> Vec<Bar> {
    let now = Utc::now();
    let starts = attempts.iter().filter_map(|a| a.started_at);
    let Some(t0) = starts.clone().min() else {
        return Vec::new();
    };
    let t1 = attempts
        .iter()
        .map(|a| a.ended_at.unwrap_or(now))
        .max()
        .unwrap_or(now);
    let span = ((t1 - t0).num_milliseconds().max(1)) as f64;
    attempts
        .iter()
        .filter_map(|a| {
            let s = a.started_at?;
            let e = a.ended_at.unwrap_or(now);
            let ms = (e - s).num_milliseconds().max(0) as f64;
            Some(Bar {
                task_id: a.task_id.clone(),
                try_number: a.try_number,
                state: a.state,
                left: 100.0 * (s - t0).num_milliseconds() as f64 / span,
                width: (100.0 * ms / span).max(0.5),
                seconds: ms / 1000.0,
            })
        })
        .collect()
}

async fn run_page(
    State(app): State<AppState>,
    Path(run_id): Path<String>,
    session: Option<Extension<SessionInfo>>,
) -> Result<Html<String>, WebError> {
    let v = run_view(&app, &run_id).await?;
    let bars = gantt(&v.attempts);
    let tries: Vec<TryJson> = v.attempts.iter().map(TryJson::from).collect();
    page(
        &app,
        session.as_deref(),
        "run.html",
        minijinja::context! {
            run => minijinja::Value::from(minijinja::value::Serde(RunJson::from(&v.run))),
            tasks => minijinja::Value::from(minijinja::value::Serde(&v.tasks)),
            tries => minijinja::Value::from(minijinja::value::Serde(&tries)),
            bars => minijinja::Value::from(minijinja::value::Serde(&bars)),
            title => run_id,
        },
    )
}
