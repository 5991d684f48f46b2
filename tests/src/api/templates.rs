//! `/v1/clustertemplates`.

use super::*;

api_test!(
    upstreams_swarm_mode_driver_name_resolves,
    |app: &TestApp| {
        // Templates made for upstream Magnum name its swarm mode driver, which
        // the bundled swarm driver is here.
        let r = app.post(
        "/v1/clustertemplates",
        json!({"name": "swarm-v2", "coe": "swarm-mode", "image_id": "fedora-atomic-latest",
               "external_network_id": "public", "flavor_id": "m1.small", "driver": "swarm_fedora_atomic_v2"}),
    );
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["driver"], "swarm_fedora_atomic_v2");
        let r = app.post(
        "/v1/clusters",
        json!({"name": "swarm-v2", "cluster_template_id": "swarm-v2", "master_count": 1, "node_count": 1}),
    );
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let uuid = r.body["uuid"].as_str().unwrap().to_owned();
        let cluster = app.get(&format!("/v1/clusters/{uuid}"));
        assert_eq!(cluster.status, StatusCode::OK, "{}", cluster.body);
    }
);

api_test!(create_show_list_and_paginate, |app: &TestApp| {
    let r = app.post(
        "/v1/clustertemplates",
        template_body("k8s-a", "kubernetes", "fedora-atomic-latest"),
    );
    assert_eq!(r.status, StatusCode::CREATED);
    let uuid = r.body["uuid"].as_str().unwrap().to_owned();
    assert_eq!(
        r.headers["location"],
        format!("http://magnum.test:9511/v1/clustertemplates/{uuid}").as_str()
    );
    // Filled in by the host: cluster_distro from the image, the driver's default network driver.
    assert_eq!(r.body["cluster_distro"], "fedora-atomic");
    assert_eq!(r.body["network_driver"], "flannel");
    snap!("template_create", &r.body);

    assert_eq!(
        app.get(&format!("/v1/clustertemplates/{uuid}")).body,
        r.body
    );
    assert_eq!(app.get("/v1/clustertemplates/k8s-a").body, r.body);
    for name in ["k8s-b", "k8s-c"] {
        app.k8s_template(name);
    }
    let page = app.get("/v1/clustertemplates?limit=2&sort_key=name&sort_dir=desc");
    let names: Vec<&str> = page.body["clustertemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["k8s-c", "k8s-b"]);
    let next = page.body["next"].as_str().expect("a full page has next");
    assert!(next.starts_with("http://magnum.test:9511/v1/clustertemplates?sort_key=name&sort_dir=desc&limit=2&marker="), "{next}");
    let rest = app.get(next.trim_start_matches("http://magnum.test:9511"));
    assert_eq!(rest.body["clustertemplates"].as_array().unwrap().len(), 1);
    assert!(rest.body.get("next").is_none(), "a short page has no next");
    assert_eq!(
        app.get("/v1/clustertemplates/detail").body["clustertemplates"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Pagination errors.
    assert_eq!(
        app.get("/v1/clustertemplates?limit=0").detail(),
        "Limit must be positive"
    );
    assert_eq!(
        app.get("/v1/clustertemplates?sort_key=coe").status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get("/v1/clustertemplates?sort_dir=sideways").status,
        StatusCode::BAD_REQUEST
    );
    let missing = uuid::Uuid::new_v4();
    assert_eq!(
        app.get(&format!("/v1/clustertemplates?marker={missing}"))
            .status,
        StatusCode::NOT_FOUND
    );
});

api_test!(
    names_are_not_unique_but_lookups_by_ambiguous_name_conflict,
    |app: &TestApp| {
        app.k8s_template("twin");
        app.k8s_template("twin");
        let r = app.get("/v1/clustertemplates/twin");
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert!(r
            .detail()
            .contains("Multiple cluster templates exist with same name"));
        assert_eq!(
            app.get("/v1/clustertemplates/nope").status,
            StatusCode::NOT_FOUND
        );
    }
);

api_test!(create_errors_change_nothing, |app: &TestApp| {
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"name": "x", "image_id": "fedora-atomic-latest"}),
            StatusCode::BAD_REQUEST,
            "Mandatory field missing: coe",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "nope", "external_network_id": "public"}),
            StatusCode::BAD_REQUEST,
            "Image nope could not be found.",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "fedora-atomic-latest", "external_network_id": "private"}),
            StatusCode::BAD_REQUEST,
            "not an external network",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "fedora-atomic-latest", "external_network_id": "public", "flavor_id": "m9.huge"}),
            StatusCode::BAD_REQUEST,
            "Flavor m9.huge could not be found.",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "ubuntu-mesos", "external_network_id": "public"}),
            StatusCode::BAD_REQUEST,
            "Cluster type (vm, ubuntu, kubernetes) not supported.",
        ),
        (
            json!({"coe": "dcos", "image_id": "fedora-atomic-latest", "external_network_id": "public"}),
            StatusCode::BAD_REQUEST,
            "not supported",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "fedora-atomic-latest", "external_network_id": "public", "network_driver": "weave"}),
            StatusCode::BAD_REQUEST,
            "allowed: flannel, calico",
        ),
        (
            json!({"coe": "swarm", "image_id": "fedora-atomic-latest", "external_network_id": "public", "volume_driver": "cinder"}),
            StatusCode::BAD_REQUEST,
            "rexray",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "fedora-atomic-latest", "external_network_id": "public", "bogus": 1}),
            StatusCode::BAD_REQUEST,
            "Unknown attribute for argument cluster_template: bogus",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "fedora-atomic-latest", "external_network_id": "public", "docker_volume_size": -1}),
            StatusCode::BAD_REQUEST,
            "Value should be greater or equal to 1",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "fedora-atomic-latest", "external_network_id": "public", "apiserver_port": 80}),
            StatusCode::BAD_REQUEST,
            "apiserver_port",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "fedora-atomic-latest", "external_network_id": "public", "dns_nameserver": "8.8.8.8,not-an-ip"}),
            StatusCode::BAD_REQUEST,
            "comma separated dns list",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "fedora-atomic-latest", "external_network_id": "public", "docker_storage_driver": "devicemapper", "docker_volume_size": 2}),
            StatusCode::BAD_REQUEST,
            "expecting minimum value 3GB",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "fedora-atomic-latest", "external_network_id": "public", "server_type": "container"}),
            StatusCode::BAD_REQUEST,
            "server_type",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "fedora-atomic-latest", "external_network_id": "public", "tls_disabled": "perhaps"}),
            StatusCode::BAD_REQUEST,
            "Value should be a boolean",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "fedora-atomic-latest", "external_network_id": "public", "labels": {"kube_tag": "not-a-version"}}),
            StatusCode::BAD_REQUEST,
            "kube_tag",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "fedora-atomic-latest", "external_network_id": "public", "labels": {"a": {"b": 1}}}),
            StatusCode::BAD_REQUEST,
            "Values must be strings",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "fedora-atomic-latest", "external_network_id": "public", "labels": {"a": "x".repeat(5000)}}),
            StatusCode::BAD_REQUEST,
            "labels",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "fedora-atomic-latest", "external_network_id": "public", "driver": "nope_v1"}),
            StatusCode::BAD_REQUEST,
            "Driver nope_v1 is not registered",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "fedora-atomic-latest", "external_network_id": "public", "driver": "swarm_fedora_atomic_v1"}),
            StatusCode::BAD_REQUEST,
            "does not support cluster type",
        ),
        (
            // Upstream's swarm_fedora_atomic_v2 is swarm mode only.
            json!({"coe": "swarm", "image_id": "fedora-atomic-latest", "external_network_id": "public", "driver": "swarm_fedora_atomic_v2"}),
            StatusCode::BAD_REQUEST,
            "Driver swarm_fedora_atomic_v2 does not support cluster type (vm, fedora-atomic, swarm)",
        ),
        (
            json!(["not", "an", "object"]),
            StatusCode::BAD_REQUEST,
            "must be a JSON object",
        ),
        (
            json!({"coe": "kubernetes", "image_id": "fedora-atomic-latest", "external_network_id": "public", "public": true}),
            StatusCode::FORBIDDEN,
            "Not authorized to set public or hidden flag",
        ),
    ];
    for (body, status, needle) in cases {
        let r = if status == StatusCode::FORBIDDEN {
            app.call_as(
                Method::POST,
                "/v1/clustertemplates",
                Some(body.clone()),
                &[("x-roles", "member"), ("x-project-id", "p1")],
            )
        } else {
            app.post("/v1/clustertemplates", body.clone())
        };
        assert_eq!(r.status, status, "{body} -> {}", r.body);
        assert!(
            r.detail().contains(needle),
            "{body}: '{}' lacks '{needle}'",
            r.detail()
        );
        assert_eq!(r.body["errors"][0]["code"], "client");
    }
    // Malformed bodies, too large and not UTF-8.
    let r = app.raw(
        Method::POST,
        "/v1/clustertemplates",
        b"{\"coe\": ".to_vec(),
        &[],
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.detail().starts_with("The request body is not valid JSON"),
        "{}",
        r.detail()
    );
    let r = app.raw(
        Method::POST,
        "/v1/clustertemplates",
        vec![b'"', 0xff, 0xfe, b'"'],
        &[],
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.detail(), "The request body is not valid UTF-8.");
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let r = app.raw(Method::POST, "/v1/clustertemplates", big.into_bytes(), &[]);
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.detail().contains("larger than the limit"));
    assert_eq!(app.count("cluster_template"), 0, "no error wrote a row");
});

api_test!(each_coe_gets_its_driver_and_defaults, |app: &TestApp| {
    for (coe, image, network) in [
        ("kubernetes", "fedora-atomic-latest", "flannel"),
        ("swarm", "fedora-atomic-latest", "docker"),
        ("swarm-mode", "fedora-atomic-latest", "docker"),
        ("mesos", "ubuntu-mesos", "docker"),
    ] {
        let r = app.post(
            "/v1/clustertemplates",
            json!({"coe": coe, "image_id": image, "external_network_id": "public"}),
        );
        assert_eq!(r.status, StatusCode::CREATED, "{coe}: {}", r.body);
        assert_eq!(r.body["network_driver"], network, "{coe}");
        let name = r.body["name"].as_str().unwrap();
        assert!(name.ends_with("-template"), "generated name {name}");
    }
});

api_test!(patch_follows_upstream_rules, |app: &TestApp| {
    let t = app.k8s_template("p");
    let path = format!("/v1/clustertemplates/{}", t["uuid"].as_str().unwrap());
    // What `openstack coe cluster template update p add labels=k=v` / `remove labels=...` send.
    let r = app.patch(
        &path,
        json!([
            {"op": "add", "path": "/labels/availability_zone", "value": "az1"},
            {"op": "remove", "path": "/labels/flannel_backend"},
            {"op": "replace", "path": "/name", "value": "p2"},
            {"op": "add", "path": "/keypair_id", "value": "default"}
        ]),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["labels"],
        json!({"kube_tag": "v1.27.3", "availability_zone": "az1"})
    );
    assert_eq!(r.body["name"], "p2");
    assert!(r.body["updated_at"].is_string());
    snap!("template_patched", &r.body);
    // A string holding a dict replaces the labels (upstream's literal_eval path).
    let r = app.patch(
        &path,
        json!([{"op": "replace", "path": "/labels", "value": "{'kube_tag': 'v1.28.1'}"}]),
    );
    assert_eq!(
        r.body["labels"],
        json!({"kube_tag": "v1.28.1"}),
        "{}",
        r.body
    );

    let errors = [
        (
            json!([{"op": "replace", "path": "/uuid", "value": "x"}]),
            "'/uuid' is an internal attribute and can not be updated",
        ),
        (
            json!([{"op": "remove", "path": "/coe"}]),
            "'/coe' is a mandatory attribute and can not be removed",
        ),
        (
            json!([{"op": "add", "path": "/nope", "value": 1}]),
            "Adding a new attribute (/nope) to the root of the resource is not allowed.",
        ),
        (
            json!([{"op": "add", "path": "/name", "value": "z"}]),
            "The attribute /name has existed, please use 'replace' operation instead.",
        ),
        (
            json!([{"op": "replace", "path": "/name"}]),
            "'add' and 'replace' operations needs value",
        ),
        (
            json!([{"op": "replace", "path": "/network_driver", "value": "weave"}]),
            "allowed: flannel, calico",
        ),
        (
            json!([{"op": "replace", "path": "/image_id", "value": "nope"}]),
            "Image nope could not be found.",
        ),
        (json!({"op": "replace"}), "JSON-patch list"),
    ];
    for (ops, needle) in errors {
        let r = app.patch(&path, ops.clone());
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{ops}");
        assert!(r.detail().contains(needle), "{ops}: {}", r.detail());
    }
    assert_eq!(
        app.get(&path).body["name"],
        "p2",
        "failed patches changed nothing"
    );
});

api_test!(templates_in_use_are_protected, |app: &TestApp| {
    let t = app.k8s_template("used");
    let id = t["uuid"].as_str().unwrap().to_owned();
    app.cluster("c1", &id, json!({}));
    let path = format!("/v1/clustertemplates/{id}");
    let r = app.patch(
        &path,
        json!([{"op": "replace", "path": "/flavor_id", "value": "m1.large"}]),
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.detail(),
        format!("ClusterTemplate {id} is referenced by one or multiple clusters.")
    );
    // One harmless field is allowed.
    assert_eq!(
        app.patch(
            &path,
            json!([{"op": "replace", "path": "/name", "value": "renamed"}])
        )
        .status,
        StatusCode::OK
    );
    let r = app.patch(&path, json!([{"op": "replace", "path": "/name", "value": "again"}, {"op": "replace", "path": "/tags", "value": "x"}]));
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.delete(&path).status, StatusCode::BAD_REQUEST);
    let spare = app.k8s_template("spare");
    assert_eq!(
        app.delete(&format!(
            "/v1/clustertemplates/{}",
            spare["uuid"].as_str().unwrap()
        ))
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/v1/clustertemplates/spare").status,
        StatusCode::NOT_FOUND
    );
});

api_test!(visibility_public_hidden_and_projects, |app: &TestApp| {
    let member = |p: &'static str| {
        [
            ("x-roles", "member"),
            ("x-project-id", p),
            ("x-user-id", "u"),
            ("openstack-api-version", "container-infra latest"),
        ]
    };
    let own = app.call_as(
        Method::POST,
        "/v1/clustertemplates",
        Some(template_body("own", "kubernetes", "fedora-atomic-latest")),
        &member("p1"),
    );
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.body);
    let mut public = template_body("shared", "kubernetes", "fedora-atomic-latest");
    public["public"] = json!(true);
    assert_eq!(
        app.post("/v1/clustertemplates", public).status,
        StatusCode::CREATED
    );
    let mut hidden = template_body("hidden", "kubernetes", "fedora-atomic-latest");
    hidden["public"] = json!(true);
    hidden["hidden"] = json!(true);
    assert_eq!(
        app.post("/v1/clustertemplates", hidden).status,
        StatusCode::CREATED
    );

    let names = |headers: &[(&str, &str)]| -> Vec<String> {
        let r = app.call_as(Method::GET, "/v1/clustertemplates", None, headers);
        let mut n: Vec<String> = r.body["clustertemplates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&member("p1")), ["own", "shared"]);
    assert_eq!(names(&member("p2")), ["shared"]);
    assert_eq!(
        names(&[]),
        ["hidden", "own", "shared"],
        "admins see every project"
    );
    let own_id = own.body["uuid"].as_str().unwrap();
    let r = app.call_as(
        Method::GET,
        &format!("/v1/clustertemplates/{own_id}"),
        None,
        &member("p2"),
    );
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "another project's template is a 404, not a 403"
    );
    let r = app.call_as(
        Method::DELETE,
        &format!("/v1/clustertemplates/{own_id}"),
        None,
        &member("p2"),
    );
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.call_as(
        Method::DELETE,
        "/v1/clustertemplates/shared",
        None,
        &member("p2"),
    );
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a public template of another project is visible but not deletable"
    );
    let reader = [("x-roles", "reader"), ("x-project-id", "p1")];
    assert_eq!(
        app.call_as(Method::GET, "/v1/clustertemplates", None, &reader)
            .status,
        StatusCode::OK
    );
    let r = app.call_as(
        Method::POST,
        "/v1/clustertemplates",
        Some(template_body("r", "kubernetes", "fedora-atomic-latest")),
        &reader,
    );
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.detail(),
        "Policy doesn't allow clustertemplate:create to be performed."
    );
    let nobody = [("x-roles", "observer"), ("x-project-id", "p1")];
    assert_eq!(
        app.call_as(Method::GET, "/v1/clustertemplates", None, &nobody)
            .status,
        StatusCode::FORBIDDEN
    );
});

/// Upstream §5.1 step 11: a flavor without a root disk boots nothing unless
/// `boot_volume_size` asks for a volume; template create, template update
/// and cluster create refuse it with upstream's 400, and store nothing.
mod zero_disk_flavor {
    use super::*;
    use magnum_host::catalog::{Catalog, CloudCatalog, Flavor};

    const REFUSED: &str =
        "Flavor with zero root volume size is not supported when boot_volume_size is zero.";

    fn app(db: TestDatabase) -> TestApp {
        TestApp::with(db, |state| {
            let mut catalog = Catalog::default();
            catalog.flavors.push(Flavor {
                id: "diskless-id".into(),
                name: "m1.diskless".into(),
                vcpus: 1,
                ram_mb: 2048,
                disk_gb: 0,
            });
            state.catalog = CloudCatalog::Embedded(catalog);
        })
    }

    fn body(app: &TestApp) {
        let mut t = template_body("diskless", "kubernetes", "fedora-atomic-latest");
        t["flavor_id"] = json!("m1.diskless");
        let r = app.post("/v1/clustertemplates", t.clone());
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
        assert_eq!(r.detail(), REFUSED);
        t["master_flavor_id"] = json!("diskless-id");
        t["flavor_id"] = json!("m1.small");
        assert_eq!(
            app.post("/v1/clustertemplates", t.clone()).detail(),
            REFUSED
        );
        assert_eq!(app.count("cluster_template"), 0);

        // With a boot volume the same flavor is fine.
        t["labels"] = json!({"boot_volume_size": "10"});
        let r = app.post("/v1/clustertemplates", t);
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

        // PATCH to the diskless flavor on a template without a boot volume.
        app.k8s_template("plain");
        let r = app.patch(
            "/v1/clustertemplates/plain",
            json!([{"op": "replace", "path": "/flavor_id", "value": "m1.diskless"}]),
        );
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
        assert_eq!(r.detail(), REFUSED);
        assert_eq!(
            app.get("/v1/clustertemplates/plain").body["flavor_id"],
            "m1.small"
        );

        // A cluster that picks the flavor itself, or drops the boot volume.
        let r = app.post(
            "/v1/clusters",
            json!({"name": "c1", "cluster_template_id": "plain", "flavor_id": "m1.diskless"}),
        );
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
        assert_eq!(r.detail(), REFUSED);
        let r = app.post(
            "/v1/clusters",
            json!({"name": "c2", "cluster_template_id": "diskless",
                   "labels": {"boot_volume_size": "0"}}),
        );
        assert_eq!(r.detail(), REFUSED);
        assert_eq!(app.count("cluster"), 0);
        assert_eq!(app.count("jobs"), 0);

        // The driver checks the label itself: a size, never negative.
        for (size, why) in [("-5", "must be at least 0, got -5"), ("ten", "integer")] {
            let mut t = template_body("bad-size", "kubernetes", "fedora-atomic-latest");
            t["labels"] = json!({"boot_volume_size": size});
            let r = app.post("/v1/clustertemplates", t);
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
            assert!(
                r.detail().contains("boot_volume_size") && r.detail().contains(why),
                "{}",
                r.detail()
            );
        }
    }

    #[test]
    fn sqlite() {
        if let Some(db) = TestDatabase::new(magnum_host::db::Backend::Sqlite) {
            body(&app(db));
        }
    }

    #[test]
    fn postgres() {
        if let Some(db) = TestDatabase::new(magnum_host::db::Backend::Postgres) {
            body(&app(db));
        }
    }
}

// Issue 15, defect 9: a label that neither the driver nor the host reads
// would change nothing. By default it is refused with a 400 naming it, which
// `openstack coe cluster template create` prints (its `show` has a fixed set
// of columns, so a response field alone would go unseen); nothing is stored.
api_test!(undeclared_labels_are_refused, |app: &TestApp| {
    let mut body = template_body("ign", "kubernetes", "fedora-atomic-latest");
    body["labels"] = json!({
        "kube_tag": "v1.27.3",
        "flannel_backend": "vxlan",
        "min_node_count": "1",
        "kubelet_optoins": "--v=2",
        "made_up": "x"
    });
    let r = app.post("/v1/clustertemplates", body);
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let detail = r.detail();
    assert!(
        detail.starts_with(
            "Labels not read by driver k8s_fedora_atomic_v1: kubelet_optoins, made_up."
        ) && detail.contains("undeclared_labels"),
        "{detail}"
    );
    assert_eq!(app.count("cluster_template"), 0);

    // Declared labels, sub-driver labels and the host's own pass.
    let t = app.k8s_template("ok");
    let path = format!("/v1/clustertemplates/{}", t["uuid"].as_str().unwrap());
    assert_eq!(t["labels_ignored"], json!([]), "{t}");
    let r = app.patch(
        &path,
        json!([{"op": "add", "path": "/labels/typo_lable", "value": "1"}]),
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.detail().contains("typo_lable"), "{}", r.detail());
    assert_eq!(app.get(&path).body["labels"], t["labels"], "unchanged");

    // A cluster's and a nodegroup's own labels too.
    let r = app.post(
        "/v1/clusters",
        json!({"name": "c", "cluster_template_id": "ok", "keypair": "default",
               "labels": {"kube_tag": "v1.27.3", "typo_lable": "1"}}),
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.detail().contains("typo_lable"), "{}", r.detail());
    assert_eq!(app.count("cluster"), 0);
    let c = app.cluster("c", "ok", json!({}));
    let ngs = format!("/v1/clusters/{}/nodegroups", c["uuid"].as_str().unwrap());
    let r = app.post(
        &ngs,
        json!({"name": "ng", "labels": {"made_up": "x"}, "merge_labels": true}),
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.detail().contains("made_up"), "{}", r.detail());
    assert_eq!(app.count("nodegroup"), 2, "only the default groups");
});

// `[api] undeclared_labels = "keep"`: upstream's behaviour (stored, changing
// nothing), and the API says which in `labels_ignored` on templates (create,
// show, list, patch) and clusters (show, detail).
mod undeclared_labels_kept {
    use super::*;

    fn app(db: TestDatabase) -> TestApp {
        TestApp::with(db, |state| {
            state.settings.undeclared_labels = magnum_host::config::UndeclaredLabels::Keep;
        })
    }

    fn body(app: &TestApp) {
        let mut body = template_body("ign", "kubernetes", "fedora-atomic-latest");
        body["labels"] = json!({
            "kube_tag": "v1.27.3",
            "flannel_backend": "vxlan",
            "min_node_count": "1",
            "kubelet_optoins": "--v=2",
            "made_up": "x"
        });
        let r = app.post("/v1/clustertemplates", body);
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(
            r.body["labels_ignored"],
            json!(["kubelet_optoins", "made_up"])
        );
        let uuid = r.body["uuid"].as_str().unwrap().to_owned();
        let path = format!("/v1/clustertemplates/{uuid}");
        let shown = app.get(&path).body;
        assert_eq!(
            shown["labels_ignored"],
            json!(["kubelet_optoins", "made_up"])
        );
        assert_eq!(shown["labels"]["made_up"], "x", "kept, as upstream");
        let listed = app.get("/v1/clustertemplates/detail").body;
        let row = listed["clustertemplates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["uuid"] == uuid.as_str())
            .cloned()
            .unwrap();
        assert_eq!(row["labels_ignored"], json!(["kubelet_optoins", "made_up"]));
        let r = app.patch(&path, json!([{"op": "remove", "path": "/labels/made_up"}]));
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["labels_ignored"], json!(["kubelet_optoins"]));
        // Not writable: patching it is refused like any unknown attribute.
        let r = app.patch(
            &path,
            json!([{"op": "replace", "path": "/labels_ignored", "value": []}]),
        );
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

        let c = app.cluster(
            "ign-c",
            "ign",
            json!({"labels": {"kube_tag": "v1.27.3", "typo_lable": "1"}}),
        );
        let c = c["uuid"].as_str().unwrap().to_owned();
        let shown = app.get(&format!("/v1/clusters/{c}")).body;
        assert_eq!(shown["labels_ignored"], json!(["typo_lable"]), "{shown}");
        let detail = app.get("/v1/clusters/detail").body;
        assert_eq!(
            detail["clusters"][0]["labels_ignored"],
            json!(["typo_lable"]),
            "{detail}"
        );
    }

    #[test]
    fn sqlite() {
        if let Some(db) = TestDatabase::new(magnum_host::db::Backend::Sqlite) {
            body(&app(db));
        }
    }

    #[test]
    fn postgres() {
        if let Some(db) = TestDatabase::new(magnum_host::db::Backend::Postgres) {
            body(&app(db));
        }
    }
}
