-- The id registry: each system's id of each thing the hub knows, found by any of them.
CREATE TABLE xrefs (
    kind TEXT NOT NULL,
    canonical_id TEXT NOT NULL,
    system TEXT NOT NULL,
    system_id TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (kind, system, system_id)
);
CREATE INDEX xrefs_canonical ON xrefs (kind, canonical_id);
CREATE INDEX xrefs_system_id ON xrefs (kind, system_id);
