//! `restock backtest-policy` on a small demo lake, run as the real binary
//! in a project written by `restock init`'s code, with its output table
//! read back by DuckDB and checked against the raw sales DuckDB reads.

use std::path::Path as FsPath;
use std::process::Command;
use std::sync::Arc;

use chrono::NaiveDate;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use restock::demo::{DemoOptions, Scale, generate};

const END: &str = "2025-06-30";

async fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    restock::project::write(dir.path(), false).expect("example project");
    let store = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("local store"));
    let end = NaiveDate::parse_from_str(END, "%Y-%m-%d").expect("date");
    let mut opts = DemoOptions::new(Scale::Small, 42, end);
    opts.stores = Some(2);
    opts.skus = Some(12);
    opts.history_days = Some(240);
    generate(store, &Path::from("lake"), &opts)
        .await
        .expect("demo lake");
    dir
}

fn restock(dir: &FsPath) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_restock"));
    c.current_dir(dir);
    for v in [
        "RESTOCK_CONFIG",
        "RESTOCK_LAKE",
        "RESTOCK_JOBS",
        "RESTOCK_ROOT",
    ] {
        c.env_remove(v);
    }
    c
}

const CHECK: &str = r#"
import duckdb, json, sys
start, end = sys.argv[1], sys.argv[2]
con = duckdb.connect()
out = "read_parquet('lake/policy_backtest/*/*.parquet', hive_partitioning = true)"
sales = "read_parquet('lake/raw/sales/*/*.parquet', hive_partitioning = true)"
r = {}
r["columns"] = [c[0] for c in con.execute(f"DESCRIBE SELECT * FROM {out}").fetchall()]
r["ds"] = [str(x[0]) for x in con.execute(f"SELECT DISTINCT ds FROM {out}").fetchall()]
r["counts"] = {f"{p}/{l}": n for p, l, n in con.execute(
    f"SELECT policy, level, count(*) FROM {out} GROUP BY ALL").fetchall()}
r["fill"] = list(con.execute(
    f"SELECT min(fill_rate), max(fill_rate) FROM {out}").fetchone())
r["series"] = con.execute(f"""SELECT count(*) FROM (SELECT DISTINCT store, sku FROM {sales}
    WHERE date >= DATE '{start}' - INTERVAL 112 DAY AND date <= DATE '{end}')""").fetchone()[0]
r["groups"] = con.execute(f"SELECT count(DISTINCT category) FROM {sales}").fetchone()[0]
r["window_units"] = float(con.execute(f"""SELECT sum(units) FROM {sales}
    WHERE date BETWEEN DATE '{start}' AND DATE '{end}'""").fetchone()[0])
r["overall"] = {p: [d, s, inv] for p, d, s, inv in con.execute(
    f"SELECT policy, demand, served, avg_inventory_units FROM {out} WHERE level = 'overall'").fetchall()}
r["sku_sums"] = {p: [d, s, inv] for p, d, s, inv in con.execute(
    f"""SELECT policy, sum(demand), sum(served), sum(avg_inventory_units) FROM {out}
        WHERE level = 'sku' GROUP BY policy""").fetchall()}
print(json.dumps(r))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn backtest_on_the_demo_lake_writes_every_level_for_the_three_policies() {
    let dir = project().await;
    let out = restock(dir.path())
        .args(["backtest-policy", "--window-days", "60"])
        .output()
        .expect("run restock");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in ["restock", "demo_sim", "moving_average_28"] {
        assert!(stdout.contains(&format!("overall   {p}")), "{stdout}");
    }
    // 60 days ending at the last sales date.
    let start = "2025-05-02";
    assert!(stdout.contains(&format!("{start} .. {END}")), "{stdout}");

    let py = Command::new("python3")
        .current_dir(dir.path())
        .args(["-c", CHECK, start, END])
        .output()
        .expect("python3");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&py.stdout).expect("json");
    let cols: Vec<&str> = r["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    for c in [
        "policy",
        "level",
        "store",
        "sku",
        "group",
        "fill_rate",
        "stockout_days",
        "avg_inventory_units",
        "avg_inventory_value",
        "turns",
    ] {
        assert!(cols.contains(&c), "{c} missing from {cols:?}");
    }
    assert_eq!(r["ds"], serde_json::json!([END]));
    let series = r["series"].as_u64().expect("series");
    let groups = r["groups"].as_u64().expect("groups");
    assert!(series > 20 && groups > 1, "{r}");
    for p in ["restock", "demo_sim", "moving_average_28"] {
        assert_eq!(
            r["counts"][format!("{p}/sku")].as_u64(),
            Some(series),
            "{r}"
        );
        assert_eq!(
            r["counts"][format!("{p}/group")].as_u64(),
            Some(groups),
            "{r}"
        );
        assert_eq!(r["counts"][format!("{p}/overall")].as_u64(), Some(1), "{r}");
        // Every policy serves the same realized demand: the window's sales.
        let overall = &r["overall"][p];
        let units = r["window_units"].as_f64().expect("units");
        assert_eq!(overall[0].as_f64(), Some(units), "{r}");
        let served = overall[1].as_f64().expect("served");
        assert!(served > 0.5 * units && served <= units, "{r}");
        // The overall row adds up the SKU rows.
        let sums = &r["sku_sums"][p];
        assert!(
            (sums[1].as_f64().expect("sum") - served).abs() < 1e-6,
            "{r}"
        );
        let inv = overall[2].as_f64().expect("inventory");
        assert!(
            (sums[2].as_f64().expect("sum") - inv).abs() < 0.01 * inv.max(1.0),
            "{r}"
        );
    }
    let (lo, hi) = (r["fill"][0].as_f64(), r["fill"][1].as_f64());
    assert!(lo.is_some_and(|x| (0.0..=1.0).contains(&x)), "{r}");
    assert!(hi.is_some_and(|x| (0.0..=1.0).contains(&x)), "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_arguments_are_all_reported_before_the_lake_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    restock::project::write(dir.path(), false).expect("example project");
    let out = restock(dir.path())
        .args([
            "backtest-policy",
            "--window-days",
            "0",
            "--sales",
            "nope",
            "--task",
            "monitor",
        ])
        .output()
        .expect("run restock");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--window-days 0 is outside 1..=3650"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--sales nope: no such table under `tables:`"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "task `monitor` of DAG `nightly_inventory` is a `monitor` task, not `reorder`"
        ),
        "{stderr}"
    );
}

/// With `--stored-forecasts`, restock's policy is replayed on the
/// forecasts the DAG stored where a day has them: two nights a month
/// before the end here (their orders arrive inside the window), every
/// series in each, so the count of stored series-days is exact and the
/// review days decided on them are at most that.
#[tokio::test(flavor = "multi_thread")]
async fn stored_forecasts_drive_restocks_policy_on_the_days_that_have_them() {
    let dir = project().await;
    let write = r#"
import duckdb, datetime, pathlib, pyarrow as pa, pyarrow.parquet as pq
con = duckdb.connect()
keys = con.execute("""SELECT DISTINCT store, sku FROM
    read_parquet('lake/raw/sales/*/*.parquet', hive_partitioning = true)
    WHERE date > DATE '2025-06-30' - INTERVAL 172 DAY ORDER BY ALL""").fetchall()
for ds in ["2025-06-01", "2025-06-02"]:
    d0 = datetime.date.fromisoformat(ds)
    rows = [(s, k, d0 + datetime.timedelta(days=h), h) for s, k in keys for h in range(1, 29)]
    t = pa.table({
        "store": [r[0] for r in rows], "sku": [r[1] for r in rows],
        "forecast_date": pa.array([r[2] for r in rows], pa.date32()),
        "step": [r[3] for r in rows], "mean": [50.0] * len(rows),
        "p10": [40.0] * len(rows), "p90": [60.0] * len(rows)})
    out = pathlib.Path(f"lake/forecasts/ds={ds}")
    out.mkdir(parents=True)
    pq.write_table(t, out / "part-00000.parquet")
print(len(keys))
"#;
    let py = Command::new("python3")
        .current_dir(dir.path())
        .args(["-c", write])
        .output()
        .expect("python3");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let series: u64 = String::from_utf8_lossy(&py.stdout)
        .trim()
        .parse()
        .expect("count");
    let run = |extra: &[&str]| {
        let out = restock(dir.path())
            .args(["backtest-policy", "--window-days", "60"])
            .args(extra)
            .output()
            .expect("run restock");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let stored = run(&["--stored-forecasts"]);
    let at = stored
        .find("on the stored forecasts where a day has them (")
        .unwrap_or_else(|| panic!("{stored}"));
    let counts: Vec<u64> = stored[at..]
        .split(['(', ' '])
        .filter_map(|w| w.parse().ok())
        .take(2)
        .collect();
    assert_eq!(counts.len(), 2, "{stored}");
    assert_eq!(counts[1], 2 * series, "{stored}");
    assert!(counts[0] >= 1 && counts[0] <= counts[1], "{stored}");
    // A forecast of 50 a day on those nights orders more than Theta does.
    let theta = run(&[]);
    let line = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("overall   restock"))
            .map(str::to_string)
            .unwrap_or_default()
    };
    assert_ne!(line(&stored), line(&theta), "{stored}\n{theta}");
}
