//! The polling REST connector: a source read by polling its REST endpoint with a durable
//! cursor (the engine's half, the window and one page through the mappings, is
//! `pshub_engine::rest_poll`). This is how the Workday REST workers API and its
//! Report-as-a-Service reports, and Salesforce's SOQL query API, are read.
//!
//! Every `poll` a window is read: the first page from the saved cursor less the overlap,
//! then each page its `next` names. Each page's events are committed before the next page
//! is asked for; once the last page is committed the cursor is saved as the newest
//! modification time read (`connector_cursors`, in the hub's store, so that any process
//! continues where another stopped). A window that fails part way (the source answers an
//! error, the process dies) saves nothing and is read again whole on the next run: what it
//! had taken comes back as duplicates by event id. A `429` or `503` with `Retry-After` is
//! waited out (up to `MAX_RETRY_AFTER`) before the next run.

use pshub_engine::Engine;
use pshub_engine::rest_poll::{MAX_PAGES, RestPoll, cursor_text, parse_timestamp, read_page};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest `Retry-After` honoured; a source asking for more is asked again after this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// The largest page read.
const MAX_PAGE_BYTES: usize = 64 << 20;
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What the connector does, each logged and counted (`pshub_connector_events_total`).
#[derive(Debug)]
enum PollEvent<'a> {
    /// A page was read and its events committed.
    Page {
        url: &'a str,
        records: usize,
        accepted: usize,
    },
    /// A window was read to its end and the cursor saved.
    Window {
        pages: usize,
        records: usize,
        cursor: &'a str,
    },
    /// The source asked to be called later.
    Throttled { retry_after_s: u64 },
    /// A change event woke the poller before its next poll.
    Woken,
    /// The window stopped part way; it is read again on the next run.
    Failed { why: &'a str },
}

impl PollEvent<'_> {
    fn name(&self) -> &'static str {
        match self {
            PollEvent::Page { .. } => "page",
            PollEvent::Window { .. } => "window_done",
            PollEvent::Throttled { .. } => "throttled",
            PollEvent::Woken => "woken",
            PollEvent::Failed { .. } => "window_failed",
        }
    }

    fn emit(&self, engine: &Engine, source: &str) {
        match self {
            PollEvent::Page {
                url,
                records,
                accepted,
            } => tracing::debug!(source, url, records, accepted, "rest poll: page read"),
            PollEvent::Window {
                pages,
                records: 0,
                cursor,
            } => tracing::debug!(source, pages, cursor, "rest poll: window read, nothing new"),
            PollEvent::Window {
                pages,
                records,
                cursor,
            } => tracing::info!(source, pages, records, cursor, "rest poll: window read"),
            PollEvent::Throttled { retry_after_s } => {
                tracing::warn!(source, retry_after_s, "rest poll: the source asks to wait")
            }
            PollEvent::Failed { why } => tracing::warn!(source, why, "rest poll: window failed"),
            PollEvent::Woken => tracing::debug!(source, "rest poll: woken by a change event"),
        }
        engine.metrics().connector_event(source, self.name());
    }
}

/// Why a window stopped.
enum Stop {
    /// Wait this long before the next run.
    Throttled(Duration),
    Failed(String),
}

/// One source's poller.
pub struct Poller {
    engine: Arc<Engine>,
    source: String,
    poll: RestPoll,
    http: reqwest::Client,
}

impl Poller {
    pub fn new(engine: Arc<Engine>, source: &str, poll: RestPoll) -> Result<Poller, String> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Poller {
            engine,
            source: source.to_string(),
            poll,
            http,
        })
    }

    /// Polls on a thread of its own until `stop` is set.
    pub fn spawn(self, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("rest-poll-{}", self.source))
            .spawn(move || {
                let wake = self.engine.waker(&self.source);
                while !stop.load(Ordering::Relaxed) {
                    // A change event wakes the next window early, unless the source asked
                    // to be left alone for a while.
                    let (wait, wakeable) = match runtime.block_on(self.run_window()) {
                        Ok(()) => (self.poll.poll, true),
                        Err(Stop::Throttled(wait)) => (wait.max(self.poll.poll), false),
                        Err(Stop::Failed(_)) => (self.poll.poll, true),
                    };
                    let until = Instant::now() + wait;
                    while !stop.load(Ordering::Relaxed) {
                        let left = until.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        let woken = wake.wait(left.min(Duration::from_millis(100)));
                        if woken && wakeable {
                            self.emit(PollEvent::Woken);
                            break;
                        }
                    }
                }
            })
    }

    fn emit(&self, event: PollEvent<'_>) {
        event.emit(&self.engine, &self.source);
    }

    /// Reads one window to its end and saves the cursor; answers why it stopped otherwise.
    async fn run_window(&self) -> Result<(), Stop> {
        let result = self.read_window().await;
        match &result {
            Err(Stop::Failed(why)) => self.emit(PollEvent::Failed { why }),
            Err(Stop::Throttled(wait)) => self.emit(PollEvent::Throttled {
                retry_after_s: wait.as_secs(),
            }),
            Ok(()) => {}
        }
        result
    }

    async fn read_window(&self) -> Result<(), Stop> {
        let name = RestPoll::cursor_name(&self.source);
        let saved = self
            .engine
            .read(|r| r.cursor(&name))
            .map_err(|e| Stop::Failed(format!("the cursor cannot be read: {e}")))?;
        let from = self
            .poll
            .window_start(saved.as_deref())
            .map_err(Stop::Failed)?;
        let mut newest = saved.as_deref().and_then(parse_timestamp).unwrap_or(from);
        let mut url = self.poll.first_url(from);
        let (mut pages, mut taken) = (0, 0);
        loop {
            let page = self.fetch(&url).await?;
            let read = read_page(
                &self.source,
                &self.poll,
                &url,
                &page,
                from,
                self.engine.config(),
            )
            .map_err(|e| Stop::Failed(format!("{url}: {e}")))?;
            let records = read.incoming.len();
            let engine = self.engine.clone();
            let results =
                tokio::task::spawn_blocking(move || engine.submit_incoming(read.incoming))
                    .await
                    .map_err(|e| Stop::Failed(format!("the commit stopped: {e}")))?
                    .map_err(|e| Stop::Failed(format!("the commit failed: {e}")))?;
            let accepted = results
                .iter()
                .filter(|r| r.status == pshub_engine::hub::IngestStatus::Accepted)
                .count();
            self.emit(PollEvent::Page {
                url: &url,
                records,
                accepted,
            });
            newest = newest.max(read.newest.unwrap_or(newest));
            pages += 1;
            taken += accepted;
            match read.next {
                Some(next) if next != url && pages < MAX_PAGES => url = next,
                Some(_) => {
                    return Err(Stop::Failed(format!(
                        "{url}: the pages do not end (a next page names itself, or more than {MAX_PAGES})"
                    )));
                }
                None => break,
            }
        }
        let cursor = cursor_text(newest);
        let now = cursor_text(chrono::Utc::now());
        self.engine
            .store()
            .save_cursor(&name, &cursor, &now)
            .map_err(|e| Stop::Failed(format!("the cursor cannot be saved: {e}")))?;
        self.emit(PollEvent::Window {
            pages,
            records: taken,
            cursor: &cursor,
        });
        Ok(())
    }

    /// One page's body, or why not.
    async fn fetch(&self, url: &str) -> Result<String, Stop> {
        let mut request = self.http.get(url).header("accept", "application/json");
        if let Some(token) = &self.poll.token {
            request = request.bearer_auth(token.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|e| Stop::Failed(format!("{url}: {}", without_url(&e))))?;
        let status = response.status();
        if status.as_u16() == 429 || status.as_u16() == 503 {
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(self.poll.poll, Duration::from_secs)
                .min(MAX_RETRY_AFTER);
            return Err(Stop::Throttled(wait));
        }
        if !status.is_success() {
            return Err(Stop::Failed(format!("{url}: answered {status}")));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_PAGE_BYTES as u64)
        {
            return Err(Stop::Failed(format!(
                "{url}: the page is over {MAX_PAGE_BYTES} bytes"
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Stop::Failed(format!("{url}: {}", without_url(&e))))?;
        if bytes.len() > MAX_PAGE_BYTES {
            return Err(Stop::Failed(format!(
                "{url}: the page is over {MAX_PAGE_BYTES} bytes"
            )));
        }
        String::from_utf8(bytes.to_vec())
            .map_err(|_| Stop::Failed(format!("{url}: the page is not UTF-8")))
    }
}

/// A request error without the URL, which the message names already.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(&format!(" ({url})"), "");
    }
    text
}
