//! `monitor` on weekly data: one row spans seven days, so a week of zero
//! sales is seven silent days, a missing week is not silence, and the
//! recent-demand window holds a whole row.

use super::{Project, dates, f, i, rows_of, s, write};
use std::path::Path;

/// Weekly rows dated on Sundays, the run on Friday 2026-11-27. W1 sold 70
/// a week and nothing the last two weeks; W2 sells 70 a week and is out of
/// stock; W3 sold nothing one week and then stopped reporting.
fn build_weekly_lake(lake: &Path) {
    let weeks = [
        "2026-10-25",
        "2026-11-01",
        "2026-11-08",
        "2026-11-15",
        "2026-11-22",
    ];
    let units: [(&str, [Option<i64>; 5]); 3] = [
        ("W1", [Some(70), Some(70), Some(70), Some(0), Some(0)]),
        ("W2", [Some(70); 5]),
        ("W3", [Some(70), Some(70), Some(0), None, None]),
    ];
    for (w, week) in weeks.iter().enumerate() {
        let (mut sku, mut sold) = (vec![], vec![]);
        for (name, u) in &units {
            if let Some(u) = u[w] {
                sku.push(*name);
                sold.push(u);
            }
        }
        write(
            lake,
            &format!("raw/sales/ds={week}/part-00000.parquet"),
            vec![
                ("date", dates(&vec![*week; sku.len()])),
                ("store", s(&vec!["CA_1"; sku.len()])),
                ("sku", s(&sku)),
                ("units", i(&sold)),
            ],
        );
    }
    // As restock dates weekly forecasts: the periods after the run date.
    let horizon = ["2026-12-04", "2026-12-11", "2026-12-18", "2026-12-25"];
    let (mut sku, mut fdate, mut step) = (vec![], vec![], vec![]);
    for (name, _) in &units {
        for (k, d) in horizon.iter().enumerate() {
            sku.push(*name);
            fdate.push(*d);
            step.push(k as i64 + 1);
        }
    }
    let n = sku.len();
    write(
        lake,
        "forecasts/ds=2026-11-27/part-00000.parquet",
        vec![
            ("store", s(&vec!["CA_1"; n])),
            ("sku", s(&sku)),
            ("forecast_date", dates(&fdate)),
            ("step", i(&step)),
            ("frequency", s(&vec!["weekly"; n])),
            ("p10", f(&vec![50.0; n])),
            ("p50", f(&vec![70.0; n])),
            ("p90", f(&vec![90.0; n])),
            ("mean", f(&vec![70.0; n])),
        ],
    );
    write(
        lake,
        "curated/inventory_position/ds=2026-11-27/part-00000.parquet",
        vec![
            ("store", s(&["CA_1"; 3])),
            ("sku", s(&["W1", "W2", "W3"])),
            ("on_hand", i(&[100, 0, 100])),
            ("on_order", i(&[0, 0, 0])),
        ],
    );
    write(
        lake,
        "curated/product_master/part-00000.parquet",
        vec![
            ("sku", s(&["W1", "W2", "W3"])),
            ("unit_cost", f(&[2.0; 3])),
            ("case_pack", i(&[1; 3])),
            ("moq", i(&[0; 3])),
            ("lead_time_days", f(&[4.0; 3])),
            ("lead_time_std_days", f(&[1.0; 3])),
            ("review_period_days", i(&[7; 3])),
            ("service_level", f(&[0.95; 3])),
        ],
    );
}

#[test]
fn weekly_zero_rows_are_silent_days_and_a_missing_week_is_not() {
    let p = Project::new();
    let lake = p.path().join("lake");
    build_weekly_lake(&lake);
    p.write_dag("plan.yaml", super::DAG);
    let out = super::run_plan_output(&p, &lake);
    assert!(
        out.contains(
            "weekly forecasts: stale_after_days 1 is read in periods (7 days); \
             recent demand over 13 days"
        ),
        "{out}"
    );
    let anomalies = rows_of(&lake, "anomalies");
    let of = |sku: &str| -> Vec<(String, String)> {
        anomalies
            .iter()
            .filter(|r| r["sku"] == sku)
            .map(|r| {
                (
                    r["type"].as_str().unwrap_or_default().to_string(),
                    r["message"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    // Two weekly rows of zero after the last sale: 14 silent days, against
    // a forecast of 70 a week (10 a day).
    assert_eq!(
        of("W1"),
        vec![(
            "demand_stopped".to_string(),
            "sold nothing for 14 days with 100 on hand, against a forecast of 10 a day".to_string()
        )],
        "{anomalies:?}"
    );
    // Out of stock: the weeks of 11-15 and 11-22 fall in the 13 days.
    assert_eq!(
        of("W2"),
        vec![(
            "stockout".to_string(),
            "out of stock with 140 units sold in the last 13 days".to_string()
        )],
        "{anomalies:?}"
    );
    // One week of zero, then no rows for 19 days: missing data, not demand.
    assert!(
        of("W3").iter().all(|(t, _)| t != "demand_stopped"),
        "{anomalies:?}"
    );
    assert!(
        anomalies.iter().all(|r| r["type"] != "stale_data"),
        "{anomalies:?}"
    );
}
