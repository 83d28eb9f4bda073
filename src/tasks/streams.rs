//! A child process's stdout and stderr into the attempt log, with bounds.
//!
//! Streams are read as bytes, not as UTF-8 lines: one invalid byte must not
//! stop the reading (the child would then die of SIGPIPE). Each line keeps
//! at most [`MAX_LINE`] bytes in the log (the rest is counted and noted,
//! not held in memory), and all streams of one attempt share a [`Budget`]
//! of [`MAX_LOG`] bytes; when it is spent the budget's token fires so the
//! caller can stop the process group, and the attempt fails with a clear
//! error instead of filling the disk or the memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio_util::sync::CancellationToken;

use super::AttemptLog;

/// The most one log line keeps.
pub const MAX_LINE: usize = 1 << 20;
/// The most an attempt's stdout and stderr may write, together.
pub const MAX_LOG: u64 = 64 << 20;

/// Bytes an attempt's streams may still write; shared by its readers.
#[derive(Debug, Clone)]
pub struct Budget {
    used: Arc<AtomicU64>,
    limit: u64,
    /// Fires once the limit is passed.
    pub spent: CancellationToken,
}

impl Budget {
    pub fn new(limit: u64) -> Self {
        Self {
            used: Arc::new(AtomicU64::new(0)),
            limit,
            spent: CancellationToken::new(),
        }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Count `n` bytes; false (and the token fired) once past the limit.
    fn take(&self, n: usize) -> bool {
        let before = self.used.fetch_add(n as u64, Ordering::Relaxed);
        if before + n as u64 > self.limit {
            self.spent.cancel();
            return false;
        }
        true
    }
}

/// Copy `stream` into `log` line by line until it ends or the budget is
/// spent. Returns the last non-empty complete line when `keep_last` (stdout
/// may end with a JSON object of outputs).
pub async fn pump<R: AsyncRead + Unpin>(
    stream: R,
    log: &AttemptLog,
    budget: &Budget,
    keep_last: bool,
) -> Option<String> {
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line: Vec<u8> = Vec::new();
    let mut dropped: u64 = 0;
    let mut last = None;
    loop {
        let buf = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(b) => b,
        };
        let (chunk, newline) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], true),
            None => (buf, false),
        };
        let used = chunk.len() + usize::from(newline);
        if !budget.take(used) {
            break;
        }
        let room = MAX_LINE.saturating_sub(line.len()).min(chunk.len());
        line.extend_from_slice(&chunk[..room]);
        dropped += (chunk.len() - room) as u64;
        reader.consume(used);
        if newline {
            emit(log, &line, dropped, keep_last.then_some(&mut last));
            line.clear();
            dropped = 0;
        }
    }
    if !line.is_empty() || dropped > 0 {
        emit(log, &line, dropped, keep_last.then_some(&mut last));
    }
    last
}

fn emit(log: &AttemptLog, line: &[u8], dropped: u64, last: Option<&mut Option<String>>) {
    let text = String::from_utf8_lossy(line);
    if dropped > 0 {
        log.line(&format!(
            "{text} [line cut at {MAX_LINE} bytes; {dropped} more bytes not logged]"
        ));
        return;
    }
    log.line(&text);
    if let Some(last) = last {
        if !text.trim().is_empty() {
            *last = Some(text.into_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn invalid_utf8_long_lines_and_the_budget() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = AttemptLog::create(dir.path().join("1.log")).expect("log");
        let mut input = b"ok\n\xff\xfe bad bytes\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        input.extend(b"\n{\"a\": 1}\n");
        let budget = Budget::new(MAX_LOG);
        let last = pump(&input[..], &log, &budget, true).await;
        assert_eq!(last.as_deref(), Some("{\"a\": 1}"));
        assert!(!budget.spent.is_cancelled());
        let raw = std::fs::read_to_string(log.path()).expect("read");
        // Each line starts with its UTC time and a space.
        let text: String = raw
            .lines()
            .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest))
            .flat_map(|l| [l, "\n"])
            .collect();
        assert!(
            text.starts_with("ok\n\u{fffd}\u{fffd} bad bytes\n"),
            "{text:.40}"
        );
        assert!(text.contains("[line cut at 1048576 bytes; 10 more bytes not logged]"));

        let small = Budget::new(5);
        pump(&b"0123456789\n"[..], &log, &small, false).await;
        assert!(small.spent.is_cancelled());
    }
}
