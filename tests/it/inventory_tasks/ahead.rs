//! Promotions and events ahead of a line are named in its reason, and
//! only when they fall inside its protection interval.

use super::{Project, build_lake, dates, row, rows_of, s, write};
use arrow::array::{ArrayRef, BooleanArray};
use std::sync::Arc;

const DAG: &str = r#"id: plan
tables:
  forecasts: { path: forecasts, partition_by: [ds] }
  inventory_position: { path: curated/inventory_position, partition_by: [ds] }
  product_master: { path: curated/product_master }
  promo_plan: { path: raw/promo_plan }
  calendar: { path: raw/calendar }
  reorder_plans: { path: reorder_plans, partition_by: [ds] }
tasks:
  - id: reorder
    kind: reorder
    policy: periodic_order_up_to
    promotions: promo_plan
    events: calendar
"#;

#[test]
fn promotions_and_events_inside_the_protection_interval_are_named() {
    let p = Project::new();
    let lake = p.path().join("lake");
    build_lake(&lake);
    // Protection is lead time 4 d + review 7 d: 2026-11-28 to 12-08.
    let promo: ArrayRef = Arc::new(BooleanArray::from(vec![true, true, false]));
    write(
        &lake,
        "raw/promo_plan/part-00000.parquet",
        vec![
            ("date", dates(&["2026-12-01", "2026-12-20", "2026-11-30"])),
            ("store", s(&["CA_1", "CA_1", "CA_1"])),
            ("sku", s(&["A", "B", "D"])),
            ("on_promo", promo),
        ],
    );
    write(
        &lake,
        "raw/calendar/part-00000.parquet",
        vec![
            ("date", dates(&["2026-11-26", "2026-12-05", "2026-12-25"])),
            ("holiday", s(&["Thanksgiving", "WinterSale", "Christmas"])),
        ],
    );
    p.write_dag("plan.yaml", DAG);
    super::run_plan_output(&p, &lake);
    let plans = rows_of(&lake, "reorder_plans");
    let reason = |store: &str, sku: &str| {
        row(&plans, store, sku)["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let a = reason("CA_1", "A");
    assert!(
        a.ends_with("; promotion from 2026-12-01, WinterSale on 2026-12-05"),
        "{a}"
    );
    // B's promotion is after its protection interval; D's row is not a
    // promotion. Both still see the event.
    for sku in ["B", "D"] {
        let r = reason("CA_1", sku);
        assert!(r.ends_with("; WinterSale on 2026-12-05"), "{sku}: {r}");
        assert!(!r.contains("promotion"), "{sku}: {r}");
    }
    assert!(
        !a.contains("Thanksgiving") && !a.contains("Christmas"),
        "{a}"
    );
}
