//! Arrow schemas of the demo lake's tables and their encoding into
//! finished Parquet files (zstd, page statistics).
//!
//! Owns column names and types, which other parts of restock query by name;
//! it does not decide where files go or talk to the object store.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use chrono::{Datelike, Duration, NaiveDate};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::catalog::{CATEGORIES, Catalog, DEPARTMENTS, day_labels};
use super::sim::{DayRows, PlanRows};

fn date32(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - 719_163
}

fn field(name: &str, dt: DataType) -> Field {
    Field::new(name, dt, false)
}

pub fn sales_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("date", DataType::Date32),
        field("store", DataType::Utf8),
        field("sku", DataType::Utf8),
        field("category", DataType::Utf8),
        field("department", DataType::Utf8),
        field("units", DataType::Int64),
        field("price", DataType::Float64),
        field("on_promo", DataType::Boolean),
    ]))
}

/// Ground truth of the simulation, not a table a real lake has: the mean
/// of each day's demand distribution, for judging forecasts against the
/// best possible one.
pub fn truth_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("date", DataType::Date32),
        field("store", DataType::Utf8),
        field("sku", DataType::Utf8),
        field("expected_units", DataType::Float64),
    ]))
}

/// The injected anomalies (`truth/anomalies`): what the monitor should
/// find, where and when.
pub fn truth_anomalies_batch(list: &[super::InjectedAnomaly]) -> Result<RecordBatch, ArrowError> {
    let schema = Arc::new(Schema::new(vec![
        field("kind", DataType::Utf8),
        field("expected_type", DataType::Utf8),
        field("store", DataType::Utf8),
        Field::new("sku", DataType::Utf8, true),
        field("first_date", DataType::Date32),
        field("last_date", DataType::Date32),
    ]));
    let col = |f: &dyn Fn(&super::InjectedAnomaly) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(list.iter().map(f)))
    };
    let dates = |f: &dyn Fn(&super::InjectedAnomaly) -> NaiveDate| -> ArrayRef {
        Arc::new(Date32Array::from_iter_values(
            list.iter().map(|a| date32(f(a))),
        ))
    };
    RecordBatch::try_new(
        schema,
        vec![
            col(&|a| a.kind.as_str()),
            col(&|a| a.kind.expected_type()),
            col(&|a| a.store.as_str()),
            Arc::new(StringArray::from_iter(
                list.iter().map(|a| a.sku.as_deref()),
            )),
            dates(&|a| a.first_date),
            dates(&|a| a.last_date),
        ],
    )
}

pub fn truth_batch(cat: &Catalog, day: &DayRows) -> Result<RecordBatch, ArrowError> {
    let n = day.sales_series.len();
    RecordBatch::try_new(
        truth_schema(),
        vec![
            Arc::new(Date32Array::from(vec![date32(day.date); n])),
            store_of(cat, &day.sales_series),
            sku_of(cat, &day.sales_series),
            Arc::new(Float64Array::from(day.expected.clone())),
        ],
    )
}

pub fn inventory_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("date", DataType::Date32),
        field("store", DataType::Utf8),
        field("sku", DataType::Utf8),
        field("on_hand", DataType::Int64),
        field("on_order", DataType::Int64),
    ]))
}

pub fn products_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("sku", DataType::Utf8),
        field("category", DataType::Utf8),
        field("department", DataType::Utf8),
        field("unit_cost", DataType::Float64),
        field("case_pack", DataType::Int64),
        field("moq", DataType::Int64),
        field("lead_time_days", DataType::Float64),
        field("lead_time_std_days", DataType::Float64),
        field("review_period_days", DataType::Int64),
        field("service_level", DataType::Float64),
        field("launch_date", DataType::Date32),
        Field::new("discontinued_date", DataType::Date32, true),
    ]))
}

pub fn calendar_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("date", DataType::Date32),
        field("weekday", DataType::Int32),
        Field::new("holiday", DataType::Utf8, true),
        Field::new("event", DataType::Utf8, true),
    ]))
}

pub fn promo_plan_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("date", DataType::Date32),
        field("store", DataType::Utf8),
        field("sku", DataType::Utf8),
        field("price", DataType::Float64),
        field("on_promo", DataType::Boolean),
    ]))
}

fn store_of(cat: &Catalog, series: &[u32]) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(series.iter().map(|&i| {
        cat.stores[cat.series[i as usize].store].name.as_str()
    })))
}

fn sku_of(cat: &Catalog, series: &[u32]) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(series.iter().map(|&i| {
        cat.products[cat.series[i as usize].product].sku.as_str()
    })))
}

pub fn sales_batch(cat: &Catalog, day: &DayRows) -> Result<RecordBatch, ArrowError> {
    let n = day.sales_series.len();
    let product = |i: &u32| &cat.products[cat.series[*i as usize].product];
    RecordBatch::try_new(
        sales_schema(),
        vec![
            Arc::new(Date32Array::from(vec![date32(day.date); n])),
            store_of(cat, &day.sales_series),
            sku_of(cat, &day.sales_series),
            Arc::new(StringArray::from_iter_values(
                day.sales_series
                    .iter()
                    .map(|i| CATEGORIES[product(i).category]),
            )),
            Arc::new(StringArray::from_iter_values(
                day.sales_series
                    .iter()
                    .map(|i| DEPARTMENTS[product(i).department].0),
            )),
            Arc::new(Int64Array::from(day.units.clone())),
            Arc::new(Float64Array::from(day.price.clone())),
            Arc::new(BooleanArray::from(day.on_promo.clone())),
        ],
    )
}

pub fn inventory_batch(cat: &Catalog, day: &DayRows) -> Result<RecordBatch, ArrowError> {
    let n = day.inv_series.len();
    RecordBatch::try_new(
        inventory_schema(),
        vec![
            Arc::new(Date32Array::from(vec![date32(day.date); n])),
            store_of(cat, &day.inv_series),
            sku_of(cat, &day.inv_series),
            Arc::new(Int64Array::from(day.on_hand.clone())),
            Arc::new(Int64Array::from(day.on_order.clone())),
        ],
    )
}

pub fn products_batch(cat: &Catalog) -> Result<RecordBatch, ArrowError> {
    let p = &cat.products;
    RecordBatch::try_new(
        products_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                p.iter().map(|p| p.sku.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                p.iter().map(|p| CATEGORIES[p.category]),
            )),
            Arc::new(StringArray::from_iter_values(
                p.iter().map(|p| DEPARTMENTS[p.department].0),
            )),
            Arc::new(Float64Array::from_iter_values(
                p.iter().map(|p| p.unit_cost),
            )),
            Arc::new(Int64Array::from_iter_values(p.iter().map(|p| p.case_pack))),
            Arc::new(Int64Array::from_iter_values(p.iter().map(|p| p.moq))),
            Arc::new(Float64Array::from_iter_values(
                p.iter().map(|p| p.lead_time_days),
            )),
            Arc::new(Float64Array::from_iter_values(
                p.iter().map(|p| p.lead_time_std_days),
            )),
            Arc::new(Int64Array::from_iter_values(
                p.iter().map(|p| p.review_period_days),
            )),
            Arc::new(Float64Array::from_iter_values(
                p.iter().map(|p| p.service_level),
            )),
            Arc::new(Date32Array::from_iter_values(
                p.iter().map(|p| date32(p.launch_date)),
            )),
            Arc::new(Date32Array::from_iter(
                p.iter().map(|p| p.discontinued_date.map(date32)),
            )),
        ],
    )
}

pub fn calendar_batch(first: NaiveDate, last: NaiveDate) -> Result<RecordBatch, ArrowError> {
    let days: Vec<NaiveDate> = (0..=(last - first).num_days())
        .map(|d| first + Duration::days(d))
        .collect();
    let labels: Vec<_> = days.iter().map(|d| day_labels(*d)).collect();
    RecordBatch::try_new(
        calendar_schema(),
        vec![
            Arc::new(Date32Array::from_iter_values(
                days.iter().map(|d| date32(*d)),
            )),
            Arc::new(Int32Array::from_iter_values(
                days.iter().map(|d| d.weekday().number_from_monday() as i32),
            )),
            Arc::new(StringArray::from_iter(labels.iter().map(|l| l.0))),
            Arc::new(StringArray::from_iter(labels.iter().map(|l| l.1))),
        ],
    )
}

pub fn promo_plan_batch(cat: &Catalog, plan: &PlanRows) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(
        promo_plan_schema(),
        vec![
            Arc::new(Date32Array::from_iter_values(
                plan.date.iter().map(|d| date32(*d)),
            )),
            store_of(cat, &plan.series),
            sku_of(cat, &plan.series),
            Arc::new(Float64Array::from(plan.price.clone())),
            Arc::new(BooleanArray::from(plan.on_promo.clone())),
        ],
    )
}

/// Writer settings shared by every demo file: zstd and page statistics.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by("restock demo".to_string())
        .build()
}

/// Encodes one batch as a complete Parquet file.
pub fn encode(batch: &RecordBatch) -> Result<Bytes, ParquetError> {
    let mut buf = Vec::with_capacity(1 << 16);
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(writer_properties()))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(Bytes::from(buf))
}
