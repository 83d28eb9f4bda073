//! `restock serve` and the web server of `restock daemon`: the same UI
//! and API, with or without a scheduler behind them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use restock::config::Config;
use restock::daemon::{self, ControlHandle, Shared};
use restock::web::{self, AppState, ReadPool, WebConfig};

/// Where to listen (shared by `daemon` and `serve`).
#[derive(clap::Args, Debug, Clone)]
pub struct ListenArgs {
    /// Address of the web UI, API and /metrics. Any address other than
    /// loopback needs RESTOCK_API_TOKEN.
    #[arg(long, env = "RESTOCK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}

impl ListenArgs {
    pub fn web_config(&self) -> WebConfig {
        WebConfig {
            listen: self.listen,
            token: std::env::var("RESTOCK_API_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
        }
    }
}

/// Bind, then serve in the background until the returned token fires.
pub async fn start(
    config: &Config,
    listen: &ListenArgs,
    shared: Arc<Shared>,
    control: Option<ControlHandle>,
) -> Result<(CancellationToken, tokio::task::JoinHandle<()>)> {
    let wc = listen.web_config();
    let listener = web::bind(&wc).await?;
    let addr = listener.local_addr().context("web server address")?;
    let pool = ReadPool::open(&config.state, 4)
        .with_context(|| format!("opening run history {}", config.state.display()))?;
    let state = AppState::new(config.clone(), pool, shared, control, wc.token.clone())?;
    eprintln!("restock: web UI and API on http://{addr}/");
    tracing::info!(listen = %addr, "web server listening");
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = web::serve(listener, state, s).await {
            tracing::error!("{e}");
        }
    });
    Ok((stop, task))
}

/// `restock serve`: the UI and API over the history, without scheduling.
pub async fn serve(
    mut config: Config,
    jobs: Option<PathBuf>,
    listen: ListenArgs,
) -> Result<ExitCode> {
    if let Some(j) = jobs {
        config.jobs = j;
    }
    let shared = Arc::new(Shared::default());
    let (stop, server) = start(&config, &listen, shared.clone(), None).await?;
    let watcher = tokio::spawn(web::watch_dags(config.clone(), shared, stop.clone()));
    wait_for_signal().await;
    stop.cancel();
    let _ = server.await;
    let _ = watcher.await;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// The daemon's link to its web server.
pub fn link() -> (daemon::DaemonLink, ControlHandle) {
    daemon::link()
}
