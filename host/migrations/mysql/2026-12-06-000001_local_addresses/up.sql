-- Each address the local cloud hands out, so a live one is never handed
-- out twice (the primary key, also across conductors sharing the
-- database) and one released (its resource or stack deleted) can be
-- again. `host` is the address's index in its pool's CIDR; `owner` the
-- resource holding it. local_ipam.allocated becomes the pool's cursor.
CREATE TABLE local_ip (
    pool_id VARCHAR(255) NOT NULL,
    host BIGINT NOT NULL,
    address LONGTEXT NOT NULL,
    stack_id VARCHAR(255) NOT NULL,
    owner VARCHAR(255) NOT NULL,
    PRIMARY KEY (pool_id, host)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX local_ip_stack_id_idx ON local_ip (stack_id);
CREATE INDEX local_ip_owner_idx ON local_ip (owner);
