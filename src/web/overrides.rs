//! `POST /api/v1/dags/{dag_id}/overrides`: planners' overrides through the
//! API. The rows are checked as the run will check them (every field, the
//! kinds, the ranges, repeated ids and overlaps among them; the series are
//! checked by the run, which knows them) and stored as one new CSV file in
//! the DAG's `overrides` table, which the next run applies. A request with
//! any bad row stores nothing and names each bad row.

use std::collections::BTreeMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use object_store::{ObjectStoreExt, PutPayload};
use serde::Deserialize;

use super::{AppState, WebError};
use crate::inventory::overrides::{self, RawRow};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    rows: Vec<RowBody>,
}

#[derive(Debug, Deserialize)]
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

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/dags/{dag_id}/overrides", post(api_post))
}

async fn api_post(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<Body>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), WebError> {
    let Json(body) = body?;
    let e = super::dags::entry(&app, &id)?;
    let dag = e
        .dag
        .ok_or_else(|| WebError::Conflict(format!("DAG `{id}` does not validate")))?;
    let table = dag
        .tables
        .get("overrides")
        .ok_or_else(|| WebError::NotFound(format!("DAG `{id}` declares no `overrides` table")))?;
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
        raw.push(RawRow {
            file: "request".into(),
            row: i + 1,
            id: Some(r.id.clone()),
            kind: Some(r.kind.clone()),
            key: r.key.values().map(|v| Some(v.clone())).collect(),
            start_date: r.start_date,
            end_date: r.end_date,
            value: r.value,
            author: Some(r.author.clone()),
            reason: Some(r.reason.clone()),
        });
    }
    let bad = overrides::check_rows(&raw);
    if !bad.is_empty() {
        let lines: Vec<String> = bad.iter().map(ToString::to_string).collect();
        return Err(WebError::BadRequest(lines.join("; ")));
    }
    let csv = to_csv(&key_names, &body.rows).map_err(|e| WebError::Internal(e.to_string()))?;
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

fn to_csv(key_names: &[String], rows: &[RowBody]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["id".to_string(), "kind".to_string()];
    header.extend(key_names.iter().cloned());
    header.extend(["start_date", "end_date", "value", "author", "reason"].map(String::from));
    w.write_record(&header)?;
    for r in rows {
        let mut rec = vec![r.id.clone(), r.kind.clone()];
        rec.extend(r.key.values().cloned());
        rec.push(r.start_date.map(|d| d.to_string()).unwrap_or_default());
        rec.push(r.end_date.map(|d| d.to_string()).unwrap_or_default());
        rec.push(r.value.map(|v| v.to_string()).unwrap_or_default());
        rec.push(r.author.clone());
        rec.push(r.reason.clone());
        w.write_record(&rec)?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}
