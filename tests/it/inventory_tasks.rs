//! `reorder` and `monitor` through the real binary on a small handmade
//! lake: the plan and the anomalies are read back by pyarrow (an
//! independent reader) and checked against the formulas and the cases
//! planted in the data.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use chrono::NaiveDate;
use common::Project;
use parquet::arrow::ArrowWriter;

mod ahead;
mod keys;
mod overrides;
mod weekly;

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
pub(crate) fn build_lake(lake: &Path) {
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
    # The hand-built items cost 1 each: a few units already matter here.
    rules: { min_money_at_risk: 1 }
"#;

pub(crate) fn pyarrow(script: &str) -> String {
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
    // This stock table carries no snapshot date: the run says staleness
    // could not be judged rather than passing it silently.
    assert!(
        stdout.contains(
            "table `inventory_position` has no snapshot_date or date column: stock snapshots \
             are not checked against stale_after_days"
        ),
        "{stdout}"
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

fn run_plan(p: &Project, lake: &Path) {
    run_plan_output(p, lake);
}

/// Runs the `plan` DAG for 2026-11-27 and returns what it printed.
pub(crate) fn run_plan_output(p: &Project, lake: &Path) -> String {
    let o = p
        .restock()
        .env("RESTOCK_LAKE", lake)
        .args(["run", "plan", "--date", "2026-11-27"])
        .output()
        .expect("run");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{out}");
    out
}

pub(crate) fn rows_of(lake: &Path, table: &str) -> Vec<serde_json::Value> {
    let out = pyarrow(&format!(
        r#"
import pyarrow.parquet as pq, json
t = pq.read_table("{lake}/{table}/ds=2026-11-27/part-00000.parquet").to_pylist()
print(json.dumps(t, default=str))
"#,
        lake = lake.display()
    ));
    serde_json::from_str(&out).expect("json")
}

/// The first mail the run wrote to the project's outbox.
pub(crate) fn outbox_eml(p: &Project) -> std::path::PathBuf {
    std::fs::read_dir(p.path().join("outbox"))
        .expect("outbox")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "eml"))
        .expect("an .eml in the outbox")
}

pub(crate) fn row<'a>(
    rows: &'a [serde_json::Value],
    store: &str,
    sku: &str,
) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["store"] == store && r["sku"] == sku)
        .unwrap_or_else(|| panic!("no row {store}/{sku} in {rows:?}"))
}

/// Every kind of bad input holds its line, names itself, and the held
/// lines never count in the order value.
#[test]
fn held_lines_name_the_bad_input_and_order_nothing() {
    let p = Project::new();
    let lake = p.path().join("lake");
    build_lake(&lake);
    // The stock table with snapshot dates (TX_1 stopped on the 23rd) and
    // more series: E has no lead time, F a forecast of NaNs, G no stock
    // row, H and I are cold starts served by the network and by Theta.
    write(
        &lake,
        "curated/inventory_position/ds=2026-11-27/part-00000.parquet",
        vec![
            (
                "store",
                s(&[
                    "CA_1", "CA_1", "CA_1", "CA_1", "TX_1", "CA_1", "CA_1", "CA_1", "CA_1",
                ]),
            ),
            ("sku", s(&["A", "B", "C", "D", "A", "E", "F", "H", "I"])),
            ("on_hand", i(&[25, 0, -4, 200, 100, 10, 10, 10, 10])),
            ("on_order", i(&[0; 9])),
            (
                "snapshot_date",
                dates(&[
                    "2026-11-27",
                    "2026-11-27",
                    "2026-11-27",
                    "2026-11-27",
                    "2026-11-23",
                    "2026-11-27",
                    "2026-11-27",
                    "2026-11-27",
                    "2026-11-27",
                ]),
            ),
        ],
    );
    let lead: ArrayRef = Arc::new(Float64Array::from(
        ["A", "B", "C", "D", "E", "F", "G", "H", "I"]
            .iter()
            .map(|sku| (*sku != "E").then_some(4.0))
            .collect::<Vec<_>>(),
    ));
    write(
        &lake,
        "curated/product_master/part-00000.parquet",
        vec![
            ("sku", s(&["A", "B", "C", "D", "E", "F", "G", "H", "I"])),
            (
                "unit_cost",
                f(&[2.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
            ),
            ("case_pack", i(&[6, 1, 1, 1, 1, 1, 1, 1, 1])),
            ("moq", i(&[12, 0, 0, 0, 0, 0, 0, 0, 0])),
            ("lead_time_days", lead),
            ("lead_time_std_days", f(&[1.0; 9])),
            ("review_period_days", i(&[7; 9])),
            ("service_level", f(&[0.95; 9])),
        ],
    );
    // Today's forecasts with F's steps all NaN (E has none: held on its
    // lead time first, the product master being fixed before the forecast).
    let mut store = vec![];
    let mut sku = vec![];
    let mut step = vec![];
    let mut mean = vec![];
    let mut kind = vec![];
    let mut flags = vec![];
    for (st, sk) in [
        ("CA_1", "A"),
        ("CA_1", "B"),
        ("CA_1", "C"),
        ("CA_1", "D"),
        ("TX_1", "A"),
        ("CA_1", "F"),
        ("CA_1", "G"),
        ("CA_1", "H"),
        ("CA_1", "I"),
    ] {
        for k in 1..=10i64 {
            store.push(st);
            sku.push(sk);
            step.push(k);
            kind.push(match sk {
                "H" => "lstm",
                "I" => "theta",
                _ => "ets",
            });
            flags.push(if matches!(sk, "H" | "I") {
                "cold_start"
            } else {
                ""
            });
            // D's forecast differs from the others: when every non-NaN
            // value of a column is equal, DataFusion 55 reads the NaNs as
            // that value (Parquet statistics leave NaN out of min/max).
            mean.push(match sk {
                "F" => f64::NAN,
                "D" => 12.0,
                _ => 10.0,
            });
        }
    }
    let fdates: Vec<String> = (1..=10)
        .map(|k| {
            (NaiveDate::from_ymd_opt(2026, 11, 27).expect("d") + chrono::Duration::days(k))
                .to_string()
        })
        .collect();
    let fdate: Vec<&str> = (0..store.len()).map(|j| fdates[j % 10].as_str()).collect();
    let n = store.len();
    let q = |v: f64| -> Vec<f64> {
        mean.iter()
            .map(|m| if m.is_nan() { *m } else { v })
            .collect()
    };
    write(
        &lake,
        "forecasts/ds=2026-11-27/part-00000.parquet",
        vec![
            ("store", s(&store)),
            ("sku", s(&sku)),
            ("group", s(&vec!["FOODS_1"; n])),
            ("forecast_date", dates(&fdate)),
            ("step", i(&step)),
            ("p10", f(&q(-4.0))),
            ("p50", f(&q(0.0))),
            ("p90", f(&q(4.0))),
            ("mean", f(&mean)),
            ("model_kind", s(&kind)),
            ("flags", s(&flags)),
        ],
    );
    p.write_dag("plan.yaml", DAG);
    run_plan(&p, &lake);
    let plan = rows_of(&lake, "reorder_plans");
    let want = [
        (
            "CA_1",
            "C",
            "held: on hand is -4, an impossible value; fix the stock feed",
        ),
        (
            "TX_1",
            "A",
            "held: the stock snapshot is from 2026-11-23, 4 days before the run (allowed: 1)",
        ),
        (
            "CA_1",
            "E",
            "held: the product master has no lead time for this SKU",
        ),
        (
            "CA_1",
            "F",
            "held: the forecast has no usable value (all 10 steps NaN or empty)",
        ),
        (
            "CA_1",
            "G",
            "held: no on-hand figure for this series in the stock table",
        ),
        (
            "CA_1",
            "H",
            "held: the forecast is flagged cold_start but was served by lstm, not a baseline",
        ),
    ];
    for (st, sk, reason) in want {
        let r = row(&plan, st, sk);
        assert_eq!(r["status"], "held", "{r}");
        assert_eq!(r["order_qty"], 0, "{r}");
        assert_eq!(r["order_value"], 0.0, "{r}");
        assert!(
            r["reason"].as_str().is_some_and(|x| x.starts_with(reason)),
            "{st}/{sk}: want `{reason}`, got {}",
            r["reason"]
        );
    }
    // C and TX_1/A would have ordered: the value is kept apart and named.
    let c = row(&plan, "CA_1", "C");
    assert!(
        c["held_order_value"].as_f64().expect("held value") > 0.0,
        "{c}"
    );
    assert!(
        c["reason"]
            .as_str()
            .is_some_and(|x| x.contains("(it would have ordered ")),
        "{c}"
    );
    // The one orderable line with a hand-computed reason: protection 11 d
    // of N(10, 3.1213²) a day → mean 110, sd 10.35; SS = 1.6449 ×
    // √(11 × 9.743 + 10² × 1²) = 23.67; ROP 133.67; needs 108.67 → 109 →
    // 19 cases of 6 = 114.
    let a = row(&plan, "CA_1", "A");
    assert_eq!(a["status"], "order");
    assert_eq!(
        a["reason"],
        "position 25 (on hand 25 + on order 0) is below the reorder point 133.7 = demand over \
         lead time 4 d + review 7 d (mean 110, sd 10.4) + safety stock 23.7 at 95% service \
         (lead time sd 1 d); order up to 133.7 needs 108.7, rounded up to the case pack of 6: \
         114; forecast by ets (group FOODS_1)"
    );
    let ordered: f64 = plan
        .iter()
        .map(|r| r["order_value"].as_f64().expect("value"))
        .sum();
    let show = p
        .restock()
        .args(["show", "plan.20261127T000000Z", "--json"])
        .output()
        .expect("show");
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    let reorder = v["attempts"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["task_id"] == "reorder"))
        .expect("reorder attempt");
    assert_eq!(reorder["outputs"]["held"], 6);
    let total = reorder["outputs"]["total_order_value"]
        .as_f64()
        .expect("total");
    assert!((total - ordered).abs() < 0.01, "{total} vs {ordered}");
    // I's cold start is served by Theta, a per-series fallback: it orders.
    let i_line = row(&plan, "CA_1", "I");
    assert_eq!(i_line["status"], "order", "{i_line}");
    assert_eq!(
        ordered,
        a["order_value"].as_f64().expect("a")
            + row(&plan, "CA_1", "B")["order_value"].as_f64().expect("b")
            + i_line["order_value"].as_f64().expect("i"),
        "only A, B and I order"
    );
}

/// The second night: what was reported the night before is `recurring`
/// with its first date and leaves the headline; what grew is `worse`.
#[test]
fn a_second_night_marks_recurring_and_worse_anomalies() {
    let p = Project::new();
    let lake = p.path().join("lake");
    build_lake(&lake);
    // Last night's table as the monitor writes it.
    write(
        &lake,
        "anomalies/ds=2026-11-26/part-00000.parquet",
        vec![
            ("date", dates(&["2026-11-26"; 3])),
            ("store", s(&["CA_1", "CA_1", "TX_1"])),
            (
                "sku",
                Arc::new(StringArray::from(vec![Some("B"), Some("D"), None])) as ArrayRef,
            ),
            (
                "type",
                s(&["stockout", "demand_outside_interval", "stale_data"]),
            ),
            ("severity", s(&["critical", "warning", "critical"])),
            ("money_at_risk", f(&[40.0, 1.0, 1e9])),
            ("observed", f(&[0.0, 30.0, 3.0])),
            (
                "first_seen",
                dates(&["2026-11-20", "2026-11-26", "2026-11-24"]),
            ),
        ],
    );
    p.write_dag("plan.yaml", DAG);
    run_plan(&p, &lake);
    let rows = rows_of(&lake, "anomalies");
    let find = |ty: &str, store: &str| {
        rows.iter()
            .find(|r| r["type"] == ty && r["store"] == store)
            .unwrap_or_else(|| panic!("no {ty} at {store}: {rows:?}"))
    };
    // B: 10 a day × 4 d lead time × unit cost 1 (no price) = 40, as before.
    let b = find("stockout", "CA_1");
    assert_eq!(b["money_at_risk"], 40.0, "{b}");
    assert_eq!(
        (&b["status"], &b["first_seen"], &b["headline"]),
        (
            &serde_json::json!("recurring"),
            &serde_json::json!("2026-11-20"),
            &serde_json::json!(false)
        )
    );
    let d = find("demand_outside_interval", "CA_1");
    assert_eq!(
        (&d["status"], &d["headline"]),
        (&"worse".into(), &true.into())
    );
    assert_eq!(d["first_seen"], "2026-11-26");
    // The feed was 3 days old last night and is 4 now: worse, and back in
    // the headline however large its money figure was.
    let stale = find("stale_data", "TX_1");
    assert_eq!(stale["status"], "worse");
    assert_eq!(stale["first_seen"], "2026-11-24");
    assert_eq!(stale["headline"], true);
    let neg = find("negative_on_hand", "CA_1");
    assert_eq!(
        (&neg["status"], &neg["first_seen"], &neg["headline"]),
        (&"new".into(), &"2026-11-27".into(), &true.into())
    );
    // Ranked by money: ranks 1..n in the order of the money figure.
    let mut by_rank: Vec<(i64, f64)> = rows
        .iter()
        .map(|r| {
            (
                r["rank"].as_i64().expect("rank"),
                r["money_at_risk"].as_f64().expect("money"),
            )
        })
        .collect();
    by_rank.sort_by_key(|x| x.0);
    assert_eq!(
        by_rank.iter().map(|x| x.0).collect::<Vec<_>>(),
        (1..=rows.len() as i64).collect::<Vec<_>>()
    );
    assert!(by_rank.windows(2).all(|w| w[0].1 >= w[1].1), "{by_rank:?}");
    // Every row says how its money figure was reached.
    assert!(
        rows.iter()
            .all(|r| r["reason"].as_str().is_some_and(|x| x.contains(" = "))),
        "{rows:?}"
    );
}

/// The email reads what `reorder` and `monitor` wrote, as declared
/// partitioned tables: the run's anomalies and plan lines, by the columns
/// those kinds write. A missing or corrupt monitor output is an error
/// naming the table, not an empty report.
#[test]
fn the_email_reads_the_plan_and_anomalies_the_run_wrote() {
    let p = Project::new();
    let lake = p.path().join("lake");
    build_lake(&lake);
    let dag = DAG.replace(
        "tables:\n",
        "tables:\n  anomalies: { path: anomalies, partition_by: [ds] }\n",
    ) + r#"  - id: alert
    kind: email
    depends_on: [monitor]
    to: [planners@example.com]
    anomalies: anomalies
    reorder_plans: reorder_plans
    forecasts: forecasts
    history: sales
    history_days: 28
"#;
    p.write_dag("plan.yaml", &dag);
    run_plan(&p, &lake);

    let plans = rows_of(&lake, "reorder_plans");
    let anomalies = rows_of(&lake, "anomalies");
    let critical = anomalies
        .iter()
        .filter(|a| a["severity"] == "critical")
        .count();
    let warning = anomalies
        .iter()
        .filter(|a| a["severity"] == "warning")
        .count();
    let orders = plans
        .iter()
        .filter(|l| l["status"] == "order" && l["order_qty"].as_i64() > Some(0))
        .count();
    assert!(orders >= 1 && critical >= 4, "{plans:?}");
    let eml = outbox_eml(&p);
    let parsed = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/parse_mail.py"
        ))
        .arg(&eml)
        .output()
        .expect("parse mail");
    let mail: serde_json::Value = serde_json::from_slice(&parsed.stdout).expect("mail json");
    let other = anomalies.len() - critical - warning;
    let other = if other > 0 {
        format!(", {other} other")
    } else {
        String::new()
    };
    let plural = if orders == 1 { "order" } else { "orders" };
    assert_eq!(
        mail["subject"],
        format!(
            "[restock] plan 2026-11-27: {critical} critical, {warning} warning{other} anomalies, \
             {orders} {plural}"
        )
    );
    let part = |name: &str| {
        mail["parts"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["filename"] == name))
            .and_then(|p| p["text"].as_str())
            .unwrap_or_else(|| panic!("no {name} in {mail}"))
            .to_string()
    };
    let csv = part("anomalies.csv");
    assert_eq!(csv.lines().count(), anomalies.len() + 1, "{csv}");
    for a in &anomalies {
        let reason = a["reason"].as_str().expect("reason");
        let start = reason.split([';', ',', '"']).next().unwrap_or(reason);
        assert!(csv.contains(start), "{reason} not in {csv}");
    }
    let plan = part("reorder_plan.csv");
    let a = row(&plans, "CA_1", "A");
    assert!(
        plan.lines()
            .any(|l| l.contains("CA_1") && l.contains(&a["order_qty"].to_string())),
        "CA_1/A's {} units not in {plan}",
        a["order_qty"]
    );
    assert!(
        mail["parts"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["content_type"] == "image/png")),
        "a chart of the worst series from the forecasts and the sales"
    );

    // The monitor's partition corrupt, then gone: the email names it.
    let part_file = lake.join("anomalies/ds=2026-11-27/part-00000.parquet");
    let alert = |p: &Project| {
        let o = p
            .restock()
            .env("RESTOCK_LAKE", &lake)
            .args(["run", "plan", "--date", "2026-11-27", "--task", "alert"])
            .output()
            .expect("run");
        assert!(!o.status.success());
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    std::fs::write(&part_file, b"not parquet at all").expect("corrupt");
    let out = alert(&p);
    assert!(
        out.contains("table `anomalies`:")
            && out.contains(
                "anomalies/ds=2026-11-27/part-00000.parquet is not a readable Parquet file"
            ),
        "{out}"
    );
    std::fs::remove_dir_all(lake.join("anomalies/ds=2026-11-27")).expect("remove");
    std::fs::create_dir_all(lake.join("anomalies/ds=2026-11-26")).expect("dir");
    std::fs::write(
        lake.join("anomalies/ds=2026-11-26/part-00000.parquet"),
        std::fs::read(lake.join("reorder_plans/ds=2026-11-27/part-00000.parquet")).expect("any"),
    )
    .expect("older night");
    let out = alert(&p);
    assert!(
        out.contains("table `anomalies` (`anomalies` of the email): no partition ds=2026-11-27"),
        "{out}"
    );
}
