//! Forecast accuracy figures for `/metrics`, read from the lake: per DAG
//! and group the newest backtest RMSSE of the champion model (the newest
//! `forecast_metrics` partition a `train` task wrote) and the newest
//! realized RMSSE (the newest `forecast_accuracy` partition: the previous
//! forecast scored against the demand that happened).
//!
//! Lake reads are asynchronous DataFusion queries over the newest
//! partition only; the figures are kept for [`LAKE_TTL`], since they
//! change once a night.

use std::time::Duration;

use datafusion::functions_aggregate::expr_fn::max;
use datafusion::prelude::{col, lit};

use crate::dag::Dag;
use crate::lake::Lake;
use crate::tasks::PlanningTable;
use crate::tasks::tables::Cols;
use crate::web::WebError;
use crate::web::planning::Session;

/// How long accuracy figures read from the lake are reused.
pub const LAKE_TTL: Duration = Duration::from_secs(60);

/// Which table a figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// `forecast_metrics`: the rolling-origin backtest at training time.
    Backtest,
    /// `forecast_accuracy`: the previous forecast against realized demand.
    Realized,
}

/// One RMSSE figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Rmsse {
    pub source: Source,
    pub dag_id: String,
    pub group: String,
    pub model_kind: String,
    /// The partition (`ds`) it was read from.
    pub ds: String,
    pub value: f64,
}

fn lake_err(e: impl std::fmt::Display) -> WebError {
    WebError::Lake(e.to_string())
}

/// The newest partition's rows of `path` as RMSSE figures; `champion_only`
/// keeps the backtest's champion rows.
async fn newest(
    lake: &Lake,
    dag_id: &str,
    path: &str,
    source: Source,
) -> Result<Vec<Rmsse>, WebError> {
    let s = Session::new(lake);
    if !s.register_output("t", path).await? {
        return Ok(Vec::new());
    }
    let df = s.table("t").await?;
    let top = df
        .clone()
        .aggregate(vec![], vec![max(col("ds")).alias("newest")])
        .map_err(lake_err)?
        .collect()
        .await
        .map_err(lake_err)?;
    let Some(ds) = top
        .first()
        .map(|b| Cols::new(b, path).str("newest", 0))
        .transpose()?
        .flatten()
    else {
        return Ok(Vec::new());
    };
    let mut df = df
        .filter(col("ds").eq(lit(ds.as_str())))
        .map_err(lake_err)?;
    if source == Source::Backtest {
        df = df.filter(col("champion").eq(lit(true))).map_err(lake_err)?;
    }
    let batches = df
        .select(vec![col("group"), col("model_kind"), col("rmsse")])
        .map_err(lake_err)?
        .collect()
        .await
        .map_err(lake_err)?;
    let mut out = Vec::new();
    for b in &batches {
        let c = Cols::new(b, path);
        for r in 0..b.num_rows() {
            let Some(value) = c.f64("rmsse", r)?.filter(|v| v.is_finite()) else {
                continue;
            };
            out.push(Rmsse {
                source,
                dag_id: dag_id.to_string(),
                group: c.str("group", r)?.unwrap_or_default(),
                model_kind: c.str("model_kind", r)?.unwrap_or_default(),
                ds: ds.clone(),
                value,
            });
        }
    }
    Ok(out)
}

/// Every loaded DAG's newest backtest and realized RMSSE. A DAG whose
/// tables cannot be read is logged and left out, so one bad table does
/// not take the other figures down.
pub async fn read(lake: &Lake, dags: &[std::sync::Arc<Dag>]) -> Vec<Rmsse> {
    let mut out = Vec::new();
    for dag in dags {
        for t in &dag.tasks {
            let Some(PlanningTable::Accuracy { metrics, accuracy }) = t.runner.planning() else {
                continue;
            };
            for (path, source) in [(metrics, Source::Backtest), (accuracy, Source::Realized)] {
                match newest(lake, &dag.id, &path, source).await {
                    Ok(v) => out.extend(v),
                    Err(e) => tracing::warn!(dag = %dag.id, table = %path, error = %e,
                        "forecast accuracy metrics: table unreadable"),
                }
            }
        }
    }
    out.sort_by(|a, b| {
        (a.source, &a.dag_id, &a.group, &a.model_kind).cmp(&(
            b.source,
            &b.dag_id,
            &b.group,
            &b.model_kind,
        ))
    });
    out
}
