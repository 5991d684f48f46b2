//! The shared state of a magnumd process — drivers, database pool, cloud
//! catalog, identity mode, settings and the certificate authority — used by
//! the API, the conductor, the binaries, the tests and the benches alike.
//! Neither the conductor nor the orchestrators import the HTTP layer; what
//! they share with it lives here and in [`crate::domain`].

use std::{sync::Arc, time::Duration};

use anyhow::anyhow;

use crate::{
    catalog::{Catalog, CatalogSource, CloudCatalog, OpenStackCatalog},
    config::{AuthMode, Config, KeystoneFile, OrchestratorKind},
    db::DbPool,
    keystone::{KeystoneClient, KeystoneError, KeystoneOptions},
    openstack::Tls,
    plugins::Registry,
};

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum Identity {
    /// No authentication: every request acts as `default_*`, unless it
    /// names itself with `X-Project-Id` / `X-User-Id` / `X-Roles` (for local
    /// testing, as keystonemiddleware would set them).
    NoAuth {
        project_id: String,
        user_id: String,
        roles: Vec<String>,
    },
    /// `X-Auth-Token` validated against Keystone v3 (cached until expiry);
    /// project, user and roles come from the token.
    Keystone(crate::keystone::KeystoneClient),
}

impl Default for Identity {
    fn default() -> Self {
        Self::NoAuth {
            project_id: "admin".to_owned(),
            user_id: "admin".to_owned(),
            roles: vec!["admin".to_owned()],
        }
    }
}

/// Limits and defaults of the API (upstream's `[quotas]` and service settings).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[quotas] max_clusters_per_project` when a project has no quota row.
    pub max_clusters_per_project: i64,
    /// Seconds without a heartbeat after which a service shows `down`.
    pub service_down_time: i64,
    /// The URL nodes use to reach this API, `/v1` included (given to the
    /// drivers as `magnum_url`): `[api] public_url`, else the
    /// `container-infra` endpoint of the Keystone catalog.
    pub public_url: Option<String>,
    /// Nodes verify the TLS of the cloud's endpoints (`[drivers] verify_ca`).
    pub verify_ca: bool,
    /// The CA bundle nodes trust for the cloud (`[drivers] openstack_ca_file`).
    pub openstack_ca: Option<String>,
    /// Create a Keystone trust from the requesting user to the service user
    /// for each new cluster (keystone identity with the `heat`
    /// orchestrator): the conductor creates the cluster's stacks in the
    /// user's project through it, and deletes it with the cluster.
    pub cluster_trusts: bool,
    /// `[api] undeclared_labels`.
    pub undeclared_labels: crate::config::UndeclaredLabels,
    /// `[healthcheck]`.
    pub healthcheck: crate::config::HealthcheckFile,
    /// Roles of the application credential of a cluster whose nodes need
    /// one (`[drivers] cloud_credential_roles`).
    pub cloud_credential_roles: Vec<String>,
    /// Keystone's v3 URL as nodes reach it (the catalog's public identity
    /// endpoint, else the configured auth URL): where their application
    /// credential authenticates. `None` without Keystone.
    pub node_auth_url: Option<String>,
    /// `[metrics] enabled`: whether `GET /metrics` answers.
    pub metrics_enabled: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_clusters_per_project: 20,
            service_down_time: 180,
            public_url: None,
            verify_ca: true,
            openstack_ca: None,
            cluster_trusts: false,
            undeclared_labels: crate::config::UndeclaredLabels::Refuse,
            healthcheck: crate::config::HealthcheckFile::default(),
            cloud_credential_roles: vec!["member".to_owned()],
            node_auth_url: None,
            metrics_enabled: true,
        }
    }
}

pub struct AppState {
    /// The drivers, replaced when `plugins.d` changes (SIGHUP, or the
    /// check every few seconds in `magnumd`).
    pub registry: crate::plugins::Drivers,
    pub pool: DbPool,
    pub catalog: CloudCatalog,
    pub identity: Identity,
    pub settings: Settings,
    /// Cluster CAs and credentials, and the key that seals them.
    pub certs: Arc<crate::certs::Authority>,
    /// Access rules: upstream's defaults and `[policy] file`'s overrides.
    pub policy: Arc<crate::policy::Policy>,
}

impl AppState {
    /// The embedded defaults: noauth as admin, the default catalog.
    pub fn new(registry: Registry, pool: DbPool) -> Self {
        Self {
            registry: crate::plugins::Drivers::new(registry),
            pool,
            catalog: CloudCatalog::default(),
            identity: Identity::default(),
            settings: Settings::default(),
            certs: Arc::new(crate::certs::Authority::ephemeral(
                crate::certs::CertificateConfig::default(),
            )),
            policy: Arc::default(),
        }
    }

    /// The state `magnumd` serves with, from its configuration: identity,
    /// cloud catalog, settings (with the URL nodes reach this API at) and the
    /// certificate authority. `tls` is the one TLS setup of every OpenStack
    /// client ([`openstack_tls`]). Asks Keystone's catalog for this service's
    /// endpoint when `[api] public_url` is unset.
    pub async fn from_config(
        config: &Config,
        registry: Registry,
        pool: DbPool,
        tls: Option<&Tls>,
    ) -> anyhow::Result<Self> {
        let mut state = Self::new(registry, pool);
        // One service-user client for identity, catalog and the endpoint
        // lookup: one token, one cache.
        let service = match &config.keystone {
            Some(ks) => Some(KeystoneClient::with_options(
                ks.service_auth(),
                keystone_options(ks, tls)?,
            )?),
            None => None,
        };
        state.catalog = match (&config.catalog.source, &service, &config.keystone) {
            (Some(CatalogSource::OpenStack), Some(client), Some(ks)) => {
                let timeout =
                    Duration::from_secs(config.catalog.request_timeout_seconds.unwrap_or(10));
                tracing::info!(auth_url = %ks.auth_url, region = ?ks.region, interface = %ks.interface, "catalog: openstack (Glance, Nova, Neutron)");
                CloudCatalog::OpenStack(OpenStackCatalog::new(client.clone(), timeout)?)
            }
            (Some(CatalogSource::OpenStack), _, _) => {
                return Err(anyhow!(
                    "[catalog] source = \"openstack\" needs a [keystone] section"
                ))
            }
            _ => CloudCatalog::Embedded(Catalog::from_file(config.catalog.clone())),
        };
        state.identity = match (&service, &config.keystone) {
            (Some(client), Some(ks)) if config.auth.mode == AuthMode::Keystone => {
                tracing::info!(auth_url = %ks.auth_url, user = %ks.username, "authentication: keystone");
                Identity::Keystone(client.clone())
            }
            _ => {
                tracing::info!(
                    project = %config.auth.default_project_id,
                    "authentication: noauth (X-Project-Id / X-User-Id / X-Roles override the defaults)"
                );
                Identity::NoAuth {
                    project_id: config.auth.default_project_id.clone(),
                    user_id: config.auth.default_user_id.clone(),
                    roles: config.auth.default_roles.clone(),
                }
            }
        };
        let heat = config.conductor.orchestrator == OrchestratorKind::Heat;
        state.settings = Settings {
            max_clusters_per_project: config.api.max_clusters_per_project,
            service_down_time: config.api.service_down_time,
            public_url: node_facing_url(config, service.as_ref()).await?,
            verify_ca: config.drivers.verify_ca,
            openstack_ca: config.openstack_ca.clone(),
            // Heat creates the stacks in the user's project through a trust;
            // without Keystone there is no user to take one from.
            cluster_trusts: matches!(state.identity, Identity::Keystone(_)) && heat,
            undeclared_labels: config.api.undeclared_labels,
            healthcheck: config.healthcheck.clone(),
            cloud_credential_roles: config.drivers.cloud_credential_roles.clone(),
            metrics_enabled: config.metrics.enabled,
            node_auth_url: match &service {
                Some(client) => Some(node_auth_url(client).await),
                None => None,
            },
        };
        if !config.policy.overridden().is_empty() {
            tracing::info!(overridden = ?config.policy.overridden(), "policy: rules overridden by [policy] file");
        }
        if !config.policy.ignored().is_empty() {
            tracing::warn!(rules = ?config.policy.ignored(), "policy: rules of upstream Magnum that magnum-rs does not enforce are ignored");
        }
        state.policy = config.policy.clone();
        state.certs = Arc::new(crate::certs::Authority::load(
            config.certificates.clone(),
            &config.data_dir,
        )?);
        Ok(state)
    }

    pub fn host_context(&self) -> magnum_driver_abi::payload::HostContext {
        magnum_driver_abi::payload::HostContext {
            magnum_url: self.settings.public_url.clone(),
            verify_ca: self.settings.verify_ca,
            openstack_ca: self.settings.openstack_ca.clone(),
            auth_url: self.settings.node_auth_url.clone(),
            ..Default::default()
        }
    }
}

/// The TLS of every OpenStack client, from `[keystone]` (cafile, insecure),
/// built once so the `insecure` warning is logged once.
pub fn openstack_tls(config: &Config) -> anyhow::Result<Option<Tls>> {
    config.keystone.as_ref().map(|ks| ks.tls()).transpose()
}

/// `[keystone]`'s client options with the shared TLS.
pub fn keystone_options(ks: &KeystoneFile, tls: Option<&Tls>) -> anyhow::Result<KeystoneOptions> {
    let tls = match tls {
        Some(tls) => tls.clone(),
        None => ks.tls()?,
    };
    Ok(KeystoneOptions {
        cache_max_ttl: Duration::from_secs(ks.token_cache_seconds),
        tls,
        ..Default::default()
    })
}

/// The API's URL with its `/v1`, as nodes call `$MAGNUM_URL/certificates`.
pub fn v1_url(url: &str) -> String {
    let base = url.trim_end_matches('/');
    if base.ends_with("/v1") {
        base.to_owned()
    } else {
        format!("{base}/v1")
    }
}

/// Where nodes reach this API: `[api] public_url`, else the
/// `container-infra` endpoint of the Keystone catalog (public, then
/// internal: nodes sit outside the control plane). With the heat
/// orchestrator real nodes need it (TLS clusters fetch their certificates
/// from it), so not knowing it stops the start.
/// Keystone's v3 URL for nodes: the catalog's public (else internal)
/// identity endpoint with `/v3`, else the URL magnumd itself uses.
async fn node_auth_url(client: &KeystoneClient) -> String {
    match client.node_facing_endpoint("identity").await {
        Ok(url) => {
            let url = url.as_str().trim_end_matches('/');
            if url.ends_with("/v3") {
                url.to_owned()
            } else {
                format!("{url}/v3")
            }
        }
        Err(_) => client.auth_url().as_str().trim_end_matches('/').to_owned(),
    }
}

async fn node_facing_url(
    config: &Config,
    service: Option<&KeystoneClient>,
) -> anyhow::Result<Option<String>> {
    if let Some(url) = &config.api.public_url {
        return Ok(Some(v1_url(url)));
    }
    let heat = config.conductor.orchestrator == OrchestratorKind::Heat;
    let found = match service {
        Some(client) => match client.node_facing_endpoint("container-infra").await {
            Ok(url) => Some(v1_url(url.as_str())),
            Err(KeystoneError::EndpointNotFound { .. }) => None,
            Err(e) if heat => {
                return Err(anyhow!(
                    "cannot read Keystone's catalog for this service's container-infra endpoint ({e}); set [api] public_url to the URL cluster nodes reach this API at, or start when Keystone answers"
                ))
            }
            Err(e) => {
                tracing::warn!("cannot read Keystone's catalog for the container-infra endpoint: {e}");
                None
            }
        },
        None => None,
    };
    match &found {
        Some(url) => tracing::info!(magnum_url = %url, "nodes reach this API at the catalog's container-infra endpoint"),
        None if heat => {
            return Err(anyhow!(
                "cluster nodes need the URL of this API (TLS clusters fetch their certificates from it): set [api] public_url, or register a public or internal container-infra endpoint in Keystone's catalog"
            ))
        }
        None => {}
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_magnum_url_nodes_get_has_its_v1() {
        for (given, expected) in [
            ("http://m:9511", "http://m:9511/v1"),
            ("http://m:9511/", "http://m:9511/v1"),
            ("http://m:9511/v1", "http://m:9511/v1"),
            (
                "https://cloud.example/container-infra/v1/",
                "https://cloud.example/container-infra/v1",
            ),
        ] {
            assert_eq!(super::v1_url(given), expected);
        }
    }
}
