//! The cluster network in the local cloud, end to end: an extra k8s
//! nodegroup's stack joins the cluster stack's network, subnet and worker
//! security group by their ids, which the conductor reads from the cluster
//! stack's outputs.

use axum::http::StatusCode;
use magnum_host::orchestrator::local::LocalCloud;
use serde_json::{json, Value};

use crate::{
    api::TestApp,
    conductor::{conductor_test, fast_cloud, wait_for},
};

/// `(path, type, id, attributes)` of every primitive of the stack `id`.
fn resources(app: &TestApp, id: &str) -> Vec<(String, String, String, Value)> {
    let conn: &mut magnum_host::db::DbConnection = &mut app.db.conn();
    LocalCloud::new(fast_cloud())
        .resources(conn, id, magnum_host::db::models::now())
        .expect("resources")
        .into_iter()
        .map(|(path, r)| (path, r.type_name, r.ref_id, Value::Object(r.attributes)))
        .collect()
}

fn id_of<'a>(all: &'a [(String, String, String, Value)], path: &str) -> &'a str {
    all.iter()
        .find(|(p, ..)| p == path)
        .map(|(_, _, id, _)| id.as_str())
        .unwrap_or_else(|| {
            panic!(
                "no {path} among {:?}",
                all.iter().map(|r| &r.0).collect::<Vec<_>>()
            )
        })
}

conductor_test!(
    an_extra_nodegroup_joins_the_cluster_network_by_id,
    fast_cloud(),
    |app: &TestApp| {
        app.k8s_template("k8s");
        let c = app.cluster("c1", "k8s", json!({"node_count": 1}));
        let path = format!("/v1/clusters/{}", c["uuid"].as_str().unwrap());
        let done = wait_for(app, &path, |b| b["status"] != "CREATE_IN_PROGRESS");
        assert_eq!(done["status"], "CREATE_COMPLETE", "{done}");
        let r = app.post(
            &format!("{path}/nodegroups"),
            json!({"name": "ng", "node_count": 2}),
        );
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let ng_path = format!("{path}/nodegroups/ng");
        let ng = wait_for(app, &ng_path, |b| b["status"] != "CREATE_IN_PROGRESS");
        assert_eq!(ng["status"], "CREATE_COMPLETE", "{ng}");

        let cluster = resources(app, done["cluster_id"].as_str().expect("stack"));
        let net = id_of(&cluster, "network.private_network");
        let subnet = id_of(&cluster, "network.private_subnet");
        let minions = id_of(&cluster, "secgroup_kube_minion");
        // The cloud made the rules between the groups (the drivers' tests
        // check what they admit).
        for pair in [
            "master_from_master",
            "master_from_minion",
            "minion_from_master",
            "minion_from_minion",
        ] {
            for protocol in ["tcp", "udp", "icmp", "ipip"] {
                id_of(&cluster, &format!("secgroup_{pair}.{protocol}"));
            }
        }

        let ng_stack = resources(app, ng["stack_id"].as_str().expect("nodegroup stack"));
        let ports: Vec<&Value> = ng_stack
            .iter()
            .filter(|(_, t, ..)| t == "OS::Neutron::Port")
            .map(|(.., a)| a)
            .collect();
        assert_eq!(ports.len(), 2);
        for port in ports {
            assert_eq!(port["network_id"], net, "{port}");
            assert_eq!(port["fixed_ips"][0]["subnet_id"], subnet, "{port}");
            assert_eq!(port["security_groups"], json!([minions]), "{port}");
        }
    }
);
