//! Server-side HTML: the minijinja templates (compiled into the binary,
//! auto-escaped, so a task that prints `<script>` shows it as text), the
//! small static assets (one stylesheet, one script that polls the JSON
//! API and updates what changed) and the helpers pages share.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use minijinja::Environment;
use serde::Deserialize;

use super::{AppState, WebError};

const TEMPLATES: &[(&str, &str)] = &[
    (
        "layout.html",
        include_str!("../../templates/web/layout.html"),
    ),
    ("dags.html", include_str!("../../templates/web/dags.html")),
    ("dag.html", include_str!("../../templates/web/dag.html")),
    ("run.html", include_str!("../../templates/web/run.html")),
    ("log.html", include_str!("../../templates/web/log.html")),
    ("login.html", include_str!("../../templates/web/login.html")),
    (
        "planning.html",
        include_str!("../../templates/web/planning.html"),
    ),
    ("sku.html", include_str!("../../templates/web/sku.html")),
    (
        "overrides.html",
        include_str!("../../templates/web/overrides.html"),
    ),
];

const STATIC: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/web/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/web/app.css"),
    ),
];

pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    pub fn new() -> Result<Self, WebError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, src) in TEMPLATES {
            env.add_template(name, src)
                .map_err(|e| WebError::Internal(format!("template {name}: {e}")))?;
        }
        Ok(Self { env })
    }

    pub fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, WebError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| WebError::Internal(format!("rendering {name}: {e:#}")))
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/static/{file}", get(asset))
}

async fn asset(Path(file): Path<String>) -> Response {
    match STATIC.iter().find(|(n, _, _)| *n == file) {
        Some((_, mime, body)) => {
            let mut r = (*body).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            r
        }
        None => WebError::NotFound(format!("no static file `{file}`")).into_response(),
    }
}

/// A page: the template with the session's CSRF token added.
pub fn page(
    app: &AppState,
    session: Option<&super::auth::SessionInfo>,
    name: &str,
    ctx: minijinja::Value,
) -> Result<Html<String>, WebError> {
    let csrf = session.map(|s| s.csrf.clone()).unwrap_or_default();
    let ctx = minijinja::context! { csrf => csrf, ..ctx };
    Ok(Html(app.inner.pages.render(name, ctx)?))
}

/// `limit`/`offset` as Airflow's API takes them.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

/// The largest page any list returns.
pub const MAX_PAGE: usize = 100;
pub const DEFAULT_PAGE: usize = 25;

impl Paging {
    /// `(limit, offset)`, the limit clamped to `1..=MAX_PAGE`.
    pub fn get(&self) -> (usize, usize) {
        (
            self.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE),
            self.offset.unwrap_or(0),
        )
    }
}
