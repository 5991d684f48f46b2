DROP TABLE local_ipam;
DROP INDEX local_stack_name_key ON local_stack;
CREATE INDEX local_stack_name_idx ON local_stack (name);
ALTER TABLE local_stack DROP COLUMN state;
