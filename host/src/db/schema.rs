//! The tables, written by hand to match `host/migrations/{sqlite,postgres,mysql}`.
//! Portable types only: UUIDs and JSON documents are `Text`, times are UTC
//! `Timestamp`s set by the host.

diesel::table! {
    cluster_template (id) {
        id -> Integer,
        uuid -> Text,
        project_id -> Text,
        user_id -> Text,
        name -> Text,
        coe -> Text,
        image_id -> Text,
        flavor_id -> Nullable<Text>,
        master_flavor_id -> Nullable<Text>,
        dns_nameserver -> Nullable<Text>,
        keypair_id -> Nullable<Text>,
        external_network_id -> Nullable<Text>,
        fixed_network -> Nullable<Text>,
        fixed_subnet -> Nullable<Text>,
        network_driver -> Nullable<Text>,
        volume_driver -> Nullable<Text>,
        apiserver_port -> Nullable<Integer>,
        docker_volume_size -> Nullable<Integer>,
        docker_storage_driver -> Nullable<Text>,
        cluster_distro -> Nullable<Text>,
        http_proxy -> Nullable<Text>,
        https_proxy -> Nullable<Text>,
        no_proxy -> Nullable<Text>,
        registry_enabled -> Bool,
        /// JSON object of strings.
        labels -> Text,
        tls_disabled -> Bool,
        public -> Bool,
        hidden -> Bool,
        server_type -> Text,
        insecure_registry -> Nullable<Text>,
        master_lb_enabled -> Bool,
        floating_ip_enabled -> Bool,
        tags -> Nullable<Text>,
        driver -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    cluster (id) {
        id -> Integer,
        uuid -> Text,
        project_id -> Text,
        user_id -> Text,
        name -> Text,
        /// The template's uuid.
        cluster_template_id -> Text,
        /// The manifest name of the driver that created the cluster.
        driver -> Text,
        keypair -> Nullable<Text>,
        docker_volume_size -> Nullable<Integer>,
        /// JSON object of strings.
        labels -> Text,
        master_flavor_id -> Nullable<Text>,
        flavor_id -> Nullable<Text>,
        stack_id -> Nullable<Text>,
        api_address -> Nullable<Text>,
        status -> Text,
        status_reason -> Nullable<Text>,
        health_status -> Nullable<Text>,
        /// JSON object of strings.
        health_status_reason -> Nullable<Text>,
        create_timeout -> Nullable<Integer>,
        discovery_url -> Nullable<Text>,
        coe_version -> Nullable<Text>,
        container_version -> Nullable<Text>,
        ca_cert_ref -> Nullable<Text>,
        magnum_cert_ref -> Nullable<Text>,
        etcd_ca_cert_ref -> Nullable<Text>,
        front_proxy_ca_cert_ref -> Nullable<Text>,
        trust_id -> Nullable<Text>,
        trustee_username -> Nullable<Text>,
        trustee_user_id -> Nullable<Text>,
        fixed_network -> Nullable<Text>,
        fixed_subnet -> Nullable<Text>,
        floating_ip_enabled -> Bool,
        master_lb_enabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    nodegroup (id) {
        id -> Integer,
        uuid -> Text,
        name -> Text,
        /// The cluster's uuid.
        cluster_id -> Text,
        project_id -> Text,
        docker_volume_size -> Nullable<Integer>,
        labels -> Text,
        flavor_id -> Nullable<Text>,
        image_id -> Nullable<Text>,
        /// JSON list of strings.
        node_addresses -> Text,
        node_count -> Integer,
        role -> Text,
        max_node_count -> Nullable<Integer>,
        min_node_count -> Integer,
        is_default -> Bool,
        stack_id -> Nullable<Text>,
        status -> Nullable<Text>,
        status_reason -> Nullable<Text>,
        version -> Nullable<Text>,
        /// JSON object of strings.
        node_labels -> Text,
        /// JSON list of {key, value, effect}.
        node_taints -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    quotas (id) {
        id -> Integer,
        project_id -> Text,
        resource -> Text,
        hard_limit -> Integer,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    magnum_service (id) {
        id -> Integer,
        host -> Text,
        binary -> Text,
        disabled -> Bool,
        disabled_reason -> Nullable<Text>,
        last_seen_up -> Nullable<Timestamp>,
        forced_down -> Bool,
        report_count -> Integer,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    federation (id) {
        id -> Integer,
        uuid -> Text,
        name -> Text,
        project_id -> Text,
        hostcluster_id -> Nullable<Text>,
        /// JSON list of cluster uuids.
        member_ids -> Text,
        status -> Nullable<Text>,
        status_reason -> Nullable<Text>,
        /// JSON object.
        properties -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    certificate (id) {
        id -> Integer,
        uuid -> Text,
        cluster_uuid -> Text,
        /// kubernetes, etcd, front_proxy or magnum_client.
        kind -> Text,
        pem -> Text,
        /// The private key, encrypted, base64.
        private_key -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    jobs (id) {
        id -> BigInt,
        job_type -> Text,
        /// JSON.
        data -> Text,
        priority -> Integer,
        retries -> Integer,
        last_retry -> Nullable<Timestamp>,
        run_after -> Timestamp,
        locked_by -> Nullable<Text>,
        locked_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        cluster_uuid -> Nullable<Text>,
        /// JSON: the run's bookkeeping.
        state -> Text,
    }
}

diesel::table! {
    local_stack (id) {
        id -> Text,
        name -> Text,
        project_id -> Text,
        status -> Text,
        status_reason -> Nullable<Text>,
        /// JSON documents.
        template -> Text,
        files -> Text,
        parameters -> Text,
        outputs -> Text,
        created_at -> Timestamp,
        updated_at -> Nullable<Timestamp>,
        /// The local orchestrator's working state (JSON).
        state -> Text,
        /// The `local_file` holding the stack's files; NULL: they are
        /// inline in `files` (rows written before that table).
        files_sha256 -> Nullable<Text>,
        /// `state` packed against the files (`orchestrator::packed`); when
        /// set, `state` is empty.
        state_z -> Nullable<Binary>,
    }
}

diesel::table! {
    /// Documents of the local orchestrator stored once per content (the
    /// files of stacks), keyed by the hex SHA-256 of `content`.
    local_file (sha256) {
        sha256 -> Text,
        content -> Text,
        created_at -> Timestamp,
        /// A packed document of the first stack packed against these files
        /// (long tokens masked): the rest of every later state's
        /// dictionary (`orchestrator::packed`). Set once.
        sample -> Nullable<Text>,
        /// The hex SHA-256 of `sample`.
        sample_sha256 -> Nullable<Text>,
    }
}

diesel::table! {
    /// Address pools of the local orchestrator's simulated cloud.
    local_ipam (id) {
        id -> Text,
        name -> Text,
        network -> Text,
        stack_id -> Nullable<Text>,
        cidr -> Text,
        allocated -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// An address of a `local_ipam` pool handed out to a resource.
    local_ip (pool_id, host) {
        pool_id -> Text,
        host -> BigInt,
        address -> Text,
        stack_id -> Text,
        owner -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    cluster_template,
    cluster,
    nodegroup,
    quotas,
    magnum_service,
    federation,
    certificate,
    jobs,
    local_stack,
    local_file,
    local_ipam,
    local_ip,
);
