-- Costing: an approved time entry keeps its hours (what payroll is spread over), payroll
-- actuals one per (period, worker), their loads, and quarantined payroll rows.
ALTER TABLE entries ADD COLUMN worker_id TEXT;
ALTER TABLE entries ADD COLUMN project_code TEXT;
ALTER TABLE entries ADD COLUMN work_date TEXT;
ALTER TABLE entries ADD COLUMN hours TEXT;
ALTER TABLE entries ADD COLUMN overtime_hours TEXT;
-- Entries arrive roughly in date order, so this index grows at its end.
CREATE INDEX entries_work_date ON entries (work_date) WHERE work_date IS NOT NULL;

-- Keyed by period first: a payroll file is one month, or sorted by month, so its rows land
-- next to each other. No index on load_id: the hub reads a load's actuals once, after it
-- was written, and a scan costs less than an index every row of every load pays.
CREATE TABLE payroll_actuals (
    period     TEXT NOT NULL,
    worker_id  TEXT NOT NULL,
    -- Exact, in millionths: an amount below 10^12 with at most 6 places fits in 64 bits.
    gross_cost INTEGER NOT NULL,
    currency   TEXT NOT NULL,
    load_id    INTEGER NOT NULL,
    line       INTEGER NOT NULL,
    PRIMARY KEY (period, worker_id)
) WITHOUT ROWID;

CREATE TABLE payroll_loads (
    id         INTEGER PRIMARY KEY,
    file       TEXT NOT NULL,
    rows       INTEGER NOT NULL,
    loaded     INTEGER NOT NULL,
    duplicates INTEGER NOT NULL,
    rejected   INTEGER NOT NULL,
    loaded_at  TEXT NOT NULL,
    checked    INTEGER NOT NULL
);
CREATE INDEX payroll_loads_unchecked ON payroll_loads (id) WHERE checked = 0;

ALTER TABLE lines ADD COLUMN overtime_hours TEXT;

ALTER TABLE quarantine ADD COLUMN kind TEXT NOT NULL DEFAULT 'event';
ALTER TABLE quarantine ADD COLUMN file TEXT;
ALTER TABLE quarantine ADD COLUMN line INTEGER;
