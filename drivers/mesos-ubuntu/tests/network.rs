//! The network `mesos_ubuntu_v1`'s plans make, evaluated by magnum-hot (the
//! local cloud's evaluator): which traffic the security groups admit
//! between masters, agents and the world, and the load balancer's health
//! monitor.

use magnum_driver_testkit as support;

use magnum_driver_mesos_ubuntu::MesosUbuntuDriver;
use magnum_driver_sdk::{Cluster, ClusterRequest, ClusterTemplate, CoeDriver, DriverConfig};
use support::cloud::{
    assert_address_pairs, assert_monitored_pool, assert_open_to_world, assert_reaches, create,
    Cloud, Network,
};
use support::{default_nodegroups, lint};

const MASTERS: &str = "mesos_master_ports";
const AGENTS: &str = "mesos_slaves";

const ICMP: Option<u8> = Some(1);
const TCP: Option<u8> = Some(6);

fn request(masters: i64) -> ClusterRequest {
    let mut nodegroups = default_nodegroups(2);
    nodegroups[0].node_count = masters;
    ClusterRequest {
        template: ClusterTemplate {
            name: "mesos".into(),
            coe: "mesos".into(),
            server_type: "vm".into(),
            cluster_distro: "ubuntu".into(),
            image_id: "ubuntu-mesos".into(),
            external_network_id: Some("public".into()),
            floating_ip_enabled: true,
            master_lb_enabled: masters > 1,
            ..Default::default()
        },
        cluster: Cluster {
            uuid: "8c0b3f5e-2a4d-4f1e-9b7a-6d5c4b3a2f10".into(),
            name: "mesos".into(),
            master_count: masters,
            node_count: 2,
            ..Default::default()
        },
        nodegroups,
        ..Default::default()
    }
}

#[test]
fn three_masters_keep_a_zookeeper_quorum_behind_a_monitored_load_balancer() {
    let plan = MesosUbuntuDriver::new(&DriverConfig::new())
        .unwrap()
        .create_cluster(&request(3))
        .unwrap();
    lint(&plan);
    let mut cloud = Cloud::default();
    let stack = create(&mut cloud, &plan.operations[0]);
    let network = Network::of(&cloud, &[&stack]);
    assert_eq!(network.ports(MASTERS).len(), 3);

    // ZooKeeper's clients, quorum and election among masters; the agents
    // register with the masters (5050, ZooKeeper) and the masters call the
    // agents (5051).
    let zookeeper = &[
        ("tcp", Some(2181)),
        ("tcp", Some(2888)),
        ("tcp", Some(3888)),
        ("tcp", Some(5050)),
    ];
    assert_reaches(&network, MASTERS, MASTERS, zookeeper);
    assert_reaches(
        &network,
        AGENTS,
        MASTERS,
        &[("tcp", Some(2181)), ("tcp", Some(5050)), ("icmp", None)],
    );
    for (from, to) in [(MASTERS, AGENTS), (AGENTS, AGENTS)] {
        assert_reaches(
            &network,
            from,
            to,
            &[("tcp", Some(5051)), ("tcp", Some(31000)), ("udp", Some(53))],
        );
    }

    assert_open_to_world(
        &network,
        MASTERS,
        &[
            (ICMP, None),
            (TCP, Some((22, 22))),
            (TCP, Some((5050, 5050))),
            (TCP, Some((8080, 8080))),
        ],
        &[
            ("tcp", Some(2181)),
            ("tcp", Some(2888)),
            ("tcp", Some(3888)),
        ],
    );
    assert_open_to_world(
        &network,
        AGENTS,
        &[
            (ICMP, None),
            (TCP, Some((22, 22))),
            (TCP, Some((31000, 32000))),
        ],
        &[("tcp", Some(5051)), ("udp", Some(53)), ("tcp", Some(8080))],
    );
    // Docker's bridge network: containers leave with the node's address.
    assert_address_pairs(&network, MASTERS, None);
    assert_address_pairs(&network, AGENTS, None);
    assert_monitored_pool(&network, MASTERS, 3, "TCP");
}
