//! The network `k8s_fedora_atomic_v1`'s plans make, evaluated by magnum-hot
//! (the local cloud's evaluator): which traffic the security groups admit
//! between masters, workers and the world, the pod network's address pairs
//! on every node port, the API load balancer's health monitor, and an extra
//! nodegroup joining the cluster's network by id.

use magnum_driver_testkit as support;

use magnum_driver_k8s_fedora_atomic::K8sFedoraAtomicDriver;
use magnum_driver_sdk::{
    helpers::CLUSTER_STACK_OUTPUTS,
    serde_json::{Map, Value},
    Cluster, ClusterRequest, ClusterTemplate, CoeDriver, DriverConfig, NodeGroupRequest,
};
use support::cloud::{
    assert_address_pairs, assert_monitored_pool, assert_open_to_world, assert_reaches, create,
    Cloud, Evaluation, Network,
};
use support::{default_nodegroups, lint, nodegroup};

const MASTERS: &str = "kube_master_ports";
const WORKERS: &str = "kube_minions";
const EXTRA: &str = "bbbbbbbb-0000-0000-0000-000000000003";

const ICMP: Option<u8> = Some(1);
const TCP: Option<u8> = Some(6);

fn driver() -> K8sFedoraAtomicDriver {
    K8sFedoraAtomicDriver::new(&DriverConfig::new()).unwrap()
}

fn request(masters: i64) -> ClusterRequest {
    let mut nodegroups = default_nodegroups(2);
    nodegroups[0].node_count = masters;
    ClusterRequest {
        template: ClusterTemplate {
            uuid: "0b5e6a2c-1111-4a4a-9d9d-222233334444".into(),
            name: "k8s-atomic".into(),
            coe: "kubernetes".into(),
            server_type: "vm".into(),
            cluster_distro: "fedora-atomic".into(),
            image_id: "fedora-atomic-27".into(),
            external_network_id: Some("public".into()),
            floating_ip_enabled: true,
            master_lb_enabled: masters > 1,
            ..Default::default()
        },
        cluster: Cluster {
            uuid: "3f2a9c1e-77aa-4b0e-9d1f-0123456789ab".into(),
            name: "prod".into(),
            project_id: "p-1".into(),
            master_count: masters,
            node_count: 2,
            ..Default::default()
        },
        nodegroups,
        ..Default::default()
    }
}

/// The cluster stack `req` creates, made in `cloud`.
fn cluster(cloud: &mut Cloud, req: &ClusterRequest) -> Evaluation {
    let plan = driver().create_cluster(req).unwrap();
    lint(&plan);
    create(cloud, &plan.operations[0])
}

/// What every Kubernetes node needs from the others (whatever the
/// network driver): etcd's clients and peers, the kubelet, flannel's VXLAN,
/// Calico's BGP, and ping.
const NODE_TRAFFIC: &[(&str, Option<u16>)] = &[
    ("tcp", Some(2379)),
    ("tcp", Some(2380)),
    ("tcp", Some(10250)),
    ("udp", Some(8472)),
    ("tcp", Some(179)),
    ("icmp", None),
];

#[test]
fn three_masters_behind_a_monitored_load_balancer_talk_to_each_other_and_the_workers() {
    let mut cloud = Cloud::default();
    let mut req = request(3);
    req.cluster
        .labels
        .insert("flannel_network_cidr".into(), "10.200.0.0/16".into());
    let stack = cluster(&mut cloud, &req);
    let network = Network::of(&cloud, &[&stack]);
    assert_eq!(network.ports(MASTERS).len(), 3);
    assert_eq!(network.ports(WORKERS).len(), 2);

    // Masters among themselves (etcd's quorum, the kubelets on 10250),
    // workers and masters both ways, workers among themselves.
    for (from, to) in [
        (MASTERS, MASTERS),
        (MASTERS, WORKERS),
        (WORKERS, MASTERS),
        (WORKERS, WORKERS),
    ] {
        assert_reaches(&network, from, to, NODE_TRAFFIC);
    }
    assert_reaches(&network, WORKERS, MASTERS, &[("tcp", Some(6443))]);

    // From anywhere: ssh, the API and the NodePorts; not etcd, not the
    // kubelet, not flannel.
    let closed = &[
        ("tcp", Some(2379)),
        ("tcp", Some(10250)),
        ("udp", Some(8472)),
        ("4", None),
        ("tcp", Some(8080)),
    ];
    assert_open_to_world(
        &network,
        MASTERS,
        &[
            (ICMP, None),
            (TCP, Some((22, 22))),
            (TCP, Some((6443, 6443))),
            (TCP, Some((30000, 32767))),
        ],
        closed,
    );
    assert_open_to_world(
        &network,
        WORKERS,
        &[
            (ICMP, None),
            (TCP, Some((22, 22))),
            (TCP, Some((30000, 32767))),
        ],
        &[("tcp", Some(6443)), ("tcp", Some(10250)), ("udp", Some(53))],
    );

    // flannel's network is the pods' source address on every node port.
    assert_address_pairs(&network, MASTERS, Some("10.200.0.0/16"));
    assert_address_pairs(&network, WORKERS, Some("10.200.0.0/16"));

    assert_monitored_pool(&network, MASTERS, 3, "TCP");
}

#[test]
fn calico_pods_cross_nodes_in_ip_in_ip_from_their_pool() {
    let mut cloud = Cloud::default();
    let mut req = request(1);
    req.template.network_driver = Some("calico".into());
    req.template
        .labels
        .insert("calico_ipv4pool".into(), "192.168.0.0/16".into());
    req.template
        .labels
        .insert("calico_ipv4pool_ipip".into(), "Always".into());
    let stack = cluster(&mut cloud, &req);
    let network = Network::of(&cloud, &[&stack]);
    for (from, to) in [
        (MASTERS, MASTERS),
        (MASTERS, WORKERS),
        (WORKERS, MASTERS),
        (WORKERS, WORKERS),
    ] {
        assert_reaches(&network, from, to, &[("4", None), ("tcp", Some(179))]);
    }
    assert_address_pairs(&network, MASTERS, Some("192.168.0.0/16"));
    assert_address_pairs(&network, WORKERS, Some("192.168.0.0/16"));
    // One master: no load balancer, no monitor.
    assert!(network.made("OS::Octavia::HealthMonitor", "").is_empty());
}

#[test]
fn without_tls_the_insecure_api_port_is_the_one_workers_and_users_reach() {
    let mut cloud = Cloud::default();
    let mut req = request(1);
    req.template.tls_disabled = true;
    let stack = cluster(&mut cloud, &req);
    let network = Network::of(&cloud, &[&stack]);
    assert_reaches(&network, WORKERS, MASTERS, &[("tcp", Some(8080))]);
    assert_open_to_world(
        &network,
        MASTERS,
        &[
            (ICMP, None),
            (TCP, Some((22, 22))),
            (TCP, Some((8080, 8080))),
            (TCP, Some((30000, 32767))),
        ],
        &[("tcp", Some(6443)), ("tcp", Some(2379))],
    );
}

#[test]
fn an_extra_nodegroup_joins_the_clusters_network_subnet_and_security_group_by_id() {
    let mut cloud = Cloud::default();
    let base = request(1);
    let stack = cluster(&mut cloud, &base);

    // What the host gives a nodegroup create: the cluster stack's outputs.
    let mut ng_base = base.clone();
    ng_base.cluster.api_address = Some("https://172.24.4.10:6443".into());
    ng_base.context.extra.insert(
        CLUSTER_STACK_OUTPUTS.into(),
        Value::Object(stack.outputs.clone()),
    );
    let req = NodeGroupRequest {
        base: ng_base,
        nodegroup: nodegroup(EXTRA, "gpu", "worker", false, 2),
    };
    let plan = driver().create_nodegroup(&req).unwrap();
    lint(&plan);
    let operation = &plan.operations[0];
    // A stack of its own (its name differs from the cluster stack's).
    assert_ne!(operation.stack_name, "");
    let ng_stack = create(&mut cloud, operation);
    let network = Network::of(&cloud, &[&stack, &ng_stack]);

    let net = network.made("OS::Neutron::Net", "network.");
    let subnet = network.made("OS::Neutron::Subnet", "network.");
    let minion_group = network.made("OS::Neutron::SecurityGroup", "secgroup_kube_minion");
    let ([net], [subnet], [minion_group]) = (&net[..], &subnet[..], &minion_group[..]) else {
        panic!("one network, subnet and worker group expected");
    };
    // The nodegroup's ports are the only ones its stack made.
    let ng_ports: Vec<_> = network
        .ports
        .iter()
        .filter(|p| {
            ng_stack
                .resources
                .primitives()
                .iter()
                .any(|(_, s)| s.ref_id == p.id)
        })
        .collect();
    assert_eq!(ng_ports.len(), 2);
    for port in &ng_ports {
        assert_eq!(port.network, net.id.as_str(), "{}", port.path);
        assert_eq!(port.subnet, subnet.id.as_str(), "{}", port.path);
        assert_eq!(
            port.security_groups,
            std::slice::from_ref(&minion_group.id),
            "{}",
            port.path
        );
        assert_eq!(port.address_pairs, ["10.100.0.0/16"], "{}", port.path);
    }
    // Its nodes talk with the masters and the default workers as those do.
    let master = network.ports(MASTERS)[0];
    let worker = network
        .ports(WORKERS)
        .into_iter()
        .find(|p| !ng_ports.iter().any(|n| n.id == p.id))
        .unwrap();
    for node in &ng_ports {
        for (from, to) in [
            (*node, master),
            (master, *node),
            (*node, worker),
            (worker, *node),
        ] {
            for &(protocol, port) in NODE_TRAFFIC {
                assert!(
                    network.admits(from, to, protocol, port),
                    "{} → {}",
                    from.path,
                    to.path
                );
            }
        }
    }

    // Without the outputs (a cluster stack older than them), the group
    // joins by the names the cluster stack gave.
    let mut legacy = req.clone();
    legacy.base.context.extra = Map::new();
    let plan = driver().create_nodegroup(&legacy).unwrap();
    let p = &plan.operations[0].parameters;
    assert_eq!(p["existing_security_group"], "prod-3f2a9c1e77aa-minion");
}
