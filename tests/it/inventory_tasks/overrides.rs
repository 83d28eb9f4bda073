//! Planner overrides on the hand-built lake: an order quantity, a
//! rejection and an exclusion apply and are audited on the rows they
//! touch; bad rows are refused by file and row while the good ones apply.

use super::{Project, build_lake, row, rows_of};

const DAG: &str = r#"id: plan
tables:
  forecasts: { path: forecasts, partition_by: [ds] }
  inventory_position: { path: curated/inventory_position, partition_by: [ds] }
  product_master: { path: curated/product_master }
  sales: { path: raw/sales, partition_by: [ds] }
  reorder_plans: { path: reorder_plans, partition_by: [ds] }
  overrides: { path: overrides }
tasks:
  - id: reorder
    kind: reorder
    policy: periodic_order_up_to
    overrides: overrides
  - id: monitor
    kind: monitor
    depends_on: [reorder]
    plans: reorder_plans
    forecasts: forecasts
    overrides: overrides
    rules: { min_money_at_risk: 1 }
"#;

const CSV: &str = "\
id,kind,store,sku,start_date,end_date,value,author,reason
O-1,order_quantity,CA_1,A,2026-11-20,2026-11-30,30,alice,store opening next week
O-2,order_reject,CA_1,B,,,,bob,supplier on strike
O-3,exclude,CA_1,C,2026-11-27,2026-11-27,,carol,shelf being rebuilt
O-4,order_quantity,CA_1,D,2026-11-27,2026-11-27,5,dave,
O-5,order_quantity,CA_9,A,2026-11-27,2026-11-27,5,erin,typo in the store
O-6,order_reject,CA_1,A,2026-11-25,2026-11-28,,frank,second opinion
";

#[test]
fn overrides_apply_are_audited_and_bad_rows_are_named() {
    overrides_apply(".csv", &|lake| {
        std::fs::write(lake.join("overrides/planners.csv"), CSV).expect("csv");
    });
}

/// The same rows as Parquet, as pandas writes them: dates as Date32 and
/// the value as an integer column.
#[test]
fn overrides_in_parquet_apply_the_same() {
    overrides_apply(".parquet", &|lake| {
        super::pyarrow(&format!(
            r#"
import io, pyarrow as pa, pyarrow.csv as pc, pyarrow.parquet as pq
t = pc.read_csv(io.BytesIO({csv:?}.encode()), convert_options=pc.ConvertOptions(
    column_types={{"start_date": pa.date32(), "end_date": pa.date32(), "value": pa.int64()}}))
pq.write_table(t, "{lake}/overrides/planners.parquet")
print("ok")
"#,
            csv = CSV,
            lake = lake.display()
        ));
    });
}

fn overrides_apply(ext: &str, write: &dyn Fn(&std::path::Path)) {
    let p = Project::new();
    let lake = p.path().join("lake");
    build_lake(&lake);
    std::fs::create_dir_all(lake.join("overrides")).expect("dir");
    write(&lake);
    p.write_dag("plan.yaml", DAG);
    let out = super::run_plan_output(&p, &lake);
    let file = format!("planners{ext}");
    for want in [
        format!("{file} row 4: override O-4 has no `reason` (every override needs one)"),
        format!("{file} row 5: override O-5 names series CA_9/A, which the run does not know"),
        format!("{file} row 6: override O-6 overlaps override O-1 for CA_1/A over the same dates"),
        "overrides: 3 applied, 3 refused (table `overrides`)".to_string(),
    ] {
        assert!(out.contains(&want), "`{want}` not in:\n{out}");
    }

    let plan = rows_of(&lake, "reorder_plans");
    let a = row(&plan, "CA_1", "A");
    assert_eq!(a["order_qty"], 30, "{a}");
    assert_eq!(a["override_id"], "O-1");
    assert_eq!(a["status"], "order");
    let model_qty = a["model_order_qty"].as_i64().expect("model qty");
    assert_ne!(model_qty, 30, "the model's own quantity is kept: {a}");
    let reason = a["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with(&format!(
            "override O-1 by alice (qty 30): store opening next week; the model planned {model_qty}: "
        )),
        "{reason}"
    );
    let b = row(&plan, "CA_1", "B");
    assert_eq!(
        (&b["status"], &b["order_qty"], &b["override_id"]),
        (&"rejected".into(), &0.into(), &"O-2".into())
    );
    let c = row(&plan, "CA_1", "C");
    assert_eq!(
        (&c["status"], &c["order_qty"]),
        (&"excluded".into(), &0.into())
    );
    // D's bad row did not apply: the model's line stands.
    let d = row(&plan, "CA_1", "D");
    assert!(d["override_id"].is_null(), "{d}");

    // C (negative on hand in this lake) is excluded from the alerts too.
    let anomalies = rows_of(&lake, "anomalies");
    assert!(anomalies.iter().all(|r| r["sku"] != "C"), "{anomalies:?}");
    assert!(anomalies.iter().any(|r| r["sku"] == "D"), "{anomalies:?}");
}

/// On weekly forecasts `stale_after_days: 1` means one week: the store
/// whose feed is 4 days old is stale on daily data and fresh on weekly.
#[test]
fn stale_after_is_read_in_the_forecasts_periods() {
    let p = Project::new();
    let lake = p.path().join("lake");
    build_lake(&lake);
    super::pyarrow(&format!(
        r#"
import pathlib, pyarrow as pa, pyarrow.parquet as pq
for f in pathlib.Path("{lake}/forecasts").rglob("*.parquet"):
    t = pq.read_table(f, partitioning=None)
    pq.write_table(t.append_column("frequency", pa.array(["weekly"] * t.num_rows)), f)
print("ok")
"#,
        lake = lake.display()
    ));
    p.write_dag("plan.yaml", super::DAG);
    let out = super::run_plan_output(&p, &lake);
    assert!(
        out.contains("weekly forecasts: stale_after_days 1 is read in periods (7 days)"),
        "{out}"
    );
    let anomalies = rows_of(&lake, "anomalies");
    assert!(
        anomalies.iter().all(|r| r["type"] != "stale_data"),
        "{anomalies:?}"
    );
}
