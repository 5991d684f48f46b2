-- Typed jobs: the cluster a job concerns in its own indexed column (jobs of
-- one cluster run in queue order, and an operation's final status defers to
-- a newer job of its cluster), and the run's bookkeeping (`state`) apart
-- from the request's arguments (`data`). A job queued before this migration
-- starts its run over, which every operation allows.
ALTER TABLE jobs ADD COLUMN cluster_uuid VARCHAR(255);
ALTER TABLE jobs ADD COLUMN state LONGTEXT NOT NULL DEFAULT ('{}');
UPDATE jobs SET cluster_uuid = JSON_UNQUOTE(JSON_EXTRACT(data, '$.cluster'))
    WHERE JSON_VALID(data) AND JSON_TYPE(JSON_EXTRACT(data, '$.cluster')) = 'STRING';
CREATE INDEX jobs_cluster_idx ON jobs (cluster_uuid, id);
