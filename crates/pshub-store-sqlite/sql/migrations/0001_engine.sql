-- The embedded store's schema. Tables whose rows arrive at event rate are keyed by integer
-- ids the store hands out in blocks, so inserts append to their B-trees. Every key that must
-- be unique is a UNIQUE constraint: the database, not a process's memory, refuses a second row.

CREATE TABLE ids (
    kind TEXT PRIMARY KEY,
    next INTEGER NOT NULL
) WITHOUT ROWID;

-- The one order in which every process applies reference changes.
CREATE TABLE reference_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO reference_version VALUES (1, 0);

CREATE TABLE inbox (
    seq            INTEGER PRIMARY KEY,
    source         TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    occurred_at    TEXT NOT NULL,
    received_at    TEXT NOT NULL,
    raw            TEXT NOT NULL,
    data           TEXT NOT NULL,
    ref_version    INTEGER,
    UNIQUE (source, event_id)
);
CREATE INDEX inbox_reference ON inbox (ref_version) WHERE ref_version IS NOT NULL;
CREATE INDEX inbox_correlation ON inbox (correlation_id);

CREATE TABLE quarantine (
    id           INTEGER PRIMARY KEY,
    source       TEXT,
    event_id     TEXT,
    raw          TEXT NOT NULL,
    field        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    state        TEXT NOT NULL,
    replayed_seq INTEGER,
    version      INTEGER NOT NULL
);
CREATE INDEX quarantine_event ON quarantine (source, event_id);

CREATE TABLE conflicts (
    id           INTEGER PRIMARY KEY,
    source       TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    original_seq INTEGER NOT NULL,
    event_type   TEXT NOT NULL,
    data         TEXT NOT NULL,
    raw          TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    case_id      INTEGER NOT NULL
);
CREATE INDEX conflicts_original ON conflicts (original_seq);

CREATE TABLE entries (
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
    manual      INTEGER NOT NULL,
    postings    INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    UNIQUE (kind, entry_id)
);

-- An invoice line's content; its delivery is its step.
CREATE TABLE lines (
    id             INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL,
    entry_row      INTEGER NOT NULL,
    posting        INTEGER NOT NULL,
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
    step_id        INTEGER NOT NULL,
    UNIQUE (entry_row, posting)
);
CREATE INDEX lines_project ON lines (project_code, id);
CREATE INDEX lines_worker ON lines (worker_id, id);

CREATE TABLE steps (
    id              INTEGER PRIMARY KEY,
    flow            TEXT NOT NULL,
    step            TEXT NOT NULL,
    system          TEXT NOT NULL,
    subject         INTEGER NOT NULL,
    business_key    TEXT NOT NULL,
    state           TEXT NOT NULL,
    waits_on        INTEGER,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     INTEGER,
    lease_until     INTEGER NOT NULL,
    result          TEXT,
    last_error      TEXT,
    outcome_unknown INTEGER NOT NULL,
    correlation_id  TEXT NOT NULL,
    event_seq       INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    done_at         TEXT,
    version         INTEGER NOT NULL,
    -- The idempotency key, pshub:{flow}:{step}:{business_key}, is unique.
    UNIQUE (business_key, step, flow)
);
-- One index of the steps that may be claimed: leasing a step (pending to running) does not
-- move it in the index; it leaves when it is done, failed or held.
CREATE INDEX steps_active ON steps (system, id) WHERE state IN ('pending', 'running');
CREATE INDEX steps_waiting ON steps (waits_on) WHERE state = 'waiting';
CREATE INDEX steps_stuck ON steps (state, id) WHERE state IN ('failed', 'held');
CREATE INDEX steps_event ON steps (event_seq);
CREATE INDEX steps_subject ON steps (subject);

CREATE TABLE cases (
    id             INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL,
    owner          TEXT NOT NULL,
    business_key   TEXT NOT NULL,
    state          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    suggested_fix  TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    event_seq      INTEGER NOT NULL,
    flow           TEXT NOT NULL,
    entry_row      INTEGER,
    step_id        INTEGER,
    value          TEXT,
    currency       TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    resolution     TEXT,
    evidence       TEXT,
    version        INTEGER NOT NULL
);
CREATE INDEX cases_event ON cases (event_seq);
CREATE INDEX cases_correlation ON cases (correlation_id);
CREATE INDEX cases_owner ON cases (owner, state, id);
CREATE INDEX cases_step ON cases (step_id) WHERE step_id IS NOT NULL;

CREATE TABLE projects (
    id             INTEGER PRIMARY KEY,
    project_code   TEXT NOT NULL UNIQUE,
    opportunity_id TEXT NOT NULL,
    event_seq      INTEGER NOT NULL,
    correlation_id TEXT NOT NULL,
    created_at     TEXT NOT NULL
);

CREATE TABLE outbound (
    id             INTEGER PRIMARY KEY,
    event_type     TEXT NOT NULL,
    key            TEXT NOT NULL UNIQUE,
    data           TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    published_at   TEXT NOT NULL
);
CREATE INDEX outbound_type ON outbound (event_type, id);

CREATE TABLE timeline (
    id             INTEGER PRIMARY KEY,
    correlation_id TEXT NOT NULL,
    at             TEXT NOT NULL,
    what           TEXT NOT NULL,
    detail         TEXT NOT NULL,
    step_id        INTEGER,
    actor          TEXT
);
CREATE INDEX timeline_correlation ON timeline (correlation_id);
CREATE INDEX timeline_step ON timeline (step_id) WHERE step_id IS NOT NULL;

CREATE TABLE worker_days (
    id        INTEGER PRIMARY KEY,
    worker_id TEXT NOT NULL,
    day       TEXT NOT NULL,
    hours     TEXT NOT NULL,
    version   INTEGER NOT NULL,
    UNIQUE (worker_id, day)
);

-- Counters per process, summed when read, so that processes never contend on one row.
CREATE TABLE counters (
    node        INTEGER PRIMARY KEY,
    received    INTEGER NOT NULL,
    duplicates  INTEGER NOT NULL,
    conflicts   INTEGER NOT NULL,
    quarantined INTEGER NOT NULL
);

CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    id         INTEGER NOT NULL UNIQUE,
    role       TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
