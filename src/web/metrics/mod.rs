//! `GET /metrics` in the Prometheus text format (0.0.4). The names, labels
//! and meanings are documented in one table in docs/web.md.
//!
//! Figures that come from the run history (runs and attempts by state,
//! durations) are aggregated in one pass on the blocking pool and kept for
//! [`TTL`], so a scrape storm costs one aggregation per interval, not one
//! per request. Once they are older than that, a scrape gets them as they
//! are while one background task aggregates afresh (a million attempts
//! take most of a second, which no scrape should wait for); only the very
//! first scrape waits. The scheduler's own figures (heartbeat, queued runs) are
//! read fresh on every scrape. Forecast accuracy comes from the lake
//! (`accuracy.rs`) and is kept longer.

mod accuracy;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;

use super::{AppState, WebError};
use crate::store::{self, State as RunState};

/// How long aggregated history figures are reused.
pub const TTL: Duration = Duration::from_secs(2);

/// Upper bounds of the task duration histogram, in seconds.
pub const DURATION_BUCKETS: &[f64] = &[1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 10800.0];

#[derive(Debug, Default)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

/// What the history says, aggregated.
#[derive(Debug, Default)]
struct Figures {
    runs: Vec<(String, RunState, u64)>,
    attempts: BTreeMap<(String, String, RunState), u64>,
    durations: BTreeMap<(String, String), Histogram>,
    delays: Vec<(String, f64)>,
    paused: Vec<String>,
}

type Slot<T> = tokio::sync::Mutex<Option<(Instant, Arc<T>)>>;

#[derive(Default)]
pub struct Cache {
    slot: Slot<Figures>,
    /// A background aggregation is under way.
    refreshing: std::sync::atomic::AtomicBool,
    accuracy: Slot<Vec<accuracy::Rmsse>>,
}

fn aggregate(c: &rusqlite::Connection, dags: &[String]) -> Result<Figures, store::StoreError> {
    let mut f = Figures {
        runs: store::run_counts(c)?,
        ..Default::default()
    };
    store::for_each_attempt(c, |a| {
        *f.attempts
            .entry((a.dag_id.clone(), a.task_id.clone(), a.state))
            .or_default() += 1;
        if let (Some(s), true) = (a.seconds, a.state.is_final()) {
            let h = f.durations.entry((a.dag_id, a.task_id)).or_default();
            if h.buckets.is_empty() {
                h.buckets = vec![0; DURATION_BUCKETS.len()];
            }
            for (i, b) in DURATION_BUCKETS.iter().enumerate() {
                if s <= *b {
                    h.buckets[i] += 1;
                }
            }
            h.sum += s;
            h.count += 1;
        }
    })?;
    for d in dags {
        if let Some(delay) = store::schedule_delays(c, d, 1)?.first() {
            f.delays.push((d.clone(), *delay));
        }
    }
    let mut paused: Vec<String> = store::paused_dags(c)?.into_iter().collect();
    paused.sort();
    f.paused = paused;
    Ok(f)
}

impl Cache {
    async fn get(&self, app: &AppState) -> Result<Arc<Figures>, WebError> {
        use std::sync::atomic::Ordering;
        let mut slot = self.slot.lock().await;
        if let Some((at, f)) = slot.as_ref() {
            if at.elapsed() >= TTL && !self.refreshing.swap(true, Ordering::AcqRel) {
                let app = app.clone();
                tokio::spawn(async move {
                    let cache = &app.inner.metrics;
                    match Self::aggregate_now(&app).await {
                        Ok(fresh) => {
                            *cache.slot.lock().await = Some((Instant::now(), Arc::new(fresh)));
                        }
                        Err(e) => tracing::warn!(error = %e, "refreshing the metrics failed"),
                    }
                    cache.refreshing.store(false, Ordering::Release);
                });
            }
            return Ok(f.clone());
        }
        let f = Arc::new(Self::aggregate_now(app).await?);
        *slot = Some((Instant::now(), f.clone()));
        Ok(f)
    }

    async fn aggregate_now(app: &AppState) -> Result<Figures, WebError> {
        let dags: Vec<String> = app
            .shared()
            .catalog()
            .iter()
            .filter_map(|e| e.dag.as_ref().map(|d| d.id.clone()))
            .collect();
        Ok(app.store().call(move |c| aggregate(c, &dags)).await?)
    }

    /// The accuracy figures; none when the lake does not open.
    async fn accuracy(&self, app: &AppState) -> Arc<Vec<accuracy::Rmsse>> {
        let mut slot = self.accuracy.lock().await;
        if let Some((at, f)) = slot.as_ref() {
            if at.elapsed() < accuracy::LAKE_TTL {
                return f.clone();
            }
        }
        let dags: Vec<Arc<crate::dag::Dag>> = app
            .shared()
            .catalog()
            .iter()
            .filter_map(|e| e.dag.clone())
            .collect();
        let f = Arc::new(match app.lake() {
            Ok(lake) => accuracy::read(lake, &dags).await,
            Err(_) => Vec::new(),
        });
        *slot = Some((Instant::now(), f.clone()));
        f
    }
}

/// A label value, escaped as the text format wants.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Attempts recorded `running` of tasks that the loaded DAGs place on a
/// remote executor, per executor; every configured executor appears.
fn remote_in_flight(f: &Figures, app: &AppState) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = app
        .config()
        .executors
        .keys()
        .map(|k| (k.clone(), 0))
        .collect();
    for e in app.shared().catalog().iter() {
        let Some(dag) = &e.dag else { continue };
        for t in &dag.tasks {
            let Some(ex) = &t.executor else { continue };
            let key = (dag.id.clone(), t.id.clone(), RunState::Running);
            *out.entry(ex.clone()).or_default() += f.attempts.get(&key).copied().unwrap_or(0);
        }
    }
    out
}

fn render_remote(out: &mut String, f: &Figures, app: &AppState) {
    head(
        out,
        "restock_remote_attempts_in_flight",
        "gauge",
        "Attempts running on each remote executor (Slurm, Ray).",
    );
    for (ex, n) in remote_in_flight(f, app) {
        let _ = writeln!(
            out,
            "restock_remote_attempts_in_flight{{executor=\"{}\"}} {n}",
            esc(&ex)
        );
    }
}

fn render_accuracy(out: &mut String, figures: &[accuracy::Rmsse]) {
    for (source, name, help) in [
        (
            accuracy::Source::Backtest,
            "restock_forecast_backtest_rmsse",
            "RMSSE of the champion model in the newest backtest (forecast_metrics), per DAG and group.",
        ),
        (
            accuracy::Source::Realized,
            "restock_forecast_realized_rmsse",
            "RMSSE of the previous forecast against realized demand (newest forecast_accuracy), per DAG and group.",
        ),
    ] {
        head(out, name, "gauge", help);
        for r in figures.iter().filter(|r| r.source == source) {
            let _ = writeln!(
                out,
                "{name}{{dag_id=\"{}\",group=\"{}\",model_kind=\"{}\",ds=\"{}\"}} {}",
                esc(&r.dag_id),
                esc(&r.group),
                esc(&r.model_kind),
                esc(&r.ds),
                r.value
            );
        }
    }
}

fn render(f: &Figures, rmsse: &[accuracy::Rmsse], app: &AppState) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let status = app.inner.control.as_ref().map(|c| c.shared.status());
    if let Some(s) = &status {
        head(
            &mut out,
            "restock_scheduler_heartbeat_seconds",
            "gauge",
            "Seconds since the scheduler last looked for due runs.",
        );
        let age = s
            .last_beat
            .map(|t| (Utc::now() - t).num_milliseconds() as f64 / 1000.0)
            .unwrap_or(f64::INFINITY);
        let _ = writeln!(out, "restock_scheduler_heartbeat_seconds {age}");
        head(
            &mut out,
            "restock_dag_runs_queued",
            "gauge",
            "Runs waiting for a max_active_runs slot.",
        );
        let mut q: Vec<_> = s.queued.iter().collect();
        q.sort();
        for (dag, n) in q {
            let _ = writeln!(
                out,
                "restock_dag_runs_queued{{dag_id=\"{}\"}} {n}",
                esc(dag)
            );
        }
        head(
            &mut out,
            "restock_dag_runs_active",
            "gauge",
            "Runs executing now.",
        );
        let mut a: Vec<_> = s.active.iter().collect();
        a.sort();
        for (dag, n) in a {
            let _ = writeln!(
                out,
                "restock_dag_runs_active{{dag_id=\"{}\"}} {n}",
                esc(dag)
            );
        }
    }
    head(
        &mut out,
        "restock_dag_runs",
        "gauge",
        "Runs in the history by DAG and state.",
    );
    for (dag, state, n) in &f.runs {
        let _ = writeln!(
            out,
            "restock_dag_runs{{dag_id=\"{}\",state=\"{state}\"}} {n}",
            esc(dag)
        );
    }
    head(
        &mut out,
        "restock_task_attempts",
        "gauge",
        "Task attempts in the history by DAG, task and state.",
    );
    for ((dag, task, state), n) in &f.attempts {
        let _ = writeln!(
            out,
            "restock_task_attempts{{dag_id=\"{}\",task_id=\"{}\",state=\"{state}\"}} {n}",
            esc(dag),
            esc(task)
        );
    }
    head(
        &mut out,
        "restock_task_duration_seconds",
        "histogram",
        "Duration of finished task attempts.",
    );
    for ((dag, task), h) in &f.durations {
        let l = format!("dag_id=\"{}\",task_id=\"{}\"", esc(dag), esc(task));
        for (b, n) in DURATION_BUCKETS.iter().zip(&h.buckets) {
            let _ = writeln!(
                out,
                "restock_task_duration_seconds_bucket{{{l},le=\"{b}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "restock_task_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(out, "restock_task_duration_seconds_sum{{{l}}} {}", h.sum);
        let _ = writeln!(
            out,
            "restock_task_duration_seconds_count{{{l}}} {}",
            h.count
        );
    }
    head(
        &mut out,
        "restock_schedule_delay_seconds",
        "gauge",
        "Start of the newest scheduled run minus the time it was due.",
    );
    for (dag, d) in &f.delays {
        let _ = writeln!(
            out,
            "restock_schedule_delay_seconds{{dag_id=\"{}\"}} {d}",
            esc(dag)
        );
    }
    head(
        &mut out,
        "restock_dag_paused",
        "gauge",
        "1 for a paused DAG.",
    );
    let catalog = app.shared().catalog();
    let mut errors: HashMap<String, usize> = HashMap::new();
    for e in catalog.iter() {
        let id = e
            .dag
            .as_ref()
            .map(|d| d.id.clone())
            .unwrap_or_else(|| e.file.display().to_string());
        let paused = f.paused.contains(&id);
        if e.dag.is_some() {
            let _ = writeln!(
                out,
                "restock_dag_paused{{dag_id=\"{}\"}} {}",
                esc(&id),
                u8::from(paused)
            );
        }
        errors.insert(e.file.display().to_string(), e.errors.len());
    }
    head(
        &mut out,
        "restock_dag_file_errors",
        "gauge",
        "Validation errors of each DAG file as it is now.",
    );
    let mut errors: Vec<_> = errors.into_iter().collect();
    errors.sort();
    for (file, n) in errors {
        let _ = writeln!(
            out,
            "restock_dag_file_errors{{file=\"{}\"}} {n}",
            esc(&file)
        );
    }
    head(
        &mut out,
        "restock_mail_outbox_pending",
        "gauge",
        "Report mails waiting in the outbox for delivery.",
    );
    let _ = writeln!(
        out,
        "restock_mail_outbox_pending {}",
        outbox_pending(&app.config().outbox)
    );
    render_remote(&mut out, f, app);
    render_accuracy(&mut out, rmsse);
    out
}

/// Messages waiting in `<outbox>/pending/`.
fn outbox_pending(outbox: &std::path::Path) -> usize {
    std::fs::read_dir(outbox.join("pending"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .count()
        })
        .unwrap_or(0)
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(app): State<AppState>) -> Result<Response, WebError> {
    let f = app.inner.metrics.get(&app).await?;
    let rmsse = app.inner.metrics.accuracy(&app).await;
    let app2 = app.clone();
    let text = tokio::task::spawn_blocking(move || render(&f, &rmsse, &app2))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}
