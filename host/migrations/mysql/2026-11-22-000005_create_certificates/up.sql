-- CA and client certificates per cluster. private_key holds the key encrypted
-- and base64-encoded; old rows are kept after a CA rotation (newest wins).
CREATE TABLE certificate (
    id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY,
    uuid VARCHAR(255) NOT NULL,
    cluster_uuid VARCHAR(255) NOT NULL,
    kind VARCHAR(255) NOT NULL,
    pem LONGTEXT NOT NULL,
    private_key LONGTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    CONSTRAINT uniq_certificate_uuid UNIQUE (uuid),
    CONSTRAINT certificate_cluster_uuid_fkey FOREIGN KEY (cluster_uuid)
        REFERENCES cluster (uuid) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX certificate_cluster_uuid_kind_idx ON certificate (cluster_uuid, kind);
