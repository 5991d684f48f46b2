//! The `local` cloud's addresses, through the conductor and the bundled
//! drivers: everything it hands out lies in 127.0.0.0/8 (a client that
//! follows a simulated address never leaves the machine), and a full
//! floating pool fails the cluster with Neutron's reason.

use std::net::Ipv4Addr;

use axum::http::StatusCode;
use diesel::{QueryDsl, RunQueryDsl};
use magnum_host::{
    db::{schema::local_stack, DbConnection},
    orchestrator::local::{LocalCloud, LocalCloudConfig},
};
use serde_json::{json, Value};

use crate::api::TestApp;
use crate::conductor::{conductor_test, fast_cloud, wait_for};

/// Keys under which the local cloud records an address or CIDR it made.
const ADDRESS_KEYS: [&str; 8] = [
    "floating_ip_address",
    "fixed_ip_address",
    "ip_address",
    "vip_address",
    "first_address",
    "gateway_ip",
    "addr",
    "cidr",
];

fn on_loopback(text: &str) -> bool {
    let address = text.split('/').next().unwrap_or_default();
    address
        .parse::<Ipv4Addr>()
        .is_ok_and(|a| a.octets()[0] == 127)
}

/// The host of `tcp://H:P`, `https://H:P` or a bare `H`.
fn host_of(address: &str) -> &str {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    rest.rsplit_once(':').map_or(rest, |(h, _)| h)
}

/// Every address recorded under [`ADDRESS_KEYS`] or in a server's
/// `networks`, anywhere in `value`.
fn addresses_in(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    (key, Value::String(s)) if ADDRESS_KEYS.contains(&key) && !s.is_empty() => {
                        found.push(s.clone())
                    }
                    ("networks", Value::Object(nets)) => found.extend(
                        nets.values()
                            .filter_map(Value::as_array)
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(str::to_owned),
                    ),
                    _ => addresses_in(v, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| addresses_in(v, found)),
        _ => {}
    }
}

fn stack_addresses(app: &TestApp) -> Vec<String> {
    let conn: &mut DbConnection = &mut app.db.conn();
    let rows: Vec<(String, String)> = local_stack::table
        .select((local_stack::id, local_stack::outputs))
        .load(conn)
        .expect("local stacks");
    let mut found = Vec::new();
    for (id, outputs) in rows {
        let state = LocalCloud::default()
            .stored_state(conn, &id)
            .expect("a stored state");
        for text in [state, outputs] {
            let value: Value = serde_json::from_str(&text).expect("JSON");
            addresses_in(&value, &mut found);
        }
    }
    found
}

conductor_test!(
    every_address_of_the_local_cloud_is_on_loopback,
    fast_cloud(),
    |app: &TestApp| {
        let k8s = json!({"name": "k8s", "coe": "kubernetes", "image_id": "fedora-atomic-latest", "external_network_id": "public", "flavor_id": "m1.small", "master_lb_enabled": true});
        let private = json!({"name": "k8s-private", "coe": "kubernetes", "image_id": "fedora-atomic-latest", "external_network_id": "public", "flavor_id": "m1.small", "floating_ip_enabled": false});
        let mut templates = vec![k8s, private];
        for (name, coe, image) in [
            ("swarm", "swarm", "fedora-atomic-latest"),
            ("swarm-mode", "swarm-mode", "fedora-atomic-latest"),
            ("mesos", "mesos", "ubuntu-mesos"),
        ] {
            templates.push(json!({"name": name, "coe": coe, "image_id": image, "external_network_id": "public", "flavor_id": "m1.small"}));
        }
        for template in templates {
            let name = template["name"].as_str().unwrap_or_default().to_owned();
            let r = app.post("/v1/clustertemplates", template);
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            let c = app.cluster(
                &format!("{name}c").replace('-', "x"),
                &name,
                json!({"node_count": 2}),
            );
            let path = format!("/v1/clusters/{}", c["uuid"].as_str().unwrap_or_default());
            let done = wait_for(app, &path, |b| b["status"] != "CREATE_IN_PROGRESS");
            assert_eq!(done["status"], "CREATE_COMPLETE", "{name}: {done}");
            let api = done["api_address"].as_str().unwrap_or_default();
            assert!(on_loopback(host_of(api)), "{name}: api_address {api}");
            for key in ["node_addresses", "master_addresses"] {
                let list = done[key].as_array().cloned().unwrap_or_default();
                assert!(!list.is_empty(), "{name}: {key}: {done}");
                for a in list {
                    let a = a.as_str().unwrap_or_default();
                    assert!(on_loopback(a), "{name}: {key} {a}");
                }
            }
        }
        let all = stack_addresses(app);
        assert!(all.len() > 20, "the walk finds the addresses: {all:?}");
        let off: Vec<&String> = all.iter().filter(|a| !on_loopback(a)).collect();
        assert!(off.is_empty(), "addresses off loopback: {off:?}");
    }
);

conductor_test!(
    a_full_floating_pool_fails_the_cluster_with_neutrons_reason,
    LocalCloudConfig {
        // Hosts .2 to .6: five addresses for a master and five workers.
        floating_ip_cidr: "127.24.0.0/29".to_owned(),
        ..fast_cloud()
    },
    |app: &TestApp| {
        app.k8s_template("k8s");
        let c = app.cluster("c1", "k8s", json!({"node_count": 5}));
        let path = format!("/v1/clusters/{}", c["uuid"].as_str().unwrap_or_default());
        let failed = wait_for(app, &path, |b| b["status"] != "CREATE_IN_PROGRESS");
        assert_eq!(failed["status"], "CREATE_FAILED", "{failed}");
        let reason = failed["status_reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("No more IP addresses available on network"),
            "{reason}"
        );
        // Deleting it gives the addresses back: a smaller cluster fits.
        assert_eq!(app.delete(&path).status, StatusCode::NO_CONTENT);
        wait_for(app, &path, |b| b["errors"][0]["status"] == 404);
        let c = app.cluster("c2", "k8s", json!({"node_count": 4}));
        let path = format!("/v1/clusters/{}", c["uuid"].as_str().unwrap_or_default());
        let done = wait_for(app, &path, |b| b["status"] != "CREATE_IN_PROGRESS");
        assert_eq!(done["status"], "CREATE_COMPLETE", "{done}");
    }
);
