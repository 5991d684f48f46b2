-- Stacks of the embedded "local" orchestrator (Heat's role in upstream).
CREATE TABLE local_stack (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    project_id TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT,
    template TEXT NOT NULL,
    files TEXT NOT NULL DEFAULT '{}',
    parameters TEXT NOT NULL DEFAULT '{}',
    outputs TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
CREATE INDEX local_stack_project_id_idx ON local_stack (project_id);
CREATE INDEX local_stack_name_idx ON local_stack (name);
