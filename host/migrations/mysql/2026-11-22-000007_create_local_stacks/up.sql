-- Stacks of the embedded "local" orchestrator (Heat's role in upstream).
CREATE TABLE local_stack (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    project_id VARCHAR(255) NOT NULL,
    status LONGTEXT NOT NULL,
    status_reason LONGTEXT,
    template LONGTEXT NOT NULL,
    files LONGTEXT NOT NULL DEFAULT ('{}'),
    parameters LONGTEXT NOT NULL DEFAULT ('{}'),
    outputs LONGTEXT NOT NULL DEFAULT ('{}'),
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX local_stack_project_id_idx ON local_stack (project_id);
CREATE INDEX local_stack_name_idx ON local_stack (name);
