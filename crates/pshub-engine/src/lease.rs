//! Keeping leases alive while a call runs. A system's delivery worker holds the leases of
//! the steps it is calling; one long-lived thread per system renews them every half lease
//! for as long as the call lasts, so that a slow call is not taken over by another process
//! while a dead process's work still lapses within a lease.

use crate::store::Store;
use chrono::Utc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Held {
    /// The steps under call, the owner of their leases, and since when.
    steps: Option<(Vec<i64>, i64, Instant)>,
    closed: bool,
}

struct Shared {
    held: Mutex<Held>,
    changed: Condvar,
}

fn lock(shared: &Shared) -> MutexGuard<'_, Held> {
    shared.held.lock().unwrap_or_else(|p| p.into_inner())
}

/// The renewing thread of one system.
pub struct LeaseKeeper {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Leases kept while this lives.
pub struct Holding<'a>(&'a LeaseKeeper, i64);

impl Holding<'_> {
    /// Holds `steps` instead, on the same renewal schedule (the pipelined delivery holds the
    /// round under call and the one claimed after it).
    pub fn replace(&self, steps: Vec<i64>) {
        let mut held = lock(&self.0.shared);
        // Also when another holding took the slot in between and let it go.
        let since = held
            .steps
            .as_ref()
            .map_or_else(Instant::now, |(_, _, since)| *since);
        held.steps = Some((steps, self.1, since));
        drop(held);
        self.0.shared.changed.notify_all();
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        lock(&self.0.shared).steps = None;
        self.0.shared.changed.notify_all();
    }
}

impl LeaseKeeper {
    pub fn spawn(store: Arc<dyn Store>, system: &str, lease: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            held: Mutex::new(Held::default()),
            changed: Condvar::new(),
        });
        let thread = {
            let shared = shared.clone();
            let system = system.to_string();
            std::thread::Builder::new()
                .name(format!("pshub-{system}-leases"))
                .spawn(move || keep(&shared, store.as_ref(), &system, lease))?
        };
        Ok(LeaseKeeper {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Keeps the leases of `steps`, held by `owner`, until the answer is dropped.
    pub fn hold(&self, steps: Vec<i64>, owner: i64) -> Holding<'_> {
        lock(&self.shared).steps = Some((steps, owner, Instant::now()));
        self.shared.changed.notify_all();
        Holding(self, owner)
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        lock(&self.shared).closed = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

fn keep(shared: &Shared, store: &dyn Store, system: &str, lease: Duration) {
    let every = lease / 2;
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(5_000);
    let mut held = lock(shared);
    loop {
        if held.closed {
            return;
        }
        let Some((steps, owner, since)) = held.steps.as_ref().filter(|(s, _, _)| !s.is_empty())
        else {
            held = shared.changed.wait(held).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        let due = *since + every;
        let now = Instant::now();
        if now < due {
            held = shared
                .changed
                .wait_timeout(held, due - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            continue;
        }
        let (steps, owner) = (steps.clone(), *owner);
        if let Some((_, _, since)) = &mut held.steps {
            *since = now;
        }
        drop(held);
        let until = Utc::now().timestamp_millis() + lease_ms;
        if let Err(error) = store.renew_leases(&steps, owner, until) {
            tracing::warn!(%error, system, "could not renew leases");
        }
        held = lock(shared);
    }
}
