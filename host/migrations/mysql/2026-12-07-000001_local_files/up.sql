-- Stack files stored once per content. A local stack names its files (the
-- JSON document of name -> text) by SHA-256 instead of holding a copy:
-- every cluster of a driver version shares one row. Rows written before keep
-- their `files` inline (files_sha256 NULL) and still work; their next update
-- moves them over. `template` is no longer written (nothing read it: the
-- top-level template is files[state.template]). `state_z` is the state
-- packed against those files (zstd, the files as its dictionary; `state` is
-- then empty).
CREATE TABLE local_file (
    sha256 VARCHAR(255) NOT NULL PRIMARY KEY,
    content LONGTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- The key makes a delete of a row that a stack names (two conductors, one
-- deleting the last stack of a driver version while the other creates one)
-- fail instead of leaving the new stack without its files.
ALTER TABLE local_stack ADD COLUMN files_sha256 VARCHAR(255);
CREATE INDEX local_stack_files_sha256_idx ON local_stack (files_sha256);
ALTER TABLE local_stack ADD CONSTRAINT local_stack_files_sha256_fk
    FOREIGN KEY (files_sha256) REFERENCES local_file (sha256);
ALTER TABLE local_stack ADD COLUMN state_z LONGBLOB;
