//! Overtime, as a region's `[regions.<code>.overtime]` defines it: of a time entry's hours,
//! those past `daily_hours` on its day or past `weekly_hours` in its week (Monday to Sunday)
//! are overtime, counting the worker's approved hours in the order they were approved.
//!
//! The worker's approved hours per day are a versioned tally in the worker-day rows under
//! `worked:{worker_id}` (every approved time entry, billable or not), kept for workers of
//! regions with overtime rules only: the rest of the firm pays nothing for it.

use super::super::Cx;
use crate::error::Result;
use crate::store::WorkedHours;
use chrono::{Datelike, Duration};
use pshub_model::WorkerId;
use pshub_model::records::TimeEntry;
use rust_decimal::Decimal;

fn tally_key(worker_id: &str) -> String {
    format!("worked:{worker_id}")
}

/// Takes an entry's earlier hours out of its worker's tally (it was rejected, or approved
/// again with other hours).
pub fn withdraw(cx: &mut Cx<'_>, previous: &WorkedHours) -> Result<()> {
    if rules_of(cx, &previous.worker_id, previous.date).is_none() {
        return Ok(());
    }
    let mut day = cx.worker_day(&tally_key(&previous.worker_id), previous.date)?;
    day.hours = (day.hours - previous.hours).max(Decimal::ZERO);
    cx.put_worker_day(day);
    Ok(())
}

/// The overtime hours of an approved entry, which it adds to its worker's tally.
pub fn count(cx: &mut Cx<'_>, entry: &TimeEntry) -> Result<Decimal> {
    let Some((daily, weekly)) = rules_of(cx, entry.worker_id.as_str(), entry.work_date) else {
        return Ok(Decimal::ZERO);
    };
    let key = tally_key(entry.worker_id.as_str());
    let mut day = cx.worker_day(&key, entry.work_date)?;
    let past = |before: Decimal, limit: Decimal| {
        let after = before.saturating_add(entry.hours);
        (after - limit).clamp(Decimal::ZERO, entry.hours)
    };
    let mut overtime = daily.map_or(Decimal::ZERO, |limit| past(day.hours, limit));
    if let Some(limit) = weekly {
        let monday = entry.work_date
            - Duration::days(i64::from(entry.work_date.weekday().num_days_from_monday()));
        let mut week = Decimal::ZERO;
        for offset in 0..7 {
            let date = monday + Duration::days(offset);
            let hours = if date == entry.work_date {
                day.hours
            } else {
                cx.worker_day(&key, date)?.hours
            };
            week = week.saturating_add(hours);
        }
        overtime = overtime.max(past(week, limit));
    }
    day.hours = day.hours.saturating_add(entry.hours);
    cx.put_worker_day(day);
    Ok(overtime)
}

/// The daily and weekly limits of the worker's region on `date`, if it has overtime rules.
fn rules_of(
    cx: &Cx<'_>,
    worker_id: &str,
    date: chrono::NaiveDate,
) -> Option<(Option<Decimal>, Option<Decimal>)> {
    let worker = WorkerId::parse(worker_id).ok()?;
    let region = cx.world.worker_on(&worker, date)?.region?;
    let overtime = cx.config.regions.get(region)?.overtime.as_ref()?;
    Some((overtime.daily_hours, overtime.weekly_hours))
}
