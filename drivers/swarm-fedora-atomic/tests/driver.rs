//! Behaviour of `swarm_fedora_atomic_v1`, called through the rlib.

// The driver test kit (driver-testkit/).
use magnum_driver_testkit as support;

use magnum_driver_sdk::{
    abi_stable::std_types::RStr,
    capability as op,
    serde_json::{self, json, Map, Value},
    Cluster, ClusterRequest, ClusterTemplate, CoeDriver, DriverConfig, HostContext,
    NodeTemplateRequest, Provides, ResizeRequest, StackAction, StackSnapshot, StatusRequest,
    SubDriverRequest, TemplateRequest,
};
use magnum_driver_swarm_fedora_atomic::{SwarmFedoraAtomicDriver, CLUSTER_FILE, DRIVER_NAME};
use support::{
    assert_node_settings, check_boot_volume_labels, cluster_stack, default_nodegroups, invalid,
    lint, nodegroup_update, with_node_settings, MASTERS, WORKERS,
};

fn driver() -> SwarmFedoraAtomicDriver {
    SwarmFedoraAtomicDriver::new(&DriverConfig::new()).unwrap()
}

fn template(coe: &str) -> ClusterTemplate {
    ClusterTemplate {
        name: "swarm".into(),
        coe: coe.into(),
        server_type: "vm".into(),
        cluster_distro: "fedora-atomic".into(),
        image_id: "fedora-atomic-27".into(),
        flavor_id: Some("m1.small".into()),
        keypair_id: Some("ops".into()),
        external_network_id: Some("public".into()),
        floating_ip_enabled: true,
        ..Default::default()
    }
}

fn request(coe: &str) -> ClusterRequest {
    let mut extra = Map::new();
    extra.insert("trustee_user_id".into(), "u-1".into());
    extra.insert("trustee_password".into(), "secret".into());
    extra.insert("trust_id".into(), "t-1".into());
    extra.insert("unknown".into(), "x".into());
    ClusterRequest {
        template: template(coe),
        cluster: Cluster {
            uuid: "5d12f6fd-a196-4bf0-ae4c-1f639a523a52".into(),
            name: "swarm.test".into(),
            master_count: 1,
            node_count: 2,
            create_timeout: Some(30),
            discovery_url: Some("https://discovery.etcd.io/abc".into()),
            stack_id: Some("stack-1".into()),
            ..Default::default()
        },
        nodegroups: default_nodegroups(2),
        context: HostContext {
            magnum_url: Some("http://magnum:9511/v1".into()),
            extra,
            ..Default::default()
        },
    }
}

#[test]
fn info_describes_the_driver() {
    let info = SwarmFedoraAtomicDriver::info();
    assert_eq!(info.name, DRIVER_NAME);
    assert_eq!(
        info.provides,
        [
            Provides::new("vm", "fedora-atomic", "swarm"),
            Provides::new("vm", "fedora-atomic", "swarm-mode")
        ]
    );
    for operation in [
        op::UPGRADE_CLUSTER,
        op::CREATE_NODEGROUP,
        op::UPDATE_NODEGROUP,
        op::DELETE_NODEGROUP,
    ] {
        assert!(
            !info.supports(operation),
            "{operation} should be unsupported"
        );
    }
    assert_eq!(info.capabilities.len(), op::ABI_1_0_OPERATIONS.len() - 4);
    let network: Vec<_> = info
        .network_drivers
        .iter()
        .map(|d| (d.name.as_str(), d.default))
        .collect();
    assert_eq!(network, [("docker", true), ("flannel", false)]);
    assert_eq!(info.volume_drivers[0].name, "rexray");
}

#[test]
fn unsupported_operations_say_so_through_the_abi() {
    let module = magnum_driver_swarm_fedora_atomic::__magnum_driver_root_module();
    let driver = (module.new())(RStr::from("")).unwrap();
    let err = driver.upgrade_cluster(RStr::from("{}")).unwrap_err();
    assert!(err.is_unsupported());
    assert_eq!(err.operation.as_str(), op::UPGRADE_CLUSTER);
    let request = serde_json::to_string(&request("swarm")).unwrap();
    let plan = driver.create_cluster(RStr::from(request.as_str())).unwrap();
    assert!(plan.as_str().contains("\"number_of_nodes\":2"));
}

#[test]
fn templates_are_validated() {
    let d = driver();
    for coe in ["swarm", "swarm-mode"] {
        d.validate_template(&TemplateRequest {
            template: template(coe),
        })
        .unwrap();
    }
    let mut t = template("swarm");
    t.network_driver = Some("calico".into());
    let message = invalid(
        d.validate_template(&TemplateRequest { template: t })
            .unwrap_err(),
        "network_driver",
    );
    assert!(message.contains("allowed: docker, flannel"), "{message}");

    let mut t = template("swarm");
    t.labels.insert("swarm_strategy".into(), "foo".into());
    let message = invalid(
        d.validate_template(&TemplateRequest { template: t })
            .unwrap_err(),
        "labels.swarm_strategy",
    );
    assert!(message.contains("spread, binpack, random"), "{message}");

    let mut t = template("swarm");
    t.volume_driver = Some("cinder".into());
    invalid(
        d.validate_template(&TemplateRequest { template: t })
            .unwrap_err(),
        "volume_driver",
    );

    let mut t = template("swarm-mode");
    t.labels.insert("swarm_strategy".into(), "binpack".into());
    let ok = d
        .validate_template(&TemplateRequest { template: t })
        .unwrap();
    assert_eq!(ok.warnings.len(), 1, "{ok:?}");

    invalid(
        d.validate_template(&TemplateRequest {
            template: template("kubernetes"),
        })
        .unwrap_err(),
        "coe",
    );
}

#[test]
fn clusters_need_a_master() {
    let mut req = request("swarm");
    req.cluster.master_count = 0;
    invalid(driver().validate_cluster(&req).unwrap_err(), "master_count");
    req.cluster.master_count = 2;
    driver().validate_cluster(&req).unwrap();
}

#[test]
fn create_plans_one_stack() {
    let mut req = request("swarm");
    req.template.network_driver = Some("flannel".into());
    let plan = driver().create_cluster(&req).unwrap();
    lint(&plan);
    let [operation] = plan.operations.as_slice() else {
        panic!("one operation expected: {plan:?}");
    };
    assert_eq!(operation.action, StackAction::Create);
    assert_eq!(operation.stack_name, "swarm-test-5d12f6fda196");
    assert_eq!(operation.template, CLUSTER_FILE);
    assert_eq!(operation.timeout_mins, Some(30));
    let files: Vec<_> = operation.files.keys().map(String::as_str).collect();
    assert_eq!(
        files,
        [
            "cluster.yaml",
            "fragments/bootstrap.sh",
            "fragments/configure-docker.sh",
            "fragments/configure-etcd.sh",
            "fragments/configure-flannel.sh",
            "fragments/configure-host.sh",
            "fragments/configure-rexray.sh",
            "fragments/configure-storage.sh",
            "fragments/configure-swarm.sh",
            "fragments/lib-common.sh",
            "fragments/lib.sh",
            "fragments/make-certs.sh",
            "master.yaml",
            "master_port.yaml",
            "network_existing.yaml",
            "network_private.yaml",
            "secgroup_peer.yaml",
            "worker.yaml"
        ]
    );
    let registry = &operation.environment["resource_registry"];
    assert_eq!(registry["Magnum::NetworkSwitcher"], "network_private.yaml");
    assert_eq!(
        registry["Magnum::Optional::Neutron::FloatingIP"],
        "OS::Neutron::FloatingIP"
    );
    assert_eq!(
        registry["Magnum::Optional::Neutron::LBaaS::LoadBalancer"],
        "OS::Heat::None"
    );
    let expected = json!({
        "is_cluster_stack": true,
        "number_of_masters": 1,
        "number_of_nodes": 2,
        "node_flavor": "m1.small",
        "node_image": "fedora-atomic-27",
        "external_network": "public",
        "network_driver": "flannel",
        "flannel_backend": "udp",
        "flannel_network_subnetlen": 24,
        "swarm_strategy": "spread",
        "swarm_mode": false,
        "swarm_port": 2376,
        "discovery_url": "https://discovery.etcd.io/abc",
        "trustee_user_id": "u-1",
        "docker_volume_enabled": false,
    });
    for (name, value) in expected.as_object().unwrap() {
        assert_eq!(
            operation.parameters.get(name),
            Some(value),
            "parameter {name}"
        );
    }
    assert!(!operation.parameters.contains_key("unknown"));
    // The nodes never get the trustee's password or the trust.
    assert!(!operation.parameters.contains_key("trustee_password"));
    assert!(!operation.parameters.contains_key("trust_id"));

    let plan = driver().create_cluster(&request("swarm-mode")).unwrap();
    lint(&plan);
    let p = &plan.operations[0].parameters;
    assert_eq!(p["swarm_mode"], true);
    assert_eq!(p["swarm_port"], 2375);
    assert_eq!(p["network_driver"], "docker");
    assert!(!p.contains_key("volume_driver"));
    assert_eq!(p["trustee_user_id"], "u-1");
    assert!(!p.contains_key("trustee_password"));
    assert!(!p.contains_key("trust_id"));

    // A fixed network, no floating IPs, a load balancer: the environment
    // switches each piece.
    let mut req = request("swarm-mode");
    req.template.fixed_network = Some("net-1".into());
    req.template.fixed_subnet = Some("subnet-1".into());
    req.template.floating_ip_enabled = false;
    req.template.master_lb_enabled = true;
    req.template.docker_volume_size = Some(20);
    let plan = driver().create_cluster(&req).unwrap();
    lint(&plan);
    let operation = &plan.operations[0];
    let registry = &operation.environment["resource_registry"];
    assert_eq!(registry["Magnum::NetworkSwitcher"], "network_existing.yaml");
    assert_eq!(
        registry["Magnum::Optional::Neutron::FloatingIP"],
        "OS::Heat::None"
    );
    assert_eq!(
        registry["Magnum::Optional::Neutron::LBaaS::Pool"],
        "OS::Octavia::Pool"
    );
    assert_eq!(
        registry["Magnum::Optional::Neutron::LBaaS::FloatingIP"],
        "OS::Heat::None"
    );
    assert_eq!(
        registry["Magnum::Optional::Cinder::Volume"],
        "OS::Cinder::Volume"
    );
    assert_eq!(operation.parameters["docker_volume_enabled"], true);
    assert_eq!(operation.parameters["docker_volume_size"], 20);
    assert_eq!(operation.parameters["master_lb_enabled"], true);
    assert_eq!(operation.parameters["fixed_network"], "net-1");
}

#[test]
fn boot_volume_labels_reach_every_node() {
    for coe in ["swarm", "swarm-mode"] {
        check_boot_volume_labels(request(coe), |r| driver().create_cluster(r).unwrap());
    }
}

#[test]
fn sub_drivers_resolve_like_create_does() {
    let request = SubDriverRequest {
        name: Some("rexray".into()),
        coe: "swarm-mode".into(),
        labels: Default::default(),
    };
    let volume = driver().volume_driver(&request).unwrap();
    assert_eq!(
        Value::Object(volume.parameters),
        json!({"volume_driver": "rexray", "rexray_preempt": false})
    );
    let network = driver()
        .network_driver(&SubDriverRequest {
            name: None,
            ..request
        })
        .unwrap();
    assert_eq!(network.name, "docker");
}

#[test]
fn update_resize_and_delete_target_the_cluster_stack() {
    let d = driver();
    let mut req = request("swarm");
    // `PATCH node_count` as the host hands it over: the default worker
    // group's row holds the new size; the cluster's count follows.
    req.nodegroups
        .iter_mut()
        .find(|g| g.is_default && g.role != "master")
        .expect("default worker group")
        .node_count = 4;
    req.cluster.node_count = 4;
    let operation = &d.update_cluster(&req).unwrap().operations[0];
    assert_eq!(operation.action, StackAction::Update);
    assert!(operation.existing);
    assert_eq!(operation.stack_id.as_deref(), Some("stack-1"));
    assert_eq!(
        Value::Object(operation.parameters.clone()),
        json!({"number_of_nodes": 4})
    );

    let resize = |nodegroup: &str| ResizeRequest {
        base: request("swarm"),
        nodegroup: nodegroup.into(),
        node_count: 1,
        nodes_to_remove: vec!["1".into()],
    };
    let operation = &d.resize_cluster(&resize(WORKERS)).unwrap().operations[0];
    assert_eq!(
        Value::Object(operation.parameters.clone()),
        json!({"number_of_nodes": 1, "nodes_to_remove": ["1"]})
    );
    invalid(d.resize_cluster(&resize(MASTERS)).unwrap_err(), "nodegroup");

    let plan = d.delete_cluster(&request("swarm")).unwrap();
    assert_eq!(plan.operations.len(), 1);
    assert_eq!(plan.operations[0].action, StackAction::Delete);
    let mut never_created = request("swarm");
    never_created.cluster.stack_id = None;
    assert!(d
        .delete_cluster(&never_created)
        .unwrap()
        .operations
        .is_empty());
    invalid(d.update_cluster(&never_created).unwrap_err(), "stack_id");
}

#[test]
fn node_templates_match_the_plan_files() {
    let d = driver();
    let plan = d.create_cluster(&request("swarm")).unwrap();
    for role in ["master", "worker"] {
        let node = d
            .node_template(&NodeTemplateRequest {
                role: role.into(),
                base: request("swarm"),
            })
            .unwrap();
        assert_eq!(plan.operations[0].files[&node.file_name], node.template);
    }
    let err = d
        .node_template(&NodeTemplateRequest {
            role: "ingress".into(),
            base: request("swarm"),
        })
        .unwrap_err();
    invalid(err, "role");
}

fn stack() -> StackSnapshot {
    let outputs = json!({
        "api_address": "172.24.4.20",
        "swarm_masters": ["172.24.4.20"],
        "swarm_masters_private": ["10.0.0.3"],
        "swarm_nodes": ["172.24.4.21"],
        "swarm_nodes_private": ["10.0.0.4"],
        "discovery_url": "https://discovery.etcd.io/abc",
    });
    cluster_stack(
        "UPDATE_COMPLETE",
        "Stack UPDATE completed successfully",
        outputs,
        json!({"number_of_nodes": "1"}),
    )
}

#[test]
fn status_gives_docker_api_addresses() {
    let d = driver();
    for (coe, address) in [
        ("swarm", "tcp://172.24.4.20:2376"),
        ("swarm-mode", "tcp://172.24.4.20:2375"),
    ] {
        let mut base = request(coe);
        base.template.tls_disabled = true;
        let update = d
            .map_status(&StatusRequest {
                base,
                stacks: vec![stack()],
            })
            .unwrap();
        assert_eq!(update.cluster.api_address.as_deref(), Some(address));
        assert_eq!(update.cluster.status.as_deref(), Some("UPDATE_COMPLETE"));
        assert_eq!(update.cluster.coe_version.as_deref(), Some("1.2.5"));
        assert_eq!(
            update.cluster.discovery_url.as_deref(),
            Some("https://discovery.etcd.io/abc")
        );
        let workers = nodegroup_update(&update, WORKERS);
        assert_eq!(workers.node_count, Some(1));
        assert_eq!(
            workers.node_addresses.as_deref(),
            Some(&["172.24.4.21".to_owned()][..])
        );
    }
    let mut base = request("swarm");
    base.template.floating_ip_enabled = false;
    let update = d
        .map_status(&StatusRequest {
            base,
            stacks: vec![stack()],
        })
        .unwrap();
    let masters = nodegroup_update(&update, MASTERS);
    assert_eq!(
        masters.node_addresses.as_deref(),
        Some(&["10.0.0.3".to_owned()][..])
    );
}

#[test]
fn proxy_registry_ca_mirror_and_checksums_reach_every_node() {
    for coe in ["swarm", "swarm-mode"] {
        let mut req = with_node_settings(request(coe), "etcd");
        req.template.floating_ip_enabled = false;
        req.cluster.master_count = 3;
        req.template
            .labels
            .insert("flannel_tag".into(), "v0.24.0".into());
        let plan = driver().create_cluster(&req).unwrap();
        lint(&plan);
        assert_node_settings(
            &plan,
            &["swarm_master", "swarm_node"],
            "etcd",
            &[
                ("ETCD_DOWNLOAD_URL", "https://mirror.example/magnum/etcd"),
                (
                    "FLANNEL_DOWNLOAD_URL",
                    "https://mirror.example/magnum/flannel",
                ),
                (
                    "REXRAY_DOWNLOAD_URL",
                    "https://mirror.example/magnum/rexray",
                ),
                ("FLANNEL_TAG", "v0.24.0"),
                ("ETCD_TAG", "v3.5.9"),
            ],
        );
    }
}

#[test]
fn node_settings_are_checked() {
    let mut req = request("swarm");
    req.template
        .labels
        .insert("download_mirror_url".into(), "mirror.example".into());
    invalid(
        driver().validate_cluster(&req).unwrap_err(),
        "labels.download_mirror_url",
    );
    let mut req = request("swarm");
    req.template.insecure_registry = Some("reg:5000`id`".into());
    invalid(
        driver().validate_cluster(&req).unwrap_err(),
        "insecure_registry",
    );
}
