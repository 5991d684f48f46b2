//! Request ids across a real `magnumd serve`: an inbound
//! `X-OpenStack-Request-ID` of the right form is kept and echoed, any other
//! is replaced; every request leaves one access-log line naming it, and what
//! a handler logs from the blocking pool carries the same id.

use std::{process::Command, time::Duration};

use crate::support::{register_bundled, Magnumd};

/// `curl -i`: (response head, body).
fn curl(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&str>,
) -> (String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "-X", method, "--max-time", "10"])
        .args(["-H", "Content-Type: application/json"])
        .args(["-H", "OpenStack-API-Version: container-infra latest"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        cmd.args(["-d", b]);
    }
    let out = cmd
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    (head.to_lowercase(), body.to_owned())
}

fn request_id(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("x-openstack-request-id: "))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn request_ids_are_kept_logged_and_carried_into_handlers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins.d");
    register_bundled(&plugins);
    let mut server = Magnumd::start(&plugins, &dir.path().join("var"));
    let inbound = "req-7c0c2b1e-3f4a-4d5b-8e6f-9a0b1c2d3e4f";

    let (head, _) = curl(
        &server.addr,
        "GET",
        "/v1/clustertemplates",
        &[&format!("X-OpenStack-Request-ID: {inbound}")],
        None,
    );
    assert_eq!(request_id(&head), inbound, "{head}");
    // A header of another form (here one that would forge a log line) is
    // replaced, never echoed.
    let (head, _) = curl(
        &server.addr,
        "GET",
        "/v1/clustertemplates",
        &["X-OpenStack-Request-ID: req-evil status=200"],
        None,
    );
    let replaced = request_id(&head);
    assert!(
        replaced.starts_with("req-") && replaced.len() == 40,
        "{head}"
    );
    assert_ne!(replaced, "req-evil status=200");

    // A template create (work on the blocking pool that logs), then a delete.
    let body = crate::api::template_body("rid", "kubernetes", "fedora-atomic-latest").to_string();
    let create_id = "req-11111111-2222-4333-8444-555555555555";
    let (head, _) = curl(
        &server.addr,
        "POST",
        "/v1/clustertemplates",
        &[&format!("X-OpenStack-Request-ID: {create_id}")],
        Some(&body),
    );
    assert!(head.starts_with("http/1.1 201"), "{head}");
    let (head, _) = curl(
        &server.addr,
        "POST",
        "/v1/clusters",
        &[&format!("X-OpenStack-Request-ID: {create_id}")],
        Some(r#"{"name": "c", "cluster_template_id": "rid", "node_count": 1}"#),
    );
    assert!(head.starts_with("http/1.1 202"), "{head}");

    // The delete handler logs from inside its database closure, on the
    // blocking pool.
    let delete_id = "req-99999999-8888-4777-8666-555555555555";
    let (head, _) = curl(
        &server.addr,
        "DELETE",
        "/v1/clusters/c",
        &[&format!("X-OpenStack-Request-ID: {delete_id}")],
        None,
    );
    assert!(head.starts_with("http/1.1 204"), "{head}");

    std::thread::sleep(Duration::from_millis(300));
    let log = server.log();
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("magnum::access"))
        .collect();
    assert!(
        access.iter().any(|l| l.contains(inbound)
            && l.contains("GET")
            && l.contains("/v1/clustertemplates")
            && l.contains("status=200")),
        "no access line for the inbound id:\n{log}"
    );
    assert!(
        access.iter().any(|l| l.contains(&replaced)),
        "no access line for the replaced id:\n{log}"
    );
    assert!(
        !log.contains("req-evil"),
        "a bad id reached the log:\n{log}"
    );
    assert!(access.len() >= 4, "one access line per request:\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains(delete_id) && l.contains("cluster delete accepted")),
        "a line logged on the blocking pool lacks the request id:\n{log}"
    );
    // What the create handler logged names its request.
    assert!(
        log.lines().any(|l| l.contains(create_id)
            && l.contains("cluster")
            && !l.contains("magnum::access")),
        "the handler's own log line lacks the request id:\n{log}"
    );
    let (status, _) = server.stop();
    assert!(status.success());
}
