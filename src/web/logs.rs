//! Attempt logs, served in chunks: `GET
//! /api/v1/runs/{run_id}/tasks/{task}/tries/{n}/log?offset=&limit=` returns
//! at most `limit` bytes (64 KiB by default, 1 MiB at most) from `offset`
//! with `next_offset` as the continuation token, or the last `tail` bytes;
//! the page `/runs/{run_id}/tasks/{task}/tries/{n}` pages through it and
//! follows a running attempt. A 50 MB log costs one seek and one read per
//! page.
//!
//! The file is the one the run history names for that attempt, and it
//! must lie inside the logs folder: ids that are not in the history, or a
//! recorded path outside the folder, get 404 and nothing is read.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path as FsPath, PathBuf};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::SessionInfo;
use super::pages::page;
use super::{AppState, WebError};
use crate::store::{self, State as RunState};

pub const DEFAULT_CHUNK: u64 = 64 * 1024;
pub const MAX_CHUNK: u64 = 1024 * 1024;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    offset: Option<u64>,
    limit: Option<u64>,
    /// Return the last `tail` bytes instead (following a running attempt).
    tail: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct LogChunk {
    pub content: String,
    pub offset: u64,
    /// Where the next chunk starts (the continuation token).
    pub next_offset: u64,
    /// The file's size now.
    pub size: u64,
    /// `next_offset` reached the end of what is written so far.
    pub eof: bool,
    /// The attempt is still running, so more may come.
    pub running: bool,
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/runs/{run_id}/tasks/{task_id}/tries/{try_number}/log",
            get(api_log),
        )
        .route(
            "/runs/{run_id}/tasks/{task_id}/tries/{try_number}",
            get(log_page),
        )
}

fn not_found(run_id: &str, task_id: &str, n: i64) -> WebError {
    WebError::NotFound(format!("no try {n} of task `{task_id}` in run `{run_id}`"))
}

/// The attempt's log file, when the history has the attempt and its file
/// lies inside `logs`.
async fn log_file(
    app: &AppState,
    run_id: &str,
    task_id: &str,
    n: i64,
) -> Result<(PathBuf, RunState), WebError> {
    let (rid, tid) = (run_id.to_string(), task_id.to_string());
    let attempt = app
        .store()
        .call(move |c| store::attempt(c, &rid, &tid, n))
        .await?
        .ok_or_else(|| not_found(run_id, task_id, n))?;
    let recorded = attempt
        .log_path
        .ok_or_else(|| WebError::NotFound("this attempt has no log".into()))?;
    let logs = app.config().logs.clone();
    let inside = tokio::task::spawn_blocking(move || contained(&logs, FsPath::new(&recorded)))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    match inside {
        Some(p) => Ok((p, attempt.state)),
        None => Err(WebError::NotFound("the log file is not there".into())),
    }
}

/// `file` resolved, if it exists and lies inside `root`.
fn contained(root: &FsPath, file: &FsPath) -> Option<PathBuf> {
    let root = root.canonicalize().ok()?;
    let file = file.canonicalize().ok()?;
    file.starts_with(&root).then_some(file)
}

/// Read `[offset, offset + limit)`, moved to character boundaries.
pub fn read_chunk(path: &FsPath, offset: u64, limit: u64) -> std::io::Result<(String, u64, u64)> {
    let mut f = std::fs::File::open(path)?;
    let size = f.metadata()?.len();
    let start = offset.min(size);
    f.seek(SeekFrom::Start(start))?;
    let want = limit.min(size - start) as usize;
    let mut buf = vec![0u8; want];
    f.read_exact(&mut buf)?;
    // Skip continuation bytes at the front (a `tail` may start mid-character).
    let lead = buf
        .iter()
        .take(3)
        .take_while(|b| (**b & 0xC0) == 0x80)
        .count();
    // Leave an incomplete character at the end for the next chunk.
    let mut end = buf.len();
    let mut k = end;
    while k > lead && end - k < 4 && (buf[k - 1] & 0xC0) == 0x80 {
        k -= 1;
    }
    if k > lead {
        let need = match buf[k - 1] {
            b if b >= 0xF0 => 4,
            b if b >= 0xE0 => 3,
            b if b >= 0xC0 => 2,
            _ => 1,
        };
        if end - (k - 1) < need {
            end = k - 1;
        }
    }
    let text = String::from_utf8_lossy(&buf[lead..end]).into_owned();
    Ok((text, start + lead as u64, start + end as u64))
}

async fn api_log(
    State(app): State<AppState>,
    Path((run_id, task_id, n)): Path<(String, String, i64)>,
    q: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Json<LogChunk>, WebError> {
    let Query(q) = q?;
    let (path, state) = log_file(&app, &run_id, &task_id, n).await?;
    let limit = q.limit.unwrap_or(DEFAULT_CHUNK).clamp(1, MAX_CHUNK);
    let chunk = tokio::task::spawn_blocking(move || {
        let size = std::fs::metadata(&path)?.len();
        let offset = match q.tail {
            Some(t) => size.saturating_sub(t.min(MAX_CHUNK)),
            None => q.offset.unwrap_or(0),
        };
        let limit = if q.tail.is_some() { MAX_CHUNK } else { limit };
        let (content, offset, next) = read_chunk(&path, offset, limit)?;
        Ok::<_, std::io::Error>(LogChunk {
            content,
            offset,
            next_offset: next,
            size,
            eof: next >= size,
            running: matches!(state, RunState::Running),
        })
    })
    .await
    .map_err(|e| WebError::Internal(e.to_string()))?
    .map_err(|e| WebError::Internal(format!("reading the log: {e}")))?;
    Ok(Json(chunk))
}

async fn log_page(
    State(app): State<AppState>,
    Path((run_id, task_id, n)): Path<(String, String, i64)>,
    session: Option<Extension<SessionInfo>>,
) -> Result<Html<String>, WebError> {
    let (path, state) = log_file(&app, &run_id, &task_id, n).await?;
    let size = tokio::fs::metadata(&path)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    page(
        &app,
        session.as_deref(),
        "log.html",
        minijinja::context! {
            title => format!("{task_id} try {n}"),
            run_id => run_id, task_id => task_id, try_number => n,
            state => state.as_str(), size => size, chunk => DEFAULT_CHUNK,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_end_on_character_boundaries() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("l.log");
        std::fs::write(&p, "aé€😀z").expect("write");
        // Walk the file in 2-byte requests; every chunk is whole characters
        // and together they are the file.
        let mut off = 0;
        let mut all = String::new();
        loop {
            let (t, start, next) = read_chunk(&p, off, 2).expect("read");
            assert_eq!(start, off);
            if next == off {
                // A character longer than the chunk: ask for more.
                let (t, _, next) = read_chunk(&p, off, 4).expect("read");
                all.push_str(&t);
                off = next;
            } else {
                all.push_str(&t);
                off = next;
            }
            if off >= 11 {
                break;
            }
        }
        assert_eq!(all, "aé€😀z");
        // A tail that starts mid-character skips to the next one.
        let (t, start, _) = read_chunk(&p, 2, 100).expect("read");
        assert_eq!(start, 3);
        assert_eq!(t, "€😀z");
    }

    #[test]
    fn only_files_inside_the_logs_folder() {
        let dir = tempfile::tempdir().expect("tmp");
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).expect("mkdir");
        std::fs::write(logs.join("a.log"), "x").expect("write");
        std::fs::write(dir.path().join("secret"), "x").expect("write");
        assert!(contained(&logs, &logs.join("a.log")).is_some());
        assert!(contained(&logs, &logs.join("../secret")).is_none());
        assert!(contained(&logs, &logs.join("missing.log")).is_none());
    }
}
