//! The relay of the outbound stream to a transport (NATS `pshub_bus_nats::outbound`, an AMQP
//! exchange `pshub_connectors::amqp_out`): the hub's business events read from the store by
//! the time they were published, from a cursor less a window of [`OVERLAP`] (ids reserved
//! by several processes commit out of order; a row committed late is still in the window),
//! rendered as `GET /v1/outbound?target=<target>` shows them and handed to the transport a
//! page at a time. A page is published before the cursor passes it, so a crash repeats and
//! never skips; each event carries its key, by which the transport (NATS's `Nats-Msg-Id`)
//! or its consumers drop a repeat. What this process has sent in the window is not sent
//! again.

use crate::Engine;
use crate::config::{Config, Masking};
use crate::store::{OutboundRow, Page, StoreReader};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// How far before its cursor each pass reads: longer than any commit takes.
pub const OVERLAP: Duration = Duration::from_secs(60);
/// The rows one read takes.
const PAGE: u32 = 500;

/// Renders outbound rows as their events (`pshub_api::wire::outbound_events`), with a
/// target's masking.
pub type Render = Box<
    dyn Fn(&mut dyn StoreReader, &[OutboundRow], Option<&Masking>) -> Result<Vec<Value>, String>
        + Send,
>;

pub struct Relay {
    /// Where its cursor is saved.
    cursor: String,
    /// The target whose `[masking]` policy its readers get.
    target: String,
    render: Render,
    /// What this process sent in the window, by key, with when the hub published it.
    sent: HashMap<String, String>,
}

/// The policy `target`'s readers get: its `[masking.<target>]`, or the default one, which
/// still leaves the resource view's personal fields out.
pub fn policy_of(config: &Config, target: &str) -> Masking {
    config.masking.get(target).cloned().unwrap_or_default()
}

/// The stamp `OVERLAP` before `stamp` (the same format: RFC 3339, milliseconds, UTC).
pub fn window_start(stamp: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(stamp) {
        Ok(at) => {
            let from = at.with_timezone(&chrono::Utc)
                - chrono::Duration::from_std(OVERLAP).unwrap_or_default();
            from.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        }
        Err(_) => String::new(),
    }
}

impl Relay {
    pub fn new(cursor: String, target: &str, render: Render) -> Relay {
        Relay {
            cursor,
            target: target.to_string(),
            render,
            sent: HashMap::new(),
        }
    }

    /// Publishes every event of the window not yet sent, a page at a time through
    /// `publish`, then moves the cursor; answers how many events went.
    pub fn pass(
        &mut self,
        engine: &Engine,
        publish: &mut dyn FnMut(&[Value]) -> Result<(), String>,
    ) -> Result<usize, String> {
        let saved = engine
            .read(|r| r.cursor(&self.cursor))
            .map_err(|e| format!("the cursor cannot be read: {e}"))?;
        let from = saved.as_deref().map(window_start).unwrap_or_default();
        let policy = Some(policy_of(engine.config(), &self.target));
        let mut newest = saved.clone().unwrap_or_default();
        let (mut after, mut published) = (0, 0);
        loop {
            let page = Page { after, limit: PAGE };
            let (rows, events) = engine.read(|r| {
                let rows = r
                    .outbound_since(&from, page)
                    .map_err(|e| format!("the outbound rows cannot be read: {e}"))?;
                let fresh: Vec<OutboundRow> = rows
                    .iter()
                    .filter(|row| !self.sent.contains_key(&row.key))
                    .cloned()
                    .collect();
                let events = (self.render)(r, &fresh, policy.as_ref())?;
                Ok::<_, String>((rows, events))
            })?;
            if !events.is_empty() {
                publish(&events)?;
            }
            published += events.len();
            for row in &rows {
                self.sent.insert(row.key.clone(), row.published_at.clone());
                if row.published_at > newest {
                    newest = row.published_at.clone();
                }
            }
            match rows.last() {
                Some(last) if rows.len() == PAGE as usize => after = last.id,
                _ => break,
            }
        }
        if Some(&newest) != saved.as_ref() && !newest.is_empty() {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            engine
                .store()
                .save_cursor(&self.cursor, &newest, &now)
                .map_err(|e| format!("the cursor cannot be saved: {e}"))?;
            // What is older than the next window is never read again.
            let next = window_start(&newest);
            self.sent.retain(|_, at| *at >= next);
        }
        Ok(published)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_policy_of_its_own_a_target_gets_the_default_one() {
        let mut config = Config::default();
        assert_eq!(policy_of(&config, "bus"), Masking::default());
        let bus = Masking {
            mask: vec!["worker_id".into()],
            ..Masking::default()
        };
        config.masking.insert("bus".into(), bus.clone());
        assert_eq!(policy_of(&config, "bus"), bus);
    }

    #[test]
    fn the_window_reaches_back_the_overlap_in_the_stamps_format() {
        assert_eq!(
            window_start("2026-03-04T10:01:00.250Z"),
            "2026-03-04T10:00:00.250Z"
        );
        assert_eq!(window_start("not a stamp"), "");
    }
}
