//! Reads, on connections of the store's pool: they see what is committed.

use crate::rows::*;
use crate::{Pg, pg, q};
use futures_util::TryStreamExt;
use pshub_engine::error::Result;
use pshub_engine::store::*;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Arguments, Postgres};
use std::sync::Arc;

pub struct PostgresReader {
    pg: Arc<Pg>,
    /// Inside [`StoreReader::consistent`]: the connection whose transaction every read uses.
    pinned: Option<PoolConnection<Postgres>>,
}

/// Runs `$query` (a method call on a query, such as `fetch_all`) on the pinned connection
/// when there is one, else on the pool.
macro_rules! on_reader {
    ($reader:expr, $query:expr, $method:ident) => {
        match $reader.pinned.as_mut() {
            Some(conn) => $query.$method(&mut **conn).await,
            None => $query.$method(&$reader.pg.pool).await,
        }
    };
}

impl PostgresReader {
    pub(crate) fn new(pg: Arc<Pg>) -> Self {
        PostgresReader { pg, pinned: None }
    }

    fn one<T>(
        &mut self,
        query: Query<'_, Postgres, PgArguments>,
        map: fn(&PgRow) -> std::result::Result<T, sqlx::Error>,
    ) -> Result<Option<T>> {
        let pg_handle = self.pg.clone();
        pg_handle.block_on(async {
            let row = on_reader!(self, query, fetch_optional).map_err(pg)?;
            row.as_ref().map(map).transpose().map_err(pg)
        })
    }

    fn all<T>(
        &mut self,
        query: Query<'_, Postgres, PgArguments>,
        map: fn(&PgRow) -> std::result::Result<T, sqlx::Error>,
    ) -> Result<Vec<T>> {
        let pg_handle = self.pg.clone();
        pg_handle.block_on(async {
            let rows = on_reader!(self, query, fetch_all).map_err(pg)?;
            rows.iter()
                .map(map)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(pg)
        })
    }

    fn each<T>(
        &mut self,
        name: &str,
        map: fn(&PgRow) -> std::result::Result<T, sqlx::Error>,
        visit: &mut dyn FnMut(T),
    ) -> Result<()> {
        let sql = q(name)?;
        let pg_handle = self.pg.clone();
        pg_handle.block_on(async {
            match self.pinned.as_mut() {
                Some(conn) => {
                    let mut rows = sqlx::query(sql).fetch(&mut **conn);
                    while let Some(row) = rows.try_next().await.map_err(pg)? {
                        visit(map(&row).map_err(pg)?);
                    }
                }
                None => {
                    let mut rows = sqlx::query(sql).fetch(&self.pg.pool);
                    while let Some(row) = rows.try_next().await.map_err(pg)? {
                        visit(map(&row).map_err(pg)?);
                    }
                }
            }
            Ok(())
        })
    }
}

/// A list's filters, numbered as PostgreSQL wants them (`$1`, `$2`).
struct Filter {
    clauses: Vec<String>,
    args: PgArguments,
    count: usize,
}

impl Filter {
    fn new(first: &str, after: i64) -> Self {
        let mut filter = Filter {
            clauses: Vec::new(),
            args: PgArguments::default(),
            count: 0,
        };
        filter.add(first, Some(after));
        filter
    }

    /// Adds `clause` (with `?` for its value) when `value` is set.
    fn add<T>(&mut self, clause: &str, value: Option<T>)
    where
        T: for<'a> sqlx::Encode<'a, Postgres> + sqlx::Type<Postgres> + Send + 'static,
    {
        if let Some(value) = value {
            self.count += 1;
            self.clauses
                .push(clause.replace('?', &format!("${}", self.count)));
            let _ = self.args.add(value);
        }
    }

    fn run<T>(
        mut self,
        reader: &mut PostgresReader,
        query: &str,
        page: Page,
        map: fn(&PgRow) -> std::result::Result<T, sqlx::Error>,
    ) -> Result<Vec<T>> {
        let limit = format!("${}", self.count + 1);
        let _ = self.args.add(i64::from(page.limit.min(1_000_000)));
        let sql = q(query)?
            .replace("/*where*/", &self.clauses.join(" AND "))
            .replace("/*limit*/", &limit);
        // The clauses are fixed fragments with numbered parameters: no value is spliced in.
        let sql = sqlx::AssertSqlSafe(sql);
        let pg_handle = reader.pg.clone();
        pg_handle.block_on(async {
            let query = sqlx::query_with(sql, self.args);
            let rows = on_reader!(reader, query, fetch_all).map_err(pg)?;
            rows.iter()
                .map(map)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(pg)
        })
    }
}

impl StoreReader for PostgresReader {
    fn event(&mut self, seq: i64) -> Result<Option<InboxRow>> {
        self.one(sqlx::query(q("event_by_seq")?).bind(seq), inbox_row)
    }

    fn event_by_key(&mut self, source: &str, event_id: &str) -> Result<Option<InboxRow>> {
        self.one(
            sqlx::query(q("event_by_key")?).bind(source).bind(event_id),
            inbox_row,
        )
    }

    fn quarantined(&mut self, id: i64) -> Result<Option<QuarantineRow>> {
        self.one(sqlx::query(q("quarantine_by_id")?).bind(id), quarantine_row)
    }

    fn quarantine_list(&mut self, open_only: bool, page: Page) -> Result<Vec<QuarantineRow>> {
        let mut filter = Filter::new("id > ?", page.after);
        filter.add("state = ?", open_only.then(|| "open".to_string()));
        filter.run(self, "quarantine_list", page, quarantine_row)
    }

    fn quarantine_of_event(&mut self, source: &str, event_id: &str) -> Result<Vec<QuarantineRow>> {
        self.all(
            sqlx::query(q("quarantine_of_event")?)
                .bind(source)
                .bind(event_id),
            quarantine_row,
        )
    }

    fn conflicts(&mut self, page: Page) -> Result<Vec<ConflictRow>> {
        self.all(
            sqlx::query(q("conflicts_list")?)
                .bind(page.after)
                .bind(i64::from(page.limit.min(1_000_000))),
            conflict_row,
        )
    }

    fn conflicts_of(&mut self, original_seq: i64) -> Result<Vec<ConflictRow>> {
        self.all(
            sqlx::query(q("conflicts_of")?).bind(original_seq),
            conflict_row,
        )
    }

    fn conflict(&mut self, id: i64) -> Result<Option<ConflictRow>> {
        self.one(sqlx::query(q("conflict_by_id")?).bind(id), conflict_row)
    }

    fn entry(&mut self, row_id: i64) -> Result<Option<EntryRow>> {
        self.one(sqlx::query(q("entry_by_id")?).bind(row_id), entry_row)
    }

    fn entry_by_key(&mut self, kind: EntryKind, entry_id: &str) -> Result<Option<EntryRow>> {
        self.one(
            sqlx::query(q("entry_by_key")?)
                .bind(kind.as_str())
                .bind(entry_id),
            entry_row,
        )
    }

    fn line(&mut self, id: i64) -> Result<Option<DeliveredLine>> {
        self.one(sqlx::query(q("line_by_id")?).bind(id), delivered_line)
    }

    fn lines(&mut self, f: &LineFilter, page: Page) -> Result<Vec<DeliveredLine>> {
        let mut filter = Filter::new("l.id > ?", page.after);
        filter.add("l.project_code = ?", f.project_code.clone());
        filter.add("l.worker_id = ?", f.worker_id.clone());
        // A time entry's or expense's id is its entry's; a milestone's entry is
        // `{contract}:{milestone}`.
        filter.add(
            "l.entry_row IN (SELECT row_id FROM entries WHERE kind IN ('time', 'expense') AND entry_id = ? \
             UNION ALL SELECT row_id FROM entries WHERE kind = 'milestone' AND right(entry_id, length(?) + 1) = ':' || ?)",
            f.source_id.clone(),
        );
        filter.add("l.entry_row = ?", f.entry_row);
        // A line has its step's id: the steps of an event are found by their index.
        filter.add(
            "l.id IN (SELECT id FROM steps WHERE event_seq = ?)",
            f.event_seq,
        );
        filter.add(
            "s.state = ANY(?)",
            f.status.map(|status| {
                status
                    .states()
                    .iter()
                    .map(|s| s.as_str().to_string())
                    .collect::<Vec<_>>()
            }),
        );
        filter.run(self, "lines_list", page, delivered_line)
    }

    fn lines_by_ids(&mut self, ids: &[i64]) -> Result<Vec<LineRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.all(sqlx::query(q("lines_by_ids")?).bind(ids), line_row)
    }

    fn step(&mut self, id: i64) -> Result<Option<StepRow>> {
        self.one(sqlx::query(q("step_by_id")?).bind(id), step_row)
    }

    fn steps_by_ids(&mut self, ids: &[i64]) -> Result<Vec<StepRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.all(sqlx::query(q("steps_by_ids")?).bind(ids), step_row)
    }

    fn steps_of_subject(&mut self, flow: &str, subject: i64) -> Result<Vec<StepRow>> {
        self.all(
            sqlx::query(q("steps_of_subject")?).bind(subject).bind(flow),
            step_row,
        )
    }

    fn steps_of_event(&mut self, seq: i64) -> Result<Vec<StepRow>> {
        self.all(sqlx::query(q("steps_of_event")?).bind(seq), step_row)
    }

    fn steps_in_state(&mut self, state: StepState, page: Page) -> Result<Vec<StepRow>> {
        self.all(
            sqlx::query(q("steps_in_state")?)
                .bind(state.as_str())
                .bind(page.after)
                .bind(i64::from(page.limit.min(1_000_000))),
            step_row,
        )
    }

    fn timeline_of_step(&mut self, step_id: i64) -> Result<Vec<TimelineRow>> {
        self.all(
            sqlx::query(q("timeline_of_step")?).bind(step_id),
            timeline_row,
        )
    }

    fn case(&mut self, id: i64) -> Result<Option<CaseRow>> {
        self.one(sqlx::query(q("case_by_id")?).bind(id), case_row)
    }

    fn cases(&mut self, f: &CaseFilter, page: Page) -> Result<Vec<CaseRow>> {
        let mut filter = Filter::new("id > ?", page.after);
        filter.add("owner = ?", f.owner.map(|o| o.as_str().to_string()));
        filter.add("state = ?", f.state.map(|s| s.as_str().to_string()));
        filter.add("kind = ?", f.kind.clone());
        filter.add("event_seq = ?", f.event_seq);
        filter.add("correlation_id = ?", f.correlation_id.clone());
        filter.add("step_id = ?", f.step_id);
        filter.run(self, "cases_list", page, case_row)
    }

    fn project(&mut self, project_code: &str) -> Result<Option<ProjectRow>> {
        self.one(
            sqlx::query(q("project_by_code")?).bind(project_code),
            project_row,
        )
    }

    fn outbound(&mut self, event_type: Option<&str>, page: Page) -> Result<Vec<OutboundRow>> {
        let mut filter = Filter::new("id > ?", page.after);
        filter.add("event_type = ?", event_type.map(str::to_string));
        filter.run(self, "outbound_list", page, outbound_row)
    }

    fn outbound_since(&mut self, published_from: &str, page: Page) -> Result<Vec<OutboundRow>> {
        let mut filter = Filter::new("id > ?", page.after);
        filter.add("published_at >= ?", Some(published_from.to_string()));
        filter.run(self, "outbound_list", page, outbound_row)
    }

    fn worker_day(
        &mut self,
        worker_id: &str,
        day: chrono::NaiveDate,
    ) -> Result<Option<WorkerDayRow>> {
        self.one(
            sqlx::query(q("worker_day")?).bind(worker_id).bind(day),
            worker_day_row,
        )
    }

    fn worked_hours(&mut self, filter: &HoursFilter) -> Result<Vec<WorkedEntry>> {
        self.all(
            sqlx::query(q("worked_hours")?)
                .bind(filter.from)
                .bind(filter.to)
                .bind(filter.worker_id.clone())
                .bind(filter.project_code.clone()),
            worked_entry,
        )
    }

    fn payroll_actual(
        &mut self,
        worker_id: &str,
        period: &str,
    ) -> Result<Option<PayrollActualRow>> {
        self.one(
            sqlx::query(q("payroll_actual")?)
                .bind(period)
                .bind(worker_id),
            payroll_actual_row,
        )
    }

    fn payroll_of_period(&mut self, period: &str) -> Result<Vec<PayrollActualRow>> {
        self.all(
            sqlx::query(q("payroll_of_period")?).bind(period),
            payroll_actual_row,
        )
    }

    fn payroll_of_load(&mut self, load_id: i64) -> Result<Vec<PayrollActualRow>> {
        self.all(
            sqlx::query(q("payroll_of_load")?).bind(load_id),
            payroll_actual_row,
        )
    }

    fn payroll_loads(&mut self, unchecked_only: bool, page: Page) -> Result<Vec<PayrollLoadRow>> {
        self.all(
            sqlx::query(q("payroll_loads")?)
                .bind(page.after)
                .bind(unchecked_only)
                .bind(i64::from(page.limit)),
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
        filter.run(self, "events_of_source", page, inbox_row)
    }

    fn events_of_correlation(&mut self, correlation_id: &str) -> Result<Vec<InboxRow>> {
        self.all(
            sqlx::query(q("events_of_correlation")?).bind(correlation_id),
            inbox_row,
        )
    }

    fn timeline_of_correlation(&mut self, correlation_id: &str) -> Result<Vec<TimelineRow>> {
        self.all(
            sqlx::query(q("timeline_of_correlation")?).bind(correlation_id),
            timeline_row,
        )
    }

    fn counters(&mut self) -> Result<Counters> {
        let counters = self.one(sqlx::query(q("counters")?), |r| {
            use sqlx::Row;
            Ok(Counters {
                received: r.try_get::<i64, _>(0)? as u64,
                duplicates: r.try_get::<i64, _>(1)? as u64,
                conflicts: r.try_get::<i64, _>(2)? as u64,
                quarantined: r.try_get::<i64, _>(3)? as u64,
            })
        })?;
        Ok(counters.unwrap_or_default())
    }

    fn each_entry_figure(&mut self, visit: &mut dyn FnMut(EntryFigure)) -> Result<()> {
        self.each(
            "entry_figures",
            |r| {
                use sqlx::Row;
                let phase: String = r.try_get(0)?;
                let value: Option<rust_decimal::Decimal> = r.try_get(2)?;
                let currency: Option<String> = r.try_get(3)?;
                let state: Option<String> = r.try_get(4)?;
                Ok(EntryFigure {
                    phase: EntryPhase::parse(&phase).ok_or_else(|| {
                        sqlx::Error::Decode(format!("not an entry phase: '{phase}'").into())
                    })?,
                    manual: r.try_get(1)?,
                    value: value.zip(currency.and_then(|c| pshub_model::Currency::parse(&c).ok())),
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
                use sqlx::Row;
                let kind: String = r.try_get(0)?;
                let state: String = r.try_get(1)?;
                let currency: String = r.try_get(4)?;
                let bad =
                    |what: &str, text: &str| sqlx::Error::Decode(format!("{what} '{text}'").into());
                Ok(LineFigure {
                    kind: pshub_model::records::LineKind::parse(&kind)
                        .ok_or_else(|| bad("not a line kind:", &kind))?,
                    state: StepState::parse(&state)
                        .ok_or_else(|| bad("not a step state:", &state))?,
                    blocked: r.try_get(2)?,
                    amount: r.try_get(3)?,
                    currency: pshub_model::Currency::parse(&currency)
                        .map_err(|_| bad("not a currency:", &currency))?,
                })
            },
            visit,
        )
    }

    fn each_case(&mut self, visit: &mut dyn FnMut(&CaseRow)) -> Result<()> {
        self.each("all_cases", case_row, &mut |case| visit(&case))
    }

    fn blocked_steps(&mut self) -> Result<u64> {
        let count = self.one(sqlx::query(q("blocked_steps")?), |r| {
            use sqlx::Row;
            r.try_get::<i64, _>(0)
        })?;
        Ok(count.unwrap_or(0) as u64)
    }

    fn token(&mut self, token_hash: &str) -> Result<Option<TokenRow>> {
        self.one(sqlx::query(q("token_by_hash")?).bind(token_hash), token_row)
    }

    fn xrefs(&mut self, kind: &str, id: &str) -> Result<Vec<XrefRow>> {
        self.all(sqlx::query(q("xrefs_of")?).bind(kind).bind(id), |r| {
            use sqlx::Row;
            Ok(XrefRow {
                kind: r.try_get(0)?,
                canonical_id: r.try_get(1)?,
                system: r.try_get(2)?,
                system_id: r.try_get(3)?,
                correlation_id: r.try_get(4)?,
                created_at: r.try_get(5)?,
            })
        })
    }

    fn cursor(&mut self, name: &str) -> Result<Option<String>> {
        self.one(sqlx::query(q("cursor")?).bind(name), |r| {
            sqlx::Row::try_get(r, 0)
        })
    }

    fn consistent(
        &mut self,
        read: &mut dyn FnMut(&mut dyn StoreReader) -> Result<()>,
    ) -> Result<()> {
        let handle = self.pg.clone();
        let conn = handle.block_on(async {
            let mut conn = handle.pool.acquire().await.map_err(pg)?;
            sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut *conn)
                .await
                .map_err(pg)?;
            Ok::<_, pshub_engine::error::EngineError>(conn)
        })?;
        self.pinned = Some(conn);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(&mut *self)));
        // The connection goes back to the pool only once its transaction has ended.
        let ended = match self.pinned.take() {
            // Returned to the pool inside the runtime, which a pooled connection needs.
            Some(mut conn) => handle.block_on(async move {
                let ended = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                drop(conn);
                ended.map(|_| ()).map_err(pg)
            }),
            None => Ok(()),
        };
        match outcome {
            Ok(result) => result.and(ended),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    fn ping(&mut self) -> Result<()> {
        self.one(sqlx::query(q("ping")?), |r| {
            use sqlx::Row;
            r.try_get::<i64, _>(0)
        })
        .map(|_| ())
    }
}
