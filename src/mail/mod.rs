//! The planners' email report: configuration, the report and its chart,
//! the MIME message, and delivery (SMTP with retries, the outbox, resend,
//! idempotence). The `email` task kind (`tasks::email`) reads the lake
//! tables into a [`Report`] and calls [`send_report`].

pub mod chart;
pub mod config;
pub mod deliver;
pub mod message;
pub mod report;
pub mod sent;

pub use config::{MailConfig, MailConfigError, Security, SmtpConfig};
pub use deliver::{
    Delivered, MailError, MailKey, Mailer, Outcome, Pending, ResendSummary, Transport,
};
pub use message::{Addressing, Built};
pub use report::{
    Anomaly, ForecastPoint, Held, HistoryPoint, Order, RenderOptions, RenderedReport, Report,
    SkuSeries,
};

/// Draw the chart on the blocking pool, then render bodies and CSVs.
pub async fn render_report(
    report: &Report,
    opts: &RenderOptions,
) -> Result<RenderedReport, report::ReportError> {
    let series = report.series.clone();
    let png = tokio::task::spawn_blocking(move || chart::render_png(&series))
        .await
        .map_err(|e| report::ReportError::Chart(e.to_string()))??;
    report.render(opts, png)
}

#[derive(Debug, thiserror::Error)]
pub enum SendReportError {
    #[error(transparent)]
    Report(#[from] report::ReportError),
    #[error(transparent)]
    Message(#[from] message::MessageError),
    #[error(transparent)]
    Mail(#[from] MailError),
}

impl SendReportError {
    pub fn retryable(&self) -> bool {
        matches!(self, SendReportError::Mail(e) if e.retryable())
    }
}

/// Render, build and deliver `report` (skipped when already mailed for its
/// DAG and date, unless `force`).
pub async fn send_report(
    mailer: &Mailer,
    report: &Report,
    opts: &RenderOptions,
    addressing: &Addressing,
    force: bool,
) -> Result<Outcome, SendReportError> {
    let key = MailKey {
        dag_id: report.dag_id.clone(),
        ds: report.ds.clone(),
    };
    if !force {
        if let Some(prev) = mailer.already_sent(&key).await? {
            return Ok(Outcome::Skipped(prev));
        }
    }
    let rendered = render_report(report, opts).await?;
    let id = message::new_message_id(&report.dag_id, &report.ds, &addressing.from);
    let built = message::build(&rendered, addressing, id)?;
    Ok(mailer.deliver(&key, built, force).await?)
}
