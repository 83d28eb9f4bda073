//! The planners' worklist: anomalies ranked by their money figure, new
//! ones told apart from those already reported, and a capped headline.
//!
//! * **Rank**: money at risk, largest first; ties by severity, type,
//!   store and sku, so the order is stable.
//! * **New versus recurring**: an anomaly (same type, store and sku) that
//!   the previous night's table already held keeps that row's
//!   `first_seen`; it is `recurring`, or `worse` when its money figure
//!   grew by more than [`WORSE_RATIO`], its severity rose, or (for a
//!   stale feed or stopped demand) it has lasted longer than it had.
//! * **Headline**: critical and warning anomalies that are new or worse,
//!   in rank order, at most `cap` of them. The [`PLACES_PER_TYPE`] most
//!   costly of each type have a place first, so one type cannot crowd out
//!   the others: on a 30,000-series lake a thousand projected stockouts
//!   outweigh, one by one, the single negative on-hand that holds an
//!   order, yet that one needs a different person (the stock feed's
//!   owner) and a fix today. Three, not one: the costliest demand miss of
//!   a night is as often a high-margin item a few units past its band as
//!   a tenfold spike on a cheap one, and both deserve a look. The other
//!   places go by rank. Recurring ones stay in the table (and the CSV)
//!   but are not repeated in the headline.
//!
//! Pure; the `monitor` task reads the previous night's rows and writes
//! the result, the email and the UI show the headline.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::monitor::{Anomaly, Kind, Severity};

/// Growth of the money figure past which a recurring anomaly is `worse`.
pub const WORSE_RATIO: f64 = 1.25;

/// Default number of headline lines.
pub const DEFAULT_HEADLINE: usize = 25;

/// Headline places each type has before the rest go by rank.
pub const PLACES_PER_TYPE: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Novelty {
    New,
    Recurring,
    Worse,
}

impl Novelty {
    pub fn as_str(self) -> &'static str {
        match self {
            Novelty::New => "new",
            Novelty::Recurring => "recurring",
            Novelty::Worse => "worse",
        }
    }
}

/// What the previous night reported for one (type, store, sku).
#[derive(Debug, Clone, PartialEq)]
pub struct Previous {
    pub first_seen: NaiveDate,
    pub severity: Severity,
    pub money_at_risk: f64,
    /// What was observed (for `stale_data`, the feed's age in days).
    pub observed: f64,
}

/// Identity of an anomaly across nights.
pub type Key = (Kind, Option<String>, Option<String>);

pub fn key(a: &Anomaly) -> Key {
    (a.kind, a.store.clone(), a.sku.clone())
}

/// One anomaly placed on the worklist.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub anomaly: Anomaly,
    pub novelty: Novelty,
    pub first_seen: NaiveDate,
    /// 1 = largest money figure.
    pub rank: usize,
    pub headline: bool,
}

/// Totals a report quotes next to the headline.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Summary {
    pub total_money: f64,
    pub headline_money: f64,
    pub headline_lines: usize,
    /// `headline_money / total_money` (0 when there is nothing at risk).
    pub headline_share: f64,
}

fn novelty(a: &Anomaly, prev: Option<&Previous>) -> (Novelty, NaiveDate) {
    match prev {
        None => (Novelty::New, a.date),
        Some(p) => {
            let grew = a.money_at_risk > p.money_at_risk * WORSE_RATIO + 0.005;
            let rose = a.severity < p.severity;
            // A stale feed or a silent shelf gets worse by the day.
            let longer = matches!(a.kind, Kind::StaleData | Kind::DemandStopped);
            let older = longer && a.observed > p.observed;
            let n = if grew || rose || older {
                Novelty::Worse
            } else {
                Novelty::Recurring
            };
            (n, p.first_seen)
        }
    }
}

/// Rank, mark and cap. `previous` holds last night's anomalies by key.
pub fn build(
    anomalies: Vec<Anomaly>,
    previous: &HashMap<Key, Previous>,
    cap: usize,
) -> (Vec<Entry>, Summary) {
    let mut v = anomalies;
    v.sort_by(|a, b| {
        b.money_at_risk
            .total_cmp(&a.money_at_risk)
            .then(a.severity.cmp(&b.severity))
            .then((a.kind, &a.store, &a.sku).cmp(&(b.kind, &b.store, &b.sku)))
    });
    let mut entries: Vec<Entry> = v
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let (novelty, first_seen) = novelty(&a, previous.get(&key(&a)));
            Entry {
                anomaly: a,
                novelty,
                first_seen,
                rank: i + 1,
                headline: false,
            }
        })
        .collect();
    for i in headline_places(&entries, cap) {
        entries[i].headline = true;
    }
    let mut summary = Summary::default();
    for e in &entries {
        summary.total_money += e.anomaly.money_at_risk;
        if e.headline {
            summary.headline_lines += 1;
            summary.headline_money += e.anomaly.money_at_risk;
        }
    }
    if summary.total_money > 0.0 {
        summary.headline_share = summary.headline_money / summary.total_money;
    }
    (entries, summary)
}

/// Indices (into `entries`, in rank order) of the headline: critical and
/// warning entries that are new or worse; first the top
/// [`PLACES_PER_TYPE`] of each type, then the rest by rank, `cap` in all.
/// When the types' places alone pass the cap, every type's first place
/// comes before any type's second.
fn headline_places(entries: &[Entry], cap: usize) -> Vec<usize> {
    let eligible: Vec<usize> = (0..entries.len())
        .filter(|&i| {
            let e = &entries[i];
            e.anomaly.severity != Severity::Info && e.novelty != Novelty::Recurring
        })
        .collect();
    // (place within its type, index): sorting puts every type's first
    // place (in rank order) before any second place.
    let mut seen: HashMap<Kind, usize> = HashMap::new();
    let mut reserved: Vec<(usize, usize)> = Vec::new();
    for &i in &eligible {
        let n = seen.entry(entries[i].anomaly.kind).or_insert(0);
        if *n < PLACES_PER_TYPE {
            reserved.push((*n, i));
            *n += 1;
        }
    }
    reserved.sort_unstable();
    let mut places: Vec<usize> = reserved.into_iter().map(|(_, i)| i).take(cap).collect();
    for &i in &eligible {
        if places.len() >= cap {
            break;
        }
        if !places.contains(&i) {
            places.push(i);
        }
    }
    places.sort_unstable();
    places
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::money::MoneyKind;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).expect("date")
    }

    fn a(sku: &str, kind: Kind, severity: Severity, money: f64) -> Anomaly {
        Anomaly {
            date: day(27),
            store: Some("CA_1".into()),
            sku: Some(sku.into()),
            kind,
            severity,
            observed: 0.0,
            expected: 0.0,
            message: String::new(),
            reason: String::new(),
            money_at_risk: money,
            money_kind: MoneyKind::MarginAtRisk,
        }
    }

    /// (sku, rank) of the headline entries, in order.
    fn headline(e: &[Entry]) -> Vec<(&str, usize)> {
        e.iter()
            .filter(|x| x.headline)
            .map(|x| (x.anomaly.sku.as_deref().unwrap_or(""), x.rank))
            .collect()
    }

    #[test]
    fn ranked_by_money_and_capped() {
        let list = vec![
            a("A", Kind::Stockout, Severity::Critical, 10.0),
            a("B", Kind::ProjectedStockout, Severity::Warning, 300.0),
            a("C", Kind::Overstock, Severity::Info, 1000.0),
            a("D", Kind::Stockout, Severity::Critical, 50.0),
        ];
        let (e, s) = build(list, &HashMap::new(), 2);
        let order: Vec<&str> = e
            .iter()
            .map(|x| x.anomaly.sku.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(order, ["C", "B", "D", "A"]);
        let ranks: Vec<usize> = e.iter().map(|x| x.rank).collect();
        assert_eq!(ranks, [1, 2, 3, 4]);
        // Info never heads the list; the cap of 2 leaves A out.
        let head: Vec<bool> = e.iter().map(|x| x.headline).collect();
        assert_eq!(head, [false, true, true, false]);
        assert_eq!(s.headline_lines, 2);
        assert_eq!(s.total_money, 1360.0);
        assert!((s.headline_share - 350.0 / 1360.0).abs() < 1e-12);
        assert!(e.iter().all(|x| x.novelty == Novelty::New));
        assert!(e.iter().all(|x| x.first_seen == day(27)));
    }

    #[test]
    fn the_top_anomaly_of_each_type_has_a_headline_place() {
        let mut list: Vec<Anomaly> = (0..30)
            .map(|i| {
                let sku = format!("P{i:02}");
                a(
                    &sku,
                    Kind::ProjectedStockout,
                    Severity::Warning,
                    1000.0 + i as f64,
                )
            })
            .collect();
        list.push(a("N1", Kind::NegativeOnHand, Severity::Critical, 40.0));
        list.push(a("N2", Kind::NegativeOnHand, Severity::Critical, 30.0));
        list.push(a("S", Kind::Stockout, Severity::Info, 5000.0));
        let (e, s) = build(list, &HashMap::new(), 6);
        let head = headline(&e);
        // Both negative on-hands (ranks 32 and 33) take a place, the info
        // stockout never does; three projected stockouts have their
        // type's places, the sixth place goes by rank, and the headline
        // keeps rank order.
        assert_eq!(
            head,
            [
                ("P29", 2),
                ("P28", 3),
                ("P27", 4),
                ("P26", 5),
                ("N1", 32),
                ("N2", 33)
            ]
        );
        assert_eq!(s.headline_lines, 6);
        // A cap smaller than the number of types keeps the costliest types.
        let list = vec![
            a("A", Kind::Stockout, Severity::Critical, 10.0),
            a("B", Kind::Overstock, Severity::Warning, 20.0),
            a("C", Kind::NegativeOnHand, Severity::Critical, 5.0),
        ];
        let (e, _) = build(list, &HashMap::new(), 2);
        assert_eq!(headline(&e), [("B", 1), ("A", 2)]);
    }

    #[test]
    fn each_type_has_three_places_and_first_places_come_first() {
        // 30 costly projected stockouts would fill the cap by rank; the
        // third costliest demand miss (a spike on a cheap item) still has
        // its type's place, the fourth does not.
        let mut list: Vec<Anomaly> = (0..30)
            .map(|i| {
                let sku = format!("P{i:02}");
                let money = 1000.0 + i as f64;
                a(&sku, Kind::ProjectedStockout, Severity::Warning, money)
            })
            .collect();
        for (sku, money) in [("D1", 90.0), ("D2", 80.0), ("D3", 70.0), ("D4", 60.0)] {
            list.push(a(
                sku,
                Kind::DemandOutsideInterval,
                Severity::Warning,
                money,
            ));
        }
        let (e, _) = build(list, &HashMap::new(), 8);
        assert_eq!(
            headline(&e),
            [
                ("P29", 1),
                ("P28", 2),
                ("P27", 3),
                ("P26", 4),
                ("P25", 5),
                ("D1", 31),
                ("D2", 32),
                ("D3", 33)
            ]
        );
        // Four places: each type's first two, not one type's three.
        let (e, _) = build(
            e.into_iter().map(|x| x.anomaly).collect(),
            &HashMap::new(),
            4,
        );
        assert_eq!(
            headline(&e),
            [("P29", 1), ("P28", 2), ("D1", 31), ("D2", 32)]
        );
    }

    #[test]
    fn recurring_is_not_repeated_unless_worse() {
        let prev = |money: f64, severity: Severity| Previous {
            first_seen: day(20),
            severity,
            money_at_risk: money,
            observed: 0.0,
        };
        let mut previous = HashMap::new();
        let same = a("A", Kind::Stockout, Severity::Critical, 100.0);
        let grown = a("B", Kind::Stockout, Severity::Critical, 200.0);
        let escalated = a("C", Kind::ProjectedStockout, Severity::Critical, 5.0);
        previous.insert(key(&same), prev(100.0, Severity::Critical));
        previous.insert(key(&grown), prev(100.0, Severity::Critical));
        previous.insert(key(&escalated), prev(5.0, Severity::Warning));
        let fresh = a("D", Kind::Stockout, Severity::Critical, 1.0);
        let (e, _) = build(vec![same, grown, escalated, fresh], &previous, 25);
        let by = |sku: &str| {
            e.iter()
                .find(|x| x.anomaly.sku.as_deref() == Some(sku))
                .expect("entry")
        };
        assert_eq!(
            (by("A").novelty, by("A").first_seen, by("A").headline),
            (Novelty::Recurring, day(20), false)
        );
        assert_eq!((by("B").novelty, by("B").headline), (Novelty::Worse, true));
        assert_eq!((by("C").novelty, by("C").headline), (Novelty::Worse, true));
        assert_eq!(
            (by("D").novelty, by("D").first_seen, by("D").headline),
            (Novelty::New, day(27), true)
        );
    }
}
