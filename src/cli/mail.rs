//! `restock mail resend`: deliver the messages waiting in the outbox
//! (kept there after their last retry failed), and `restock mail pending`
//! to list them.

use std::process::ExitCode;

use anyhow::{Context, Result};

use restock::config::Config;
use restock::mail::Mailer;

#[derive(clap::Subcommand)]
pub enum MailCmd {
    /// Deliver every pending message; exit 1 if any is still pending.
    Resend,
    /// List pending messages and their last error.
    Pending,
}

pub async fn mail(config: Config, cmd: MailCmd) -> Result<ExitCode> {
    let mailer = Mailer::from_config(&config).context("opening the mail outbox")?;
    match cmd {
        MailCmd::Resend => {
            let summary = mailer.resend_pending().await?;
            for id in &summary.delivered {
                println!("delivered {id}");
            }
            for (id, err) in &summary.failed {
                eprintln!("still pending {id}: {err}");
            }
            println!(
                "{} delivered, {} still pending",
                summary.delivered.len(),
                summary.failed.len()
            );
            Ok(if summary.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        MailCmd::Pending => {
            let pending = mailer.pending().await?;
            for (path, p) in &pending {
                println!("{}: {p:?}", path.display());
            }
            println!("{} pending", pending.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}
