//! Mail configuration: the `mail:` section of `restock.yaml` and its
//! `RESTOCK_*` environment overrides, validated into [`MailConfig`].
//!
//! Owns parsing and validation only (pure: no network, no files read). The
//! SMTP user and password come from the environment alone
//! (`RESTOCK_SMTP_USER`, `RESTOCK_SMTP_PASSWORD`), never from the file.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// What the user wrote under `mail:` (all optional; the environment may
/// fill in what is missing).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMailConfig {
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    pub smtp: Option<RawSmtp>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    pub host: Option<String>,
    pub port: Option<u16>,
    /// `starttls` (default), `tls` or `none`.
    pub security: Option<String>,
    /// Connection and command timeout, e.g. `30s`.
    pub timeout: Option<String>,
    /// Extra PEM root certificate to trust (an internal CA).
    pub ca_file: Option<PathBuf>,
    /// Attempts before a message is left in the outbox (default 3).
    pub attempts: Option<u32>,
    /// First retry delay, doubled on each retry (default `2s`).
    pub backoff: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (required, never optional).
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption; only allowed towards a loopback host.
    None,
}

impl Security {
    fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "starttls" => Some(Self::StartTls),
            "tls" => Some(Self::Tls),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::StartTls => 587,
            Self::Tls => 465,
            Self::None => 25,
        }
    }
}

/// Validated SMTP settings.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub attempts: u32,
    pub backoff: Duration,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("timeout", &self.timeout)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Validated mail settings. `smtp: None` means messages go to the outbox
/// folder instead of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailConfig {
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub smtp: Option<SmtpConfig>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MailConfigError {
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> MailConfigError {
    MailConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// Whether `host` names this machine (`localhost`, 127.0.0.0/8, ::1).
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    h.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn check_address(key: &str, addr: &str) -> Result<(), MailConfigError> {
    addr.parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| invalid(key, format!("invalid address `{addr}`: {e}")))
}

impl MailConfig {
    /// Validate the file section (if any) with the environment read
    /// through `get`. Returns `Ok(None)` when neither the file nor the
    /// environment mentions mail at all.
    pub fn resolve(
        raw: Option<RawMailConfig>,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, MailConfigError> {
        let env_keys = [
            "RESTOCK_MAIL_FROM",
            "RESTOCK_MAIL_TO",
            "RESTOCK_MAIL_CC",
            "RESTOCK_SMTP_HOST",
        ];
        if raw.is_none() && env_keys.iter().all(|k| get(k).is_none()) {
            return Ok(None);
        }
        let raw = raw.unwrap_or_default();
        let from = get("RESTOCK_MAIL_FROM")
            .or(raw.from)
            .unwrap_or_else(|| "restock@localhost".into());
        check_address("mail.from", &from)?;
        let to = get("RESTOCK_MAIL_TO")
            .map(|v| split_list(&v))
            .unwrap_or(raw.to);
        let cc = get("RESTOCK_MAIL_CC")
            .map(|v| split_list(&v))
            .unwrap_or(raw.cc);
        for a in &to {
            check_address("mail.to", a)?;
        }
        for a in &cc {
            check_address("mail.cc", a)?;
        }

        let raw_smtp = raw.smtp.unwrap_or_default();
        let host = get("RESTOCK_SMTP_HOST").or(raw_smtp.host);
        let smtp = match host {
            None => None,
            Some(host) if host.trim().is_empty() => None,
            Some(host) => {
                let security = match get("RESTOCK_SMTP_SECURITY").or(raw_smtp.security) {
                    None => Security::StartTls,
                    Some(s) => Security::parse(&s).ok_or_else(|| {
                        invalid(
                            "mail.smtp.security",
                            format!("`{s}` is not one of starttls, tls, none"),
                        )
                    })?,
                };
                if security == Security::None && !is_loopback(&host) {
                    return Err(invalid(
                        "mail.smtp.security",
                        format!(
                            "`none` sends mail and password in clear text; it is only allowed for a loopback host, not `{host}` (use starttls or tls)"
                        ),
                    ));
                }
                let port = match get("RESTOCK_SMTP_PORT") {
                    Some(p) => p.trim().parse().map_err(|_| {
                        invalid("RESTOCK_SMTP_PORT", format!("`{p}` is not a port number"))
                    })?,
                    None => raw_smtp.port.unwrap_or(security.default_port()),
                };
                let duration = |key: &str, v: Option<String>, default: u64| match v {
                    None => Ok(Duration::from_secs(default)),
                    Some(t) => humantime::parse_duration(t.trim())
                        .map_err(|e| invalid(key, format!("invalid duration `{t}`: {e}"))),
                };
                let timeout = duration(
                    "mail.smtp.timeout",
                    get("RESTOCK_SMTP_TIMEOUT").or(raw_smtp.timeout),
                    30,
                )?;
                let backoff = duration("mail.smtp.backoff", raw_smtp.backoff, 2)?;
                let attempts = raw_smtp.attempts.unwrap_or(3);
                if attempts == 0 {
                    return Err(invalid("mail.smtp.attempts", "must be at least 1"));
                }
                let user = get("RESTOCK_SMTP_USER").filter(|u| !u.is_empty());
                let password = get("RESTOCK_SMTP_PASSWORD");
                if user.is_some() && password.is_none() {
                    return Err(invalid(
                        "RESTOCK_SMTP_PASSWORD",
                        "RESTOCK_SMTP_USER is set but RESTOCK_SMTP_PASSWORD is not",
                    ));
                }
                Some(SmtpConfig {
                    host,
                    port,
                    security,
                    timeout,
                    ca_file: get("RESTOCK_SMTP_CA_FILE")
                        .map(PathBuf::from)
                        .or(raw_smtp.ca_file),
                    user,
                    password,
                    attempts,
                    backoff,
                })
            }
        };
        Ok(Some(Self { from, to, cc, smtp }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(yaml: &str) -> RawMailConfig {
        serde_yaml::from_str(yaml).expect("yaml")
    }

    #[test]
    fn file_values_with_env_overrides() {
        let r = raw("from: r@x.org\nto: [a@x.org]\nsmtp: {host: mail.x.org, timeout: 5s}\n");
        let c = MailConfig::resolve(Some(r), |k| match k {
            "RESTOCK_MAIL_TO" => Some("b@x.org, c@x.org".into()),
            "RESTOCK_SMTP_PORT" => Some("2525".into()),
            "RESTOCK_SMTP_USER" => Some("u".into()),
            "RESTOCK_SMTP_PASSWORD" => Some("p".into()),
            _ => None,
        })
        .expect("valid")
        .expect("some");
        assert_eq!(c.to, vec!["b@x.org", "c@x.org"]);
        let s = c.smtp.expect("smtp");
        assert_eq!(s.port, 2525);
        assert_eq!(s.security, Security::StartTls);
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert_eq!(s.user.as_deref(), Some("u"));
        assert!(!format!("{s:?}").contains("\"p\""));
    }

    #[test]
    fn clear_text_only_towards_loopback() {
        let r = raw("smtp: {host: mail.example.com, security: none}\n");
        let e = MailConfig::resolve(Some(r), |_| None).expect_err("refused");
        assert!(
            e.to_string().contains("only allowed for a loopback host"),
            "{e}"
        );
        let r = raw("smtp: {host: 127.0.0.1, security: none}\n");
        let c = MailConfig::resolve(Some(r), |_| None)
            .expect("ok")
            .expect("some");
        assert_eq!(c.smtp.expect("smtp").port, 25);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        assert!(serde_yaml::from_str::<RawMailConfig>("smtp: {hots: x}\n").is_err());
        let e = MailConfig::resolve(Some(raw("to: [not an address]\n")), |_| None)
            .expect_err("bad address");
        assert!(e.to_string().starts_with("mail.to: invalid address"), "{e}");
        let e = MailConfig::resolve(Some(raw("smtp: {host: h, security: ssl}\n")), |_| None)
            .expect_err("bad security");
        assert!(e.to_string().contains("`ssl` is not one of"), "{e}");
    }

    #[test]
    fn no_section_and_no_env_means_no_mail_config() {
        assert_eq!(MailConfig::resolve(None, |_| None), Ok(None));
        let c = MailConfig::resolve(None, |k| (k == "RESTOCK_MAIL_TO").then(|| "a@x.org".into()))
            .expect("ok")
            .expect("some");
        assert!(c.smtp.is_none(), "no host: outbox delivery");
    }
}
