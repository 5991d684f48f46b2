//! `magnumd db import --from URL`: adopts the database of an upstream Magnum
//! (schema of Magnum 2023.1 / 16.0.0 through 23.0.0, read from its
//! `alembic_version`) on MariaDB/MySQL. Only there: upstream's own
//! migrations fail on PostgreSQL (`UPDATE nodegroup INNER JOIN cluster …` in
//! magnum/db/sqlalchemy/alembic/versions/c04e925e65c2_nodegroups_v2.py and
//! 461d798132c7), so no upstream database lives anywhere else.
//!
//! Brought in, keeping uuids, stacks and (before Magnum 2024.2 dropped them)
//! trusts, so this conductor takes the clusters over: cluster templates,
//! clusters, their nodegroups, quotas, federations, and the clusters' CAs and
//! Magnum client certificate kept in upstream's `x509keypair` table (its
//! `x509keypair` cert manager: the key is PKCS#8 encrypted with the
//! passphrase stored beside it; here it is decrypted and sealed with this
//! service's key). Not brought in, each said in the report: clusters an
//! upstream conductor is still working on (`*_IN_PROGRESS`), clusters no
//! enabled driver serves, certificates kept in Barbican or on upstream's
//! disk (re-issue them with `openstack coe ca rotate`), upstream's
//! `magnum_service` heartbeats (its own processes', meaningless here) and
//! the trustee passwords.
//!
//! Everything is written in one transaction; a row already present (same
//! uuid; quotas by project and resource; certificates by cluster and kind)
//! is left alone, so a second run imports nothing. `--dry-run` runs the same
//! code and rolls the transaction back.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::str::FromStr;

use chrono::NaiveDateTime;
use diesel::{
    mysql::MysqlConnection,
    prelude::*,
    sql_types::{Bool, Integer, Nullable, Text, Timestamp},
};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::{
    certs::{self, Authority},
    db::{
        self,
        models::{now, Certificate, NewCertificate},
        schema, DbConnection,
    },
    plugins::registry::Registry,
    status::Status,
};

/// Upstream's alembic heads this importer knows, oldest first, with the
/// release that introduced each. Older schemas: upgrade upstream first.
const KNOWN_REVISIONS: [(&str, &str); 4] = [
    ("7da8489d6a68", "Magnum 2023.1 (16.0.0)"),
    (
        "c0f832afc4fd",
        "Magnum 2024.1 (18.0.0): cluster_template.driver",
    ),
    (
        "d7e6a4d39fe4",
        "Magnum 2024.2 and later: cluster trust columns dropped",
    ),
    (
        "b3e1cf4a2d5e",
        "Magnum 23.0.0: nodegroup node_labels and node_taints",
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "unsupported source URL '{0}': use mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE \
         (oslo's mysql+pymysql:// as in magnum.conf is accepted); upstream Magnum's \
         migrations run on MariaDB/MySQL only"
    )]
    UnsupportedUrl(String),
    #[error("cannot connect to the upstream database at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error(
        "{0} does not look like an upstream Magnum database: it has no alembic_version \
         (run `magnum-db-manage upgrade` with upstream's Magnum first)"
    )]
    NotMagnum(String),
    #[error(
        "the upstream schema is at alembic revision {0}, which this importer does not know; \
         it reads Magnum 2023.1 (16.0.0) through 23.0.0: upgrade upstream's database with \
         its `magnum-db-manage upgrade` to one of those releases first"
    )]
    UnknownRevision(String),
    #[error("reading the upstream database: {0}")]
    Read(diesel::result::Error),
    #[error("writing this service's database: {0}")]
    Write(#[from] diesel::result::Error),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error(transparent)]
    Cert(#[from] certs::CertError),
}

/// Why the transaction ended without commit: a failure, or a dry run,
/// which rolls back on purpose.
enum Outcome {
    Failed(ImportError),
    DryRun,
}

impl From<diesel::result::Error> for Outcome {
    fn from(e: diesel::result::Error) -> Self {
        Self::Failed(ImportError::Write(e))
    }
}

impl From<ImportError> for Outcome {
    fn from(e: ImportError) -> Self {
        Self::Failed(e)
    }
}

impl From<certs::CertError> for Outcome {
    fn from(e: certs::CertError) -> Self {
        Self::Failed(e.into())
    }
}

/// Counts per table, and every row left out with the reason.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub source: String,
    pub revision: String,
    pub dry_run: bool,
    /// Table → (imported, already present).
    pub counts: BTreeMap<&'static str, (usize, usize)>,
    /// `name (uuid): why`, per row not imported.
    pub skipped: Vec<String>,
    /// Clusters whose certificates must be re-issued, and why.
    pub reissue: Vec<String>,
}

impl Report {
    fn imported(&mut self, table: &'static str) {
        self.counts.entry(table).or_default().0 += 1;
    }

    fn present(&mut self, table: &'static str) {
        self.counts.entry(table).or_default().1 += 1;
    }

    /// Rows of `table` imported by this run.
    pub fn imported_of(&self, table: &str) -> usize {
        self.counts.get(table).map_or(0, |c| c.0)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let release = KNOWN_REVISIONS
            .iter()
            .find(|(r, _)| *r == self.revision)
            .map_or("", |(_, what)| what);
        let _ = writeln!(
            out,
            "source: {} (alembic revision {}, {release})",
            self.source, self.revision
        );
        let verb = if self.dry_run {
            "would import"
        } else {
            "imported"
        };
        for table in TABLES {
            let (new, present) = self.counts.get(table).copied().unwrap_or_default();
            let _ = writeln!(out, "{table}: {verb} {new}, already present {present}");
        }
        for line in &self.skipped {
            let _ = writeln!(out, "not imported: {line}");
        }
        for line in &self.reissue {
            let _ = writeln!(out, "re-issue certificates: {line}");
        }
        let _ = writeln!(
            out,
            "never imported: magnum_service (upstream's own processes), trustee passwords, \
             x509keypair rows no imported cluster refers to"
        );
        if self.dry_run {
            let _ = writeln!(out, "dry run: nothing was written");
        }
        out
    }
}

const TABLES: [&str; 6] = [
    "cluster_template",
    "cluster",
    "nodegroup",
    "quotas",
    "federation",
    "certificate",
];

macro_rules! load {
    ($src:expr, $ty:ty, $sql:expr) => {
        diesel::sql_query($sql)
            .load::<$ty>($src)
            .map_err(ImportError::Read)
    };
}

/// The source URL as diesel takes it: oslo.db's dialect+driver scheme
/// (`mysql+pymysql://`) becomes a plain one, and oslo's `charset`
/// parameter, which diesel's URL parser does not know, is dropped (diesel
/// speaks utf8mb4).
fn source_url(url: &str) -> Result<String, ImportError> {
    let url = url.trim();
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| ImportError::UnsupportedUrl(redact(url)))?;
    if !matches!(scheme.split('+').next(), Some("mysql" | "mariadb")) {
        return Err(ImportError::UnsupportedUrl(redact(url)));
    }
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("charset="))
        .collect();
    let mut out = format!("mysql://{base}");
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    Ok(out)
}

/// The URL with any password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn connect(url: &str) -> Result<(MysqlConnection, String), ImportError> {
    let url = source_url(url)?;
    let shown = redact(&url);
    let conn = MysqlConnection::establish(&url).map_err(|e| ImportError::Connect {
        url: shown.clone(),
        reason: e.to_string().trim_end().to_owned(),
    })?;
    Ok((conn, shown))
}

#[derive(QueryableByName)]
struct Revision {
    #[diesel(sql_type = Text)]
    version_num: String,
}

#[derive(QueryableByName)]
struct UpTemplate {
    #[diesel(sql_type = Text)]
    uuid: String,
    #[diesel(sql_type = Nullable<Text>)]
    project_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    user_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    coe: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    image_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    flavor_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    master_flavor_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    dns_nameserver: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    keypair_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    external_network_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    fixed_network: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    fixed_subnet: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    network_driver: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    volume_driver: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    apiserver_port: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    docker_volume_size: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    docker_storage_driver: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    cluster_distro: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    http_proxy: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    https_proxy: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    no_proxy: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    registry_enabled: Option<bool>,
    #[diesel(sql_type = Nullable<Text>)]
    labels: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    tls_disabled: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    public: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    hidden: Option<bool>,
    #[diesel(sql_type = Nullable<Text>)]
    server_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    insecure_registry: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    master_lb_enabled: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    floating_ip_enabled: Option<bool>,
    #[diesel(sql_type = Nullable<Text>)]
    tags: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    driver: Option<String>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    created_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    updated_at: Option<NaiveDateTime>,
}

#[derive(QueryableByName)]
struct UpCluster {
    #[diesel(sql_type = Text)]
    uuid: String,
    #[diesel(sql_type = Nullable<Text>)]
    project_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    user_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    cluster_template_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    keypair: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    docker_volume_size: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    labels: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    master_flavor_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    flavor_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    stack_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    api_address: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    status_reason: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    health_status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    health_status_reason: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    create_timeout: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    discovery_url: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    coe_version: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    container_version: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    ca_cert_ref: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    magnum_cert_ref: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    etcd_ca_cert_ref: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    front_proxy_ca_cert_ref: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    trust_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    trustee_username: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    trustee_user_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    fixed_network: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    fixed_subnet: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    floating_ip_enabled: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    master_lb_enabled: Option<bool>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    created_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    updated_at: Option<NaiveDateTime>,
}

#[derive(QueryableByName)]
struct UpNodeGroup {
    #[diesel(sql_type = Text)]
    uuid: String,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    cluster_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    project_id: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    docker_volume_size: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    labels: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    flavor_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    image_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    node_addresses: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    node_count: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    role: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    max_node_count: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    min_node_count: Option<i32>,
    #[diesel(sql_type = Nullable<Bool>)]
    is_default: Option<bool>,
    #[diesel(sql_type = Nullable<Text>)]
    stack_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    status_reason: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    version: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    node_labels: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    node_taints: Option<String>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    created_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    updated_at: Option<NaiveDateTime>,
}

#[derive(QueryableByName)]
struct UpQuota {
    #[diesel(sql_type = Nullable<Text>)]
    project_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    resource: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    hard_limit: Option<i32>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    created_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    updated_at: Option<NaiveDateTime>,
}

#[derive(QueryableByName)]
struct UpFederation {
    #[diesel(sql_type = Text)]
    uuid: String,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    project_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    hostcluster_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    member_ids: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    status_reason: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    properties: Option<String>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    created_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    updated_at: Option<NaiveDateTime>,
}

#[derive(QueryableByName)]
struct UpKeyPair {
    #[diesel(sql_type = Text)]
    uuid: String,
    #[diesel(sql_type = Nullable<Text>)]
    certificate: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    private_key: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    private_key_passphrase: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = schema::cluster_template)]
struct TemplateRow {
    uuid: String,
    project_id: String,
    user_id: String,
    name: String,
    coe: String,
    image_id: String,
    flavor_id: Option<String>,
    master_flavor_id: Option<String>,
    dns_nameserver: Option<String>,
    keypair_id: Option<String>,
    external_network_id: Option<String>,
    fixed_network: Option<String>,
    fixed_subnet: Option<String>,
    network_driver: Option<String>,
    volume_driver: Option<String>,
    apiserver_port: Option<i32>,
    docker_volume_size: Option<i32>,
    docker_storage_driver: Option<String>,
    cluster_distro: Option<String>,
    http_proxy: Option<String>,
    https_proxy: Option<String>,
    no_proxy: Option<String>,
    registry_enabled: bool,
    labels: String,
    tls_disabled: bool,
    public: bool,
    hidden: bool,
    server_type: String,
    insecure_registry: Option<String>,
    master_lb_enabled: bool,
    floating_ip_enabled: bool,
    tags: Option<String>,
    driver: Option<String>,
    created_at: NaiveDateTime,
    updated_at: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = schema::cluster)]
struct ClusterRow {
    uuid: String,
    project_id: String,
    user_id: String,
    name: String,
    cluster_template_id: String,
    driver: String,
    keypair: Option<String>,
    docker_volume_size: Option<i32>,
    labels: String,
    master_flavor_id: Option<String>,
    flavor_id: Option<String>,
    stack_id: Option<String>,
    api_address: Option<String>,
    status: String,
    status_reason: Option<String>,
    health_status: Option<String>,
    health_status_reason: Option<String>,
    create_timeout: Option<i32>,
    discovery_url: Option<String>,
    coe_version: Option<String>,
    container_version: Option<String>,
    ca_cert_ref: Option<String>,
    magnum_cert_ref: Option<String>,
    etcd_ca_cert_ref: Option<String>,
    front_proxy_ca_cert_ref: Option<String>,
    trust_id: Option<String>,
    trustee_username: Option<String>,
    trustee_user_id: Option<String>,
    fixed_network: Option<String>,
    fixed_subnet: Option<String>,
    floating_ip_enabled: bool,
    master_lb_enabled: bool,
    created_at: NaiveDateTime,
    updated_at: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = schema::nodegroup)]
struct NodeGroupRow {
    uuid: String,
    name: String,
    cluster_id: String,
    project_id: String,
    docker_volume_size: Option<i32>,
    labels: String,
    flavor_id: Option<String>,
    image_id: Option<String>,
    node_addresses: String,
    node_count: i32,
    role: String,
    max_node_count: Option<i32>,
    min_node_count: i32,
    is_default: bool,
    stack_id: Option<String>,
    status: Option<String>,
    status_reason: Option<String>,
    version: Option<String>,
    node_labels: String,
    node_taints: String,
    created_at: NaiveDateTime,
    updated_at: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = schema::quotas)]
struct QuotaRow {
    project_id: String,
    resource: String,
    hard_limit: i32,
    created_at: NaiveDateTime,
    updated_at: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = schema::federation)]
struct FederationRow {
    uuid: String,
    name: String,
    project_id: String,
    hostcluster_id: Option<String>,
    member_ids: String,
    status: Option<String>,
    status_reason: Option<String>,
    properties: String,
    created_at: NaiveDateTime,
    updated_at: Option<NaiveDateTime>,
}

/// A JSON object column: upstream's JSONEncodedDict, NULL or unreadable
/// becoming `{}`; non-string label values become their JSON text, as the
/// API keeps labels as strings.
fn json_object(raw: Option<&str>, strings: bool) -> String {
    let parsed = raw.and_then(|r| serde_json::from_str::<Value>(r).ok());
    let Some(Value::Object(mut map)) = parsed else {
        return "{}".to_owned();
    };
    if strings {
        for value in map.values_mut() {
            if !value.is_string() {
                let text = match &*value {
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                *value = Value::String(text);
            }
        }
    }
    Value::Object(map).to_string()
}

/// A JSON list column (JSONEncodedList), NULL or unreadable becoming `[]`.
fn json_list(raw: Option<&str>) -> String {
    match raw.and_then(|r| serde_json::from_str::<Value>(r).ok()) {
        Some(list @ Value::Array(_)) => list.to_string(),
        _ => "[]".to_owned(),
    }
}

/// The select list of `table` for this revision: columns a schema lacks
/// are read as NULL.
fn select(columns: &[&str], absent: &BTreeSet<&str>, table: &str) -> String {
    let list: Vec<String> = columns
        .iter()
        .map(|c| {
            if absent.contains(c) {
                format!("NULL AS {c}")
            } else {
                c.to_string()
            }
        })
        .collect();
    format!("SELECT {} FROM {table} ORDER BY id", list.join(", "))
}

const TEMPLATE_COLUMNS: [&str; 35] = [
    "uuid",
    "project_id",
    "user_id",
    "name",
    "coe",
    "image_id",
    "flavor_id",
    "master_flavor_id",
    "dns_nameserver",
    "keypair_id",
    "external_network_id",
    "fixed_network",
    "fixed_subnet",
    "network_driver",
    "volume_driver",
    "apiserver_port",
    "docker_volume_size",
    "docker_storage_driver",
    "cluster_distro",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "registry_enabled",
    "labels",
    "tls_disabled",
    "public",
    "hidden",
    "server_type",
    "insecure_registry",
    "master_lb_enabled",
    "floating_ip_enabled",
    "tags",
    "driver",
    "created_at",
    "updated_at",
];

const CLUSTER_COLUMNS: [&str; 33] = [
    "uuid",
    "project_id",
    "user_id",
    "name",
    "cluster_template_id",
    "keypair",
    "docker_volume_size",
    "labels",
    "master_flavor_id",
    "flavor_id",
    "stack_id",
    "api_address",
    "status",
    "status_reason",
    "health_status",
    "health_status_reason",
    "create_timeout",
    "discovery_url",
    "coe_version",
    "container_version",
    "ca_cert_ref",
    "magnum_cert_ref",
    "etcd_ca_cert_ref",
    "front_proxy_ca_cert_ref",
    "trust_id",
    "trustee_username",
    "trustee_user_id",
    "fixed_network",
    "fixed_subnet",
    "floating_ip_enabled",
    "master_lb_enabled",
    "created_at",
    "updated_at",
];

const NODEGROUP_COLUMNS: [&str; 22] = [
    "uuid",
    "name",
    "cluster_id",
    "project_id",
    "docker_volume_size",
    "labels",
    "flavor_id",
    "image_id",
    "node_addresses",
    "node_count",
    "role",
    "max_node_count",
    "min_node_count",
    "is_default",
    "stack_id",
    "status",
    "status_reason",
    "version",
    "node_labels",
    "node_taints",
    "created_at",
    "updated_at",
];

/// Everything read from upstream, before anything is written.
struct Upstream {
    templates: Vec<UpTemplate>,
    clusters: Vec<UpCluster>,
    nodegroups: Vec<UpNodeGroup>,
    quotas: Vec<UpQuota>,
    federations: Vec<UpFederation>,
    keypairs: BTreeMap<String, UpKeyPair>,
}

fn read(source: &mut MysqlConnection, revision: &str) -> Result<Upstream, ImportError> {
    let index = KNOWN_REVISIONS
        .iter()
        .position(|(r, _)| *r == revision)
        .ok_or_else(|| ImportError::UnknownRevision(revision.to_owned()))?;
    let mut absent = BTreeSet::new();
    if index < 1 {
        absent.insert("driver");
    }
    if index >= 2 {
        absent.extend(["trust_id", "trustee_username", "trustee_user_id"]);
    }
    if index < 3 {
        absent.extend(["node_labels", "node_taints"]);
    }
    let templates = load!(
        source,
        UpTemplate,
        select(&TEMPLATE_COLUMNS, &absent, "cluster_template")
    )?;
    let clusters = load!(
        source,
        UpCluster,
        select(&CLUSTER_COLUMNS, &absent, "cluster")
    )?;
    let nodegroups = load!(
        source,
        UpNodeGroup,
        select(&NODEGROUP_COLUMNS, &absent, "nodegroup")
    )?;
    let quotas = load!(
        source,
        UpQuota,
        "SELECT project_id, resource, hard_limit, created_at, updated_at FROM quotas ORDER BY id"
    )?;
    let federations = load!(
        source,
        UpFederation,
        "SELECT uuid, name, project_id, hostcluster_id, member_ids, status, status_reason, \
         properties, created_at, updated_at FROM federation ORDER BY id"
    )?;
    let keypairs = load!(
        source,
        UpKeyPair,
        "SELECT uuid, certificate, private_key, private_key_passphrase FROM x509keypair"
    )?
    .into_iter()
    .map(|k| (k.uuid.clone(), k))
    .collect();
    Ok(Upstream {
        templates,
        clusters,
        nodegroups,
        quotas,
        federations,
        keypairs,
    })
}

/// Which driver of this service takes a template's clusters: the template's
/// explicit `driver` (upstream's names of bundled drivers resolve to them),
/// else the enabled driver providing (server_type, cluster_distro, coe).
fn driver_for(registry: &Registry, t: &TemplateRow) -> Result<String, String> {
    let distro = t.cluster_distro.as_deref().unwrap_or_default();
    if let Some(name) = t.driver.as_deref().filter(|d| !d.is_empty()) {
        let lookup =
            crate::plugins::registry::upstream_name(registry, name).map_or(name, |u| u.driver);
        return registry
            .get(lookup)
            .map(|d| d.name.clone())
            .ok_or_else(|| format!("its template names driver {name}, which is not enabled here"));
    }
    registry
        .for_tuple(&t.server_type, distro, &t.coe)
        .map(|d| d.name.clone())
        .ok_or_else(|| {
            format!(
                "no enabled driver provides its template's cluster type ({}, {distro}, {}); \
                 enable one and run the import again",
                t.server_type, t.coe
            )
        })
}

fn template_row(t: &UpTemplate) -> TemplateRow {
    TemplateRow {
        uuid: t.uuid.clone(),
        project_id: t.project_id.clone().unwrap_or_default(),
        user_id: t.user_id.clone().unwrap_or_default(),
        name: t.name.clone().unwrap_or_else(|| t.uuid.clone()),
        coe: t.coe.clone().unwrap_or_default(),
        image_id: t.image_id.clone().unwrap_or_default(),
        flavor_id: t.flavor_id.clone(),
        master_flavor_id: t.master_flavor_id.clone(),
        dns_nameserver: t.dns_nameserver.clone(),
        keypair_id: t.keypair_id.clone(),
        external_network_id: t.external_network_id.clone(),
        fixed_network: t.fixed_network.clone(),
        fixed_subnet: t.fixed_subnet.clone(),
        network_driver: t.network_driver.clone(),
        volume_driver: t.volume_driver.clone(),
        apiserver_port: t.apiserver_port,
        docker_volume_size: t.docker_volume_size,
        docker_storage_driver: t.docker_storage_driver.clone(),
        cluster_distro: t.cluster_distro.clone(),
        http_proxy: t.http_proxy.clone(),
        https_proxy: t.https_proxy.clone(),
        no_proxy: t.no_proxy.clone(),
        registry_enabled: t.registry_enabled.unwrap_or(false),
        labels: json_object(t.labels.as_deref(), true),
        tls_disabled: t.tls_disabled.unwrap_or(false),
        public: t.public.unwrap_or(false),
        hidden: t.hidden.unwrap_or(false),
        server_type: t
            .server_type
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "vm".to_owned()),
        insecure_registry: t.insecure_registry.clone(),
        master_lb_enabled: t.master_lb_enabled.unwrap_or(false),
        floating_ip_enabled: t.floating_ip_enabled.unwrap_or(true),
        tags: t.tags.clone(),
        driver: t.driver.clone().filter(|d| !d.is_empty()),
        created_at: t.created_at.unwrap_or_else(now),
        updated_at: t.updated_at,
    }
}

fn cluster_row(c: &UpCluster, template: &str, driver: String, status: Status) -> ClusterRow {
    ClusterRow {
        uuid: c.uuid.clone(),
        project_id: c.project_id.clone().unwrap_or_default(),
        user_id: c.user_id.clone().unwrap_or_default(),
        name: c.name.clone().unwrap_or_else(|| c.uuid.clone()),
        cluster_template_id: template.to_owned(),
        driver,
        keypair: c.keypair.clone(),
        docker_volume_size: c.docker_volume_size,
        labels: json_object(c.labels.as_deref(), true),
        master_flavor_id: c.master_flavor_id.clone(),
        flavor_id: c.flavor_id.clone(),
        stack_id: c.stack_id.clone(),
        api_address: c.api_address.clone(),
        status: status.to_string(),
        status_reason: c.status_reason.clone(),
        health_status: c.health_status.clone(),
        health_status_reason: c
            .health_status_reason
            .as_deref()
            .map(|r| json_object(Some(r), false)),
        create_timeout: c.create_timeout,
        discovery_url: c.discovery_url.clone(),
        coe_version: c.coe_version.clone(),
        container_version: c.container_version.clone(),
        ca_cert_ref: c.ca_cert_ref.clone(),
        magnum_cert_ref: c.magnum_cert_ref.clone(),
        etcd_ca_cert_ref: c.etcd_ca_cert_ref.clone(),
        front_proxy_ca_cert_ref: c.front_proxy_ca_cert_ref.clone(),
        trust_id: c.trust_id.clone(),
        trustee_username: c.trustee_username.clone(),
        trustee_user_id: c.trustee_user_id.clone(),
        fixed_network: c.fixed_network.clone(),
        fixed_subnet: c.fixed_subnet.clone(),
        floating_ip_enabled: c.floating_ip_enabled.unwrap_or(true),
        master_lb_enabled: c.master_lb_enabled.unwrap_or(false),
        created_at: c.created_at.unwrap_or_else(now),
        updated_at: c.updated_at,
    }
}

fn nodegroup_row(g: &UpNodeGroup, cluster: &str, project: &str) -> NodeGroupRow {
    let role = g.role.clone().unwrap_or_else(|| "worker".to_owned());
    NodeGroupRow {
        uuid: g.uuid.clone(),
        name: g.name.clone().unwrap_or_else(|| g.uuid.clone()),
        cluster_id: cluster.to_owned(),
        project_id: g.project_id.clone().unwrap_or_else(|| project.to_owned()),
        docker_volume_size: g.docker_volume_size,
        labels: json_object(g.labels.as_deref(), true),
        flavor_id: g.flavor_id.clone(),
        image_id: g.image_id.clone(),
        node_addresses: json_list(g.node_addresses.as_deref()),
        node_count: g.node_count.unwrap_or(0),
        min_node_count: g
            .min_node_count
            .unwrap_or(if role == "master" { 1 } else { 0 }),
        role,
        max_node_count: g.max_node_count,
        is_default: g.is_default.unwrap_or(false),
        stack_id: g.stack_id.clone(),
        status: g.status.clone(),
        status_reason: g.status_reason.clone(),
        version: g.version.clone(),
        node_labels: json_object(g.node_labels.as_deref(), true),
        node_taints: json_list(g.node_taints.as_deref()),
        created_at: g.created_at.unwrap_or_else(now),
        updated_at: g.updated_at,
    }
}

/// Upstream's key (PKCS#8, encrypted with the passphrase stored beside it
/// by `magnum/common/x509/operations.py`; or a plain one) as plain PKCS#8
/// PEM, as this service keeps keys before sealing them.
fn open_upstream_key(pair: &UpKeyPair) -> Result<Zeroizing<String>, String> {
    use pkcs8::{der::pem::LineEnding, EncryptedPrivateKeyInfo, PrivateKeyInfo};
    let pem = pair.private_key.as_deref().ok_or("it has no private key")?;
    if pem.contains("BEGIN PRIVATE KEY") {
        return Ok(Zeroizing::new(pem.to_owned()));
    }
    let (label, der) = pkcs8::der::pem::decode_vec(pem.as_bytes())
        .map_err(|e| format!("its private key is not PEM: {e}"))?;
    if label != "ENCRYPTED PRIVATE KEY" {
        return Err(format!("its private key is a {label}, not PKCS#8"));
    }
    let info = EncryptedPrivateKeyInfo::try_from(der.as_slice())
        .map_err(|e| format!("its encrypted private key does not parse: {e}"))?;
    let passphrase = pair
        .private_key_passphrase
        .as_deref()
        .ok_or("its private key is encrypted and it has no passphrase")?;
    let plain = info
        .decrypt(passphrase)
        .map_err(|e| format!("its private key does not open with its passphrase: {e}"))?;
    // Parsed once, so a key that decrypted to garbage is refused here.
    PrivateKeyInfo::try_from(plain.as_bytes())
        .map_err(|e| format!("its decrypted private key does not parse: {e}"))?;
    plain
        .to_pem("PRIVATE KEY", LineEnding::LF)
        .map_err(|e| format!("cannot encode its private key: {e}"))
}

/// The certificate rows of one cluster, or why they must be re-issued.
fn certificate_rows(
    authority: &Authority,
    keypairs: &BTreeMap<String, UpKeyPair>,
    c: &UpCluster,
) -> Result<Vec<NewCertificate>, String> {
    let refs = [
        (certs::KUBERNETES, &c.ca_cert_ref),
        (certs::ETCD, &c.etcd_ca_cert_ref),
        (certs::FRONT_PROXY, &c.front_proxy_ca_cert_ref),
        (certs::MAGNUM_CLIENT, &c.magnum_cert_ref),
    ];
    let mut rows = Vec::new();
    for (kind, reference) in refs {
        let Some(reference) = reference.as_deref().filter(|r| !r.is_empty()) else {
            return Err(format!("it has no {kind} certificate reference"));
        };
        let Some(pair) = keypairs.get(reference) else {
            return Err(if reference.contains("://") {
                format!(
                    "its {kind} certificate is kept outside the database ({reference}, Barbican)"
                )
            } else {
                format!("its {kind} certificate {reference} is not in x509keypair (the `local` cert manager keeps files on upstream's conductor)")
            });
        };
        let cert = pair
            .certificate
            .as_deref()
            .filter(|p| p.contains("BEGIN CERTIFICATE"))
            .ok_or_else(|| format!("x509keypair {reference} has no PEM certificate"))?;
        let key = open_upstream_key(pair).map_err(|e| format!("x509keypair {reference}: {e}"))?;
        let sealed = authority
            .seal(key.as_bytes(), &c.uuid, kind)
            .map_err(|e| e.to_string())?;
        let mut row = NewCertificate::new(&c.uuid, kind, cert, &sealed);
        // The upstream reference stays the certificate's id.
        row.uuid = reference.to_owned();
        rows.push(row);
    }
    Ok(rows)
}

fn exists<T>(found: QueryResult<Option<T>>) -> Result<bool, Outcome> {
    Ok(found?.is_some())
}

/// Reads the upstream database at `from` and writes what it holds into
/// `conn` (this service's database, already migrated), in one transaction.
pub fn run(
    conn: &mut DbConnection,
    from: &str,
    registry: &Registry,
    authority: &Authority,
    dry_run: bool,
) -> Result<Report, ImportError> {
    let (mut source, shown) = connect(from)?;
    let revision = load!(
        &mut source,
        Revision,
        "SELECT version_num FROM alembic_version"
    )
    .map_err(|_| ImportError::NotMagnum(shown.clone()))?
    .into_iter()
    .next()
    .ok_or_else(|| ImportError::NotMagnum(shown.clone()))?
    .version_num;
    let upstream = read(&mut source, &revision)?;
    drop(source);
    let mut report = Report {
        source: shown,
        revision,
        dry_run,
        ..Report::default()
    };
    let written = db::write_transaction(conn, |conn| {
        write(conn, &upstream, registry, authority, &mut report)?;
        if dry_run {
            return Err(Outcome::DryRun);
        }
        Ok(())
    });
    match written {
        Ok(()) | Err(Outcome::DryRun) => Ok(report),
        Err(Outcome::Failed(e)) => Err(e),
    }
}

fn write(
    conn: &mut DbConnection,
    up: &Upstream,
    registry: &Registry,
    authority: &Authority,
    report: &mut Report,
) -> Result<(), Outcome> {
    use schema::{certificate, cluster, cluster_template, federation, nodegroup, quotas};

    let mut templates = BTreeMap::new();
    for t in &up.templates {
        let row = template_row(t);
        if exists(
            cluster_template::table
                .filter(cluster_template::uuid.eq(&row.uuid))
                .select(cluster_template::id)
                .first::<i32>(conn)
                .optional(),
        )? {
            report.present("cluster_template");
        } else {
            diesel::insert_into(cluster_template::table)
                .values(&row)
                .execute(conn)?;
            report.imported("cluster_template");
        }
        templates.insert(row.uuid.clone(), row);
    }

    let mut adopted = BTreeMap::new();
    for c in &up.clusters {
        let name = c.name.as_deref().unwrap_or(&c.uuid);
        let skip = |why: String| format!("cluster {name} ({}): {why}", c.uuid);
        let Some(template) = c
            .cluster_template_id
            .as_deref()
            .and_then(|id| templates.get(id))
        else {
            report
                .skipped
                .push(skip("its cluster template is not in the database".into()));
            continue;
        };
        let status = match c.status.as_deref().map(Status::from_str) {
            Some(Ok(s)) => s,
            _ => {
                report.skipped.push(skip(format!(
                    "its status {:?} is not one of Magnum's",
                    c.status.as_deref().unwrap_or("")
                )));
                continue;
            }
        };
        if status.to_string().ends_with("_IN_PROGRESS") {
            report.skipped.push(skip(format!(
                "{status}: an upstream conductor is still working on it; let the operation \
                 finish, stop upstream's conductor and run the import again"
            )));
            continue;
        }
        let driver = match driver_for(registry, template) {
            Ok(d) => d,
            Err(why) => {
                report.skipped.push(skip(why));
                continue;
            }
        };
        let row = cluster_row(c, &template.uuid, driver, status);
        if exists(
            cluster::table
                .filter(cluster::uuid.eq(&row.uuid))
                .select(cluster::id)
                .first::<i32>(conn)
                .optional(),
        )? {
            report.present("cluster");
        } else {
            diesel::insert_into(cluster::table)
                .values(&row)
                .execute(conn)?;
            report.imported("cluster");
        }
        adopted.insert(c.uuid.clone(), (c, template.tls_disabled));
    }

    for g in &up.nodegroups {
        let Some(cluster_id) = g.cluster_id.as_deref() else {
            continue;
        };
        let Some((c, _)) = adopted.get(cluster_id) else {
            // Its cluster was left out (and said so) above.
            continue;
        };
        let row = nodegroup_row(g, cluster_id, c.project_id.as_deref().unwrap_or_default());
        if exists(
            nodegroup::table
                .filter(nodegroup::uuid.eq(&row.uuid))
                .select(nodegroup::id)
                .first::<i32>(conn)
                .optional(),
        )? {
            report.present("nodegroup");
        } else {
            diesel::insert_into(nodegroup::table)
                .values(&row)
                .execute(conn)?;
            report.imported("nodegroup");
        }
    }

    for q in &up.quotas {
        let (Some(project), Some(resource), Some(limit)) =
            (q.project_id.as_deref(), q.resource.as_deref(), q.hard_limit)
        else {
            report
                .skipped
                .push("a quota row without project, resource or limit".into());
            continue;
        };
        if exists(
            quotas::table
                .filter(quotas::project_id.eq(project))
                .filter(quotas::resource.eq(resource))
                .select(quotas::id)
                .first::<i32>(conn)
                .optional(),
        )? {
            report.present("quotas");
            continue;
        }
        diesel::insert_into(quotas::table)
            .values(&QuotaRow {
                project_id: project.to_owned(),
                resource: resource.to_owned(),
                hard_limit: limit,
                created_at: q.created_at.unwrap_or_else(now),
                updated_at: q.updated_at,
            })
            .execute(conn)?;
        report.imported("quotas");
    }

    for f in &up.federations {
        if exists(
            federation::table
                .filter(federation::uuid.eq(&f.uuid))
                .select(federation::id)
                .first::<i32>(conn)
                .optional(),
        )? {
            report.present("federation");
            continue;
        }
        diesel::insert_into(federation::table)
            .values(&FederationRow {
                uuid: f.uuid.clone(),
                name: f.name.clone().unwrap_or_else(|| f.uuid.clone()),
                project_id: f.project_id.clone().unwrap_or_default(),
                hostcluster_id: f.hostcluster_id.clone(),
                member_ids: json_list(f.member_ids.as_deref()),
                status: f.status.clone(),
                status_reason: f.status_reason.clone(),
                properties: json_object(f.properties.as_deref(), false),
                created_at: f.created_at.unwrap_or_else(now),
                updated_at: f.updated_at,
            })
            .execute(conn)?;
        report.imported("federation");
    }

    for (uuid, (c, tls_disabled)) in &adopted {
        let name = c.name.as_deref().unwrap_or(uuid);
        let have: Vec<String> = certificate::table
            .filter(certificate::cluster_uuid.eq(uuid))
            .select(certificate::kind)
            .load(conn)?;
        if !*tls_disabled {
            if have.iter().any(|k| k == certs::KUBERNETES) {
                let kinds = [
                    certs::KUBERNETES,
                    certs::ETCD,
                    certs::FRONT_PROXY,
                    certs::MAGNUM_CLIENT,
                ];
                for _ in have.iter().filter(|k| kinds.contains(&k.as_str())) {
                    report.present("certificate");
                }
            } else {
                match certificate_rows(authority, &up.keypairs, c) {
                    Ok(rows) => {
                        for row in &rows {
                            Certificate::insert(conn, row)?;
                            report.imported("certificate");
                        }
                    }
                    Err(why) => report.reissue.push(format!(
                        "cluster {name} ({uuid}): {why}; run `openstack coe ca rotate {uuid}` \
                         after the import"
                    )),
                }
            }
        }
        // The credential nodes booted by this service's drivers present
        // (a resize adds such nodes); upstream has none.
        authority.ensure_cluster(conn, uuid, name, false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oslo_urls_become_diesel_urls() {
        assert_eq!(
            source_url("mysql+pymysql://magnum:pw@db:3306/magnum?charset=utf8").unwrap(),
            "mysql://magnum:pw@db:3306/magnum"
        );
        assert_eq!(
            source_url("mysql://m@db/magnum?charset=utf8&ssl_mode=required").unwrap(),
            "mysql://m@db/magnum?ssl_mode=required"
        );
        for other in [
            "postgresql+psycopg2://m@db/magnum",
            "sqlite:///var/lib/magnum.db",
        ] {
            let err = source_url(other).unwrap_err();
            assert!(err.to_string().contains("MariaDB/MySQL only"), "{err}");
        }
        assert_eq!(
            redact("mysql://magnum:secret@db/magnum"),
            "mysql://magnum:***@db/magnum"
        );
    }

    #[test]
    fn json_columns_take_upstream_nulls_and_values() {
        assert_eq!(json_object(None, true), "{}");
        assert_eq!(json_object(Some("not json"), true), "{}");
        assert_eq!(
            json_object(Some(r#"{"a": 1, "b": "x", "c": null}"#), true),
            r#"{"a":"1","b":"x","c":""}"#
        );
        assert_eq!(json_object(Some(r#"{"a": 1}"#), false), r#"{"a":1}"#);
        assert_eq!(json_list(None), "[]");
        assert_eq!(json_list(Some(r#"["10.0.0.5"]"#)), r#"["10.0.0.5"]"#);
        assert_eq!(json_list(Some("{}")), "[]");
    }

    #[test]
    fn revisions_decide_the_columns_read() {
        let absent: BTreeSet<&str> = ["driver"].into_iter().collect();
        assert_eq!(
            select(&["uuid", "driver"], &absent, "cluster_template"),
            "SELECT uuid, NULL AS driver FROM cluster_template ORDER BY id"
        );
    }
}
