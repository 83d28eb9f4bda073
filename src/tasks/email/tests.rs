use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray};

use super::read::{self, Sources};
use crate::dag::model::Table;
use crate::lake::Lake;

fn write(path: &std::path::Path, cols: Vec<(&str, ArrayRef)>) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    let batch = RecordBatch::try_from_iter(cols).expect("batch");
    let f = std::fs::File::create(path).expect("file");
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

fn strs(v: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

fn nums(v: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(v.to_vec()))
}

fn days(v: &[&str]) -> ArrayRef {
    let d = |s: &str| {
        crate::tasks::tables::date32(
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date"),
        )
    };
    Arc::new(Date32Array::from_iter_values(v.iter().map(|s| d(s))))
}

fn path_table(key: &str, path: &str) -> Table {
    Table {
        name: key.into(),
        path: path.into(),
        partition_by: Vec::new(),
        columns: None,
    }
}

/// A lake with two nights of anomalies, an unpartitioned forecast table
/// and three history partitions around the run's date.
fn lake() -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().expect("tmp");
    for (ds, sku) in [("2026-11-27", "B"), ("2026-11-26", "OLD")] {
        write(
            &dir.path().join(format!("anomalies/ds={ds}/part-0.parquet")),
            vec![
                ("date", days(&[ds, ds])),
                ("store", strs(&["S1", "S2"])),
                ("sku", strs(&["A", sku])),
                ("type", strs(&["stockout", "overstock"])),
                ("severity", strs(&["warning", "critical"])),
                ("observed", nums(&[0.0, 900.0])),
                ("expected", nums(&[10.0, 500.0])),
            ],
        );
    }
    write(
        &dir.path().join("forecasts/part-0.parquet"),
        vec![
            ("sku", strs(&["B", "B"])),
            ("store", strs(&["S2", "S2"])),
            ("forecast_date", strs(&["2026-11-29", "2026-11-28"])),
            ("p10", nums(&[1.0, 2.0])),
            ("p50", nums(&[3.0, 4.0])),
            ("p90", nums(&[5.0, 6.0])),
        ],
    );
    for (ds, units) in [
        ("2026-11-20", 1.0),
        ("2026-11-27", 7.0),
        ("2026-11-28", 99.0),
    ] {
        write(
            &dir.path().join(format!("history/ds={ds}/part-0.parquet")),
            vec![
                ("sku", strs(&["B", "B", "Z"])),
                ("store", strs(&["S2", "S2", "S9"])),
                ("date", strs(&["2026-11-27", "2026-11-26", "2026-11-27"])),
                ("units", nums(&[units, units + 1.0, 3.0])),
            ],
        );
    }
    let lake = Lake::open(dir.path().to_str().expect("utf8 path")).expect("lake");
    (dir, lake)
}

fn sources(history_days: Option<u32>) -> Sources {
    Sources {
        anomalies: path_table("anomalies", "anomalies"),
        orders: None,
        forecasts: Some(path_table("forecasts", "forecasts")),
        history: Some((path_table("history", "history"), "units".into())),
        history_days,
        keys: crate::tasks::tables::KeyMap::default(),
    }
}

const RUN: (&str, &str, &str) = ("d", "r", "2026-11-27");

#[tokio::test]
async fn reads_the_runs_rows_into_a_report() {
    let (_dir, lake) = lake();
    let r = read::report(&lake, &sources(None), RUN)
        .await
        .expect("report");
    assert_eq!(
        r.anomalies.len(),
        2,
        "the other night's partition is not read"
    );
    assert!(r.anomalies.iter().all(|a| a.sku != "OLD"));
    assert_eq!(r.anomalies[0].date, "2026-11-27");
    assert_eq!(r.anomalies[0].observed, 0.0);
    assert_eq!(r.anomalies[0].expected, 10.0);
    assert_eq!(r.anomalies[0].money_at_risk, None, "no such column");
    assert_eq!(r.series.len(), 1);
    assert_eq!(r.series[0].sku, "B");
    assert_eq!(r.series[0].forecast[0].date, "2026-11-28", "sorted by date");
    assert_eq!(r.series[0].forecast[0].p50, 4.0);
    // The newest history partition up to the run's date, charted SKUs only.
    let h: Vec<(String, f64)> = r.series[0]
        .history
        .iter()
        .map(|p| (p.date.clone(), p.value))
        .collect();
    assert_eq!(
        h,
        [
            ("2026-11-26".to_string(), 8.0),
            ("2026-11-27".to_string(), 7.0)
        ]
    );
}

#[tokio::test]
async fn history_days_reads_the_last_days_partitions() {
    let (_dir, lake) = lake();
    for (n, points) in [(7, 2), (8, 4)] {
        let r = read::report(&lake, &sources(Some(n)), RUN)
            .await
            .expect("report");
        let h = &r.series[0].history;
        assert_eq!(h.len(), points, "history_days {n}: {h:?}");
        assert!(h.iter().all(|p| p.value < 99.0), "a later partition leaked");
    }
}

#[tokio::test]
async fn a_missing_column_table_or_partition_is_named() {
    let (_dir, lake) = lake();
    let mut s = sources(None);
    s.anomalies = path_table("anomalies", "forecasts");
    let e = read::report(&lake, &s, RUN)
        .await
        .expect_err("no type column");
    let e = e.to_string();
    assert!(
        e.contains("table `anomalies` (`anomalies` of the email) lacks column(s) date, type"),
        "{e}"
    );

    s.anomalies = path_table("anomalies", "nothing_here");
    let e = read::report(&lake, &s, RUN).await.expect_err("no files");
    assert!(
        e.to_string()
            .contains("table `anomalies`: no Parquet files"),
        "{e}"
    );

    let e = read::report(&lake, &sources(None), ("d", "r", "2026-11-28"))
        .await
        .expect_err("no partition");
    assert!(
        e.to_string()
            .contains("table `anomalies` (`anomalies` of the email): no partition ds=2026-11-28"),
        "{e}"
    );
}
