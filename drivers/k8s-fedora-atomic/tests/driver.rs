//! Behaviour of `k8s_fedora_atomic_v1`, called through the rlib.

// The driver test kit (driver-testkit/).
use magnum_driver_testkit as support;

use magnum_driver_k8s_fedora_atomic::{K8sFedoraAtomicDriver, CLUSTER_FILE, DRIVER_NAME};
use magnum_driver_sdk::{
    abi_stable::std_types::RStr,
    capability as op,
    serde_json::{self, json, Map, Value},
    Cluster, ClusterRequest, ClusterTemplate, CoeDriver, DriverConfig, ErrorKind, HostContext,
    NodeGroupRequest, NodeTemplateRequest, ResizeRequest, StackAction, StackPlan, StackSnapshot,
    StackTarget, StatusRequest, SubDriverRequest, TemplateRequest, UpgradeRequest,
};
use support::{
    assert_node_settings, assert_nodes_can_boot_from_volumes, check_boot_volume_labels,
    default_nodegroups, hot, invalid, lint, nodegroup as group, nodegroup_update,
    with_node_settings, MASTERS, WORKERS,
};

fn driver() -> K8sFedoraAtomicDriver {
    K8sFedoraAtomicDriver::new(&DriverConfig::new()).unwrap()
}

fn trusted_driver() -> K8sFedoraAtomicDriver {
    let config = json!({"cluster_user_trust": true});
    K8sFedoraAtomicDriver::new(config.as_object().unwrap()).unwrap()
}

fn template() -> ClusterTemplate {
    ClusterTemplate {
        uuid: "0b5e6a2c-1111-4a4a-9d9d-222233334444".into(),
        name: "k8s-atomic".into(),
        coe: "kubernetes".into(),
        server_type: "vm".into(),
        cluster_distro: "fedora-atomic".into(),
        image_id: "fedora-atomic-27".into(),
        flavor_id: Some("m1.medium".into()),
        master_flavor_id: Some("m1.large".into()),
        keypair_id: Some("ops".into()),
        external_network_id: Some("public".into()),
        network_driver: Some("flannel".into()),
        floating_ip_enabled: true,
        ..Default::default()
    }
}

const EXTRA: &str = "bbbbbbbb-0000-0000-0000-000000000003";

fn request() -> ClusterRequest {
    let mut extra = Map::new();
    extra.insert("trust_id".into(), "t-123".into());
    extra.insert("not_a_template_parameter".into(), "x".into());
    ClusterRequest {
        template: template(),
        cluster: Cluster {
            uuid: "3f2a9c1e-77aa-4b0e-9d1f-0123456789ab".into(),
            name: "prod_k8s".into(),
            master_count: 1,
            node_count: 2,
            create_timeout: Some(60),
            stack_id: Some("stack-1".into()),
            ..Default::default()
        },
        nodegroups: default_nodegroups(2),
        context: HostContext {
            magnum_url: Some("http://magnum:9511/v1".into()),
            auth_url: Some("http://keystone:5000/v3".into()),
            verify_ca: true,
            extra,
            openstack_ca: None,
        },
    }
}

fn with_extra_group(mut req: ClusterRequest) -> ClusterRequest {
    let mut extra = group(EXTRA, "gpu_nodes", "worker", false, 3);
    extra.stack_id = Some("stack-ng".into());
    req.nodegroups.push(extra);
    req
}

#[test]
fn info_describes_the_driver() {
    let info = K8sFedoraAtomicDriver::info();
    assert_eq!(info.name, DRIVER_NAME);
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.provides.len(), 1);
    assert_eq!(
        info.provides[0].to_string(),
        "(vm, fedora-atomic, kubernetes)"
    );
    for operation in op::ABI_1_0_OPERATIONS {
        assert!(info.supports(operation), "{operation} missing");
    }
    assert_eq!(info.node_roles, ["master", "worker"]);
    assert_eq!(
        info.template_path.as_deref(),
        Some("templates/cluster.yaml")
    );
    let defaults: Vec<_> = info.network_drivers.iter().filter(|d| d.default).collect();
    assert_eq!(defaults.len(), 1);
    assert_eq!(defaults[0].name, "flannel");
    assert_eq!(info.volume_drivers[0].name, "cinder");
}

#[test]
fn the_library_exports_a_working_root_module() {
    let module = magnum_driver_k8s_fedora_atomic::__magnum_driver_root_module();
    let info = (module.info())().unwrap();
    assert!(info.as_str().contains(DRIVER_NAME));
    let driver = (module.new())(RStr::from("{}")).unwrap();
    let request = serde_json::to_string(&request()).unwrap();
    let plan = driver.create_cluster(RStr::from(request.as_str())).unwrap();
    let plan: StackPlan = serde_json::from_str(plan.as_str()).unwrap();
    assert_eq!(plan.operations.len(), 1);
    let err = driver.create_cluster(RStr::from("not json")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::INTERNAL);
}

#[test]
fn config_is_checked() {
    let config = json!({"nodes_affinity_policy": "sometimes"});
    let err = K8sFedoraAtomicDriver::new(config.as_object().unwrap())
        .err()
        .unwrap();
    invalid(err, "config.nodes_affinity_policy");
}

#[test]
fn templates_are_validated() {
    let d = driver();
    let ok = d
        .validate_template(&TemplateRequest {
            template: template(),
        })
        .unwrap();
    assert!(ok.warnings.is_empty());

    let mut t = template();
    t.network_driver = Some("weave".into());
    let message = invalid(
        d.validate_template(&TemplateRequest { template: t })
            .unwrap_err(),
        "network_driver",
    );
    assert!(message.contains("allowed: flannel, calico"), "{message}");

    let mut t = template();
    t.labels.insert("flannel_backend".into(), "foo".into());
    let message = invalid(
        d.validate_template(&TemplateRequest { template: t })
            .unwrap_err(),
        "labels.flannel_backend",
    );
    assert!(message.contains("udp, vxlan, host-gw"), "{message}");

    let mut t = template();
    t.volume_driver = Some("rexray".into());
    invalid(
        d.validate_template(&TemplateRequest { template: t })
            .unwrap_err(),
        "volume_driver",
    );

    let mut t = template();
    t.coe = "swarm".into();
    invalid(
        d.validate_template(&TemplateRequest { template: t })
            .unwrap_err(),
        "coe",
    );

    let mut t = template();
    t.external_network_id = None;
    invalid(
        d.validate_template(&TemplateRequest { template: t })
            .unwrap_err(),
        "external_network_id",
    );
}

#[test]
fn cinder_needs_the_cloud_provider_which_needs_the_trust() {
    let mut t = template();
    t.volume_driver = Some("cinder".into());
    let req = |t: &ClusterTemplate| TemplateRequest {
        template: t.clone(),
    };
    let err = driver().validate_template(&req(&t)).unwrap_err();
    invalid(err, "labels.cloud_provider_enabled");
    // With the trust, the cloud provider defaults to on.
    trusted_driver().validate_template(&req(&t)).unwrap();
    t.labels
        .insert("cloud_provider_enabled".into(), "false".into());
    let message = invalid(
        trusted_driver().validate_template(&req(&t)).unwrap_err(),
        "labels.cloud_provider_enabled",
    );
    assert!(message.contains("cinder"), "{message}");
    t.volume_driver = None;
    t.labels
        .insert("cloud_provider_enabled".into(), "true".into());
    invalid(
        driver().validate_template(&req(&t)).unwrap_err(),
        "labels.cloud_provider_enabled",
    );
}

#[test]
fn clusters_need_an_odd_number_of_masters() {
    for bad in [0, 2, -1] {
        let mut req = request();
        req.cluster.master_count = bad;
        invalid(driver().validate_cluster(&req).unwrap_err(), "master_count");
    }
    let mut req = request();
    req.cluster.node_count = -1;
    invalid(driver().validate_cluster(&req).unwrap_err(), "node_count");
    // Cluster labels override the template's.
    let mut req = request();
    req.cluster
        .labels
        .insert("kube_tag".into(), "latest".into());
    invalid(
        driver().validate_cluster(&req).unwrap_err(),
        "labels.kube_tag",
    );
}

#[test]
fn create_plans_one_cluster_stack() {
    let mut req = request();
    req.cluster
        .labels
        .insert("flannel_network_cidr".into(), "10.200.0.0/16".into());
    let plan = driver().create_cluster(&req).unwrap();
    lint(&plan);
    let [operation] = plan.operations.as_slice() else {
        panic!("one operation expected: {plan:?}");
    };
    assert_eq!(operation.action, StackAction::Create);
    assert_eq!(operation.target, StackTarget::default());
    assert_eq!(operation.stack_name, "prod-k8s-3f2a9c1e77aa");
    assert_eq!(operation.template, CLUSTER_FILE);
    assert_eq!(operation.timeout_mins, Some(60));
    let files: Vec<_> = operation.files.keys().map(String::as_str).collect();
    assert_eq!(
        files,
        [
            "cluster.yaml",
            "fragments/bootstrap.sh",
            "fragments/configure-cloud-provider.sh",
            "fragments/configure-dns.sh",
            "fragments/configure-etcd.sh",
            "fragments/configure-host.sh",
            "fragments/configure-master.sh",
            "fragments/configure-network.sh",
            "fragments/configure-node.sh",
            "fragments/configure-storage.sh",
            "fragments/install-cri.sh",
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
    let p = &operation.parameters;
    let expected = json!({
        "is_cluster_stack": true,
        "cluster_uuid": "3f2a9c1e-77aa-4b0e-9d1f-0123456789ab",
        "fixed_network_name": "prod-k8s-3f2a9c1e77aa",
        "ssh_key_name": "ops",
        "external_network": "public",
        "master_flavor": "m1.large",
        "minion_flavor": "m1.medium",
        "master_image": "fedora-atomic-27",
        "number_of_masters": 1,
        "number_of_minions": 2,
        "network_driver": "flannel",
        "flannel_network_cidr": "10.200.0.0/16",
        "pods_network_cidr": "10.200.0.0/16",
        "flannel_backend": "vxlan",
        "flannel_network_subnetlen": 24,
        "kube_tag": "v1.27.3",
        "container_runtime": "host-docker",
        "coredns_tag": "1.10.1",
        "dns_service_ip": "10.254.0.10",
        "dns_cluster_domain": "cluster.local",
        "tls_disabled": false,
        "kubernetes_port": 6443,
        "magnum_url": "http://magnum:9511/v1",
        "trust_id": "t-123",
        "worker_nodegroup_name": "default-worker",
        // Nine tenths of the 60-minute create timeout, in seconds.
        "wait_condition_timeout": 3240,
    });
    for (name, value) in expected.as_object().unwrap() {
        assert_eq!(p.get(name), Some(value), "parameter {name}");
    }
    assert!(!p.contains_key("not_a_template_parameter"));
    assert!(!p.contains_key("volume_driver"));
    assert!(!p.contains_key("calico_ipv4pool"));
}

/// The boot-volume labels reach every node, nodegroup stacks' too.
#[test]
fn boot_volume_labels_reach_every_node() {
    let d = driver();
    let req = check_boot_volume_labels(request(), |r| d.create_cluster(r).unwrap());

    // A nodegroup's stack (the same cluster.yaml) gets them too, its own
    // labels over the cluster's.
    let mut nodegroup = group(EXTRA, "gpu_nodes", "worker", false, 2);
    nodegroup
        .labels
        .insert("boot_volume_size".into(), "50".into());
    let plan = d
        .create_nodegroup(&NodeGroupRequest {
            base: req,
            nodegroup,
        })
        .unwrap();
    lint(&plan);
    let p = &plan.operations[0].parameters;
    assert_eq!(p["boot_volume_size"], 50);
    assert_eq!(p["boot_volume_type"], "ssd");
    assert_nodes_can_boot_from_volumes(&plan);
}

#[test]
fn calico_and_tls_off_change_the_parameters() {
    let mut req = request();
    req.template.network_driver = Some("calico".into());
    req.template.tls_disabled = true;
    req.template.fixed_network = Some("shared-net".into());
    req.template.fixed_subnet = Some("shared-subnet".into());
    let plan = driver().create_cluster(&req).unwrap();
    lint(&plan);
    let p = &plan.operations[0].parameters;
    assert_eq!(p["network_driver"], "calico");
    assert_eq!(p["pods_network_cidr"], "10.100.0.0/16");
    assert_eq!(p["calico_ipv4pool_ipip"], "Off");
    assert_eq!(p["kubernetes_port"], 8080);
    assert_eq!(
        plan.operations[0].environment["resource_registry"]["Magnum::NetworkSwitcher"],
        "network_existing.yaml"
    );
    assert_eq!(p["fixed_network"], "shared-net");
    assert!(!p.contains_key("flannel_backend"));
}

#[test]
fn sub_drivers_resolve_like_create_does() {
    let d = driver();
    let mut labels = magnum_driver_sdk::Labels::new();
    labels.insert("flannel_backend".into(), "host-gw".into());
    let request = SubDriverRequest {
        name: None,
        coe: "kubernetes".into(),
        labels,
    };
    let network = d.network_driver(&request).unwrap();
    assert_eq!(network.name, "flannel");
    assert_eq!(network.parameters["flannel_backend"], "host-gw");
    assert_eq!(network.parameters["network_driver"], "flannel");
    let volume = d.volume_driver(&request).unwrap();
    assert_eq!(volume.name, "");
    assert!(volume.parameters.is_empty());
    let cinder = SubDriverRequest {
        name: Some("cinder".into()),
        ..request
    };
    assert_eq!(
        d.volume_driver(&cinder).unwrap().parameters["volume_driver"],
        "cinder"
    );
}

#[test]
fn update_and_resize_only_touch_counts() {
    let d = driver();
    let mut req = request();
    // `PATCH node_count` as the host hands it over: the default worker
    // group's row holds the new size; the cluster's count is the sum over every worker group, which
    // the cluster stack must not be scaled to.
    req.nodegroups
        .iter_mut()
        .find(|g| g.is_default && g.role != "master")
        .expect("default worker group")
        .node_count = 5;
    req.cluster.node_count = 6;
    let plan = d.update_cluster(&req).unwrap();
    let operation = &plan.operations[0];
    assert_eq!(operation.action, StackAction::Update);
    assert_eq!(operation.stack_id.as_deref(), Some("stack-1"));
    assert!(operation.existing);
    assert_eq!(
        Value::Object(operation.parameters.clone()),
        json!({"number_of_minions": 5})
    );

    let resize = |nodegroup: &str, count: i64| ResizeRequest {
        base: with_extra_group(request()),
        nodegroup: nodegroup.into(),
        node_count: count,
        nodes_to_remove: vec!["gpu-node-1".into()],
    };
    let plan = d.resize_cluster(&resize(EXTRA, 1)).unwrap();
    let operation = &plan.operations[0];
    assert_eq!(operation.target.nodegroup.as_deref(), Some(EXTRA));
    assert_eq!(operation.stack_id.as_deref(), Some("stack-ng"));
    assert_eq!(operation.stack_name, "prod-k8s-gpu-nodes-bbbbbbbb0000");
    assert_eq!(
        Value::Object(operation.parameters.clone()),
        json!({"number_of_minions": 1, "minions_to_remove": ["gpu-node-1"]})
    );
    let plan = d.resize_cluster(&resize(WORKERS, 3)).unwrap();
    assert_eq!(plan.operations[0].target, StackTarget::default());
    invalid(
        d.resize_cluster(&resize(MASTERS, 3)).unwrap_err(),
        "nodegroup",
    );
    invalid(
        d.resize_cluster(&resize("nope", 3)).unwrap_err(),
        "nodegroup",
    );
    invalid(
        d.resize_cluster(&resize(EXTRA, -1)).unwrap_err(),
        "node_count",
    );
}

#[test]
fn upgrades_only_move_kube_tag_forward() {
    let d = driver();
    let upgrade = |tag: Option<&str>| {
        let mut new_template = template();
        if let Some(tag) = tag {
            new_template.labels.insert("kube_tag".into(), tag.into());
        }
        UpgradeRequest {
            base: request(),
            new_template,
            nodegroup: WORKERS.into(),
            max_batch_size: 2,
        }
    };
    for older in ["v1.26.0", "v1.27.3"] {
        let message = invalid(
            d.upgrade_cluster(&upgrade(Some(older))).unwrap_err(),
            "labels.kube_tag",
        );
        assert!(message.contains("invalid tag"), "{message}");
    }
    invalid(
        d.upgrade_cluster(&upgrade(None)).unwrap_err(),
        "labels.kube_tag",
    );
    let plan = d.upgrade_cluster(&upgrade(Some("v1.27.8"))).unwrap();
    let operation = &plan.operations[0];
    assert!(operation.existing);
    // A new worker generation: every worker is replaced (and signals anew).
    assert_eq!(
        Value::Object(operation.parameters.clone()),
        json!({"kube_tag": "v1.27.8", "update_max_batch_size": 2,
               "worker_generation": 1, "worker_generation_odd": true})
    );
    // The generation moves on from the stack's (Heat shows strings).
    let mut later = upgrade(Some("v1.27.8"));
    later.base.context.extra.insert(
        "nodegroup_stack_parameters".into(),
        json!({"worker_generation": "1", "kube_tag": "v1.27.3"}),
    );
    let p = &d.upgrade_cluster(&later).unwrap().operations[0].parameters;
    assert_eq!(p["worker_generation"], 2);
    assert_eq!(p["worker_generation_odd"], false);
    assert!(!p.contains_key("master_kube_tag"), "{p:?}");
    // Masters are never replaced: their upgrade is refused, saying what to do.
    let mut masters = upgrade(Some("v1.27.8"));
    masters.nodegroup = MASTERS.into();
    let message = invalid(d.upgrade_cluster(&masters).unwrap_err(), "nodegroup");
    assert!(
        message.contains("master nodegroup") && message.contains("worker nodegroups"),
        "{message}"
    );
    let mut zero_batch = upgrade(Some("v1.27.8"));
    zero_batch.max_batch_size = 0;
    invalid(
        d.upgrade_cluster(&zero_batch).unwrap_err(),
        "max_batch_size",
    );
}

/// Kubernetes' version skew policy: a kubelet must not be newer than its API
/// server. Masters are not upgraded, so workers move only within the
/// masters' minor release; the refusal says why and what to do.
#[test]
fn worker_upgrades_stay_within_the_masters_minor_release() {
    let d = driver();
    let upgrade = |masters: Option<&str>, stack_masters: Option<&str>, tag: &str| {
        let mut base = request();
        for g in base.nodegroups.iter_mut().filter(|g| g.role == "master") {
            match masters {
                Some(t) => g.labels.insert("kube_tag".into(), t.into()),
                None => g.labels.remove("kube_tag"),
            };
        }
        if let Some(t) = stack_masters {
            base.context.extra.insert(
                "nodegroup_stack_parameters".into(),
                json!({"kube_tag": "v1.27.3", "master_kube_tag": t}),
            );
        }
        let mut new_template = template();
        new_template.labels.insert("kube_tag".into(), tag.into());
        d.upgrade_cluster(&UpgradeRequest {
            base,
            new_template,
            nodegroup: WORKERS.into(),
            max_batch_size: 1,
        })
    };
    // A patch release past the masters' is fine (the skew is in minors).
    let plan = upgrade(Some("v1.27.3"), None, "v1.27.9").expect("a patch upgrade");
    assert_eq!(plan.operations[0].parameters["kube_tag"], "v1.27.9");
    for (masters, stack, tag) in [
        (Some("v1.27.3"), None, "v1.28.1"),
        (Some("v1.27.3"), None, "v2.0.0"),
        // No label on the masters: the cluster stack's master_kube_tag.
        (None, Some("v1.27.3"), "v1.28.0"),
    ] {
        let message = invalid(upgrade(masters, stack, tag).unwrap_err(), "labels.kube_tag");
        assert!(
            message.contains("the masters run v1.27.3")
                && message.contains("version skew policy")
                && message.contains("within v1.27.x")
                && message.contains(&format!("to move to {tag}")),
            "{message}"
        );
    }
    // The masters' label wins over the template the cluster moved to.
    upgrade(Some("v1.28.0"), Some("v1.27.3"), "v1.28.4").expect("masters on v1.28");
}

#[test]
fn nodegroups_get_their_own_stacks() {
    let d = driver();
    let mut base = request();
    base.cluster.api_address = Some("https://172.24.4.10:6443".into());
    let mut nodegroup = group(EXTRA, "gpu_nodes", "worker", false, 3);
    nodegroup.flavor_id = Some("g1.xlarge".into());
    let req = NodeGroupRequest { base, nodegroup };
    let plan = d.create_nodegroup(&req).unwrap();
    lint(&plan);
    let operation = &plan.operations[0];
    assert_eq!(operation.action, StackAction::Create);
    assert_eq!(operation.target.nodegroup.as_deref(), Some(EXTRA));
    let p = &operation.parameters;
    assert_eq!(p["is_cluster_stack"], false);
    // The group joins the cluster's network, behind no load balancer.
    let registry = &operation.environment["resource_registry"];
    assert_eq!(registry["Magnum::NetworkSwitcher"], "network_existing.yaml");
    assert_eq!(
        registry["Magnum::Optional::Neutron::LBaaS::LoadBalancer"],
        "OS::Heat::None"
    );
    // Without the cluster stack's outputs (tests/network.rs gives them),
    // by the names the cluster stack gave.
    assert_eq!(p["fixed_network"], "prod-k8s-3f2a9c1e77aa");
    assert_eq!(p["existing_security_group"], "prod-k8s-3f2a9c1e77aa-minion");
    assert_eq!(p["existing_master_address"], "172.24.4.10");
    assert_eq!(p["number_of_minions"], 3);
    assert_eq!(p["minion_flavor"], "g1.xlarge");
    assert_eq!(p["worker_nodegroup_name"], "gpu_nodes");

    let mut master = req.clone();
    master.nodegroup.role = "master".into();
    invalid(d.create_nodegroup(&master).unwrap_err(), "nodegroup.role");

    let mut existing = req.clone();
    existing.nodegroup.stack_id = Some("stack-ng".into());
    let plan = d.update_nodegroup(&existing).unwrap();
    assert_eq!(plan.operations[0].stack_id.as_deref(), Some("stack-ng"));
    assert!(plan.operations[0].existing);
    let plan = d.delete_nodegroup(&existing).unwrap();
    assert_eq!(plan.operations[0].action, StackAction::Delete);
    assert_eq!(plan.operations[0].stack_id.as_deref(), Some("stack-ng"));
    // Never created: nothing to delete.
    assert!(d.delete_nodegroup(&req).unwrap().operations.is_empty());
}

#[test]
fn delete_removes_nodegroup_stacks_first() {
    let plan = driver()
        .delete_cluster(&with_extra_group(request()))
        .unwrap();
    let ids: Vec<_> = plan
        .operations
        .iter()
        .map(|o| o.stack_id.as_deref())
        .collect();
    assert_eq!(ids, [Some("stack-ng"), Some("stack-1")]);
    assert!(plan
        .operations
        .iter()
        .all(|o| o.action == StackAction::Delete));
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
        assert_eq!(node.file_name, format!("{role}.yaml"));
        assert_eq!(plan.operations[0].files[&node.file_name], node.template);
    }
    let err = d
        .node_template(&NodeTemplateRequest {
            role: "etcd".into(),
            base: request(),
        })
        .unwrap_err();
    invalid(err, "role");
}

fn cluster_stack() -> StackSnapshot {
    let outputs = json!({
        "api_address": "172.24.4.10",
        "kube_masters": ["172.24.4.10"],
        "kube_masters_private": ["10.0.0.5"],
        "kube_minions": ["172.24.4.11", "172.24.4.12"],
        "kube_minions_private": ["10.0.0.6", "10.0.0.7"],
    });
    let parameters =
        json!({"number_of_masters": "1", "number_of_minions": "2", "kube_tag": "v1.27.3"});
    support::cluster_stack(
        "CREATE_COMPLETE",
        "Stack CREATE completed successfully",
        outputs,
        parameters,
    )
}

#[test]
fn status_maps_outputs_to_cluster_and_nodegroups() {
    let d = driver();
    let status = StatusRequest {
        base: request(),
        stacks: vec![cluster_stack()],
    };
    let update = d.map_status(&status).unwrap();
    assert_eq!(update.cluster.status.as_deref(), Some("CREATE_COMPLETE"));
    assert_eq!(
        update.cluster.api_address.as_deref(),
        Some("https://172.24.4.10:6443")
    );
    assert_eq!(update.cluster.coe_version.as_deref(), Some("v1.27.3"));
    assert_eq!(update.cluster.container_version.as_deref(), Some("1.12.6"));
    let workers = nodegroup_update(&update, WORKERS);
    assert_eq!(workers.node_count, Some(2));
    assert_eq!(
        workers.node_addresses.as_deref(),
        Some(&["172.24.4.11".to_owned(), "172.24.4.12".to_owned()][..])
    );
    let masters = nodegroup_update(&update, MASTERS);
    assert_eq!(masters.node_count, Some(1));

    let mut private = status.clone();
    private.base.template.tls_disabled = true;
    private.base.cluster.floating_ip_enabled = Some(false);
    let update = d.map_status(&private).unwrap();
    assert_eq!(
        update.cluster.api_address.as_deref(),
        Some("http://172.24.4.10:8080")
    );
    let masters = nodegroup_update(&update, MASTERS);
    assert_eq!(
        masters.node_addresses.as_deref(),
        Some(&["10.0.0.5".to_owned()][..])
    );

    let mut nodegroup_stack = cluster_stack();
    nodegroup_stack.target.nodegroup = Some(EXTRA.into());
    nodegroup_stack.status = "UPDATE_IN_PROGRESS".into();
    nodegroup_stack.outputs = Map::new();
    let update = d
        .map_status(&StatusRequest {
            base: with_extra_group(request()),
            stacks: vec![nodegroup_stack],
        })
        .unwrap();
    assert_eq!(update.cluster.status, None);
    let [extra] = update.nodegroups.as_slice() else {
        panic!("one nodegroup expected: {update:?}");
    };
    assert_eq!(extra.uuid, EXTRA);
    assert_eq!(extra.status.as_deref(), Some("UPDATE_IN_PROGRESS"));
    assert_eq!(extra.node_addresses, None);
}

#[test]
fn status_follows_the_nodes_bootstrap_signals() {
    let d = driver();
    // The nodes report the version they run in their wait condition data.
    let mut stack = cluster_stack();
    stack.outputs.insert(
        "master_bootstrap_data".into(),
        json!([r#"{"1": {"node": "k8s-m-0", "coe_version": "v1.27.4"}}"#]),
    );
    let update = d
        .map_status(&StatusRequest {
            base: request(),
            stacks: vec![stack],
        })
        .unwrap();
    assert_eq!(update.cluster.coe_version.as_deref(), Some("v1.27.4"));

    // A worker signalled FAILURE: the workers failed, the masters did not.
    let mut failed = cluster_stack();
    failed.status = "CREATE_FAILED".into();
    failed.status_reason = "Resource CREATE failed: WaitConditionFailure: resources.kube_minions.resources[0].resources.worker_wait_condition: k8s-w-0: bootstrap step 40-configure-node.sh failed: boom".into();
    let update = d
        .map_status(&StatusRequest {
            base: request(),
            stacks: vec![failed.clone()],
        })
        .unwrap();
    assert_eq!(update.cluster.status.as_deref(), Some("CREATE_FAILED"));
    assert_eq!(update.cluster.status_reason, Some(failed.status_reason));
    let workers = nodegroup_update(&update, WORKERS);
    assert_eq!(workers.status.as_deref(), Some("CREATE_FAILED"));
    let masters = nodegroup_update(&update, MASTERS);
    assert_eq!(masters.status.as_deref(), Some("CREATE_COMPLETE"));
}

#[test]
fn the_template_lint_catches_broken_plans() {
    let plan = driver().create_cluster(&request()).unwrap();
    let operation = &plan.operations[0];
    let mut files = operation.files.clone();
    let cluster = files["cluster.yaml"]
        .replace("count: {get_param: number_of_minions}", "count: {get_param: number_of_minionz}")
        .replace("secgroup: {get_resource: secgroup_kube_master}", "secgroup: {get_resource: secgroup_kube_mastr}")
        .replace("condition: create_cluster_resources\n    properties:\n      name:\n        str_replace:\n          template: $NAME-master", "condition: managed\n    properties:\n      name:\n        str_replace:\n          template: $NAME-master")
        .replace("type: Magnum::NetworkSwitcher", "type: Magnum::NetworkSwitch")
        .replace("value: {get_attr: [kube_minions, kube_minion_ip]}", "value: {equals: [1, 1]}")
        .replace("api_pool: {if: [master_lb, {get_resource: api_pool}, \"\"]}", "api_pool: {if: [master_lb, {get_resource: api_pool}]}")
        .replace("          ssh_key_name: {get_param: ssh_key_name}\n          external_network: {get_param: external_network}\n          fixed_network: {get_attr: [network, fixed_network]}\n          fixed_subnet: {get_attr: [network, fixed_subnet]}\n          secgroup: {if",
                 "          ssh_key_nam: {get_param: ssh_key_name}\n          external_network: {get_param: external_network}\n          fixed_network: {get_attr: [network, fixed_network]}\n          fixed_subnet: {get_attr: [network, fixed_subnet]}\n          secgroup: {if");
    let mut registry: std::collections::BTreeMap<String, String> = operation.environment
        ["resource_registry"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    registry.insert(
        "Magnum::Optional::Cinder::Volume".into(),
        "volume.yaml".into(),
    );
    files.insert("cluster.yaml".into(), cluster);
    // worker.yaml is HOT 2021-04-16, where `if` may take two arguments.
    let worker = files["worker.yaml"]
        .replace(
            "          - boot_from_volume\n",
            "          - boot_from_volumes\n",
        )
        .replace(
            "image: {if: [image_based, {get_param: server_image}]}",
            "image: {if: [image_based, {get_param: server_image}, \"\", \"\"]}",
        );
    files.insert("worker.yaml".into(), worker);
    files.remove("master.yaml");
    let mut passed: Vec<String> = operation.parameters.keys().cloned().collect();
    passed.retain(|p| p != "cluster_uuid");
    passed.push("bogus".into());
    let problems = hot::lint(&files, "cluster.yaml", &passed, &registry).join("\n");
    for expected in [
        "cluster.yaml: get_param number_of_minionz: no such parameter",
        "cluster.yaml: get_resource secgroup_kube_mastr: no such resource",
        "resource type Magnum::NetworkSwitch is neither an OS:: type, a file nor in the environment's resource_registry",
        "environment maps Magnum::Optional::Cinder::Volume to volume.yaml, which is not among the files",
        "cluster.yaml: condition managed: no such condition",
        "cluster.yaml: uses equals outside a condition",
        "cluster.yaml: two-argument `if` on `master_lb` needs heat_template_version 2021-04-16",
        "worker.yaml: condition boot_from_volumes: no such condition",
        "worker.yaml: `if` on `image_based` has 4 arguments",
        "passes property ssh_key_nam to worker.yaml, which declares no such parameter",
        "cluster.yaml: resource type master.yaml is not among the files",
        "parameter bogus is passed but cluster.yaml does not declare it",
        "cluster.yaml requires parameter cluster_uuid but the plan does not pass it",
    ] {
        assert!(
            problems.contains(expected),
            "missing `{expected}` in:\n{problems}"
        );
    }
}

#[test]
fn proxy_registry_ca_mirror_and_checksums_reach_every_node() {
    let mut req = with_node_settings(request(), "kubelet");
    req.template.floating_ip_enabled = false;
    req.template
        .labels
        .insert("etcd_tag".into(), "v3.5.10".into());
    let plan = driver().create_cluster(&req).unwrap();
    lint(&plan);
    assert_node_settings(
        &plan,
        &["kube_master", "kube_minion"],
        "kubelet",
        &[
            (
                "KUBE_DOWNLOAD_URL",
                "https://mirror.example/magnum/kubernetes",
            ),
            ("ETCD_DOWNLOAD_URL", "https://mirror.example/magnum/etcd"),
            (
                "CALICO_DOWNLOAD_URL",
                "https://mirror.example/magnum/calico",
            ),
            (
                "CRI_DOCKERD_DOWNLOAD_URL",
                "https://mirror.example/magnum/cri-dockerd",
            ),
            ("ETCD_TAG", "v3.5.10"),
            ("VERIFY_CA", "True"),
        ],
    );
    // A nodegroup's own stack gets them too.
    let req = with_extra_group(req);
    let group = req.nodegroups.last().unwrap().clone();
    let plan = driver()
        .create_nodegroup(&NodeGroupRequest {
            base: req,
            nodegroup: group,
        })
        .unwrap();
    assert_node_settings(
        &plan,
        &["kube_minion"],
        "kubelet",
        &[(
            "KUBE_DOWNLOAD_URL",
            "https://mirror.example/magnum/kubernetes",
        )],
    );
}

#[test]
fn node_settings_are_checked() {
    let mut req = request();
    req.template
        .labels
        .insert("kubelet_sha256".into(), "not-a-digest".into());
    invalid(
        driver().validate_cluster(&req).unwrap_err(),
        "labels.kubelet_sha256",
    );
    let mut req = request();
    req.template.http_proxy = Some("http://proxy:3128\"; reboot; \"".into());
    invalid(driver().validate_cluster(&req).unwrap_err(), "http_proxy");
    let mut req = request();
    req.template.registry_enabled = true;
    let warnings = driver().validate_cluster(&req).unwrap().warnings;
    assert!(
        warnings.iter().any(|w| w.contains("registry_enabled")),
        "{warnings:?}"
    );
}
