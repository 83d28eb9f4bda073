//! A small daily lake shared by the training tests: two categories of
//! weekly-seasonal demand with deterministic noise, one `daily/ds=…`
//! partition per call.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;

pub const SERIES: usize = 40;
pub const DAYS: usize = 200;

pub fn start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 5, 1).expect("date")
}

/// Weekly-seasonal demand with ±30% deterministic noise; `spike` multiplies
/// the last day of group `G1`.
pub fn partition(lake: &Path, days: usize, spike: f64) {
    let (mut store, mut sku, mut cat, mut date, mut units) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    for g in ["G1", "G2"] {
        for i in 0..SERIES {
            let level = 5.0 + (i % 7) as f64;
            for t in 0..days {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let noise = 0.7 + 0.6 * ((x >> 11) as f64 / (1u64 << 53) as f64);
                let weekly = [1.0, 0.8, 0.8, 0.9, 1.1, 1.6, 1.4][t % 7];
                let mut v = (level * weekly * noise).round();
                if g == "G1" && t + 1 == days {
                    v *= spike;
                }
                let day = start() + chrono::Days::new(t as u64);
                store.push("S1".to_string());
                sku.push(format!("{g}_{i:02}"));
                cat.push(g.to_string());
                date.push((day - epoch).num_days() as i32);
                units.push(v);
            }
        }
    }
    let ds = start() + chrono::Days::new(days as u64 - 1);
    let rows = SalesRows {
        store,
        sku,
        category: cat,
        date,
        units,
    };
    rows.write(&lake.join(format!("daily/ds={ds}")));
}

/// Sales rows by column (`date` in days since 1970-01-01).
pub struct SalesRows {
    pub store: Vec<String>,
    pub sku: Vec<String>,
    pub category: Vec<String>,
    pub date: Vec<i32>,
    pub units: Vec<f64>,
}

impl SalesRows {
    /// Writes `dir/part-00000.parquet` (`store, sku, category, date, units`).
    pub fn write(self, dir: &Path) {
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("store", Arc::new(StringArray::from(self.store))),
            ("sku", Arc::new(StringArray::from(self.sku))),
            ("category", Arc::new(StringArray::from(self.category))),
            ("date", Arc::new(Date32Array::from(self.date))),
            ("units", Arc::new(Float64Array::from(self.units))),
        ];
        let fields: Vec<Field> = cols
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), false))
            .collect();
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            cols.into_iter().map(|(_, a)| a).collect(),
        )
        .expect("batch");
        std::fs::create_dir_all(dir).expect("mkdir");
        let file = std::fs::File::create(dir.join("part-00000.parquet")).expect("file");
        let mut w = ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
    }
}
