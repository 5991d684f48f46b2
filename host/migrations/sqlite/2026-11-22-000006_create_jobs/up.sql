-- The conductor's queue. A claim sets locked_by/locked_at (a lease); success
-- deletes the row; failure bumps retries and pushes run_after out by the
-- backoff, computed by the host.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_type TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    priority INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0,
    last_retry TIMESTAMP,
    run_after TIMESTAMP NOT NULL,
    locked_by TEXT,
    locked_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX jobs_claim_idx ON jobs (priority DESC, id);
