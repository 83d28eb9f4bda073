//! Planners' overrides through the API and the UI.
//!
//! `POST /api/v1/dags/{dag_id}/overrides` checks the rows as the run will
//! check them (every field, the kinds, the ranges, repeated ids and
//! overlaps, among the new rows and against the rows already stored; the
//! series are checked by the run, which knows them) and stores them as one
//! new CSV file in the DAG's `overrides` table, which the next run applies.
//! A request with any bad row stores nothing and names each bad row.
//! `GET` lists the stored rows as the run reads them
//! ([`crate::tasks::overrides::stored`]), the withdrawn ones apart;
//! `PUT` and `DELETE` on `…/overrides/{override_id}` edit and withdraw one
//! (`change.rs`); `/dags/{dag_id}/overrides` is the page with the list and
//! the form that posts or edits one row (`app.js`).

mod change;

use std::collections::BTreeMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::{get, put};
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::auth::SessionInfo;
use super::{AppState, WebError};
use crate::dag::model::Table;
use crate::inventory::overrides::{self, RawRow};
use crate::tasks::overrides::{CREATED_AT, Stored};
use crate::tasks::schemas::series;

/// The form's key fields when no task of the DAG reads its overrides table
/// and none is stored yet: the canonical series key.
fn default_key() -> Vec<String> {
    vec![series::STORE.name.into(), series::SKU.name.into()]
}

/// The kinds a planner may choose, in the form's order.
const KINDS: [&str; 5] = [
    "forecast_multiply",
    "forecast_set",
    "order_quantity",
    "order_reject",
    "exclude",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    rows: Vec<RowBody>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RowBody {
    id: String,
    kind: String,
    /// The series, by the lake's key column names (e.g. store and sku).
    key: BTreeMap<String, String>,
    #[serde(default)]
    start_date: Option<NaiveDate>,
    #[serde(default)]
    end_date: Option<NaiveDate>,
    #[serde(default)]
    value: Option<f64>,
    author: String,
    reason: String,
}

impl RowBody {
    /// The row as the checks see it, as row `row` of the request.
    fn raw(&self, row: usize) -> RawRow {
        RawRow {
            file: REQUEST.into(),
            row,
            id: Some(self.id.clone()),
            kind: Some(self.kind.clone()),
            key: self.key.values().map(|v| Some(v.clone())).collect(),
            start_date: self.start_date,
            end_date: self.end_date,
            value: self.value,
            author: Some(self.author.clone()),
            created_at: None,
            reason: Some(self.reason.clone()),
        }
    }

    /// The row's cells by column name, as a file stores them, stamped
    /// written at `created_at`.
    fn cells(&self, created_at: &str) -> Vec<(String, Option<String>)> {
        let text = |v: &str| (!v.is_empty()).then(|| v.to_string());
        let mut out = vec![
            ("id".to_string(), text(&self.id)),
            ("kind".to_string(), text(&self.kind)),
        ];
        out.extend(self.key.iter().map(|(k, v)| (k.clone(), text(v))));
        out.extend([
            ("start_date".into(), self.start_date.map(|d| d.to_string())),
            ("end_date".into(), self.end_date.map(|d| d.to_string())),
            ("value".into(), self.value.map(|v| v.to_string())),
            ("author".into(), text(&self.author)),
            (CREATED_AT.into(), Some(created_at.to_string())),
            ("reason".into(), text(&self.reason)),
        ]);
        out
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/dags/{dag_id}/overrides",
            get(api_get).post(api_post),
        )
        .route(
            "/api/v1/dags/{dag_id}/overrides/{override_id}",
            put(change::api_put).delete(change::api_delete),
        )
        .route("/dags/{dag_id}/overrides", get(page))
}

/// The DAG's declared `overrides` table, and the key columns the DAG's
/// tasks read it by (`series_key:`), if one reads it.
fn table(app: &AppState, id: &str) -> Result<(Table, Option<Vec<String>>), WebError> {
    let e = super::dags::entry(app, id)?;
    let dag = e
        .dag
        .ok_or_else(|| WebError::Conflict(format!("DAG `{id}` does not validate")))?;
    let table =
        dag.tables.get("overrides").cloned().ok_or_else(|| {
            WebError::NotFound(format!("DAG `{id}` declares no `overrides` table"))
        })?;
    let keys = dag
        .tasks
        .iter()
        .filter_map(|t| t.runner.overrides_read())
        .find(|r| r.table == table.name)
        .map(|r| r.key_names);
    Ok((table, keys))
}

/// One stored override as the API and the page show it.
#[derive(Debug, Serialize)]
struct Listed {
    id: Option<String>,
    kind: Option<String>,
    key: BTreeMap<String, String>,
    start_date: Option<NaiveDate>,
    end_date: Option<NaiveDate>,
    value: Option<f64>,
    author: Option<String>,
    /// When it was written (`None` for a planner's file without the column).
    created_at: Option<String>,
    reason: Option<String>,
    /// Where it is stored: the file and its 1-based data row.
    file: String,
    row: usize,
    /// Who withdrew it, when and why (withdrawn rows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    withdrawn_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    withdrawn_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    withdrawn_reason: Option<String>,
}

impl From<Stored> for Listed {
    fn from(s: Stored) -> Self {
        let r = s.row;
        let w = s.withdrawn.unwrap_or_default();
        Listed {
            key: s
                .key_names
                .into_iter()
                .zip(r.key)
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect(),
            id: r.id,
            kind: r.kind,
            start_date: r.start_date,
            end_date: r.end_date,
            value: r.value,
            author: r.author,
            created_at: r.created_at,
            reason: r.reason,
            file: r.file,
            row: r.row,
            withdrawn_by: w.by,
            withdrawn_at: w.at,
            withdrawn_reason: w.reason,
        }
    }
}

/// The stored rows as listed: those in force, then the withdrawn ones.
fn listed(rows: Vec<Stored>) -> (Vec<Listed>, Vec<Listed>) {
    let (gone, live): (Vec<Stored>, Vec<Stored>) =
        rows.into_iter().partition(|s| s.withdrawn.is_some());
    (
        live.into_iter().map(Listed::from).collect(),
        gone.into_iter().map(Listed::from).collect(),
    )
}

async fn stored(app: &AppState, table: &Table) -> Result<Vec<Stored>, WebError> {
    crate::tasks::overrides::stored(app.lake()?, table)
        .await
        .map_err(|e| WebError::Lake(e.to_string()))
}

async fn api_get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, WebError> {
    let (table, _) = table(&app, &id)?;
    let (rows, withdrawn) = listed(stored(&app, &table).await?);
    Ok(Json(serde_json::json!({
        "dag_id": id,
        "total_entries": rows.len(),
        "overrides": rows,
        "withdrawn": withdrawn,
    })))
}

/// The overrides page: the stored rows and a form for one more.
async fn page(
    State(app): State<AppState>,
    Path(id): Path<String>,
    session: Option<Extension<SessionInfo>>,
) -> Result<Html<String>, WebError> {
    let (table, read_by) = table(&app, &id)?;
    let rows = stored(&app, &table).await?;
    let key_names: Vec<String> = read_by
        .or_else(|| rows.last().map(|s| s.key_names.clone()))
        .unwrap_or_else(default_key);
    let (rows, withdrawn) = listed(rows);
    super::pages::page(
        &app,
        session.as_deref(),
        "overrides.html",
        minijinja::context! {
            title => format!("overrides · {id}"),
            dag_id => id,
            key_names => key_names,
            kinds => KINDS,
            rows => minijinja::Value::from(minijinja::value::Serde(&rows)),
            withdrawn => minijinja::Value::from(minijinja::value::Serde(&withdrawn)),
        },
    )
}

async fn api_post(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<Body>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), WebError> {
    let Json(body) = body?;
    let (table, _) = table(&app, &id)?;
    let Some(first) = body.rows.first() else {
        return Err(WebError::BadRequest("no rows".into()));
    };
    let key_names: Vec<String> = first.key.keys().cloned().collect();
    let mut raw = Vec::with_capacity(body.rows.len());
    for (i, r) in body.rows.iter().enumerate() {
        if r.key.keys().ne(key_names.iter()) {
            return Err(WebError::BadRequest(format!(
                "row {}: key names {:?} differ from the first row's {:?}",
                i + 1,
                r.key.keys().collect::<Vec<_>>(),
                key_names
            )));
        }
        raw.push(r.raw(i + 1));
    }
    let others = in_force(stored(&app, &table).await?, |_| true);
    check_against(others, &key_names, raw)?;
    let csv = to_csv(&key_names, &body.rows, &change::now())
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let lake = app.lake()?;
    let name = format!("api-{}.csv", Utc::now().format("%Y%m%dT%H%M%S%.6fZ"));
    let path = object_store::path::Path::from_iter(
        crate::lake::table_location(&table.path)
            .parts()
            .chain(std::iter::once(name.as_str().into())),
    );
    lake.store()
        .put(&path, PutPayload::from(csv))
        .await
        .map_err(|e| WebError::Lake(format!("writing {}: {e}", lake.describe(&path))))?;
    tracing::info!(dag = %id, rows = body.rows.len(), file = %lake.describe(&path), "overrides stored");
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "dag_id": id,
            "rows": body.rows.len(),
            "file": lake.describe(&path),
        })),
    ))
}

/// The file name of the request's rows in their messages.
const REQUEST: &str = "request";

/// The stored rows in force (not withdrawn) that `keep` keeps.
fn in_force(rows: Vec<Stored>, keep: impl Fn(&Stored) -> bool) -> Vec<Stored> {
    rows.into_iter()
        .filter(|s| s.withdrawn.is_none() && keep(s))
        .collect()
}

/// Checks the request's rows `raw` as the run will, after `stored`: the
/// stored rows go first, so a new row repeating a stored id or overlapping
/// a stored override is the one refused; only the request's rows are
/// reported, all in one 400.
fn check_against(
    stored: Vec<Stored>,
    key_names: &[String],
    raw: Vec<RawRow>,
) -> Result<(), WebError> {
    let mut all: Vec<RawRow> = stored.into_iter().map(|s| rekey(s, key_names)).collect();
    all.extend(raw);
    let bad: Vec<String> = overrides::check_rows(&all)
        .into_iter()
        .filter(|r| r.file == REQUEST)
        .map(|r| r.to_string())
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(WebError::BadRequest(bad.join("; ")))
    }
}

/// A stored row with its key in the order of `key_names` (a file keyed by
/// other columns leaves them empty, and the check refuses it, unreported).
fn rekey(s: Stored, key_names: &[String]) -> RawRow {
    let mut row = s.row;
    let by_name: BTreeMap<&str, Option<String>> = s
        .key_names
        .iter()
        .map(String::as_str)
        .zip(std::mem::take(&mut row.key))
        .collect();
    row.key = key_names
        .iter()
        .map(|k| by_name.get(k.as_str()).cloned().flatten())
        .collect();
    row
}

fn to_csv(key_names: &[String], rows: &[RowBody], created_at: &str) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["id".to_string(), "kind".to_string()];
    header.extend(key_names.iter().cloned());
    header.extend(
        [
            "start_date",
            "end_date",
            "value",
            "author",
            CREATED_AT,
            "reason",
        ]
        .map(String::from),
    );
    w.write_record(&header)?;
    for r in rows {
        let mut rec = vec![r.id.clone(), r.kind.clone()];
        rec.extend(r.key.values().cloned());
        rec.push(r.start_date.map(|d| d.to_string()).unwrap_or_default());
        rec.push(r.end_date.map(|d| d.to_string()).unwrap_or_default());
        rec.push(r.value.map(|v| v.to_string()).unwrap_or_default());
        rec.push(r.author.clone());
        rec.push(created_at.to_string());
        rec.push(r.reason.clone());
        w.write_record(&rec)?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}
