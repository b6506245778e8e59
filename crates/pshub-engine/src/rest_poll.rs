//! The engine's half of the polling REST connector (the poller, which makes the HTTP calls
//! and keeps the cursor, is `pshub_connectors::rest_poll`): a source's settings, the window
//! each run reads, and one page turned into events through the source's mappings.
//!
//! A run reads a **window**: every record modified at or after the window's start, which is
//! the saved cursor less the overlap (records a source stamps earlier than it commits them,
//! as Salesforce's `SystemModstamp` and a long Workday transaction do, are read on the next
//! run). The start goes into the URL where it says `{cursor}` (a query's `updatedFrom`, a
//! report's prompt, a SOQL `WHERE SystemModstamp >= {cursor}`); a source whose URL has no
//! `{cursor}` (a report run whole each time) is filtered here instead. The cursor moves to
//! the newest modification time read, and only once every page of the window is committed:
//! a run stopped mid-window reads the whole window again, and what it had already taken
//! comes back as duplicates by event id. Neither a gap nor a double.

use crate::config::Config;
use crate::hooks::{Received, Secret, Via, map_payload};
use crate::hub::Incoming;
use chrono::{DateTime, Utc};
use pshub_mapping::Expr;
pub use pshub_mapping::parse_timestamp;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The most pages one window reads: a source whose `next` never ends stops here.
pub const MAX_PAGES: usize = 10_000;

/// A source read by polling a REST endpoint (`[sources.<name>]` with
/// `connector = "rest_poll"`).
#[derive(Debug, Clone)]
pub struct RestPoll {
    /// The first page's URL; `{cursor}` in it becomes the window's start (RFC 3339, UTC,
    /// percent-encoded).
    pub url: String,
    /// Where a page holds its records (`.records`, `.Report_Entry`, `.data`).
    pub records: Arc<Expr>,
    /// Where a page names the next page's URL, absolute or from the first URL's origin
    /// (Salesforce's `.nextRecordsUrl`); none, or a null, ends the window.
    pub next: Option<Arc<Expr>>,
    /// Each record's modification time (`.SystemModstamp`, `.Last_Updated`).
    pub cursor: Arc<Expr>,
    /// How far before the saved cursor each window starts.
    pub overlap: Duration,
    /// How often a window is read.
    pub poll: Duration,
    /// Where the first window starts, before any cursor was saved.
    pub start: DateTime<Utc>,
    /// Sent as `Authorization: Bearer <token>`.
    pub token: Option<Secret>,
    /// The mappings that make a record canonical, tried in order.
    pub mappings: Vec<String>,
}

impl RestPoll {
    /// The name its cursor is saved under.
    pub fn cursor_name(source: &str) -> String {
        format!("rest_poll:{source}")
    }

    /// Where the window after the saved cursor `saved` starts.
    pub fn window_start(&self, saved: Option<&str>) -> Result<DateTime<Utc>, String> {
        match saved {
            None => Ok(self.start),
            Some(saved) => {
                let at = parse_timestamp(saved)
                    .ok_or_else(|| format!("the saved cursor '{saved}' is not a timestamp"))?;
                let overlap = chrono::Duration::from_std(self.overlap)
                    .map_err(|_| "the overlap is out of range".to_string())?;
                Ok(at.checked_sub_signed(overlap).unwrap_or(at).max(self.start))
            }
        }
    }

    /// The first page's URL for a window from `from`, to the second below it (SOQL's
    /// date-time literals and Workday's prompts take whole seconds; reaching a little
    /// further back only reads a record again).
    pub fn first_url(&self, from: DateTime<Utc>) -> String {
        let seconds = from.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        self.url.replace("{cursor}", &percent_encode(&seconds))
    }

    /// The URL a page's `next` names, made absolute against the first URL's origin.
    pub fn resolve(&self, next: &str) -> String {
        if next.starts_with("http://") || next.starts_with("https://") {
            return next.to_string();
        }
        let origin_end = self
            .url
            .find("://")
            .and_then(|scheme| {
                self.url[scheme + 3..]
                    .find('/')
                    .map(|slash| scheme + 3 + slash)
            })
            .unwrap_or(self.url.len());
        format!(
            "{}/{}",
            &self.url[..origin_end],
            next.trim_start_matches('/')
        )
    }
}

/// Wakes a poller before its next poll: a change event (Salesforce's Change Data Capture)
/// says there is something to read, and the poller reads its window now.
#[derive(Debug, Default)]
pub struct Wake {
    woken: std::sync::Mutex<bool>,
    signal: std::sync::Condvar,
}

impl Wake {
    pub fn wake(&self) {
        *self.woken.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.signal.notify_all();
    }

    /// Waits until woken or `timeout` has passed; answers whether it was woken (and takes
    /// the wake: the next wait waits again).
    pub fn wait(&self, timeout: Duration) -> bool {
        let woken = self.woken.lock().unwrap_or_else(|p| p.into_inner());
        let (mut woken, _) = self
            .signal
            .wait_timeout_while(woken, timeout, |w| !*w)
            .unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *woken)
    }
}

/// A Salesforce Change Data Capture event's header, in its published JSON shape: the event
/// as the Pub/Sub API or CometD delivers it (`{"data": {"payload": {...}}}`), its payload,
/// or the header itself under `ChangeEventHeader`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub entity: String,
    pub change_type: String,
    pub record_ids: Vec<String>,
    pub changed_fields: Vec<String>,
    pub commit_timestamp: Option<i64>,
}

impl ChangeEvent {
    pub fn parse(body: &Value) -> Option<ChangeEvent> {
        let header = [
            "/ChangeEventHeader",
            "/payload/ChangeEventHeader",
            "/data/payload/ChangeEventHeader",
        ]
        .iter()
        .find_map(|at| body.pointer(at))?;
        let texts = |key: &str| -> Vec<String> {
            header[key]
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Some(ChangeEvent {
            entity: header["entityName"].as_str()?.to_string(),
            change_type: header["changeType"].as_str()?.to_string(),
            record_ids: texts("recordIds"),
            changed_fields: texts("changedFields"),
            commit_timestamp: header["commitTimestamp"].as_i64(),
        })
    }
}

/// A cursor as saved and as sent: RFC 3339 in UTC, to the millisecond.
pub fn cursor_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// What one page gave.
#[derive(Debug, Default)]
pub struct PageRead {
    /// The page's records in the window, each mapped (or refused) into an event.
    pub incoming: Vec<Incoming>,
    /// Records of the page before the window's start, left (a report read whole).
    pub before_window: usize,
    /// Records the mappings did not take, with why.
    pub not_taken: Vec<String>,
    /// The newest modification time among the page's records.
    pub newest: Option<DateTime<Utc>>,
    /// The next page's URL, absolute.
    pub next: Option<String>,
}

/// Reads one page of `source`: its records from `from` on, each through the mappings.
/// A page that is not JSON, or whose records are not a list, is an error: the window stops
/// there and is read again on the next run. A record whose modification time cannot be
/// read is mapped all the same (a record is never dropped), but moves no cursor.
pub fn read_page(
    source: &str,
    poll: &RestPoll,
    url: &str,
    page: &str,
    from: DateTime<Utc>,
    config: &Config,
) -> Result<PageRead, String> {
    let body: Value =
        serde_json::from_str(page).map_err(|e| format!("the page is not JSON: {e}"))?;
    let records = poll
        .records
        .first_of(&body)
        .map_err(|e| format!("records (`{}`): {e}", poll.records.text))?;
    let records = match records {
        Value::Array(records) => records,
        Value::Null => Vec::new(),
        other => {
            let found: String = other.to_string().chars().take(80).collect();
            return Err(format!(
                "records (`{}`) is not a list: found {found}",
                poll.records.text
            ));
        }
    };
    let mut read = PageRead {
        next: match &poll.next {
            None => None,
            Some(next) => match next.first_of(&body) {
                Ok(Value::String(next)) if !next.is_empty() => Some(poll.resolve(&next)),
                Ok(_) => None,
                Err(e) => return Err(format!("next (`{}`): {e}", next.text)),
            },
        },
        ..PageRead::default()
    };
    let via = Via::connector("rest_poll").with("url", Value::from(url));
    for record in records {
        let modified = match poll.cursor.first_of(&record) {
            Ok(Value::String(text)) => parse_timestamp(&text),
            _ => None,
        };
        if modified.is_some_and(|at| at < from) {
            read.before_window += 1;
            continue;
        }
        read.newest = read.newest.max(modified);
        let body = record.to_string();
        match map_payload(source, &poll.mappings, &via, &body, None, config) {
            Received::Event(incoming) => read.incoming.push(incoming),
            Received::NotTaken(why) => read.not_taken.push(why),
        }
    }
    Ok(read)
}

/// Percent-encodes what a query string cannot hold as it is.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(url: &str) -> RestPoll {
        RestPoll {
            url: url.into(),
            records: Arc::new(Expr::compile(".records").unwrap()),
            next: Some(Arc::new(Expr::compile(".nextRecordsUrl").unwrap())),
            cursor: Arc::new(Expr::compile(".SystemModstamp").unwrap()),
            overlap: Duration::from_secs(300),
            poll: Duration::from_secs(60),
            start: DateTime::UNIX_EPOCH,
            token: None,
            mappings: vec![],
        }
    }

    #[test]
    fn a_window_starts_an_overlap_before_the_saved_cursor() {
        let p = poll("http://h:1/services/data/v60.0/query?q=X+%3E%3D+{cursor}");
        assert_eq!(p.window_start(None).unwrap(), DateTime::UNIX_EPOCH);
        let from = p.window_start(Some("2026-03-01T10:05:00.250Z")).unwrap();
        assert_eq!(cursor_text(from), "2026-03-01T10:00:00.250Z");
        assert_eq!(
            p.first_url(from),
            "http://h:1/services/data/v60.0/query?q=X+%3E%3D+2026-03-01T10:00:00Z"
        );
        assert!(p.window_start(Some("yesterday")).is_err());
        assert_eq!(
            p.resolve("/services/data/v60.0/query/01g-2000"),
            "http://h:1/services/data/v60.0/query/01g-2000"
        );
        assert_eq!(p.resolve("https://other/x"), "https://other/x");
    }

    #[test]
    fn a_page_gives_its_records_in_the_window_and_its_next_url() {
        let p = poll("http://h:1/q");
        let page = r#"{"records": [
            {"Id": "1", "SystemModstamp": "2026-03-01T09:00:00.000+0000"},
            {"Id": "2", "SystemModstamp": "2026-03-01T11:00:00.000+0000"},
            {"Id": "3", "SystemModstamp": "not a time"}
        ], "nextRecordsUrl": "/q/2"}"#;
        let from = parse_timestamp("2026-03-01T10:00:00Z").unwrap();
        let read = read_page("sf", &p, "http://h:1/q", page, from, &Config::default()).unwrap();
        assert_eq!(read.before_window, 1);
        // No mapping: each record in the window is refused, never dropped.
        assert_eq!(read.incoming.len() + read.not_taken.len(), 2);
        assert_eq!(
            read.newest.map(cursor_text).as_deref(),
            Some("2026-03-01T11:00:00.000Z")
        );
        assert_eq!(read.next.as_deref(), Some("http://h:1/q/2"));
        let bad = read_page("sf", &p, "u", r#"{"records": 3}"#, from, &Config::default());
        assert!(bad.unwrap_err().contains("is not a list"));
        assert!(read_page("sf", &p, "u", "<html>", from, &Config::default()).is_err());
    }
}
