//! Overtime, as a region's `[regions.<code>.overtime]` defines it: of a time entry's hours,
//! those past `daily_hours` on its day or past `weekly_hours` in its week (Monday to Sunday)
//! are overtime, counting the worker's approved hours in the order they were approved.
//!
//! The worker's approved hours per day and per week are versioned tallies in the
//! worker-day rows under `worked:{worker_id}` (by day) and `worked-week:{worker_id}` (on the
//! week's Monday), counting every approved time entry, billable or not. They are kept for
//! workers of regions with overtime rules only: the rest of the firm pays nothing for them.

use super::super::Cx;
use crate::error::Result;
use crate::store::WorkedHours;
use chrono::{Datelike, Duration, NaiveDate};
use pshub_model::WorkerId;
use pshub_model::records::TimeEntry;
use rust_decimal::Decimal;

fn day_key(worker_id: &str) -> String {
    format!("worked:{worker_id}")
}

/// The week's tally sits on its Monday.
fn week_key(worker_id: &str) -> String {
    format!("worked-week:{worker_id}")
}

fn monday_of(date: NaiveDate) -> NaiveDate {
    date - Duration::days(i64::from(date.weekday().num_days_from_monday()))
}

/// Adds `hours` (negative to take them out) to the worker's day and week.
fn add(
    cx: &mut Cx<'_>,
    worker_id: &str,
    date: NaiveDate,
    hours: Decimal,
) -> Result<(Decimal, Decimal)> {
    let mut day = cx.worker_day(&day_key(worker_id), date)?;
    let mut week = cx.worker_day(&week_key(worker_id), monday_of(date))?;
    let before = (day.hours, week.hours);
    day.hours = day.hours.saturating_add(hours).max(Decimal::ZERO);
    week.hours = week.hours.saturating_add(hours).max(Decimal::ZERO);
    cx.put_worker_day(day);
    cx.put_worker_day(week);
    Ok(before)
}

/// Takes an entry's earlier hours out of its worker's tally (it was rejected, or approved
/// again with other hours).
pub fn withdraw(cx: &mut Cx<'_>, previous: &WorkedHours) -> Result<()> {
    if rules_of(cx, &previous.worker_id, previous.date).is_none() {
        return Ok(());
    }
    add(cx, &previous.worker_id, previous.date, -previous.hours)?;
    Ok(())
}

/// The overtime hours of an approved entry, which it adds to its worker's tally.
pub fn count(cx: &mut Cx<'_>, entry: &TimeEntry) -> Result<Decimal> {
    let Some((daily, weekly)) = rules_of(cx, entry.worker_id.as_str(), entry.work_date) else {
        return Ok(Decimal::ZERO);
    };
    let (day, week) = add(cx, entry.worker_id.as_str(), entry.work_date, entry.hours)?;
    let past = |before: Decimal, limit: Decimal| {
        let after = before.saturating_add(entry.hours);
        (after - limit).clamp(Decimal::ZERO, entry.hours)
    };
    let daily = daily.map_or(Decimal::ZERO, |limit| past(day, limit));
    let weekly = weekly.map_or(Decimal::ZERO, |limit| past(week, limit));
    Ok(daily.max(weekly))
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
