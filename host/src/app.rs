//! The shared state of a magnumd process — drivers, database pool, cloud
//! catalog, identity mode, settings and the certificate authority — used by
//! the API, the conductor, the binaries, the tests and the benches alike.
//! Neither the conductor nor the orchestrators import the HTTP layer; what
//! they share with it lives here and in [`crate::domain`].

use std::sync::Arc;

use crate::{api::catalog::CloudCatalog, db::DbPool, drivers::Registry};

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
    /// The URL nodes use to reach this API (given to drivers).
    pub public_url: Option<String>,
    /// Create a Keystone trust from the requesting user to the service user
    /// for each new cluster (keystone identity with the `heat`
    /// orchestrator): the conductor creates the cluster's stacks in the
    /// user's project through it, and deletes it with the cluster.
    pub cluster_trusts: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_clusters_per_project: 20,
            service_down_time: 180,
            public_url: None,
            cluster_trusts: false,
        }
    }
}

pub struct AppState {
    pub registry: Registry,
    pub pool: DbPool,
    pub catalog: CloudCatalog,
    pub identity: Identity,
    pub settings: Settings,
    /// Cluster CAs and credentials, and the key that seals them.
    pub certs: Arc<crate::certs::Authority>,
}

impl AppState {
    /// The embedded defaults: noauth as admin, the default catalog.
    pub fn new(registry: Registry, pool: DbPool) -> Self {
        Self {
            registry,
            pool,
            catalog: CloudCatalog::default(),
            identity: Identity::default(),
            settings: Settings::default(),
            certs: Arc::new(crate::certs::Authority::ephemeral(
                crate::certs::CertificateConfig::default(),
            )),
        }
    }

    pub fn host_context(&self) -> magnum_driver_abi::payload::HostContext {
        magnum_driver_abi::payload::HostContext {
            magnum_url: self.settings.public_url.clone(),
            ..Default::default()
        }
    }
}
