//! `POST /api/v1/dags/{id}/overrides`: good rows land as one CSV file in
//! the DAG's overrides table, in the layout the run reads; a request with a
//! bad row names it and stores nothing.

use serde_json::json;

use crate::common::Project;
use crate::web_support::{Client, Server};

const DAG: &str = r#"id: planned
tables:
  overrides: { path: overrides }
tasks:
  - id: noop
    kind: empty
"#;

const PLAIN: &str = "id: plain\ntasks:\n  - id: noop\n    kind: empty\n";

fn stored(lake: &std::path::Path) -> Vec<String> {
    match std::fs::read_dir(lake.join("overrides")) {
        Ok(d) => d
            .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("read"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_are_checked_and_stored_for_the_next_run() {
    let p = Project::new();
    p.write_dag("planned.yaml", DAG);
    p.write_dag("plain.yaml", PLAIN);
    let lake = p.path().join("lake");
    std::fs::create_dir_all(&lake).expect("lake");
    let s = Server::start(
        &p,
        "serve",
        &[("RESTOCK_LAKE", lake.to_str().expect("utf8"))],
    );
    let mut c = Client::new();
    c.session(&s.base).await;
    let url = s.url("/api/v1/dags/planned/overrides");
    let row = |id: &str, kind: &str, sku: &str, reason: &str| {
        json!({"id": id, "kind": kind, "key": {"store": "CA_1", "sku": sku},
               "start_date": "2026-12-01", "end_date": "2026-12-07", "value": 1.5,
               "author": "alice", "reason": reason})
    };

    let bad = c
        .post(
            &url,
            json!({"rows": [
                row("O-1", "forecast_multiply", "A", "festival"),
                row("O-2", "forecast_set", "A", "again"),
                row("O-3", "order_quantity", "B", ""),
            ]}),
        )
        .await;
    bad.assert_problem(400);
    let detail = bad.json()["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for want in [
        // Key values are joined in the key columns' name order (sku, store).
        "request row 2: override O-2 overlaps override O-1 for A/CA_1 over the same dates",
        "request row 3: override O-3 has no `reason` (every override needs one)",
    ] {
        assert!(detail.contains(want), "`{want}` not in {detail}");
    }
    assert!(stored(&lake).is_empty(), "a bad request stored nothing");

    let ok = c
        .post(
            &url,
            json!({"rows": [row("O-1", "forecast_multiply", "A", "festival"),
                            row("O-4", "order_reject", "B", "supplier strike")]}),
        )
        .await;
    assert_eq!(ok.status, 201, "{ok:?}");
    assert_eq!(ok.json()["rows"], 2);
    let files = stored(&lake);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        files[0],
        "id,kind,sku,store,start_date,end_date,value,author,reason\n\
         O-1,forecast_multiply,A,CA_1,2026-12-01,2026-12-07,1.5,alice,festival\n\
         O-4,order_reject,B,CA_1,2026-12-01,2026-12-07,1.5,alice,supplier strike\n"
    );

    // GET lists what is stored, as the run reads it.
    let listed = c.get(&url).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let listed = listed.json();
    assert_eq!(listed["total_entries"], 2);
    let first = &listed["overrides"][0];
    assert_eq!(first["id"], "O-1");
    assert_eq!(first["key"], json!({"sku": "A", "store": "CA_1"}));
    assert_eq!(first["reason"], "festival");
    assert_eq!(first["value"], 1.5);
    assert_eq!(first["row"], 1);
    assert!(
        first["file"]
            .as_str()
            .is_some_and(|f| f.contains("overrides/api-")),
        "{first}"
    );

    // A new row is checked against the stored ones too: a repeated id or
    // an overlap with a stored override is refused, and nothing stored.
    let again = c
        .post(
            &url,
            json!({"rows": [row("O-1", "exclude", "C", "again"),
                            row("O-5", "forecast_set", "A", "overlaps O-1")]}),
        )
        .await;
    again.assert_problem(400);
    let detail = again.json()["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        detail.contains("request row 1: override id O-1 is already used by ")
            && detail.contains("request row 2: override O-5 overlaps override O-1 for A/CA_1"),
        "{detail}"
    );
    assert_eq!(stored(&lake).len(), 1);

    c.post(
        &s.url("/api/v1/dags/plain/overrides"),
        json!({"rows": [row("O-9", "exclude", "A", "why")]}),
    )
    .await
    .assert_problem(404);
}
