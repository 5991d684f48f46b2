CREATE TABLE quotas (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    hard_limit INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP,
    CONSTRAINT uniq_quotas_project_id_resource UNIQUE (project_id, resource)
);

-- "binary" is a keyword in PostgreSQL, hence the quotes.
CREATE TABLE magnum_service (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    host TEXT NOT NULL,
    "binary" TEXT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT 0,
    disabled_reason TEXT,
    last_seen_up TIMESTAMP,
    forced_down BOOLEAN NOT NULL DEFAULT 0,
    report_count INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP,
    CONSTRAINT uniq_magnum_service_host_binary UNIQUE (host, "binary")
);

CREATE TABLE federation (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL,
    name TEXT NOT NULL,
    project_id TEXT NOT NULL,
    hostcluster_id TEXT,
    member_ids TEXT NOT NULL DEFAULT '[]',
    status TEXT,
    status_reason TEXT,
    properties TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP,
    CONSTRAINT uniq_federation_uuid UNIQUE (uuid)
);
CREATE INDEX federation_project_id_idx ON federation (project_id);
