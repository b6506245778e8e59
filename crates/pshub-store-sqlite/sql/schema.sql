-- The embedded store's schema. Every table whose rows arrive at event rate is keyed by an
-- integer the engine assigns in order, so inserts append to the B-tree instead of landing
-- on random pages; lookups by an external text id go through an in-memory index instead.
PRAGMA user_version = 1;

CREATE TABLE IF NOT EXISTS inbox (
    seq            INTEGER PRIMARY KEY,
    source         TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    business_key   TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    occurred_at    TEXT NOT NULL,
    received_at    TEXT NOT NULL,
    data           TEXT NOT NULL,
    reference      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_reference ON inbox (seq) WHERE reference = 1;
CREATE INDEX IF NOT EXISTS inbox_correlation ON inbox (correlation_id);

CREATE TABLE IF NOT EXISTS quarantine (
    id           INTEGER PRIMARY KEY,
    source       TEXT,
    event_id     TEXT,
    raw          TEXT NOT NULL,
    field        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    state        TEXT NOT NULL,
    replayed_seq INTEGER
);
CREATE INDEX IF NOT EXISTS quarantine_event ON quarantine (source, event_id);

CREATE TABLE IF NOT EXISTS conflicts (
    id           INTEGER PRIMARY KEY,
    source       TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    original_seq INTEGER NOT NULL,
    event_type   TEXT NOT NULL,
    data         TEXT NOT NULL,
    received_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conflicts_original ON conflicts (original_seq);

CREATE TABLE IF NOT EXISTS entries (
    row_id      INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    entry_id    TEXT NOT NULL,
    phase       TEXT NOT NULL,
    event_seq   INTEGER NOT NULL,
    fingerprint INTEGER NOT NULL,
    line_id     INTEGER,
    case_id     INTEGER,
    value       TEXT,
    currency    TEXT,
    manual      INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS lines (
    id             INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL,
    status         TEXT NOT NULL,
    erp_id         TEXT,
    entry_row      INTEGER NOT NULL,
    source_id      TEXT NOT NULL,
    event_seq      INTEGER NOT NULL,
    project_code   TEXT NOT NULL,
    worker_id      TEXT NOT NULL,
    date           TEXT NOT NULL,
    quantity       TEXT NOT NULL,
    rate           TEXT NOT NULL,
    rate_currency  TEXT NOT NULL,
    fx_rate        TEXT,
    amount         TEXT NOT NULL,
    currency       TEXT NOT NULL,
    tax_code       TEXT NOT NULL,
    billing_class  TEXT NOT NULL,
    reverses       INTEGER,
    correlation_id TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    posted_at      TEXT,
    -- A line is its own outbox record: its delivery to the ERP.
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS lines_pending ON lines (id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS lines_failed ON lines (id) WHERE status = 'failed';
CREATE INDEX IF NOT EXISTS lines_project ON lines (project_code, id);
CREATE INDEX IF NOT EXISTS lines_worker ON lines (worker_id, id);
CREATE INDEX IF NOT EXISTS lines_entry ON lines (entry_row);
CREATE INDEX IF NOT EXISTS lines_event ON lines (event_seq);
CREATE INDEX IF NOT EXISTS lines_correlation ON lines (correlation_id);

CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY,
    target          TEXT NOT NULL,
    operation       TEXT NOT NULL,
    subject         INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    correlation_id  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_dead ON outbox (id) WHERE state = 'dead';
CREATE INDEX IF NOT EXISTS outbox_undelivered ON outbox (operation, id) WHERE state != 'delivered';
CREATE INDEX IF NOT EXISTS outbox_correlation ON outbox (correlation_id);

CREATE TABLE IF NOT EXISTS cases (
    id             INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL,
    owner          TEXT NOT NULL,
    business_key   TEXT NOT NULL,
    state          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    suggested_fix  TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    event_seq      INTEGER NOT NULL,
    entry_row      INTEGER,
    line_id        INTEGER,
    outbox_id      INTEGER,
    value          TEXT,
    currency       TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    resolution     TEXT
);
CREATE INDEX IF NOT EXISTS cases_event ON cases (event_seq);
CREATE INDEX IF NOT EXISTS cases_correlation ON cases (correlation_id);
CREATE INDEX IF NOT EXISTS cases_owner ON cases (owner, state, id);

CREATE TABLE IF NOT EXISTS steps (
    id             INTEGER PRIMARY KEY,
    correlation_id TEXT NOT NULL,
    at             TEXT NOT NULL,
    step           TEXT NOT NULL,
    detail         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS steps_correlation ON steps (correlation_id);

CREATE TABLE IF NOT EXISTS counters (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    received    INTEGER NOT NULL,
    duplicates  INTEGER NOT NULL,
    conflicts   INTEGER NOT NULL,
    quarantined INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters VALUES (1, 0, 0, 0, 0);

CREATE TABLE IF NOT EXISTS tokens (
    hash       TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    label      TEXT NOT NULL,
    created_at TEXT NOT NULL
);
