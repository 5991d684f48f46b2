//! The rexray volume driver's rules, shared by the swarm and mesos drivers.
//!
//! REX-Ray on the nodes (`fragments/configure-rexray.sh`) calls Cinder as
//! the cluster's trustee within the user's trust, which the host hands to
//! nodes only with upstream's `[trust] cluster_user_trust` (otherwise
//! `trust_id` is empty, as upstream's). Upstream accepted rexray either way,
//! and its volumes then failed on the nodes; here the template still passes
//! but the operator is warned.

use serde_json::Value;

use crate::{DriverConfig, DriverError, DriverResult};

/// The volume driver's name.
pub const REXRAY: &str = "rexray";

/// Upstream's `[trust] cluster_user_trust` from a driver's config: false when
/// absent, an `Invalid` error on `config.cluster_user_trust` when not a
/// boolean.
pub fn cluster_user_trust(config: &DriverConfig) -> DriverResult<bool> {
    match config.get("cluster_user_trust") {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(DriverError::invalid(
            "config.cluster_user_trust",
            "must be a boolean",
        )),
    }
}

/// The warning for `volume_driver` rexray when nodes get no trust.
pub fn trust_warning(volume_driver: &str, cluster_user_trust: bool) -> Option<String> {
    (volume_driver == REXRAY && !cluster_user_trust).then(|| {
        "volume_driver rexray calls Cinder within the cluster's trust, which nodes get only \
         with cluster_user_trust enabled in the driver config: its volumes will fail"
            .to_owned()
    })
}
