//! The planners' report as data ([`Report`]) and its rendering into a
//! subject, plain-text and HTML bodies and CSV attachments
//! ([`RenderedReport`]).
//!
//! Owns the numbers a planner reads (counts by type and severity, the top
//! anomalies, the orders) and their formatting. Does not read tables (see
//! `tasks::email`), draw charts (see [`super::chart`]) or assemble MIME
//! (see [`super::message`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How many anomalies and orders the bodies list; the CSVs carry all.
pub const HEADLINE: usize = 25;
pub const TOP_ORDERS: usize = 15;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A template in the repository does not render: a bug, not a user fault.
    #[error("report template {name}: {source}")]
    Template {
        name: &'static str,
        source: minijinja::Error,
    },
    #[error("report CSV: {0}")]
    Csv(String),
    #[error("report chart: {0}")]
    Chart(String),
}

/// One detected stock anomaly.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Anomaly {
    pub date: String,
    pub store: String,
    pub sku: String,
    /// Anomaly type, e.g. `stockout`, `overstock`, `demand_spike`.
    pub kind: String,
    /// `critical`, `warning` or `info` (others sort last).
    pub severity: String,
    pub observed: f64,
    /// Expected value or the threshold that was crossed.
    pub expected: f64,
    pub message: String,
    /// How the money figure was reached (empty when the table has none).
    #[serde(default)]
    pub reason: String,
    /// Money at risk (margin, capital or order value); None when unknown.
    #[serde(default)]
    pub money_at_risk: Option<f64>,
    /// `new`, `recurring` or `worse` (empty when unknown).
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub first_seen: String,
    /// Whether the monitor put it on the headline (None: not decided).
    #[serde(default)]
    pub headline: Option<bool>,
}

/// One line of the reorder plan.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Order {
    pub sku: String,
    pub store: String,
    pub qty: f64,
    pub order_value: f64,
    pub order_by: String,
    /// Why the line is that size (empty when the plan has no reasons).
    #[serde(default)]
    pub reason: String,
}

/// A plan line held on bad input: nothing is ordered until it is fixed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Held {
    pub sku: String,
    pub store: String,
    /// The order value the line would have had.
    pub would_be_value: f64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryPoint {
    pub date: String,
    pub value: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ForecastPoint {
    pub date: String,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
}

/// Recent history and forecast band of one SKU at one store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SkuSeries {
    pub sku: String,
    pub store: String,
    pub history: Vec<HistoryPoint>,
    pub forecast: Vec<ForecastPoint>,
}

/// Everything one report says.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub dag_id: String,
    pub run_id: String,
    /// Logical date of the run, `YYYY-MM-DD`.
    pub ds: String,
    pub anomalies: Vec<Anomaly>,
    pub orders: Vec<Order>,
    /// Held plan lines, listed apart; never in the order value.
    #[serde(default)]
    pub held: Vec<Held>,
    /// Series of the worst SKUs, worst first (the chart draws up to three).
    pub series: Vec<SkuSeries>,
}

/// Rank used to sort severities, most severe first.
pub fn severity_rank(s: &str) -> u8 {
    match s.to_ascii_lowercase().as_str() {
        "critical" => 0,
        "high" => 1,
        "warning" => 2,
        "medium" => 3,
        "low" => 4,
        "info" => 5,
        _ => 6,
    }
}

fn relative_gap(a: &Anomaly) -> f64 {
    let gap = (a.observed - a.expected).abs();
    if a.expected.abs() > f64::EPSILON {
        gap / a.expected.abs()
    } else {
        gap
    }
}

/// The share of `total` (the night's money at risk) that the `headline`
/// lines cover; 0 when nothing is at risk. The email's worklist heading
/// and the web UI's planning page both say it.
pub fn headline_share(total: f64, headline: &[&Anomaly]) -> f64 {
    let head: f64 = headline.iter().filter_map(|a| a.money_at_risk).sum();
    if total > 0.0 { head / total } else { 0.0 }
}

/// A share as the reports print it: `0.627` → `63%`.
pub fn format_share(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

/// `1234567.891` → `1,234,568` (decimals: 0) or `1,234,567.89` (2).
pub fn format_number(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s.as_str(), None),
    };
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    let zero = s.chars().all(|c| c == '0' || c == '.');
    if v < 0.0 && !zero {
        out.insert(0, '-');
    }
    out
}

/// Quantities: whole numbers without decimals, others with two.
fn format_qty(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format_number(v, 0)
    } else {
        format_number(v, 2)
    }
}

#[derive(Debug, Serialize)]
struct CountRow {
    kind: String,
    critical: usize,
    warning: usize,
    other: usize,
    total: usize,
}

#[derive(Debug, Serialize)]
struct AnomalyView {
    date: String,
    store: String,
    sku: String,
    kind: String,
    severity: String,
    observed: String,
    expected: String,
    message: String,
    money: String,
    /// `new`, `since 2026-11-20`, `worse, since …` (empty when unknown).
    seen: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct OrderView {
    sku: String,
    store: String,
    qty: String,
    order_value: String,
    order_by: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct HeldView {
    sku: String,
    store: String,
    would_be_value: String,
    reason: String,
}

/// The rendered parts of a report, ready to be put into a message.
#[derive(Debug, Clone)]
pub struct RenderedReport {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// PNG of the worst SKUs' history and forecast band, if any series.
    pub chart_png: Option<Vec<u8>>,
    pub anomalies_csv: Vec<u8>,
    pub orders_csv: Vec<u8>,
}

/// Content-ID of the inline chart, referenced as `cid:` in the HTML.
pub const CHART_CID: &str = "worst-skus.restock";

/// Options of the rendering that come from the task, not the data.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub subject_prefix: String,
    /// Lines of the headline list (the CSV carries every anomaly).
    pub headline: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            subject_prefix: "[restock]".into(),
            headline: HEADLINE,
        }
    }
}

impl Report {
    pub fn severity_count(&self, severity: &str) -> usize {
        self.anomalies
            .iter()
            .filter(|a| a.severity.eq_ignore_ascii_case(severity))
            .count()
    }

    /// Total value of the orders to place.
    pub fn order_value(&self) -> f64 {
        self.orders.iter().map(|o| o.order_value).sum()
    }

    /// `[restock] nightly_inventory 2026-11-27: 3 critical, 5 warning
    /// anomalies, 12 orders`.
    pub fn subject(&self, prefix: &str) -> String {
        let critical = self.severity_count("critical");
        let warning = self.severity_count("warning");
        let other = self.anomalies.len() - critical - warning;
        let mut counts = format!("{critical} critical, {warning} warning");
        if other > 0 {
            counts.push_str(&format!(", {other} other"));
        }
        let orders = self.orders.len();
        let plural = if orders == 1 { "order" } else { "orders" };
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix} ")
        };
        format!(
            "{prefix}{} {}: {counts} anomalies, {orders} {plural}",
            self.dag_id, self.ds
        )
    }

    fn counts(&self) -> Vec<CountRow> {
        let mut by_kind: BTreeMap<&str, CountRow> = BTreeMap::new();
        for a in &self.anomalies {
            let row = by_kind.entry(a.kind.as_str()).or_insert_with(|| CountRow {
                kind: a.kind.clone(),
                critical: 0,
                warning: 0,
                other: 0,
                total: 0,
            });
            match a.severity.to_ascii_lowercase().as_str() {
                "critical" => row.critical += 1,
                "warning" => row.warning += 1,
                _ => row.other += 1,
            }
            row.total += 1;
        }
        let mut rows: Vec<CountRow> = by_kind.into_values().collect();
        rows.sort_by(|a, b| {
            b.critical
                .cmp(&a.critical)
                .then(b.total.cmp(&a.total))
                .then(a.kind.cmp(&b.kind))
        });
        rows
    }

    /// Anomalies by money at risk when the table carries it (largest
    /// first, then most severe); otherwise most severe first, then by
    /// relative gap to expected.
    pub fn ranked_anomalies(&self) -> Vec<&Anomaly> {
        self.ranked_indices()
            .into_iter()
            .map(|i| &self.anomalies[i])
            .collect()
    }

    /// [`Report::ranked_anomalies`] as indices into `anomalies`.
    fn ranked_indices(&self) -> Vec<usize> {
        let a = &self.anomalies;
        let mut v: Vec<usize> = (0..a.len()).collect();
        let money = |i: usize| a[i].money_at_risk.unwrap_or(0.0);
        let by_money = a.iter().any(|x| x.money_at_risk.is_some());
        v.sort_by(|&i, &j| {
            let m = if by_money {
                money(j).total_cmp(&money(i))
            } else {
                std::cmp::Ordering::Equal
            };
            let (x, y) = (&a[i], &a[j]);
            m.then(severity_rank(&x.severity).cmp(&severity_rank(&y.severity)))
                .then(relative_gap(y).total_cmp(&relative_gap(x)))
                .then(x.date.cmp(&y.date))
        });
        v
    }

    /// The headline: the monitor's choice when the table records it,
    /// else the top of the ranking; at most `cap` lines.
    pub fn headline(&self, cap: usize) -> Vec<&Anomaly> {
        self.headline_indices(cap)
            .into_iter()
            .map(|i| &self.anomalies[i])
            .collect()
    }

    /// [`Report::headline`] as indices into `anomalies`, in headline
    /// order: for a reader that holds more about each row than the report
    /// does (the web UI's planning page).
    pub fn headline_indices(&self, cap: usize) -> Vec<usize> {
        let decided = self.anomalies.iter().any(|a| a.headline.is_some());
        self.ranked_indices()
            .into_iter()
            .filter(|&i| !decided || self.anomalies[i].headline == Some(true))
            .take(cap)
            .collect()
    }

    /// Money at risk of all anomalies and the share the headline covers.
    pub fn money_share(&self, cap: usize) -> Option<(f64, f64)> {
        if !self.anomalies.iter().any(|a| a.money_at_risk.is_some()) {
            return None;
        }
        let total: f64 = self.anomalies.iter().filter_map(|a| a.money_at_risk).sum();
        Some((total, headline_share(total, &self.headline(cap))))
    }

    /// Orders, earliest order-by date first, then largest value.
    pub fn ranked_orders(&self) -> Vec<&Order> {
        let mut v: Vec<&Order> = self.orders.iter().collect();
        v.sort_by(|a, b| {
            a.order_by
                .cmp(&b.order_by)
                .then(b.order_value.total_cmp(&a.order_value))
        });
        v
    }

    fn anomalies_csv(&self) -> Result<Vec<u8>, ReportError> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let err = |e: csv::Error| ReportError::Csv(e.to_string());
        w.write_record([
            "date",
            "store",
            "sku",
            "type",
            "severity",
            "observed",
            "expected",
            "message",
            "money_at_risk",
            "status",
            "first_seen",
            "reason",
        ])
        .map_err(err)?;
        for a in self.ranked_anomalies() {
            w.write_record([
                cell(&a.date).as_ref(),
                cell(&a.store).as_ref(),
                cell(&a.sku).as_ref(),
                cell(&a.kind).as_ref(),
                cell(&a.severity).as_ref(),
                a.observed.to_string().as_str(),
                a.expected.to_string().as_str(),
                cell(&a.message).as_ref(),
                a.money_at_risk
                    .map(|m| format!("{m:.2}"))
                    .unwrap_or_default()
                    .as_str(),
                cell(&a.status).as_ref(),
                cell(&a.first_seen).as_ref(),
                cell(&a.reason).as_ref(),
            ])
            .map_err(err)?;
        }
        w.into_inner().map_err(|e| ReportError::Csv(e.to_string()))
    }

    fn orders_csv(&self) -> Result<Vec<u8>, ReportError> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let err = |e: csv::Error| ReportError::Csv(e.to_string());
        w.write_record([
            "sku",
            "store",
            "status",
            "qty",
            "order_value",
            "order_by",
            "reason",
        ])
        .map_err(err)?;
        for o in self.ranked_orders() {
            w.write_record([
                cell(&o.sku).as_ref(),
                cell(&o.store).as_ref(),
                "order",
                o.qty.to_string().as_str(),
                format!("{:.2}", o.order_value).as_str(),
                cell(&o.order_by).as_ref(),
                cell(&o.reason).as_ref(),
            ])
            .map_err(err)?;
        }
        for h in &self.held {
            w.write_record([
                cell(&h.sku).as_ref(),
                cell(&h.store).as_ref(),
                "held",
                "0",
                "0.00",
                "",
                cell(&h.reason).as_ref(),
            ])
            .map_err(err)?;
        }
        w.into_inner().map_err(|e| ReportError::Csv(e.to_string()))
    }

    /// Render subject, bodies and CSVs; `chart_png` is drawn by the caller
    /// (on the blocking pool) and only tells the HTML whether to show it.
    pub fn render(
        &self,
        opts: &RenderOptions,
        chart_png: Option<Vec<u8>>,
    ) -> Result<RenderedReport, ReportError> {
        let top: Vec<AnomalyView> = self
            .headline(opts.headline)
            .into_iter()
            .map(|a| AnomalyView {
                date: a.date.clone(),
                store: a.store.clone(),
                sku: a.sku.clone(),
                kind: a.kind.clone(),
                severity: a.severity.to_ascii_lowercase(),
                observed: format_qty(a.observed),
                expected: format_qty(a.expected),
                message: a.message.clone(),
                money: a
                    .money_at_risk
                    .map(|m| format_number(m, 2))
                    .unwrap_or_default(),
                seen: match a.status.as_str() {
                    "worse" => format!("worse, since {}", a.first_seen),
                    "recurring" => format!("since {}", a.first_seen),
                    other => other.to_string(),
                },
                reason: a.reason.clone(),
            })
            .collect();
        let held: Vec<HeldView> = self
            .held
            .iter()
            .map(|h| HeldView {
                sku: h.sku.clone(),
                store: h.store.clone(),
                would_be_value: format_number(h.would_be_value, 2),
                reason: h.reason.clone(),
            })
            .collect();
        let share = self.money_share(opts.headline);
        let orders: Vec<OrderView> = self
            .ranked_orders()
            .into_iter()
            .take(TOP_ORDERS)
            .map(|o| OrderView {
                sku: o.sku.clone(),
                store: o.store.clone(),
                qty: format_qty(o.qty),
                order_value: format_number(o.order_value, 2),
                order_by: o.order_by.clone(),
                reason: o.reason.clone(),
            })
            .collect();
        let counts = self.counts();
        let chart_skus: Vec<String> = self
            .series
            .iter()
            .take(super::chart::MAX_PANELS)
            .map(|s| format!("{} @ {}", s.sku, s.store))
            .collect();
        let ctx = minijinja::context! {
            dag_id => &self.dag_id,
            run_id => &self.run_id,
            ds => &self.ds,
            subject => self.subject(&opts.subject_prefix),
            total_anomalies => self.anomalies.len(),
            critical => self.severity_count("critical"),
            warning => self.severity_count("warning"),
            other => self.anomalies.len() - self.severity_count("critical") - self.severity_count("warning"),
            counts => minijinja::Value::from(minijinja::value::Serde(&counts)),
            top => minijinja::Value::from(minijinja::value::Serde(&top)),
            more_anomalies => self.anomalies.len().saturating_sub(top.len()),
            money_total => share.map(|s| format_number(s.0, 2)),
            money_share => share.map(|s| format_share(s.1)),
            held => minijinja::Value::from(minijinja::value::Serde(&held)),
            held_value => format_number(self.held.iter().map(|h| h.would_be_value).sum(), 2),
            orders => minijinja::Value::from(minijinja::value::Serde(&orders)),
            order_count => self.orders.len(),
            more_orders => self.orders.len().saturating_sub(TOP_ORDERS),
            order_value => format_number(self.order_value(), 2),
            chart_cid => chart_png.as_ref().map(|_| CHART_CID),
            chart_skus => chart_skus,
        };
        let env = environment();
        let render = |name: &'static str| -> Result<String, ReportError> {
            env.get_template(name)
                .and_then(|t| t.render(&ctx))
                .map_err(|source| ReportError::Template { name, source })
        };
        Ok(RenderedReport {
            subject: self.subject(&opts.subject_prefix),
            text: render("report.txt")?,
            html: render("report.html")?,
            chart_png,
            anomalies_csv: self.anomalies_csv()?,
            orders_csv: self.orders_csv()?,
        })
    }
}

/// Pad on the right to `width` characters (plain-text tables).
fn ljust(v: String, width: usize) -> String {
    format!("{v:<width$}")
}

/// Pad on the left to `width` characters: numbers align on the right.
fn rjust(v: String, width: usize) -> String {
    format!("{v:>width$}")
}

fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    env.add_filter("ljust", ljust);
    env.add_filter("rjust", rjust);
    // Templates are part of the binary; a broken one fails the unit tests.
    let templates: [(&str, &str); 2] = [
        (
            "report.txt",
            include_str!("../../templates/email/report.txt"),
        ),
        (
            "report.html",
            include_str!("../../templates/email/report.html"),
        ),
    ];
    for (name, source) in templates {
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "report template does not parse");
        }
    }
    env
}

/// A small report with every section filled, for tests and the benchmark.
pub fn sample_report() -> Report {
    let anomaly = |sku: &str, kind: &str, sev: &str, obs: f64, exp: f64| Anomaly {
        date: "2026-11-27".into(),
        store: "S01".into(),
        sku: sku.into(),
        kind: kind.into(),
        severity: sev.into(),
        observed: obs,
        expected: exp,
        message: format!("{kind} on {sku}"),
        reason: String::new(),
        money_at_risk: None,
        status: String::new(),
        first_seen: String::new(),
        headline: None,
    };
    let series = |sku: &str, base: f64| SkuSeries {
        sku: sku.into(),
        store: "S01".into(),
        history: (0..28)
            .map(|i| HistoryPoint {
                date: format!("2026-10-{:02}", i + 1),
                value: base + 10.0 * ((i as f64) * 0.7).sin() + i as f64 * 0.5,
            })
            .collect(),
        forecast: (0..14)
            .map(|i| {
                let m = base + 14.0 + 8.0 * ((i as f64 + 28.0) * 0.7).sin();
                let w = 4.0 + i as f64 * 0.8;
                ForecastPoint {
                    date: format!("2026-11-{:02}", i + 1),
                    p10: m - w,
                    p50: m,
                    p90: m + w,
                }
            })
            .collect(),
    };
    Report {
        dag_id: "nightly_inventory".into(),
        run_id: "nightly_inventory__2026-11-27T00:00:00Z__1".into(),
        ds: "2026-11-27".into(),
        anomalies: vec![
            anomaly("SKU-1001", "stockout", "critical", 0.0, 42.0),
            anomaly("SKU-1002", "stockout", "critical", 1.0, 30.0),
            anomaly("SKU-2001", "demand_spike", "critical", 380.0, 120.0),
            anomaly("SKU-3001", "overstock", "warning", 1250.0, 600.0),
            anomaly("SKU-3002", "overstock", "warning", 900.0, 600.0),
            anomaly("SKU-2002", "demand_spike", "warning", 190.0, 120.0),
            anomaly("SKU-4001", "negative_stock", "warning", -3.0, 0.0),
            anomaly("SKU-4002", "stale_count", "warning", 15.0, 7.0),
        ],
        orders: (0..12)
            .map(|i| Order {
                sku: format!("SKU-{}", 1001 + i),
                store: if i % 2 == 0 { "S01" } else { "S02" }.into(),
                qty: 24.0 * (i + 1) as f64,
                order_value: 24.0 * (i + 1) as f64 * 3.75,
                order_by: format!("2026-11-{:02}", 28 + i % 3),
                reason: String::new(),
            })
            .collect(),
        held: Vec::new(),
        series: vec![
            series("SKU-1001", 40.0),
            series("SKU-2001", 120.0),
            series("SKU-3001", 600.0),
        ],
    }
}

/// A text cell a spreadsheet will not run: one starting with `=`, `+`,
/// `-`, `@`, a tab or a carriage return is a formula to Excel and
/// LibreOffice (CSV injection), so it gets a leading `'` (OWASP's advice).
/// Numbers are written by us, not through this.
fn cell(s: &str) -> std::borrow::Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}").into(),
        _ => s.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised() {
        assert_eq!(
            cell("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        for s in ["+1", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(cell(s), format!("'{s}"));
        }
        assert_eq!(cell("SKU-1"), "SKU-1");
        assert_eq!(cell(""), "");
    }

    #[test]
    fn subject_carries_dag_date_and_counts() {
        let r = sample_report();
        assert_eq!(
            r.subject("[restock]"),
            "[restock] nightly_inventory 2026-11-27: 3 critical, 5 warning anomalies, 12 orders"
        );
    }

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(format_number(1234567.891, 2), "1,234,567.89");
        assert_eq!(format_number(999.0, 0), "999");
        assert_eq!(format_number(-1000.0, 0), "-1,000");
        assert_eq!(format_number(-0.001, 2), "0.00");
        assert_eq!(format_qty(12.5), "12.50");
    }

    #[test]
    fn bodies_summarise_counts_and_list_orders() {
        let r = sample_report();
        let out = r.render(&RenderOptions::default(), None).expect("render");
        assert!(out.text.contains("3 critical"), "{}", out.text);
        assert!(out.text.contains("stockout"), "{}", out.text);
        assert!(out.html.contains("3 critical"), "{}", out.html);
        assert!(!out.html.contains("cid:"), "no chart, no image");
        // Total order value: sum of 24*k*3.75 for k in 1..=12 = 7,020.00.
        assert!(out.text.contains("7,020.00"), "{}", out.text);
        assert!(out.html.contains("7,020.00"));
        let csv = String::from_utf8(out.anomalies_csv).expect("utf8");
        assert_eq!(csv.lines().count(), 1 + 8);
        assert!(csv.starts_with(
            "date,store,sku,type,severity,observed,expected,message,money_at_risk,status,first_seen,reason\n"
        ));
        // Most severe first, then furthest from expected (380 vs 120 is
        // +217 %, ahead of the stockouts at -100 % and -97 %).
        let skus: Vec<&str> = csv
            .lines()
            .skip(1)
            .take(3)
            .map(|l| l.split(',').nth(2).unwrap_or(""))
            .collect();
        assert_eq!(skus, ["SKU-2001", "SKU-1001", "SKU-1002"], "{csv}");
    }

    /// A worklist night: ranked by money, the monitor's headline only,
    /// its share of the money at risk, held lines apart and outside the
    /// total.
    #[test]
    fn the_worklist_is_ranked_by_money_and_held_lines_stand_apart() {
        let mut r = sample_report();
        let plan = [
            ("SKU-1001", 40.0, Some(true), "new"),
            ("SKU-1002", 900.0, Some(true), "worse"),
            ("SKU-2001", 500.0, Some(false), "recurring"),
            ("SKU-3001", 60.0, Some(false), "new"),
        ];
        for (a, (sku, money, head, status)) in r.anomalies.iter_mut().zip(plan) {
            a.sku = sku.into();
            a.money_at_risk = Some(money);
            a.headline = head;
            a.status = status.into();
            a.first_seen = "2026-11-20".into();
            a.reason = format!("why {sku}");
        }
        r.held = vec![Held {
            sku: "SKU-9".into(),
            store: "S01".into(),
            would_be_value: 1834.56,
            reason: "held: on hand is -252, an impossible value; fix the stock feed".into(),
        }];
        let head: Vec<&str> = r.headline(25).iter().map(|a| a.sku.as_str()).collect();
        assert_eq!(head, ["SKU-1002", "SKU-1001"]);
        assert_eq!(r.headline_indices(25), [1, 0], "the same lines by index");
        assert_eq!(r.headline(1).len(), 1);
        let (total, share) = r.money_share(25).expect("money");
        assert_eq!(total, 1500.0);
        assert!((share - 940.0 / 1500.0).abs() < 1e-12);
        let out = r.render(&RenderOptions::default(), None).expect("render");
        assert!(
            out.text
                .contains("WORKLIST: 2 lines, 63% of 1,500.00 at risk tonight"),
            "{}",
            out.text
        );
        assert!(out.text.contains("worse, since 2026-11-20"), "{}", out.text);
        assert!(!out.text.contains("why SKU-2001"), "recurring stays out");
        assert!(
            out.text
                .contains("HELD ON BAD INPUT: 1 lines not ordered (would have been 1,834.56"),
            "{}",
            out.text
        );
        assert!(out.html.contains("Held on bad input: 1 lines not ordered"));
        // The order total is unchanged by the held line.
        assert!(out.text.contains("7,020.00"));
        let csv = String::from_utf8(out.orders_csv).expect("utf8");
        assert!(csv.starts_with("sku,store,status,qty,order_value,order_by,reason\n"));
        assert!(
            csv.contains("SKU-9,S01,held,0,0.00,,\"held: on hand is -252"),
            "{csv}"
        );
        let acsv = String::from_utf8(out.anomalies_csv).expect("utf8");
        assert_eq!(acsv.lines().count(), 1 + 8, "the CSV keeps every anomaly");
        assert!(acsv.lines().nth(1).is_some_and(|l| l.contains("SKU-1002")));
    }

    #[test]
    fn html_escapes_data() {
        let mut r = sample_report();
        r.anomalies[0].message = "<script>x</script>".into();
        let out = r.render(&RenderOptions::default(), None).expect("render");
        assert!(!out.html.contains("<script>"));
        assert!(out.text.contains("<script>x</script>"));
    }
}
