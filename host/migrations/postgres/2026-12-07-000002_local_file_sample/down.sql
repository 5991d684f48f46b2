-- A state packed with a sample cannot be unpacked without it: delete the
-- local stacks (the simulated cloud's) before going back past this migration.
ALTER TABLE local_file DROP COLUMN sample_sha256;
ALTER TABLE local_file DROP COLUMN sample;
