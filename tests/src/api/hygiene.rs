//! Issue 13: the certificate routes' policy, bad input that reached a 500
//! or an answer outside Magnum's envelope, and wire details where we
//! differed from upstream.

use std::sync::Arc;

use magnum_host::certs::{Authority, CertificateConfig, KeyAlgorithm};

use super::*;

const LATEST: (&str, &str) = ("openstack-api-version", "container-infra latest");

/// ECDSA CAs: generated in milliseconds, where RSA takes seconds in a debug build.
fn ecdsa(state: &mut AppState) {
    state.certs = Arc::new(Authority::ephemeral(CertificateConfig {
        key_algorithm: KeyAlgorithm::EcdsaP256,
        ..CertificateConfig::default()
    }));
}

/// Asserts Magnum's error envelope with `status`; returns its detail.
fn envelope(r: &Resp, status: StatusCode) -> String {
    assert_eq!(r.status, status, "{}", r.body);
    let errors = r.body["errors"].as_array().expect("an errors list");
    assert_eq!(errors.len(), 1, "{}", r.body);
    let e = &errors[0];
    assert_eq!(e["request_id"], "", "{}", r.body);
    assert_eq!(e["code"], "client", "{}", r.body);
    assert_eq!(e["status"], status.as_u16(), "{}", r.body);
    assert!(
        e["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{}",
        r.body
    );
    assert_eq!(e["links"], json!([]), "{}", r.body);
    e["detail"].as_str().expect("detail").to_owned()
}

api_test!(
    certificates_are_for_admins_and_the_clusters_user,
    tweak = ecdsa,
    |app: &TestApp| {
        let owner = [
            LATEST,
            ("x-project-id", "p1"),
            ("x-user-id", "u1"),
            ("x-roles", "member"),
        ];
        let r = app.call_as(
            Method::POST,
            "/v1/clustertemplates",
            Some(template_body("k8s", "kubernetes", "fedora-atomic-latest")),
            &owner,
        );
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let r = app.call_as(
            Method::POST,
            "/v1/clusters",
            Some(json!({"name": "c1", "cluster_template_id": "k8s", "node_count": 1, "keypair": "default"})),
            &owner,
        );
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let uuid = r.body["uuid"].as_str().expect("uuid").to_owned();
        // What the conductor does when it starts the create.
        let cred = {
            let mut conn = app.db.conn();
            app.state
                .certs
                .ensure_cluster(&mut conn, &uuid, "c1", true)
                .expect("certificates");
            app.state
                .certs
                .credential(&mut conn, &uuid)
                .expect("opens")
                .expect("a credential")
                .to_string()
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let csr = crate::certificates::make_csr(dir.path(), "admin", "admin", "system:masters");
        let get = |h: &[(&str, &str)]| {
            app.call_as(Method::GET, &format!("/v1/certificates/{uuid}"), None, h)
        };
        let sign = |h: &[(&str, &str)]| {
            app.call_as(
                Method::POST,
                "/v1/certificates",
                Some(json!({"cluster_uuid": uuid, "csr": csr})),
                h,
            )
        };

        // Another member of the cluster's project: upstream's
        // admin_or_project_{reader,member}_user refuse, so no
        // system:masters certificate for someone else's cluster.
        let other = [
            LATEST,
            ("x-project-id", "p1"),
            ("x-user-id", "u2"),
            ("x-roles", "member,reader"),
        ];
        assert_eq!(
            envelope(&get(&other), StatusCode::FORBIDDEN),
            "Policy doesn't allow certificate:get to be performed."
        );
        assert_eq!(
            envelope(&sign(&other), StatusCode::FORBIDDEN),
            "Policy doesn't allow certificate:create to be performed."
        );
        // The cluster's own user as a reader: the CA, but no signing.
        let reader = [
            LATEST,
            ("x-project-id", "p1"),
            ("x-user-id", "u1"),
            ("x-roles", "reader"),
        ];
        assert_eq!(get(&reader).status, StatusCode::OK);
        assert_eq!(
            envelope(&sign(&reader), StatusCode::FORBIDDEN),
            "Policy doesn't allow certificate:create to be performed."
        );
        // The cluster's user, an admin of another project, and the
        // cluster's nodes with its credential: both routes.
        let admin = [
            LATEST,
            ("x-project-id", "ops"),
            ("x-user-id", "root"),
            ("x-roles", "admin"),
        ];
        let node = [LATEST, ("x-auth-token", cred.as_str())];
        for who in [&owner[..], &admin[..], &node[..]] {
            let r = get(who);
            assert_eq!(r.status, StatusCode::OK, "{who:?}: {}", r.body);
            assert!(r.body["pem"]
                .as_str()
                .is_some_and(|p| p.starts_with("-----BEGIN CERTIFICATE-----")));
            let r = sign(who);
            assert_eq!(r.status, StatusCode::CREATED, "{who:?}: {}", r.body);
        }
    }
);

api_test!(
    a_credential_this_key_cannot_open_is_a_401,
    |app: &TestApp| {
        app.k8s_template("k8s");
        let c = app.cluster("c1", "k8s", json!({}));
        let uuid = c["uuid"].as_str().expect("uuid").to_owned();
        // The cluster's secrets sealed under another server key, as after the
        // key file was replaced.
        let other = Authority::ephemeral(CertificateConfig::default());
        let cred = {
            let mut conn = app.db.conn();
            other
                .ensure_cluster(&mut conn, &uuid, "c1", false)
                .expect("credential");
            other
                .credential(&mut conn, &uuid)
                .expect("opens with its own key")
                .expect("a credential")
                .to_string()
        };
        let node = [LATEST, ("x-auth-token", cred.as_str())];
        let r = app.call_as(
            Method::GET,
            &format!("/v1/certificates/{uuid}"),
            None,
            &node,
        );
        envelope(&r, StatusCode::UNAUTHORIZED);
        let r = app.call_as(
            Method::POST,
            "/v1/certificates",
            Some(json!({"cluster_uuid": uuid, "csr": "x"})),
            &node,
        );
        envelope(&r, StatusCode::UNAUTHORIZED);
    }
);

api_test!(
    nul_characters_are_a_400_and_change_nothing,
    |app: &TestApp| {
        app.k8s_template("k8s");
        let c = app.cluster("c1", "k8s", json!({}));
        let uuid = c["uuid"].as_str().expect("uuid").to_owned();
        let template = app.get("/v1/clustertemplates/k8s").body;
        let cluster = app.get(&format!("/v1/clusters/{uuid}")).body;
        let mut label_key = template_body("t2", "kubernetes", "fedora-atomic-latest");
        label_key["labels"] = json!({"k\u{0}": "v"});
        let bodies: Vec<(Method, String, Value)> = vec![
            (
                Method::POST,
                "/v1/clustertemplates".into(),
                template_body("a\u{0}b", "kubernetes", "fedora-atomic-latest"),
            ),
            (Method::POST, "/v1/clustertemplates".into(), label_key),
            (
                Method::PATCH,
                "/v1/clustertemplates/k8s".into(),
                json!([{"op": "replace", "path": "/name", "value": "x\u{0}"}]),
            ),
            (
                Method::POST,
                "/v1/clusters".into(),
                json!({"name": "c2", "cluster_template_id": "k8s", "keypair": "default", "labels": {"k": "v\u{0}"}}),
            ),
            (
                Method::POST,
                format!("/v1/clusters/{uuid}/nodegroups"),
                json!({"name": "n\u{0}g"}),
            ),
            (
                Method::POST,
                "/v1/quotas".into(),
                json!({"project_id": "p\u{0}", "resource": "Cluster", "hard_limit": 3}),
            ),
            (
                Method::POST,
                "/v1/federations".into(),
                json!({"name": "f\u{0}", "hostcluster_id": uuid, "properties": {"dns-zone": "x."}}),
            ),
            (
                Method::POST,
                "/v1/certificates".into(),
                json!({"cluster_uuid": uuid, "csr": "x\u{0}"}),
            ),
        ];
        for (method, path, body) in bodies {
            let r = app.call(method.clone(), &path, Some(body));
            let detail = envelope(&r, StatusCode::BAD_REQUEST);
            assert!(detail.contains("U+0000"), "{method} {path}: {detail}");
        }
        for path in [
            "/v1/clusters/a%00b".to_owned(),
            "/v1/clustertemplates/%00".to_owned(),
            "/clustertemplates/%00".to_owned(),
            "/v1/clusters?marker=%00".to_owned(),
            "/v1/clusters?sort_key=name%00".to_owned(),
            format!("/v1/clusters/{uuid}/nodegroups/x%00"),
            "/v1/quotas/p%00/Cluster".to_owned(),
            "/v1/certificates/c%00".to_owned(),
            "/v1/federations/f%00".to_owned(),
        ] {
            let detail = envelope(&app.get(&path), StatusCode::BAD_REQUEST);
            assert!(detail.contains("U+0000"), "{path}: {detail}");
        }
        let r = app.delete("/v1/clustertemplates/k8s%00");
        envelope(&r, StatusCode::BAD_REQUEST);
        let r = app.delete(&format!("/v1/clusters/{uuid}%00"));
        envelope(&r, StatusCode::BAD_REQUEST);

        assert_eq!(app.count("cluster_template"), 1);
        assert_eq!(app.count("cluster"), 1);
        assert_eq!(app.count("nodegroup"), 2);
        assert_eq!(app.count("quotas"), 0);
        assert_eq!(app.count("federation"), 0);
        assert_eq!(app.get("/v1/clustertemplates/k8s").body, template);
        assert_eq!(app.get(&format!("/v1/clusters/{uuid}")).body, cluster);
    }
);

api_test!(
    a_path_that_is_not_utf8_is_a_400_in_the_envelope,
    |app: &TestApp| {
        for path in [
            "/v1/clusters/%FF",
            "/clusters/%FF",
            "/v1/clustertemplates/%C3%28",
            "/v1/clusters/%FF/nodegroups",
            "/v1/quotas/%FF/Cluster",
            "/v1/clusters?marker=%FF",
        ] {
            let detail = envelope(&app.get(path), StatusCode::BAD_REQUEST);
            assert!(detail.contains("UTF-8"), "{path}: {detail}");
        }
    }
);

api_test!(an_empty_x_roles_header_means_no_roles, |app: &TestApp| {
    for roles in ["", " , "] {
        let none = [LATEST, ("x-roles", roles)];
        let r = app.call_as(Method::GET, "/v1/clusters", None, &none);
        envelope(&r, StatusCode::FORBIDDEN);
        let r = app.call_as(
            Method::POST,
            "/v1/clustertemplates",
            Some(template_body("k8s", "kubernetes", "fedora-atomic-latest")),
            &none,
        );
        envelope(&r, StatusCode::FORBIDDEN);
    }
    assert_eq!(app.count("cluster_template"), 0);
    // No header at all: the configured default roles (admin here).
    assert_eq!(app.get("/v1/clusters").status, StatusCode::OK);
});

api_test!(
    cluster_distro_is_a_string_from_the_image,
    |app: &TestApp| {
        for bad in [
            json!(5),
            json!(""),
            json!({"a": 1}),
            json!(true),
            json!(["x"]),
        ] {
            let mut body = template_body("k8s", "kubernetes", "fedora-atomic-latest");
            body["cluster_distro"] = bad.clone();
            let r = app.post("/v1/clustertemplates", body);
            let detail = envelope(&r, StatusCode::BAD_REQUEST);
            assert!(detail.contains("cluster_distro"), "{bad}: {detail}");
        }
        assert_eq!(app.count("cluster_template"), 0);
        // A string is accepted and, as upstream, replaced by the image's os_distro.
        let mut body = template_body("k8s", "kubernetes", "fedora-atomic-latest");
        body["cluster_distro"] = json!("ubuntu");
        let r = app.post("/v1/clustertemplates", body);
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["cluster_distro"], "fedora-atomic");
        let r = app.patch(
            "/v1/clustertemplates/k8s",
            json!([{"op": "replace", "path": "/cluster_distro", "value": 7}]),
        );
        envelope(&r, StatusCode::BAD_REQUEST);
    }
);

api_test!(json_routes_take_json_only, |app: &TestApp| {
    let body = || {
        template_body("k8s", "kubernetes", "fedora-atomic-latest")
            .to_string()
            .into_bytes()
    };
    for media in ["text/plain", "application/x-www-form-urlencoded"] {
        let r = app.raw(
            Method::POST,
            "/v1/clustertemplates",
            body(),
            &[LATEST, ("content-type", media)],
        );
        let detail = envelope(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(detail.contains(media), "{detail}");
    }
    let r = app.raw(
        Method::PATCH,
        "/v1/clustertemplates/k8s",
        b"[]".to_vec(),
        &[LATEST, ("content-type", "text/plain")],
    );
    envelope(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.count("cluster_template"), 0);
    // JSON with parameters, and no Content-Type at all (curl -d without -H).
    let r = app.raw(
        Method::POST,
        "/v1/clustertemplates",
        body(),
        &[LATEST, ("content-type", "application/json; charset=UTF-8")],
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let other = template_body("k8s-2", "kubernetes", "fedora-atomic-latest");
    let r = app.raw(
        Method::POST,
        "/v1/clustertemplates",
        other.to_string().into_bytes(),
        &[LATEST, ("content-type", "")],
    );
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
});

api_test!(create_timeout_zero_is_kept, |app: &TestApp| {
    app.k8s_template("k8s");
    // Upstream stores 0; only the stack's timeout falls back to 60 minutes.
    let zero = app.cluster("c0", "k8s", json!({"create_timeout": 0}));
    assert_eq!(zero["create_timeout"], 0, "{zero}");
    let items = app.get("/v1/clusters").body["clusters"].clone();
    assert_eq!(items[0]["create_timeout"], 0, "{items}");
    let default = app.cluster("c1", "k8s", json!({}));
    assert_eq!(default["create_timeout"], 60);
});

api_test!(cluster_views_show_merge_labels, |app: &TestApp| {
    app.k8s_template("k8s");
    // Input only upstream, so every view shows its default, false.
    let c = app.cluster(
        "c1",
        "k8s",
        json!({"merge_labels": true, "labels": {"availability_zone": "az1"}}),
    );
    assert_eq!(c["merge_labels"], false, "{c}");
    for list in ["/v1/clusters", "/v1/clusters/detail"] {
        let items = app.get(list).body["clusters"].clone();
        assert_eq!(items[0]["merge_labels"], false, "{list}: {items}");
    }
    let ngs = format!(
        "/v1/clusters/{}/nodegroups",
        c["uuid"].as_str().expect("uuid")
    );
    let worker = app.get(&format!("{ngs}/default-worker")).body;
    assert_eq!(worker["merge_labels"], false, "{worker}");
    let items = app.get(&ngs).body["nodegroups"].clone();
    assert_eq!(items[0]["merge_labels"], false, "{items}");
});

api_test!(nodegroup_full_views_show_min_and_max, |app: &TestApp| {
    app.k8s_template("k8s");
    let c = app.cluster("c1", "k8s", json!({}));
    let ngs = format!(
        "/v1/clusters/{}/nodegroups",
        c["uuid"].as_str().expect("uuid")
    );
    let worker = app.get(&format!("{ngs}/default-worker")).body;
    assert_eq!(worker["min_node_count"], 0, "{worker}");
    assert!(
        worker.get("max_node_count").is_some_and(Value::is_null),
        "{worker}"
    );
    let r = app.post(&ngs, json!({"name": "ng1", "max_node_count": 4}));
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["min_node_count"], 0);
    assert_eq!(r.body["max_node_count"], 4);
    let r = app.patch(
        &format!("{ngs}/ng1"),
        json!([{"op": "replace", "path": "/min_node_count", "value": 1}]),
    );
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["min_node_count"], 1);
    assert_eq!(r.body["max_node_count"], 4);
    // The summary leaves them out, as upstream's.
    for item in app.get(&ngs).body["nodegroups"]
        .as_array()
        .expect("nodegroups")
    {
        assert!(item.get("min_node_count").is_none(), "{item}");
        assert!(item.get("max_node_count").is_none(), "{item}");
    }
});

api_test!(error_titles_keep_version_numbers, |app: &TestApp| {
    app.k8s_template("k8s");
    // The title is the first sentence: the period of "1.10" does not end it.
    let r = app.call_as(
        Method::POST,
        "/v1/clusters",
        Some(json!({"cluster_template_id": "k8s", "node_count": 0})),
        &[("openstack-api-version", "container-infra 1.9")],
    );
    envelope(&r, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body["errors"][0]["title"],
        "Creating a cluster with 0 nodes is not supported in the provided microversion; use 1.10 or later"
    );
});

api_test!(
    unsupported_microversions_carry_a_description,
    |app: &TestApp| {
        // Upstream's 406 body (pecan's JSON error, then HTTPNotAcceptableAPIVersion)
        // carries the explanation as `description`.
        for (asked, start) in [
            ("1.99", "Version 1.99 was requested"),
            ("2.1", "Mutually exclusive versions requested"),
        ] {
            let r = app.call_as(
                Method::GET,
                "/v1/clusters",
                None,
                &[("openstack-api-version", &format!("container-infra {asked}"))],
            );
            assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
            let e = &r.body["errors"][0];
            assert_eq!(e["code"], "magnum.microversion-unsupported");
            assert_eq!(e["title"], "Requested microversion is unsupported");
            assert!(
                e["description"]
                    .as_str()
                    .is_some_and(|d| d.starts_with(start)),
                "{e}"
            );
            assert_eq!(e["description"], e["detail"]);
            assert_eq!(e["min_version"], "1.1");
            assert_eq!(e["max_version"], "1.14");
        }
    }
);
