-- The scale-out store's schema: the tables of the embedded store, in PostgreSQL's types.
-- Every key that must be unique is a UNIQUE constraint; several hub processes share these
-- tables and the database refuses a second row for a key, whichever process writes it.

CREATE TABLE ids (
    kind TEXT PRIMARY KEY,
    next BIGINT NOT NULL
);

-- The one order in which every process applies reference changes.
CREATE TABLE reference_version (
    id      INT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO reference_version VALUES (1, 0);

CREATE TABLE inbox (
    seq            BIGINT PRIMARY KEY,
    source         TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    occurred_at    TEXT NOT NULL,
    received_at    TEXT NOT NULL,
    raw            TEXT NOT NULL,
    data           TEXT NOT NULL,
    ref_version    BIGINT,
    UNIQUE (source, event_id)
);
CREATE INDEX inbox_reference ON inbox (ref_version) WHERE ref_version IS NOT NULL;
CREATE INDEX inbox_correlation ON inbox (correlation_id);

CREATE TABLE quarantine (
    id           BIGINT PRIMARY KEY,
    source       TEXT,
    event_id     TEXT,
    raw          TEXT NOT NULL,
    field        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    state        TEXT NOT NULL,
    replayed_seq BIGINT,
    version      BIGINT NOT NULL
);
CREATE INDEX quarantine_event ON quarantine (source, event_id);

CREATE TABLE conflicts (
    id           BIGINT PRIMARY KEY,
    source       TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    original_seq BIGINT NOT NULL,
    event_type   TEXT NOT NULL,
    data         TEXT NOT NULL,
    raw          TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    case_id      BIGINT NOT NULL
);
CREATE INDEX conflicts_original ON conflicts (original_seq);

CREATE TABLE entries (
    row_id      BIGINT PRIMARY KEY,
    kind        TEXT NOT NULL,
    entry_id    TEXT NOT NULL,
    phase       TEXT NOT NULL,
    event_seq   BIGINT NOT NULL,
    fingerprint BIGINT NOT NULL,
    line_id     BIGINT,
    case_id     BIGINT,
    value       NUMERIC,
    currency    TEXT,
    manual      BOOLEAN NOT NULL,
    postings    INT NOT NULL,
    version     BIGINT NOT NULL,
    UNIQUE (kind, entry_id)
);

CREATE TABLE lines (
    id             BIGINT PRIMARY KEY,
    kind           TEXT NOT NULL,
    entry_row      BIGINT NOT NULL,
    posting        INT NOT NULL,
    source_id      TEXT NOT NULL,
    event_seq      BIGINT NOT NULL,
    project_code   TEXT NOT NULL,
    worker_id      TEXT NOT NULL,
    date           DATE NOT NULL,
    quantity       NUMERIC NOT NULL,
    rate           NUMERIC NOT NULL,
    rate_currency  TEXT NOT NULL,
    fx_rate        NUMERIC,
    amount         NUMERIC NOT NULL,
    currency       TEXT NOT NULL,
    tax_code       TEXT NOT NULL,
    billing_class  TEXT NOT NULL,
    reverses       BIGINT,
    correlation_id TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    step_id        BIGINT NOT NULL,
    UNIQUE (entry_row, posting)
);
CREATE INDEX lines_project ON lines (project_code, id);
CREATE INDEX lines_worker ON lines (worker_id, id);

CREATE TABLE steps (
    id              BIGINT PRIMARY KEY,
    flow            TEXT NOT NULL,
    step            TEXT NOT NULL,
    system          TEXT NOT NULL,
    subject         BIGINT NOT NULL,
    business_key    TEXT NOT NULL,
    state           TEXT NOT NULL,
    waits_on        BIGINT,
    attempts        INT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     BIGINT,
    lease_until     BIGINT NOT NULL,
    result          TEXT,
    last_error      TEXT,
    outcome_unknown BOOLEAN NOT NULL,
    correlation_id  TEXT NOT NULL,
    event_seq       BIGINT NOT NULL,
    created_at      TEXT NOT NULL,
    done_at         TEXT,
    version         BIGINT NOT NULL,
    -- The idempotency key, pshub:{flow}:{step}:{business_key}, is unique.
    UNIQUE (business_key, step, flow)
);
CREATE INDEX steps_active ON steps (system, id) WHERE state IN ('pending', 'running');
CREATE INDEX steps_waiting ON steps (waits_on) WHERE state = 'waiting';
CREATE INDEX steps_stuck ON steps (state, id) WHERE state IN ('failed', 'held');
CREATE INDEX steps_event ON steps (event_seq);
CREATE INDEX steps_subject ON steps (subject);

CREATE TABLE cases (
    id             BIGINT PRIMARY KEY,
    kind           TEXT NOT NULL,
    owner          TEXT NOT NULL,
    business_key   TEXT NOT NULL,
    state          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    suggested_fix  TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    event_seq      BIGINT NOT NULL,
    flow           TEXT NOT NULL,
    entry_row      BIGINT,
    step_id        BIGINT,
    value          NUMERIC,
    currency       TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    resolution     TEXT,
    evidence       TEXT,
    version        BIGINT NOT NULL
);
CREATE INDEX cases_event ON cases (event_seq);
CREATE INDEX cases_correlation ON cases (correlation_id);
CREATE INDEX cases_owner ON cases (owner, state, id);
CREATE INDEX cases_step ON cases (step_id) WHERE step_id IS NOT NULL;

CREATE TABLE projects (
    id             BIGINT PRIMARY KEY,
    project_code   TEXT NOT NULL UNIQUE,
    opportunity_id TEXT NOT NULL,
    event_seq      BIGINT NOT NULL,
    correlation_id TEXT NOT NULL,
    created_at     TEXT NOT NULL
);

CREATE TABLE outbound (
    id             BIGINT PRIMARY KEY,
    event_type     TEXT NOT NULL,
    key            TEXT NOT NULL UNIQUE,
    data           TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    published_at   TEXT NOT NULL
);
CREATE INDEX outbound_type ON outbound (event_type, id);

CREATE TABLE timeline (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    correlation_id TEXT NOT NULL,
    at             TEXT NOT NULL,
    what           TEXT NOT NULL,
    detail         TEXT NOT NULL,
    step_id        BIGINT,
    actor          TEXT
);
CREATE INDEX timeline_correlation ON timeline (correlation_id);
CREATE INDEX timeline_step ON timeline (step_id) WHERE step_id IS NOT NULL;

CREATE TABLE worker_days (
    id        BIGINT PRIMARY KEY,
    worker_id TEXT NOT NULL,
    day       DATE NOT NULL,
    hours     NUMERIC NOT NULL,
    version   BIGINT NOT NULL,
    UNIQUE (worker_id, day)
);

-- Counters per process, summed when read, so that processes never contend on one row.
CREATE TABLE counters (
    node        BIGINT PRIMARY KEY,
    received    BIGINT NOT NULL,
    duplicates  BIGINT NOT NULL,
    conflicts   BIGINT NOT NULL,
    quarantined BIGINT NOT NULL
);

CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    id         BIGINT NOT NULL UNIQUE,
    role       TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
