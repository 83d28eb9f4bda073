//! Who may do what, decided once in a middleware before any handler.
//!
//! * With an API token (`RESTOCK_API_TOKEN`): the API and `/metrics` want
//!   `Authorization: Bearer <token>` (none: 401, wrong: 403); the UI wants
//!   a session from the login form, which sets an HttpOnly,
//!   SameSite=Strict cookie. Pages without one redirect to `/login`.
//! * Without a token (allowed on loopback only, see `WebConfig::check`),
//!   reads need nothing and a page visit opens a session.
//! * Every POST needs either the bearer token (a header a browser never
//!   adds by itself, so a forged cross-site request cannot carry it) or a
//!   session *and* its CSRF token in `X-CSRF-Token`. A POST whose `Origin`
//!   is not this server is refused as well.
//!
//! Tokens are compared in constant time. Sessions live in memory: a
//! restarted server asks people to log in again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use rand::RngExt;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{AppState, WebError};

const COOKIE: &str = "restock_session";
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
const MAX_SESSIONS: usize = 10_000;

/// `a == b` without a timing side channel on the contents.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[derive(Debug, Clone)]
struct Session {
    csrf: String,
    /// Logged in (always, when the server has no token).
    authed: bool,
    created: Instant,
}

/// The request's session, for pages that embed its CSRF token.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub csrf: String,
}

pub struct Auth {
    token: Option<String>,
    sessions: Mutex<HashMap<String, Session>>,
}

fn random_token() -> String {
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

impl Auth {
    pub fn new(token: Option<String>) -> Self {
        Self {
            token: token.filter(|t| !t.is_empty()),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        match self.sessions.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn session(&self, id: &str) -> Option<Session> {
        let mut all = self.sessions();
        let s = all.get(id)?.clone();
        if s.created.elapsed() > SESSION_TTL {
            all.remove(id);
            return None;
        }
        Some(s)
    }

    /// Open a session; returns its id.
    fn open(&self, authed: bool) -> (String, Session) {
        let mut all = self.sessions();
        if all.len() >= MAX_SESSIONS {
            all.retain(|_, s| s.created.elapsed() <= SESSION_TTL);
            if all.len() >= MAX_SESSIONS {
                if let Some(oldest) = all
                    .iter()
                    .min_by_key(|(_, s)| s.created)
                    .map(|(k, _)| k.clone())
                {
                    all.remove(&oldest);
                }
            }
        }
        let id = random_token();
        let s = Session {
            csrf: random_token(),
            authed,
            created: Instant::now(),
        };
        all.insert(id.clone(), s.clone());
        (id, s)
    }

    fn close(&self, id: &str) {
        self.sessions().remove(id);
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(id: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

enum Bearer {
    None,
    Valid,
    Wrong,
}

fn bearer(auth: &Auth, headers: &HeaderMap) -> Bearer {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Bearer::None;
    };
    let given = v
        .to_str()
        .ok()
        .and_then(|s| s.strip_prefix("Bearer "))
        .unwrap_or("");
    match &auth.token {
        Some(t) if constant_time_eq(given, t) => Bearer::Valid,
        Some(_) => Bearer::Wrong,
        // No token configured: a bearer header proves nothing.
        None => Bearer::None,
    }
}

/// Paths anyone may fetch.
fn public(path: &str) -> bool {
    path == "/login" || path.starts_with("/static/")
}

/// Machine-facing paths (problem documents, never redirects).
fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics"
}

/// A POST's `Origin`, when sent, must be this server.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let bare = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or(origin);
    !host.is_empty() && bare == host
}

/// The middleware in front of every route.
pub async fn guard(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let auth = &app.inner.auth;
    let path = req.uri().path().to_string();
    let reading = matches!(*req.method(), Method::GET | Method::HEAD);
    let bearer = bearer(auth, req.headers());
    if matches!(bearer, Bearer::Wrong) {
        return WebError::Forbidden("wrong API token".into()).into_response();
    }
    let cookie = cookie_value(req.headers());
    let session = cookie.as_deref().and_then(|id| auth.session(id));
    if public(&path) {
        return next.run(req).await;
    }
    let token_ok = matches!(bearer, Bearer::Valid);
    let logged_in = session.as_ref().is_some_and(|s| s.authed);
    if auth.token.is_some() && !token_ok && !logged_in {
        if is_api(&path) {
            return WebError::Unauthorized.into_response();
        }
        let target = format!("/login?next={}", url_escape(&path));
        return Redirect::to(&target).into_response();
    }
    if !reading && !token_ok {
        if !same_origin(req.headers()) {
            return WebError::Forbidden("cross-origin request refused".into()).into_response();
        }
        let sent = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let ok = session
            .as_ref()
            .is_some_and(|s| !sent.is_empty() && constant_time_eq(sent, &s.csrf));
        if !ok {
            return WebError::Forbidden("missing or wrong CSRF token (X-CSRF-Token)".into())
                .into_response();
        }
    }
    // A page (or `/api/v1/session`) opens a session when it has none, so
    // that its buttons can send a CSRF token.
    let wants_session = reading && (!is_api(&path) || path == "/api/v1/session");
    let mut new_cookie = None;
    let info = match session {
        Some(s) => Some(SessionInfo { csrf: s.csrf }),
        None if wants_session && auth.token.is_none() => {
            let (id, s) = auth.open(true);
            new_cookie = Some(id);
            Some(SessionInfo { csrf: s.csrf })
        }
        None => None,
    };
    if let Some(i) = info {
        req.extensions_mut().insert(i);
    }
    let mut resp = next.run(req).await;
    if let Some(id) = new_cookie {
        resp.headers_mut()
            .append(header::SET_COOKIE, set_cookie(&id));
    }
    resp
}

fn url_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/api/v1/session", get(session_info))
}

#[derive(Deserialize)]
struct NextParam {
    next: Option<String>,
}

/// Only local paths: never an open redirect.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => "/".into(),
    }
}

async fn login_form(
    State(app): State<AppState>,
    q: axum::extract::Query<NextParam>,
) -> Result<Response, WebError> {
    // A pre-login session carries the form's CSRF token.
    let (id, s) = app.inner.auth.open(app.inner.auth.token.is_none());
    let html = app.inner.pages.render(
        "login.html",
        minijinja::context! {
            csrf => s.csrf,
            next => safe_next(q.next.as_deref()),
            error => false,
            title => "Log in",
        },
    )?;
    let mut resp = Html(html).into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, set_cookie(&id));
    Ok(resp)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    csrf: String,
    next: Option<String>,
}

async fn login(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    let auth = &app.inner.auth;
    let pre = cookie_value(&headers).and_then(|id| auth.session(&id).map(|s| (id, s)));
    let csrf_ok = pre
        .as_ref()
        .is_some_and(|(_, s)| constant_time_eq(&form.csrf, &s.csrf));
    if !csrf_ok || !same_origin(&headers) {
        return Err(WebError::Forbidden(
            "missing or wrong CSRF token; reload the login page".into(),
        ));
    }
    let token_ok = auth
        .token
        .as_deref()
        .is_none_or(|t| constant_time_eq(&form.token, t));
    if !token_ok {
        let html = app.inner.pages.render(
            "login.html",
            minijinja::context! {
                csrf => pre.as_ref().map(|(_, s)| s.csrf.clone()),
                next => safe_next(form.next.as_deref()),
                error => true,
                title => "Log in",
            },
        )?;
        return Ok((axum::http::StatusCode::FORBIDDEN, Html(html)).into_response());
    }
    // A fresh session id on login (no fixation).
    if let Some((old, _)) = &pre {
        auth.close(old);
    }
    let (id, _) = auth.open(true);
    let mut resp = Redirect::to(&safe_next(form.next.as_deref())).into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, set_cookie(&id));
    Ok(resp)
}

async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie_value(&headers) {
        app.inner.auth.close(&id);
    }
    Redirect::to("/login").into_response()
}

/// The caller's CSRF token (opening a session on a token-less loopback
/// server), for API clients that use a session instead of the token.
async fn session_info(
    info: Option<axum::Extension<SessionInfo>>,
) -> Result<axum::Json<serde_json::Value>, WebError> {
    let Some(axum::Extension(i)) = info else {
        return Err(WebError::Unauthorized);
    };
    Ok(axum::Json(serde_json::json!({ "csrf_token": i.csrf })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
        assert!(!constant_time_eq("", "a"));
    }

    #[test]
    fn redirects_stay_local() {
        assert_eq!(safe_next(Some("/dags/x")), "/dags/x");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
