DROP INDEX jobs_cluster_idx;
ALTER TABLE jobs DROP COLUMN state;
ALTER TABLE jobs DROP COLUMN cluster_uuid;
