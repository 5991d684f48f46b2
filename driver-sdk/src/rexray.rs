//! The rexray volume driver's rules, shared by the swarm and mesos drivers.
//!
//! REX-Ray would call Cinder from the nodes, and the only OpenStack
//! credential nodes get is the cluster's Keystone application credential:
//! Magnum hands no user password or trust to nodes. REX-Ray's Cinder driver
//! (rexray/rexray `libstorage/drivers/storage/cinder/storage/
//! cinder_storage.go`, `getAuthOptions`) authenticates only with a user
//! name/id and password, a token or a trust, never an application
//! credential, so `volume_driver` rexray is refused ([`refusal`]) rather
//! than accepted to fail on the nodes (as upstream's did, and as this one
//! did before: rexray exited before the node joined).

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

/// Why `volume_driver` rexray is refused (see the module documentation).
pub fn refusal(volume_driver: &str) -> Option<DriverError> {
    (volume_driver == REXRAY).then(|| {
        DriverError::invalid(
            "volume_driver",
            "volume_driver rexray is not supported: REX-Ray's Cinder driver cannot authenticate \
             with a Keystone application credential (it takes only a password, a token or a \
             trust), and Magnum hands no user password or trust to cluster nodes; leave \
             volume_driver unset",
        )
    })
}
