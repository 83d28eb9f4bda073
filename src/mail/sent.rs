//! The record of mailed reports (`sent_mail` in the state database) that
//! makes mailing idempotent: one message per (DAG, run date).

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::StoreError;

/// One delivered report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMail {
    pub dag_id: String,
    pub ds: String,
    pub message_id: String,
    pub sent_at: String,
    /// `smtp` or `outbox`.
    pub transport: String,
    pub recipients: Vec<String>,
    pub forced: bool,
}

/// The latest message delivered for this DAG and date, if any.
pub fn last_sent(c: &Connection, dag_id: &str, ds: &str) -> Result<Option<SentMail>, StoreError> {
    Ok(c.query_row(
        "SELECT dag_id, ds, message_id, sent_at, transport, recipients, forced
         FROM sent_mail WHERE dag_id = ?1 AND ds = ?2
         ORDER BY sent_at DESC, rowid DESC LIMIT 1",
        params![dag_id, ds],
        |r| {
            Ok(SentMail {
                dag_id: r.get(0)?,
                ds: r.get(1)?,
                message_id: r.get(2)?,
                sent_at: r.get(3)?,
                transport: r.get(4)?,
                recipients: r
                    .get::<_, String>(5)?
                    .split(", ")
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                forced: r.get(6)?,
            })
        },
    )
    .optional()?)
}

/// Every message delivered for this DAG and date, oldest first.
pub fn count_sent(c: &Connection, dag_id: &str, ds: &str) -> Result<usize, StoreError> {
    let n: i64 = c.query_row(
        "SELECT COUNT(*) FROM sent_mail WHERE dag_id = ?1 AND ds = ?2",
        params![dag_id, ds],
        |r| r.get(0),
    )?;
    Ok(n as usize)
}

pub fn record_sent(
    c: &Connection,
    dag_id: &str,
    ds: &str,
    message_id: &str,
    transport: &str,
    recipients: &[String],
    forced: bool,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT OR REPLACE INTO sent_mail
         (dag_id, ds, message_id, sent_at, transport, recipients, forced)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            dag_id,
            ds,
            message_id,
            crate::store::ts(Utc::now()),
            transport,
            recipients.join(", "),
            forced
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn records_and_finds_the_last_message() {
        let store = Store::open_in_memory().expect("store");
        store
            .with(|c| {
                assert_eq!(last_sent(c, "d", "2026-11-27")?, None);
                record_sent(
                    c,
                    "d",
                    "2026-11-27",
                    "<a@x>",
                    "smtp",
                    &["p@x.org".into()],
                    false,
                )?;
                record_sent(c, "d", "2026-11-26", "<b@x>", "outbox", &[], false)?;
                let s = last_sent(c, "d", "2026-11-27")?.expect("sent");
                assert_eq!(s.message_id, "<a@x>");
                assert_eq!(s.recipients, vec!["p@x.org"]);
                assert_eq!(count_sent(c, "d", "2026-11-27")?, 1);
                Ok(())
            })
            .expect("sql");
    }
}
