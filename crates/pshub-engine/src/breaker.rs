//! A circuit breaker per target system. After `threshold` calls in a row that failed
//! technically it opens: the system's worker stops calling it (its steps stay due, nothing
//! is rewritten and no attempt is counted). After `cool_down` it lets one probe through
//! (half-open); the probe's success closes it, its failure opens it again.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(&self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// As a gauge: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(&self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

/// What the breaker lets a worker do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Call as much as is due.
    Calls,
    /// Make one small call to see whether the system is back.
    Probe,
    /// Do not call; try again at the given instant at the latest.
    Wait(Instant),
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

#[derive(Debug)]
pub struct Breaker {
    phase: Mutex<Phase>,
    threshold: u32,
    cool_down: Duration,
    pub opened: AtomicU64,
    pub closed_again: AtomicU64,
    /// Calls recorded since the process started, and those that failed technically.
    pub calls: AtomicU64,
    pub failed_calls: AtomicU64,
    /// When a call last succeeded (Unix milliseconds; 0: never since the start).
    pub last_success_ms: std::sync::atomic::AtomicI64,
}

impl Breaker {
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Breaker {
            phase: Mutex::new(Phase::Closed { failures: 0 }),
            threshold: threshold.max(1),
            cool_down,
            opened: AtomicU64::new(0),
            closed_again: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            failed_calls: AtomicU64::new(0),
            last_success_ms: std::sync::atomic::AtomicI64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen => BreakerState::HalfOpen,
        }
    }

    pub fn permit(&self, now: Instant) -> Permit {
        let mut phase = self.lock();
        match *phase {
            Phase::Closed { .. } => Permit::Calls,
            Phase::Open { until } if now < until => Permit::Wait(until),
            Phase::Open { .. } => {
                *phase = Phase::HalfOpen;
                Permit::Probe
            }
            // A probe is out; the next permit follows its result.
            Phase::HalfOpen => Permit::Probe,
        }
    }

    /// Records one call: `failed` when the system gave no proper answer to any request in it.
    pub fn record(&self, failed: bool, now: Instant) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failed_calls.fetch_add(1, Ordering::Relaxed);
        } else {
            self.last_success_ms
                .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
        }
        let mut phase = self.lock();
        let next = match (*phase, failed) {
            (Phase::HalfOpen, false) => {
                self.closed_again.fetch_add(1, Ordering::Relaxed);
                Phase::Closed { failures: 0 }
            }
            (Phase::HalfOpen, true) => {
                self.opened.fetch_add(1, Ordering::Relaxed);
                Phase::Open {
                    until: now + self.cool_down,
                }
            }
            (Phase::Closed { .. }, false) => Phase::Closed { failures: 0 },
            (Phase::Closed { failures }, true) if failures + 1 >= self.threshold => {
                self.opened.fetch_add(1, Ordering::Relaxed);
                Phase::Open {
                    until: now + self.cool_down,
                }
            }
            (Phase::Closed { failures }, true) => Phase::Closed {
                failures: failures + 1,
            },
            (open @ Phase::Open { .. }, _) => open,
        };
        *phase = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_then_probes_and_closes() {
        let breaker = Breaker::new(3, Duration::from_secs(2));
        let t0 = Instant::now();
        for _ in 0..2 {
            breaker.record(true, t0);
        }
        assert_eq!(breaker.permit(t0), Permit::Calls);
        breaker.record(true, t0);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(matches!(breaker.permit(t0), Permit::Wait(_)));
        let later = t0 + Duration::from_secs(3);
        assert_eq!(breaker.permit(later), Permit::Probe);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        breaker.record(true, later);
        assert_eq!(
            breaker.state(),
            BreakerState::Open,
            "a failed probe reopens"
        );
        let again = later + Duration::from_secs(3);
        assert_eq!(breaker.permit(again), Permit::Probe);
        breaker.record(false, again);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.opened.load(Ordering::Relaxed), 2);
        assert_eq!(breaker.closed_again.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = Breaker::new(2, Duration::from_secs(1));
        let now = Instant::now();
        breaker.record(true, now);
        breaker.record(false, now);
        breaker.record(true, now);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
