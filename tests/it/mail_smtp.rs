//! Mailing the report through a real SMTP server (aiosmtpd in a
//! subprocess) with STARTTLS on a test CA and AUTH: what arrives, retries
//! and the outbox when the server is down, a rejected login, idempotence,
//! and a report at M5 scale through a server with stock RFC limits.

use crate::mail_common;

use mail_common::*;
use restock::mail::message::wire_format_problem;
use restock::mail::report::{Order, sample_report};
use restock::mail::{
    Addressing, MailError, Mailer, Outcome, RenderOptions, SendReportError, Transport, send_report,
};
use restock::store::Store;

fn addressing() -> Addressing {
    Addressing {
        from: "restock@example.com".into(),
        to: vec!["planners@example.com".into(), "buyer@example.com".into()],
        cc: vec!["lead@example.com".into()],
    }
}

struct Scratch {
    dir: tempfile::TempDir,
    store: Store,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("state.db")).expect("store");
        Self { dir, store }
    }

    fn outbox(&self) -> std::path::PathBuf {
        self.dir.path().join("outbox")
    }

    fn pending_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.outbox().join("pending"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_arrives_with_bodies_inline_chart_and_csvs() {
    let server = SmtpServer::start();
    let s = Scratch::new();
    let mailer = Mailer::new(
        Some(server.config(PASSWORD)),
        s.outbox(),
        Some(s.store.clone()),
    );
    let report = sample_report();

    let outcome = send_report(
        &mailer,
        &report,
        &RenderOptions::default(),
        &addressing(),
        false,
    )
    .await
    .expect("sent");
    let Outcome::Delivered(d) = outcome else {
        panic!("expected a delivery, got {outcome:?}");
    };
    assert_eq!(d.transport, Transport::Smtp);
    assert_eq!(d.attempts, 1);

    wait_for("the message", || server.received().len() == 1);
    let eml = &server.received()[0];
    let env = server.envelope(eml);
    assert_eq!(env["tls"], true, "STARTTLS was used");
    assert_eq!(env["user"], USER, "logged in");
    assert_eq!(env["mail_from"], "restock@example.com");
    let mut rcpt: Vec<&str> = env["rcpt_tos"]
        .as_array()
        .expect("rcpt")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    rcpt.sort();
    assert_eq!(
        rcpt,
        [
            "buyer@example.com",
            "lead@example.com",
            "planners@example.com"
        ]
    );

    let msg = parse(eml);
    assert_eq!(
        msg["subject"],
        "[restock] nightly_inventory 2026-11-27: 3 critical, 5 warning anomalies, 12 orders"
    );
    assert_eq!(msg["to"], "planners@example.com, buyer@example.com");
    assert_eq!(msg["cc"], "lead@example.com");
    assert_eq!(msg["message_id"], d.message_id.as_str());

    let types: Vec<&str> = msg["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .filter_map(|p| p["content_type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "multipart/mixed",
            "multipart/alternative",
            "text/plain",
            "multipart/related",
            "text/html",
            "image/png",
            "text/csv",
            "text/csv"
        ]
    );

    let text = parts(&msg, "text/plain")[0]["text"].as_str().expect("text");
    let html = parts(&msg, "text/html")[0]["text"].as_str().expect("html");
    for body in [text, html] {
        assert!(body.contains("3 critical"), "{body}");
        assert!(body.contains("5 warning"), "{body}");
        assert!(body.contains("7,020.00"), "total order value: {body}");
        assert!(body.contains("SKU-2001"), "top anomaly listed: {body}");
    }
    // Numbers in the HTML tables are right-aligned.
    assert!(html.contains("text-align:right"));

    let png = parts(&msg, "image/png");
    assert_eq!(png.len(), 1);
    let bytes = decode(png[0]);
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    assert!(bytes.len() > 5_000, "a real chart, {} bytes", bytes.len());
    assert_eq!(png[0]["disposition"], "inline");
    let cid = png[0]["content_id"]
        .as_str()
        .expect("content id")
        .trim_matches(|c| c == '<' || c == '>');
    assert!(
        html.contains(&format!("src=\"cid:{cid}\"")),
        "HTML references the chart"
    );

    let csvs = parts(&msg, "text/csv");
    let by_name = |name: &str| {
        csvs.iter()
            .find(|p| p["filename"] == name)
            .unwrap_or_else(|| panic!("attachment {name}"))
    };
    let anomalies = String::from_utf8(decode(by_name("anomalies.csv"))).expect("utf8");
    assert_eq!(
        anomalies.lines().next(),
        Some(
            "date,store,sku,type,severity,observed,expected,message,money_at_risk,status,first_seen,reason"
        )
    );
    assert_eq!(anomalies.lines().count(), 1 + report.anomalies.len());
    let orders = String::from_utf8(decode(by_name("reorder_plan.csv"))).expect("utf8");
    assert_eq!(
        orders.lines().next(),
        Some("sku,store,status,qty,order_value,order_by,reason")
    );
    assert_eq!(orders.lines().count(), 1 + report.orders.len());
    assert_eq!(by_name("anomalies.csv")["disposition"], "attachment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_run_date_is_mailed_once_unless_forced() {
    let server = SmtpServer::start();
    let s = Scratch::new();
    let mailer = Mailer::new(
        Some(server.config(PASSWORD)),
        s.outbox(),
        Some(s.store.clone()),
    );
    let report = sample_report();
    let opts = RenderOptions::default();

    let first = send_report(&mailer, &report, &opts, &addressing(), false)
        .await
        .expect("first");
    let Outcome::Delivered(first) = first else {
        panic!("first send delivers");
    };
    let second = send_report(&mailer, &report, &opts, &addressing(), false)
        .await
        .expect("second");
    match second {
        Outcome::Skipped(prev) => {
            assert_eq!(prev.message_id, first.message_id);
            assert_eq!(prev.transport, "smtp");
        }
        other => panic!("second send must be skipped, got {other:?}"),
    }
    wait_for("one message", || server.received().len() == 1);

    // Another date is another message.
    let mut next_day = report.clone();
    next_day.ds = "2026-11-28".into();
    let o = send_report(&mailer, &next_day, &opts, &addressing(), false)
        .await
        .expect("next day");
    assert!(matches!(o, Outcome::Delivered(_)));

    // Forced: mailed again.
    let forced = send_report(&mailer, &report, &opts, &addressing(), true)
        .await
        .expect("forced");
    let Outcome::Delivered(forced) = forced else {
        panic!("forced send delivers");
    };
    assert_ne!(forced.message_id, first.message_id);
    wait_for("three messages", || server.received().len() == 3);
    let n = s
        .store
        .with(|c| restock::mail::sent::count_sent(c, "nightly_inventory", "2026-11-27"))
        .expect("count");
    assert_eq!(n, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_waits_in_outbox_while_server_is_down_and_resend_delivers_it() {
    let port = free_port();
    let s = Scratch::new();
    // The CA only exists once the server runs; trust it via a second
    // mailer built after the start, as the resend command would at its run.
    let down = Mailer::new(
        Some(smtp_config(port, None, PASSWORD)),
        s.outbox(),
        Some(s.store.clone()),
    );
    let report = sample_report();
    let err = send_report(
        &down,
        &report,
        &RenderOptions::default(),
        &addressing(),
        false,
    )
    .await
    .expect_err("server is down");
    assert!(err.retryable(), "{err}");
    let SendReportError::Mail(MailError::Transient {
        attempts, server, ..
    }) = &err
    else {
        panic!("expected a transient failure, got {err:?}");
    };
    assert_eq!(*attempts, 2, "retried once");
    assert_eq!(server, &format!("127.0.0.1:{port}"));
    assert!(err.to_string().contains("restock mail resend"), "{err}");
    assert_eq!(
        s.pending_files(),
        [
            "nightly_inventory_2026-11-27.eml",
            "nightly_inventory_2026-11-27.json"
        ]
    );
    let pending = down.pending().await.expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1.attempts, 2);
    assert!(!pending[0].1.error.is_empty());

    // Not recorded as sent: nothing was delivered.
    let key = restock::mail::MailKey {
        dag_id: "nightly_inventory".into(),
        ds: "2026-11-27".into(),
    };
    assert!(down.already_sent(&key).await.expect("query").is_none());

    let server = SmtpServer::start_on(port);
    let up = Mailer::new(
        Some(server.config(PASSWORD)),
        s.outbox(),
        Some(s.store.clone()),
    );
    let summary = up.resend_pending().await.expect("resend");
    assert_eq!(summary.delivered, [pending[0].1.message_id.clone()]);
    assert!(summary.failed.is_empty());
    assert!(
        s.pending_files().is_empty(),
        "delivered messages leave the outbox"
    );
    wait_for("the resent message", || server.received().len() == 1);
    let msg = parse(&server.received()[0]);
    assert_eq!(msg["message_id"], pending[0].1.message_id.as_str());
    assert!(up.already_sent(&key).await.expect("query").is_some());

    // Nothing left: a second resend delivers nothing.
    let again = up.resend_pending().await.expect("resend");
    assert!(again.delivered.is_empty() && again.failed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_login_names_server_and_user_and_keeps_the_message() {
    let server = SmtpServer::start();
    let s = Scratch::new();
    let mailer = Mailer::new(
        Some(server.config("wrong-password")),
        s.outbox(),
        Some(s.store.clone()),
    );
    let err = send_report(
        &mailer,
        &sample_report(),
        &RenderOptions::default(),
        &addressing(),
        false,
    )
    .await
    .expect_err("login rejected");
    assert!(!err.retryable(), "a wrong password is not retried: {err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("SMTP server 127.0.0.1:{}", server.port)),
        "{text}"
    );
    assert!(
        text.contains(&format!("rejected the login of user `{USER}`")),
        "{text}"
    );
    assert!(
        !text.contains("wrong-password"),
        "never print the password: {text}"
    );
    let pending = mailer.pending().await.expect("pending");
    assert_eq!(pending.len(), 1, "nothing lost");
    assert_eq!(pending[0].1.attempts, 1, "permanent errors are not retried");
    assert!(server.received().is_empty());

    // With the right password, resend delivers what was kept.
    let fixed = Mailer::new(
        Some(server.config(PASSWORD)),
        s.outbox(),
        Some(s.store.clone()),
    );
    let summary = fixed.resend_pending().await.expect("resend");
    assert_eq!(summary.delivered.len(), 1);
    wait_for("the message", || server.received().len() == 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_reply_is_retried_and_a_5xx_reply_is_not() {
    let server = SmtpServer::start_with(free_port(), "451,250,554");
    let s = Scratch::new();
    let mailer = Mailer::new(
        Some(server.config(PASSWORD)),
        s.outbox(),
        Some(s.store.clone()),
    );
    let o = send_report(
        &mailer,
        &sample_report(),
        &RenderOptions::default(),
        &addressing(),
        false,
    )
    .await
    .expect("delivered on the second attempt");
    let Outcome::Delivered(d) = o else {
        panic!("expected a delivery, got {o:?}");
    };
    assert_eq!(d.attempts, 2, "451 was retried");

    // The 554 that follows is final: one attempt, message kept.
    let mut next_day = sample_report();
    next_day.ds = "2026-11-28".into();
    let err = send_report(
        &mailer,
        &next_day,
        &RenderOptions::default(),
        &addressing(),
        false,
    )
    .await
    .expect_err("refused");
    assert!(!err.retryable(), "{err}");
    assert!(
        matches!(err, SendReportError::Mail(MailError::Rejected { .. })),
        "{err:?}"
    );
    let pending = mailer.pending().await.expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1.attempts, 1);
    assert!(pending[0].1.error.contains("554"), "{}", pending[0].1.error);
    wait_for("one message", || server.received().len() == 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_and_is_retried() {
    // Accepts connections and stays silent.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in listener.incoming().take(2) {
            conns.push(c);
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    });
    let s = Scratch::new();
    let mut cfg = smtp_config(port, None, PASSWORD);
    cfg.timeout = std::time::Duration::from_millis(300);
    let mailer = Mailer::new(Some(cfg), s.outbox(), Some(s.store.clone()));
    let started = std::time::Instant::now();
    let err = send_report(
        &mailer,
        &sample_report(),
        &RenderOptions::default(),
        &addressing(),
        false,
    )
    .await
    .expect_err("timed out");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the timeout applies"
    );
    let SendReportError::Mail(MailError::Transient { attempts, .. }) = &err else {
        panic!("a timeout is transient, got {err:?}");
    };
    assert_eq!(*attempts, 2);
    assert_eq!(mailer.pending().await.expect("pending").len(), 1);
    let _ = held.join();
}

/// The reorder plan of the M5 main job: one order per series (30,490).
fn m5_sized_report() -> restock::mail::Report {
    let mut r = sample_report();
    r.orders = (0..30_490)
        .map(|i| Order {
            sku: format!("FOODS_3_{:03}", i % 827),
            store: format!("CA_{}", 1 + i / 3_049),
            qty: 12.0 + (i % 17) as f64,
            order_value: 45.5 + (i % 101) as f64,
            order_by: "2026-11-28".into(),
            reason: String::new(),
        })
        .collect();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_m5_sized_report_passes_a_server_with_stock_rfc_limits() {
    // aiosmtpd with its default 1001-octet line limit, refusing bare LF.
    let server = SmtpServer::start();
    let s = Scratch::new();
    let mailer = Mailer::new(
        Some(server.config(PASSWORD)),
        s.outbox(),
        Some(s.store.clone()),
    );
    let report = m5_sized_report();
    let outcome = send_report(
        &mailer,
        &report,
        &RenderOptions::default(),
        &addressing(),
        false,
    )
    .await
    .unwrap_or_else(|e| panic!("a strict server refused the report: {e}"));
    assert!(matches!(outcome, Outcome::Delivered(_)), "{outcome:?}");

    wait_for("the message", || server.received().len() == 1);
    let eml = &server.received()[0];
    let raw = std::fs::read(eml).expect("eml");
    assert!(raw.len() > 1_000_000, "{} bytes", raw.len());
    assert_eq!(wire_format_problem(&raw), None);
    let msg = parse(eml);
    let orders = parts(&msg, "text/csv")
        .into_iter()
        .find(|p| p["filename"] == "reorder_plan.csv")
        .expect("orders attachment");
    let csv = String::from_utf8(decode(orders)).expect("utf8");
    assert_eq!(csv.lines().count(), 1 + 30_490);
    assert!(s.pending_files().is_empty());
}
