//! The server's one error type and its one rendering: an RFC 7807
//! problem document (`application/problem+json`) with a `type` per kind,
//! the status's title, and a `detail` for people. User faults (4xx) are
//! kept apart from faults of the server (5xx), which are also logged.

use std::net::SocketAddr;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::daemon::ControlError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// No credentials.
    #[error("authentication required: send `Authorization: Bearer <token>` or log in")]
    Unauthorized,
    /// Wrong credentials, or a POST without a valid CSRF token.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("run history: {0}")]
    Store(StoreError),
    #[error("lake: {0}")]
    Lake(String),
    #[error("{0}")]
    Internal(String),
    #[error(
        "refusing to listen on {0} without an API token: set RESTOCK_API_TOKEN, or listen on a loopback address"
    )]
    Insecure(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoRun(id) => WebError::NotFound(format!("no run `{id}`")),
            StoreError::RunExists { .. } => WebError::Conflict(e.to_string()),
            other => WebError::Store(other),
        }
    }
}

impl From<ControlError> for WebError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::NoDag(_) | ControlError::NoRun(_) => WebError::NotFound(e.to_string()),
            ControlError::Conflict(m) => WebError::Conflict(m),
            ControlError::Invalid(m) => WebError::BadRequest(m),
            ControlError::Store(m) => WebError::Internal(format!("run history: {m}")),
            ControlError::Stopping => WebError::Conflict(e.to_string()),
        }
    }
}

/// An RFC 7807 problem document.
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Unauthorized => StatusCode::UNAUTHORIZED,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::Store(_)
            | WebError::Lake(_)
            | WebError::Internal(_)
            | WebError::Insecure(_)
            | WebError::Bind { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            WebError::NotFound(_) => "urn:restock:problem:not-found",
            WebError::BadRequest(_) => "urn:restock:problem:bad-request",
            WebError::Unauthorized => "urn:restock:problem:unauthenticated",
            WebError::Forbidden(_) => "urn:restock:problem:forbidden",
            WebError::Conflict(_) => "urn:restock:problem:conflict",
            _ => "urn:restock:problem:internal",
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            kind: self.kind(),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: self.to_string(),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!("web: {self}");
        }
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(self, WebError::Unauthorized) {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"restock\""),
            );
        }
        resp
    }
}

/// Query rejections (a bad `limit`) become 400 problems too.
impl From<axum::extract::rejection::QueryRejection> for WebError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        WebError::BadRequest(e.body_text())
    }
}

impl From<axum::extract::rejection::JsonRejection> for WebError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        WebError::BadRequest(e.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for WebError {
    fn from(e: axum::extract::rejection::PathRejection) -> Self {
        WebError::NotFound(e.body_text())
    }
}
