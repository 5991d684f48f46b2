//! Orchestrators: what turns a driver's stack plan into (simulated or real)
//! resources, behind one trait, [`Orchestrator`], which the conductor uses.
//!
//! - the Heat Orchestration Templates the drivers' plans carry are
//!   evaluated by the `magnum-hot` crate ([`magnum_hot`]);
//! - [`sim`]: the simulated cloud's resource types (no real machines);
//! - [`local`]: the embedded `local` orchestrator, [`LocalCloud`], which keeps
//!   its stacks in the database;
//! - [`heat`]: the `heat` orchestrator, [`HeatOrchestrator`], on a real
//!   OpenStack Heat.

pub mod heat;
mod interface;
pub mod local;
mod packed;
pub mod sim;

#[cfg(test)]
mod tests;

pub use heat::{HeatOrchestrator, HeatSettings};
pub use interface::{Metered, Orchestrator, OrchestratorError};
pub use local::{LocalCloud, LocalCloudConfig, LocalError, SimServer};

/// The conductor's orchestrator from `[conductor] orchestrator` (validated
/// by `Config::load`), with the shared OpenStack TLS. Call inside the
/// runtime: `heat` keeps its handle.
pub fn from_config(
    config: &crate::config::Config,
    tls: Option<&crate::openstack::Tls>,
) -> anyhow::Result<std::sync::Arc<dyn Orchestrator>> {
    use crate::config::OrchestratorKind;
    if config.conductor.orchestrator != OrchestratorKind::Heat {
        return Ok(std::sync::Arc::new(LocalCloud::new(config.local.clone())));
    }
    let ks = config
        .keystone
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the heat orchestrator needs a [keystone] section"))?;
    // [heat] region/interface pick the orchestration endpoint; [keystone]'s
    // are the default.
    let mut auth = ks.service_auth();
    if let Some(region) = &config.heat.region {
        auth.region = Some(region.clone());
    }
    if let Some(interface) = &config.heat.interface {
        auth.interface = interface.clone();
    }
    let (interface, region) = (auth.interface.clone(), auth.region.clone());
    let client = crate::keystone::KeystoneClient::with_options(
        auth,
        crate::app::keystone_options(ks, tls)?,
    )?;
    let heat = HeatOrchestrator::new(
        client,
        config.heat.clone(),
        &interface,
        region.as_deref(),
        tokio::runtime::Handle::current(),
    )?;
    tracing::info!(auth_url = %ks.auth_url, user = %ks.username, ?region, %interface, "orchestrator: heat");
    Ok(std::sync::Arc::new(heat))
}
