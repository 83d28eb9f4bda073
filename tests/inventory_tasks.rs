//! `reorder` and `monitor` through the real binary on a small handmade
//! lake: the plan and the anomalies are read back by pyarrow (an
//! independent reader) and checked against the formulas and the cases
//! planted in the data.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use chrono::NaiveDate;
use common::Project;
use parquet::arrow::ArrowWriter;

fn d32(s: &str) -> i32 {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

fn write(lake: &Path, rel: &str, cols: Vec<(&str, ArrayRef)>) {
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        cols.into_iter().map(|(_, a)| a).collect(),
    )
    .expect("batch");
    let path = lake.join(rel);
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(&path).expect("file"),
        batch.schema(),
        None,
    )
    .expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

fn s(v: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}
fn f(v: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(v.to_vec()))
}
fn i(v: &[i64]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}
fn dates(v: &[&str]) -> ArrayRef {
    Arc::new(Date32Array::from(
        v.iter().map(|d| d32(d)).collect::<Vec<_>>(),
    ))
}

/// Series: CA_1/A healthy-ish and low (orders), CA_1/B out of stock,
/// CA_1/C negative on-hand, CA_1/D spiked yesterday, TX_1/A stale store.
fn build_lake(lake: &Path) {
    let skus = ["A", "B", "C", "D"];
    // Forecasts made today: 10 steps of mean 10 (p10 6, p90 14) per series.
    let mut store = vec![];
    let mut sku = vec![];
    let mut fdate = vec![];
    let mut step = vec![];
    let dates_s: Vec<String> = (1..=10)
        .map(|k| {
            (NaiveDate::from_ymd_opt(2026, 11, 27).expect("d") + chrono::Duration::days(k))
                .to_string()
        })
        .collect();
    for (st, sk) in [
        ("CA_1", "A"),
        ("CA_1", "B"),
        ("CA_1", "C"),
        ("CA_1", "D"),
        ("TX_1", "A"),
    ] {
        for (k, date) in dates_s.iter().enumerate() {
            store.push(st);
            sku.push(sk);
            fdate.push(date.as_str());
            step.push(k as i64 + 1);
        }
    }
    let n = store.len();
    write(
        lake,
        "forecasts/ds=2026-11-27/part-00000.parquet",
        vec![
            ("store", s(&store)),
            ("sku", s(&sku)),
            ("forecast_date", dates(&fdate)),
            ("step", i(&step)),
            ("p10", f(&vec![6.0; n])),
            ("p50", f(&vec![10.0; n])),
            ("p90", f(&vec![14.0; n])),
            ("mean", f(&vec![10.0; n])),
        ],
    );
    // Yesterday's forecast (made on the 26th) for the 27th: step 1.
    write(
        lake,
        "forecasts/ds=2026-11-26/part-00000.parquet",
        vec![
            ("store", s(&["CA_1", "CA_1", "CA_1", "CA_1"])),
            ("sku", s(&skus)),
            ("forecast_date", dates(&["2026-11-27"; 4])),
            ("step", i(&[1, 1, 1, 1])),
            ("p10", f(&[6.0; 4])),
            ("p50", f(&[10.0; 4])),
            ("p90", f(&[14.0; 4])),
            ("mean", f(&[10.0; 4])),
        ],
    );
    write(
        lake,
        "curated/inventory_position/ds=2026-11-27/part-00000.parquet",
        vec![
            ("store", s(&["CA_1", "CA_1", "CA_1", "CA_1", "TX_1"])),
            ("sku", s(&["A", "B", "C", "D", "A"])),
            ("on_hand", i(&[25, 0, -4, 200, 100])),
            ("on_order", i(&[0, 0, 0, 0, 0])),
        ],
    );
    write(
        lake,
        "curated/product_master/part-00000.parquet",
        vec![
            ("sku", s(&skus)),
            ("unit_cost", f(&[2.5, 1.0, 1.0, 1.0])),
            ("case_pack", i(&[6, 1, 1, 1])),
            ("moq", i(&[12, 0, 0, 0])),
            ("lead_time_days", f(&[4.0; 4])),
            ("lead_time_std_days", f(&[1.0; 4])),
            ("review_period_days", i(&[7; 4])),
            ("service_level", f(&[0.95; 4])),
        ],
    );
    // Sales: CA_1 every day to the 27th (D spikes to 60 on the 27th);
    // TX_1 stopped after the 23rd.
    for day in 20..=27 {
        let ds = format!("2026-11-{day}");
        let mut st = vec!["CA_1", "CA_1", "CA_1", "CA_1"];
        let mut sk = vec!["A", "B", "C", "D"];
        let mut units = vec![10, 5, 3, if day == 27 { 60 } else { 9 }];
        if day <= 23 {
            st.push("TX_1");
            sk.push("A");
            units.push(8);
        }
        let dd = vec![ds.as_str(); st.len()];
        write(
            lake,
            &format!("raw/sales/ds={ds}/part-00000.parquet"),
            vec![
                ("date", dates(&dd)),
                ("store", s(&st)),
                ("sku", s(&sk)),
                ("units", i(&units)),
            ],
        );
    }
}

const DAG: &str = r#"id: plan
tables:
  forecasts: { path: forecasts, partition_by: [ds] }
  inventory_position: { path: curated/inventory_position, partition_by: [ds] }
  product_master: { path: curated/product_master }
  sales: { path: raw/sales, partition_by: [ds] }
  reorder_plans: { path: reorder_plans, partition_by: [ds] }
tasks:
  - id: reorder
    kind: reorder
    policy: periodic_order_up_to
  - id: monitor
    kind: monitor
    depends_on: [reorder]
    plans: reorder_plans
    forecasts: forecasts
"#;

fn pyarrow(script: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pyarrow read failed (pip install pyarrow): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn reorder_and_monitor_write_plans_and_anomalies_readers_can_use() {
    let p = Project::new();
    let lake = p.path().join("lake");
    build_lake(&lake);
    p.write_dag("plan.yaml", DAG);
    let o = p
        .restock()
        .env("RESTOCK_LAKE", &lake)
        .args(["run", "plan", "--date", "2026-11-27"])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let plan = pyarrow(&format!(
        r#"
import pyarrow.parquet as pq, json
t = pq.read_table("{lake}/reorder_plans/ds=2026-11-27/part-00000.parquet").to_pylist()
print(json.dumps(t, default=str))
"#,
        lake = lake.display()
    ));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&plan).expect("json");
    assert_eq!(rows.len(), 5);
    let a = rows
        .iter()
        .find(|r| r["store"] == "CA_1" && r["sku"] == "A")
        .expect("CA_1/A");
    // Protection 11 days of N(10, 4/1.2816 per day): mean 110; SS per the
    // formula; order up to mean + SS, minus 25 on hand, in cases of 6.
    let sd_day = 8.0 / (2.0 * 1.2815515655446004);
    let ss = 1.6448536269514722 * (11.0 * sd_day * sd_day + 100.0 * 1.0f64).sqrt();
    let need = 110.0 + ss - 25.0;
    let want_qty = ((need.ceil() as i64 + 5) / 6) * 6;
    assert_eq!(a["order_qty"], want_qty, "{a}");
    assert!(
        (a["safety_stock"].as_f64().expect("ss") - ss).abs() < 0.01,
        "{a}"
    );
    assert_eq!(a["order_by"], "2026-11-27");
    // 25 units at 10 a day: short on day 3, before a delivery (day 4).
    assert_eq!(a["projected_stockout"], "2026-11-30");
    let d = rows.iter().find(|r| r["sku"] == "D").expect("D");
    assert_eq!(d["order_qty"], 0, "200 on hand covers the interval: {d}");

    let anomalies = pyarrow(&format!(
        r#"
import pyarrow.parquet as pq
t = pq.read_table("{lake}/anomalies/ds=2026-11-27/part-00000.parquet")
assert t.schema.field("date").type == "date32[day]", t.schema
for r in t.to_pylist():
    print(r["type"], r["severity"], r["store"], r["sku"])
"#,
        lake = lake.display()
    ));
    for want in [
        "stockout critical CA_1 B",
        "negative_on_hand critical CA_1 C",
        "demand_outside_interval critical CA_1 D",
        "stale_data critical TX_1 None",
        "projected_stockout warning CA_1 A",
    ] {
        assert!(
            anomalies.contains(want),
            "missing `{want}` in:\n{anomalies}"
        );
    }

    let show = p
        .restock()
        .args(["show", "plan.20261127T000000Z", "--json"])
        .output()
        .expect("show");
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    let monitor = v["attempts"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["task_id"] == "monitor"))
        .expect("monitor attempt");
    let count = monitor["outputs"]["anomaly_count"].as_u64().expect("count");
    assert_eq!(count as usize, anomalies.lines().count());
    assert!(monitor["outputs"]["critical"].as_u64().expect("critical") >= 4);
    let reorder = v["attempts"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["task_id"] == "reorder"))
        .expect("reorder attempt");
    assert!(reorder["outputs"]["order_lines"].as_u64().expect("lines") >= 1);
}

#[test]
fn a_missing_input_column_is_named() {
    let p = Project::new();
    let lake = p.path().join("lake");
    build_lake(&lake);
    // Replace the product master with one lacking `moq`.
    write(
        &lake,
        "curated/product_master/part-00000.parquet",
        vec![("sku", s(&["A"])), ("unit_cost", f(&[1.0]))],
    );
    p.write_dag("plan.yaml", DAG);
    let o = p
        .restock()
        .env("RESTOCK_LAKE", &lake)
        .args(["run", "plan", "--date", "2026-11-27"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    let show = p
        .restock()
        .args(["show", "plan.20261127T000000Z"])
        .output()
        .expect("show");
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("table `product_master` lacks column(s) case_pack, moq"),
        "{text}"
    );
    assert!(
        !lake.join("reorder_plans").exists(),
        "nothing written on bad input"
    );
}
