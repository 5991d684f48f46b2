CREATE TABLE quotas (
    id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY,
    project_id VARCHAR(255) NOT NULL,
    resource VARCHAR(255) NOT NULL,
    hard_limit INTEGER NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6),
    CONSTRAINT uniq_quotas_project_id_resource UNIQUE (project_id, resource)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- MariaDB/MySQL only: one row per project, locked by a cluster create
-- until it commits, so the quota's count-then-insert cannot race
-- (lock_project in host/src/db/mod.rs; PostgreSQL uses an advisory lock).
CREATE TABLE project_locks (
    project_id VARCHAR(255) NOT NULL PRIMARY KEY
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- "binary" is a keyword in MySQL too, hence the backquotes.
CREATE TABLE magnum_service (
    id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY,
    host VARCHAR(255) NOT NULL,
    `binary` VARCHAR(255) NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    disabled_reason LONGTEXT,
    last_seen_up DATETIME(6),
    forced_down BOOLEAN NOT NULL DEFAULT FALSE,
    report_count INTEGER NOT NULL DEFAULT 0,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6),
    CONSTRAINT uniq_magnum_service_host_binary UNIQUE (host, `binary`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE federation (
    id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY,
    uuid VARCHAR(255) NOT NULL,
    name VARCHAR(255) NOT NULL,
    project_id VARCHAR(255) NOT NULL,
    hostcluster_id LONGTEXT,
    member_ids LONGTEXT NOT NULL DEFAULT ('[]'),
    status LONGTEXT,
    status_reason LONGTEXT,
    properties LONGTEXT NOT NULL DEFAULT ('{}'),
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6),
    CONSTRAINT uniq_federation_uuid UNIQUE (uuid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX federation_project_id_idx ON federation (project_id);
