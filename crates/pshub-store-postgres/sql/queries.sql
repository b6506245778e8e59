-- The scale-out store's queries, by name. Columns are listed in the order the row decoders
-- of src/rows.rs read them. `/*where*/` marks where a list's filters are added. Rows arrive
-- in batches as arrays, one per column, and are written by one statement per table.

-- name: insert_inbox
INSERT INTO inbox (seq, source, event_id, event_type, correlation_id, occurred_at, received_at, raw, data, ref_version)
SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::bigint[])

-- name: delete_inbox
DELETE FROM inbox WHERE seq = ANY($1)

-- name: apply_inbox
UPDATE inbox SET ref_version = $1 WHERE seq = $2 AND ref_version IS NULL

-- name: insert_quarantine
INSERT INTO quarantine (id, source, event_id, raw, field, reason, received_at, state, replayed_seq, kind, file, line, version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1)

-- name: update_quarantine
UPDATE quarantine SET state = $1, replayed_seq = $2, version = version + 1 WHERE id = $3 AND version = $4

-- name: insert_conflicts
INSERT INTO conflicts (id, source, event_id, original_seq, event_type, data, raw, received_at, case_id)
SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::bigint[])

-- name: insert_entries
INSERT INTO entries (row_id, kind, entry_id, phase, event_seq, fingerprint, line_id, case_id, value, currency, manual, postings,
    worker_id, project_code, work_date, hours, overtime_hours, version)
SELECT *, 1 FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[],
    $8::bigint[], $9::numeric[], $10::text[], $11::boolean[], $12::int[], $13::text[], $14::text[], $15::date[],
    $16::numeric[], $17::numeric[])

-- name: update_entries
UPDATE entries e SET phase = u.phase, event_seq = u.event_seq, fingerprint = u.fingerprint, line_id = u.line_id,
    case_id = u.case_id, value = u.value, currency = u.currency, manual = u.manual, postings = u.postings,
    worker_id = u.worker_id, project_code = u.project_code, work_date = u.work_date, hours = u.hours,
    overtime_hours = u.overtime_hours, version = e.version + 1
FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
    $8::numeric[], $9::text[], $10::boolean[], $11::int[], $12::text[], $13::text[], $14::date[], $15::numeric[],
    $16::numeric[])
    AS u (row_id, version, phase, event_seq, fingerprint, line_id, case_id, value, currency, manual, postings,
        worker_id, project_code, work_date, hours, overtime_hours)
WHERE e.row_id = u.row_id AND e.version = u.version

-- name: insert_lines
INSERT INTO lines (id, kind, entry_row, posting, source_id, event_seq, project_code, worker_id, date, quantity, rate, rate_currency, fx_rate, amount, currency, tax_code, billing_class, reverses, correlation_id, created_at, step_id, overtime_hours, role)
SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::int[], $5::text[], $6::bigint[], $7::text[],
    $8::text[], $9::date[], $10::numeric[], $11::numeric[], $12::text[], $13::numeric[], $14::numeric[], $15::text[],
    $16::text[], $17::text[], $18::bigint[], $19::text[], $20::text[], $21::bigint[], $22::numeric[], $23::text[])

-- name: insert_steps
INSERT INTO steps (id, flow, step, system, subject, business_key, state, waits_on, attempts, next_attempt_at, lease_owner, lease_until, result, last_error, outcome_unknown, correlation_id, event_seq, created_at, done_at, version)
SELECT *, 1 FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[],
    $8::bigint[], $9::int[], $10::bigint[], $11::bigint[], $12::bigint[], $13::text[], $14::text[], $15::boolean[],
    $16::text[], $17::bigint[], $18::text[], $19::text[])

-- name: update_steps
UPDATE steps s SET state = u.state, waits_on = u.waits_on, attempts = u.attempts, next_attempt_at = u.next_attempt_at,
    lease_owner = u.lease_owner, lease_until = u.lease_until, result = u.result, last_error = u.last_error,
    outcome_unknown = u.outcome_unknown, done_at = u.done_at, version = s.version + 1
FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::int[], $6::bigint[], $7::bigint[], $8::bigint[],
    $9::text[], $10::text[], $11::boolean[], $12::text[])
    AS u (id, version, state, waits_on, attempts, next_attempt_at, lease_owner, lease_until, result, last_error,
        outcome_unknown, done_at)
WHERE s.id = u.id AND s.version = u.version

-- name: lock_prerequisites
SELECT id FROM steps WHERE id = ANY($1) ORDER BY id FOR SHARE

-- name: release_if_done
UPDATE steps SET state = 'pending', version = version + 1
WHERE id = ANY($1) AND state = 'waiting'
  AND waits_on IN (SELECT id FROM steps WHERE id = ANY($2) AND state = 'done')

-- name: release_waiters
UPDATE steps SET state = 'pending', version = version + 1 WHERE state = 'waiting' AND waits_on = ANY($1)

-- name: insert_case
INSERT INTO cases (id, kind, owner, business_key, state, reason, suggested_fix, correlation_id, event_seq, flow, entry_row, step_id, value, currency, created_at, updated_at, resolution, evidence, version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, 1)

-- name: update_case
UPDATE cases SET state = $1, reason = $2, event_seq = $3, value = $4, currency = $5, updated_at = $6, resolution = $7,
    evidence = $8, version = version + 1
WHERE id = $9 AND version = $10

-- name: insert_project
INSERT INTO projects (id, project_code, opportunity_id, event_seq, correlation_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)

-- name: insert_outbound
INSERT INTO outbound (id, event_type, key, data, correlation_id, published_at) VALUES ($1, $2, $3, $4, $5, $6)

-- name: insert_timeline
INSERT INTO timeline (correlation_id, at, what, detail, step_id, actor)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[])

-- name: insert_worker_day
INSERT INTO worker_days (id, worker_id, day, hours, version) VALUES ($1, $2, $3, $4, 1)

-- name: update_worker_day
UPDATE worker_days SET hours = $1, version = version + 1 WHERE id = $2 AND version = $3

-- name: add_counters
INSERT INTO counters (node, received, duplicates, conflicts, quarantined) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (node) DO UPDATE SET received = counters.received + EXCLUDED.received,
    duplicates = counters.duplicates + EXCLUDED.duplicates, conflicts = counters.conflicts + EXCLUDED.conflicts,
    quarantined = counters.quarantined + EXCLUDED.quarantined

-- name: reference_version
SELECT version FROM reference_version WHERE id = 1

-- name: reference_version_share
SELECT version FROM reference_version WHERE id = 1 FOR SHARE

-- name: reference_version_update
SELECT version FROM reference_version WHERE id = 1 FOR UPDATE

-- name: set_reference_version
UPDATE reference_version SET version = $1 WHERE id = 1

-- name: reserve_ids
INSERT INTO ids (kind, next) VALUES ($1, 1 + $2::bigint)
ON CONFLICT (kind) DO UPDATE SET next = ids.next + $2::bigint
RETURNING next - $2::bigint

-- name: claim_steps
WITH due AS (
    SELECT id, state AS before FROM steps
    WHERE system = $1 AND state IN ('pending', 'running')
      AND ((state = 'pending' AND next_attempt_at <= $2) OR (state = 'running' AND lease_until < $2))
    ORDER BY id LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE steps s SET state = 'running', lease_owner = $4, lease_until = $5, version = s.version + 1
FROM due WHERE s.id = due.id
RETURNING s.id, s.flow, s.step, s.system, s.subject, s.business_key, s.state, s.waits_on, s.attempts, s.next_attempt_at, s.lease_owner, s.lease_until, s.result, s.last_error, s.outcome_unknown, s.correlation_id, s.event_seq, s.created_at, s.done_at, s.version, due.before

-- name: renew_leases
UPDATE steps SET lease_until = $1 WHERE id = ANY($2) AND lease_owner = $3 AND state = 'running'

-- name: insert_token
INSERT INTO tokens (hash, id, role, name, created_at) VALUES ($1, $2, $3, $4, $5)

-- name: events_by_keys
SELECT i.seq, i.source, i.event_id, i.event_type, i.correlation_id, i.occurred_at, i.received_at, i.raw, i.data, i.ref_version FROM inbox i
JOIN UNNEST($1::text[], $2::text[]) AS k (source, event_id) ON i.source = k.source AND i.event_id = k.event_id

-- name: entries_by_keys
SELECT e.row_id, e.kind, e.entry_id, e.phase, e.event_seq, e.fingerprint, e.line_id, e.case_id, e.value, e.currency, e.manual, e.postings, e.version,
    e.worker_id, e.project_code, e.work_date, e.hours, e.overtime_hours FROM entries e
JOIN UNNEST($1::text[], $2::text[]) AS k (kind, entry_id) ON e.kind = k.kind AND e.entry_id = k.entry_id

-- name: reference_since
SELECT seq, source, event_id, event_type, correlation_id, occurred_at, received_at, raw, data, ref_version FROM inbox WHERE ref_version > $1 AND ref_version <= $2 ORDER BY ref_version

-- name: event_by_seq
SELECT seq, source, event_id, event_type, correlation_id, occurred_at, received_at, raw, data, ref_version FROM inbox WHERE seq = $1

-- name: event_by_key
SELECT seq, source, event_id, event_type, correlation_id, occurred_at, received_at, raw, data, ref_version FROM inbox WHERE source = $1 AND event_id = $2

-- name: events_of_source
SELECT seq, source, event_id, event_type, correlation_id, occurred_at, received_at, raw, data, ref_version FROM inbox WHERE /*where*/ ORDER BY seq LIMIT /*limit*/

-- name: events_of_correlation
SELECT seq, source, event_id, event_type, correlation_id, occurred_at, received_at, raw, data, ref_version FROM inbox WHERE correlation_id = $1 ORDER BY seq

-- name: quarantine_by_id
SELECT id, source, event_id, raw, field, reason, received_at, state, replayed_seq, version, kind, file, line FROM quarantine WHERE id = $1

-- name: quarantine_list
SELECT id, source, event_id, raw, field, reason, received_at, state, replayed_seq, version, kind, file, line FROM quarantine WHERE /*where*/ ORDER BY id LIMIT /*limit*/

-- name: quarantine_of_event
SELECT id, source, event_id, raw, field, reason, received_at, state, replayed_seq, version, kind, file, line FROM quarantine WHERE source = $1 AND event_id = $2 ORDER BY id

-- name: conflicts_list
SELECT id, source, event_id, original_seq, event_type, data, raw, received_at, case_id FROM conflicts WHERE id > $1 ORDER BY id LIMIT $2

-- name: conflicts_of
SELECT id, source, event_id, original_seq, event_type, data, raw, received_at, case_id FROM conflicts WHERE original_seq = $1 ORDER BY id

-- name: conflict_by_id
SELECT id, source, event_id, original_seq, event_type, data, raw, received_at, case_id FROM conflicts WHERE id = $1

-- name: entry_by_id
SELECT row_id, kind, entry_id, phase, event_seq, fingerprint, line_id, case_id, value, currency, manual, postings, version,
    worker_id, project_code, work_date, hours, overtime_hours FROM entries WHERE row_id = $1

-- name: entry_by_key
SELECT row_id, kind, entry_id, phase, event_seq, fingerprint, line_id, case_id, value, currency, manual, postings, version,
    worker_id, project_code, work_date, hours, overtime_hours FROM entries WHERE kind = $1 AND entry_id = $2

-- name: line_by_id
SELECT l.id, l.kind, l.entry_row, l.posting, l.source_id, l.event_seq, l.project_code, l.worker_id, l.date, l.quantity, l.rate, l.rate_currency, l.fx_rate, l.amount, l.currency, l.tax_code, l.billing_class, l.reverses, l.correlation_id, l.created_at, l.step_id,
    s.id, s.flow, s.step, s.system, s.subject, s.business_key, s.state, s.waits_on, s.attempts, s.next_attempt_at, s.lease_owner, s.lease_until, s.result, s.last_error, s.outcome_unknown, s.correlation_id, s.event_seq, s.created_at, s.done_at, s.version, l.overtime_hours, l.role
FROM lines l JOIN steps s ON s.id = l.step_id AND s.subject = l.id WHERE l.id = $1

-- name: lines_list
SELECT l.id, l.kind, l.entry_row, l.posting, l.source_id, l.event_seq, l.project_code, l.worker_id, l.date, l.quantity, l.rate, l.rate_currency, l.fx_rate, l.amount, l.currency, l.tax_code, l.billing_class, l.reverses, l.correlation_id, l.created_at, l.step_id,
    s.id, s.flow, s.step, s.system, s.subject, s.business_key, s.state, s.waits_on, s.attempts, s.next_attempt_at, s.lease_owner, s.lease_until, s.result, s.last_error, s.outcome_unknown, s.correlation_id, s.event_seq, s.created_at, s.done_at, s.version, l.overtime_hours, l.role
FROM lines l JOIN steps s ON s.id = l.step_id AND s.subject = l.id WHERE /*where*/ ORDER BY l.id LIMIT /*limit*/

-- name: lines_by_ids
SELECT id, kind, entry_row, posting, source_id, event_seq, project_code, worker_id, date, quantity, rate, rate_currency, fx_rate, amount, currency, tax_code, billing_class, reverses, correlation_id, created_at, step_id, overtime_hours, role FROM lines WHERE id = ANY($1)

-- name: step_by_id
SELECT id, flow, step, system, subject, business_key, state, waits_on, attempts, next_attempt_at, lease_owner, lease_until, result, last_error, outcome_unknown, correlation_id, event_seq, created_at, done_at, version FROM steps WHERE id = $1

-- name: steps_by_ids
SELECT id, flow, step, system, subject, business_key, state, waits_on, attempts, next_attempt_at, lease_owner, lease_until, result, last_error, outcome_unknown, correlation_id, event_seq, created_at, done_at, version FROM steps WHERE id = ANY($1)

-- name: steps_of_subject
SELECT id, flow, step, system, subject, business_key, state, waits_on, attempts, next_attempt_at, lease_owner, lease_until, result, last_error, outcome_unknown, correlation_id, event_seq, created_at, done_at, version FROM steps WHERE subject = $1 AND flow = $2 ORDER BY id

-- name: steps_of_event
SELECT id, flow, step, system, subject, business_key, state, waits_on, attempts, next_attempt_at, lease_owner, lease_until, result, last_error, outcome_unknown, correlation_id, event_seq, created_at, done_at, version FROM steps WHERE event_seq = $1 ORDER BY id

-- name: steps_in_state
SELECT id, flow, step, system, subject, business_key, state, waits_on, attempts, next_attempt_at, lease_owner, lease_until, result, last_error, outcome_unknown, correlation_id, event_seq, created_at, done_at, version FROM steps WHERE state = $1 AND id > $2 ORDER BY id LIMIT $3

-- name: timeline_of_step
SELECT correlation_id, at, what, detail, step_id, actor FROM timeline WHERE step_id = $1 ORDER BY id

-- name: timeline_of_correlation
SELECT correlation_id, at, what, detail, step_id, actor FROM timeline WHERE correlation_id = $1 ORDER BY id

-- name: case_by_id
SELECT id, kind, owner, business_key, state, reason, suggested_fix, correlation_id, event_seq, flow, entry_row, step_id, value, currency, created_at, updated_at, resolution, evidence, version FROM cases WHERE id = $1

-- name: cases_list
SELECT id, kind, owner, business_key, state, reason, suggested_fix, correlation_id, event_seq, flow, entry_row, step_id, value, currency, created_at, updated_at, resolution, evidence, version FROM cases WHERE /*where*/ ORDER BY id LIMIT /*limit*/

-- name: project_by_code
SELECT id, project_code, opportunity_id, event_seq, correlation_id, created_at FROM projects WHERE project_code = $1

-- name: outbound_list
SELECT id, event_type, key, data, correlation_id, published_at FROM outbound WHERE /*where*/ ORDER BY id LIMIT /*limit*/

-- name: worker_day
SELECT id, worker_id, day, hours, version FROM worker_days WHERE worker_id = $1 AND day = $2

-- name: counters
SELECT COALESCE(SUM(received), 0)::bigint, COALESCE(SUM(duplicates), 0)::bigint, COALESCE(SUM(conflicts), 0)::bigint,
    COALESCE(SUM(quarantined), 0)::bigint
FROM counters

-- name: entry_figures
SELECT e.phase, e.manual, e.value, e.currency, s.state
FROM entries e LEFT JOIN lines l ON l.id = e.line_id LEFT JOIN steps s ON s.id = l.step_id

-- name: line_figures
WITH RECURSIVE blocked (id) AS (
    SELECT s.id FROM steps s JOIN steps w ON w.id = s.waits_on
    WHERE s.state = 'waiting' AND w.state IN ('failed', 'held')
    UNION SELECT s.id FROM steps s JOIN blocked b ON s.waits_on = b.id WHERE s.state = 'waiting'
)
SELECT l.kind, s.state, s.id IN (SELECT id FROM blocked), l.amount, l.currency
FROM lines l JOIN steps s ON s.id = l.step_id AND s.subject = l.id

-- name: blocked_steps
WITH RECURSIVE blocked (id) AS (
    SELECT s.id FROM steps s JOIN steps w ON w.id = s.waits_on
    WHERE s.state = 'waiting' AND w.state IN ('failed', 'held')
    UNION SELECT s.id FROM steps s JOIN blocked b ON s.waits_on = b.id WHERE s.state = 'waiting'
)
SELECT COUNT(*)::bigint FROM blocked

-- name: all_cases
SELECT id, kind, owner, business_key, state, reason, suggested_fix, correlation_id, event_seq, flow, entry_row, step_id, value, currency, created_at, updated_at, resolution, evidence, version FROM cases ORDER BY id

-- name: token_by_hash
SELECT id, hash, role, name, created_at FROM tokens WHERE hash = $1

-- name: ping
SELECT 1::bigint

-- name: worked_hours
SELECT entry_id, worker_id, project_code, work_date, hours, overtime_hours FROM entries
WHERE work_date >= $1 AND work_date <= $2 AND ($3::text IS NULL OR worker_id = $3) AND ($4::text IS NULL OR project_code = $4)
ORDER BY work_date, row_id

-- name: upsert_payroll_actuals
INSERT INTO payroll_actuals (period, worker_id, gross_cost, currency, load_id, line)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::numeric[], $4::text[], $5::bigint[], $6::bigint[])
ON CONFLICT (period, worker_id) DO UPDATE SET gross_cost = EXCLUDED.gross_cost, currency = EXCLUDED.currency,
    load_id = EXCLUDED.load_id, line = EXCLUDED.line
WHERE payroll_actuals.gross_cost <> EXCLUDED.gross_cost OR payroll_actuals.currency <> EXCLUDED.currency

-- name: payroll_actual
SELECT worker_id, period, gross_cost, currency, load_id, line FROM payroll_actuals WHERE period = $1 AND worker_id = $2

-- name: payroll_of_period
SELECT worker_id, period, gross_cost, currency, load_id, line FROM payroll_actuals WHERE period = $1 ORDER BY worker_id

-- name: payroll_of_load
SELECT worker_id, period, gross_cost, currency, load_id, line FROM payroll_actuals WHERE load_id = $1 ORDER BY period, worker_id

-- name: insert_payroll_load
INSERT INTO payroll_loads (id, file, rows, loaded, duplicates, rejected, loaded_at, checked) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)

-- name: check_payroll_load
UPDATE payroll_loads SET checked = TRUE WHERE id = $1

-- name: payroll_loads
SELECT id, file, rows, loaded, duplicates, rejected, loaded_at, checked FROM payroll_loads
WHERE id > $1 AND (NOT $2 OR NOT checked) ORDER BY id LIMIT $3

-- name: payroll_changed_by_load
SELECT count(*) FROM payroll_actuals WHERE load_id = $1

-- name: save_cursor
INSERT INTO connector_cursors (name, cursor, saved_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor, saved_at = excluded.saved_at

-- name: cursor
SELECT cursor FROM connector_cursors WHERE name = $1

-- name: insert_xref
INSERT INTO xrefs (kind, canonical_id, system, system_id, correlation_id, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING

-- name: xrefs_of
SELECT kind, canonical_id, system, system_id, correlation_id, created_at FROM xrefs
WHERE kind = $1 AND canonical_id IN (SELECT canonical_id FROM xrefs WHERE kind = $1 AND (canonical_id = $2 OR system_id = $2))
ORDER BY canonical_id, created_at, system
