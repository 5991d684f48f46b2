DROP INDEX jobs_cluster_idx ON jobs;
ALTER TABLE jobs DROP COLUMN state;
ALTER TABLE jobs DROP COLUMN cluster_uuid;
