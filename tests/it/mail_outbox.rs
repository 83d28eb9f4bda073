//! With no SMTP server configured, the report is written to the outbox
//! folder (lettre's file transport) and still mailed once per run date.

use restock::mail::report::sample_report;
use restock::mail::{Addressing, Mailer, Outcome, RenderOptions, Transport, send_report};
use restock::store::Store;

#[tokio::test]
async fn without_smtp_the_report_lands_in_the_outbox() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(&dir.path().join("state.db")).expect("store");
    let outbox = dir.path().join("outbox");
    let mailer = Mailer::new(None, outbox.clone(), Some(store));
    let addressing = Addressing {
        from: "restock@localhost".into(),
        to: vec!["planners@example.com".into()],
        cc: vec![],
    };
    let report = sample_report();
    let o = send_report(
        &mailer,
        &report,
        &RenderOptions::default(),
        &addressing,
        false,
    )
    .await
    .expect("delivered");
    let Outcome::Delivered(d) = o else {
        panic!("expected a delivery, got {o:?}");
    };
    assert_eq!(d.transport, Transport::Outbox);
    let path = d.path.expect("file");
    assert_eq!(path.parent(), Some(outbox.as_path()));
    let raw = std::fs::read_to_string(&path).expect("eml");
    assert!(
        raw.contains("Subject: [restock] nightly_inventory 2026-11-27: 3 critical"),
        "{raw}"
    );
    assert!(raw.contains(&format!("Message-ID: {}", d.message_id)));
    assert!(raw.contains("multipart/related"));

    let again = send_report(
        &mailer,
        &report,
        &RenderOptions::default(),
        &addressing,
        false,
    )
    .await
    .expect("skipped");
    assert!(
        matches!(again, Outcome::Skipped(ref p) if p.transport == "outbox"),
        "{again:?}"
    );
    let emls = std::fs::read_dir(&outbox)
        .expect("outbox")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
        })
        .count();
    assert_eq!(emls, 1, "one message per run date");

    let err = mailer.resend_pending().await.expect_err("no smtp");
    assert!(
        err.to_string().contains("no SMTP server configured"),
        "{err}"
    );
}
