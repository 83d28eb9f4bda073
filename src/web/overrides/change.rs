//! Editing and withdrawing one stored override, by id:
//! `PUT /api/v1/dags/{dag_id}/overrides/{override_id}` takes a full row,
//! checked exactly as a posted row is (against every other row in force),
//! and `DELETE` takes who withdraws it and why. Either way the old row
//! stays in its file, marked withdrawn (who, when, why), and the file is
//! republished whole ([`crate::tasks::override_edit`]); an edit's new row
//! follows it in the same file. An id no row in force holds is a 404; one
//! held by two rows (a state the run refuses too) is a 409.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use chrono::{SecondsFormat, Utc};
use serde::Deserialize;

use super::{AppState, RowBody, Stored, WebError, check_against, in_force, stored, table};
use crate::tasks::override_edit::{self, Change, EditError, Marks};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WithdrawBody {
    author: String,
    reason: String,
}

/// The one row in force holding `oid`, among `rows`.
fn find(rows: &[Stored], dag: &str, oid: &str) -> Result<Stored, WebError> {
    let held: Vec<&Stored> = rows
        .iter()
        .filter(|s| s.withdrawn.is_none() && s.row.id.as_deref() == Some(oid))
        .collect();
    match held.as_slice() {
        [] => Err(WebError::NotFound(format!(
            "DAG `{dag}` has no override `{oid}` in force"
        ))),
        [one] => Ok((*one).clone()),
        many => Err(WebError::Conflict(format!(
            "override id {oid} is held by {}; the run applies only the first, so fix the files by hand",
            many.iter()
                .map(|s| format!("{} row {}", s.row.file, s.row.row))
                .collect::<Vec<_>>()
                .join(" and ")
        ))),
    }
}

fn required(field: &str, v: &str) -> Result<(), WebError> {
    if v.trim().is_empty() {
        return Err(WebError::BadRequest(format!(
            "`{field}` is required: say who withdraws the override and why"
        )));
    }
    Ok(())
}

pub(super) fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn publish(
    app: &AppState,
    target: &Stored,
    oid: &str,
    change: Change,
) -> Result<(), WebError> {
    let lake = app.lake()?;
    override_edit::apply(lake, &target.location, target.row.row, oid, change)
        .await
        .map_err(|e| match e {
            EditError::Type { .. } => WebError::BadRequest(e.to_string()),
            EditError::File { .. } => WebError::Conflict(e.to_string()),
            EditError::Read { .. } | EditError::Write { .. } => WebError::Lake(e.to_string()),
        })
}

pub(super) async fn api_delete(
    State(app): State<AppState>,
    Path((id, oid)): Path<(String, String)>,
    body: Result<Json<WithdrawBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, WebError> {
    let Json(body) = body?;
    let (table, _) = table(&app, &id)?;
    let target = find(&stored(&app, &table).await?, &id, &oid)?;
    required("author", &body.author)?;
    required("reason", &body.reason)?;
    let marks = Marks {
        by: body.author.trim().into(),
        at: now(),
        reason: body.reason.trim().into(),
    };
    let at = marks.at.clone();
    publish(&app, &target, &oid, Change::Withdraw(marks)).await?;
    tracing::info!(dag = %id, id = %oid, by = %body.author, file = %target.row.file, "override withdrawn");
    Ok(Json(serde_json::json!({
        "dag_id": id,
        "id": oid,
        "withdrawn_by": body.author.trim(),
        "withdrawn_at": at,
        "withdrawn_reason": body.reason.trim(),
        "file": target.row.file,
    })))
}

pub(super) async fn api_put(
    State(app): State<AppState>,
    Path((id, oid)): Path<(String, String)>,
    body: Result<Json<RowBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, WebError> {
    let Json(row) = body?;
    let (table, _) = table(&app, &id)?;
    let rows = stored(&app, &table).await?;
    let target = find(&rows, &id, &oid)?;
    if row.id != oid {
        return Err(WebError::BadRequest(format!(
            "request row 1: `id` is `{}` but the URL edits override {oid}; an edit keeps the id",
            row.id
        )));
    }
    let mut names: Vec<&String> = target.key_names.iter().collect();
    names.sort();
    if !row.key.keys().eq(names.iter().copied()) {
        return Err(WebError::BadRequest(format!(
            "request row 1: `key` names {:?}, but {} is keyed by {:?}",
            row.key.keys().collect::<Vec<_>>(),
            target.row.file,
            target.key_names
        )));
    }
    let key_names: Vec<String> = row.key.keys().cloned().collect();
    let others = in_force(rows, |s| {
        s.location != target.location || s.row.row != target.row.row
    });
    check_against(others, &key_names, vec![row.raw(1)])?;
    let at = now();
    let change = Change::Replace {
        row: row.cells(&at),
        marks: Marks {
            by: row.author.trim().into(),
            at,
            reason: format!("edited: {}", row.reason.trim()),
        },
    };
    publish(&app, &target, &oid, change).await?;
    tracing::info!(dag = %id, id = %oid, by = %row.author, file = %target.row.file, "override edited");
    Ok(Json(serde_json::json!({
        "dag_id": id,
        "id": oid,
        "file": target.row.file,
        "row": target.row.row + 1,
    })))
}
