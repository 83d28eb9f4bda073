//! Helpers of the mail tests: a real SMTP server (aiosmtpd, STARTTLS on a
//! throw-away CA, AUTH) in a Python subprocess, and a parser of what it
//! received (Python's `email` module). See tests/requirements.txt.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use restock::mail::{Security, SmtpConfig};

pub const USER: &str = "planner-bot";
pub const PASSWORD: &str = "s3cret-pass";

fn support(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name)
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

pub struct SmtpServer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Self {
        Self::start_with(port, "")
    }

    /// A server answering the first DATA commands with `data_replies`
    /// (e.g. `451,250,554`), then accepting.
    pub fn start_with(port: u16, data_replies: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new("python3")
            .arg(support("smtp_server.py"))
            .args(["--port", &port.to_string()])
            .arg("--dir")
            .arg(dir.path())
            .args(["--user", USER, "--password", PASSWORD])
            .args(["--data-replies", data_replies])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd and trustme (pip install -r tests/requirements.txt)");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read");
        assert_eq!(line.trim(), "READY", "SMTP server did not start");
        Self { child, port, dir }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// SMTP settings for this server with the given password.
    pub fn config(&self, password: &str) -> SmtpConfig {
        smtp_config(self.port, Some(self.ca_file()), password)
    }

    /// The messages received so far, in order.
    pub fn received(&self) -> Vec<PathBuf> {
        let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir(self.dir.path().join("mail"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .filter_map(|p| {
                        let n = p.file_stem()?.to_str()?.parse().ok()?;
                        Some((n, p))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.into_iter().map(|(_, p)| p).collect()
    }

    /// The envelope the server recorded next to message `eml`.
    pub fn envelope(&self, eml: &Path) -> serde_json::Value {
        let text = std::fs::read_to_string(eml.with_extension("json")).expect("envelope");
        serde_json::from_str(&text).expect("json")
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn smtp_config(port: u16, ca_file: Option<PathBuf>, password: &str) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security: Security::StartTls,
        timeout: Duration::from_secs(10),
        ca_file,
        user: Some(USER.into()),
        password: Some(password.into()),
        attempts: 2,
        backoff: Duration::from_millis(50),
    }
}

/// Parse a received message into JSON (subject, addresses, parts).
pub fn parse(eml: &Path) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(support("parse_mail.py"))
        .arg(eml)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// The parts of a parsed message with this content type.
pub fn parts<'a>(msg: &'a serde_json::Value, content_type: &str) -> Vec<&'a serde_json::Value> {
    msg["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .filter(|p| p["content_type"] == content_type)
        .collect()
}

pub fn decode(part: &serde_json::Value) -> Vec<u8> {
    // Minimal base64 decoder: the tests must not depend on a crate for it.
    let s = part["base64"].as_str().expect("base64");
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => 0,
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().filter(|&&c| c == b'=').count();
        let n = chunk.iter().fold(0u32, |acc, &c| {
            (acc << 6) | if c == b'=' { 0 } else { val(c) }
        });
        let b = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&b[..3 - pad]);
    }
    out
}

/// Wait until `f` holds (servers write files asynchronously).
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
