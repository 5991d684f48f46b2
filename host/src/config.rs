//! Configuration: one TOML file, `MAGNUM_*` environment variables and flags,
//! in rising precedence, validated once at start.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, Context};
use serde::Deserialize;

pub const DEFAULT_BIND: &str = "127.0.0.1:9511";
pub const DEFAULT_DATA_DIR: &str = "var";
pub const DEFAULT_PLUGINS_DIR: &str = "plugins.d";

/// The `--config` file. Unknown keys are an error, so a typo is not ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub plugins_dir: Option<PathBuf>,
    /// A tracing filter such as `info` or `magnum_host=debug`.
    pub log: Option<String>,
    /// `text` (default) or `json`: one JSON object per line, with the
    /// request id of the request that logged it, for a log shipper.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Append the log to this file instead of stderr; reopened on SIGHUP,
    /// so logrotate may move it away (no `copytruncate` needed).
    pub log_file: Option<PathBuf>,
    /// `sqlite://PATH`, `postgres://USER@HOST/DB` or `mysql://USER@HOST/DB`.
    pub database_url: Option<String>,
    /// Timeouts of database connections (outages answer 503 in seconds).
    #[serde(default)]
    pub database: crate::db::DbTimeouts,
    #[serde(default)]
    pub auth: AuthFile,
    #[serde(default)]
    pub api: ApiFile,
    /// The embedded cloud's images, flavors, keypairs and networks.
    #[serde(default)]
    pub catalog: crate::catalog::CatalogFile,
    /// The service user for `[auth] mode = "keystone"`.
    pub keystone: Option<KeystoneFile>,
    #[serde(default)]
    pub conductor: ConductorFile,
    /// The `local` orchestrator's simulated cloud (boot time, fault injection).
    #[serde(default)]
    pub local: crate::orchestrator::local::LocalCloudConfig,
    /// The `heat` orchestrator (region, interface, stack timeout).
    #[serde(default)]
    pub heat: crate::orchestrator::heat::HeatSettings,
    /// Cluster CAs: key algorithm, validity, CSR rules, the sealing key.
    #[serde(default)]
    pub certificates: crate::certs::CertificateConfig,
    /// What the drivers tell the nodes about the cloud (TLS verification, CA).
    #[serde(default)]
    pub drivers: DriversFile,
    /// `/healthcheck` (oslo.middleware's options of the same names).
    #[serde(default)]
    pub healthcheck: HealthcheckFile,
    /// Access rules (oslo.policy's `[oslo_policy] policy_file`).
    #[serde(default)]
    pub policy: PolicyFile,
    /// `GET /metrics`.
    #[serde(default)]
    pub metrics: MetricsFile,
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsFile {
    /// Serve Prometheus metrics at `GET /metrics`, unauthenticated (as
    /// `/healthcheck`): keep the API port off the public network, or turn
    /// this off.
    pub enabled: bool,
    /// `magnumd conductor` (which serves no API): the address it serves
    /// `/metrics` and `/healthcheck` at, e.g. `127.0.0.1:9512`. Unset, a
    /// conductor alone has no metrics endpoint.
    pub bind: Option<std::net::SocketAddr>,
}

impl Default for MetricsFile {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: None,
        }
    }
}

/// `[policy]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyFile {
    /// A `policy.yaml` in oslo.policy's format with upstream Magnum's rule
    /// names; its rules override the built-in defaults (`magnumd policy
    /// sample` prints them). Read once at start: an unknown rule or a
    /// check that does not parse stops the start.
    pub file: Option<PathBuf>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[healthcheck]`, as oslo.middleware's healthcheck middleware.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthcheckFile {
    /// While this file exists, `/healthcheck` answers 503 `DISABLED BY FILE`,
    /// so a load balancer drains this API process (the rest keeps working).
    pub disable_by_file_path: Option<PathBuf>,
    /// Whether `?detailed` (or a JSON `Accept`) shows what each check saw;
    /// off by default, as oslo, since it tells callers about the service.
    pub detailed: bool,
}

/// `[drivers]` (upstream's section of the same name): how cluster nodes
/// trust the cloud's endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriversFile {
    /// Nodes verify the TLS certificates of Keystone, Heat and this API
    /// (upstream `verify_ca`, default true). Turning it off is for test
    /// clouds only: a node then trusts whoever answers.
    pub verify_ca: bool,
    /// A PEM bundle of the CAs that sign the cloud's endpoints (upstream
    /// `openstack_ca_file`), installed on every node; unset, nodes use their
    /// image's trust store.
    pub openstack_ca_file: Option<PathBuf>,
    /// The roles of the Keystone application credential a cluster's nodes
    /// get when its driver asks for one (cloud provider, Cinder CSI): a
    /// subset of the creating user's roles.
    pub cloud_credential_roles: Vec<String>,
    /// Seconds a driver call may take. A call past it is abandoned on its
    /// thread and fails the operation ("driver X did not answer within N
    /// s"); after 3 in a row the driver is unhealthy and its new work is
    /// refused, one call every two deadlines going through to check it
    /// again.
    pub call_timeout_seconds: u64,
    /// The address-space limit, in MiB, of each runner process of a driver
    /// registered with `--isolation process`: a driver growing past it
    /// fails its call, not the service.
    pub runner_memory_mb: u64,
}

impl DriversFile {
    pub fn call_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.call_timeout_seconds.max(1))
    }
}

impl Default for DriversFile {
    fn default() -> Self {
        Self {
            call_timeout_seconds: 30,
            runner_memory_mb: crate::plugins::runner::DEFAULT_RUNNER_MEMORY_MB,
            verify_ca: true,
            openstack_ca_file: None,
            cloud_credential_roles: vec!["member".to_owned()],
        }
    }
}

/// A mode read from the config file: an unknown name is an error that lists
/// the accepted ones.
macro_rules! config_mode {
    ($(#[$doc:meta])* $name:ident, $key:literal, $hint:literal, { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
        #[serde(try_from = "String")]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(value: String) -> Result<Self, String> {
                match value.as_str() {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!(concat!($key, " '{}' is not supported; use ", $hint), other)),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

config_mode!(
    /// `[conductor] orchestrator`.
    OrchestratorKind,
    "[conductor] orchestrator",
    "local (the embedded simulated cloud) or heat (OpenStack Heat)",
    { Local = "local", Heat = "heat" }
);

config_mode!(
    /// `[auth] mode`.
    AuthMode,
    "[auth] mode",
    "noauth or keystone",
    { NoAuth = "noauth", Keystone = "keystone" }
);

config_mode!(
    /// `[api] undeclared_labels`: what a label no part of magnum reads does.
    UndeclaredLabels,
    "[api] undeclared_labels",
    "refuse (a 400 naming the labels) or keep (stored, shown in labels_ignored)",
    { Refuse = "refuse", Keep = "keep" }
);

pub use crate::catalog::CatalogSource;

/// `[conductor]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConductorFile {
    /// Whether `magnumd serve` runs a conductor in-process.
    pub in_process: bool,
    /// `local` (the embedded simulated cloud) or `heat` (a real OpenStack
    /// Heat, called as the `[keystone]` service user).
    pub orchestrator: OrchestratorKind,
    /// Jobs run at once.
    pub concurrency: usize,
    /// Deadline of update, resize, upgrade and delete operations.
    pub operation_timeout_minutes: u64,
    /// The name `GET /v1/mservices` shows; the machine's hostname by default.
    pub host: Option<String>,
    /// A job claimed by a conductor that stopped answering (crashed) is
    /// taken over after this many seconds. Each run of a job is one short
    /// step, so this can be small.
    pub lease_seconds: u64,
    /// How often the health of complete clusters is refreshed.
    pub health_interval_seconds: u64,
}

impl Default for ConductorFile {
    fn default() -> Self {
        Self {
            in_process: true,
            orchestrator: OrchestratorKind::Local,
            concurrency: 4,
            operation_timeout_minutes: 60,
            host: None,
            lease_seconds: 60,
            health_interval_seconds: 60,
        }
    }
}

/// `[keystone]`: the magnum service user and where Keystone is.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeystoneFile {
    /// e.g. `http://127.0.0.1:5000/v3`.
    pub auth_url: String,
    pub username: String,
    /// Also `MAGNUM_KEYSTONE_PASSWORD`, which wins; never logged.
    #[serde(default)]
    pub password: String,
    pub project_name: String,
    #[serde(default = "default_domain")]
    pub user_domain_name: String,
    #[serde(default = "default_domain")]
    pub project_domain_name: String,
    pub region: Option<String>,
    #[serde(default = "default_interface")]
    pub interface: String,
    /// Seconds a validated token is trusted without asking Keystone again.
    #[serde(default = "default_cache_ttl")]
    pub token_cache_seconds: u64,
    /// PEM bundle of CAs trusted for every OpenStack endpoint (Keystone,
    /// Heat, Glance, Nova, Neutron), besides the system's.
    pub cafile: Option<PathBuf>,
    /// Do not verify the endpoints' TLS certificates (test clouds only;
    /// logged as a warning at start).
    #[serde(default)]
    pub insecure: bool,
}

fn default_domain() -> String {
    "Default".to_owned()
}
fn default_interface() -> String {
    "public".to_owned()
}
fn default_cache_ttl() -> u64 {
    300
}

impl std::fmt::Debug for KeystoneFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoneFile")
            .field("auth_url", &self.auth_url)
            .field("username", &self.username)
            .field("password", &"***")
            .field("project_name", &self.project_name)
            .field("region", &self.region)
            .field("interface", &self.interface)
            .field("cafile", &self.cafile)
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

impl KeystoneFile {
    pub fn service_auth(&self) -> crate::keystone::ServiceAuth {
        let mut auth = crate::keystone::ServiceAuth::new(
            &self.auth_url,
            &self.username,
            &self.password,
            &self.project_name,
        );
        auth.user_domain_name = self.user_domain_name.clone();
        auth.project_domain_name = self.project_domain_name.clone();
        auth.region = self.region.clone();
        auth.interface = self.interface.clone();
        auth
    }

    /// The TLS of every OpenStack client: reads `cafile`, and logs the
    /// warning of `insecure`. Build it once and share it.
    pub fn tls(&self) -> anyhow::Result<crate::openstack::Tls> {
        crate::openstack::Tls::new(&crate::openstack::TlsSettings {
            cafile: self.cafile.clone(),
            insecure: self.insecure,
        })
        .map_err(|e| anyhow!(e))
    }
}

/// `[auth]`: how requests are authenticated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthFile {
    /// `noauth` (the embedded default) or `keystone`.
    pub mode: AuthMode,
    /// noauth: who an anonymous request acts as.
    pub default_project_id: String,
    pub default_user_id: String,
    pub default_roles: Vec<String>,
}

impl Default for AuthFile {
    fn default() -> Self {
        Self {
            mode: AuthMode::NoAuth,
            default_project_id: "admin".to_owned(),
            default_user_id: "admin".to_owned(),
            default_roles: vec!["admin".to_owned()],
        }
    }
}

/// `[api]`: limits and defaults of the REST API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiFile {
    /// Clusters per project when the project has no quota row (upstream 20).
    pub max_clusters_per_project: i64,
    /// Seconds without a heartbeat before a service is `down` (upstream 180).
    pub service_down_time: i64,
    /// The URL cluster nodes use to reach this API.
    pub public_url: Option<String>,
    /// Labels that neither the driver nor the host reads: `refuse` them
    /// (the default: a typo or another driver's label is an error the CLI
    /// prints) or `keep` them as upstream does, listed in `labels_ignored`.
    pub undeclared_labels: UndeclaredLabels,
}

impl Default for ApiFile {
    fn default() -> Self {
        Self {
            max_clusters_per_project: 20,
            service_down_time: 180,
            public_url: None,
            undeclared_labels: UndeclaredLabels::Refuse,
        }
    }
}

/// Flag/environment values (clap fills both); `None` falls through to the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub plugins_dir: Option<PathBuf>,
    pub database_url: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub plugins_dir: PathBuf,
    pub log: String,
    pub log_format: LogFormat,
    pub log_file: Option<PathBuf>,
    /// Always set: `sqlite://<data_dir>/magnum.sqlite` unless configured.
    pub database_url: String,
    pub database: crate::db::DbTimeouts,
    pub auth: AuthFile,
    pub api: ApiFile,
    pub catalog: crate::catalog::CatalogFile,
    pub keystone: Option<KeystoneFile>,
    pub conductor: ConductorFile,
    pub local: crate::orchestrator::local::LocalCloudConfig,
    pub heat: crate::orchestrator::heat::HeatSettings,
    pub certificates: crate::certs::CertificateConfig,
    pub drivers: DriversFile,
    pub healthcheck: HealthcheckFile,
    pub metrics: MetricsFile,
    /// The defaults with `[policy] file`'s overrides, read at start.
    pub policy: std::sync::Arc<crate::policy::Policy>,
    /// The PEM text of `[drivers] openstack_ca_file`, read at start.
    pub openstack_ca: Option<String>,
}

/// `magnumd config sample`: every setting with its default, commented.
pub const SAMPLE: &str = include_str!("config-sample.toml");

impl Config {
    pub fn load(overrides: &Overrides) -> anyhow::Result<Self> {
        let file = match &overrides.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Self::from_file(file, overrides)
    }

    /// A configuration from TOML text (the file's format) and overrides, as
    /// the tests and benches build the same state `magnumd` does.
    pub fn from_toml(text: &str, overrides: &Overrides) -> anyhow::Result<Self> {
        let file = toml::from_str(text).context("invalid config")?;
        Self::from_file(file, overrides)
    }

    fn from_file(file: FileConfig, overrides: &Overrides) -> anyhow::Result<Self> {
        let bind_text = overrides
            .bind
            .clone()
            .or(file.bind)
            .unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind = bind_text.parse().map_err(|_| {
            anyhow!("bind '{bind_text}' is not an ADDRESS:PORT such as {DEFAULT_BIND}")
        })?;
        let data_dir: PathBuf = overrides
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        let database_url = overrides
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| {
                format!(
                    "sqlite://{}",
                    data_dir.join(crate::db::SQLITE_FILE).display()
                )
            });
        // Only the scheme is checked here; connecting is the caller's business.
        crate::db::DbTarget::parse(&database_url)?;
        let mut keystone = file.keystone;
        // A real cloud's catalog goes with a real orchestrator by default.
        let mut catalog = file.catalog;
        let source = catalog
            .source
            .take()
            .unwrap_or(match file.conductor.orchestrator {
                OrchestratorKind::Heat => CatalogSource::OpenStack,
                OrchestratorKind::Local => CatalogSource::Embedded,
            });
        if catalog.request_timeout_seconds == Some(0) {
            return Err(anyhow!(
                "[catalog] request_timeout_seconds must be at least 1"
            ));
        }
        catalog.source = Some(source);
        // The service user is needed by keystone authentication, by the
        // heat orchestrator (which may run with noauth, in a test cloud) and
        // by the openstack catalog.
        let needs_service_user = if file.auth.mode == AuthMode::Keystone {
            Some("[auth] mode = \"keystone\"")
        } else if file.conductor.orchestrator == OrchestratorKind::Heat {
            Some("[conductor] orchestrator = \"heat\"")
        } else if catalog.source == Some(CatalogSource::OpenStack) {
            Some("[catalog] source = \"openstack\"")
        } else {
            None
        };
        if let Some(what) = needs_service_user {
            let ks = keystone.as_mut().ok_or_else(|| {
                anyhow!("{what} needs a [keystone] section (auth_url, username, password, project_name): the magnum service user")
            })?;
            if let Ok(pw) = std::env::var("MAGNUM_KEYSTONE_PASSWORD") {
                ks.password = pw;
            }
            if ks.password.is_empty() {
                return Err(anyhow!(
                    "[keystone] password is empty; set it in the file or MAGNUM_KEYSTONE_PASSWORD"
                ));
            }
            if ks.insecure && ks.cafile.is_some() {
                return Err(anyhow!(
                    "[keystone] cafile and insecure = true exclude each other: a CA bundle is for verifying"
                ));
            }
            // A cafile that cannot be read stops the start, not the first call.
            if ks.cafile.is_some() {
                ks.tls()?;
            }
        }
        if file.heat.stack_timeout_minutes < 1 || file.heat.request_timeout_seconds < 1 {
            return Err(anyhow!(
                "[heat] stack_timeout_minutes and request_timeout_seconds must be at least 1"
            ));
        }
        let mut certificates = file.certificates;
        if let Ok(key) = std::env::var("MAGNUM_CERTIFICATE_KEY") {
            certificates.key = Some(key);
        }
        if certificates.validity_days == 0 {
            return Err(anyhow!("[certificates] validity_days must be at least 1"));
        }
        if file.api.max_clusters_per_project < 0 || file.api.service_down_time <= 0 {
            return Err(anyhow!(
                "[api] max_clusters_per_project must be >= 0 and service_down_time > 0"
            ));
        }
        file.local.validate().map_err(|e| anyhow!(e))?;
        if file.database.acquire_timeout_seconds == 0 || file.database.healthcheck_timeout_ms == 0 {
            return Err(anyhow!(
                "[database] acquire_timeout_seconds and healthcheck_timeout_ms must be at least 1"
            ));
        }
        if file.conductor.concurrency == 0
            || file.conductor.operation_timeout_minutes == 0
            || file.conductor.lease_seconds == 0
            || file.conductor.health_interval_seconds == 0
        {
            return Err(anyhow!(
                "[conductor] concurrency, operation_timeout_minutes, lease_seconds and health_interval_seconds must be at least 1"
            ));
        }
        let openstack_ca = match &file.drivers.openstack_ca_file {
            Some(path) => {
                let pem = std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read [drivers] openstack_ca_file {}", path.display())
                })?;
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(anyhow!(
                        "[drivers] openstack_ca_file {} holds no PEM certificate",
                        path.display()
                    ));
                }
                Some(pem)
            }
            None => None,
        };
        Ok(Self {
            bind,
            data_dir,
            plugins_dir: overrides
                .plugins_dir
                .clone()
                .or(file.plugins_dir)
                .unwrap_or_else(|| DEFAULT_PLUGINS_DIR.into()),
            log: file.log.unwrap_or_else(|| "info".to_owned()),
            log_format: file.log_format,
            log_file: file.log_file,
            database_url,
            database: file.database,
            auth: file.auth,
            api: file.api,
            catalog,
            keystone,
            conductor: file.conductor,
            local: file.local,
            heat: file.heat,
            certificates,
            drivers: file.drivers,
            healthcheck: file.healthcheck,
            metrics: file.metrics,
            policy: std::sync::Arc::new(match &file.policy.file {
                Some(path) => crate::policy::Policy::load(path)?,
                None => crate::policy::Policy::default(),
            }),
            openstack_ca,
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample's `#key = value` lines uncommented: the defaults.
    fn sample_defaults() -> String {
        SAMPLE
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase()) => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_sample_states_the_defaults() {
        let overrides = Overrides::default();
        let plain = Config::from_toml("", &overrides).expect("defaults");
        let sample = Config::from_toml(&sample_defaults(), &overrides).expect("the sample");
        assert_eq!(format!("{plain:?}"), format!("{sample:?}"));
    }

    #[test]
    fn the_sample_names_every_setting() {
        // Examples uncommented too: every key is one the file accepts.
        let all: String = sample_defaults()
            .lines()
            .map(|l| l.strip_prefix("#: ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let file: FileConfig = toml::from_str(&all).expect("every key of the sample");
        assert!(file.keystone.is_some() && file.catalog.images.is_some());
        // And every field of the file's structs is in the sample.
        let sources = [
            (
                include_str!("config.rs"),
                &[
                    "FileConfig",
                    "HealthcheckFile",
                    "DriversFile",
                    "ConductorFile",
                    "KeystoneFile",
                    "AuthFile",
                    "ApiFile",
                    "PolicyFile",
                    "MetricsFile",
                ][..],
            ),
            (include_str!("db/mod.rs"), &["DbTimeouts"][..]),
            (
                include_str!("catalog/mod.rs"),
                &["CatalogFile", "Image", "Flavor", "Network", "Subnet"][..],
            ),
            (
                include_str!("orchestrator/local.rs"),
                &["LocalCloudConfig"][..],
            ),
            (include_str!("orchestrator/heat.rs"), &["HeatSettings"][..]),
            (include_str!("certs/mod.rs"), &["CertificateConfig"][..]),
        ];
        let mut fields = 0;
        for (source, structs) in sources {
            for name in structs {
                let start = source
                    .find(&format!("pub struct {name} {{"))
                    .unwrap_or_else(|| panic!("struct {name}"));
                let body = &source[start..];
                let body = &body[..body.find("\n}").expect("end of struct")];
                for line in body.lines().skip(1) {
                    let Some(field) = line.trim().strip_prefix("pub ") else {
                        continue;
                    };
                    let field = field.split(':').next().unwrap_or_default();
                    let key = field;
                    fields += 1;
                    assert!(
                        all.lines().any(|l| l.starts_with(&format!("{key} = "))
                            || l.starts_with(&format!("[{key}]"))
                            || l.contains(&format!(" {key} = "))
                            || l.starts_with(&format!("[[catalog.{key}]]"))),
                        "{name}.{key} is missing from the sample"
                    );
                }
            }
        }
        assert!(fields > 60, "{fields} fields found");
    }

    #[test]
    fn flags_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("magnum.toml");
        std::fs::write(
            &path,
            "bind = \"127.0.0.1:9000\"\ndata_dir = \"/srv/magnum\"\n",
        )
        .unwrap();
        let cfg = Config::load(&Overrides {
            config: Some(path.clone()),
            bind: Some("127.0.0.1:9999".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(cfg.bind.port(), 9999);
        assert_eq!(cfg.data_dir, PathBuf::from("/srv/magnum"));
        assert_eq!(cfg.plugins_dir, PathBuf::from(DEFAULT_PLUGINS_DIR));
        assert_eq!(cfg.database_url, "sqlite:///srv/magnum/magnum.sqlite");
    }

    #[test]
    fn local_pools_off_loopback_and_database_timeouts_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("magnum.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Config::load(&Overrides {
                config: Some(path.clone()),
                ..Default::default()
            })
        };
        let err = load("[local]\nfloating_ip_cidr = \"172.24.4.0/22\"\n").unwrap_err();
        assert!(err.to_string().contains("127.0.0.0/8"), "{err}");
        let cfg = load("[database]\nacquire_timeout_seconds = 7\n").unwrap();
        assert_eq!(cfg.database.acquire_timeout_seconds, 7);
        assert_eq!(cfg.database.healthcheck_timeout_ms, 1000);
        assert!(load("[database]\nhealthcheck_timeout_ms = 0\n").is_err());
    }

    #[test]
    fn database_url_from_file_or_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("magnum.toml");
        std::fs::write(&path, "database_url = \"postgres://magnum@db/magnum\"\n").unwrap();
        let from_file = Config::load(&Overrides {
            config: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(from_file.database_url, "postgres://magnum@db/magnum");
        let from_flag = Config::load(&Overrides {
            config: Some(path),
            database_url: Some("sqlite:///tmp/m.sqlite".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(from_flag.database_url, "sqlite:///tmp/m.sqlite");
        let mysql = Config::load(&Overrides {
            database_url: Some("mysql://magnum@db/magnum".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(mysql.database_url, "mysql://magnum@db/magnum");
        let err = Config::load(&Overrides {
            database_url: Some("oracle://root@db/magnum".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("unsupported database URL"),
            "{err}"
        );
    }

    #[test]
    fn heat_needs_the_service_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("magnum.toml");
        std::fs::write(&path, "[conductor]\norchestrator = \"heat\"\n").unwrap();
        let load = || {
            Config::load(&Overrides {
                config: Some(path.clone()),
                ..Default::default()
            })
        };
        let err = load().unwrap_err();
        assert!(
            err.to_string()
                .contains("orchestrator = \"heat\" needs a [keystone] section"),
            "{err}"
        );
        std::fs::write(
            &path,
            "[conductor]\norchestrator = \"heat\"\n[keystone]\nauth_url = \"http://127.0.0.1:5000/v3\"\nusername = \"magnum\"\npassword = \"pw\"\nproject_name = \"service\"\n[heat]\nregion = \"RegionTwo\"\n[heat.resource_registry]\n\"OS::Nova::Server\" = \"OS::Heat::None\"\n",
        )
        .unwrap();
        let cfg = load().unwrap();
        assert_eq!(cfg.conductor.orchestrator, OrchestratorKind::Heat);
        assert_eq!(cfg.heat.region.as_deref(), Some("RegionTwo"));
        assert_eq!(cfg.heat.stack_timeout_minutes, 60);
        assert_eq!(cfg.heat.resource_registry.len(), 1);
        // A real cloud's catalog by default with heat, the lists otherwise.
        assert_eq!(cfg.catalog.source, Some(CatalogSource::OpenStack));
        std::fs::write(&path, "[conductor]\norchestrator = \"nova\"\n").unwrap();
        let err = format!("{:#}", load().unwrap_err());
        assert!(
            err.contains("[conductor] orchestrator 'nova' is not supported; use local"),
            "{err}"
        );
        std::fs::write(&path, "").unwrap();
        assert_eq!(
            load().unwrap().catalog.source,
            Some(CatalogSource::Embedded)
        );
        std::fs::write(&path, "[catalog]\nsource = \"openstack\"\n").unwrap();
        let err = load().unwrap_err();
        assert!(
            err.to_string()
                .contains("source = \"openstack\" needs a [keystone] section"),
            "{err}"
        );
        std::fs::write(&path, "[catalog]\nsource = \"glance\"\n").unwrap();
        let err = format!("{:#}", load().unwrap_err());
        assert!(
            err.contains("[catalog] source 'glance' is not supported; use embedded"),
            "{err}"
        );
        std::fs::write(&path, "[auth]\nmode = \"ldap\"\n").unwrap();
        let err = format!("{:#}", load().unwrap_err());
        assert!(
            err.contains("[auth] mode 'ldap' is not supported; use noauth or keystone"),
            "{err}"
        );
    }

    #[test]
    fn keystone_tls_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("magnum.toml");
        let base = "[auth]\nmode = \"keystone\"\n[keystone]\nauth_url = \"https://keystone.example:5000/v3\"\nusername = \"magnum\"\npassword = \"pw\"\nproject_name = \"service\"\n";
        let load = |extra: &str| {
            std::fs::write(&path, format!("{base}{extra}")).unwrap();
            Config::load(&Overrides {
                config: Some(path.clone()),
                ..Default::default()
            })
        };
        let cfg = load("").unwrap();
        let ks = cfg.keystone.unwrap();
        assert_eq!((ks.cafile, ks.insecure), (None, false));
        let err = load("cafile = \"/nonexistent/ca.pem\"\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("cafile /nonexistent/ca.pem: cannot read"),
            "{err}"
        );
        let err = load("cafile = \"/etc/hostname\"\ninsecure = true\n").unwrap_err();
        assert!(err.to_string().contains("exclude each other"), "{err}");
        assert!(
            load("insecure = true\n")
                .unwrap()
                .keystone
                .unwrap()
                .insecure
        );
        let err = load("ca_file = \"/x\"\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown field `ca_file`"),
            "{err:#}"
        );
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("magnum.toml");
        std::fs::write(&path, "bnd = \"x\"\n").unwrap();
        let err = Config::load(&Overrides {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown field `bnd`"),
            "{err:#}"
        );
        let err = Config::load(&Overrides {
            bind: Some("localhost".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("ADDRESS:PORT"), "{err}");
    }
}
