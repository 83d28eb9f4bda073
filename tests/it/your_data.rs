//! docs/your-data.md's worked example, run as written: the DAG between its
//! `example` markers on Dominick's weekly tuna (`../shared/data/`, or
//! RESTOCK_SHARED_DATA), read back with pyarrow.

use crate::common;

use common::Project;

fn example_dag() -> String {
    let doc = include_str!("../../docs/your-data.md");
    let start = doc
        .find("<!-- example: jobs/tuna_weekly.yaml -->")
        .expect("example marker");
    let body = &doc[start..];
    let from = body.find("```yaml\n").expect("yaml block") + "```yaml\n".len();
    let to = body[from..].find("```").expect("end of block") + from;
    body[from..to].to_string()
}

#[test]
fn the_guides_tuna_example_forecasts_13_weeks_for_7_series() {
    let data = std::env::var("RESTOCK_SHARED_DATA").unwrap_or_else(|_| "../shared/data".into());
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(data)
        .join("dominicks_tuna_weekly.parquet");
    assert!(src.is_file(), "{} missing", src.display());
    let p = Project::new();
    let lake = p.path().join("lake");
    std::fs::create_dir_all(lake.join("raw/tuna_sales")).expect("lake");
    std::fs::copy(&src, lake.join("raw/tuna_sales/part-00000.parquet")).expect("copy");
    p.write_dag("tuna_weekly.yaml", &example_dag());
    let o = p
        .restock()
        .env("RESTOCK_LAKE", &lake)
        .args(["run", "tuna_weekly", "--date", "2007-08-13"])
        .output()
        .expect("run");
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("gaps (missing): 7 series"), "{out}");
    assert!(
        out.contains(
            "settings: frequency weekly, history `tuna_sales` (key series_id, date `date`, \
             value `quantity`, one model per `category`), covariates price (known), display \
             (known), future plan none, events none, gaps missing"
        ),
        "{out}"
    );
    let script = format!(
        r#"
import pyarrow.parquet as pq, datetime
t = pq.read_table("{}/forecasts/ds=2007-08-13/part-00000.parquet").to_pylist()
print("rows", len(t), "series", len({{r["series_id"] for r in t}}))
print("freq", sorted({{r["frequency"] for r in t}}))
dates = sorted({{r["forecast_date"] for r in t}})
print("first", dates[0], "last", dates[-1], "weekly", all((b - a).days == 7 for a, b in zip(dates, dates[1:])))
print("ordered", all(r["p10"] <= r["p50"] <= r["p90"] for r in t))
"#,
        lake.display()
    );
    let py = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    let got = String::from_utf8_lossy(&py.stdout).to_string();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    for want in [
        "rows 91 series 7",
        "freq ['weekly']",
        "first 2007-08-20 last 2007-11-12 weekly True",
        "ordered True",
    ] {
        assert!(got.contains(want), "`{want}` not in:\n{got}");
    }
}
