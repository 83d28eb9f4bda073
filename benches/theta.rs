//! Theta fitting time per series. Reads the series from the CSV named by
//! RESTOCK_THETA_SERIES (`series_id,values`, values separated by spaces, as
//! `scripts/theta_reference.py export` writes them for Tourism monthly),
//! or else makes 300 synthetic monthly series of 10 years. Forecasts 24
//! steps with season 12, reports mean, median and slowest fit, and with
//! RESTOCK_THETA_OUT writes the forecasts (`series_id,step,mean`) for
//! `scripts/theta_reference.py compare`.
//!
//!   cargo bench --profile dev --bench theta

use std::io::Write;
use std::time::Instant;

use restock::forecast::theta::theta;

const SEASON: usize = 12;
const HORIZON: usize = 24;

fn synthetic() -> Vec<(String, Vec<f64>)> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    (0..300)
        .map(|i| {
            let level = 100.0 + i as f64;
            let slope = (i % 7) as f64 * 0.2 - 0.4;
            let y = (0..120)
                .map(|t| {
                    let season = 1.0 + 0.3 * (std::f64::consts::TAU * t as f64 / 12.0).sin();
                    (level + slope * t as f64) * season * (1.0 + 0.1 * noise())
                })
                .collect();
            (format!("S{i}"), y)
        })
        .collect()
}

fn read(path: &str) -> Vec<(String, Vec<f64>)> {
    let mut reader = match csv::Reader::from_path(path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    reader
        .records()
        .filter_map(|r| r.ok())
        .map(|r| {
            let id = r.get(0).unwrap_or_default().to_string();
            let values = r
                .get(1)
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            (id, values)
        })
        .collect()
}

fn main() {
    let series = match std::env::var("RESTOCK_THETA_SERIES") {
        Ok(path) => read(&path),
        Err(_) => synthetic(),
    };
    let mut times = Vec::with_capacity(series.len());
    let mut out = Vec::with_capacity(series.len());
    let start = Instant::now();
    for (id, y) in &series {
        let t = Instant::now();
        let f = theta(y, SEASON, HORIZON, &[0.1, 0.5, 0.9]);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        out.push((id, f));
    }
    let total = start.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let n = times.len().max(1);
    let mean_len = series.iter().map(|(_, y)| y.len()).sum::<usize>() / n;
    println!(
        "{} series (mean length {mean_len}): {:.3} ms per series (median {:.3}, slowest {:.3}), {total:.2} s in all",
        series.len(),
        times.iter().sum::<f64>() / n as f64,
        times[n / 2],
        times[n - 1],
    );
    if let Ok(path) = std::env::var("RESTOCK_THETA_OUT") {
        let mut file = match std::fs::File::create(&path) {
            Ok(f) => std::io::BufWriter::new(f),
            Err(e) => {
                eprintln!("{path}: {e}");
                std::process::exit(1);
            }
        };
        let _ = writeln!(file, "series_id,step,mean");
        for (id, f) in out {
            match f {
                Ok(f) => {
                    for (k, m) in f.mean.iter().enumerate() {
                        let _ = writeln!(file, "{id},{k},{m}");
                    }
                }
                Err(e) => eprintln!("{id}: {e}"),
            }
        }
    }
}
