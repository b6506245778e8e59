-- Lines by project and by worker, for the API's filters, as posting lists (see
-- src/postings.rs) instead of two B-tree indexes whose inserts land all over their pages:
-- a line's id goes to lines_unindexed as it is written, and batches of them become one row
-- per project and per worker, holding the batch's line ids.
DROP INDEX IF EXISTS lines_project;
DROP INDEX IF EXISTS lines_worker;
CREATE TABLE line_postings (
    field    TEXT NOT NULL,
    value    TEXT NOT NULL,
    first_id INTEGER NOT NULL,
    ids      BLOB NOT NULL,
    PRIMARY KEY (field, value, first_id)
) WITHOUT ROWID;
CREATE TABLE lines_unindexed (line_id INTEGER PRIMARY KEY);
-- A store's lines from before this migration are found through the unindexed list until
-- the next batch turns them into posting lists.
INSERT INTO lines_unindexed (line_id) SELECT id FROM lines;
