//! `POST /api/v1/dags/{id}/overrides`: good rows land as one CSV file in
//! the DAG's overrides table, in the layout the run reads; a request with a
//! bad row names it and stores nothing. `PUT` and `DELETE` on one
//! override edit and withdraw it in its own file (CSV or Parquet), and the
//! next run follows.

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
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let written_at = |csv: &str, column: usize| -> Vec<chrono::DateTime<chrono::Utc>> {
        csv.lines()
            .skip(1)
            .map(|l| {
                let cell = l.split(',').nth(column).unwrap_or_default();
                let t = chrono::DateTime::parse_from_rfc3339(cell)
                    .unwrap_or_else(|e| panic!("`{cell}` in `{l}`: {e}"))
                    .with_timezone(&chrono::Utc);
                assert!(before <= t && t <= chrono::Utc::now(), "{t} in {l}");
                t
            })
            .collect()
    };
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
    // Every row is stamped with when it was written, between the request
    // and now.
    let written = written_at(&files[0], 8);
    assert_eq!(written.len(), 2, "{}", files[0]);
    assert_eq!(written[0], written[1], "one request, one time");
    let stamp = written[0].to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(
        files[0],
        format!(
            "id,kind,sku,store,start_date,end_date,value,author,created_at,reason\n\
             O-1,forecast_multiply,A,CA_1,2026-12-01,2026-12-07,1.5,alice,{stamp},festival\n\
             O-4,order_reject,B,CA_1,2026-12-01,2026-12-07,1.5,alice,{stamp},supplier strike\n"
        )
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
    assert_eq!(first["created_at"], stamp.as_str());
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

/// A reorder DAG over the hand-built lake of `inventory_tasks`, reading
/// the planners' overrides.
const PLAN: &str = r#"id: plan
tables:
  forecasts: { path: forecasts, partition_by: [ds] }
  inventory_position: { path: curated/inventory_position, partition_by: [ds] }
  product_master: { path: curated/product_master }
  reorder_plans: { path: reorder_plans, partition_by: [ds] }
  overrides: { path: overrides }
tasks:
  - id: reorder
    kind: reorder
    policy: periodic_order_up_to
    overrides: overrides
"#;

const PLANNERS: &str = "\
id,kind,store,sku,start_date,end_date,value,author,reason
O-1,order_quantity,CA_1,A,2026-11-20,2026-11-30,30,alice,store opening next week
O-2,order_reject,CA_1,B,,,,bob,supplier on strike
";

/// The hand-built lake with `write` putting the planners' file in place,
/// and a server over it with a session.
async fn planned_lake(write: &dyn Fn(&std::path::Path)) -> (Project, Server, Client) {
    let p = Project::new();
    let lake = p.path().join("lake");
    crate::inventory_tasks::build_lake(&lake);
    std::fs::create_dir_all(lake.join("overrides")).expect("dir");
    write(&lake);
    p.write_dag("plan.yaml", PLAN);
    let s = Server::start(
        &p,
        "serve",
        &[("RESTOCK_LAKE", lake.to_str().expect("utf8"))],
    );
    let mut c = Client::new();
    c.session(&s.base).await;
    (p, s, c)
}

async fn delete(c: &mut Client, url: &str, body: serde_json::Value) -> crate::web_support::Resp {
    c.send(
        reqwest::Method::DELETE,
        url,
        Some(("application/json", body.to_string())),
    )
    .await
}

async fn put(c: &mut Client, url: &str, body: serde_json::Value) -> crate::web_support::Resp {
    c.send(
        reqwest::Method::PUT,
        url,
        Some(("application/json", body.to_string())),
    )
    .await
}

fn edited_o1(qty: f64, reason: &str) -> serde_json::Value {
    json!({"id": "O-1", "kind": "order_quantity", "key": {"store": "CA_1", "sku": "A"},
           "start_date": "2026-11-20", "end_date": "2026-11-30", "value": qty,
           "author": "carol", "reason": reason})
}

/// Withdraw and edit a planner's CSV through the API: refusals store
/// nothing, the file keeps the old rows marked (who, when, why), and the
/// next run applies the edit and not the withdrawn row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_are_withdrawn_and_edited_and_the_run_follows() {
    let (p, s, mut c) = planned_lake(&|lake| {
        std::fs::write(lake.join("overrides/planners.csv"), PLANNERS).expect("csv");
    })
    .await;
    let file = p.path().join("lake/overrides/planners.csv");
    let url = |id: &str| s.url(&format!("/api/v1/dags/plan/overrides/{id}"));
    let why = json!({"author": "dave", "reason": "strike called off"});

    // Without a session (and so without a CSRF token) nothing changes.
    let mut stranger = Client::new();
    delete(&mut stranger, &url("O-2"), why.clone())
        .await
        .assert_problem(403);
    put(&mut stranger, &url("O-1"), edited_o1(12.0, "x"))
        .await
        .assert_problem(403);
    // An unknown id is a 404; a withdrawal needs who and why.
    for r in [
        delete(&mut c, &url("O-9"), why.clone()).await,
        put(&mut c, &url("O-9"), edited_o1(12.0, "x")).await,
    ] {
        r.assert_problem(404);
        assert!(
            r.json()["detail"]
                .as_str()
                .is_some_and(|d| d.contains("O-9")),
            "{r:?}"
        );
    }
    let no_reason = delete(
        &mut c,
        &url("O-2"),
        json!({"author": "dave", "reason": " "}),
    )
    .await;
    no_reason.assert_problem(400);
    assert!(
        no_reason.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("`reason`"))
    );
    // A bad edit names the field, as a POST would, and stores nothing.
    let bad = put(&mut c, &url("O-1"), edited_o1(12.0, "")).await;
    bad.assert_problem(400);
    assert_eq!(
        bad.json()["detail"],
        "request row 1: override O-1 has no `reason` (every override needs one)"
    );
    let overlap = json!({"id": "O-1", "kind": "order_quantity", "key": {"store": "CA_1", "sku": "B"},
        "value": 5, "author": "carol", "reason": "moved"});
    let bad = put(&mut c, &url("O-1"), overlap).await;
    bad.assert_problem(400);
    assert!(
        bad.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("overlaps override O-2")),
        "{bad:?}"
    );
    assert_eq!(std::fs::read_to_string(&file).expect("csv"), PLANNERS);

    let gone = delete(&mut c, &url("O-2"), why.clone()).await;
    assert_eq!(gone.status, 200, "{gone:?}");
    assert_eq!(gone.json()["withdrawn_by"], "dave");
    // Withdrawn once, it is no longer there to withdraw.
    delete(&mut c, &url("O-2"), why).await.assert_problem(404);
    let edit = put(&mut c, &url("O-1"), edited_o1(12.0, "opening moved")).await;
    assert_eq!(edit.status, 200, "{edit:?}");

    // The file, read as text: the old rows kept with their marks, the
    // edit right after the row it replaces.
    let text = std::fs::read_to_string(&file).expect("csv");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    // The planners' file had no `created_at`: the edit adds it, filled on
    // the new row only, with the time the old row was withdrawn.
    assert_eq!(
        lines[0],
        "id,kind,store,sku,start_date,end_date,value,author,reason,withdrawn_by,withdrawn_at,withdrawn_reason,created_at"
    );
    let withdrawn_at = lines[1].split(',').nth(10).unwrap_or_default();
    assert!(
        lines[1].starts_with("O-1,order_quantity,CA_1,A,2026-11-20,2026-11-30,30,alice,store opening next week,carol,20")
            && lines[1].ends_with("Z,edited: opening moved,")
            && chrono::DateTime::parse_from_rfc3339(withdrawn_at).is_ok(),
        "{text}"
    );
    assert_eq!(
        lines[2],
        format!(
            "O-1,order_quantity,CA_1,A,2026-11-20,2026-11-30,12,carol,opening moved,,,,{withdrawn_at}"
        )
    );
    assert!(
        lines[3].starts_with("O-2,order_reject,CA_1,B,,,,bob,supplier on strike,dave,20")
            && lines[3].ends_with("Z,strike called off,"),
        "{text}"
    );

    // GET lists the one in force, and the withdrawn ones apart.
    let listed = c.get(&s.url("/api/v1/dags/plan/overrides")).await.json();
    assert_eq!(listed["total_entries"], 1, "{listed}");
    assert_eq!(listed["overrides"][0]["value"], 12.0);
    assert_eq!(listed["overrides"][0]["row"], 2);
    assert_eq!(listed["overrides"][0]["created_at"], withdrawn_at);
    let withdrawn: Vec<(&str, &str)> = listed["withdrawn"]
        .as_array()
        .expect("withdrawn")
        .iter()
        .map(|w| {
            (
                w["id"].as_str().unwrap_or_default(),
                w["withdrawn_by"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(withdrawn, [("O-1", "carol"), ("O-2", "dave")]);

    // The run applies the edit and not the withdrawn rejection.
    let out = crate::inventory_tasks::run_plan_output(&p, &p.path().join("lake"));
    assert!(
        out.contains("overrides: 1 applied, 0 refused, 2 withdrawn (table `overrides`)"),
        "{out}"
    );
    let plan = crate::inventory_tasks::rows_of(&p.path().join("lake"), "reorder_plans");
    let a = crate::inventory_tasks::row(&plan, "CA_1", "A");
    assert_eq!(
        (&a["order_qty"], &a["override_id"]),
        (&12.into(), &"O-1".into()),
        "{a}"
    );
    let b = crate::inventory_tasks::row(&plan, "CA_1", "B");
    assert!(
        b["override_id"].is_null() && b["status"] != "rejected",
        "{b}"
    );
}

/// A planner's Parquet file (as pandas writes it: dates as Date32, the
/// value as an integer) stays Parquet with its types through an edit and
/// a withdrawal, read back by pyarrow; a value its column cannot hold is
/// refused and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_override_file_keeps_its_types_through_an_edit() {
    let (p, s, mut c) = planned_lake(&|lake| {
        crate::inventory_tasks::pyarrow(&format!(
            r#"
import io, pyarrow as pa, pyarrow.csv as pc, pyarrow.parquet as pq
t = pc.read_csv(io.BytesIO({csv:?}.encode()), convert_options=pc.ConvertOptions(
    column_types={{"start_date": pa.date32(), "end_date": pa.date32(), "value": pa.int64()}}))
pq.write_table(t, "{lake}/overrides/planners.parquet")
"#,
            csv = PLANNERS,
            lake = lake.display()
        ));
    })
    .await;
    let file = p.path().join("lake/overrides/planners.parquet");
    let url = |id: &str| s.url(&format!("/api/v1/dags/plan/overrides/{id}"));
    let before = std::fs::read(&file).expect("parquet");
    let bad = put(&mut c, &url("O-1"), edited_o1(12.5, "half units")).await;
    bad.assert_problem(400);
    assert!(
        bad.json()["detail"]
            .as_str()
            .is_some_and(|d| d.ends_with("`value` is stored as Int64; `12.5` does not fit it")),
        "{bad:?}"
    );
    assert_eq!(std::fs::read(&file).expect("parquet"), before);

    let edit = put(&mut c, &url("O-1"), edited_o1(12.0, "opening moved")).await;
    assert_eq!(edit.status, 200, "{edit:?}");
    let gone = delete(
        &mut c,
        &url("O-2"),
        json!({"author": "dave", "reason": "called off"}),
    )
    .await;
    assert_eq!(gone.status, 200, "{gone:?}");

    let read = crate::inventory_tasks::pyarrow(&format!(
        r#"
import pyarrow.parquet as pq
t = pq.read_table("{}")
print(";".join(f"{{f.name}}:{{f.type}}" for f in t.schema))
for r in t.to_pylist():
    print(r["id"], r["value"], r["start_date"], r["withdrawn_by"], r["withdrawn_reason"])
"#,
        file.display()
    ));
    let lines: Vec<&str> = read.lines().collect();
    assert_eq!(
        lines,
        [
            "id:string;kind:string;store:string;sku:string;start_date:date32[day];end_date:date32[day];value:int64;author:string;reason:string;withdrawn_by:string;withdrawn_at:string;withdrawn_reason:string;created_at:string",
            "O-1 30 2026-11-20 carol edited: opening moved",
            "O-1 12 2026-11-20 None None",
            "O-2 None None dave called off",
        ],
        "{read}"
    );
    let out = crate::inventory_tasks::run_plan_output(&p, &p.path().join("lake"));
    assert!(
        out.contains("overrides: 1 applied, 0 refused, 2 withdrawn"),
        "{out}"
    );
}

/// With no override stored yet, the form's key fields are the columns the
/// DAG's tasks read the table by (`series_key:`), not `store`/`sku`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_keys_follow_the_dags_series_key() {
    let p = Project::new();
    p.write_dag(
        "plan.yaml",
        &PLAN.replace(
            "    overrides: overrides\n",
            "    overrides: overrides\n    series_key: { store: shop, sku: item }\n",
        ),
    );
    let lake = p.path().join("lake");
    std::fs::create_dir_all(&lake).expect("lake");
    let s = Server::start(
        &p,
        "serve",
        &[("RESTOCK_LAKE", lake.to_str().expect("utf8"))],
    );
    let mut c = Client::new();
    let page = c.get(&s.url("/dags/plan/overrides")).await;
    assert_eq!(page.status, 200, "{page:?}");
    let keys: Vec<&str> = page
        .body
        .split("data-key=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    assert_eq!(keys, ["shop", "item"], "{}", page.body);
}
