//! Secret values: which environment variables are secrets, and masking
//! their values out of everything restock writes to attempt logs.
//!
//! Airflow's secrets masker is the model: a process-wide registry of known
//! secret values, applied to every log line. The registry is filled from
//! the process environment the first time it is used (every variable whose
//! name looks like a secret, see [`is_secret_name`]), and callers may add
//! values that come from elsewhere ([`register`]). Values shorter than
//! [`MIN_LEN`] are not masked: replacing every `ab` in a log would hide
//! more than it protects.

use std::borrow::Cow;
use std::sync::{OnceLock, RwLock};

/// Shorter values are not masked.
pub const MIN_LEN: usize = 4;

/// What a masked value becomes.
pub const MASK: &str = "***";

/// True for environment variable names that hold credentials
/// (`RESTOCK_SMTP_PASSWORD`, `AWS_SECRET_ACCESS_KEY`, `GITHUB_TOKEN` …).
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
        "AUTH",
    ]
    .iter()
    .any(|w| n.contains(w))
}

fn registry() -> &'static RwLock<Vec<String>> {
    static REG: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    REG.get_or_init(|| {
        let mut values: Vec<String> = std::env::vars()
            .filter(|(k, v)| is_secret_name(k) && v.len() >= MIN_LEN)
            .map(|(_, v)| v)
            .collect();
        // Longest first, so a secret containing another is masked whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        RwLock::new(values)
    })
}

/// Add a secret value that does not come from the environment.
pub fn register(value: &str) {
    if value.len() < MIN_LEN {
        return;
    }
    let mut reg = match registry().write() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if !reg.iter().any(|v| v == value) {
        reg.push(value.to_string());
        reg.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }
}

/// `text` with every known secret value replaced by [`MASK`].
pub fn mask(text: &str) -> Cow<'_, str> {
    let reg = match registry().read() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if !reg.iter().any(|v| text.contains(v.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for v in reg.iter() {
        if out.contains(v.as_str()) {
            out = out.replace(v.as_str(), MASK);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_masking() {
        assert!(is_secret_name("RESTOCK_SMTP_PASSWORD"));
        assert!(is_secret_name("AWS_SECRET_ACCESS_KEY"));
        assert!(is_secret_name("aws_session_token"));
        assert!(!is_secret_name("AWS_ACCESS_KEY_ID"));
        assert!(!is_secret_name("PATH"));
        register("hunter2-long-secret");
        register("hunter2");
        register("ab");
        assert_eq!(
            mask("pw=hunter2-long-secret and hunter2, ab"),
            "pw=*** and ***, ab"
        );
        assert!(matches!(mask("nothing here"), Cow::Borrowed(_)));
    }
}
