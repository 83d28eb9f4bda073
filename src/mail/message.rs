//! Assembles the MIME message of a rendered report:
//!
//! ```text
//! multipart/mixed
//! ├── multipart/alternative
//! │   ├── text/plain
//! │   └── multipart/related
//! │       ├── text/html            (<img src="cid:…">)
//! │       └── image/png  inline    (the chart)
//! ├── text/csv  anomalies.csv
//! └── text/csv  reorder_plan.csv
//! ```
//!
//! Every part leaves CRLF-terminated with lines within RFC 5322's 998
//! octets: text is handed to lettre as `String` (which converts bare LF to
//! CRLF and picks quoted-printable or base64 when a line is long), binary
//! parts are base64. Strict servers (aiosmtpd's defaults, Postfix with
//! `smtpd_forbid_bare_newline`) refuse anything else.
//!
//! Owns addressing and the Message-ID; not delivery (see [`super::deliver`]).

use lettre::Message;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};

use super::report::{CHART_CID, RenderedReport};

pub const ANOMALIES_CSV: &str = "anomalies.csv";
pub const ORDERS_CSV: &str = "reorder_plan.csv";

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("invalid address `{address}`: {message}")]
    Address { address: String, message: String },
    #[error("no recipients: set `to` on the task, `mail.to` in restock.yaml or RESTOCK_MAIL_TO")]
    NoRecipients,
    #[error("cannot build message: {0}")]
    Build(String),
}

/// Who a message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressing {
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
}

impl Addressing {
    /// Every recipient (to, then cc).
    pub fn recipients(&self) -> Vec<String> {
        self.to.iter().chain(&self.cc).cloned().collect()
    }
}

fn mailbox(address: &str) -> Result<Mailbox, MessageError> {
    address
        .parse()
        .map_err(|e: lettre::address::AddressError| MessageError::Address {
            address: address.into(),
            message: e.to_string(),
        })
}

/// A Message-ID naming the DAG and the date, unique per build.
pub fn new_message_id(dag_id: &str, ds: &str, from: &str) -> String {
    let domain = from
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>'))
        .filter(|d| !d.is_empty())
        .unwrap_or("restock.local");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let safe: String = dag_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("<{safe}.{ds}.{nanos:x}.{}@{domain}>", std::process::id())
}

/// The parts of a message the delivery layer reports back.
#[derive(Debug, Clone)]
pub struct Built {
    pub message: Message,
    pub message_id: String,
    pub recipients: Vec<String>,
    pub attachments: Vec<String>,
}

/// The body of a text attachment. lettre sends ASCII bytes with short
/// lines as `7bit` verbatim, bare LF included (a CSV written with `\n`
/// then reads as one line to the server); as a `String` its line endings
/// become CRLF and a long line switches it to quoted-printable. Bytes that
/// are not UTF-8 go as base64.
fn text_body(bytes: Vec<u8>) -> Body {
    match String::from_utf8(bytes) {
        Ok(text) => Body::new(text),
        Err(e) => match Body::new_with_encoding(e.into_bytes(), ContentTransferEncoding::Base64) {
            Ok(body) => body,
            Err(bytes) => Body::new(bytes),
        },
    }
}

/// Why `raw` would be refused by a server enforcing RFC 5321/5322: a bare
/// LF or CR, or a line over 998 octets (1-based line number).
pub fn wire_format_problem(raw: &[u8]) -> Option<String> {
    let mut line = 1;
    let mut start = 0;
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\r' if raw.get(i + 1) == Some(&b'\n') => {
                if i - start > 998 {
                    return Some(format!("line {line} is {} octets long", i - start));
                }
                line += 1;
                i += 2;
                start = i;
                continue;
            }
            b'\r' => return Some(format!("bare CR on line {line}")),
            b'\n' => return Some(format!("bare LF on line {line}")),
            _ => {}
        }
        i += 1;
    }
    (raw.len() - start > 998).then(|| format!("line {line} is {} octets long", raw.len() - start))
}

pub fn build(
    report: &RenderedReport,
    addressing: &Addressing,
    message_id: String,
) -> Result<Built, MessageError> {
    if addressing.to.is_empty() && addressing.cc.is_empty() {
        return Err(MessageError::NoRecipients);
    }
    let mut b = Message::builder()
        .from(mailbox(&addressing.from)?)
        .subject(report.subject.clone())
        .message_id(Some(message_id.clone()));
    for t in &addressing.to {
        b = b.to(mailbox(t)?);
    }
    for c in &addressing.cc {
        b = b.cc(mailbox(c)?);
    }

    let html = SinglePart::html(report.html.clone());
    let html_part = match &report.chart_png {
        Some(png) => MultiPart::related().singlepart(html).singlepart(
            Attachment::new_inline_with_name(CHART_CID.into(), "worst-skus.png".into()).body(
                png.clone(),
                ContentType::parse("image/png").map_err(|e| MessageError::Build(e.to_string()))?,
            ),
        ),
        None => MultiPart::related().singlepart(html),
    };
    let alternative = MultiPart::alternative()
        .singlepart(SinglePart::plain(report.text.clone()))
        .multipart(html_part);
    let csv = ContentType::parse("text/csv; charset=utf-8")
        .map_err(|e| MessageError::Build(e.to_string()))?;
    let body = MultiPart::mixed()
        .multipart(alternative)
        .singlepart(
            Attachment::new(ANOMALIES_CSV.into())
                .body(text_body(report.anomalies_csv.clone()), csv.clone()),
        )
        .singlepart(
            Attachment::new(ORDERS_CSV.into()).body(text_body(report.orders_csv.clone()), csv),
        );
    let message = b
        .multipart(body)
        .map_err(|e| MessageError::Build(e.to_string()))?;
    Ok(Built {
        message,
        message_id,
        recipients: addressing.recipients(),
        attachments: vec![ANOMALIES_CSV.into(), ORDERS_CSV.into()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::report::{RenderOptions, sample_report};

    #[test]
    fn message_has_related_html_inline_png_and_two_csvs() {
        let r = sample_report();
        let rendered = r
            .render(
                &RenderOptions::default(),
                Some(b"\x89PNG\r\n\x1a\nfake".to_vec()),
            )
            .expect("render");
        let addressing = Addressing {
            from: "restock@example.com".into(),
            to: vec!["planners@example.com".into()],
            cc: vec!["lead@example.com".into()],
        };
        let built = build(&rendered, &addressing, "<x@example.com>".into()).expect("build");
        let raw = String::from_utf8(built.message.formatted()).expect("utf8");
        assert!(raw.contains("multipart/related"), "{raw}");
        assert!(raw.contains(&format!("Content-ID: <{CHART_CID}>")), "{raw}");
        assert!(raw.contains("filename=\"anomalies.csv\""));
        assert!(raw.contains("filename=\"reorder_plan.csv\""));
        assert!(raw.contains("Message-ID: <x@example.com>"));
        assert_eq!(built.recipients.len(), 2);
        let none = Addressing {
            to: vec![],
            cc: vec![],
            ..addressing
        };
        assert!(matches!(
            build(&rendered, &none, "<y@x>".into()),
            Err(MessageError::NoRecipients)
        ));
    }

    #[test]
    fn wire_format_problems_are_found() {
        assert_eq!(wire_format_problem(b"a\r\nb\r\n"), None);
        assert_eq!(
            wire_format_problem(b"a\r\nb\nc\r\n").as_deref(),
            Some("bare LF on line 2")
        );
        assert_eq!(
            wire_format_problem(b"a\rb").as_deref(),
            Some("bare CR on line 1")
        );
        let mut long = vec![b'x'; 999];
        long.extend_from_slice(b"\r\n");
        assert_eq!(
            wire_format_problem(&long).as_deref(),
            Some("line 1 is 999 octets long")
        );
        assert_eq!(wire_format_problem(&long[1..]), None);
    }

    #[test]
    fn every_part_is_crlf_with_short_lines_even_for_a_large_report() {
        let mut r = sample_report();
        r.orders = (0..5_000)
            .map(|i| crate::mail::report::Order {
                sku: format!("FOODS_3_{i:03}"),
                store: "CA_1".into(),
                qty: 12.0,
                order_value: 45.5,
                order_by: "2026-11-28".into(),
                reason: String::new(),
            })
            .collect();
        let rendered = r
            .render(&RenderOptions::default(), Some(vec![0x89, b'P', 0, 255]))
            .expect("render");
        assert!(rendered.orders_csv.len() > 100_000);
        let addressing = Addressing {
            from: "restock@example.com".into(),
            to: vec!["planners@example.com".into()],
            cc: vec![],
        };
        let built = build(&rendered, &addressing, "<x@example.com>".into()).expect("build");
        let raw = built.message.formatted();
        assert_eq!(wire_format_problem(&raw), None);
    }
}
