//! Behaviour of `mesos_ubuntu_v1`, called through the rlib.

// The driver test kit (driver-testkit/).
use magnum_driver_testkit as support;

use magnum_driver_mesos_ubuntu::{MesosUbuntuDriver, CLUSTER_FILE, DRIVER_NAME};
use magnum_driver_sdk::{
    abi_stable::std_types::RStr,
    capability as op,
    serde_json::{json, Value},
    Cluster, ClusterRequest, ClusterTemplate, CoeDriver, DriverConfig, NodeTemplateRequest,
    Provides, ResizeRequest, StackAction, StatusRequest, TemplateRequest,
};
use support::{
    assert_node_settings, check_boot_volume_labels, cluster_stack, default_nodegroups, invalid,
    lint, nodegroup_update, with_node_settings, WORKERS,
};

fn driver() -> MesosUbuntuDriver {
    MesosUbuntuDriver::new(&DriverConfig::new()).unwrap()
}

fn template() -> ClusterTemplate {
    ClusterTemplate {
        name: "mesos".into(),
        coe: "mesos".into(),
        server_type: "vm".into(),
        cluster_distro: "ubuntu".into(),
        image_id: "ubuntu-mesos".into(),
        flavor_id: Some("m1.small".into()),
        external_network_id: Some("public".into()),
        floating_ip_enabled: true,
        ..Default::default()
    }
}

fn request() -> ClusterRequest {
    ClusterRequest {
        template: template(),
        cluster: Cluster {
            uuid: "9e0c1e5a-7c55-4a8b-a1d3-5b0d8d6a9c10".into(),
            name: "marathon".into(),
            project_id: "p-1".into(),
            master_count: 1,
            node_count: 3,
            stack_id: Some("stack-1".into()),
            ..Default::default()
        },
        nodegroups: default_nodegroups(3),
        ..Default::default()
    }
}

fn with_labels(labels: &[(&str, &str)]) -> TemplateRequest {
    let mut t = template();
    t.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    TemplateRequest { template: t }
}

#[test]
fn info_describes_the_driver() {
    let info = MesosUbuntuDriver::info();
    assert_eq!(info.name, DRIVER_NAME);
    assert_eq!(info.provides, [Provides::new("vm", "ubuntu", "mesos")]);
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
    assert!(info.supports(op::RESIZE_CLUSTER));
    assert_eq!(info.network_drivers.len(), 1);
    assert!(info.network_drivers[0].default);
    assert_eq!(info.volume_drivers[0].name, "rexray");
}

#[test]
fn the_library_exports_a_working_root_module() {
    let module = magnum_driver_mesos_ubuntu::__magnum_driver_root_module();
    assert!((module.info())().unwrap().as_str().contains(DRIVER_NAME));
    let driver = (module.new())(RStr::from("{\"nodes_affinity_policy\": 3}"))
        .err()
        .unwrap();
    assert_eq!(driver.field.as_str(), "config.nodes_affinity_policy");
}

#[test]
fn templates_are_validated() {
    let d = driver();
    d.validate_template(&with_labels(&[])).unwrap();
    let mut bad = with_labels(&[]);
    bad.template.network_driver = Some("flannel".into());
    let message = invalid(d.validate_template(&bad).unwrap_err(), "network_driver");
    assert!(message.contains("allowed: docker"), "{message}");

    let ok = [
        ("mesos_slave_isolation", "filesystem/linux,docker/runtime"),
        ("mesos_slave_image_providers", "appc,docker"),
        ("mesos_slave_executor_env_variables", "{\"PATH\": \"/bin\"}"),
        ("mesos_slave_work_dir", "/tmp/mesos"),
    ];
    d.validate_template(&with_labels(&ok)).unwrap();

    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("mesos_slave_isolation", "posix/cpu,gpu/nvidia")],
            "labels.mesos_slave_isolation",
        ),
        (
            &[("mesos_slave_image_providers", "rkt")],
            "labels.mesos_slave_image_providers",
        ),
        (
            &[("mesos_slave_image_providers", "docker")],
            "labels.mesos_slave_isolation",
        ),
        (
            &[("mesos_slave_executor_env_variables", "{not json")],
            "labels.mesos_slave_executor_env_variables",
        ),
    ];
    for (labels, field) in cases {
        invalid(
            d.validate_template(&with_labels(labels)).unwrap_err(),
            field,
        );
    }
    let mut swarm = with_labels(&[]);
    swarm.template.coe = "swarm".into();
    invalid(d.validate_template(&swarm).unwrap_err(), "coe");
}

#[test]
fn clusters_need_a_master() {
    let mut req = request();
    req.cluster.master_count = 0;
    invalid(driver().validate_cluster(&req).unwrap_err(), "master_count");
}

#[test]
fn create_plans_one_stack() {
    let mut req = request();
    req.template
        .labels
        .insert("mesos_slave_work_dir".into(), "/var/lib/mesos".into());
    let plan = driver().create_cluster(&req).unwrap();
    lint(&plan);
    let [operation] = plan.operations.as_slice() else {
        panic!("one operation expected: {plan:?}");
    };
    assert_eq!(operation.action, StackAction::Create);
    assert_eq!(operation.stack_name, "marathon-9e0c1e5a7c55");
    assert_eq!(operation.template, CLUSTER_FILE);
    let files: Vec<_> = operation.files.keys().map(String::as_str).collect();
    assert_eq!(
        files,
        [
            "cluster.yaml",
            "fragments/bootstrap.sh",
            "fragments/configure-host.sh",
            "fragments/configure-master.sh",
            "fragments/configure-rexray.sh",
            "fragments/configure-slave.sh",
            "fragments/configure-storage.sh",
            "fragments/lib-common.sh",
            "fragments/lib.sh",
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
        registry["Magnum::Optional::Neutron::LBaaS::Listener"],
        "OS::Heat::None"
    );
    let expected = json!({
        "cluster_name": "marathon",
        "tenant_name": "p-1",
        "number_of_masters": 1,
        "number_of_slaves": 3,
        "slave_flavor": "m1.small",
        "slave_image": "ubuntu-mesos",
        "network_driver": "docker",
        "mesos_slave_work_dir": "/var/lib/mesos",
    });
    for (name, value) in expected.as_object().unwrap() {
        assert_eq!(
            operation.parameters.get(name),
            Some(value),
            "parameter {name}"
        );
    }
    assert!(!operation.parameters.contains_key("mesos_slave_isolation"));
}

#[test]
fn boot_volume_labels_reach_every_node() {
    check_boot_volume_labels(request(), |r| driver().create_cluster(r).unwrap());
}

#[test]
fn slaves_get_docker_volumes_and_never_the_trust() {
    let mut req = request();
    req.template.docker_volume_size = Some(15);
    req.context
        .extra
        .insert("trustee_password".into(), "secret".into());
    req.context.extra.insert("trust_id".into(), "t-1".into());
    let plan = driver().create_cluster(&req).unwrap();
    lint(&plan);
    let operation = &plan.operations[0];
    let registry = &operation.environment["resource_registry"];
    assert_eq!(
        registry["Magnum::Optional::Cinder::Volume"],
        "OS::Cinder::Volume"
    );
    let p = &operation.parameters;
    assert_eq!(p["docker_volume_size"], 15);
    assert_eq!(p["docker_volume_enabled"], true);
    // The trustee's password and the trust never reach the slaves.
    assert!(!p.contains_key("trustee_password"));
    assert!(!p.contains_key("trust_id"));

    // rexray cannot use the application credential nodes may get: refused.
    req.template.volume_driver = Some("rexray".into());
    let message = invalid(driver().create_cluster(&req).unwrap_err(), "volume_driver");
    assert!(message.contains("application credential"), "{message}");
}

#[test]
fn scaling_uses_the_slave_parameters() {
    let d = driver();
    let mut req = request();
    // `PATCH node_count` as the host hands it over: the default worker
    // group's row holds the new size; the cluster's count follows.
    req.nodegroups
        .iter_mut()
        .find(|g| g.is_default && g.role != "master")
        .expect("default worker group")
        .node_count = 5;
    req.cluster.node_count = 5;
    let operation = &d.update_cluster(&req).unwrap().operations[0];
    assert!(operation.existing);
    assert_eq!(
        Value::Object(operation.parameters.clone()),
        json!({"number_of_slaves": 5})
    );
    let resize = ResizeRequest {
        base: request(),
        nodegroup: WORKERS.into(),
        node_count: 2,
        nodes_to_remove: vec!["marathon-9e0c1e5a7c55-default-worker-2".into()],
    };
    let operation = &d.resize_cluster(&resize).unwrap().operations[0];
    assert_eq!(
        Value::Object(operation.parameters.clone()),
        json!({"number_of_slaves": 2, "slaves_to_remove": ["marathon-9e0c1e5a7c55-default-worker-2"]})
    );
    let plan = d.delete_cluster(&request()).unwrap();
    assert_eq!(plan.operations[0].action, StackAction::Delete);
    assert_eq!(plan.operations[0].stack_id.as_deref(), Some("stack-1"));
}

#[test]
fn node_templates_match_the_plan_files() {
    let d = driver();
    let plan = d.create_cluster(&request()).unwrap();
    for role in ["master", "worker"] {
        let node = d
            .node_template(&NodeTemplateRequest {
                role: role.into(),
                base: request(),
            })
            .unwrap();
        assert_eq!(plan.operations[0].files[&node.file_name], node.template);
    }
}

#[test]
fn status_gives_the_bare_master_address() {
    let outputs = json!({
        "api_address": "172.24.4.30",
        "mesos_master": ["172.24.4.30"],
        "mesos_master_private": ["10.0.0.3"],
        "mesos_slaves": ["172.24.4.31", "172.24.4.32"],
        "mesos_slaves_private": ["10.0.0.4", "10.0.0.5"],
    });
    let stack = cluster_stack(
        "CREATE_FAILED",
        "Resource CREATE failed: mesos_slaves",
        outputs,
        json!({"number_of_slaves": 2}),
    );
    let update = driver()
        .map_status(&StatusRequest {
            base: request(),
            stacks: vec![stack],
        })
        .unwrap();
    assert_eq!(update.cluster.api_address.as_deref(), Some("172.24.4.30"));
    assert_eq!(update.cluster.status.as_deref(), Some("CREATE_FAILED"));
    assert_eq!(
        update.cluster.status_reason.as_deref(),
        Some("Resource CREATE failed: mesos_slaves")
    );
    assert_eq!(update.cluster.container_version.as_deref(), Some("1.9.1"));
    let workers = nodegroup_update(&update, WORKERS);
    assert_eq!(workers.node_count, Some(2));
    assert_eq!(workers.node_addresses.as_ref().map(Vec::len), Some(2));
    // No stack yet: nothing to change.
    let empty = driver()
        .map_status(&StatusRequest {
            base: request(),
            stacks: vec![],
        })
        .unwrap();
    assert_eq!(empty, Default::default());
}

#[test]
fn proxy_registry_ca_mirror_and_checksums_reach_every_node() {
    let mut req = with_node_settings(request(), "rexray");
    req.template.floating_ip_enabled = false;
    req.template
        .labels
        .insert("rexray_tag".into(), "0.11.5".into());
    let plan = driver().create_cluster(&req).unwrap();
    lint(&plan);
    assert_node_settings(
        &plan,
        &["mesos_master", "mesos_slave"],
        "rexray",
        &[("VERIFY_CA", "False")],
    );
    // The slaves fetch rexray from the mirror at the label's version.
    let p = &plan.operations[0].parameters;
    assert_eq!(
        p["rexray_download_url"],
        "https://mirror.example/magnum/rexray"
    );
    assert_eq!(p["rexray_tag"], "0.11.5");
}
