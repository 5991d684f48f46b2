-- MariaDB/MySQL: InnoDB; utf8mb4_bin so names compare case- and
-- accent-sensitively, as on PostgreSQL and SQLite. Indexed text is
-- VARCHAR(255) (index keys are bounded), other text LONGTEXT; times are
-- DATETIME(6) (the host writes microseconds); BOOLEAN is TINYINT(1).
CREATE TABLE cluster_template (
    id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY,
    uuid VARCHAR(255) NOT NULL,
    project_id VARCHAR(255) NOT NULL,
    user_id LONGTEXT NOT NULL,
    name VARCHAR(255) NOT NULL,
    coe LONGTEXT NOT NULL,
    image_id LONGTEXT NOT NULL,
    flavor_id LONGTEXT,
    master_flavor_id LONGTEXT,
    dns_nameserver LONGTEXT,
    keypair_id LONGTEXT,
    external_network_id LONGTEXT,
    fixed_network LONGTEXT,
    fixed_subnet LONGTEXT,
    network_driver LONGTEXT,
    volume_driver LONGTEXT,
    apiserver_port INTEGER,
    docker_volume_size INTEGER,
    docker_storage_driver LONGTEXT,
    cluster_distro LONGTEXT,
    http_proxy LONGTEXT,
    https_proxy LONGTEXT,
    no_proxy LONGTEXT,
    registry_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    labels LONGTEXT NOT NULL DEFAULT ('{}'),
    tls_disabled BOOLEAN NOT NULL DEFAULT FALSE,
    public BOOLEAN NOT NULL DEFAULT FALSE,
    hidden BOOLEAN NOT NULL DEFAULT FALSE,
    server_type LONGTEXT NOT NULL DEFAULT ('vm'),
    insecure_registry LONGTEXT,
    master_lb_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    floating_ip_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    tags LONGTEXT,
    driver LONGTEXT,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6),
    CONSTRAINT uniq_cluster_template_uuid UNIQUE (uuid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX cluster_template_project_id_idx ON cluster_template (project_id);
CREATE INDEX cluster_template_name_idx ON cluster_template (name);
