//! Every validation rule of `mesos_ubuntu_v1` (the slave labels, network and
//! volume drivers, cluster sizes, unsupported operations): each error is
//! `Invalid` on the field at fault and its message names the allowed values.

// The driver test kit (driver-testkit/).
use magnum_driver_testkit as support;

use magnum_driver_mesos_ubuntu::MesosUbuntuDriver;
use magnum_driver_sdk::{
    capability as op, Cluster, ClusterRequest, ClusterTemplate, CoeDriver, DriverConfig,
    TemplateRequest,
};
use support::{default_nodegroups, invalid};

fn driver() -> MesosUbuntuDriver {
    MesosUbuntuDriver::new(&DriverConfig::new()).unwrap()
}

fn template(labels: &[(&str, &str)]) -> TemplateRequest {
    TemplateRequest {
        template: ClusterTemplate {
            name: "mesos".into(),
            coe: "mesos".into(),
            server_type: "vm".into(),
            cluster_distro: "ubuntu".into(),
            image_id: "ubuntu-mesos".into(),
            external_network_id: Some("public".into()),
            floating_ip_enabled: true,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
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
fn isolation_lists_only_known_isolators() {
    refused(
        &template(&[("mesos_slave_isolation", "posix/cpu,gpu/nvidia")]),
        "labels.mesos_slave_isolation",
        &[
            "gpu/nvidia",
            "filesystem/posix",
            "filesystem/linux",
            "filesystem/shared",
            "posix/cpu",
            "posix/mem",
            "posix/disk",
            "cgroups/cpu",
            "cgroups/mem",
            "docker/runtime",
            "namespaces/pid",
        ],
    );
    driver()
        .validate_template(&template(&[(
            "mesos_slave_isolation",
            "filesystem/posix, posix/cpu,posix/mem",
        )]))
        .unwrap();
}

#[test]
fn image_providers_are_docker_or_appc_and_docker_needs_its_isolator() {
    refused(
        &template(&[("mesos_slave_image_providers", "rkt")]),
        "labels.mesos_slave_image_providers",
        &["rkt", "docker", "appc"],
    );
    refused(
        &template(&[
            ("mesos_slave_image_providers", "docker"),
            ("mesos_slave_isolation", "filesystem/linux"),
        ]),
        "labels.mesos_slave_isolation",
        &["docker/runtime"],
    );
    driver()
        .validate_template(&template(&[
            ("mesos_slave_image_providers", "appc"),
            ("mesos_slave_isolation", "filesystem/linux"),
        ]))
        .unwrap();
}

#[test]
fn executor_variables_are_a_json_object() {
    refused(
        &template(&[("mesos_slave_executor_env_variables", "{not json")]),
        "labels.mesos_slave_executor_env_variables",
        &["JSON"],
    );
    driver()
        .validate_template(&template(&[(
            "mesos_slave_executor_env_variables",
            r#"{"PATH": "/usr/bin"}"#,
        )]))
        .unwrap();
}

#[test]
fn network_and_volume_drivers_name_the_allowed_ones() {
    let mut req = template(&[]);
    req.template.network_driver = Some("flannel".into());
    refused(&req, "network_driver", &["docker"]);
    let mut req = template(&[]);
    req.template.volume_driver = Some("cinder".into());
    refused(&req, "volume_driver", &["rexray"]);
    let mut req = template(&[("rexray_preempt", "perhaps")]);
    req.template.volume_driver = Some("rexray".into());
    refused(&req, "labels.rexray_preempt", &["rexray_preempt"]);
    req.template.labels.clear();
    req.template.network_driver = Some("docker".into());
    refused(&req, "volume_driver", &["rexray", "application credential"]);
}

#[test]
fn clusters_need_a_master_and_no_negative_slaves() {
    let request = |masters: i64, nodes: i64| ClusterRequest {
        template: template(&[]).template,
        cluster: Cluster {
            uuid: "9e0c1e5a-7c55-4a8b-a1d3-5b0d8d6a9c10".into(),
            name: "m".into(),
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
    driver().validate_cluster(&request(1, 0)).unwrap();
}

#[test]
fn nodegroups_and_upgrades_are_declared_unsupported() {
    let info = MesosUbuntuDriver::info();
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
    let mut req = template(&[]);
    req.template.volume_driver = Some("rexray".into());
    let mut config = DriverConfig::new();
    config.insert("cluster_user_trust".into(), true.into());
    for d in [driver(), MesosUbuntuDriver::new(&config).unwrap()] {
        let message = invalid(d.validate_template(&req).unwrap_err(), "volume_driver");
        assert!(message.contains("application credential"), "{message}");
    }
    assert!(driver()
        .validate_template(&template(&[]))
        .unwrap()
        .warnings
        .is_empty());
}

#[test]
fn boot_volume_size_is_a_size_in_gb() {
    for bad in ["-1", "-20"] {
        refused(
            &template(&[("boot_volume_size", bad)]),
            "labels.boot_volume_size",
            &["boot_volume_size", "at least 0", bad],
        );
    }
    refused(
        &template(&[("boot_volume_size", "big")]),
        "labels.boot_volume_size",
        &["integer"],
    );
    for good in ["0", "20"] {
        driver()
            .validate_template(&template(&[
                ("boot_volume_size", good),
                ("boot_volume_type", "ssd"),
            ]))
            .unwrap();
    }
}
