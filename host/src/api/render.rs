//! Typed documents for the hot reads (the template list and item, the
//! cluster list and item), serialised straight into the response bytes.
//! The `serde_json::Value` documents of `templates.rs` and `clusters.rs`
//! copy every string into a map node per key and are then serialised
//! again; these borrow from the rows. Fields are declared in alphabetical
//! order because that is how serde_json's `Map` (no `preserve_order`)
//! prints them, so the bytes are those of the `Value` documents, which the
//! tests check field for field at the oldest and newest microversions.

use std::collections::BTreeMap;

use axum::{
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use chrono::NaiveDateTime;
use serde::{ser::SerializeMap, Serialize, Serializer};
use serde_json::Value;

use super::{
    common,
    error::{ApiError, ApiResult},
};
use crate::{
    db::models::{Cluster, ClusterTemplate, NodeGroup, Page},
    microversion::Version,
    status::Status,
};

/// A rendered JSON body, answered as `application/json` like `Json`.
pub struct JsonBytes(Vec<u8>);

impl IntoResponse for JsonBytes {
    fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

impl JsonBytes {
    /// One document. `size_hint` avoids regrowing the buffer.
    pub fn of<T: Serialize>(doc: &T, size_hint: usize) -> ApiResult<Self> {
        let mut out = Vec::with_capacity(size_hint);
        serde_json::to_writer(&mut out, doc).map_err(ApiError::internal)?;
        Ok(Self(out))
    }

    /// `{"<key>": items, "next": url}`, as [`common::collection`] builds it.
    pub fn collection<T: Serialize>(
        key: &str,
        items: &[T],
        last_uuid: Option<&str>,
        page: &Page,
        base: &str,
        path: &str,
    ) -> ApiResult<Self> {
        struct Body<'a, T> {
            key: &'a str,
            items: &'a [T],
            next: Option<String>,
        }
        impl<T: Serialize> Serialize for Body<'_, T> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(None)?;
                map.serialize_entry(self.key, self.items)?;
                if let Some(next) = &self.next {
                    map.serialize_entry("next", next)?;
                }
                map.end()
            }
        }
        // The key sorts before "next" ("clusters", "clustertemplates"), as
        // in the `Value` document.
        debug_assert!(key < "next");
        let next = common::next_link(items.len(), last_uuid, page, base, path);
        Self::of(&Body { key, items, next }, 1024 * (items.len() + 1))
    }

    #[cfg(test)]
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Upstream's timestamp format, as [`common::time`] writes it.
struct Time<'a>(&'a NaiveDateTime);

impl Serialize for Time<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use chrono::{Datelike, Timelike};
        let t = self.0;
        // chrono parses its format string again on every call, which was a
        // twentieth of a 100-template page. These are the same digits for
        // the years `%Y` writes as four and for any but a leap second.
        if (0..=9999).contains(&t.year()) && t.nanosecond() < 1_000_000_000 {
            s.collect_str(&format_args!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ))
        } else {
            s.collect_str(&t.format("%Y-%m-%dT%H:%M:%S+00:00"))
        }
    }
}

/// The `self` and `bookmark` links of one item, as [`common::links`].
struct Links<'a> {
    base: &'a str,
    resource: &'static str,
    uuid: &'a str,
}

impl Serialize for Links<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Href<'a>(&'a Links<'a>, &'static str);
        impl Serialize for Href<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let Links {
                    base,
                    resource,
                    uuid,
                } = self.0;
                s.collect_str(&format_args!("{base}{}/{resource}/{uuid}", self.1))
            }
        }
        #[derive(Serialize)]
        struct Link<'a> {
            href: Href<'a>,
            rel: &'static str,
        }
        [
            Link {
                href: Href(self, "/v1"),
                rel: "self",
            },
            Link {
                href: Href(self, ""),
                rel: "bookmark",
            },
        ]
        .serialize(s)
    }
}

/// A template as `GET /v1/clustertemplates[/{id}]` shows it
/// (`templates::shown`).
#[derive(Serialize)]
pub struct TemplateDoc<'a> {
    apiserver_port: Option<i32>,
    cluster_distro: Option<&'a str>,
    coe: &'a str,
    created_at: Time<'a>,
    dns_nameserver: Option<&'a str>,
    docker_storage_driver: Option<&'a str>,
    docker_volume_size: Option<i32>,
    driver: Option<&'a str>,
    external_network_id: Option<&'a str>,
    fixed_network: Option<&'a str>,
    fixed_subnet: Option<&'a str>,
    flavor_id: Option<&'a str>,
    floating_ip_enabled: bool,
    hidden: bool,
    http_proxy: Option<&'a str>,
    https_proxy: Option<&'a str>,
    image_id: &'a str,
    insecure_registry: Option<&'a str>,
    keypair_id: Option<&'a str>,
    labels: &'a BTreeMap<String, String>,
    labels_ignored: Option<Vec<String>>,
    links: Links<'a>,
    master_flavor_id: Option<&'a str>,
    master_lb_enabled: bool,
    name: &'a str,
    network_driver: Option<&'a str>,
    no_proxy: Option<&'a str>,
    project_id: &'a str,
    public: bool,
    registry_enabled: bool,
    server_type: &'a str,
    tags: Option<&'a str>,
    tls_disabled: bool,
    updated_at: Option<Time<'a>>,
    user_id: &'a str,
    uuid: &'a str,
    volume_driver: Option<&'a str>,
}

impl<'a> TemplateDoc<'a> {
    /// `labels` are the row's, parsed; `labels_ignored` is `None` when no
    /// enabled driver provides the template.
    pub fn new(
        t: &'a ClusterTemplate,
        labels: &'a BTreeMap<String, String>,
        labels_ignored: Option<Vec<String>>,
        base: &'a str,
    ) -> Self {
        Self {
            apiserver_port: t.apiserver_port,
            cluster_distro: t.cluster_distro.as_deref(),
            coe: &t.coe,
            created_at: Time(&t.created_at),
            dns_nameserver: t.dns_nameserver.as_deref(),
            docker_storage_driver: t.docker_storage_driver.as_deref(),
            docker_volume_size: t.docker_volume_size,
            driver: t.driver.as_deref(),
            external_network_id: t.external_network_id.as_deref(),
            fixed_network: t.fixed_network.as_deref(),
            fixed_subnet: t.fixed_subnet.as_deref(),
            flavor_id: t.flavor_id.as_deref(),
            floating_ip_enabled: t.floating_ip_enabled,
            hidden: t.hidden,
            http_proxy: t.http_proxy.as_deref(),
            https_proxy: t.https_proxy.as_deref(),
            image_id: &t.image_id,
            insecure_registry: t.insecure_registry.as_deref(),
            keypair_id: t.keypair_id.as_deref(),
            labels,
            labels_ignored,
            links: Links {
                base,
                resource: "clustertemplates",
                uuid: &t.uuid,
            },
            master_flavor_id: t.master_flavor_id.as_deref(),
            master_lb_enabled: t.master_lb_enabled,
            name: &t.name,
            network_driver: t.network_driver.as_deref(),
            no_proxy: t.no_proxy.as_deref(),
            project_id: &t.project_id,
            public: t.public,
            registry_enabled: t.registry_enabled,
            server_type: &t.server_type,
            tags: t.tags.as_deref(),
            tls_disabled: t.tls_disabled,
            updated_at: t.updated_at.as_ref().map(Time),
            user_id: &t.user_id,
            uuid: &t.uuid,
            volume_driver: t.volume_driver.as_deref(),
        }
    }
}

/// `stack_id` before microversion 1.13, `cluster_id` from it on; the other
/// is left out.
fn stack_fields(stack_id: Option<&str>, v: Version) -> [Option<Option<&str>>; 2] {
    if v >= Version::new(1, 13) {
        [Some(stack_id), None]
    } else {
        [None, Some(stack_id)]
    }
}

/// A cluster as `GET /v1/clusters` lists it (`clusters::summary`).
#[derive(Serialize)]
pub struct ClusterSummary<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_id: Option<Option<&'a str>>,
    cluster_template_id: &'a str,
    create_timeout: Option<i32>,
    docker_volume_size: Option<i32>,
    flavor_id: Option<&'a str>,
    health_status: Option<&'a str>,
    keypair: Option<&'a str>,
    labels: BTreeMap<String, String>,
    links: Links<'a>,
    master_count: i64,
    master_flavor_id: Option<&'a str>,
    merge_labels: bool,
    name: &'a str,
    node_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    stack_id: Option<Option<&'a str>>,
    status: Status,
    uuid: &'a str,
}

impl<'a> ClusterSummary<'a> {
    /// `groups` are the cluster's nodegroups (others are ignored).
    pub fn new(c: &'a Cluster, groups: &[&NodeGroup], base: &'a str, v: Version) -> Self {
        // Only the counts: the summary shows no addresses, so the groups'
        // address lists are not parsed.
        let (mut node_count, mut master_count) = (0, 0);
        for g in groups {
            if g.role == "master" {
                master_count += i64::from(g.node_count);
            } else {
                node_count += i64::from(g.node_count);
            }
        }
        let [cluster_id, stack_id] = stack_fields(c.stack_id.as_deref(), v);
        Self {
            cluster_id,
            cluster_template_id: &c.cluster_template_id,
            create_timeout: c.create_timeout,
            docker_volume_size: c.docker_volume_size,
            flavor_id: c.flavor_id.as_deref(),
            health_status: c.health_status.as_deref(),
            keypair: c.keypair.as_deref(),
            labels: common::labels_of(&c.labels),
            links: Links {
                base,
                resource: "clusters",
                uuid: &c.uuid,
            },
            master_count,
            master_flavor_id: c.master_flavor_id.as_deref(),
            merge_labels: false,
            name: &c.name,
            node_count,
            stack_id,
            status: c.status,
            uuid: &c.uuid,
        }
    }
}

/// A cluster as `GET /v1/clusters/{id}` and `/v1/clusters/detail` show it
/// (`clusters::full` plus `labels_ignored`, and `faults` for a failed one).
#[derive(Serialize)]
pub struct ClusterDoc<'a> {
    api_address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_id: Option<Option<&'a str>>,
    cluster_template_id: &'a str,
    coe_version: Option<&'a str>,
    container_version: Option<&'a str>,
    create_timeout: Option<i32>,
    created_at: Time<'a>,
    discovery_url: Option<&'a str>,
    docker_volume_size: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    faults: Option<BTreeMap<&'a str, Option<&'a str>>>,
    fixed_network: Option<&'a str>,
    fixed_subnet: Option<&'a str>,
    flavor_id: Option<&'a str>,
    floating_ip_enabled: bool,
    health_status: Option<&'a str>,
    health_status_reason: Value,
    keypair: Option<&'a str>,
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels_added: Option<Value>,
    labels_ignored: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels_overridden: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels_skipped: Option<Value>,
    links: Links<'a>,
    master_addresses: Vec<String>,
    master_count: i64,
    master_flavor_id: Option<&'a str>,
    master_lb_enabled: bool,
    merge_labels: bool,
    name: &'a str,
    node_addresses: Vec<String>,
    node_count: i64,
    project_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stack_id: Option<Option<&'a str>>,
    status: Status,
    status_reason: Option<&'a str>,
    updated_at: Option<Time<'a>>,
    user_id: &'a str,
    uuid: &'a str,
}

impl<'a> ClusterDoc<'a> {
    /// `groups` are the cluster's nodegroups; `template_labels` (the
    /// template's, when it still exists) adds the label diff;
    /// `labels_ignored` takes the cluster's parsed labels and gives the
    /// ones its driver ignores (`None`: driver not enabled here).
    pub fn new(
        c: &'a Cluster,
        groups: &[&'a NodeGroup],
        template_labels: Option<&BTreeMap<String, String>>,
        labels_ignored: impl FnOnce(&BTreeMap<String, String>) -> Option<Vec<String>>,
        base: &'a str,
        v: Version,
    ) -> Self {
        let n = crate::domain::counts(groups.iter().copied());
        let labels = common::labels_of(&c.labels);
        let (overridden, added, skipped) = match template_labels {
            Some(parent) => {
                let (o, a, s) = common::label_diff(parent, &labels);
                (Some(o), Some(a), Some(s))
            }
            None => (None, None, None),
        };
        let [cluster_id, stack_id] = stack_fields(c.stack_id.as_deref(), v);
        Self {
            api_address: c.api_address.as_deref(),
            cluster_id,
            cluster_template_id: &c.cluster_template_id,
            coe_version: c.coe_version.as_deref(),
            container_version: c.container_version.as_deref(),
            create_timeout: c.create_timeout,
            created_at: Time(&c.created_at),
            discovery_url: c.discovery_url.as_deref(),
            docker_volume_size: c.docker_volume_size,
            faults: None,
            fixed_network: c.fixed_network.as_deref(),
            fixed_subnet: c.fixed_subnet.as_deref(),
            flavor_id: c.flavor_id.as_deref(),
            floating_ip_enabled: c.floating_ip_enabled,
            health_status: c.health_status.as_deref(),
            health_status_reason: c
                .health_status_reason
                .as_deref()
                .map_or_else(|| Value::Object(Default::default()), common::json_of),
            keypair: c.keypair.as_deref(),
            labels_ignored: labels_ignored(&labels),
            labels,
            labels_added: added,
            labels_overridden: overridden,
            labels_skipped: skipped,
            links: Links {
                base,
                resource: "clusters",
                uuid: &c.uuid,
            },
            master_addresses: n.master_addresses,
            master_count: n.master_count,
            master_flavor_id: c.master_flavor_id.as_deref(),
            master_lb_enabled: c.master_lb_enabled,
            merge_labels: false,
            name: &c.name,
            node_addresses: n.node_addresses,
            node_count: n.node_count,
            project_id: &c.project_id,
            stack_id,
            status: c.status,
            status_reason: c.status_reason.as_deref(),
            updated_at: c.updated_at.as_ref().map(Time),
            user_id: &c.user_id,
            uuid: &c.uuid,
        }
    }

    /// Adds `faults` (failed nodegroup → reason) when the cluster failed,
    /// as `GET /v1/clusters/{id}` shows it (the detail list does not).
    pub fn with_faults(mut self, c: &Cluster, groups: &[&'a NodeGroup]) -> Self {
        if c.status.is_failed() {
            self.faults = Some(
                groups
                    .iter()
                    .filter(|g| g.status.is_some_and(Status::is_failed))
                    .map(|g| (g.name.as_str(), g.status_reason.as_deref()))
                    .collect(),
            );
        }
        self
    }
}

#[cfg(test)]
mod tests {
    //! The typed documents against the `Value` documents they replaced,
    //! byte for byte, at the oldest (1.1) and newest (1.13, `cluster_id`)
    //! microversions, with every optional field both set and unset.

    use chrono::NaiveDate;
    use serde_json::json;

    use super::*;
    use crate::api::{clusters, templates};

    const BASE: &str = "http://magnum.example:9511";
    const VERSIONS: [Version; 2] = [Version::new(1, 1), Version::new(1, 13)];

    fn at(h: u32, m: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 12, 7)
            .and_then(|d| d.and_hms_micro_opt(h, m, s, 123_456))
            .expect("a valid time")
    }

    /// A template with every optional field set (`full`) or unset.
    fn template(full: bool) -> ClusterTemplate {
        let some = |v: &str| full.then(|| v.to_owned());
        ClusterTemplate {
            id: 7,
            uuid: "0d3e6c52-9a0f-4b5e-8b43-2c1a4f5d6e7f".into(),
            project_id: "p1".into(),
            user_id: "u1".into(),
            name: "k8s-\"quoted\"-ünïcode".into(),
            coe: "kubernetes".into(),
            image_id: "fedora-atomic".into(),
            flavor_id: some("m1.small"),
            master_flavor_id: some("m1.large"),
            dns_nameserver: some("8.8.8.8"),
            keypair_id: some("default"),
            external_network_id: some("public"),
            fixed_network: some("private"),
            fixed_subnet: some("private-subnet"),
            network_driver: some("flannel"),
            volume_driver: some("cinder"),
            apiserver_port: full.then_some(6443),
            docker_volume_size: full.then_some(20),
            docker_storage_driver: some("overlay2"),
            cluster_distro: some("fedora-atomic"),
            http_proxy: some("http://proxy:3128"),
            https_proxy: some("http://proxy:3128"),
            no_proxy: some("localhost,10.0.0.0/8"),
            registry_enabled: full,
            labels: if full {
                r#"{"kube_tag":"v1.28.2","a\/b":"line\nbreak","zz":"<&>"}"#.into()
            } else {
                "{}".into()
            },
            tls_disabled: !full,
            public: full,
            hidden: !full,
            server_type: "vm".into(),
            insecure_registry: some("registry:5000"),
            master_lb_enabled: full,
            floating_ip_enabled: !full,
            tags: some("a,b"),
            driver: some("k8s_fedora_atomic_v1"),
            created_at: at(6, 51, 31),
            updated_at: full.then(|| at(7, 0, 1)),
        }
    }

    fn cluster(full: bool, status: Status) -> Cluster {
        let some = |v: &str| full.then(|| v.to_owned());
        Cluster {
            id: 3,
            uuid: "5b1f7a3e-2c4d-4e6f-8a9b-0c1d2e3f4a5b".into(),
            project_id: "p1".into(),
            user_id: "u1".into(),
            name: "bench-cluster".into(),
            cluster_template_id: "0d3e6c52-9a0f-4b5e-8b43-2c1a4f5d6e7f".into(),
            driver: "k8s_fedora_atomic_v1".into(),
            keypair: some("default"),
            docker_volume_size: full.then_some(10),
            labels: if full {
                r#"{"kube_tag":"v1.29.0","extra":"1","zz":"<&>"}"#.into()
            } else {
                // Not a map of strings: shown as {} by both.
                r#"{"n":1}"#.into()
            },
            master_flavor_id: some("m1.large"),
            flavor_id: some("m1.small"),
            stack_id: some("b4c5d6e7-stack"),
            api_address: some("https://10.0.0.5:6443"),
            status,
            status_reason: some("Stack CREATE failed"),
            health_status: some("UNHEALTHY"),
            health_status_reason: full.then(|| r#"{"api":"ok","nodes":[1,2.5,null]}"#.into()),
            create_timeout: full.then_some(60),
            discovery_url: some("https://discovery.etcd.io/x"),
            coe_version: some("v1.29.0"),
            container_version: some("1.7.0"),
            ca_cert_ref: some("ca"),
            magnum_cert_ref: some("magnum"),
            etcd_ca_cert_ref: some("etcd"),
            front_proxy_ca_cert_ref: some("fp"),
            trust_id: some("trust"),
            trustee_username: some("trustee"),
            trustee_user_id: some("trustee-id"),
            fixed_network: some("private"),
            fixed_subnet: some("private-subnet"),
            floating_ip_enabled: full,
            master_lb_enabled: !full,
            created_at: at(5, 4, 3),
            updated_at: full.then(|| at(5, 6, 7)),
        }
    }

    fn group(cluster: &Cluster, name: &str, role: &str, status: Option<Status>) -> NodeGroup {
        NodeGroup {
            id: 1,
            uuid: format!("{name}-uuid"),
            name: name.into(),
            cluster_id: cluster.uuid.clone(),
            project_id: cluster.project_id.clone(),
            docker_volume_size: None,
            labels: "{}".into(),
            flavor_id: None,
            image_id: None,
            node_addresses: format!(r#"["10.0.0.{}","10.0.1.{}"]"#, name.len(), role.len()),
            node_count: if role == "master" { 3 } else { 5 },
            role: role.into(),
            max_node_count: None,
            min_node_count: 0,
            is_default: true,
            stack_id: None,
            status,
            status_reason: status.map(|s| format!("{name} is {s}")),
            version: None,
            node_labels: "{}".into(),
            node_taints: "[]".into(),
            created_at: at(5, 4, 3),
            updated_at: None,
        }
    }

    fn groups(c: &Cluster) -> Vec<NodeGroup> {
        vec![
            group(c, "default-master", "master", Some(Status::CreateComplete)),
            group(c, "default-worker", "worker", Some(Status::CreateFailed)),
            group(c, "gpu", "worker", None),
        ]
    }

    fn bytes<T: Serialize>(doc: &T) -> Vec<u8> {
        JsonBytes::of(doc, 0).expect("renders").bytes().to_vec()
    }

    fn assert_same(typed: &[u8], value: &Value) {
        let expected = serde_json::to_vec(value).expect("serialises");
        assert_eq!(
            String::from_utf8_lossy(typed),
            String::from_utf8_lossy(&expected)
        );
    }

    #[test]
    fn template_documents_match_the_value_documents() {
        for full in [true, false] {
            let t = template(full);
            let labels = templates::labels(&t);
            for ignored in [None, Some(vec!["zz".to_owned()])] {
                let mut old = templates::view(&t, BASE);
                old["labels_ignored"] = json!(ignored);
                let new = TemplateDoc::new(&t, &labels, ignored, BASE);
                assert_same(&bytes(&new), &old);
            }
        }
    }

    #[test]
    fn cluster_summaries_match_the_value_documents() {
        for v in VERSIONS {
            for full in [true, false] {
                let c = cluster(full, Status::CreateInProgress);
                let gs = groups(&c);
                let refs: Vec<&NodeGroup> = gs.iter().collect();
                let old = clusters::summary(&c, &gs, BASE, v);
                assert_same(&bytes(&ClusterSummary::new(&c, &refs, BASE, v)), &old);
            }
        }
    }

    #[test]
    fn cluster_documents_match_the_value_documents() {
        let parent = templates::labels(&template(true));
        for v in VERSIONS {
            for full in [true, false] {
                for status in [Status::CreateComplete, Status::CreateFailed] {
                    for template_labels in [None, Some(&parent)] {
                        for ignored in [None, Some(vec!["extra".to_owned()])] {
                            let c = cluster(full, status);
                            let gs = groups(&c);
                            let refs: Vec<&NodeGroup> = gs.iter().collect();
                            // What `GET /v1/clusters/{id}` built before.
                            let mut old = clusters::full(&c, &gs, template_labels, BASE, v);
                            old["labels_ignored"] = json!(ignored);
                            let detail = ClusterDoc::new(
                                &c,
                                &refs,
                                template_labels,
                                |_| ignored.clone(),
                                BASE,
                                v,
                            );
                            // The detail list shows no faults.
                            assert_same(&bytes(&detail), &old);
                            if c.status.is_failed() {
                                let faults: serde_json::Map<String, Value> = gs
                                    .iter()
                                    .filter(|g| g.status.is_some_and(Status::is_failed))
                                    .map(|g| (g.name.clone(), json!(g.status_reason)))
                                    .collect();
                                old["faults"] = Value::Object(faults);
                            }
                            assert_same(&bytes(&detail.with_faults(&c, &refs)), &old);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn times_match_chrono_s_format() {
        let times = [
            Some(at(0, 0, 0)),
            Some(at(23, 59, 59)),
            NaiveDate::from_ymd_opt(999, 1, 2).and_then(|d| d.and_hms_opt(3, 4, 5)),
            NaiveDate::from_ymd_opt(12345, 6, 7).and_then(|d| d.and_hms_opt(8, 9, 10)),
            NaiveDate::from_ymd_opt(-1, 6, 7).and_then(|d| d.and_hms_opt(8, 9, 10)),
            // A leap second, which `%S` writes as 60.
            NaiveDate::from_ymd_opt(2016, 12, 31)
                .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 1500)),
        ];
        for t in times.into_iter().flatten() {
            assert_same(&bytes(&Time(&t)), &common::time(&t));
        }
    }

    #[test]
    fn collections_match_the_value_documents() {
        let t = template(true);
        let labels = templates::labels(&t);
        let docs = [
            TemplateDoc::new(&t, &labels, None, BASE),
            TemplateDoc::new(&t, &labels, Some(Vec::new()), BASE),
        ];
        let values: Vec<Value> = (0..2)
            .map(|i| {
                let mut v = templates::view(&t, BASE);
                v["labels_ignored"] = if i == 0 { Value::Null } else { json!([]) };
                v
            })
            .collect();
        for limit in [None, Some(2), Some(3)] {
            let page = Page {
                limit,
                ..Page::default()
            };
            let last = Some(t.uuid.as_str());
            let old = common::collection(
                "clustertemplates",
                values.clone(),
                last,
                &page,
                BASE,
                "clustertemplates",
            );
            assert_eq!(old.get("next").is_some(), limit == Some(2));
            let new = JsonBytes::collection(
                "clustertemplates",
                &docs,
                last,
                &page,
                BASE,
                "clustertemplates",
            )
            .expect("renders");
            assert_same(new.bytes(), &old);
        }
        let empty: [TemplateDoc; 0] = [];
        let new = JsonBytes::collection("clusters", &empty, None, &Page::default(), BASE, "x")
            .expect("renders");
        assert_same(new.bytes(), &json!({"clusters": []}));
    }
}
