//! Delivery of built messages: SMTP with retries, the outbox folder, and
//! the record that keeps mailing idempotent.
//!
//! * No SMTP server configured: the message is written to the outbox
//!   folder as `<dag>_<ds>.eml` (renamed into place whole; a forced resend
//!   adds a timestamp) and counts as delivered.
//! * SMTP: transient failures (4xx replies, refused or timed-out
//!   connections) are retried with doubling backoff; permanent ones (5xx,
//!   a rejected login, TLS failures) are not. A message that could not be
//!   delivered waits in `<outbox>/pending/` as `<dag>_<ds>.eml` with a JSON
//!   sidecar (error, attempts, times) until [`Mailer::resend_pending`]
//!   delivers it.
//! * One message per (DAG, run date): a delivered message is recorded in
//!   `sent_mail`; another is only sent when forced.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};

use super::config::{Security, SmtpConfig};
use super::message::{Built, MessageError};
use super::sent::{self, SentMail};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The server could not be reached or answered 4xx on every attempt.
    #[error(
        "SMTP server {server} unavailable after {attempts} attempt(s): {message}; the message waits in {} (`restock mail resend` delivers it)",
        pending.display()
    )]
    Transient {
        server: String,
        attempts: u32,
        message: String,
        pending: PathBuf,
    },
    #[error(
        "SMTP server {server} rejected the login of user `{user}`: {message}; check RESTOCK_SMTP_USER and RESTOCK_SMTP_PASSWORD. The message is kept in {}",
        pending.display()
    )]
    AuthRejected {
        server: String,
        user: String,
        message: String,
        pending: PathBuf,
    },
    #[error("SMTP server {server} refused the message: {message}; it is kept in {}", pending.display())]
    Rejected {
        server: String,
        message: String,
        pending: PathBuf,
    },
    #[error("TLS with SMTP server {server} failed: {message}; the message is kept in {}", pending.display())]
    Tls {
        server: String,
        message: String,
        pending: PathBuf,
    },
    #[error("SMTP CA certificate {}: {message}", path.display())]
    Ca { path: PathBuf, message: String },
    #[error("no SMTP server configured (mail.smtp.host or RESTOCK_SMTP_HOST); pending messages stay in {}", outbox.display())]
    NoSmtp { outbox: PathBuf },
    #[error("outbox {}: {source}", path.display())]
    Outbox {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("outbox file {}: {message}", path.display())]
    OutboxFile { path: PathBuf, message: String },
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl MailError {
    /// Whether trying again later may succeed without a change of config.
    pub fn retryable(&self) -> bool {
        matches!(self, MailError::Transient { .. })
    }
}

/// How a message left restock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Smtp,
    Outbox,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Smtp => "smtp",
            Transport::Outbox => "outbox",
        }
    }
}

/// Which report a message is: mailing is idempotent per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailKey {
    pub dag_id: String,
    pub ds: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub transport: Transport,
    pub message_id: String,
    pub recipients: Vec<String>,
    pub attempts: u32,
    /// The `.eml` file when delivered to the outbox.
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered(Delivered),
    /// Already mailed for this key (and not forced).
    Skipped(SentMail),
}

/// The sidecar of a message waiting in `<outbox>/pending/`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    pub dag_id: String,
    pub ds: String,
    pub message_id: String,
    pub from: Option<String>,
    pub to: Vec<String>,
    pub attempts: u32,
    pub error: String,
    pub queued_at: String,
    pub last_attempt_at: String,
    pub forced: bool,
}

/// What [`Mailer::resend_pending`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResendSummary {
    /// Message-IDs delivered and removed from the outbox.
    pub delivered: Vec<String>,
    /// Message-IDs still pending, with the error of this try.
    pub failed: Vec<(String, String)>,
}

enum Failure {
    Transient(String),
    Auth(String),
    Rejected(String),
    Tls(String),
}

fn classify(e: &lettre::transport::smtp::Error) -> Failure {
    let text = e.to_string();
    if e.is_permanent() {
        let code = e.status().map(|c| c.to_string()).unwrap_or_default();
        if matches!(code.as_str(), "530" | "534" | "535" | "538") {
            return Failure::Auth(text);
        }
        return Failure::Rejected(text);
    }
    if e.is_tls() {
        return Failure::Tls(text);
    }
    // 4xx replies, refused or reset connections, timeouts.
    Failure::Transient(text)
}

/// Sends reports; cheap to clone.
#[derive(Debug, Clone)]
pub struct Mailer {
    smtp: Option<SmtpConfig>,
    outbox: PathBuf,
    store: Option<Store>,
}

fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Mailer {
    /// `smtp: None` delivers to the outbox folder. `store: None` turns the
    /// idempotence record off (every send delivers).
    pub fn new(smtp: Option<SmtpConfig>, outbox: PathBuf, store: Option<Store>) -> Self {
        Self {
            smtp,
            outbox,
            store,
        }
    }

    /// The mailer a process configuration describes: SMTP when a host is
    /// configured (else the outbox), the record in the state database.
    /// `restock mail resend` is `Mailer::from_config(&cfg)?.resend_pending()`.
    pub fn from_config(config: &crate::config::Config) -> Result<Self, StoreError> {
        Ok(Self::new(
            config.mail.as_ref().and_then(|m| m.smtp.clone()),
            config.outbox.clone(),
            Some(Store::open(&config.state)?),
        ))
    }

    pub fn pending_dir(&self) -> PathBuf {
        self.outbox.join("pending")
    }

    fn pending_paths(&self, key: &MailKey) -> (PathBuf, PathBuf) {
        let stem = format!("{}_{}", safe_name(&key.dag_id), safe_name(&key.ds));
        let dir = self.pending_dir();
        (
            dir.join(format!("{stem}.eml")),
            dir.join(format!("{stem}.json")),
        )
    }

    fn server(&self, smtp: &SmtpConfig) -> String {
        format!("{}:{}", smtp.host, smtp.port)
    }

    async fn store_call<T, F>(&self, f: F) -> Result<Option<T>, MailError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        match &self.store {
            Some(s) => Ok(Some(s.call(f).await?)),
            None => Ok(None),
        }
    }

    /// The message already delivered for `key`, if any.
    pub async fn already_sent(&self, key: &MailKey) -> Result<Option<SentMail>, MailError> {
        let (d, ds) = (key.dag_id.clone(), key.ds.clone());
        Ok(self
            .store_call(move |c| sent::last_sent(c, &d, &ds))
            .await?
            .flatten())
    }

    async fn record(
        &self,
        key: &MailKey,
        message_id: &str,
        transport: Transport,
        recipients: &[String],
        forced: bool,
    ) -> Result<(), MailError> {
        let (d, ds, id, r) = (
            key.dag_id.clone(),
            key.ds.clone(),
            message_id.to_string(),
            recipients.to_vec(),
        );
        self.store_call(move |c| {
            sent::record_sent(c, &d, &ds, &id, transport.as_str(), &r, forced)
        })
        .await?;
        Ok(())
    }

    fn transport(
        &self,
        smtp: &SmtpConfig,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
                .port(smtp.port)
                .timeout(Some(smtp.timeout));
        if smtp.security != Security::None {
            let mut params = TlsParameters::builder(smtp.host.clone());
            if let Some(path) = &smtp.ca_file {
                let ca = |message: String| MailError::Ca {
                    path: path.clone(),
                    message,
                };
                let pem = std::fs::read(path).map_err(|e| ca(e.to_string()))?;
                let cert = Certificate::from_pem(&pem).map_err(|e| ca(e.to_string()))?;
                params = params.add_root_certificate(cert);
            }
            let params = params.build_rustls().map_err(|e| MailError::Tls {
                server: self.server(smtp),
                message: e.to_string(),
                pending: self.pending_dir(),
            })?;
            builder = builder.tls(match smtp.security {
                Security::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        if let (Some(user), Some(password)) = (&smtp.user, &smtp.password) {
            builder = builder
                .credentials(Credentials::new(user.clone(), password.clone()))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        Ok(builder.build())
    }

    /// Try up to `attempts` times; returns the attempts used.
    async fn send_with_retry(
        &self,
        smtp: &SmtpConfig,
        envelope: &Envelope,
        raw: &[u8],
    ) -> Result<u32, (Failure, u32)> {
        let transport = match self.transport(smtp) {
            Ok(t) => t,
            Err(e) => return Err((Failure::Tls(e.to_string()), 0)),
        };
        let mut delay = smtp.backoff;
        let mut attempt = 1;
        loop {
            // lettre's timeout covers single commands; a server that
            // accepts and never answers is bounded by this deadline.
            let deadline = smtp.timeout.saturating_mul(4);
            let result = tokio::time::timeout(deadline, transport.send_raw(envelope, raw))
                .await
                .map_err(|_| format!("no answer within {}", humantime::format_duration(deadline)));
            match result {
                Ok(Ok(_)) => return Ok(attempt),
                Err(elapsed) => {
                    tracing::warn!(server = %self.server(smtp), attempt, error = %elapsed, "mail delivery timed out");
                    if attempt >= smtp.attempts {
                        return Err((Failure::Transient(elapsed), attempt));
                    }
                }
                Ok(Err(e)) => {
                    let failure = classify(&e);
                    let transient = matches!(failure, Failure::Transient(_));
                    tracing::warn!(
                        server = %self.server(smtp),
                        attempt,
                        transient,
                        error = %e,
                        "mail delivery failed"
                    );
                    if !transient || attempt >= smtp.attempts {
                        return Err((failure, attempt));
                    }
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(300));
            attempt += 1;
        }
    }

    /// Deliver `built` for `key` unless it was already mailed (`force`
    /// mails again).
    pub async fn deliver(
        &self,
        key: &MailKey,
        built: Built,
        force: bool,
    ) -> Result<Outcome, MailError> {
        if !force {
            if let Some(prev) = self.already_sent(key).await? {
                return Ok(Outcome::Skipped(prev));
            }
        }
        let Some(smtp) = self.smtp.clone() else {
            return self.deliver_to_outbox(key, built, force).await;
        };
        let envelope = built.message.envelope().clone();
        let raw = built.message.formatted();
        match self.send_with_retry(&smtp, &envelope, &raw).await {
            Ok(attempts) => {
                self.record(
                    key,
                    &built.message_id,
                    Transport::Smtp,
                    &built.recipients,
                    force,
                )
                .await?;
                // A successful send supersedes an older pending copy.
                let (eml, json) = self.pending_paths(key);
                let _ = tokio::fs::remove_file(&eml).await;
                let _ = tokio::fs::remove_file(&json).await;
                Ok(Outcome::Delivered(Delivered {
                    transport: Transport::Smtp,
                    message_id: built.message_id,
                    recipients: built.recipients,
                    attempts,
                    path: None,
                }))
            }
            Err((failure, attempts)) => {
                let error = match &failure {
                    Failure::Transient(m)
                    | Failure::Auth(m)
                    | Failure::Rejected(m)
                    | Failure::Tls(m) => m.clone(),
                };
                let now = crate::store::ts(Utc::now());
                let pending = Pending {
                    dag_id: key.dag_id.clone(),
                    ds: key.ds.clone(),
                    message_id: built.message_id.clone(),
                    from: envelope.from().map(|a| a.to_string()),
                    to: envelope.to().iter().map(|a| a.to_string()).collect(),
                    attempts,
                    error: error.clone(),
                    queued_at: now.clone(),
                    last_attempt_at: now,
                    forced: force,
                };
                let (eml, json) = self.pending_paths(key);
                self.write_pending(&eml, &raw, &json, &pending).await?;
                let server = self.server(&smtp);
                Err(match failure {
                    Failure::Transient(message) => MailError::Transient {
                        server,
                        attempts,
                        message,
                        pending: eml,
                    },
                    Failure::Auth(message) => MailError::AuthRejected {
                        server,
                        user: smtp.user.clone().unwrap_or_default(),
                        message,
                        pending: eml,
                    },
                    Failure::Rejected(message) => MailError::Rejected {
                        server,
                        message,
                        pending: eml,
                    },
                    Failure::Tls(message) => MailError::Tls {
                        server,
                        message,
                        pending: eml,
                    },
                })
            }
        }
    }

    async fn deliver_to_outbox(
        &self,
        key: &MailKey,
        built: Built,
        force: bool,
    ) -> Result<Outcome, MailError> {
        private_dir(&self.outbox)
            .await
            .map_err(|source| MailError::Outbox {
                path: self.outbox.clone(),
                source,
            })?;
        // One name per DAG and date, written whole and renamed into place:
        // a process killed after the rename and before the record below
        // writes the same file again on its next try, never a second mail.
        // A forced resend is a new message and gets a name of its own.
        let stem = format!("{}_{}", safe_name(&key.dag_id), safe_name(&key.ds));
        let name = if force {
            format!("{stem}.{}.eml", Utc::now().format("%Y%m%dT%H%M%S%.6fZ"))
        } else {
            format!("{stem}.eml")
        };
        let path = self.outbox.join(&name);
        let tmp = self.outbox.join(format!(".{name}.tmp"));
        let raw = built.message.formatted();
        let written = async {
            private_write(&tmp, &raw).await?;
            tokio::fs::rename(&tmp, &path).await
        };
        written.await.map_err(|e| MailError::OutboxFile {
            path: path.clone(),
            message: e.to_string(),
        })?;
        self.record(
            key,
            &built.message_id,
            Transport::Outbox,
            &built.recipients,
            force,
        )
        .await?;
        Ok(Outcome::Delivered(Delivered {
            transport: Transport::Outbox,
            message_id: built.message_id,
            recipients: built.recipients,
            attempts: 1,
            path: Some(path),
        }))
    }

    async fn write_pending(
        &self,
        eml: &Path,
        raw: &[u8],
        json: &Path,
        pending: &Pending,
    ) -> Result<(), MailError> {
        let dir = self.pending_dir();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| MailError::Outbox { path, source }
        };
        private_dir(&dir).await.map_err(io(&dir))?;
        let text = serde_json::to_vec_pretty(pending).map_err(|e| MailError::OutboxFile {
            path: json.to_path_buf(),
            message: e.to_string(),
        })?;
        // The message first: a sidecar always has its message.
        private_write(eml, raw).await.map_err(io(eml))?;
        private_write(json, &text).await.map_err(io(json))?;
        Ok(())
    }

    /// The messages waiting in the outbox, oldest first.
    pub async fn pending(&self) -> Result<Vec<(PathBuf, Pending)>, MailError> {
        let dir = self.pending_dir();
        let mut out = Vec::new();
        let mut rd = match tokio::fs::read_dir(&dir).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(source) => return Err(MailError::Outbox { path: dir, source }),
        };
        while let Some(entry) = rd.next_entry().await.map_err(|source| MailError::Outbox {
            path: dir.clone(),
            source,
        })? {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = tokio::fs::read(&path)
                    .await
                    .map_err(|source| MailError::Outbox {
                        path: path.clone(),
                        source,
                    })?;
                let p: Pending =
                    serde_json::from_slice(&text).map_err(|e| MailError::OutboxFile {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                out.push((path, p));
            }
        }
        out.sort_by(|a, b| a.1.queued_at.cmp(&b.1.queued_at));
        Ok(out)
    }

    /// Deliver every pending message (the `restock mail resend` command);
    /// each delivered one is recorded and removed from the outbox, each
    /// failure stays with its sidecar updated.
    pub async fn resend_pending(&self) -> Result<ResendSummary, MailError> {
        let Some(smtp) = self.smtp.clone() else {
            return Err(MailError::NoSmtp {
                outbox: self.pending_dir(),
            });
        };
        let mut summary = ResendSummary::default();
        for (json, mut p) in self.pending().await? {
            let eml = json.with_extension("eml");
            let raw = tokio::fs::read(&eml)
                .await
                .map_err(|source| MailError::Outbox {
                    path: eml.clone(),
                    source,
                })?;
            let bad = |message: String| MailError::OutboxFile {
                path: json.clone(),
                message,
            };
            let from = match &p.from {
                Some(f) => Some(
                    f.parse()
                        .map_err(|e: lettre::address::AddressError| bad(e.to_string()))?,
                ),
                None => None,
            };
            let to =
                p.to.iter()
                    .map(|t| t.parse())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e: lettre::address::AddressError| bad(e.to_string()))?;
            let envelope = Envelope::new(from, to).map_err(|e| bad(e.to_string()))?;
            let key = MailKey {
                dag_id: p.dag_id.clone(),
                ds: p.ds.clone(),
            };
            match self.send_with_retry(&smtp, &envelope, &raw).await {
                Ok(_) => {
                    self.record(&key, &p.message_id, Transport::Smtp, &p.to, p.forced)
                        .await?;
                    for f in [&eml, &json] {
                        tokio::fs::remove_file(f)
                            .await
                            .map_err(|source| MailError::Outbox {
                                path: f.to_path_buf(),
                                source,
                            })?;
                    }
                    summary.delivered.push(p.message_id);
                }
                Err((failure, attempts)) => {
                    let (Failure::Transient(m)
                    | Failure::Auth(m)
                    | Failure::Rejected(m)
                    | Failure::Tls(m)) = failure;
                    p.attempts += attempts;
                    p.error = m.clone();
                    p.last_attempt_at = crate::store::ts(Utc::now());
                    let text = serde_json::to_vec_pretty(&p).map_err(|e| bad(e.to_string()))?;
                    tokio::fs::write(&json, text)
                        .await
                        .map_err(|source| MailError::Outbox {
                            path: json.clone(),
                            source,
                        })?;
                    summary.failed.push((p.message_id, m));
                }
            }
        }
        Ok(summary)
    }
}
/// Create `dir` (and its parents) readable by the owner only: reports
/// carry order values and planners' addresses.
async fn private_dir(dir: &Path) -> std::io::Result<()> {
    tokio::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .await
}

/// Write `bytes` to a new owner-only file (replacing an old one).
async fn private_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .await?;
    f.write_all(bytes).await?;
    f.flush().await
}
