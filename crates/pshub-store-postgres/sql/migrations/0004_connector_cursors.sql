-- Where each polling connector has read to: its cursor, saved after the events it read
-- were committed.
CREATE TABLE connector_cursors (
    name TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    saved_at TEXT NOT NULL
);
