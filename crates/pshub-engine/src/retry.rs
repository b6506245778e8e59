//! An explicit retry schedule for technical failures: a list of delays, then dead letter.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RetrySchedule {
    /// Delay before attempt n+2 after attempt n+1 failed; when exhausted, dead-letter.
    pub delays: Vec<Duration>,
    /// The most a `Retry-After` from the target may push the next attempt out.
    pub retry_after_cap: Duration,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule {
            delays: [1, 5, 30, 120, 600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            retry_after_cap: Duration::from_secs(3600),
        }
    }
}

impl RetrySchedule {
    /// The delay after `failed_attempts` failures, or `None` when the item is to be
    /// dead-lettered. A target's `Retry-After` wins over the schedule, up to the cap.
    pub fn next_delay(
        &self,
        failed_attempts: u32,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let scheduled = *self
            .delays
            .get(usize::try_from(failed_attempts).ok()?.checked_sub(1)?)?;
        Some(match retry_after {
            Some(asked) => asked.min(self.retry_after_cap).max(scheduled),
            None => scheduled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_schedule_then_dead_letters() {
        let schedule = RetrySchedule {
            delays: vec![Duration::from_secs(1), Duration::from_secs(5)],
            retry_after_cap: Duration::from_secs(60),
        };
        assert_eq!(schedule.next_delay(1, None), Some(Duration::from_secs(1)));
        assert_eq!(schedule.next_delay(2, None), Some(Duration::from_secs(5)));
        assert_eq!(schedule.next_delay(3, None), None);
        assert_eq!(
            schedule.next_delay(1, Some(Duration::from_secs(30))),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            schedule.next_delay(1, Some(Duration::from_secs(900))),
            Some(Duration::from_secs(60))
        );
        assert_eq!(schedule.next_delay(0, None), None);
    }
}
