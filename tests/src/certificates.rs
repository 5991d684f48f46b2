//! Cluster certificates end to end, on both backends: the conductor
//! generates the CAs at create, the API serves and signs with them (checked
//! with the real `openssl`), nodes use the cluster credential, credential
//! rotations go through the driver as stack updates, CA rotation is refused
//! for a driver whose nodes cannot move to a new CA, and every row leaves
//! with the cluster. Private keys never reach the database in clear.

use std::{path::Path, process::Command};

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    api::{template_body, TestApp},
    conductor::{conductor_test, fast_cloud, wait_for},
};

/// Runs `openssl args…` in `dir`; (success, stdout + stderr).
fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (Debian: openssl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A fresh RSA key and CSR for (CN, O), made by openssl.
pub(crate) fn make_csr(dir: &Path, name: &str, cn: &str, o: &str) -> String {
    let (ok, text) = openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}/O={o}"),
        ],
    );
    assert!(ok, "openssl req: {text}");
    std::fs::read_to_string(dir.join(format!("{name}.csr"))).unwrap()
}

/// Whether `cert` verifies against `ca` (both PEM), per `openssl verify`.
fn verifies(dir: &Path, ca: &str, cert: &str) -> bool {
    std::fs::write(dir.join("ca-under-test.pem"), ca).unwrap();
    std::fs::write(dir.join("cert-under-test.pem"), cert).unwrap();
    let (ok, text) = openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            "ca-under-test.pem",
            "cert-under-test.pem",
        ],
    );
    assert_eq!(ok, text.contains(": OK"), "{text}");
    ok
}

fn subject(dir: &Path, cert: &str) -> String {
    std::fs::write(dir.join("subject.pem"), cert).unwrap();
    let (ok, text) = openssl(dir, &["x509", "-noout", "-subject", "-in", "subject.pem"]);
    assert!(ok, "{text}");
    // OpenSSL 3 prints "CN = x"; 1.1 printed "CN=x".
    text.trim().replace(" = ", "=")
}

fn ca(app: &TestApp, uuid: &str, kind: &str) -> String {
    let r = app.get(&format!("/v1/certificates/{uuid}?ca_cert_type={kind}"));
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["cluster_uuid"], uuid);
    r.body["pem"].as_str().expect("pem").to_owned()
}

fn sign(
    app: &TestApp,
    uuid: &str,
    csr: &str,
    kind: &str,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut headers = vec![("openstack-api-version", "container-infra latest")];
    if let Some(t) = token {
        headers.push(("x-auth-token", t));
    }
    let r = app.call_as(
        Method::POST,
        "/v1/certificates",
        Some(json!({"cluster_uuid": uuid, "csr": csr, "ca_cert_type": kind})),
        &headers,
    );
    (r.status, r.body)
}

fn credential(app: &TestApp, uuid: &str) -> String {
    let mut conn = app.db.conn();
    app.state
        .certs
        .credential(&mut conn, uuid)
        .expect("credential opens")
        .expect("cluster has a credential")
        .to_string()
}

fn row_count(app: &TestApp, uuid: &str) -> i64 {
    let mut conn = app.db.conn();
    magnum_host::certs::count_of_cluster(&mut conn, uuid).expect("count")
}

/// Nothing in the certificate rows, nor anywhere in a SQLite file, looks
/// like a private key or a credential.
fn assert_no_secret_at_rest(app: &TestApp, credential: &str) {
    use diesel::{QueryableByName, RunQueryDsl};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        pem: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        private_key: String,
    }
    let mut conn = app.db.conn();
    let conn: &mut magnum_host::db::DbConnection = &mut conn;
    let rows: Vec<Row> = diesel::sql_query("SELECT pem, private_key FROM certificate")
        .load(conn)
        .expect("rows");
    assert!(!rows.is_empty());
    for r in &rows {
        assert!(!r.pem.contains("PRIVATE KEY"));
        assert!(
            r.private_key.starts_with("aesgcm1:"),
            "sealed: {}",
            &r.private_key[..12]
        );
        assert!(!r.private_key.contains("PRIVATE KEY"));
    }
    if let Some(file) = app.db.sqlite_file() {
        // The WAL holds the newest pages; read both.
        let mut bytes = std::fs::read(&file).expect("database file");
        bytes.extend(std::fs::read(file.with_extension("sqlite-wal")).unwrap_or_default());
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.contains("BEGIN CERTIFICATE"),
            "the scan sees the table"
        );
        assert!(
            !text.contains("PRIVATE KEY"),
            "a private key in clear in the database file"
        );
        let secret = credential.rsplit('.').next().unwrap();
        assert!(
            !text.contains(secret),
            "the credential in clear in the database file"
        );
    }
}

conductor_test!(cluster_certificates, fast_cloud(), |app: &TestApp| {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    app.k8s_template("k8s");
    let c = app.cluster("certs", "k8s", json!({"node_count": 1}));
    let uuid = c["uuid"].as_str().unwrap().to_owned();
    let path = format!("/v1/clusters/{uuid}");
    let done = wait_for(app, &path, |b| b["status"] != "CREATE_IN_PROGRESS");
    assert_eq!(done["status"], "CREATE_COMPLETE", "{done}");

    // Three independent CAs named after the cluster; front-proxy = front_proxy.
    let main = ca(app, &uuid, "kubernetes");
    let etcd = ca(app, &uuid, "etcd");
    let proxy = ca(app, &uuid, "front_proxy");
    assert_eq!(ca(app, &uuid, "front-proxy"), proxy);
    assert_eq!(
        app.get(&format!("/v1/certificates/{uuid}")).body["pem"],
        main.as_str()
    );
    assert!(main != etcd && etcd != proxy && main != proxy);
    assert_eq!(subject(dir, &main), "subject=CN=certs");
    // 3 CAs + magnum's client certificate + the credential.
    assert_eq!(row_count(app, &uuid), 5);

    // Signing: openssl's CSR, each CA, verified by openssl.
    let csr = make_csr(dir, "user", "admin", "system:masters");
    let (status, body) = sign(app, &uuid, &csr, "kubernetes", None);
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["csr"], csr.as_str());
    let signed = body["pem"].as_str().unwrap().to_owned();
    assert!(verifies(dir, &main, &signed));
    assert!(!verifies(dir, &etcd, &signed), "signed by the main CA only");
    assert_eq!(subject(dir, &signed), "subject=CN=admin, O=system:masters");
    let (status, body) = sign(app, &uuid, &csr, "etcd", None);
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(verifies(dir, &etcd, body["pem"].as_str().unwrap()));
    let (status, body) = sign(
        app,
        &uuid,
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        "kubernetes",
        None,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .starts_with("Received invalid csr"));

    // The cluster credential: its own cluster's certificate routes only.
    let cred = credential(app, &uuid);
    assert!(cred.starts_with(&format!("mcc1.{uuid}.")));
    let as_node = |method: Method, p: &str| {
        app.call_as(
            method,
            p,
            None,
            &[
                ("x-auth-token", cred.as_str()),
                ("openstack-api-version", "container-infra latest"),
            ],
        )
    };
    let r = as_node(
        Method::GET,
        &format!("/v1/certificates/{uuid}?ca_cert_type=etcd"),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["pem"], etcd.as_str());
    let (status, body) = sign(app, &uuid, &csr, "front_proxy", Some(&cred));
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(verifies(dir, &proxy, body["pem"].as_str().unwrap()));
    assert_eq!(
        as_node(Method::GET, "/v1/clusters").status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(as_node(Method::GET, &path).status, StatusCode::FORBIDDEN);
    let other = app.cluster("other", "k8s", json!({"node_count": 1}));
    let other = other["uuid"].as_str().unwrap().to_owned();
    assert_eq!(
        as_node(Method::GET, &format!("/v1/certificates/{other}")).status,
        StatusCode::FORBIDDEN
    );
    let forged = format!("{}x", &cred[..cred.len() - 1]);
    let r = app.call_as(
        Method::GET,
        &format!("/v1/certificates/{uuid}"),
        None,
        &[("x-auth-token", forged.as_str())],
    );
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_no_secret_at_rest(app, &cred);

    // CA rotation (issue 15, defect 7): k8s_fedora_atomic_v1's running
    // nodes keep the CA they fetched at boot, so a new CA would break the
    // cluster. Refused in the error envelope before anything changes: the
    // same CAs, signatures still valid, no job, the same status.
    let jobs_before = app.count("jobs");
    let r = app.patch(&format!("/v1/certificates/{uuid}"), json!([]));
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["errors"][0]["status"], 400, "{}", r.body);
    assert!(
        r.detail().contains(
            "Rotating the CA certificate is not supported by driver k8s_fedora_atomic_v1"
        ),
        "{}",
        r.detail()
    );
    assert_eq!(app.count("jobs"), jobs_before, "no job queued");
    assert_eq!(app.get(&path).body["status"], "CREATE_COMPLETE");
    assert_eq!(ca(app, &uuid, "kubernetes"), main, "the CA is unchanged");
    assert_eq!(ca(app, &uuid, "etcd"), etcd);
    assert_eq!(ca(app, &uuid, "front_proxy"), proxy);
    assert!(verifies(dir, &main, &signed), "old signatures stay valid");
    assert_eq!(row_count(app, &uuid), 5);

    // Credential rotation (1.12): the old one stops working at once.
    let r = app.call_as(
        Method::PATCH,
        &format!("/v1/credentials/{uuid}"),
        Some(json!({})),
        &[("openstack-api-version", "container-infra 1.12")],
    );
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(
        as_node(Method::GET, &format!("/v1/certificates/{uuid}")).status,
        StatusCode::UNAUTHORIZED
    );
    let fresh = credential(app, &uuid);
    assert_ne!(fresh, cred);
    let r = app.call_as(
        Method::GET,
        &format!("/v1/certificates/{uuid}"),
        None,
        &[("x-auth-token", fresh.as_str())],
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let done = wait_for(app, &path, |b| b["status"] != "UPDATE_IN_PROGRESS");
    assert_eq!(done["status"], "UPDATE_COMPLETE", "{done}");
    assert_eq!(row_count(app, &uuid), 5);

    // Delete: every certificate row of the cluster goes with it.
    assert_eq!(app.delete(&path).status, StatusCode::NO_CONTENT);
    wait_for(app, &path, |b| b["errors"][0]["status"] == 404);
    assert_eq!(row_count(app, &uuid), 0);
});

conductor_test!(
    rotation_needs_the_driver_and_tls,
    fast_cloud(),
    |app: &TestApp| {
        // A driver that does not declare the rotations: 400 before any change.
        let r = app.post(
            "/v1/clustertemplates",
            template_body("swarm", "swarm", "fedora-atomic-latest"),
        );
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let s = app.cluster("s1", "swarm", json!({"node_count": 1}));
        let s = s["uuid"].as_str().unwrap().to_owned();
        let path = format!("/v1/clusters/{s}");
        let done = wait_for(app, &path, |b| b["status"] != "CREATE_IN_PROGRESS");
        assert_eq!(done["status"], "CREATE_COMPLETE", "{done}");
        let before = ca(app, &s, "kubernetes");
        let r = app.patch(&format!("/v1/certificates/{s}"), json!([]));
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert!(
            r.detail()
                .contains("not supported by driver swarm_fedora_atomic_v1"),
            "{}",
            r.detail()
        );
        assert_eq!(ca(app, &s, "kubernetes"), before, "nothing changed");
        assert_eq!(app.get(&path).body["status"], "CREATE_COMPLETE");

        // TLS disabled: no CA is generated, the routes say why.
        let mut plain = template_body("plain", "kubernetes", "fedora-atomic-latest");
        plain["tls_disabled"] = json!(true);
        app.post("/v1/clustertemplates", plain);
        let p = app.cluster("p1", "plain", json!({"node_count": 1}));
        let p = p["uuid"].as_str().unwrap().to_owned();
        let done = wait_for(app, &format!("/v1/clusters/{p}"), |b| {
            b["status"] != "CREATE_IN_PROGRESS"
        });
        assert_eq!(done["status"], "CREATE_COMPLETE", "{done}");
        let r = app.patch(&format!("/v1/certificates/{p}"), json!([]));
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.detail().contains("non-TLS cluster"), "{}", r.detail());
        assert_eq!(row_count(app, &p), 1, "the credential only");
    }
);
