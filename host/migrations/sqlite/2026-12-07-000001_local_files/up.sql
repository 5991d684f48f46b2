-- Stack files stored once per content. A local stack names its files (the
-- JSON document of name -> text) by SHA-256 instead of holding a copy:
-- every cluster of a driver version shares one row. Rows written before keep
-- their `files` inline (files_sha256 NULL) and still work; their next update
-- moves them over. `template` is no longer written (nothing read it: the
-- top-level template is files[state.template]). `state_z` is the state
-- packed against those files (zstd, the files as its dictionary; `state` is
-- then empty).
-- No foreign key here, unlike PostgreSQL and MariaDB: SQLite serialises
-- writers, so the delete of an unused row sees every stack naming it, and
-- SQLite cannot drop a column that a foreign key uses (down.sql).
CREATE TABLE local_file (
    sha256 TEXT PRIMARY KEY,
    content TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
ALTER TABLE local_stack ADD COLUMN files_sha256 TEXT;
CREATE INDEX local_stack_files_sha256_idx ON local_stack (files_sha256);
ALTER TABLE local_stack ADD COLUMN state_z BLOB;
