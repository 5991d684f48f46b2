-- No trustee password column: upstream stored it in the clear.
CREATE TABLE cluster (
    id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY,
    uuid VARCHAR(255) NOT NULL,
    project_id VARCHAR(255) NOT NULL,
    user_id LONGTEXT NOT NULL,
    name VARCHAR(255) NOT NULL,
    cluster_template_id VARCHAR(255) NOT NULL,
    driver VARCHAR(255) NOT NULL,
    keypair LONGTEXT,
    docker_volume_size INTEGER,
    labels LONGTEXT NOT NULL DEFAULT ('{}'),
    master_flavor_id LONGTEXT,
    flavor_id LONGTEXT,
    stack_id LONGTEXT,
    api_address LONGTEXT,
    status VARCHAR(255) NOT NULL,
    status_reason LONGTEXT,
    health_status LONGTEXT,
    health_status_reason LONGTEXT,
    create_timeout INTEGER,
    discovery_url LONGTEXT,
    coe_version LONGTEXT,
    container_version LONGTEXT,
    ca_cert_ref LONGTEXT,
    magnum_cert_ref LONGTEXT,
    etcd_ca_cert_ref LONGTEXT,
    front_proxy_ca_cert_ref LONGTEXT,
    trust_id LONGTEXT,
    trustee_username LONGTEXT,
    trustee_user_id LONGTEXT,
    fixed_network LONGTEXT,
    fixed_subnet LONGTEXT,
    floating_ip_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    master_lb_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6),
    CONSTRAINT uniq_cluster_uuid UNIQUE (uuid),
    CONSTRAINT cluster_cluster_template_id_fkey FOREIGN KEY (cluster_template_id)
        REFERENCES cluster_template (uuid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX cluster_project_id_idx ON cluster (project_id);
CREATE INDEX cluster_name_idx ON cluster (name);
CREATE INDEX cluster_cluster_template_id_idx ON cluster (cluster_template_id);
