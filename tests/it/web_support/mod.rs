//! A real `restock daemon` (or `restock serve`) with its web server on a
//! free loopback port, and a small HTTP client with a cookie jar of one.
#![allow(dead_code)]

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::{Project, wait_for};

pub struct Server {
    pub child: Child,
    pub log: PathBuf,
    pub base: String,
}

impl Server {
    /// `cmd` is `daemon` or `serve`; `env` is added to the process.
    pub fn start(p: &Project, cmd: &str, env: &[(&str, &str)]) -> Server {
        let n = std::fs::read_dir(p.path()).map(|d| d.count()).unwrap_or(0);
        let log = p.path().join(format!("{cmd}-{n}.log"));
        let mut c = p.restock();
        c.arg(cmd)
            .env("RESTOCK_RELOAD_INTERVAL", "1s")
            .env("RESTOCK_SHUTDOWN_GRACE", "2s");
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("start restock");
        let mut s = Server {
            child,
            log,
            base: String::new(),
        };
        let marker = "web UI and API on http://";
        let addr = wait_for(Duration::from_secs(30), || {
            let text = s.log_text();
            let at = text.find(marker)?;
            let rest = &text[at + marker.len()..];
            Some(rest[..rest.find('/')?].to_string())
        })
        .unwrap_or_else(|| panic!("no web server address in the log:\n{}", s.log_text()));
        s.base = format!("http://{addr}");
        s
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub set_cookie: Option<String>,
    pub location: Option<String>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// An RFC 7807 document with this status.
    pub fn assert_problem(&self, status: u16) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        let j = self.json();
        assert_eq!(j["status"], status, "{j}");
        assert!(j["type"].as_str().is_some_and(|t| !t.is_empty()), "{j}");
        assert!(j["title"].as_str().is_some(), "{j}");
        assert!(j["detail"].as_str().is_some(), "{j}");
    }
}

/// An HTTP client that keeps one session cookie and its CSRF token.
pub struct Client {
    http: reqwest::Client,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
    pub bearer: Option<String>,
}

impl Client {
    pub fn new() -> Self {
        Client {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookie: None,
            csrf: None,
            bearer: None,
        }
    }

    pub async fn send(
        &mut self,
        method: reqwest::Method,
        url: &str,
        body: Option<(&str, String)>,
    ) -> Resp {
        let mut rb = self.http.request(method, url);
        if let Some(c) = &self.cookie {
            rb = rb.header("cookie", c.clone());
        }
        if let Some(t) = &self.csrf {
            rb = rb.header("x-csrf-token", t.clone());
        }
        if let Some(b) = &self.bearer {
            rb = rb.header("authorization", format!("Bearer {b}"));
        }
        if let Some((ct, b)) = body {
            rb = rb.header("content-type", ct).body(b);
        }
        let r = rb.send().await.expect("request");
        let h = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let set_cookie = h("set-cookie");
        if let Some(sc) = &set_cookie {
            if let Some(kv) = sc.split(';').next() {
                self.cookie = Some(kv.to_string());
            }
        }
        Resp {
            status: r.status().as_u16(),
            content_type: h("content-type").unwrap_or_default(),
            location: h("location"),
            set_cookie,
            body: r.text().await.expect("body"),
        }
    }

    pub async fn get(&mut self, url: &str) -> Resp {
        self.send(reqwest::Method::GET, url, None).await
    }

    pub async fn post(&mut self, url: &str, json: serde_json::Value) -> Resp {
        self.send(
            reqwest::Method::POST,
            url,
            Some(("application/json", json.to_string())),
        )
        .await
    }

    /// Open a session on a token-less server and keep its CSRF token.
    pub async fn session(&mut self, base: &str) {
        let r = self.get(&format!("{base}/api/v1/session")).await;
        assert_eq!(r.status, 200, "{r:?}");
        self.csrf = Some(r.json()["csrf_token"].as_str().expect("csrf").to_string());
    }
}

/// A project holding the demo lake (small scale) and the example project
/// that `restock demo` writes, with the main job run for each of `nights`
/// (the first trains, a later one scores the previous forecast). The model
/// is shrunk (one epoch, a small network, a year of history) so the runs
/// stay short; the tasks, tables and columns are the demo DAG's own.
pub fn demo_project(nights: &[&str]) -> Project {
    let p = Project::new();
    std::fs::remove_dir(p.path().join("jobs")).expect("an empty folder");
    let end = nights.last().expect("a night");
    let o = p
        .restock()
        .args(["demo", "--no-run", "--end-date", end])
        .output()
        .expect("demo");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dag = p.path().join("jobs/nightly_inventory.yaml");
    let yaml = std::fs::read_to_string(&dag).expect("demo DAG");
    let small = yaml
        .replace("history_days: 730", "history_days: 365")
        .replace("hidden: 32", "hidden: 8")
        .replace("epochs: 8", "epochs: 1");
    assert_ne!(small, yaml, "the demo DAG's model settings moved");
    std::fs::write(&dag, small).expect("write DAG");
    for night in nights {
        let o = p
            .restock()
            .args(["run", "nightly_inventory", "--date", night])
            .output()
            .expect("run");
        assert!(
            o.status.success(),
            "night {night}:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    p
}
