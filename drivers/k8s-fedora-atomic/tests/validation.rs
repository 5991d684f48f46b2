//! Every validation rule of `k8s_fedora_atomic_v1` (labels, network and
//! volume drivers, cluster sizes): each error is `Invalid` on the field at
//! fault and its message names the allowed values.

use magnum_driver_testkit as support;

use magnum_driver_k8s_fedora_atomic::K8sFedoraAtomicDriver;
use magnum_driver_sdk::{
    serde_json::json, Cluster, ClusterRequest, ClusterTemplate, CoeDriver, DriverConfig,
    SubDriverRequest, TemplateRequest,
};
use support::{default_nodegroups, invalid};

fn driver() -> K8sFedoraAtomicDriver {
    K8sFedoraAtomicDriver::new(&DriverConfig::new()).unwrap()
}

fn template() -> ClusterTemplate {
    ClusterTemplate {
        name: "k8s-atomic".into(),
        coe: "kubernetes".into(),
        server_type: "vm".into(),
        cluster_distro: "fedora-atomic".into(),
        image_id: "fedora-atomic-27".into(),
        external_network_id: Some("public".into()),
        floating_ip_enabled: true,
        ..Default::default()
    }
}

fn with_label(name: &str, value: &str) -> TemplateRequest {
    let mut template = template();
    template.labels.insert(name.into(), value.into());
    TemplateRequest { template }
}

/// Asserts the template is refused on `field` with a message holding every
/// one of `expected`.
fn refused(driver: &K8sFedoraAtomicDriver, req: &TemplateRequest, field: &str, expected: &[&str]) {
    let message = invalid(driver.validate_template(req).unwrap_err(), field);
    for text in expected {
        assert!(
            message.contains(text),
            "{field}: {message:?} lacks {text:?}"
        );
    }
}

#[test]
fn label_values_are_checked_against_their_schema() {
    let d = driver();
    let cases: &[(&str, &str, &[&str])] = &[
        ("flannel_backend", "gre", &["udp", "vxlan", "host-gw"]),
        (
            "calico_ipv4pool_ipip",
            "Sometimes",
            &["Always", "CrossSubnet", "Never", "Off"],
        ),
        (
            "container_runtime",
            "rkt",
            &["host-docker", "docker", "containerd"],
        ),
        ("kube_tag", "latest", &["kube_tag"]),
        (
            "flannel_network_cidr",
            "10.100.0.0",
            &["flannel_network_cidr"],
        ),
        ("calico_ipv4pool", "not-a-cidr", &["calico_ipv4pool"]),
        (
            "flannel_network_subnetlen",
            "big",
            &["flannel_network_subnetlen"],
        ),
        (
            "cloud_provider_enabled",
            "maybe",
            &["cloud_provider_enabled"],
        ),
    ];
    for (label, value, expected) in cases {
        refused(
            &d,
            &with_label(label, value),
            &format!("labels.{label}"),
            expected,
        );
    }
    for (label, value) in [
        ("flannel_backend", "host-gw"),
        ("calico_ipv4pool_ipip", "CrossSubnet"),
        ("container_runtime", "containerd"),
        ("kube_tag", "v1.28.0"),
        ("flannel_network_cidr", "10.200.0.0/16"),
        ("flannel_network_subnetlen", "26"),
    ] {
        d.validate_template(&with_label(label, value))
            .unwrap_or_else(|e| panic!("{label}={value}: {e}"));
    }
}

#[test]
fn network_and_volume_drivers_name_the_allowed_ones() {
    let d = driver();
    let mut req = TemplateRequest {
        template: template(),
    };
    req.template.network_driver = Some("cilium".into());
    refused(&d, &req, "network_driver", &["flannel", "calico"]);

    let mut req = TemplateRequest {
        template: template(),
    };
    req.template.volume_driver = Some("rexray".into());
    refused(&d, &req, "volume_driver", &["cinder"]);

    // The sub-driver calls of the ABI apply the same rules.
    let err = d
        .network_driver(&SubDriverRequest {
            coe: "kubernetes".into(),
            name: Some("weave".into()),
            ..Default::default()
        })
        .unwrap_err();
    let message = invalid(err, "network_driver");
    assert!(
        message.contains("flannel") && message.contains("calico"),
        "{message}"
    );
    let err = d
        .volume_driver(&SubDriverRequest {
            coe: "kubernetes".into(),
            name: Some("rexray".into()),
            ..Default::default()
        })
        .unwrap_err();
    let message = invalid(err, "volume_driver");
    assert!(message.contains("cinder"), "{message}");
}

#[test]
fn cinder_and_the_cloud_provider_go_together() {
    // The cloud provider needs the user's trust on the nodes.
    refused(
        &driver(),
        &with_label("cloud_provider_enabled", "true"),
        "labels.cloud_provider_enabled",
        &["cluster_user_trust"],
    );
    // Cinder needs the cloud provider, which defaults to the trust setting.
    let trusted =
        K8sFedoraAtomicDriver::new(json!({"cluster_user_trust": true}).as_object().unwrap())
            .unwrap();
    let mut req = with_label("cloud_provider_enabled", "false");
    req.template.volume_driver = Some("cinder".into());
    refused(
        &trusted,
        &req,
        "labels.cloud_provider_enabled",
        &["cinder", "cloud_provider_enabled=true"],
    );
    req.template.labels.clear();
    trusted.validate_template(&req).unwrap();
}

#[test]
fn clusters_need_an_odd_master_count_and_no_negative_nodes() {
    let d = driver();
    let request = |masters: i64, nodes: i64| ClusterRequest {
        template: template(),
        cluster: Cluster {
            uuid: "3f2a9c1e-77aa-4b0e-9d1f-0123456789ab".into(),
            name: "k".into(),
            master_count: masters,
            node_count: nodes,
            ..Default::default()
        },
        nodegroups: default_nodegroups(nodes.max(0)),
        ..Default::default()
    };
    for masters in [0, 2, 4] {
        let message = invalid(
            d.validate_cluster(&request(masters, 1)).unwrap_err(),
            "master_count",
        );
        assert!(message.contains("odd"), "{message}");
    }
    invalid(
        d.validate_cluster(&request(1, -1)).unwrap_err(),
        "node_count",
    );
    d.validate_cluster(&request(3, 0)).unwrap();
}

#[test]
fn coredns_lives_in_the_service_network_under_a_dns_domain() {
    let d = driver();
    for bad in [
        "10.0.0.10",
        "10.254.0.1",
        "10.254.255.255",
        "dns",
        "10.254.0.300",
    ] {
        refused(
            &d,
            &with_label("dns_service_ip", bad),
            "labels.dns_service_ip",
            &["10.254.0.0/16", bad],
        );
    }
    d.validate_template(&with_label("dns_service_ip", "10.254.3.53"))
        .unwrap();
    for bad in ["", "cluster..local", "-cluster.local", "cluster_local"] {
        refused(
            &d,
            &with_label("dns_cluster_domain", bad),
            "labels.dns_cluster_domain",
            &["DNS name"],
        );
    }
    d.validate_template(&with_label("dns_cluster_domain", "k8s.example.org"))
        .unwrap();
}

#[test]
fn boot_volume_size_is_a_size_in_gb() {
    let d = driver();
    for bad in ["-1", "-20"] {
        refused(
            &d,
            &with_label("boot_volume_size", bad),
            "labels.boot_volume_size",
            &["boot_volume_size", "at least 0", bad],
        );
    }
    refused(
        &d,
        &with_label("boot_volume_size", "big"),
        "labels.boot_volume_size",
        &["integer"],
    );
    for good in ["0", "20"] {
        d.validate_template(&with_label("boot_volume_size", good))
            .unwrap();
    }
    d.validate_template(&with_label("boot_volume_type", "ssd"))
        .unwrap();
    // A cluster's own labels are checked too.
    let mut cluster = Cluster {
        uuid: "3f2a9c1e-77aa-4b0e-9d1f-0123456789ab".into(),
        name: "k".into(),
        master_count: 1,
        node_count: 1,
        ..Default::default()
    };
    cluster
        .labels
        .insert("boot_volume_size".into(), "-5".into());
    let req = ClusterRequest {
        template: template(),
        cluster,
        nodegroups: default_nodegroups(1),
        ..Default::default()
    };
    invalid(
        d.validate_cluster(&req).unwrap_err(),
        "labels.boot_volume_size",
    );
}
