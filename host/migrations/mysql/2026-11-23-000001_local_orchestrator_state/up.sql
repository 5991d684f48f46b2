-- The local orchestrator's working state of a stack (resources, environment,
-- operation timing) as a JSON document, and its address bookkeeping.
ALTER TABLE local_stack ADD COLUMN state LONGTEXT NOT NULL DEFAULT ('{}');
-- Like Heat, one live stack per name: a second create of the same name (two
-- conductors racing) fails instead of making a twin.
DROP INDEX local_stack_name_idx ON local_stack;
CREATE UNIQUE INDEX local_stack_name_key ON local_stack (name);
-- Address pools of the simulated cloud: the subnets local stacks create and
-- the networks and floating pool the cloud provides; `allocated` counts the
-- addresses handed out.
CREATE TABLE local_ipam (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    network VARCHAR(255) NOT NULL,
    stack_id VARCHAR(255),
    cidr LONGTEXT NOT NULL,
    allocated BIGINT NOT NULL DEFAULT 0,
    created_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX local_ipam_name_idx ON local_ipam (name);
CREATE INDEX local_ipam_network_idx ON local_ipam (network);
CREATE INDEX local_ipam_stack_id_idx ON local_ipam (stack_id);
