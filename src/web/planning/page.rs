//! The planning pages: `/dags/{id}/planning` (the mail's capped headline
//! with its share of the money at risk, anomalies in worklist order
//! with type and severity filters, orders to place, held lines apart) and
//! `/dags/{id}/planning/skus/{store}/{sku}` (history and forecast band as
//! an inline SVG, drawn by the report mail's chart code on the blocking
//! pool; the plan line and the anomalies of the series).

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::response::Html;
use axum::routing::get;
use minijinja::value::Serde;
use serde::Deserialize;

use super::super::auth::SessionInfo;
use super::super::pages::{DEFAULT_PAGE, Paging, page};
use super::read::Lines;
use super::{AnomalyQuery, AppState, WebError, locate};
use crate::inventory::monitor::{Kind, Severity};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dags/{dag_id}/planning", get(planning_page))
        .route("/dags/{dag_id}/planning/skus/{store}/{sku}", get(sku_page))
}

/// The page's query: the anomaly filters and paging, and the orders'
/// own offset.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    #[serde(rename = "type", default, deserialize_with = "empty_none")]
    kind: Option<Kind>,
    #[serde(default, deserialize_with = "empty_none")]
    severity: Option<Severity>,
    limit: Option<usize>,
    offset: Option<usize>,
    orders_offset: Option<usize>,
}

/// A filter form sends `type=` for "any": read it as no filter.
fn empty_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let s: Option<String> = Option::deserialize(d)?;
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(v) => T::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(v)).map(Some),
    }
}

/// Offsets of the previous and next pages.
fn pager(offset: usize, limit: usize, total: usize) -> (Option<usize>, Option<usize>) {
    let prev = offset.checked_sub(limit).or((offset > 0).then_some(0));
    let next = (offset + limit < total).then_some(offset + limit);
    (prev, next)
}

async fn planning_page(
    State(app): State<AppState>,
    Path(id): Path<String>,
    session: Option<Extension<SessionInfo>>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Html<String>, WebError> {
    let Query(q) = q?;
    let aq = AnomalyQuery {
        kind: q.kind,
        severity: q.severity,
        limit: q.limit,
        offset: q.offset,
    };
    let p = locate(&app, &id).await?;
    let summary = p.summary().await?;
    let (limit, offset) = aq.paging();
    let anomalies = match summary.anomalies {
        0 => None,
        _ => Some(p.anomalies(aq.filter(), None, (limit, offset)).await?),
    };
    let orders_offset = q.orders_offset.unwrap_or(0);
    let (orders, held) = match summary.plan {
        Some(_) => (
            Some(
                p.lines(Lines::Orders, None, (DEFAULT_PAGE, orders_offset))
                    .await?,
            ),
            Some(p.lines(Lines::Held, None, Paging::default().get()).await?),
        ),
        None => (None, None),
    };
    let a_total = anomalies.as_ref().map_or(0, |a| a.total_entries);
    let o_total = orders.as_ref().map_or(0, |o| o.total_entries);
    let (prev, next) = pager(offset, limit, a_total);
    let (o_prev, o_next) = pager(orders_offset, DEFAULT_PAGE, o_total);
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    let ctx = minijinja::context! {
        title => format!("{id} planning"),
        summary => Serde(&summary),
        anomalies => Serde(&anomalies),
        orders => Serde(&orders),
        held => Serde(&held),
        kinds => kinds,
        severities => ["critical", "warning", "info"],
        kind => q.kind.map(Kind::as_str),
        severity => q.severity.map(Severity::as_str),
        limit => limit, offset => offset, prev => prev, next => next,
        orders_offset => orders_offset, o_prev => o_prev, o_next => o_next,
    };
    page(&app, session.as_deref(), "planning.html", ctx)
}

async fn sku_page(
    State(app): State<AppState>,
    Path((id, store, sku)): Path<(String, String, String)>,
    session: Option<Extension<SessionInfo>>,
) -> Result<Html<String>, WebError> {
    let p = locate(&app, &id).await?;
    let s = p.sku(&store, &sku).await?;
    let series = s.series();
    let svg = tokio::task::spawn_blocking(move || crate::mail::chart::render_svg(&[series]))
        .await
        .map_err(|e| WebError::Internal(format!("chart: {e}")))?
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let ctx = minijinja::context! {
        title => format!("{sku} @ {store}"),
        s => Serde(&s),
        // Built by the chart code, which escapes every text it draws.
        chart => svg.map(minijinja::Value::from_safe_string),
    };
    page(&app, session.as_deref(), "sku.html", ctx)
}
