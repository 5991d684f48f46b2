//! Every validation rule of `swarm_fedora_atomic_v1` (labels, network and
//! volume drivers, cluster sizes, unsupported operations): each error is
//! `Invalid` (or `Unsupported`) on the field at fault and its message names
//! the allowed values.

// The driver test kit (driver-testkit/).
use magnum_driver_testkit as support;

use magnum_driver_sdk::{
    capability as op, Cluster, ClusterRequest, ClusterTemplate, CoeDriver, DriverConfig,
    SubDriverRequest, TemplateRequest,
};
use magnum_driver_swarm_fedora_atomic::SwarmFedoraAtomicDriver;
use support::{default_nodegroups, invalid};

fn driver() -> SwarmFedoraAtomicDriver {
    SwarmFedoraAtomicDriver::new(&DriverConfig::new()).unwrap()
}

fn template(coe: &str) -> TemplateRequest {
    TemplateRequest {
        template: ClusterTemplate {
            name: "swarm".into(),
            coe: coe.into(),
            server_type: "vm".into(),
            cluster_distro: "fedora-atomic".into(),
            image_id: "fedora-atomic-27".into(),
            external_network_id: Some("public".into()),
            floating_ip_enabled: true,
            ..Default::default()
        },
    }
}

fn refused(req: &TemplateRequest, field: &str, expected: &[&str]) {
    let message = invalid(driver().validate_template(req).unwrap_err(), field);
    for text in expected {
        assert!(
            message.contains(text),
            "{field}: {message:?} lacks {text:?}"
        );
    }
}

#[test]
fn label_values_are_checked_against_their_schema() {
    for coe in ["swarm", "swarm-mode"] {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "swarm_strategy",
                "roundrobin",
                &["spread", "binpack", "random"],
            ),
            ("flannel_backend", "gre", &["udp", "vxlan", "host-gw"]),
            (
                "flannel_network_cidr",
                "10.100.0.0",
                &["flannel_network_cidr"],
            ),
            (
                "flannel_network_subnetlen",
                "x",
                &["flannel_network_subnetlen"],
            ),
            ("rexray_preempt", "sometimes", &["rexray_preempt"]),
        ];
        for (label, value, expected) in cases {
            let mut req = template(coe);
            req.template.labels.insert((*label).into(), (*value).into());
            refused(&req, &format!("labels.{label}"), expected);
        }
    }
    for strategy in ["spread", "binpack", "random"] {
        let mut req = template("swarm");
        req.template
            .labels
            .insert("swarm_strategy".into(), strategy.into());
        driver().validate_template(&req).unwrap();
    }
}

#[test]
fn network_and_volume_drivers_name_the_allowed_ones() {
    for coe in ["swarm", "swarm-mode"] {
        let mut req = template(coe);
        req.template.network_driver = Some("calico".into());
        refused(&req, "network_driver", &["docker", "flannel"]);
        let mut req = template(coe);
        req.template.volume_driver = Some("cinder".into());
        refused(&req, "volume_driver", &["rexray"]);
        for network in ["docker", "flannel"] {
            let mut req = template(coe);
            req.template.network_driver = Some(network.into());
            req.template.volume_driver = Some("rexray".into());
            refused(&req, "volume_driver", &["rexray", "application credential"]);
        }
    }
    let err = driver()
        .network_driver(&SubDriverRequest {
            coe: "swarm".into(),
            name: Some("calico".into()),
            ..Default::default()
        })
        .unwrap_err();
    let message = invalid(err, "network_driver");
    assert!(
        message.contains("docker") && message.contains("flannel"),
        "{message}"
    );
}

#[test]
fn clusters_need_a_manager_and_no_negative_nodes() {
    let request = |masters: i64, nodes: i64| ClusterRequest {
        template: template("swarm").template,
        cluster: Cluster {
            uuid: "5d12f6fd-a196-4bf0-ae4c-1f639a523a52".into(),
            name: "s".into(),
            master_count: masters,
            node_count: nodes,
            ..Default::default()
        },
        nodegroups: default_nodegroups(nodes.max(0)),
        ..Default::default()
    };
    invalid(
        driver().validate_cluster(&request(0, 1)).unwrap_err(),
        "master_count",
    );
    invalid(
        driver().validate_cluster(&request(1, -1)).unwrap_err(),
        "node_count",
    );
    driver().validate_cluster(&request(2, 0)).unwrap();
}

#[test]
fn nodegroups_and_upgrades_are_declared_unsupported() {
    let info = SwarmFedoraAtomicDriver::info();
    for operation in [
        op::UPGRADE_CLUSTER,
        op::CREATE_NODEGROUP,
        op::UPDATE_NODEGROUP,
        op::DELETE_NODEGROUP,
    ] {
        assert!(!info.supports(operation), "{operation}");
    }
}

#[test]
fn rexray_is_refused_whatever_the_trust_setting() {
    let mut req = template("swarm-mode");
    req.template.volume_driver = Some("rexray".into());
    let mut config = DriverConfig::new();
    config.insert("cluster_user_trust".into(), true.into());
    for d in [driver(), SwarmFedoraAtomicDriver::new(&config).unwrap()] {
        let message = invalid(d.validate_template(&req).unwrap_err(), "volume_driver");
        assert!(message.contains("application credential"), "{message}");
    }
    config.insert("cluster_user_trust".into(), "yes".into());
    let err = SwarmFedoraAtomicDriver::new(&config)
        .err()
        .expect("refused");
    invalid(err, "config.cluster_user_trust");
    // Docker's own volumes need no credential.
    assert!(driver()
        .validate_template(&template("swarm"))
        .unwrap()
        .warnings
        .is_empty());
}

#[test]
fn boot_volume_size_is_a_size_in_gb() {
    let with = |value: &str| {
        let mut req = template("swarm-mode");
        req.template
            .labels
            .insert("boot_volume_size".into(), value.into());
        req
    };
    for bad in ["-1", "-20"] {
        refused(
            &with(bad),
            "labels.boot_volume_size",
            &["boot_volume_size", "at least 0", bad],
        );
    }
    refused(&with("big"), "labels.boot_volume_size", &["integer"]);
    for good in ["0", "20"] {
        driver().validate_template(&with(good)).unwrap();
    }
}
