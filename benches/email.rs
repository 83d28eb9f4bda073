//! Times rendering of the planners' report: chart PNG (three panels),
//! HTML and text bodies, CSVs and the MIME message. Target: under 5 s.
//! `cargo bench --bench email` (set RESTOCK_BENCH_PNG=path to keep the chart).

use std::time::Instant;

use restock::mail::report::sample_report;
use restock::mail::{Addressing, RenderOptions, chart, message};

fn main() {
    let report = sample_report();
    let addressing = Addressing {
        from: "restock@example.com".into(),
        to: vec!["planners@example.com".into()],
        cc: vec![],
    };
    let runs = 5;
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let png = match chart::render_png(&report.series) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("chart: {e}");
                std::process::exit(1);
            }
        };
        if let (Some(p), Ok(path)) = (&png, std::env::var("RESTOCK_BENCH_PNG")) {
            let _ = std::fs::write(path, p);
        }
        let rendered = match report.render(&RenderOptions::default(), png) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("render: {e}");
                std::process::exit(1);
            }
        };
        let built = match message::build(&rendered, &addressing, "<bench@example.com>".into()) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("message: {e}");
                std::process::exit(1);
            }
        };
        size = built.message.formatted().len();
        times.push(start.elapsed());
    }
    times.sort();
    let median = times[runs / 2];
    println!(
        "email report render (chart + bodies + CSVs + MIME, {} anomalies, {} orders, {} panels): median {:.1} ms over {runs} runs (min {:.1} ms, max {:.1} ms), message {} KiB; target < 5 s",
        report.anomalies.len(),
        report.orders.len(),
        report.series.len().min(chart::MAX_PANELS),
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[runs - 1].as_secs_f64() * 1e3,
        size / 1024
    );
    if median.as_secs_f64() > 5.0 {
        eprintln!("over the 5 s target");
        std::process::exit(1);
    }
}
