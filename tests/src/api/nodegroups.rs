//! `/v1/clusters/{cluster}/nodegroups`.

use super::*;

api_test!(nodegroup_lifecycle_and_rules, |app: &TestApp| {
    app.k8s_template("k8s");
    let c = app.cluster(
        "c1",
        "k8s",
        json!({"labels": {"kube_tag": "v1.27.3", "cgroup_driver": "systemd"}}),
    );
    let base = format!("/v1/clusters/{}/nodegroups", c["uuid"].as_str().unwrap());
    let r = app.call_as(
        Method::GET,
        &base,
        None,
        &[("openstack-api-version", "container-infra 1.8")],
    );
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "nodegroups need 1.9");
    let list = app.get(&base).body;
    snap!("nodegroup_list", &list);
    assert_eq!(
        app.get(&format!("{base}?role=master")).body["nodegroups"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Created while the cluster is still being created (upstream would 409 for want of an api_address).
    let r = app.post(&base, json!({"name": "gpu", "node_count": 0, "labels": {"availability_zone": "az2"}, "merge_labels": true,
        "node_labels": {"node.kubernetes.io/pool": "gpu"}, "node_taints": [{"key": "gpu", "value": "true", "effect": "NoSchedule"}],
        "min_node_count": 0, "max_node_count": 5, "flavor_id": "m1.large"}));
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    snap!("nodegroup_create", &r.body);
    let g = app.get(&format!("{base}/gpu")).body;
    assert_eq!(
        g["labels"],
        json!({"kube_tag": "v1.27.3", "cgroup_driver": "systemd", "availability_zone": "az2"})
    );
    assert_eq!(g["labels_added"], json!({"availability_zone": "az2"}));
    assert_eq!(g["flavor_id"], "m1.large");
    assert_eq!(g["image_id"], "fedora-atomic-latest");

    let errors: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"name": "gpu"}),
            StatusCode::CONFLICT,
            "already exists",
        ),
        (
            json!({"name": "m", "role": "master"}),
            StatusCode::BAD_REQUEST,
            "Creating master nodegroups is currently not supported.",
        ),
        (
            json!({"name": "b", "node_count": 1, "min_node_count": 2}),
            StatusCode::BAD_REQUEST,
            "min_node_count (2) should be less or equal to node_count (1).",
        ),
        (
            json!({"name": "b", "node_count": 4, "max_node_count": 3}),
            StatusCode::BAD_REQUEST,
            "should be less or equal to max_node_count",
        ),
        (
            json!({"name": "b", "node_labels": {"kubernetes.io/role": "x"}}),
            StatusCode::BAD_REQUEST,
            "Kubernetes namespace",
        ),
        (
            // Would break kubelet's --node-labels k=v,k=v flag.
            json!({"name": "b", "node_labels": {"pool": "a,b=c"}}),
            StatusCode::BAD_REQUEST,
            "Node label pool: the value",
        ),
        (
            json!({"name": "b", "node_taints": [{"key": "k", "effect": "Always"}]}),
            StatusCode::BAD_REQUEST,
            "should be one of: NoSchedule, PreferNoSchedule, NoExecute",
        ),
        (
            json!({"name": "b", "flavor_id": "nope"}),
            StatusCode::BAD_REQUEST,
            "Flavor nope could not be found.",
        ),
        (
            json!({"node_count": 1}),
            StatusCode::BAD_REQUEST,
            "Mandatory field missing: name",
        ),
        (
            json!({"name": "b", "status": "x"}),
            StatusCode::BAD_REQUEST,
            "Unknown attribute",
        ),
    ];
    let groups_before = app.get(&base).body["nodegroups"].clone();
    for (body, status, needle) in errors {
        let r = app.post(&base, body.clone());
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.detail().contains(needle), "{body}: {}", r.detail());
    }
    // A refusal (the driver's included, judged after the insert) leaves
    // nothing behind.
    assert_eq!(app.get(&base).body["nodegroups"], groups_before);
    let r = app.call_as(
        Method::POST,
        &base,
        Some(json!({"name": "z", "node_count": 0})),
        &[("openstack-api-version", "container-infra 1.9")],
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "0 nodes need 1.10");

    let r = app.patch(
        &format!("{base}/gpu"),
        json!([{"op": "replace", "path": "/max_node_count", "value": 10}]),
    );
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["max_node_count"], 10);
    let r = app.patch(
        &format!("{base}/gpu"),
        json!([{"op": "replace", "path": "/node_count", "value": 3}]),
    );
    assert_eq!(
        r.detail(),
        "'/node_count' is an internal attribute and can not be updated"
    );
    let r = app.patch(
        &format!("{base}/gpu"),
        json!([{"op": "replace", "path": "/min_node_count", "value": 20}]),
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    assert_eq!(
        app.delete(&format!("{base}/default-worker")).detail(),
        "Deleting a default nodegroup is not supported."
    );
    assert_eq!(
        app.delete(&format!("{base}/gpu")).status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("{base}/gpu")).body["status"],
        "DELETE_IN_PROGRESS"
    );
    assert_eq!(
        app.get(&format!("{base}/nope")).status,
        StatusCode::NOT_FOUND
    );
});

api_test!(
    drivers_without_nodegroups_refuse_up_front,
    |app: &TestApp| {
        app.post("/v1/clustertemplates", json!({"name": "swarm", "coe": "swarm-mode", "image_id": "fedora-atomic-latest", "external_network_id": "public"}));
        let c = app.cluster("s1", "swarm", json!({}));
        let r = app.post(
            &format!("/v1/clusters/{}/nodegroups", c["uuid"].as_str().unwrap()),
            json!({"name": "extra"}),
        );
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            r.detail(),
            "Nodegroups are not supported by driver swarm_fedora_atomic_v1."
        );
        assert_eq!(app.count("nodegroup"), 2);
    }
);
