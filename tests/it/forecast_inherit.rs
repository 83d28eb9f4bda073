//! The forecast task's input mapping through the real binary: taken from
//! the train task it names (a weekly model gives weekly forecast dates
//! although the forecast task says nothing of the frequency), checked
//! against the mapping stored with each model at run time, and a train
//! task whose mapping changed retrains instead of reusing its model.

use crate::common;
use crate::seasonal_lake;

use std::path::Path;

use arrow::array::AsArray;
use arrow::datatypes::Date32Type;
use chrono::{Days, NaiveDate};
use common::Project;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use seasonal_lake::SalesRows;

const WEEKS: u64 = 60;
const HORIZON: u64 = 4;

fn start() -> NaiveDate {
    // A Monday: every date of the table is a Monday.
    NaiveDate::from_ymd_opt(2025, 1, 6).expect("date")
}

fn last_week() -> NaiveDate {
    start() + Days::new(7 * (WEEKS - 1))
}

const TRAIN: &str = r#"id: weekly
tables:
  weekly_sales: { path: weekly_sales }
tasks:
  - id: train
    kind: train
    input: weekly_sales
    series_key: [store, sku]
    group_by: category
    frequency: weekly
    horizon: 4
    model: { context: 8, hidden: 4, epochs: 1, batch_size: 16, batches_per_epoch: 2, origins: 1, seed: 3 }
    retrain: monthly
"#;

const INHERITS: &str = r#"  - id: forecast
    kind: forecast
    depends_on: [train]
    train: train
"#;

/// Repeats the keys instead of naming the train task, and gets the
/// frequency wrong (the default, daily).
const REPEATS_DAILY: &str = r#"  - id: forecast
    kind: forecast
    depends_on: [train]
    input: weekly_sales
    series_key: [store, sku]
    group_by: category
"#;

/// Six series of one category, weekly, with a yearly-ish swing.
fn write_lake(lake: &Path) {
    let (mut store, mut sku, mut cat, mut date, mut units) =
        (vec![], vec![], vec![], vec![], vec![]);
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    for i in 0..6 {
        for w in 0..WEEKS {
            store.push("S1".to_string());
            sku.push(format!("SKU{i}"));
            cat.push("C".to_string());
            let day = start() + Days::new(7 * w);
            date.push((day - epoch).num_days() as i32);
            units.push(10.0 + i as f64 + ((w % 13) as f64 - 6.0).abs());
        }
    }
    SalesRows {
        store,
        sku,
        category: cat,
        date,
        units,
    }
    .write(&lake.join("weekly_sales"));
}

fn run(p: &Project, ds: NaiveDate) -> (bool, String) {
    let o = p
        .restock()
        .args(["run", "weekly", "--date", &ds.to_string()])
        .output()
        .expect("run");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), out)
}

fn validate(p: &Project) -> (Option<i32>, String) {
    let o = p.restock().args(["validate"]).output().expect("validate");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code(), out)
}

fn log(p: &Project, ds: NaiveDate, task: &str) -> String {
    let path = p.path().join(format!(
        ".restock/logs/weekly/weekly.{}T000000Z/{task}/1.log",
        ds.format("%Y%m%d")
    ));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The distinct forecast dates of one forecast partition.
fn forecast_dates(lake: &Path, ds: NaiveDate) -> Vec<NaiveDate> {
    let path = lake.join(format!("forecasts/ds={ds}/part-00000.parquet"));
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    let mut dates = Vec::new();
    for b in reader {
        let b = b.expect("batch");
        let col = b
            .column_by_name("forecast_date")
            .expect("forecast_date")
            .as_primitive::<Date32Type>();
        for i in 0..col.len() {
            dates.push(epoch + chrono::Duration::days(i64::from(col.value(i))));
        }
    }
    dates.sort();
    dates.dedup();
    dates
}

#[test]
fn a_weekly_train_task_gives_its_forecast_weekly_dates_and_the_stored_mapping_is_checked() {
    let p = Project::new();
    let lake = p.path().join("lake");
    write_lake(&lake);

    // Night 1: the forecast names its train task and says nothing else.
    p.write_dag("weekly.yaml", &format!("{TRAIN}{INHERITS}"));
    let (code, out) = validate(&p);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("warning"), "{out}");
    let ds = last_week();
    let (ok, out) = run(&p, ds);
    assert!(ok, "{out}");
    let want: Vec<NaiveDate> = (1..=HORIZON).map(|k| ds + Days::new(7 * k)).collect();
    assert_eq!(forecast_dates(&lake, ds), want);
    let flog = log(&p, ds, "forecast");
    assert!(
        flog.contains("input settings taken from train task `train`")
            && flog.contains("settings: frequency weekly"),
        "{flog}"
    );
    let meta = std::fs::read_to_string(lake.join(format!("models/weekly/C/{ds}/model.json")))
        .expect("model.json");
    let meta: serde_json::Value = serde_json::from_str(&meta).expect("json");
    assert_eq!(meta["input"]["frequency"], "weekly", "{meta}");
    assert_eq!(meta["input"]["gaps"], "missing", "{meta}");
    assert_eq!(meta["input"]["input"], "weekly_sales", "{meta}");

    // Night 2: the forecast repeats the keys with the default (daily)
    // frequency. Validate can only warn (no train task named); the run
    // refuses the weekly model it would serve.
    p.write_dag("weekly.yaml", &format!("{TRAIN}{REPEATS_DAILY}"));
    let (code, out) = validate(&p);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "warning: forecast task `forecast` repeats its input keys; with `train: train`"
        ),
        "{out}"
    );
    let ds2 = ds + Days::new(7);
    let (ok, out) = run(&p, ds2);
    assert!(!ok, "a daily forecast of a weekly model must fail:\n{out}");
    let tlog = log(&p, ds2, "train");
    assert!(
        tlog.contains(&format!("group C: reusing the model of {ds}")),
        "{tlog}"
    );
    assert!(
        out.contains(&format!("group C: the model of {ds} (lstm-C-"))
            && out.contains(
                "does not fit this task: this task reads `frequency: daily` where the model was trained with `frequency: weekly`; this task reads `gaps: zero` where the model was trained with `gaps: missing`; name the train task with `train:`"
            ),
        "{out}"
    );

    // Night 3: the train task's own mapping changed (gaps read as zero
    // sales): its month-old-at-most model no longer fits and is retrained.
    let changed = TRAIN.replace("frequency: weekly\n", "frequency: weekly\n    gaps: zero\n");
    p.write_dag("weekly.yaml", &format!("{changed}{INHERITS}"));
    let ds3 = ds2 + Days::new(7);
    let (ok, out) = run(&p, ds3);
    assert!(ok, "{out}");
    let tlog = log(&p, ds3, "train");
    assert!(
        tlog.contains(&format!(
            "group C: the model of {ds} does not fit the task's settings (the task reads `gaps: zero` where the model was trained with `gaps: missing`); retraining"
        )),
        "{tlog}"
    );
    let want: Vec<NaiveDate> = (1..=HORIZON).map(|k| ds3 + Days::new(7 * k)).collect();
    assert_eq!(forecast_dates(&lake, ds3), want);

    // Night 4: the model settings changed (a wider network, a new seed):
    // the week-old model is retrained, not served against the new shape.
    let wider = changed
        .replace("hidden: 4, epochs: 1", "hidden: 6, epochs: 1")
        .replace("seed: 3", "seed: 4");
    p.write_dag("weekly.yaml", &format!("{wider}{INHERITS}"));
    let ds4 = ds3 + Days::new(7);
    let (ok, out) = run(&p, ds4);
    assert!(ok, "{out}");
    let tlog = log(&p, ds4, "train");
    assert!(
        tlog.contains(&format!(
            "group C: the model of {ds3} does not fit the task's settings (model settings changed: hidden, seed); retraining"
        )),
        "{tlog}"
    );
}
