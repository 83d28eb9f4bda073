//! The web server of the real `restock daemon` over real HTTP: every API
//! route, paging limits, RFC 7807 errors, CSRF, escaping, path traversal,
//! the actions (trigger, backfill, pause, cancel, clear, rerun failed) and
//! the OpenAPI document against the routes that exist.

use crate::common;
mod metrics;
mod overrides;
mod planning;
use crate::web_support;

use chrono::{Duration as ChronoDuration, TimeZone, Utc};
use serde_json::json;

use common::Project;
use restock::store::{self, NewRun, RunType, State, Store};
use web_support::{Client, Server};

const GOOD: &str = r#"id: good
description: "Nightly <b>restock</b>"
tasks:
  - id: extract
    kind: command
    command: ["sh", "-c", "echo '<script>alert(1)</script>'; echo '{\"note\": \"<script>x</script>\"}'"]
  - id: load
    kind: command
    depends_on: [extract]
    command: "true"
"#;

const FLAKY: &str = r#"id: flaky
tasks:
  - id: first
    kind: command
    command: "true"
  - id: maybe
    kind: command
    depends_on: [first]
    command: ["sh", "-c", "test -f ok"]
  - id: after
    kind: command
    depends_on: [maybe]
    command: "true"
"#;

const SLOW: &str = r#"id: slow
tasks:
  - id: sleep
    kind: command
    command: "sleep 30"
"#;

/// Records a run of `dag_id` for the day from `start`; its id.
fn day_run(store: &Store, dag_id: &str, start: chrono::DateTime<Utc>, run_type: RunType) -> String {
    store
        .with(|c| {
            store::create_run(
                c,
                &NewRun {
                    dag_id: dag_id.into(),
                    ds: start.format("%Y-%m-%d").to_string(),
                    start,
                    end: start + ChronoDuration::days(1),
                    run_type,
                    force: false,
                },
                Utc::now(),
            )
        })
        .expect("run")
        .run_id
}

/// `n` finished runs of `good`, one per day before 2026-11-01.
fn seed(p: &Project, n: i64) {
    let store = Store::open(&p.state()).expect("store");
    let day0 = Utc
        .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .expect("t");
    for i in 0..n {
        let start = day0 - ChronoDuration::days(i + 1);
        let run_id = day_run(&store, "good", start, RunType::Scheduled);
        let st = if i % 10 == 0 {
            State::Failed
        } else {
            State::Succeeded
        };
        store
            .with(|c| store::set_run_state(c, &run_id, st, Utc::now()))
            .expect("state");
    }
}

async fn wait_run(c: &mut Client, s: &Server, run_id: &str, want: &str) -> serde_json::Value {
    let url = s.url(&format!("/api/v1/runs/{run_id}"));
    let end = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let j = c.get(&url).await.json();
        if j["state"] == want {
            return j;
        }
        if std::time::Instant::now() > end {
            panic!("run {run_id} never {want}: {j}\n{}", s.log_text());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn api_routes_paging_problems_and_escaping() {
    let p = Project::new();
    p.write_dag("good.yaml", GOOD);
    p.write_dag(
        "broken.yaml",
        "id: broken\ntasks:\n  - id: a\n    kind: nope\n",
    );
    seed(&p, 130);
    let s = Server::start(&p, "daemon", &[]);
    let mut c = Client::new();

    // DAG list: the broken file is listed with file:line errors.
    let r = c.get(&s.url("/api/v1/dags")).await;
    assert_eq!(r.status, 200, "{r:?}");
    let j = r.json();
    assert_eq!(j["total_entries"], 2, "{j}");
    let broken = &j["dags"][0];
    assert_eq!(broken["dag_id"], "broken");
    let err = broken["errors"][0].as_str().expect("error");
    assert!(err.contains("broken.yaml:4:"), "{err}");
    let good = &j["dags"][1];
    assert_eq!(good["recent_runs"].as_array().expect("runs").len(), 14);
    let r = c.get(&s.url("/api/v1/dags?limit=1&offset=1")).await;
    assert_eq!(r.json()["dags"][0]["dag_id"], "good");

    // Paging: the page size is capped, total_entries counts everything.
    let r = c.get(&s.url("/api/v1/dags/good/runs?limit=1000")).await;
    let j = r.json();
    assert_eq!(j["total_entries"], 130);
    assert_eq!(j["dag_runs"].as_array().expect("runs").len(), 100);
    assert_eq!(j["dag_runs"][0]["ds"], "2026-10-31", "newest first");
    let r = c
        .get(&s.url("/api/v1/dags/good/runs?limit=25&offset=120"))
        .await;
    assert_eq!(r.json()["dag_runs"].as_array().expect("runs").len(), 10);
    let r = c.get(&s.url("/api/v1/dags/good/runs?state=failed")).await;
    assert_eq!(r.json()["total_entries"], 13);

    // Problems.
    c.get(&s.url("/api/v1/dags/good/runs?limit=abc"))
        .await
        .assert_problem(400);
    c.get(&s.url("/api/v1/dags/good/runs?state=bogus"))
        .await
        .assert_problem(400);
    c.get(&s.url("/api/v1/dags/nope")).await.assert_problem(404);
    c.get(&s.url("/api/v1/runs/nope")).await.assert_problem(404);
    c.get(&s.url("/api/v1/nothing/here"))
        .await
        .assert_problem(404);
    c.get(&s.url("/api/v1/dags/nope/runs"))
        .await
        .assert_problem(404);

    // A POST without a session and CSRF token is refused, and so is one
    // with a wrong token or from another origin.
    let trigger = s.url("/api/v1/dags/good/runs");
    c.post(&trigger, json!({})).await.assert_problem(403);
    c.session(&s.base).await;
    let good_csrf = c.csrf.clone();
    c.csrf = Some("0".repeat(64));
    c.post(&trigger, json!({})).await.assert_problem(403);
    c.csrf = good_csrf;
    c.post(&trigger, json!({"logical_date": "2026-11-20", "nope": 1}))
        .await
        .assert_problem(400);

    // Trigger, watch it finish, read its tasks, tries and log.
    let r = c
        .post(&trigger, json!({"logical_date": "2026-11-20"}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let run_id = r.json()["dag_run_id"].as_str().expect("id").to_string();
    c.post(&trigger, json!({"logical_date": "2026-11-20"}))
        .await
        .assert_problem(409);
    wait_run(&mut c, &s, &run_id, "succeeded").await;
    let j = c
        .get(&s.url(&format!("/api/v1/runs/{run_id}/tasks")))
        .await
        .json();
    assert_eq!(j["total_entries"], 2);
    let extract = &j["task_instances"][0];
    assert_eq!(extract["task_id"], "extract");
    assert_eq!(extract["state"], "succeeded");
    assert_eq!(extract["try_number"], 1);
    assert_eq!(extract["executor"], "local");
    let j = c
        .get(&s.url(&format!("/api/v1/runs/{run_id}/tasks/extract/tries")))
        .await
        .json();
    assert_eq!(j["tries"][0]["state"], "succeeded", "{j}");
    let log_url = s.url(&format!("/api/v1/runs/{run_id}/tasks/extract/tries/1/log"));
    let j = c.get(&log_url).await.json();
    assert!(
        j["content"]
            .as_str()
            .expect("content")
            .contains("<script>alert(1)</script>"),
        "{j}"
    );
    assert_eq!(j["eof"], true);
    let j2 = c.get(&format!("{log_url}?offset=3&limit=5")).await.json();
    assert_eq!(j2["offset"], 3);
    assert_eq!(j2["next_offset"], 8);
    assert_eq!(j2["eof"], false);
    c.get(&s.url(&format!("/api/v1/runs/{run_id}/tasks/extract/tries/9/log")))
        .await
        .assert_problem(404);

    // Escaping: task output and the description show as text.
    let html = c.get(&s.url(&format!("/runs/{run_id}"))).await;
    assert_eq!(html.status, 200, "{}", html.body);
    assert!(
        html.body.contains("&lt;script&gt;x&lt;&#x2f;script&gt;")
            || html.body.contains("&lt;script&gt;x&lt;/script&gt;"),
        "{}",
        html.body
    );
    assert!(!html.body.contains("<script>x</script>"));
    let list = c.get(&s.url("/")).await;
    assert!(
        list.body
            .contains("Nightly &lt;b&gt;restock&lt;&#x2f;b&gt;")
            || list.body.contains("Nightly &lt;b&gt;restock&lt;/b&gt;"),
        "{}",
        list.body
    );

    // Traversal: ids that are not in the history read nothing, and a
    // recorded path outside the logs folder is not served.
    for bad in [
        "/api/v1/runs/..%2F..%2Fetc/tasks/extract/tries/1/log",
        "/api/v1/runs/%2Fetc%2Fpasswd/tasks/x/tries/1/log",
        format!("/api/v1/runs/{run_id}/tasks/..%2F..%2F..%2Fetc%2Fpasswd/tries/1/log").as_str(),
        "/runs/..%2F..%2Fetc%2Fpasswd/tasks/x/tries/1",
    ] {
        let r = c.get(&s.url(bad)).await;
        assert_eq!(r.status, 404, "{bad}: {r:?}");
        assert!(!r.body.contains("root:"), "{bad}");
    }
    let st = Store::open(&p.state()).expect("store");
    st.with(|c| {
        c.execute(
            "UPDATE task_attempts SET log_path = '/etc/passwd' WHERE run_id = ?1 AND task_id = 'load'",
            [&run_id],
        )?;
        Ok(())
    })
    .expect("update");
    let r = c
        .get(&s.url(&format!("/api/v1/runs/{run_id}/tasks/load/tries/1/log")))
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert!(!r.body.contains("root:"));

    // Pause is persisted in the history.
    let r = c
        .post(
            &s.url("/api/v1/dags/good/pause"),
            json!({"is_paused": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        c.get(&s.url("/api/v1/dags/good")).await.json()["is_paused"],
        true
    );
    assert_eq!(
        p.query("SELECT paused FROM dag_pauses WHERE dag_id = 'good'"),
        vec![vec!["1".to_string()]]
    );
    let j = c.get(&s.url("/api/v1/dags/good")).await.json();
    assert_eq!(j["tasks"][1]["upstream"][0], "extract", "{j}");

    // The grid: runs × tasks.
    let g = c.get(&s.url("/api/v1/dags/good/grid?limit=3")).await.json();
    assert_eq!(g["tasks"], json!(["extract", "load"]));
    assert_eq!(g["runs"].as_array().expect("runs").len(), 3);
    assert_eq!(
        g["runs"][2]["dag_run_id"],
        run_id.as_str(),
        "newest last: {g}"
    );
    assert_eq!(g["cells"][2], json!(["succeeded", "succeeded"]));
    assert_eq!(g["cells"][0], json!([null, null]));
}

#[tokio::test(flavor = "multi_thread")]
async fn actions_backfill_cancel_clear_and_rerun_failed() {
    let p = Project::new();
    p.write_dag("flaky.yaml", FLAKY);
    p.write_dag("slow.yaml", SLOW);
    let s = Server::start(&p, "daemon", &[]);
    let mut c = Client::new();
    c.session(&s.base).await;

    // Backfill three days; a second backfill over them adds nothing.
    let r = c
        .post(
            &s.url("/api/v1/dags/flaky/backfill"),
            json!({"from": "2026-11-01", "to": "2026-11-03"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let ids: Vec<String> = r.json()["dag_run_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    c.post(
        &s.url("/api/v1/dags/flaky/backfill"),
        json!({"from": "2026-11-03", "to": "2026-11-01"}),
    )
    .await
    .assert_problem(400);
    for id in &ids {
        wait_run(&mut c, &s, id, "failed").await;
    }
    let j = c.get(&s.url("/api/v1/dags/flaky/runs")).await.json();
    assert_eq!(j["dag_runs"][0]["run_type"], "backfill");

    // Rerun failed: `maybe` and `after` run again (try 2 for maybe);
    // `first` is kept.
    std::fs::write(p.path().join("ok"), "").expect("ok file");
    let run = &ids[0];
    let r = c
        .post(
            &s.url(&format!("/api/v1/runs/{run}/rerun_failed")),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let cleared = r.json()["cleared"].clone();
    assert_eq!(cleared, json!(["maybe", "after"]));
    wait_run(&mut c, &s, run, "succeeded").await;
    let tasks = c
        .get(&s.url(&format!("/api/v1/runs/{run}/tasks")))
        .await
        .json();
    let tries: Vec<i64> = tasks["task_instances"]
        .as_array()
        .expect("tis")
        .iter()
        .map(|t| t["try_number"].as_i64().expect("try"))
        .collect();
    assert_eq!(tries, vec![1, 2, 1], "{tasks}");
    c.post(
        &s.url(&format!("/api/v1/runs/{run}/rerun_failed")),
        json!({}),
    )
    .await
    .assert_problem(409);

    // Clear one task with its downstream.
    let r = c
        .post(
            &s.url(&format!("/api/v1/runs/{run}/clear")),
            json!({"task_id": "maybe", "downstream": true}),
        )
        .await;
    assert_eq!(r.json()["cleared"], json!(["maybe", "after"]), "{r:?}");
    wait_run(&mut c, &s, run, "succeeded").await;
    let tasks = c
        .get(&s.url(&format!("/api/v1/runs/{run}/tasks")))
        .await
        .json();
    assert_eq!(tasks["task_instances"][1]["try_number"], 3, "{tasks}");
    assert_eq!(tasks["task_instances"][0]["try_number"], 1, "{tasks}");
    c.post(
        &s.url(&format!("/api/v1/runs/{run}/clear")),
        json!({"task_id": "nope"}),
    )
    .await
    .assert_problem(404);

    // Cancel a running run: it ends failed, its attempt interrupted.
    let r = c
        .post(
            &s.url("/api/v1/dags/slow/runs"),
            json!({"logical_date": "2026-11-05"}),
        )
        .await;
    let slow = r.json()["dag_run_id"].as_str().expect("id").to_string();
    wait_run(&mut c, &s, &slow, "running").await;
    c.post(
        &s.url(&format!("/api/v1/runs/{slow}/clear")),
        json!({"task_id": "sleep"}),
    )
    .await
    .assert_problem(409);
    let r = c
        .post(&s.url(&format!("/api/v1/runs/{slow}/cancel")), json!({}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    wait_run(&mut c, &s, &slow, "failed").await;
    c.post(&s.url(&format!("/api/v1/runs/{slow}/cancel")), json!({}))
        .await
        .assert_problem(409);
}

#[tokio::test(flavor = "multi_thread")]
async fn non_loopback_needs_a_token_and_checks_it() {
    let p = Project::new();
    p.write_dag("good.yaml", GOOD);
    // Without a token it refuses to start.
    let out = p
        .restock()
        .arg("serve")
        .env("RESTOCK_LISTEN", "0.0.0.0:0")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without an API token"), "{err}");

    let token = "s3cr3t-token-value";
    let s = Server::start(
        &p,
        "daemon",
        &[
            ("RESTOCK_LISTEN", "0.0.0.0:0"),
            ("RESTOCK_API_TOKEN", token),
        ],
    );
    let base = format!("http://127.0.0.1:{}", s.port());
    let mut c = Client::new();
    let r = c.get(&format!("{base}/api/v1/dags")).await;
    r.assert_problem(401);
    c.get(&format!("{base}/metrics")).await.assert_problem(401);
    c.bearer = Some("wrong".into());
    c.get(&format!("{base}/api/v1/dags"))
        .await
        .assert_problem(403);
    c.bearer = Some(token.into());
    let r = c.get(&format!("{base}/api/v1/dags")).await;
    assert_eq!(r.status, 200);
    assert!(!r.body.contains(token));
    // The bearer token needs no CSRF token (a browser never sends it).
    let r = c
        .post(
            &format!("{base}/api/v1/dags/good/pause"),
            json!({"is_paused": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");

    // The UI: a page redirects to the login form, a wrong token is
    // refused, the right one sets an HttpOnly SameSite=Strict cookie.
    let mut b = Client::new();
    let r = b.get(&format!("{base}/dags/good")).await;
    assert_eq!(r.status, 303, "{r:?}");
    assert!(
        r.location
            .as_deref()
            .is_some_and(|l| l.starts_with("/login"))
    );
    let form = b.get(&format!("{base}/login")).await;
    let csrf = form
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("csrf in form")
        .to_string();
    let login = |tok: &str, csrf: &str| {
        Some((
            "application/x-www-form-urlencoded",
            format!("token={tok}&csrf={csrf}&next=%2Fdags%2Fgood"),
        ))
    };
    let r = b
        .send(
            reqwest::Method::POST,
            &format!("{base}/login"),
            login("nope", &csrf),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = b
        .send(
            reqwest::Method::POST,
            &format!("{base}/login"),
            login(token, "bad"),
        )
        .await;
    assert_eq!(r.status, 403, "a login without the form's CSRF token");
    let r = b
        .send(
            reqwest::Method::POST,
            &format!("{base}/login"),
            login(token, &csrf),
        )
        .await;
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.location.as_deref(), Some("/dags/good"));
    let cookie = r.set_cookie.clone().expect("cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let page = b.get(&format!("{base}/dags/good")).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains(token));
    // A POST with the session but without its CSRF token is refused.
    b.post(
        &format!("{base}/api/v1/dags/good/pause"),
        json!({"is_paused": true}),
    )
    .await
    .assert_problem(403);
    let session_csrf = page
        .body
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("csrf meta")
        .to_string();
    b.csrf = Some(session_csrf);
    let r = b
        .post(
            &format!("{base}/api/v1/dags/good/pause"),
            json!({"is_paused": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_document_matches_the_routes() {
    let p = Project::new();
    p.write_dag("good.yaml", GOOD);
    let s = Server::start(&p, "serve", &[]);
    let mut c = Client::new();
    let doc = c.get(&s.url("/api/v1/openapi.json")).await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: std::collections::BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .expect("ops")
                .keys()
                .map(|m| (m.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    // The routes the source declares under /api/v1, with their methods.
    let mut declared = std::collections::BTreeSet::new();
    let mut files = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/web"
    ))];
    while let Some(d) = dirs.pop() {
        for f in std::fs::read_dir(d).expect("src") {
            let path = f.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(files.iter().any(|f| f.ends_with("planning/mod.rs")));
    for f in files {
        let text = std::fs::read_to_string(f).expect("read");
        for chunk in text.split(".route(").skip(1) {
            let Some(path) = chunk.split('"').nth(1) else {
                continue;
            };
            if !path.starts_with("/api/v1") {
                continue;
            }
            let call = &chunk[..chunk.find(")\n").unwrap_or(chunk.len())];
            for (needle, m) in [
                ("get(", "GET"),
                ("post(", "POST"),
                ("put(", "PUT"),
                ("delete(", "DELETE"),
            ] {
                if call.contains(needle) {
                    declared.insert((m.to_string(), path.to_string()));
                }
            }
        }
    }
    assert_eq!(documented, declared, "openapi.json and the router differ");
    // Every documented route answers (a 404 from a handler names the
    // missing thing; the router's own 404 says "no such page").
    c.session(&s.base).await;
    for (m, path) in &documented {
        let url = s.url(
            &path
                .replace("{dag_id}", "good")
                .replace("{run_id}", "x")
                .replace("{task_id}", "t")
                .replace("{try_number}", "1")
                .replace("{store}", "s")
                .replace("{sku}", "k"),
        );
        let r = match m.as_str() {
            "GET" => c.get(&url).await,
            "POST" => c.post(&url, json!({})).await,
            other => {
                let method = reqwest::Method::from_bytes(other.as_bytes()).expect("method");
                let body = Some(("application/json", "{}".to_string()));
                c.send(method, &url, body).await
            }
        };
        assert_ne!(r.status, 405, "{m} {path}: {r:?}");
        assert!(!r.body.contains("no such page"), "{m} {path}: {r:?}");
    }
}

/// `/metrics` parsed by prometheus_client's parser, checked against the
/// run history.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_and_match_the_history() {
    let p = Project::new();
    p.write_dag("flaky.yaml", FLAKY);
    let pending = p.path().join("outbox/pending");
    std::fs::create_dir_all(&pending).expect("outbox");
    std::fs::write(pending.join("a_2026-11-01.eml"), "x").expect("eml");
    std::fs::write(pending.join("a_2026-11-01.json"), "{}").expect("sidecar");
    let s = Server::start(&p, "daemon", &[]);
    let mut c = Client::new();
    c.session(&s.base).await;
    let r = c
        .post(
            &s.url("/api/v1/dags/flaky/backfill"),
            json!({"from": "2026-11-01", "to": "2026-11-02"}),
        )
        .await;
    for id in r.json()["dag_run_ids"].as_array().expect("ids") {
        wait_run(&mut c, &s, id.as_str().expect("id"), "failed").await;
    }
    // The aggregate is reused for 2 s; wait it out.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let text = c.get(&s.url("/metrics")).await;
    assert!(
        text.content_type.starts_with("text/plain; version=0.0.4"),
        "{text:?}"
    );
    let mut py = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/parse_metrics.py"
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    py.stdin
        .take()
        .expect("stdin")
        .write_all(text.body.as_bytes())
        .expect("write");
    let out = py.wait_with_output().expect("parse");
    assert!(out.status.success(), "parser failed on:\n{}", text.body);
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        parsed["types"]["restock_task_duration_seconds"],
        "histogram"
    );
    let samples = parsed["samples"].as_array().expect("samples").clone();
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        samples.iter().find_map(|s| {
            let ok = s[0] == name
                && labels.iter().all(|(k, v)| s[1][*k] == *v)
                && s[1].as_object().map(|o| o.len()) == Some(labels.len());
            ok.then(|| s[2].as_f64()).flatten()
        })
    };
    let db = |sql: &str| -> f64 { p.query(sql)[0][0].parse().expect("number") };
    assert_eq!(
        value(
            "restock_dag_runs",
            &[("dag_id", "flaky"), ("state", "failed")]
        ),
        Some(db(
            "SELECT COUNT(*) FROM dag_runs WHERE dag_id = 'flaky' AND state = 'failed'"
        ))
    );
    for (task, state) in [("first", "succeeded"), ("maybe", "failed")] {
        assert_eq!(
            value(
                "restock_task_attempts",
                &[("dag_id", "flaky"), ("task_id", task), ("state", state)]
            ),
            Some(db(&format!(
                "SELECT COUNT(*) FROM task_attempts WHERE task_id = '{task}' AND state = '{state}'"
            ))),
            "{task} {state}"
        );
    }
    let finished =
        db("SELECT COUNT(*) FROM task_attempts WHERE task_id = 'first' AND ended_at IS NOT NULL");
    assert_eq!(
        value(
            "restock_task_duration_seconds_count",
            &[("dag_id", "flaky"), ("task_id", "first")]
        ),
        Some(finished)
    );
    assert_eq!(
        value(
            "restock_task_duration_seconds_bucket",
            &[("dag_id", "flaky"), ("task_id", "first"), ("le", "+Inf")]
        ),
        Some(finished)
    );
    let beat = value("restock_scheduler_heartbeat_seconds", &[]).expect("heartbeat");
    assert!((0.0..5.0).contains(&beat), "{beat}");
    assert_eq!(value("restock_mail_outbox_pending", &[]), Some(1.0));
    assert_eq!(
        value("restock_dag_paused", &[("dag_id", "flaky")]),
        Some(0.0)
    );
    assert_eq!(
        value("restock_dag_runs_queued", &[("dag_id", "flaky")]),
        Some(0.0)
    );
}
