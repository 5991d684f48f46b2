//! `/v1/clusters` and its actions.

use super::*;

api_test!(
    create_is_visible_at_once_with_its_nodegroups,
    |app: &TestApp| {
        let t = app.k8s_template("k8s");
        let r = app.post("/v1/clusters", json!({"name": "c1", "cluster_template_id": "k8s", "node_count": 2, "master_count": 1, "keypair": "default"}));
        assert_eq!(r.status, StatusCode::ACCEPTED);
        let uuid = r.body["uuid"].as_str().unwrap().to_owned();
        assert_eq!(r.body, json!({"uuid": uuid}));
        // Better than upstream: the row exists when the 202 returns.
        let c = app.get(&format!("/v1/clusters/{uuid}")).body;
        assert_eq!(c["status"], "CREATE_IN_PROGRESS");
        assert_eq!(c["cluster_template_id"], t["uuid"]);
        assert_eq!(c["node_count"], 2);
        assert_eq!(c["master_count"], 1);
        assert_eq!(c["flavor_id"], "m1.small", "inherited from the template");
        assert_eq!(c["master_flavor_id"], "m1.medium");
        assert_eq!(c["create_timeout"], 60);
        assert_eq!(c["labels"], t["labels"]);
        assert!(
            c.get("cluster_id").is_some() && c.get("stack_id").is_none(),
            "1.13+ shows cluster_id"
        );
        snap!("cluster_get", &c);
        let old = app
            .call_as(
                Method::GET,
                &format!("/v1/clusters/{uuid}"),
                None,
                &[("openstack-api-version", "container-infra 1.12")],
            )
            .body;
        assert!(
            old.get("stack_id").is_some() && old.get("cluster_id").is_none(),
            "below 1.13 shows stack_id"
        );
        assert_eq!(app.count("nodegroup"), 2);
        assert_eq!(app.count("jobs"), 1, "one create job for the conductor");
        let list = app.get("/v1/clusters").body;
        snap!("cluster_list", &list);
        let detail = app.get("/v1/clusters/detail").body;
        assert_eq!(detail["clusters"][0]["labels_added"], json!({}));
        assert_eq!(app.get("/v1/clusters/c1").body["uuid"], uuid.as_str());
    }
);

api_test!(labels_inherit_and_merge, |app: &TestApp| {
    app.k8s_template("k8s");
    let own = app.cluster(
        "own",
        "k8s",
        json!({"labels": {"kube_tag": "v1.28.0", "availability_zone": "az1"}}),
    );
    assert_eq!(
        own["labels"],
        json!({"kube_tag": "v1.28.0", "availability_zone": "az1"}),
        "given labels replace the template's"
    );
    assert_eq!(
        own["labels_overridden"],
        json!({"kube_tag": "v1.27.3"}),
        "overridden shows the parent's value"
    );
    assert_eq!(own["labels_added"], json!({"availability_zone": "az1"}));
    assert_eq!(own["labels_skipped"], json!({"flannel_backend": "vxlan"}));
    let merged = app.cluster(
        "merged",
        "k8s",
        json!({"labels": {"availability_zone": "az1"}, "merge_labels": true}),
    );
    assert_eq!(
        merged["labels"],
        json!({"kube_tag": "v1.27.3", "flannel_backend": "vxlan", "availability_zone": "az1"})
    );
    assert_eq!(merged["labels_skipped"], json!({}));
});

api_test!(create_errors_change_nothing, |app: &TestApp| {
    app.k8s_template("k8s");
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (json!({"cluster_template_id": "k8s", "master_count": 0}), StatusCode::BAD_REQUEST, "Invalid input for field/attribute master_count. Value: '0'. Value should be greater or equal to 1"),
        (json!({"cluster_template_id": "k8s", "node_count": -1}), StatusCode::BAD_REQUEST, "node_count"),
        (json!({"cluster_template_id": "k8s", "node_count": "many"}), StatusCode::BAD_REQUEST, "Value should be an integer"),
        (json!({"cluster_template_id": "k8s", "master_count": 3}), StatusCode::BAD_REQUEST, "master_count must be 1 when master_lb_enabled is False"),
        (json!({"cluster_template_id": "k8s", "keypair": "nope"}), StatusCode::NOT_FOUND, "Unable to find keypair nope."),
        (json!({"cluster_template_id": "k8s", "flavor_id": "nope"}), StatusCode::BAD_REQUEST, "Flavor nope could not be found."),
        (json!({"cluster_template_id": "k8s", "name": "1bad name"}), StatusCode::BAD_REQUEST, "^[a-zA-Z][a-zA-Z0-9_.-]*$"),
        (json!({"cluster_template_id": "nope"}), StatusCode::NOT_FOUND, "ClusterTemplate nope could not be found."),
        (json!({"name": "x"}), StatusCode::BAD_REQUEST, "Mandatory field missing: cluster_template_id"),
        (json!({"cluster_template_id": "k8s", "stack_id": "x"}), StatusCode::BAD_REQUEST, "Unknown attribute for argument cluster: stack_id"),
        (json!({"cluster_template_id": "k8s", "labels": {"kube_tag": "latest"}}), StatusCode::BAD_REQUEST, "kube_tag"),
        (json!({"cluster_template_id": "k8s", "master_lb_enabled": true, "master_count": 2}), StatusCode::BAD_REQUEST, "master_count must be an odd number"),
    ];
    for (body, status, needle) in cases {
        let r = app.post("/v1/clusters", body.clone());
        assert_eq!(r.status, status, "{body} -> {}", r.body);
        assert!(
            r.detail().contains(needle),
            "{body}: '{}' lacks '{needle}'",
            r.detail()
        );
    }
    // Upstream quirks kept for the clients: a missing template is a 400 below 1.10, 0 nodes too.
    let r = app.call_as(
        Method::POST,
        "/v1/clusters",
        Some(json!({"cluster_template_id": "nope"})),
        &[("openstack-api-version", "container-infra 1.9")],
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.call_as(
        Method::POST,
        "/v1/clusters",
        Some(json!({"cluster_template_id": "k8s", "node_count": 0})),
        &[("openstack-api-version", "container-infra 1.9")],
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.count("cluster") + app.count("nodegroup") + app.count("jobs"),
        0,
        "no error wrote a row"
    );
});

api_test!(quota_is_enforced_atomically, |app: &TestApp| {
    app.k8s_template("k8s");
    assert_eq!(
        app.post(
            "/v1/quotas",
            json!({"project_id": "admin", "resource": "Cluster", "hard_limit": 3})
        )
        .status,
        StatusCode::CREATED
    );
    // Eight concurrent creates against a limit of three.
    let router = app_router(app);
    let results: Vec<StatusCode> = app_rt_block(app, async move {
        let mut tasks = Vec::new();
        for i in 0..8 {
            let router = router.clone();
            tasks.push(tokio::spawn(async move {
                let req = Request::post("/v1/clusters")
                    .header("content-type", "application/json")
                    .body(Body::from(
                        json!({"name": format!("c{i}"), "cluster_template_id": "k8s"}).to_string(),
                    ))
                    .unwrap();
                router.oneshot(req).await.unwrap().status()
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert_eq!(
        results
            .iter()
            .filter(|s| **s == StatusCode::ACCEPTED)
            .count(),
        3,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|s| *s == StatusCode::ACCEPTED || *s == StatusCode::FORBIDDEN),
        "{results:?}"
    );
    assert_eq!(app.count("cluster"), 3);
    let r = app.post("/v1/clusters", json!({"cluster_template_id": "k8s"}));
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.detail(), "Resource limit exceeded: You have reached the maximum clusters per project, 3. You may delete a cluster to make room for a new one.");
    assert_eq!(
        app.count("nodegroup"),
        6,
        "the refused creates left no nodegroups"
    );
});

fn app_router(app: &TestApp) -> Router {
    app.router.clone()
}

fn app_rt_block<F: std::future::Future>(app: &TestApp, f: F) -> F::Output {
    app.rt.block_on(f)
}

api_test!(update_resize_and_their_preconditions, |app: &TestApp| {
    app.k8s_template("k8s");
    let c = app.cluster("c1", "k8s", json!({}));
    let uuid = c["uuid"].as_str().unwrap().to_owned();
    let path = format!("/v1/clusters/{uuid}");
    let r = app.patch(
        &path,
        json!([{"op": "replace", "path": "/node_count", "value": 3}]),
    );
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "better than upstream: refused up front"
    );
    assert_eq!(
        r.detail(),
        "Updating a cluster when status is CREATE_IN_PROGRESS is not supported."
    );
    let r = app.post(&format!("{path}/actions/resize"), json!({"node_count": 3}));
    assert_eq!(r.status, StatusCode::CONFLICT);
    app.complete(&uuid);
    let r = app.patch(
        &path,
        json!([{"op": "replace", "path": "/name", "value": "x"}]),
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.detail(), "cannot change cluster property(ies) name.");
    let r = app.patch(
        &path,
        json!([{"op": "replace", "path": "/api_address", "value": "x"}]),
    );
    assert_eq!(
        r.detail(),
        "'/api_address' is an internal attribute and can not be updated"
    );
    let r = app.patch(
        &path,
        json!([{"op": "replace", "path": "/node_count", "value": 3}]),
    );
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let after = app.get(&path).body;
    assert_eq!(after["status"], "UPDATE_IN_PROGRESS");
    assert_eq!(after["node_count"], 3);
    // Resize retries are allowed while an update runs (upstream, for autoscalers).
    let resize = format!("{path}/actions/resize");
    let r = app.post(
        &resize,
        json!({"node_count": 1, "nodes_to_remove": ["node-1"]}),
    );
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(app.get(&path).body["node_count"], 1);
    assert_eq!(
        app.post(
            &resize,
            json!({"node_count": 1, "nodegroup": "default-master"})
        )
        .detail(),
        "Resizing the master nodegroup is not supported by this driver."
    );
    assert_eq!(
        app.post(&resize, json!({"node_count": 1, "nodegroup": "nope"}))
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post(&resize, json!({})).detail(),
        "Mandatory field missing: node_count"
    );
    assert_eq!(
        app.post(
            &resize,
            json!({"node_count": 2, "nodes_to_remove": "node-1"})
        )
        .status,
        StatusCode::BAD_REQUEST
    );
    let r = app.call_as(
        Method::POST,
        &resize,
        Some(json!({"node_count": 2})),
        &[("openstack-api-version", "container-infra 1.6")],
    );
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    // Health may be set by its owner without a driver call.
    app.sql(&format!(
        "UPDATE cluster SET status = 'UPDATE_COMPLETE' WHERE uuid = '{uuid}'"
    ));
    let r = app.patch(&path, json!([{"op": "replace", "path": "/health_status", "value": "HEALTHY"}, {"op": "replace", "path": "/health_status_reason", "value": {"api": "ok"}}]));
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let after = app.get(&path).body;
    assert_eq!(after["health_status"], "HEALTHY");
    assert_eq!(after["health_status_reason"], json!({"api": "ok"}));
    assert_eq!(after["status"], "UPDATE_COMPLETE");
    let r = app.patch(
        &path,
        json!([{"op": "replace", "path": "/health_status", "value": "GREAT"}]),
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
});

api_test!(upgrade_follows_the_driver, |app: &TestApp| {
    app.k8s_template("k8s");
    let mut newer = template_body("k8s-new", "kubernetes", "fedora-atomic-latest");
    newer["labels"]["kube_tag"] = json!("v1.27.9");
    app.post("/v1/clustertemplates", newer);
    // A minor release past the masters' (which are not upgraded): workers
    // would run a kubelet newer than their API server.
    let mut skewed = template_body("k8s-skew", "kubernetes", "fedora-atomic-latest");
    skewed["labels"]["kube_tag"] = json!("v1.28.2");
    app.post("/v1/clustertemplates", skewed);
    let mut older = template_body("k8s-old", "kubernetes", "fedora-atomic-latest");
    older["labels"]["kube_tag"] = json!("v1.26.0");
    app.post("/v1/clustertemplates", older);
    let c = app.cluster("c1", "k8s", json!({}));
    let uuid = c["uuid"].as_str().unwrap().to_owned();
    app.complete(&uuid);
    let up = format!("/v1/clusters/{uuid}/actions/upgrade");
    let r = app.call_as(
        Method::POST,
        &up,
        Some(json!({"cluster_template": "k8s-new"})),
        &[("openstack-api-version", "container-infra 1.7")],
    );
    assert_eq!(
        r.detail(),
        "Cluster upgrade is not supported in the provided microversion"
    );
    let r = app.post(&up, json!({"cluster_template": "k8s-old"}));
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "never backwards: {}",
        r.body
    );
    assert_eq!(
        app.get(&format!("/v1/clusters/{uuid}")).body["status"],
        "CREATE_COMPLETE",
        "the refused upgrade changed nothing"
    );
    let before = app.get(&format!("/v1/clusters/{uuid}")).body;
    let r = app.post(&up, json!({"cluster_template": "k8s-skew"}));
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let detail = r.detail();
    assert!(
        detail.contains("the masters run v1.27.3") && detail.contains("version skew policy"),
        "{detail}"
    );
    assert_eq!(
        app.get(&format!("/v1/clusters/{uuid}")).body,
        before,
        "the refused upgrade changed nothing"
    );
    let r = app.post(
        &up,
        json!({"cluster_template": "k8s-new", "max_batch_size": 0}),
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.post(
        &up,
        json!({"cluster_template": "k8s-new", "max_batch_size": 2}),
    );
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(
        app.get(&format!("/v1/clusters/{uuid}")).body["status"],
        "UPDATE_IN_PROGRESS"
    );

    // Mesos declares no upgrade: a 400 naming the driver, before anything changes.
    app.post("/v1/clustertemplates", json!({"name": "mesos", "coe": "mesos", "image_id": "ubuntu-mesos", "external_network_id": "public"}));
    let m = app.cluster("m1", "mesos", json!({}));
    let muuid = m["uuid"].as_str().unwrap().to_owned();
    app.complete(&muuid);
    let r = app.post(
        &format!("/v1/clusters/{muuid}/actions/upgrade"),
        json!({"cluster_template": "mesos"}),
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.detail(),
        "Upgrading a cluster is not supported by driver mesos_ubuntu_v1."
    );
});

api_test!(delete_and_isolation, |app: &TestApp| {
    app.k8s_template("k8s");
    let c = app.cluster("c1", "k8s", json!({}));
    let uuid = c["uuid"].as_str().unwrap().to_owned();
    let other = [
        ("x-roles", "member"),
        ("x-project-id", "p2"),
        ("openstack-api-version", "container-infra latest"),
    ];
    assert_eq!(
        app.call_as(Method::GET, &format!("/v1/clusters/{uuid}"), None, &other)
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call_as(
            Method::DELETE,
            &format!("/v1/clusters/{uuid}"),
            None,
            &other
        )
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call_as(Method::GET, "/v1/clusters", None, &other).body["clusters"],
        json!([])
    );
    let reader = [("x-roles", "reader"), ("x-project-id", "admin")];
    assert_eq!(
        app.call_as(
            Method::DELETE,
            &format!("/v1/clusters/{uuid}"),
            None,
            &reader
        )
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete(&format!("/v1/clusters/{uuid}")).status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/v1/clusters/{uuid}")).body["status"],
        "DELETE_IN_PROGRESS"
    );
    assert_eq!(
        app.delete("/v1/clusters/c1").status,
        StatusCode::NO_CONTENT,
        "deleting twice is fine"
    );
    assert_eq!(app.count("jobs"), 2, "create + one delete job");
    // A failed cluster can be deleted too, and shows its faults.
    let f = app.cluster("f1", "k8s", json!({}));
    let fid = f["uuid"].as_str().unwrap().to_owned();
    app.sql(&format!(
        "UPDATE cluster SET status = 'CREATE_FAILED' WHERE uuid = '{fid}'"
    ));
    app.sql(&format!("UPDATE nodegroup SET status = 'CREATE_FAILED', status_reason = 'boom' WHERE cluster_id = '{fid}' AND name = 'default-worker'"));
    assert_eq!(
        app.get(&format!("/v1/clusters/{fid}")).body["faults"],
        json!({"default-worker": "boom"})
    );
    assert_eq!(
        app.delete(&format!("/v1/clusters/{fid}")).status,
        StatusCode::NO_CONTENT
    );
});
