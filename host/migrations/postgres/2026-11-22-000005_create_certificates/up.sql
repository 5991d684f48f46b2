-- CA and client certificates per cluster. private_key holds the key encrypted
-- and base64-encoded; old rows are kept after a CA rotation (newest wins).
CREATE TABLE certificate (
    id SERIAL PRIMARY KEY,
    uuid TEXT NOT NULL,
    cluster_uuid TEXT NOT NULL REFERENCES cluster (uuid) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    pem TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    CONSTRAINT uniq_certificate_uuid UNIQUE (uuid)
);
CREATE INDEX certificate_cluster_uuid_kind_idx ON certificate (cluster_uuid, kind);
