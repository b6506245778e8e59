//! Reads on a connection of their own: they see what is committed and never wait for the
//! writer (WAL).

use crate::postings::{self, Field};
use crate::rows::*;
use crate::{db, q};
use pshub_engine::error::Result;
use pshub_engine::store::*;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

pub struct SqliteReader {
    conn: Connection,
}

impl SqliteReader {
    pub(crate) fn new(conn: Connection) -> Self {
        SqliteReader { conn }
    }

    fn one<T>(
        &self,
        name: &str,
        args: &[&dyn rusqlite::ToSql],
        map: fn(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        let mut stmt = self.conn.prepare_cached(q(name)?).map_err(db)?;
        stmt.query_row(args, map).optional().map_err(db)
    }

    fn all<T>(
        &self,
        name: &str,
        args: &[&dyn rusqlite::ToSql],
        map: fn(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare_cached(q(name)?).map_err(db)?;
        let rows = stmt.query_map(args, map).map_err(db)?;
        rows.collect::<rusqlite::Result<Vec<T>>>().map_err(db)
    }

    fn each<T>(
        &self,
        name: &str,
        map: fn(&rusqlite::Row) -> rusqlite::Result<T>,
        visit: &mut dyn FnMut(T),
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(q(name)?).map_err(db)?;
        let mut rows = stmt.query([]).map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            visit(map(row).map_err(db)?);
        }
        Ok(())
    }
}

/// Builds a list's `WHERE` from the filters that are set, on a query of `queries.sql`.
struct Filter {
    clauses: Vec<&'static str>,
    args: Vec<Box<dyn rusqlite::ToSql>>,
}

impl Filter {
    fn new(clause: &'static str, after: i64) -> Self {
        Filter {
            clauses: vec![clause],
            args: vec![Box::new(after)],
        }
    }

    fn add<T: rusqlite::ToSql + 'static>(&mut self, clause: &'static str, value: Option<T>) {
        if let Some(value) = value {
            self.clauses.push(clause);
            self.args.push(Box::new(value));
        }
    }

    /// Adds `clause` whose every `?` is `value`.
    fn add_each<T: rusqlite::ToSql + Clone + 'static>(
        &mut self,
        clause: &'static str,
        value: Option<T>,
    ) {
        if let Some(value) = value {
            self.clauses.push(clause);
            for _ in 0..clause.matches('?').count() {
                self.args.push(Box::new(value.clone()));
            }
        }
    }

    fn run<T>(
        mut self,
        conn: &Connection,
        query: &str,
        page: Page,
        map: fn(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let sql = q(query)?.replace("/*where*/", &self.clauses.join(" AND "));
        self.args
            .push(Box::new(i64::from(page.limit.min(1_000_000))));
        let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
        let rows = stmt
            .query_map(params_from_iter(self.args.iter()), map)
            .map_err(db)?;
        rows.collect::<rusqlite::Result<Vec<T>>>().map_err(db)
    }
}

fn json_ids(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

impl StoreReader for SqliteReader {
    fn event(&mut self, seq: i64) -> Result<Option<InboxRow>> {
        self.one("event_by_seq", &[&seq], inbox_row)
    }

    fn event_by_key(&mut self, source: &str, event_id: &str) -> Result<Option<InboxRow>> {
        self.one("event_by_key", &[&source, &event_id], inbox_row)
    }

    fn quarantined(&mut self, id: i64) -> Result<Option<QuarantineRow>> {
        self.one("quarantine_by_id", &[&id], quarantine_row)
    }

    fn quarantine_list(&mut self, open_only: bool, page: Page) -> Result<Vec<QuarantineRow>> {
        let mut filter = Filter::new("id > ?", page.after);
        filter.add("state = ?", open_only.then_some("open"));
        filter.run(&self.conn, "quarantine_list", page, quarantine_row)
    }

    fn quarantine_of_event(&mut self, source: &str, event_id: &str) -> Result<Vec<QuarantineRow>> {
        self.all("quarantine_of_event", &[&source, &event_id], quarantine_row)
    }

    fn conflicts(&mut self, page: Page) -> Result<Vec<ConflictRow>> {
        let limit = i64::from(page.limit.min(1_000_000));
        self.all("conflicts_list", &[&page.after, &limit], conflict_row)
    }

    fn conflicts_of(&mut self, original_seq: i64) -> Result<Vec<ConflictRow>> {
        self.all("conflicts_of", &[&original_seq], conflict_row)
    }

    fn conflict(&mut self, id: i64) -> Result<Option<ConflictRow>> {
        self.one("conflict_by_id", &[&id], conflict_row)
    }

    fn entry(&mut self, row_id: i64) -> Result<Option<EntryRow>> {
        self.one("entry_by_id", &[&row_id], entry_row)
    }

    fn entry_by_key(&mut self, kind: EntryKind, entry_id: &str) -> Result<Option<EntryRow>> {
        self.one("entry_by_key", &[&kind.as_str(), &entry_id], entry_row)
    }

    fn line(&mut self, id: i64) -> Result<Option<DeliveredLine>> {
        self.one("line_by_id", &[&id], delivered_line)
    }

    fn lines(&mut self, f: &LineFilter, page: Page) -> Result<Vec<DeliveredLine>> {
        let filter = || {
            let mut filter = Filter::new("l.id > ?", page.after);
            // A time entry's or expense's id is its entry's; a milestone's entry is
            // `{contract}:{milestone}`.
            filter.add_each(
                "l.entry_row IN (SELECT row_id FROM entries WHERE kind IN ('time', 'expense') AND entry_id = ? \
                 UNION ALL SELECT row_id FROM entries WHERE kind = 'milestone' AND substr(entry_id, -length(?) - 1) = ':' || ?)",
                f.source_id.clone(),
            );
            filter.add("l.entry_row = ?", f.entry_row);
            // A line has its step's id: the steps of an event are found by their index.
            filter.add(
                "l.id IN (SELECT id FROM steps WHERE event_seq = ?)",
                f.event_seq,
            );
            if let Some(status) = f.status {
                let states: Vec<&str> = status.states().iter().map(|s| s.as_str()).collect();
                filter.clauses.push(match states.len() {
                    1 => "s.state = ?",
                    _ => "s.state IN (?, ?, ?)",
                });
                for state in states {
                    filter.args.push(Box::new(state));
                }
            }
            filter
        };
        // By project or worker: the candidates come from the posting lists, in order, and
        // the other filters are applied to them a slice at a time until the page is full.
        let by = |field, value: &Option<String>, conn: &Connection| {
            value
                .as_deref()
                .map(|v| postings::ids(conn, field, v, page.after))
                .transpose()
        };
        let candidates = match (
            by(Field::Project, &f.project_code, &self.conn)?,
            by(Field::Worker, &f.worker_id, &self.conn)?,
        ) {
            (None, None) => return filter().run(&self.conn, "lines_list", page, delivered_line),
            (Some(ids), None) | (None, Some(ids)) => ids,
            (Some(a), Some(b)) => postings::intersect(&a, &b),
        };
        let mut found = Vec::new();
        for slice in candidates.chunks(2_000) {
            let left = page.limit.saturating_sub(found.len() as u32);
            if left == 0 {
                break;
            }
            let mut within = filter();
            within
                .clauses
                .push("l.id IN (SELECT value FROM json_each(?))");
            within.args.push(Box::new(json_ids(slice)));
            found.extend(within.run(
                &self.conn,
                "lines_list",
                Page {
                    after: page.after,
                    limit: left,
                },
                delivered_line,
            )?);
        }
        Ok(found)
    }

    fn lines_by_ids(&mut self, ids: &[i64]) -> Result<Vec<LineRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.all("lines_by_ids", &[&json_ids(ids)], line_row)
    }

    fn step(&mut self, id: i64) -> Result<Option<StepRow>> {
        self.one("step_by_id", &[&id], step_row)
    }

    fn steps_by_ids(&mut self, ids: &[i64]) -> Result<Vec<StepRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.all("steps_by_ids", &[&json_ids(ids)], step_row)
    }

    fn steps_of_subject(&mut self, flow: &str, subject: i64) -> Result<Vec<StepRow>> {
        self.all("steps_of_subject", &[&subject, &flow], step_row)
    }

    fn steps_of_event(&mut self, seq: i64) -> Result<Vec<StepRow>> {
        self.all("steps_of_event", &[&seq], step_row)
    }

    fn steps_in_state(&mut self, state: StepState, page: Page) -> Result<Vec<StepRow>> {
        let limit = i64::from(page.limit.min(1_000_000));
        self.all(
            "steps_in_state",
            &[&state.as_str(), &page.after, &limit],
            step_row,
        )
    }

    fn timeline_of_step(&mut self, step_id: i64) -> Result<Vec<TimelineRow>> {
        self.all("timeline_of_step", &[&step_id], timeline_row)
    }

    fn case(&mut self, id: i64) -> Result<Option<CaseRow>> {
        self.one("case_by_id", &[&id], case_row)
    }

    fn cases(&mut self, f: &CaseFilter, page: Page) -> Result<Vec<CaseRow>> {
        let mut filter = Filter::new("id > ?", page.after);
        filter.add("owner = ?", f.owner.map(|o| o.as_str()));
        filter.add("state = ?", f.state.map(|s| s.as_str()));
        filter.add("kind = ?", f.kind.clone());
        filter.add("event_seq = ?", f.event_seq);
        filter.add("correlation_id = ?", f.correlation_id.clone());
        filter.add("step_id = ?", f.step_id);
        filter.run(&self.conn, "cases_list", page, case_row)
    }

    fn project(&mut self, project_code: &str) -> Result<Option<ProjectRow>> {
        self.one("project_by_code", &[&project_code], project_row)
    }

    fn outbound(&mut self, event_type: Option<&str>, page: Page) -> Result<Vec<OutboundRow>> {
        let mut filter = Filter::new("id > ?", page.after);
        filter.add("event_type = ?", event_type.map(str::to_string));
        filter.run(&self.conn, "outbound_list", page, outbound_row)
    }

    fn outbound_since(&mut self, published_from: &str, page: Page) -> Result<Vec<OutboundRow>> {
        let mut filter = Filter::new("id > ?", page.after);
        filter.add("published_at >= ?", Some(published_from.to_string()));
        filter.run(&self.conn, "outbound_list", page, outbound_row)
    }

    fn worker_day(
        &mut self,
        worker_id: &str,
        day: chrono::NaiveDate,
    ) -> Result<Option<WorkerDayRow>> {
        self.one(
            "worker_day",
            &[&worker_id, &day.to_string()],
            worker_day_row,
        )
    }

    fn worked_hours(&mut self, filter: &HoursFilter) -> Result<Vec<WorkedEntry>> {
        self.all(
            "worked_hours",
            &[
                &filter.from.to_string(),
                &filter.to.to_string(),
                &filter.worker_id,
                &filter.project_code,
            ],
            worked_entry,
        )
    }

    fn payroll_actual(
        &mut self,
        worker_id: &str,
        period: &str,
    ) -> Result<Option<PayrollActualRow>> {
        self.one("payroll_actual", &[&period, &worker_id], payroll_actual_row)
    }

    fn payroll_of_period(&mut self, period: &str) -> Result<Vec<PayrollActualRow>> {
        self.all("payroll_of_period", &[&period], payroll_actual_row)
    }

    fn payroll_of_load(&mut self, load_id: i64) -> Result<Vec<PayrollActualRow>> {
        self.all("payroll_of_load", &[&load_id], payroll_actual_row)
    }

    fn payroll_loads(&mut self, unchecked_only: bool, page: Page) -> Result<Vec<PayrollLoadRow>> {
        self.all(
            "payroll_loads",
            &[&page.after, &unchecked_only, &i64::from(page.limit)],
            payroll_load_row,
        )
    }

    fn events_of_source(
        &mut self,
        source: &str,
        since: Option<&str>,
        page: Page,
    ) -> Result<Vec<InboxRow>> {
        let mut filter = Filter::new("seq > ?", page.after);
        filter.add("source = ?", Some(source.to_string()));
        filter.add("received_at >= ?", since.map(str::to_string));
        filter.run(&self.conn, "events_of_source", page, inbox_row)
    }

    fn events_of_correlation(&mut self, correlation_id: &str) -> Result<Vec<InboxRow>> {
        self.all("events_of_correlation", &[&correlation_id], inbox_row)
    }

    fn timeline_of_correlation(&mut self, correlation_id: &str) -> Result<Vec<TimelineRow>> {
        self.all("timeline_of_correlation", &[&correlation_id], timeline_row)
    }

    fn counters(&mut self) -> Result<Counters> {
        self.conn
            .query_row(q("counters")?, [], |r| {
                Ok(Counters {
                    received: r.get::<_, i64>(0)? as u64,
                    duplicates: r.get::<_, i64>(1)? as u64,
                    conflicts: r.get::<_, i64>(2)? as u64,
                    quarantined: r.get::<_, i64>(3)? as u64,
                })
            })
            .map_err(db)
    }

    fn each_entry_figure(&mut self, visit: &mut dyn FnMut(EntryFigure)) -> Result<()> {
        self.each(
            "entry_figures",
            |r| {
                let value = opt_decimal_col(r, 2)?.zip(opt_currency_col(r, 3)?);
                let state: Option<String> = r.get(4)?;
                Ok(EntryFigure {
                    phase: parse_col(r, 0, EntryPhase::parse)?,
                    manual: r.get(1)?,
                    value,
                    line_state: state.as_deref().and_then(StepState::parse),
                })
            },
            visit,
        )
    }

    fn each_line_figure(&mut self, visit: &mut dyn FnMut(LineFigure)) -> Result<()> {
        self.each(
            "line_figures",
            |r| {
                Ok(LineFigure {
                    kind: parse_col(r, 0, pshub_model::records::LineKind::parse)?,
                    state: parse_col(r, 1, StepState::parse)?,
                    blocked: r.get(2)?,
                    amount: decimal_col(r, 3)?,
                    currency: currency_col(r, 4)?,
                })
            },
            visit,
        )
    }

    fn each_case(&mut self, visit: &mut dyn FnMut(&CaseRow)) -> Result<()> {
        self.each("all_cases", case_row, &mut |case| visit(&case))
    }

    fn blocked_steps(&mut self) -> Result<u64> {
        self.conn
            .query_row(q("blocked_steps")?, [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(db)
    }

    fn token(&mut self, token_hash: &str) -> Result<Option<TokenRow>> {
        self.one("token_by_hash", &[&token_hash], token_row)
    }

    fn xrefs(&mut self, kind: &str, id: &str) -> Result<Vec<XrefRow>> {
        self.all("xrefs_of", &[&kind, &id], |r| {
            Ok(XrefRow {
                kind: r.get(0)?,
                canonical_id: r.get(1)?,
                system: r.get(2)?,
                system_id: r.get(3)?,
                correlation_id: r.get(4)?,
                created_at: r.get(5)?,
            })
        })
    }

    fn cursor(&mut self, name: &str) -> Result<Option<String>> {
        self.one("cursor", &[&name], |r| r.get(0))
    }

    fn consistent(
        &mut self,
        read: &mut dyn FnMut(&mut dyn StoreReader) -> Result<()>,
    ) -> Result<()> {
        // In WAL mode a read transaction reads one snapshot from its first read to its end.
        self.conn.execute_batch("BEGIN").map_err(db)?;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(&mut *self)));
        let ended = self.conn.execute_batch("ROLLBACK").map_err(db);
        match outcome {
            Ok(result) => result.and(ended),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    fn ping(&mut self) -> Result<()> {
        self.conn
            .query_row(q("ping")?, [], |r| r.get::<_, i64>(0))
            .map(|_| ())
            .map_err(db)
    }
}
