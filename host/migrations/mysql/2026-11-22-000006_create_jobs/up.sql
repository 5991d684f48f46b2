-- The conductor's queue. A claim sets locked_by/locked_at (a lease); success
-- deletes the row; failure bumps retries and pushes run_after out by the
-- backoff, computed by the host.
CREATE TABLE jobs (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    job_type LONGTEXT NOT NULL,
    data LONGTEXT NOT NULL DEFAULT ('{}'),
    priority INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0,
    last_retry DATETIME(6),
    run_after DATETIME(6) NOT NULL,
    locked_by LONGTEXT,
    locked_at DATETIME(6),
    created_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX jobs_claim_idx ON jobs (priority DESC, id);
