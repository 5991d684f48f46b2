//! Quotas, stats, mservices, federations, certificates, credentials, routing.

use super::*;

api_test!(quotas_crud_and_policy, |app: &TestApp| {
    let r = app.post(
        "/v1/quotas",
        json!({"project_id": "p1", "resource": "Cluster", "hard_limit": 5}),
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    snap!("quota_create", &r.body);
    assert_eq!(
        app.post(
            "/v1/quotas",
            json!({"project_id": "p1", "resource": "Cluster"})
        )
        .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.post("/v1/quotas", json!({"resource": "Cluster"}))
            .detail(),
        "Mandatory field missing: project_id"
    );
    assert_eq!(
        app.post(
            "/v1/quotas",
            json!({"project_id": "p1", "resource": "Node"})
        )
        .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.post("/v1/quotas", json!({"project_id": "p1", "hard_limit": -1}))
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.get("/v1/quotas/p1/Cluster").body["hard_limit"], 5);
    assert_eq!(
        app.get("/v1/quotas/p9/Cluster").body["hard_limit"],
        20,
        "the default when no row exists"
    );
    assert_eq!(
        app.get("/v1/quotas?all_tenants=true").body["quotas"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.get("/v1/quotas").body["quotas"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "admin's own project only"
    );
    let r = app.patch(
        "/v1/quotas/p1/Cluster",
        json!({"project_id": "p1", "resource": "Cluster", "hard_limit": 7}),
    );
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.body["hard_limit"], 7);
    assert_eq!(
        app.patch("/v1/quotas/p2/Cluster", json!({"hard_limit": 7}))
            .status,
        StatusCode::NOT_FOUND
    );
    let member = [("x-roles", "member"), ("x-project-id", "p1")];
    assert_eq!(
        app.call_as(Method::GET, "/v1/quotas/p1/Cluster", None, &member)
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.call_as(Method::GET, "/v1/quotas/p2/Cluster", None, &member)
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.call_as(
            Method::POST,
            "/v1/quotas",
            Some(json!({"project_id": "p1"})),
            &member
        )
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete("/v1/quotas/p1/Cluster").status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete("/v1/quotas/p1/Cluster").status,
        StatusCode::NOT_FOUND
    );
});

api_test!(stats_and_services, |app: &TestApp| {
    app.k8s_template("k8s");
    app.cluster("c1", "k8s", json!({"node_count": 3}));
    assert_eq!(
        app.get("/v1/stats").body,
        json!({"clusters": 1, "nodes": 4}),
        "upstream counts masters too"
    );
    assert_eq!(
        app.get("/v1/stats?project_id=p2").body,
        json!({"clusters": 0, "nodes": 0})
    );
    assert_eq!(
        app.get("/v1/stats?type=node").detail(),
        "Invalid stats type. Allowed values are 'cluster'"
    );
    let member = [("x-roles", "member"), ("x-project-id", "p2")];
    assert_eq!(
        app.call_as(Method::GET, "/v1/stats?project_id=admin", None, &member)
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.call_as(Method::GET, "/v1/stats", None, &member).body,
        json!({"clusters": 0, "nodes": 0})
    );

    {
        let conn: &mut magnum_host::db::DbConnection = &mut app.db.conn();
        magnum_host::db::models::MagnumService::report(conn, "conductor-1", "magnum-conductor")
            .unwrap();
    }
    let s = app.get("/v1/mservices").body;
    assert_eq!(s["mservices"][0]["state"], "up");
    assert_eq!(s["mservices"][0]["binary"], "magnum-conductor");
    app.sql("UPDATE magnum_service SET last_seen_up = '2020-01-01 00:00:00'");
    assert_eq!(
        app.get("/v1/mservices").body["mservices"][0]["state"],
        "down"
    );
    assert_eq!(
        app.call_as(Method::GET, "/v1/mservices", None, &member)
            .status,
        StatusCode::FORBIDDEN
    );
});

api_test!(federations_are_kept, |app: &TestApp| {
    app.k8s_template("k8s");
    let host = app.cluster("host", "k8s", json!({}));
    let member = app.cluster("member", "k8s", json!({}));
    let r = app.post("/v1/federations", json!({"name": "fed", "hostcluster_id": "host", "properties": {"dns-zone": "example.com."}}));
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let f = app.get("/v1/federations/fed").body;
    assert_eq!(f["hostcluster_id"], host["uuid"]);
    assert_eq!(f["status"], "CREATE_COMPLETE");
    let r = app.patch(
        "/v1/federations/fed",
        json!([{"op": "add", "path": "/member_ids", "value": member["uuid"]}]),
    );
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(
        app.get("/v1/federations/fed").body["member_ids"],
        json!([member["uuid"]])
    );
    assert_eq!(
        app.post(
            "/v1/federations",
            json!({"name": "f2", "hostcluster_id": "nope", "properties": {"dns-zone": "x."}})
        )
        .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.post(
            "/v1/federations",
            json!({"name": "f2", "hostcluster_id": "host"})
        )
        .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get("/v1/federations").body["federations"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.delete("/v1/federations/fed").status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get("/v1/federations/fed").status, StatusCode::NOT_FOUND);
});

api_test!(certificates_and_credentials_routes, |app: &TestApp| {
    app.k8s_template("k8s");
    let c = app.cluster("c1", "k8s", json!({}));
    let uuid = c["uuid"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get(&format!("/v1/certificates/{uuid}?ca_cert_type=bogus"))
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get("/v1/certificates/nope").status,
        StatusCode::NOT_FOUND
    );
    let r = app.post(
        "/v1/certificates",
        json!({"cluster_uuid": "nope", "csr": "x"}),
    );
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "an unknown cluster in the body is a 400 upstream"
    );
    let r = app.patch(&format!("/v1/certificates/{uuid}"), json!([]));
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "CA rotation needs a complete cluster"
    );
    let r = app.call_as(
        Method::PATCH,
        &format!("/v1/credentials/{uuid}"),
        Some(json!({})),
        &[("openstack-api-version", "container-infra 1.11")],
    );
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    let mut tls_off = template_body("plain", "kubernetes", "fedora-atomic-latest");
    tls_off["tls_disabled"] = json!(true);
    app.post("/v1/clustertemplates", tls_off);
    let p = app.cluster("p1", "plain", json!({}));
    let r = app.get(&format!("/v1/certificates/{}", p["uuid"].as_str().unwrap()));
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.detail().contains("non-TLS cluster"));
});

api_test!(routing_errors_use_the_envelope, |app: &TestApp| {
    let r = app.get("/v1/nothing");
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["errors"][0]["code"], "client");
    assert!(r.headers.contains_key("x-openstack-request-id"));
    let r = app.call(Method::PUT, "/v1/clusters", Some(json!({})));
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.body["errors"][0]["status"], 405);
    // Trailing slashes, as python-magnumclient sends them.
    assert_eq!(app.get("/v1/clustertemplates/").status, StatusCode::OK);
    assert_eq!(
        app.get("/v1/clustertemplates/?limit=1").body["clustertemplates"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    // Bookmark links (without /v1) work as upstream's root controller makes them.
    app.k8s_template("k8s");
    let t = app.get("/v1/clustertemplates/k8s").body;
    let bookmark = t["links"][1]["href"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://magnum.test:9511")
        .to_owned();
    assert!(!bookmark.starts_with("/v1/"), "{bookmark}");
    let r = app.get(&bookmark);
    assert_eq!(r.body["uuid"], t["uuid"]);
    assert!(r.headers.contains_key("openstack-api-version"));
    let r = app.call_as(
        Method::GET,
        "/v1/clusters",
        None,
        &[("openstack-api-version", "container-infra 1.99")],
    );
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
});

// Issue 18, item 5: `/healthcheck` as oslo.middleware's: plain `OK`, JSON for
// `?detailed` (details only when `[healthcheck] detailed`), and a file whose
// presence drains this API process from its load balancer.
mod healthcheck_as_oslo {
    use super::*;

    fn body(db: TestDatabase) {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("disabled");
        let file = flag.clone();
        let app = TestApp::with(db, move |state| {
            state.settings.healthcheck.disable_by_file_path = Some(file);
            state.settings.healthcheck.detailed = true;
        });
        let r = app.get("/healthcheck");
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, json!("OK"));
        let r = app.get("/healthcheck?detailed");
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["detailed"], true);
        let classes: Vec<&str> = r.body["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["class"].as_str().unwrap())
            .collect();
        assert_eq!(
            classes,
            [
                "DisableByFileHealthcheck",
                "DatabaseHealthcheck",
                "DriversHealthcheck"
            ],
            "{}",
            r.body
        );
        assert_eq!(r.body["reasons"][2]["details"], "3 driver(s) loaded");

        std::fs::write(&flag, "").unwrap();
        let r = app.get("/healthcheck");
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.body, json!("DISABLED BY FILE"));
        let r = app.get("/healthcheck?detailed");
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.body["reasons"][0]["reason"], "DISABLED BY FILE");
        // The rest of the API keeps serving: only the load balancer's probe fails.
        assert_eq!(app.get("/v1/clustertemplates").status, StatusCode::OK);
        std::fs::remove_file(&flag).unwrap();
        assert_eq!(app.get("/healthcheck").status, StatusCode::OK);
    }

    fn not_detailed(db: TestDatabase) {
        let app = TestApp::new(db);
        let r = app.get("/healthcheck?detailed");
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, json!({"detailed": false, "reasons": ["OK"]}));
    }

    #[test]
    fn sqlite() {
        if let Some(db) = TestDatabase::new(magnum_host::db::Backend::Sqlite) {
            body(db);
        }
        if let Some(db) = TestDatabase::new(magnum_host::db::Backend::Sqlite) {
            not_detailed(db);
        }
    }

    #[test]
    fn postgres() {
        if let Some(db) = TestDatabase::new(magnum_host::db::Backend::Postgres) {
            body(db);
        }
    }
}

// Issue 18, item 3: a policy.yaml in oslo.policy's format, named by
// `[policy] file`, overrides upstream's rules by name; untouched rules keep
// their defaults; a refused request changes nothing.
mod policy_file_overrides_defaults {
    use super::*;

    fn app(db: TestDatabase) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("policy.yaml");
        std::fs::write(
            &file,
            "# as an operator writes it\n\
             \"cluster:create\": \"role:admin\"\n\
             \"clustertemplate:publish\": \"rule:admin_or_member\"\n\
             \"cluster:get_all\": \"!\"\n\
             \"cluster:get_all_all_projects\": \"role:admin\"\n",
        )
        .expect("write policy");
        let config = magnum_host::config::Config::from_toml(
            &format!("[policy]\nfile = {:?}\n", file.display().to_string()),
            &Default::default(),
        )
        .expect("config with a policy file");
        assert_eq!(
            config.policy.overridden(),
            [
                "cluster:create",
                "cluster:get_all",
                "clustertemplate:publish"
            ]
        );
        assert_eq!(config.policy.ignored(), ["cluster:get_all_all_projects"]);
        TestApp::with(db, |state| state.policy = config.policy.clone())
    }

    fn body(app: &TestApp) {
        let member = [
            ("openstack-api-version", "container-infra latest"),
            ("x-roles", "member"),
            ("x-project-id", "p1"),
            ("x-user-id", "u1"),
        ];
        // Publishing is now a member's right (by default admin only).
        let mut t = template_body("pub", "kubernetes", "fedora-atomic-latest");
        t["public"] = json!(true);
        let r = app.call_as(Method::POST, "/v1/clustertemplates", Some(t), &member);
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["public"], true);
        // Creating a cluster is admin only now: refused, nothing stored.
        let r = app.call_as(
            Method::POST,
            "/v1/clusters",
            Some(json!({"name": "c", "cluster_template_id": "pub"})),
            &member,
        );
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(
            r.detail(),
            "Policy doesn't allow cluster:create to be performed."
        );
        assert_eq!(app.count("cluster"), 0);
        assert_eq!(app.count("jobs"), 0);
        // Denied to everyone, admin included.
        let r = app.get("/v1/clusters");
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        // Untouched rules keep upstream's defaults: a reader reads
        // templates, and may not create one.
        let reader = [
            ("openstack-api-version", "container-infra latest"),
            ("x-roles", "reader"),
            ("x-project-id", "p1"),
        ];
        let r = app.call_as(Method::GET, "/v1/clustertemplates", None, &reader);
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = app.call_as(
            Method::POST,
            "/v1/clustertemplates",
            Some(template_body("r", "kubernetes", "fedora-atomic-latest")),
            &reader,
        );
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(app.count("cluster_template"), 1);
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
