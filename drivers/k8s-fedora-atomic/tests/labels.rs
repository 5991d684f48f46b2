//! The labels that change what a node runs (issue 15, defect 9): a valid
//! value reaches the plan's parameters and, through the real templates
//! evaluated by `magnum-hot`, the resources Heat would create — the
//! servers' availability zone and the heat-params their user data writes
//! (which the fragments read), the load balancer's provider, listener CIDRs
//! and pool algorithm. A bad value is refused, naming the label.

use std::collections::BTreeMap;

use magnum_driver_testkit as support;

use magnum_driver_k8s_fedora_atomic::{K8sFedoraAtomicDriver, DRIVER_NAME};
use magnum_driver_sdk::{
    serde_json::{json, Map, Value},
    Cluster, ClusterRequest, ClusterTemplate, CoeDriver, DriverConfig, StackPlan, TemplateRequest,
    UpgradeRequest,
};
use magnum_hot::{
    Action, Applied, HotError, Provider, ProviderError, ResourceRequest, ResourceState,
    StackRequest,
};
use support::{default_nodegroups, invalid, lint};

fn driver() -> K8sFedoraAtomicDriver {
    K8sFedoraAtomicDriver::new(&DriverConfig::new()).unwrap()
}

fn template(labels: &[(&str, &str)]) -> ClusterTemplate {
    ClusterTemplate {
        uuid: "0b5e6a2c-1111-4a4a-9d9d-222233334444".into(),
        name: "k8s-atomic".into(),
        coe: "kubernetes".into(),
        server_type: "vm".into(),
        cluster_distro: "fedora-atomic".into(),
        image_id: "fedora-atomic-27".into(),
        flavor_id: Some("m1.medium".into()),
        master_flavor_id: Some("m1.large".into()),
        external_network_id: Some("public".into()),
        network_driver: Some("flannel".into()),
        floating_ip_enabled: true,
        master_lb_enabled: true,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn request(labels: &[(&str, &str)]) -> ClusterRequest {
    ClusterRequest {
        template: template(labels),
        cluster: Cluster {
            uuid: "3f2a9c1e-77aa-4b0e-9d1f-0123456789ab".into(),
            name: "labelled".into(),
            master_count: 1,
            node_count: 1,
            create_timeout: Some(60),
            ..Default::default()
        },
        nodegroups: default_nodegroups(1),
        ..Default::default()
    }
}

fn create(labels: &[(&str, &str)]) -> StackPlan {
    let plan = driver()
        .create_cluster(&request(labels))
        .unwrap_or_else(|e| panic!("create with {labels:?}: {e}"));
    lint(&plan);
    plan
}

/// The refusal of `labels` by template validation, on `labels.<name>`.
fn refused(labels: &[(&str, &str)], name: &str) -> String {
    let req = TemplateRequest {
        template: template(labels),
    };
    let err = driver()
        .validate_template(&req)
        .expect_err(&format!("{labels:?} must be refused"));
    let message = invalid(err, &format!("labels.{name}"));
    assert!(message.contains(name), "{message:?} names {name}");
    message
}

/// A cloud that accepts every resource and keeps its properties as its
/// attributes, with made-up addresses for what the templates read back.
struct Recorder(u32);

impl Provider for Recorder {
    fn supports(&self, _type_name: &str) -> bool {
        true
    }

    fn new_id(&mut self) -> String {
        self.0 += 1;
        format!("id-{}", self.0)
    }

    fn apply(&mut self, request: &ResourceRequest<'_>) -> Result<Applied, ProviderError> {
        let ip = format!("10.0.0.{}", self.0 % 250 + 2);
        let mut attributes = request.properties.clone();
        for (key, value) in [
            ("fixed_ips", json!([{"ip_address": ip}])),
            ("vip_address", json!(ip)),
            ("vip_port_id", json!("port-lb")),
            ("floating_ip_address", json!("192.0.2.10")),
            ("first_address", json!(ip)),
        ] {
            attributes.entry(key).or_insert(value);
        }
        Ok(Applied {
            ref_id: self.new_id(),
            attributes,
            open_attributes: true,
            ready_ms: request.start_ms,
        })
    }

    fn remove(&mut self, _resource: &ResourceState) -> Result<(), HotError> {
        Ok(())
    }
}

/// The cluster stack of `plan` evaluated over [`Recorder`]: each primitive
/// resource's path, type and properties.
fn rendered(plan: &StackPlan) -> Vec<(String, String, Map<String, Value>)> {
    let operation = &plan.operations[0];
    let request = StackRequest {
        stack_name: &operation.stack_name,
        stack_id: "stack-1",
        project_id: "project-1",
        template: &operation.template,
        files: &operation.files,
        environment: &operation.environment,
        parameters: &operation.parameters,
        action: Action::Create,
        start_ms: 0,
    };
    let evaluation = magnum_hot::evaluate(&request, None, &mut Recorder(0))
        .unwrap_or_else(|e| panic!("the plan evaluates: {e}"));
    assert!(evaluation.failure.is_none(), "{:?}", evaluation.failure);
    evaluation
        .resources
        .primitives()
        .into_iter()
        .map(|(path, r)| (path, r.type_name.clone(), r.attributes.clone()))
        .collect()
}

fn of_type<'a>(
    resources: &'a [(String, String, Map<String, Value>)],
    type_name: &str,
) -> Vec<&'a Map<String, Value>> {
    resources
        .iter()
        .filter(|(_, t, _)| t == type_name)
        .map(|(_, _, p)| p)
        .collect()
}

/// The heat-params a server's user data writes: `NAME="value"` lines.
fn heat_params(server: &Map<String, Value>) -> BTreeMap<String, String> {
    let user_data = server["user_data"].as_str().expect("user data");
    let block = user_data
        .split("<<'MAGNUM_PARAMS'\n")
        .nth(1)
        .and_then(|rest| rest.split("\nMAGNUM_PARAMS").next())
        .expect("the heat-params block");
    block
        .lines()
        .filter_map(|line| line.trim().split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

const LABELS: &[(&str, &str)] = &[
    ("service_cluster_ip_range", "10.32.0.0/12"),
    ("availability_zone", "az-2"),
    ("master_lb_allowed_cidrs", "192.0.2.0/24, 198.51.100.7/32"),
    ("octavia_provider", "ovn"),
    ("cgroup_driver", "systemd"),
    ("kubelet_options", "--v=2 --max-pods=50"),
    ("kubeapi_options", "--audit-log-maxage=7"),
    ("kubeproxy_options", "--proxy-mode=ipvs"),
    ("kubecontroller_options", "--node-monitor-grace-period=50s"),
    ("kubescheduler_options", "--feature-gates=A=true,B=false"),
    ("admission_control_list", "NodeRestriction,AlwaysPullImages"),
    (
        "container_infra_prefix",
        "registry.example.com:5000/magnum/",
    ),
    ("cinder_csi_enabled", "true"),
];

#[test]
fn the_labels_are_declared() {
    let info = K8sFedoraAtomicDriver::info();
    assert_eq!(info.name, DRIVER_NAME);
    for (name, _) in LABELS.iter().chain(&[("octavia_lb_algorithm", "")]) {
        let spec = info.labels.iter().find(|s| s.name == *name);
        assert!(
            spec.is_some_and(|s| !s.description.is_empty()),
            "{name} is declared and described"
        );
    }
    let csi = info.labels.iter().find(|s| s.name == "cinder_csi_enabled");
    assert!(csi.is_some_and(|s| s.description.contains("application credential")));
}

#[test]
fn accepted_labels_reach_the_parameters() {
    let plan = create(LABELS);
    let p = &plan.operations[0].parameters;
    let expected = json!({
        "portal_network_cidr": "10.32.0.0/12",
        "dns_service_ip": "10.32.0.10",
        "availability_zone": "az-2",
        // The private subnet is added, so the nodes keep reaching the API.
        "master_lb_allowed_cidrs": ["192.0.2.0/24", "198.51.100.7/32", "10.0.0.0/24"],
        "octavia_provider": "ovn",
        // ovn supports only SOURCE_IP_PORT: the default follows the provider.
        "octavia_lb_algorithm": "SOURCE_IP_PORT",
        "cgroup_driver": "systemd",
        "kubelet_options": "--v=2 --max-pods=50",
        "kubeapi_options": "--audit-log-maxage=7",
        "kubeproxy_options": "--proxy-mode=ipvs",
        "kubecontroller_options": "--node-monitor-grace-period=50s",
        "kubescheduler_options": "--feature-gates=A=true,B=false",
        "admission_control_list": "NodeRestriction,AlwaysPullImages",
        "cinder_csi_enabled": true,
    });
    for (name, value) in expected.as_object().unwrap() {
        assert_eq!(p.get(name), Some(value), "parameter {name}");
    }

    // Defaults: upstream's service network and CoreDNS address, amphora
    // with ROUND_ROBIN, no CIDR list (everyone), cgroupfs.
    let plan = create(&[]);
    let p = &plan.operations[0].parameters;
    let defaults = json!({
        "portal_network_cidr": "10.254.0.0/16",
        "dns_service_ip": "10.254.0.10",
        "master_lb_allowed_cidrs": [],
        "octavia_provider": "amphora",
        "octavia_lb_algorithm": "ROUND_ROBIN",
        "cgroup_driver": "cgroupfs",
        "cinder_csi_enabled": false,
    });
    for (name, value) in defaults.as_object().unwrap() {
        assert_eq!(p.get(name), Some(value), "default of {name}");
    }
    assert!(p.get("availability_zone").is_none());
    assert!(p.get("kubelet_options").is_none());

    let plan = create(&[("octavia_lb_algorithm", "LEAST_CONNECTIONS")]);
    assert_eq!(
        plan.operations[0].parameters["octavia_lb_algorithm"],
        "LEAST_CONNECTIONS"
    );
    // An explicit dns_service_ip inside a custom range is kept.
    let plan = create(&[
        ("service_cluster_ip_range", "172.20.0.0/16"),
        ("dns_service_ip", "172.20.0.53"),
    ]);
    assert_eq!(
        plan.operations[0].parameters["dns_service_ip"],
        "172.20.0.53"
    );
}

#[test]
fn accepted_labels_reach_the_nodes_and_the_load_balancer() {
    let resources = rendered(&create(LABELS));
    let servers = of_type(&resources, "OS::Nova::Server");
    assert_eq!(servers.len(), 2, "a master and a worker");
    for server in &servers {
        assert_eq!(server["availability_zone"], "az-2");
        let params = heat_params(server);
        for (name, value) in [
            ("PORTAL_NETWORK_CIDR", "10.32.0.0/12"),
            ("DNS_SERVICE_IP", "10.32.0.10"),
            ("CGROUP_DRIVER", "systemd"),
            ("KUBELET_OPTIONS", "--v=2 --max-pods=50"),
            ("KUBEAPI_OPTIONS", "--audit-log-maxage=7"),
            ("KUBEPROXY_OPTIONS", "--proxy-mode=ipvs"),
            ("KUBECONTROLLER_OPTIONS", "--node-monitor-grace-period=50s"),
            ("KUBESCHEDULER_OPTIONS", "--feature-gates=A=true,B=false"),
            ("ADMISSION_CONTROL_LIST", "NodeRestriction,AlwaysPullImages"),
            (
                "CONTAINER_INFRA_PREFIX",
                "registry.example.com:5000/magnum/",
            ),
            // A boolean as Heat's str_replace writes it (Python's str).
            ("CINDER_CSI_ENABLED", "True"),
        ] {
            assert_eq!(params.get(name).map(String::as_str), Some(value), "{name}");
        }
    }
    let lb = of_type(&resources, "OS::Octavia::LoadBalancer");
    assert_eq!(lb.len(), 1);
    assert_eq!(lb[0]["provider"], "ovn");
    let listener = of_type(&resources, "OS::Octavia::Listener");
    assert_eq!(
        listener[0]["allowed_cidrs"],
        json!(["192.0.2.0/24", "198.51.100.7/32", "10.0.0.0/24"])
    );
    let pool = of_type(&resources, "OS::Octavia::Pool");
    assert_eq!(pool[0]["lb_algorithm"], "SOURCE_IP_PORT");

    // Without the labels: no zone and no CIDR list (the properties unset,
    // as Nova and Octavia then use their defaults), amphora, ROUND_ROBIN.
    let resources = rendered(&create(&[]));
    for server in of_type(&resources, "OS::Nova::Server") {
        assert!(server.get("availability_zone").is_none_or(Value::is_null));
        assert_eq!(heat_params(server)["CGROUP_DRIVER"], "cgroupfs");
        assert_eq!(heat_params(server)["KUBELET_OPTIONS"], "");
    }
    let listener = of_type(&resources, "OS::Octavia::Listener");
    assert!(listener[0].get("allowed_cidrs").is_none_or(Value::is_null));
    assert_eq!(
        of_type(&resources, "OS::Octavia::LoadBalancer")[0]["provider"],
        "amphora"
    );
    assert_eq!(
        of_type(&resources, "OS::Octavia::Pool")[0]["lb_algorithm"],
        "ROUND_ROBIN"
    );
}

#[test]
fn bad_values_are_refused_naming_the_label() {
    let cases: &[(&str, &str, &str)] = &[
        ("service_cluster_ip_range", "10.254.0.0", "cidr"),
        ("service_cluster_ip_range", "10.254.0.0/8", "/12 to /28"),
        (
            "service_cluster_ip_range",
            "10.100.0.0/16",
            "overlaps the pod network",
        ),
        (
            "service_cluster_ip_range",
            "10.0.0.0/16",
            "overlaps the private subnet",
        ),
        ("availability_zone", " ", "availability_zone"),
        ("availability_zone", "az\n1", "printable"),
        (
            "master_lb_allowed_cidrs",
            "192.0.2.0/24,nowhere",
            "'nowhere'",
        ),
        ("master_lb_allowed_cidrs", "192.0.2.0/24,", "IPv4 CIDRs"),
        ("octavia_provider", "Amphora Plus", "provider name"),
        ("octavia_lb_algorithm", "RANDOM", "ROUND_ROBIN"),
        ("cgroup_driver", "cgroupv2", "cgroupfs, systemd"),
        ("kubelet_options", "--v=2 ; rm -rf /", "';'"),
        ("kubeapi_options", "--token=\"x\"", "'--token=\"x\"'"),
        ("kubeproxy_options", "proxy-mode=ipvs", "'proxy-mode=ipvs'"),
        ("kubecontroller_options", "--a=$(id)", "--a=$(id)"),
        ("kubescheduler_options", "--v=2\n--v=3", "kube-scheduler"),
        ("kubescheduler_options", "--v=2  --v=3", "single spaces"),
        (
            "admission_control_list",
            "NodeRestriction;AlwaysPullImages",
            "admission plugin",
        ),
        ("admission_control_list", "", "admission plugin"),
        ("cinder_csi_enabled", "yes", "boolean"),
        (
            "dns_service_ip",
            "10.254.0.10",
            "service network 10.32.0.0/12",
        ),
    ];
    for (name, value, needle) in cases {
        let mut labels = vec![(*name, *value)];
        if *name == "dns_service_ip" {
            labels.push(("service_cluster_ip_range", "10.32.0.0/12"));
        }
        let message = refused(&labels, name);
        assert!(
            message.contains(needle),
            "{name}={value:?}: {message:?} lacks {needle:?}"
        );
    }
    // ovn takes SOURCE_IP_PORT only.
    let message = refused(
        &[
            ("octavia_provider", "ovn"),
            ("octavia_lb_algorithm", "ROUND_ROBIN"),
        ],
        "octavia_lb_algorithm",
    );
    assert!(message.contains("SOURCE_IP_PORT"), "{message}");
    // Nothing is planned for a refused label.
    let mut req = request(&[("cgroup_driver", "cgroupv2")]);
    req.template
        .labels
        .insert("kube_tag".into(), "v1.27.3".into());
    assert!(driver().create_cluster(&req).is_err());
}

#[test]
fn lb_labels_without_a_load_balancer_are_a_warning() {
    let mut t = template(&[
        ("octavia_provider", "ovn"),
        ("master_lb_allowed_cidrs", "192.0.2.0/24"),
    ]);
    t.master_lb_enabled = false;
    let validation = driver()
        .validate_template(&TemplateRequest { template: t })
        .expect("valid, if useless");
    for name in ["octavia_provider", "master_lb_allowed_cidrs"] {
        assert!(
            validation
                .warnings
                .iter()
                .any(|w| w.contains(name) && w.contains("master_lb_enabled")),
            "{:?}",
            validation.warnings
        );
    }
}

// kube_tag is a release tag, as the download path <url>/<kube_tag>/bin/...
// needs it: without its leading v it is refused (normalising it would make
// the label and what the nodes run differ, and upgrades compare the two).
#[test]
fn kube_tag_without_its_v_is_refused() {
    let message = refused(&[("kube_tag", "1.27.3")], "kube_tag");
    assert!(message.contains("'v1.27.3'"), "{message}");
    let mut req = request(&[]);
    req.template
        .labels
        .insert("kube_tag".into(), "1.27.3".into());
    let err = driver().create_cluster(&req).unwrap_err();
    assert!(invalid(err, "labels.kube_tag").contains("leading v"));

    // An upgrade to a tag without v is refused the same way.
    let mut base = request(&[("kube_tag", "v1.27.3")]);
    base.cluster.stack_id = Some("stack-1".into());
    let upgrade = |tag: &str| {
        driver().upgrade_cluster(&UpgradeRequest {
            base: base.clone(),
            new_template: template(&[("kube_tag", tag)]),
            nodegroup: base.nodegroups[1].uuid.clone(),
            max_batch_size: 1,
        })
    };
    let err = upgrade("1.27.8").unwrap_err();
    assert!(invalid(err, "labels.kube_tag").contains("'v1.27.8'"));
    let plan = upgrade("v1.27.8").expect("upgrade plan");
    assert_eq!(plan.operations[0].parameters["kube_tag"], "v1.27.8");
}

/// A driver whose nodes may hold a credential (`cluster_user_trust`), as
/// the cloud provider needs.
fn trusting_driver() -> K8sFedoraAtomicDriver {
    let mut config = DriverConfig::new();
    config.insert("cluster_user_trust".into(), json!(true));
    K8sFedoraAtomicDriver::new(&config).unwrap()
}

#[test]
fn the_cloud_provider_asks_for_a_credential_and_the_nodes_get_it_hidden() {
    let labels = [
        ("cloud_provider_enabled", "true"),
        ("cinder_csi_enabled", "true"),
        ("cloud_provider_tag", "v1.29.0"),
    ];
    let mut req = request(&labels);
    let v = trusting_driver().validate_cluster(&req).unwrap();
    assert!(v.cloud_credential, "the driver asks for a credential");
    assert!(
        !trusting_driver()
            .validate_cluster(&request(&[("cloud_provider_enabled", "false")]))
            .unwrap()
            .cloud_credential
    );
    // What the host gives (HostContext.extra) reaches both node templates.
    req.context.auth_url = Some("https://keystone.example/v3".into());
    for (k, v) in [
        ("openstack_app_cred_id", "ac-1"),
        ("openstack_app_cred_secret", "s3cret"),
    ] {
        req.context.extra.insert(k.into(), json!(v));
    }
    let plan = trusting_driver().create_cluster(&req).unwrap();
    lint(&plan);
    let p = &plan.operations[0].parameters;
    assert_eq!(p["openstack_app_cred_id"], "ac-1");
    assert_eq!(p["openstack_app_cred_secret"], "s3cret");
    // Heat hides the secret: the cluster template declares it hidden.
    let cluster_yaml = &plan.operations[0].files["cluster.yaml"];
    let declared = cluster_yaml
        .split("\n  openstack_app_cred_secret:\n")
        .nth(1)
        .expect("declared");
    assert!(declared.lines().take(3).any(|l| l.trim() == "hidden: true"));
    let resources = rendered(&plan);
    let servers = of_type(&resources, "OS::Nova::Server");
    assert_eq!(servers.len(), 2, "a master and a worker");
    for server in &servers {
        let params = heat_params(server);
        assert_eq!(params["OPENSTACK_APP_CRED_ID"], "ac-1");
        assert_eq!(params["OPENSTACK_APP_CRED_SECRET"], "s3cret");
        assert_eq!(params["CLOUD_PROVIDER_ENABLED"], "True");
        assert_eq!(params["CINDER_CSI_ENABLED"], "True");
        assert_eq!(params["CLOUD_PROVIDER_TAG"], "v1.29.0");
        assert_eq!(params["AUTH_URL"], "https://keystone.example/v3");
        assert_eq!(params["EXTERNAL_NETWORK"], "public");
    }
    // Only the masters run the cloud provider's fragment (in the user
    // data's gzipped bundle).
    let with_fragment = servers
        .iter()
        .filter(|s| {
            s["user_data"]
                .as_str()
                .and_then(magnum_driver_sdk::user_data::expand_bundles)
                .is_some_and(|u| u.contains("65-configure-cloud-provider.sh"))
        })
        .count();
    assert_eq!(with_fragment, 1);
}

#[test]
fn csi_without_the_cloud_provider_is_warned_about() {
    let v = driver()
        .validate_cluster(&request(&[("cinder_csi_enabled", "true")]))
        .unwrap();
    assert!(!v.cloud_credential);
    assert!(
        v.warnings
            .iter()
            .any(|w| w.contains("cloud_provider_enabled=true")),
        "{:?}",
        v.warnings
    );
}
