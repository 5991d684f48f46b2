//! The network `swarm_fedora_atomic_v1`'s plans make, evaluated by
//! magnum-hot (the local cloud's evaluator): which traffic the security
//! groups admit between managers, nodes and the world, flannel's address
//! pairs, and the API load balancer's health monitor.

use magnum_driver_testkit as support;

use magnum_driver_sdk::{Cluster, ClusterRequest, ClusterTemplate, CoeDriver, DriverConfig};
use magnum_driver_swarm_fedora_atomic::SwarmFedoraAtomicDriver;
use support::cloud::{
    assert_address_pairs, assert_monitored_pool, assert_open_to_world, assert_reaches, create,
    Cloud, Network,
};
use support::{default_nodegroups, lint};

const MANAGERS: &str = "swarm_master_ports";
const NODES: &str = "swarm_nodes";

const ICMP: Option<u8> = Some(1);
const TCP: Option<u8> = Some(6);

fn request(coe: &str, managers: i64) -> ClusterRequest {
    let mut nodegroups = default_nodegroups(2);
    nodegroups[0].node_count = managers;
    ClusterRequest {
        template: ClusterTemplate {
            name: "swarm".into(),
            coe: coe.into(),
            server_type: "vm".into(),
            cluster_distro: "fedora-atomic".into(),
            image_id: "fedora-atomic-27".into(),
            external_network_id: Some("public".into()),
            floating_ip_enabled: true,
            master_lb_enabled: managers > 1,
            ..Default::default()
        },
        cluster: Cluster {
            uuid: "5d12f6fd-a196-4bf0-ae4c-1f639a523a52".into(),
            name: "swarm".into(),
            master_count: managers,
            node_count: 2,
            ..Default::default()
        },
        nodegroups,
        ..Default::default()
    }
}

fn network(req: &ClusterRequest) -> Network {
    let plan = SwarmFedoraAtomicDriver::new(&DriverConfig::new())
        .unwrap()
        .create_cluster(req)
        .unwrap();
    lint(&plan);
    let mut cloud = Cloud::default();
    let stack = create(&mut cloud, &plan.operations[0]);
    Network::of(&cloud, &[&stack])
}

/// Between every two nodes of the cluster: swarm mode's cluster management
/// (2377), gossip (7946 TCP and UDP) and overlay (4789), the managers'
/// Docker API (2375), etcd and flannel's UDP backend for standalone Swarm.
const NODE_TRAFFIC: &[(&str, Option<u16>)] = &[
    ("tcp", Some(2377)),
    ("tcp", Some(7946)),
    ("udp", Some(7946)),
    ("udp", Some(4789)),
    ("tcp", Some(2375)),
    ("tcp", Some(2379)),
    ("udp", Some(8285)),
    ("icmp", None),
];

fn assert_cluster_traffic(network: &Network, api_port: u16) {
    for (from, to) in [
        (MANAGERS, MANAGERS),
        (MANAGERS, NODES),
        (NODES, MANAGERS),
        (NODES, NODES),
    ] {
        assert_reaches(network, from, to, NODE_TRAFFIC);
    }
    let published = (TCP, Some((30000, 32767)));
    assert_open_to_world(
        network,
        MANAGERS,
        &[
            (ICMP, None),
            (TCP, Some((22, 22))),
            (TCP, Some((api_port, api_port))),
            published,
        ],
        &[
            ("tcp", Some(2377)),
            ("tcp", Some(7946)),
            ("udp", Some(4789)),
        ],
    );
    assert_open_to_world(
        network,
        NODES,
        &[(ICMP, None), (TCP, Some((22, 22))), published],
        &[
            ("tcp", Some(2375)),
            ("tcp", Some(7946)),
            ("udp", Some(4789)),
        ],
    );
}

#[test]
fn swarm_mode_with_three_managers_behind_a_monitored_load_balancer() {
    let network = network(&request("swarm-mode", 3));
    assert_eq!(network.ports(MANAGERS).len(), 3);
    assert_cluster_traffic(&network, 2375);
    // No flannel in swarm mode: no address pairs.
    assert_address_pairs(&network, MANAGERS, None);
    assert_address_pairs(&network, NODES, None);
    assert_monitored_pool(&network, MANAGERS, 3, "TCP");
}

#[test]
fn standalone_swarm_with_flannel_and_three_managers() {
    let mut req = request("swarm", 3);
    req.template.network_driver = Some("flannel".into());
    req.template
        .labels
        .insert("flannel_network_cidr".into(), "10.50.0.0/16".into());
    let network = network(&req);
    assert_cluster_traffic(&network, 2376);
    // Containers' flannel addresses leave every node's port.
    assert_address_pairs(&network, MANAGERS, Some("10.50.0.0/16"));
    assert_address_pairs(&network, NODES, Some("10.50.0.0/16"));
    assert_monitored_pool(&network, MANAGERS, 3, "TCP");
}

#[test]
fn standalone_swarm_on_dockers_network_has_no_address_pairs_and_no_monitor_without_a_load_balancer()
{
    let network = network(&request("swarm", 1));
    assert_cluster_traffic(&network, 2376);
    assert_address_pairs(&network, NODES, None);
    assert!(network.made("OS::Octavia::HealthMonitor", "").is_empty());
}
