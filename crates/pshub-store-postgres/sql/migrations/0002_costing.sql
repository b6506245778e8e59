-- Costing: an approved time entry keeps its hours (what payroll is spread over), payroll
-- actuals one per (period, worker), their loads, and quarantined payroll rows.
ALTER TABLE entries ADD COLUMN worker_id TEXT;
ALTER TABLE entries ADD COLUMN project_code TEXT;
ALTER TABLE entries ADD COLUMN work_date DATE;
ALTER TABLE entries ADD COLUMN hours NUMERIC;
ALTER TABLE entries ADD COLUMN overtime_hours NUMERIC;
CREATE INDEX entries_work_date ON entries (work_date) WHERE work_date IS NOT NULL;

CREATE TABLE payroll_actuals (
    period     TEXT NOT NULL,
    worker_id  TEXT NOT NULL,
    gross_cost NUMERIC NOT NULL,
    currency   TEXT NOT NULL,
    load_id    BIGINT NOT NULL,
    line       BIGINT NOT NULL,
    PRIMARY KEY (period, worker_id)
);
CREATE INDEX payroll_actuals_load ON payroll_actuals (load_id);

CREATE TABLE payroll_loads (
    id         BIGINT PRIMARY KEY,
    file       TEXT NOT NULL,
    rows       BIGINT NOT NULL,
    loaded     BIGINT NOT NULL,
    duplicates BIGINT NOT NULL,
    rejected   BIGINT NOT NULL,
    loaded_at  TEXT NOT NULL,
    checked    BOOLEAN NOT NULL
);
CREATE INDEX payroll_loads_unchecked ON payroll_loads (id) WHERE NOT checked;

ALTER TABLE lines ADD COLUMN overtime_hours NUMERIC;

ALTER TABLE quarantine ADD COLUMN kind TEXT NOT NULL DEFAULT 'event';
ALTER TABLE quarantine ADD COLUMN file TEXT;
ALTER TABLE quarantine ADD COLUMN line BIGINT;
