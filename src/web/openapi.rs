//! The OpenAPI 3.1 document of `/api/v1`, served at
//! `/api/v1/openapi.json`. A test checks it against the routes the server
//! really has, in both directions.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;

/// (method, path, summary, request body schema name or "").
pub const OPERATIONS: &[(&str, &str, &str, &str)] = &[
    (
        "get",
        "/api/v1/dags",
        "List DAGs with their recent runs (paged)",
        "",
    ),
    ("get", "/api/v1/dags/{dag_id}", "One DAG with its tasks", ""),
    (
        "get",
        "/api/v1/dags/{dag_id}/grid",
        "Runs x tasks states (paged, newest runs)",
        "",
    ),
    (
        "post",
        "/api/v1/dags/{dag_id}/pause",
        "Pause or unpause a DAG",
        "Pause",
    ),
    (
        "get",
        "/api/v1/dags/{dag_id}/runs",
        "A DAG's runs, newest first (paged)",
        "",
    ),
    (
        "post",
        "/api/v1/dags/{dag_id}/runs",
        "Trigger a run for a date",
        "Trigger",
    ),
    (
        "post",
        "/api/v1/dags/{dag_id}/backfill",
        "Create runs for a date range",
        "Backfill",
    ),
    (
        "get",
        "/api/v1/dags/{dag_id}/overrides",
        "The planner overrides stored in the DAG's overrides table",
        "",
    ),
    (
        "post",
        "/api/v1/dags/{dag_id}/overrides",
        "Store planner overrides for the DAG's next run",
        "Overrides",
    ),
    (
        "put",
        "/api/v1/dags/{dag_id}/overrides/{override_id}",
        "Replace a stored override with an edited row (the old one is kept, withdrawn)",
        "OverrideRow",
    ),
    (
        "delete",
        "/api/v1/dags/{dag_id}/overrides/{override_id}",
        "Withdraw a stored override (kept in its file with who, when and why)",
        "Withdraw",
    ),
    (
        "get",
        "/api/v1/dags/{dag_id}/planning",
        "The newest planned run: anomalies by severity, the headline and its share of the money at risk, order and held totals",
        "",
    ),
    (
        "get",
        "/api/v1/dags/{dag_id}/planning/anomalies",
        "The run's anomalies in worklist order (paged, by type and severity)",
        "",
    ),
    (
        "get",
        "/api/v1/dags/{dag_id}/planning/orders",
        "The orders to place, largest value first (paged); held lines excluded",
        "",
    ),
    (
        "get",
        "/api/v1/dags/{dag_id}/planning/held",
        "Plan lines held on bad input (paged)",
        "",
    ),
    (
        "get",
        "/api/v1/dags/{dag_id}/planning/skus/{store}/{sku}",
        "One series: history, forecast band, plan lines and anomalies",
        "",
    ),
    ("get", "/api/v1/runs/{run_id}", "One run", ""),
    (
        "get",
        "/api/v1/runs/{run_id}/tasks",
        "A run's task instances",
        "",
    ),
    (
        "get",
        "/api/v1/runs/{run_id}/tasks/{task_id}/tries",
        "A task's attempts in a run",
        "",
    ),
    (
        "get",
        "/api/v1/runs/{run_id}/tasks/{task_id}/tries/{try_number}/log",
        "A chunk of an attempt's log",
        "",
    ),
    (
        "post",
        "/api/v1/runs/{run_id}/cancel",
        "Cancel a running or queued run",
        "",
    ),
    (
        "post",
        "/api/v1/runs/{run_id}/clear",
        "Clear a task (and optionally its downstream) and run it again",
        "Clear",
    ),
    (
        "post",
        "/api/v1/runs/{run_id}/rerun_failed",
        "Run a run's failed tasks again",
        "",
    ),
    ("get", "/api/v1/session", "The caller's CSRF token", ""),
    ("get", "/api/v1/openapi.json", "This document", ""),
];

fn params(path: &str, method: &str) -> Vec<Value> {
    let mut out: Vec<Value> = path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            json!({ "name": name, "in": "path", "required": true,
                    "schema": { "type": if name == "try_number" { "integer" } else { "string" } } })
        })
        .collect();
    let paged = method == "get"
        && ["/dags", "/runs", "/grid", "/anomalies", "/orders", "/held"]
            .iter()
            .any(|end| path.ends_with(end));
    if paged {
        out.push(json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": super::pages::MAX_PAGE, "default": super::pages::DEFAULT_PAGE } }));
        out.push(json!({ "name": "offset", "in": "query", "schema": { "type": "integer", "minimum": 0, "default": 0 } }));
    }
    if path.ends_with("/runs") && method == "get" {
        out.push(json!({ "name": "state", "in": "query", "schema": { "type": "string" } }));
    }
    if path.ends_with("/anomalies") {
        let kinds: Vec<&str> = crate::inventory::monitor::Kind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect();
        out.push(
            json!({ "name": "type", "in": "query", "schema": { "type": "string", "enum": kinds } }),
        );
        out.push(json!({ "name": "severity", "in": "query", "schema": { "type": "string", "enum": ["critical", "warning", "info"] } }));
    }
    if path.ends_with("/log") {
        for (n, d) in [
            ("offset", "Byte offset; the previous chunk's next_offset"),
            ("limit", "Bytes to return (at most 1 MiB)"),
            ("tail", "Return the last N bytes instead"),
        ] {
            out.push(json!({ "name": n, "in": "query", "description": d, "schema": { "type": "integer", "minimum": 0 } }));
        }
    }
    out
}

fn schemas() -> Value {
    json!({
        "Problem": { "type": "object", "description": "RFC 7807 problem document",
            "properties": { "type": {"type": "string"}, "title": {"type": "string"},
                            "status": {"type": "integer"}, "detail": {"type": "string"} } },
        "Pause": { "type": "object", "required": ["is_paused"],
            "properties": { "is_paused": {"type": "boolean"} }, "additionalProperties": false },
        "Trigger": { "type": "object",
            "properties": { "logical_date": {"type": "string", "format": "date"}, "force": {"type": "boolean"} },
            "additionalProperties": false },
        "Backfill": { "type": "object", "required": ["from", "to"],
            "properties": { "from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"} },
            "additionalProperties": false },
        "Overrides": { "type": "object", "required": ["rows"], "additionalProperties": false,
            "properties": { "rows": { "type": "array",
                "items": { "$ref": "#/components/schemas/OverrideRow" } } } },
        "OverrideRow": { "type": "object",
            "required": ["id", "kind", "key", "author", "reason"], "additionalProperties": false,
            "properties": {
                "id": {"type": "string"},
                "kind": {"type": "string", "enum": ["forecast_multiply", "forecast_set", "order_quantity", "order_reject", "exclude"]},
                "key": {"type": "object", "additionalProperties": {"type": "string"}},
                "start_date": {"type": "string", "format": "date"},
                "end_date": {"type": "string", "format": "date"},
                "value": {"type": "number", "minimum": 0},
                "author": {"type": "string"},
                "reason": {"type": "string", "minLength": 1} } },
        "Withdraw": { "type": "object", "required": ["author", "reason"], "additionalProperties": false,
            "properties": { "author": {"type": "string", "minLength": 1},
                            "reason": {"type": "string", "minLength": 1} } },
        "Clear": { "type": "object", "required": ["task_id"],
            "properties": { "task_id": {"type": "string"}, "downstream": {"type": "boolean"} },
            "additionalProperties": false }
    })
}

/// The document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary, body) in OPERATIONS {
        let problem = json!({ "description": "Problem", "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } });
        let mut op = json!({
            "summary": summary,
            "parameters": params(path, method),
            "responses": {
                "200": { "description": "OK", "content": { "application/json": {} } },
                "400": problem.clone(), "401": problem.clone(), "403": problem.clone(),
                "404": problem.clone(), "409": problem,
            },
            "security": [ { "bearer": [] }, { "session": [] } ],
        });
        if !body.is_empty() {
            op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{body}") } } } });
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "restock", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Runs, tasks, logs and actions of the restock scheduler. Errors are RFC 7807 problem documents. POST, PUT and DELETE requests with a session cookie need its CSRF token in X-CSRF-Token." },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "session": { "type": "apiKey", "in": "cookie", "name": "restock_session" }
            }
        }
    })
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(|| async { Json(document()) }))
}
