//! The HTTP server of `restock daemon` and `restock serve`: the web UI,
//! the REST API under `/api/v1` and Prometheus metrics at `/metrics`.
//!
//! One axum [`Router`] is built from one module per resource (`dags`,
//! `runs`, `logs`, `planning`, `metrics`, `openapi`) over one shared
//! [`AppState`]. Handlers return [`WebError`], which `error.rs` turns into
//! RFC 7807 problem documents in one place. `auth.rs` decides who may do
//! what (bearer token, login session, CSRF) before any handler runs.
//!
//! The server only reads the run history (through its own SQLite
//! connections, so a page never waits for the scheduler's writes) and the
//! DAG snapshot the daemon publishes; changes go to the daemon as
//! [`Command`](crate::daemon::Command)s. Without a daemon (`restock
//! serve`) it reloads the DAG files itself and refuses actions that need a
//! scheduler, except pausing, which lives in the history.

mod auth;
mod dags;
mod error;
mod logs;
mod metrics;
mod openapi;
mod overrides;
mod pages;
mod planning;
mod runs;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::daemon::{ControlHandle, DagSet, Shared};
use crate::lake::Lake;
use crate::store::{Store, StoreError};
use crate::tasks::Registry;

pub use auth::{Auth, constant_time_eq};
pub use error::WebError;
pub use openapi::document as openapi_document;

/// Where the server listens and how it authenticates.
#[derive(Clone)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// The API token (`RESTOCK_API_TOKEN`, never from a file).
    pub token: Option<String>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl WebConfig {
    /// A server reachable from other machines must have a token.
    pub fn check(&self) -> Result<(), WebError> {
        if !self.listen.ip().is_loopback() && self.token.is_none() {
            return Err(WebError::Insecure(self.listen));
        }
        Ok(())
    }
}

/// A few connections to the state database for reads, used in turn.
#[derive(Clone)]
pub struct ReadPool {
    stores: Arc<Vec<Store>>,
    next: Arc<AtomicUsize>,
}

impl ReadPool {
    pub fn open(path: &std::path::Path, n: usize) -> Result<Self, StoreError> {
        let stores = (0..n.max(1))
            .map(|_| Store::open(path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            stores: Arc::new(stores),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub fn from_store(store: Store) -> Self {
        Self {
            stores: Arc::new(vec![store]),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Run `f` on the blocking pool with the next connection.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.stores.len();
        self.stores[i].call(f).await
    }
}

/// Everything a handler may use; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: ReadPool,
    shared: Arc<Shared>,
    control: Option<ControlHandle>,
    auth: Auth,
    pages: pages::Pages,
    metrics: metrics::Cache,
    /// The lake the planning pages read; `Err` holds why it did not open.
    lake: Result<Lake, String>,
}

impl AppState {
    /// `control` is the daemon's handle; `None` for `restock serve`.
    pub fn new(
        config: Config,
        store: ReadPool,
        shared: Arc<Shared>,
        control: Option<ControlHandle>,
        token: Option<String>,
    ) -> Result<Self, WebError> {
        let lake = Lake::open(&config.lake).map_err(|e| e.to_string());
        if let Err(e) = &lake {
            tracing::warn!(error = %e, "the planning pages cannot read the lake");
        }
        Ok(Self {
            inner: Arc::new(Inner {
                lake,
                config,
                store,
                shared,
                control,
                auth: Auth::new(token),
                pages: pages::Pages::new()?,
                metrics: metrics::Cache::default(),
            }),
        })
    }

    fn store(&self) -> &ReadPool {
        &self.inner.store
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    fn lake(&self) -> Result<&Lake, WebError> {
        self.inner
            .lake
            .as_ref()
            .map_err(|e| WebError::Lake(e.clone()))
    }

    fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The daemon, or a 409 explaining that this server does not schedule.
    fn control(&self) -> Result<&ControlHandle, WebError> {
        self.inner.control.as_ref().ok_or_else(|| {
            WebError::Conflict(
                "this server does not schedule (restock serve); use the daemon's server".into(),
            )
        })
    }
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(dags::routes())
        .merge(runs::routes())
        .merge(logs::routes())
        .merge(metrics::routes())
        .merge(openapi::routes())
        .merge(planning::routes())
        .merge(overrides::routes())
        .merge(pages::routes())
        .merge(auth::routes())
        .fallback(|| async { WebError::NotFound("no such page".into()) })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .with_state(state)
}

/// Bind `config.listen` (after [`WebConfig::check`]).
pub async fn bind(config: &WebConfig) -> Result<tokio::net::TcpListener, WebError> {
    config.check()?;
    tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| WebError::Bind {
            addr: config.listen,
            source,
        })
}

/// Serve until `shutdown` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> Result<(), WebError> {
    let addr = listener.local_addr().ok();
    tracing::info!(listen = ?addr, "web server listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(|e| WebError::Internal(format!("web server: {e}")))
}

/// For `restock serve`: keep `shared`'s DAG snapshot current by reloading
/// the jobs folder, as the daemon would, until `stop` fires.
pub async fn watch_dags(config: Config, shared: Arc<Shared>, stop: CancellationToken) {
    let registry = Arc::new(Registry::builtin());
    let set = Arc::new(std::sync::Mutex::new(DagSet::new(
        config.jobs.clone(),
        config.root.clone(),
    )));
    let mut first = true;
    let mut iv = tokio::time::interval(config.reload_interval);
    loop {
        tokio::select! {
            _ = iv.tick() => {}
            _ = stop.cancelled() => return,
        }
        let (set, registry, force) = (set.clone(), registry.clone(), first);
        first = false;
        let catalog = tokio::task::spawn_blocking(move || {
            let mut g = match set.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            g.reload(&registry, force);
            g.catalog()
        })
        .await;
        if let Ok(c) = catalog {
            shared.set_catalog(c);
        }
    }
}
