//! The `email` task kind end to end through `restock run`: tables read from
//! local Parquet under the lake root, the report written to the outbox (no
//! SMTP configured), outputs recorded, and a forced rerun of the same date
//! not mailing twice.

use crate::common;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use common::Project;

const DAG: &str = r#"id: nightly
schedule:
  cron: "0 1 * * *"
tasks:
  - id: monitor
    kind: command
    command: ["sh", "-c", "echo '{\"anomaly_count\": 2}'"]
  - id: alert
    kind: email
    depends_on: [monitor]
    when: "tasks.monitor.outputs.anomaly_count > 0"
    subject_prefix: "[stock]"
    to: [planners@example.com]
    anomalies: "anomalies/ds={{ ds }}"
    reorder_plans: reorder_plans
    forecasts: forecasts
"#;

fn strs(v: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

fn nums(v: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(v.to_vec()))
}

fn write(path: &Path, cols: Vec<(&str, ArrayRef)>) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    let batch = RecordBatch::try_from_iter(cols).expect("batch");
    let f = std::fs::File::create(path).expect("file");
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

#[test]
fn email_task_mails_the_run_report_to_the_outbox_once() {
    let p = Project::new();
    p.write_dag("nightly.yaml", DAG);
    let lake = p.path().join("lake");
    write(
        &lake.join("anomalies/ds=2026-11-27/part-0.parquet"),
        vec![
            ("date", strs(&["2026-11-27", "2026-11-27"])),
            ("store", strs(&["S1", "S2"])),
            ("sku", strs(&["A-1", "B-2"])),
            ("type", strs(&["stockout", "overstock"])),
            ("severity", strs(&["critical", "warning"])),
            ("observed", nums(&[0.0, 900.0])),
            ("expected", nums(&[12.0, 400.0])),
            ("message", strs(&["out of stock", "3 weeks of cover"])),
        ],
    );
    write(
        &lake.join("reorder_plans/part-0.parquet"),
        vec![
            ("sku", strs(&["A-1"])),
            ("store", strs(&["S1"])),
            ("order_qty", nums(&[48.0])),
            ("order_value", nums(&[1234.5])),
            ("order_by", strs(&["2026-11-28"])),
        ],
    );
    write(
        &lake.join("forecasts/part-0.parquet"),
        vec![
            ("sku", strs(&["A-1", "A-1", "A-1"])),
            ("store", strs(&["S1", "S1", "S1"])),
            (
                "forecast_date",
                strs(&["2026-11-28", "2026-11-29", "2026-11-30"]),
            ),
            ("p10", nums(&[8.0, 9.0, 7.0])),
            ("p50", nums(&[12.0, 13.0, 11.0])),
            ("p90", nums(&[16.0, 18.0, 15.0])),
        ],
    );

    let run = |force: bool| {
        let mut c = p.restock();
        c.args(["run", "nightly", "--date", "2026-11-27"]);
        if force {
            c.arg("--force");
        }
        for v in [
            "RESTOCK_SMTP_HOST",
            "RESTOCK_MAIL_TO",
            "RESTOCK_MAIL_FROM",
            "RESTOCK_MAIL_CC",
        ] {
            c.env_remove(v);
        }
        let o = c.output().expect("run");
        assert!(
            o.status.success(),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(false);

    let outbox = p.path().join("outbox");
    let emls: Vec<_> = std::fs::read_dir(&outbox)
        .expect("outbox")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    assert_eq!(emls.len(), 1);
    // Unfold long header lines (RFC 5322 folding).
    let raw = std::fs::read_to_string(&emls[0])
        .expect("eml")
        .replace("\r\n ", " ")
        .replace("\n ", " ");
    assert!(
        raw.contains(
            "Subject: [stock] nightly 2026-11-27: 1 critical, 1 warning anomalies, 1 order"
        ),
        "{raw}"
    );
    assert!(raw.contains("To: planners@example.com"));
    assert!(raw.contains("image/png"), "chart of A-1 from the forecasts");

    let outputs = p.query("SELECT outputs FROM task_instances WHERE task_id = 'alert'");
    let out: serde_json::Value = serde_json::from_str(&outputs[0][0]).expect("json");
    assert_eq!(out["sent"], true);
    assert_eq!(out["transport"], "outbox");
    assert_eq!(
        out["recipients"],
        serde_json::json!(["planners@example.com"])
    );
    assert_eq!(
        out["attachments"],
        serde_json::json!(["anomalies.csv", "reorder_plan.csv"])
    );
    let first_id = out["message_id"].as_str().expect("id").to_string();

    // A forced rerun of the DAG does not mail the same date twice.
    run(true);
    let rows = p.query(
        "SELECT ti.outputs FROM task_instances ti JOIN dag_runs r USING (run_id)
         WHERE ti.task_id = 'alert' ORDER BY r.generation DESC LIMIT 1",
    );
    let out: serde_json::Value = serde_json::from_str(&rows[0][0]).expect("json");
    assert_eq!(out["sent"], false, "{out}");
    assert_eq!(out["message_id"], first_id.as_str());
    assert_eq!(
        p.query("SELECT COUNT(*) FROM sent_mail WHERE dag_id = 'nightly' AND ds = '2026-11-27'"),
        [["1"]]
    );
    let count = std::fs::read_dir(&outbox)
        .expect("outbox")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
        })
        .count();
    assert_eq!(count, 1);
}
