-- Inline the shared files again (`template` stays empty: nothing reads it).
-- A packed state cannot be unpacked here: delete the local stacks (the
-- simulated cloud's) before going back past this migration.
ALTER TABLE local_stack DROP COLUMN state_z;
UPDATE local_stack SET files = (
    SELECT content FROM local_file WHERE local_file.sha256 = local_stack.files_sha256
) WHERE files_sha256 IS NOT NULL;
ALTER TABLE local_stack DROP FOREIGN KEY local_stack_files_sha256_fk;
DROP INDEX local_stack_files_sha256_idx ON local_stack;
ALTER TABLE local_stack DROP COLUMN files_sha256;
DROP TABLE local_file;
