-- The embedded store's queries, by name. Columns are listed in the order the row decoders of
-- src/rows.rs read them. `/*where*/` marks where a list's filters are added.
--
-- Writes that may touch several rows say OR FAIL: a failing row stops the statement without
-- undoing the rows before it, so SQLite keeps no statement journal (a copy of every page the
-- statement changes). The commit the statement belongs to is undone whole on any failure.

-- name: insert_inbox
INSERT OR FAIL INTO inbox (seq, source, event_id, event_type, correlation_id, occurred_at, received_at, raw, data, ref_version)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: delete_inbox
DELETE FROM inbox WHERE seq = ?

-- name: apply_inbox
UPDATE inbox SET ref_version = ? WHERE seq = ? AND ref_version IS NULL

-- name: insert_quarantine
INSERT OR FAIL INTO quarantine (id, source, event_id, raw, field, reason, received_at, state, replayed_seq, kind, file, line, version)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)

-- name: update_quarantine
UPDATE quarantine SET state = ?, replayed_seq = ?, version = version + 1 WHERE id = ? AND version = ?

-- name: insert_conflict
INSERT OR FAIL INTO conflicts (id, source, event_id, original_seq, event_type, data, raw, received_at, case_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: insert_entry
INSERT OR FAIL INTO entries (row_id, kind, entry_id, phase, event_seq, fingerprint, line_id, case_id, value, currency, manual, postings,
    worker_id, project_code, work_date, hours, overtime_hours, version)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)

-- name: update_entry
UPDATE entries SET phase = ?, event_seq = ?, fingerprint = ?, line_id = ?, case_id = ?, value = ?, currency = ?,
    manual = ?, postings = ?, worker_id = ?, project_code = ?, work_date = ?, hours = ?, overtime_hours = ?,
    version = version + 1
WHERE row_id = ? AND version = ?

-- name: insert_line
INSERT OR FAIL INTO lines (id, kind, entry_row, posting, source_id, event_seq, project_code, worker_id, date, quantity, rate,
    rate_currency, fx_rate, amount, currency, tax_code, billing_class, reverses, correlation_id, created_at, step_id,
    overtime_hours, role)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: insert_step
INSERT OR FAIL INTO steps (id, flow, step, system, subject, business_key, state, waits_on, attempts, next_attempt_at, lease_owner,
    lease_until, result, last_error, outcome_unknown, correlation_id, event_seq, created_at, done_at, version)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)

-- name: update_step
UPDATE steps SET state = ?, waits_on = ?, attempts = ?, next_attempt_at = ?, lease_owner = ?, lease_until = ?, result = ?,
    last_error = ?, outcome_unknown = ?, done_at = ?, version = version + 1
WHERE id = ? AND version = ?

-- name: release_waiters
UPDATE OR FAIL steps SET state = 'pending', version = version + 1
WHERE state = 'waiting' AND waits_on IN (SELECT value FROM json_each(?))

-- name: release_if_done
UPDATE OR FAIL steps SET state = 'pending', version = version + 1
WHERE id = ? AND state = 'waiting'
  AND EXISTS (SELECT 1 FROM steps prerequisite WHERE prerequisite.id = steps.waits_on AND prerequisite.state = 'done')

-- name: insert_case
INSERT OR FAIL INTO cases (id, kind, owner, business_key, state, reason, suggested_fix, correlation_id, event_seq, flow,
    entry_row, step_id, value, currency, created_at, updated_at, resolution, evidence, version)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)

-- name: update_case
UPDATE cases SET state = ?, reason = ?, event_seq = ?, value = ?, currency = ?, updated_at = ?, resolution = ?,
    evidence = ?, version = version + 1
WHERE id = ? AND version = ?

-- name: insert_project
INSERT OR FAIL INTO projects (id, project_code, opportunity_id, event_seq, correlation_id, created_at) VALUES (?, ?, ?, ?, ?, ?)

-- name: insert_outbound
INSERT OR FAIL INTO outbound (id, event_type, key, data, correlation_id, published_at) VALUES (?, ?, ?, ?, ?, ?)

-- name: insert_timeline
INSERT OR FAIL INTO timeline (correlation_id, at, what, detail, step_id, actor) VALUES (?, ?, ?, ?, ?, ?)

-- name: insert_worker_day
INSERT OR FAIL INTO worker_days (id, worker_id, day, hours, version) VALUES (?, ?, ?, ?, 1)

-- name: update_worker_day
UPDATE worker_days SET hours = ?, version = version + 1 WHERE id = ? AND version = ?

-- name: add_counters
INSERT INTO counters (node, received, duplicates, conflicts, quarantined) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (node) DO UPDATE SET received = received + excluded.received, duplicates = duplicates + excluded.duplicates,
    conflicts = conflicts + excluded.conflicts, quarantined = quarantined + excluded.quarantined

-- name: reference_version
SELECT version FROM reference_version WHERE id = 1

-- name: set_reference_version
UPDATE reference_version SET version = ? WHERE id = 1

-- name: reserve_ids
INSERT INTO ids (kind, next) VALUES (?1, 1 + ?2)
ON CONFLICT (kind) DO UPDATE SET next = next + ?2
RETURNING next - ?2

-- name: claimable_steps
SELECT id, flow, step, system, subject, business_key, state, waits_on, attempts, next_attempt_at, lease_owner,
    lease_until, result, last_error, outcome_unknown, correlation_id, event_seq, created_at, done_at, version
FROM steps
WHERE system = ?1 AND state IN ('pending', 'running')
  AND ((state = 'pending' AND next_attempt_at <= ?2) OR (state = 'running' AND lease_until < ?2))
ORDER BY id LIMIT ?3

-- name: lease_steps
UPDATE OR FAIL steps SET state = 'running', lease_owner = ?1, lease_until = ?2, version = version + 1
WHERE id IN (SELECT value FROM json_each(?3))
  AND ((state = 'pending' AND next_attempt_at <= ?4) OR (state = 'running' AND lease_until < ?4))
RETURNING id, version

-- name: renew_lease
UPDATE steps SET lease_until = ? WHERE id = ? AND lease_owner = ? AND state = 'running'

-- name: insert_token
INSERT INTO tokens (hash, id, role, name, created_at) VALUES (?, ?, ?, ?, ?)

-- name: event_by_seq
SELECT seq, source, event_id, event_type, correlation_id, occurred_at, received_at, raw, data, ref_version
FROM inbox WHERE seq = ?

-- name: event_by_key
SELECT seq, source, event_id, event_type, correlation_id, occurred_at, received_at, raw, data, ref_version
FROM inbox WHERE source = ? AND event_id = ?

-- name: event_keys
SELECT seq, source, event_id FROM inbox

-- name: reference_since
SELECT seq, source, event_id, event_type, correlation_id, occurred_at, received_at, raw, data, ref_version
FROM inbox WHERE ref_version > ? AND ref_version <= ? ORDER BY ref_version

-- name: events_of_source
SELECT seq, source, event_id, event_type, correlation_id, occurred_at, received_at, raw, data, ref_version
FROM inbox WHERE /*where*/ ORDER BY seq LIMIT ?

-- name: events_of_correlation
SELECT seq, source, event_id, event_type, correlation_id, occurred_at, received_at, raw, data, ref_version
FROM inbox WHERE correlation_id = ? ORDER BY seq

-- name: quarantine_by_id
SELECT id, source, event_id, raw, field, reason, received_at, state, replayed_seq, version, kind, file, line FROM quarantine WHERE id = ?

-- name: quarantine_list
SELECT id, source, event_id, raw, field, reason, received_at, state, replayed_seq, version, kind, file, line FROM quarantine
WHERE /*where*/ ORDER BY id LIMIT ?

-- name: quarantine_of_event
SELECT id, source, event_id, raw, field, reason, received_at, state, replayed_seq, version, kind, file, line FROM quarantine
WHERE source = ? AND event_id = ? ORDER BY id

-- name: conflicts_list
SELECT id, source, event_id, original_seq, event_type, data, raw, received_at, case_id FROM conflicts
WHERE id > ? ORDER BY id LIMIT ?

-- name: conflicts_of
SELECT id, source, event_id, original_seq, event_type, data, raw, received_at, case_id FROM conflicts
WHERE original_seq = ? ORDER BY id

-- name: conflict_by_id
SELECT id, source, event_id, original_seq, event_type, data, raw, received_at, case_id FROM conflicts WHERE id = ?

-- name: entry_by_id
SELECT row_id, kind, entry_id, phase, event_seq, fingerprint, line_id, case_id, value, currency, manual, postings, version,
    worker_id, project_code, work_date, hours, overtime_hours
FROM entries WHERE row_id = ?

-- name: entry_by_key
SELECT row_id, kind, entry_id, phase, event_seq, fingerprint, line_id, case_id, value, currency, manual, postings, version,
    worker_id, project_code, work_date, hours, overtime_hours
FROM entries WHERE kind = ? AND entry_id = ?

-- name: entry_keys
SELECT row_id, kind, entry_id FROM entries

-- name: line_by_id
SELECT l.id, l.kind, l.entry_row, l.posting, l.source_id, l.event_seq, l.project_code, l.worker_id, l.date, l.quantity,
    l.rate, l.rate_currency, l.fx_rate, l.amount, l.currency, l.tax_code, l.billing_class, l.reverses, l.correlation_id,
    l.created_at, l.step_id,
    s.id, s.flow, s.step, s.system, s.subject, s.business_key, s.state, s.waits_on, s.attempts, s.next_attempt_at,
    s.lease_owner, s.lease_until, s.result, s.last_error, s.outcome_unknown, s.correlation_id, s.event_seq, s.created_at,
    s.done_at, s.version, l.overtime_hours, l.role
FROM lines l JOIN steps s ON s.id = l.step_id AND s.subject = l.id WHERE l.id = ?

-- name: lines_list
SELECT l.id, l.kind, l.entry_row, l.posting, l.source_id, l.event_seq, l.project_code, l.worker_id, l.date, l.quantity,
    l.rate, l.rate_currency, l.fx_rate, l.amount, l.currency, l.tax_code, l.billing_class, l.reverses, l.correlation_id,
    l.created_at, l.step_id,
    s.id, s.flow, s.step, s.system, s.subject, s.business_key, s.state, s.waits_on, s.attempts, s.next_attempt_at,
    s.lease_owner, s.lease_until, s.result, s.last_error, s.outcome_unknown, s.correlation_id, s.event_seq, s.created_at,
    s.done_at, s.version, l.overtime_hours, l.role
FROM lines l JOIN steps s ON s.id = l.step_id AND s.subject = l.id WHERE /*where*/ ORDER BY l.id LIMIT ?

-- name: lines_by_ids
SELECT id, kind, entry_row, posting, source_id, event_seq, project_code, worker_id, date, quantity, rate, rate_currency,
    fx_rate, amount, currency, tax_code, billing_class, reverses, correlation_id, created_at, step_id, overtime_hours, role
FROM lines WHERE id IN (SELECT value FROM json_each(?))

-- name: step_by_id
SELECT id, flow, step, system, subject, business_key, state, waits_on, attempts, next_attempt_at, lease_owner,
    lease_until, result, last_error, outcome_unknown, correlation_id, event_seq, created_at, done_at, version
FROM steps WHERE id = ?

-- name: steps_by_ids
SELECT id, flow, step, system, subject, business_key, state, waits_on, attempts, next_attempt_at, lease_owner,
    lease_until, result, last_error, outcome_unknown, correlation_id, event_seq, created_at, done_at, version
FROM steps WHERE id IN (SELECT value FROM json_each(?))

-- name: steps_of_subject
SELECT id, flow, step, system, subject, business_key, state, waits_on, attempts, next_attempt_at, lease_owner,
    lease_until, result, last_error, outcome_unknown, correlation_id, event_seq, created_at, done_at, version
FROM steps WHERE subject = ? AND flow = ? ORDER BY id

-- name: steps_of_event
SELECT id, flow, step, system, subject, business_key, state, waits_on, attempts, next_attempt_at, lease_owner,
    lease_until, result, last_error, outcome_unknown, correlation_id, event_seq, created_at, done_at, version
FROM steps WHERE event_seq = ? ORDER BY id

-- name: steps_in_state
SELECT id, flow, step, system, subject, business_key, state, waits_on, attempts, next_attempt_at, lease_owner,
    lease_until, result, last_error, outcome_unknown, correlation_id, event_seq, created_at, done_at, version
FROM steps WHERE state = ? AND id > ? ORDER BY id LIMIT ?

-- name: timeline_of_step
SELECT correlation_id, at, what, detail, step_id, actor FROM timeline WHERE step_id = ? ORDER BY id

-- name: timeline_of_correlation
SELECT correlation_id, at, what, detail, step_id, actor FROM timeline WHERE correlation_id = ? ORDER BY id

-- name: case_by_id
SELECT id, kind, owner, business_key, state, reason, suggested_fix, correlation_id, event_seq, flow, entry_row, step_id,
    value, currency, created_at, updated_at, resolution, evidence, version
FROM cases WHERE id = ?

-- name: cases_list
SELECT id, kind, owner, business_key, state, reason, suggested_fix, correlation_id, event_seq, flow, entry_row, step_id,
    value, currency, created_at, updated_at, resolution, evidence, version
FROM cases WHERE /*where*/ ORDER BY id LIMIT ?

-- name: project_by_code
SELECT id, project_code, opportunity_id, event_seq, correlation_id, created_at FROM projects WHERE project_code = ?

-- name: outbound_list
SELECT id, event_type, key, data, correlation_id, published_at FROM outbound WHERE /*where*/ ORDER BY id LIMIT ?

-- name: worker_day
SELECT id, worker_id, day, hours, version FROM worker_days WHERE worker_id = ? AND day = ?

-- name: counters
SELECT COALESCE(SUM(received), 0), COALESCE(SUM(duplicates), 0), COALESCE(SUM(conflicts), 0),
    COALESCE(SUM(quarantined), 0)
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
SELECT COUNT(*) FROM blocked

-- name: all_cases
SELECT id, kind, owner, business_key, state, reason, suggested_fix, correlation_id, event_seq, flow, entry_row, step_id,
    value, currency, created_at, updated_at, resolution, evidence, version
FROM cases ORDER BY id

-- name: token_by_hash
SELECT id, hash, role, name, created_at FROM tokens WHERE hash = ?

-- name: ping
SELECT 1

-- name: insert_unindexed_line
INSERT OR FAIL INTO lines_unindexed (line_id) VALUES (?)

-- name: unindexed_lines
SELECT COALESCE((SELECT max(line_id) FROM lines_unindexed) - (SELECT min(line_id) FROM lines_unindexed) + 1, 0)

-- name: unindexed_line_keys
SELECT l.id, l.project_code, l.worker_id FROM lines_unindexed u JOIN lines l ON l.id = u.line_id ORDER BY l.id

-- name: insert_posting
INSERT OR FAIL INTO line_postings (field, value, first_id, ids) VALUES (?, ?, ?, ?)

-- name: clear_unindexed_lines
DELETE FROM lines_unindexed

-- name: postings
SELECT ids FROM line_postings WHERE field = ? AND value = ? ORDER BY first_id

-- name: unindexed_lines_of_project
SELECT u.line_id FROM lines_unindexed u JOIN lines l ON l.id = u.line_id WHERE l.project_code = ?1 AND u.line_id > ?2

-- name: unindexed_lines_of_worker
SELECT u.line_id FROM lines_unindexed u JOIN lines l ON l.id = u.line_id WHERE l.worker_id = ?1 AND u.line_id > ?2

-- name: worked_hours
SELECT entry_id, worker_id, project_code, work_date, hours, overtime_hours FROM entries
WHERE work_date >= ?1 AND work_date <= ?2 AND (?3 IS NULL OR worker_id = ?3) AND (?4 IS NULL OR project_code = ?4)
ORDER BY work_date, row_id

-- name: upsert_payroll_actual
INSERT INTO payroll_actuals (period, worker_id, gross_cost, currency, load_id, line) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (period, worker_id) DO UPDATE SET gross_cost = excluded.gross_cost, currency = excluded.currency,
    load_id = excluded.load_id, line = excluded.line
WHERE gross_cost <> excluded.gross_cost OR currency <> excluded.currency

-- name: payroll_actual
SELECT worker_id, period, gross_cost, currency, load_id, line FROM payroll_actuals WHERE period = ? AND worker_id = ?

-- name: payroll_of_period
SELECT worker_id, period, gross_cost, currency, load_id, line FROM payroll_actuals WHERE period = ? ORDER BY worker_id

-- name: payroll_of_load
SELECT worker_id, period, gross_cost, currency, load_id, line FROM payroll_actuals WHERE load_id = ? ORDER BY period, worker_id

-- name: insert_payroll_load
INSERT OR FAIL INTO payroll_loads (id, file, rows, loaded, duplicates, rejected, loaded_at, checked) VALUES (?, ?, ?, ?, ?, ?, ?, ?)

-- name: check_payroll_load
UPDATE payroll_loads SET checked = 1 WHERE id = ?

-- name: payroll_loads
SELECT id, file, rows, loaded, duplicates, rejected, loaded_at, checked FROM payroll_loads
WHERE id > ?1 AND (?2 = 0 OR checked = 0) ORDER BY id LIMIT ?3

-- name: payroll_changed_by_load
SELECT count(*) FROM payroll_actuals WHERE load_id = ?

-- name: save_cursor
INSERT INTO connector_cursors (name, cursor, saved_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor, saved_at = excluded.saved_at

-- name: cursor
SELECT cursor FROM connector_cursors WHERE name = ?

-- name: insert_xref
INSERT OR IGNORE INTO xrefs (kind, canonical_id, system, system_id, correlation_id, created_at) VALUES (?, ?, ?, ?, ?, ?)

-- name: xrefs_of
SELECT kind, canonical_id, system, system_id, correlation_id, created_at FROM xrefs
WHERE kind = ?1 AND canonical_id IN (SELECT canonical_id FROM xrefs WHERE kind = ?1 AND (canonical_id = ?2 OR system_id = ?2))
ORDER BY canonical_id, created_at, system
