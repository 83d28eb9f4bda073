//! `restock attempt run`: the worker command a remote executor's job runs.
//! It reads its spec from the lake (or a file, or stdin), runs the one
//! attempt without the run history, writes the log and the result JSON to
//! the lake, and exits with a code that tells success, retryable failure,
//! fatal failure, interruption and a refused spec apart. SIGTERM is
//! handled like SIGINT.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use restock::config::Config;
use restock::lake::Lake;
use restock::worker::{self, spec::ResultState, spec::exit};

#[derive(clap::Subcommand)]
pub enum AttemptCmd {
    /// Run one attempt from its spec.
    Run {
        /// The spec's key in the lake (`_attempts/…/N.spec.json`).
        #[arg(long, conflicts_with = "spec_file")]
        spec: Option<String>,
        /// The spec as a file (`-` for stdin).
        #[arg(long)]
        spec_file: Option<PathBuf>,
        /// The lake the spec key is in (default: the configured lake).
        #[arg(long)]
        lake: Option<String>,
    },
}

pub async fn attempt(config: Config, cmd: AttemptCmd) -> Result<ExitCode> {
    let AttemptCmd::Run {
        spec,
        spec_file,
        lake,
    } = cmd;
    let spec = match (spec, spec_file) {
        (Some(key), _) => {
            let url = lake.unwrap_or_else(|| config.lake.clone());
            let lake = Lake::open(&url).with_context(|| format!("opening lake {url}"))?;
            worker::read_spec(&lake, &key).await
        }
        (None, Some(path)) => {
            read_file(&path).and_then(|b| worker::parse_spec(&path.display().to_string(), &b))
        }
        (None, None) => anyhow::bail!("give --spec KEY (in the lake) or --spec-file PATH"),
    };
    let spec = match spec {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(exit::REFUSED));
        }
    };
    let cancel = CancellationToken::new();
    on_signals(cancel.clone())?;
    match worker::run(&spec, config.clone(), cancel).await {
        Ok(r) => {
            let code = match r.state {
                ResultState::Succeeded => exit::SUCCEEDED,
                ResultState::Interrupted => exit::INTERRUPTED,
                _ if r.retryable => exit::RETRYABLE,
                _ => exit::FATAL,
            };
            if let Some(e) = &r.error {
                eprintln!("attempt {:?}: {e}", r.state);
            }
            Ok(ExitCode::from(code))
        }
        Err(e) => {
            eprintln!("error: {e}");
            // The daemon reads the reason from the lake, not from stdout.
            if let Err(w) = worker::refuse(&spec, &config, &e).await {
                eprintln!("error: could not record the refusal in the lake: {w}");
            }
            Ok(ExitCode::from(exit::REFUSED))
        }
    }
}

fn read_file(path: &std::path::Path) -> Result<Vec<u8>, worker::WorkerError> {
    let mut buf = Vec::new();
    let r = if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut buf).map(|_| ())
    } else {
        std::fs::read(path).map(|b| buf = b)
    };
    r.map_err(|e| worker::WorkerError::ReadSpec(path.display().to_string(), e.to_string()))?;
    Ok(buf)
}

fn on_signals(cancel: CancellationToken) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        cancel.cancel();
    });
    Ok(())
}
