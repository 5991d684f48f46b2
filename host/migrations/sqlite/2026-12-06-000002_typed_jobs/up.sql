-- Typed jobs: the cluster a job concerns in its own indexed column (jobs of
-- one cluster run in queue order, and an operation's final status defers to
-- a newer job of its cluster), and the run's bookkeeping (`state`) apart
-- from the request's arguments (`data`). A job queued before this migration
-- starts its run over, which every operation allows.
ALTER TABLE jobs ADD COLUMN cluster_uuid TEXT;
ALTER TABLE jobs ADD COLUMN state TEXT NOT NULL DEFAULT '{}';
UPDATE jobs SET cluster_uuid = json_extract(data, '$.cluster') WHERE data LIKE '{%';
CREATE INDEX jobs_cluster_idx ON jobs (cluster_uuid, id);
