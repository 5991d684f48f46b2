//! The stable ABI between the magnum-rs host and its COE drivers.
//!
//! A driver is a shared library exporting a [`DriverMod`] root module (a
//! prefix type: functions are only ever appended after the
//! `last_prefix_field`). [`DriverMod::new`] builds a [`DriverBox`], a
//! `#[sabi_trait]` object whose methods take and return JSON documents of the
//! types in [`payload`]. Driver authors implement the typed [`CoeDriver`]
//! trait and call [`export_driver!`]; they never touch JSON or FFI.
//!
//! This crate is the contract alone. What helps to write a driver (label and
//! parameter helpers, the Heat environment, a Heat-driver trait) is in
//! `magnum-driver-sdk`, which re-exports this crate: a driver depends on the
//! SDK only.
//!
//! Versioning: the crate version is the ABI version. Same major loads; a host
//! on a newer minor loads drivers of an older minor, answering
//! [`ErrorKind::UNSUPPORTED`] for what they lack. See `CHANGELOG.md`.

// abi_stable's derives name the prefix reference `DriverMod_Ref` and emit impls
// inside consts; both are its conventions, not ours to rename.
#![allow(non_camel_case_types, non_local_definitions)]

pub mod compat;
pub mod convention;
pub mod error;
mod export;
pub mod payload;

/// The conventions under the path 1.0.0 gave them, for code written against
/// it (the host's call sites among them). Everything else 1.0.0 had in
/// `helpers` is in magnum-driver-sdk's `helpers` since 1.0.1; nothing else
/// may come back here (`tests/src/abi_compat.rs` checks).
#[doc(hidden)]
pub mod helpers {
    pub use crate::convention::{choose_sub_driver, parse_version, stack_name};
}

pub use abi_stable;
pub use serde;
pub use serde_json;

pub use error::{DriverError, DriverResult, ErrorKind};
pub use export::{root_module, CoeDriver, DriverConfig};
pub use payload::*;

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, RResult, RStr, RString},
    StableAbi,
};

/// The root module every driver library exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = DriverMod_Ref)))]
#[sabi(missing_field(option))]
pub struct DriverMod {
    /// The driver's [`DriverInfo`] as JSON.
    pub info: extern "C" fn() -> RResult<RString, DriverError>,
    /// Builds the driver from the manifest's `config` table (as JSON).
    #[sabi(last_prefix_field)]
    pub new: extern "C" fn(config: RStr<'_>) -> RResult<DriverBox, DriverError>,
    // 1.1+: append new functions here; hosts see them as `Option`.
}

impl RootModule for DriverMod_Ref {
    declare_root_module_statics! {DriverMod_Ref}
    const BASE_NAME: &'static str = "magnum_driver";
    const NAME: &'static str = "magnum_driver";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// A loaded driver instance. Every method takes the JSON of the request type
/// named in its doc and returns the JSON of the response type.
#[sabi_trait]
pub trait Driver: Send + Sync {
    /// [`TemplateRequest`] → [`Validation`]
    fn validate_template(&self, request: RStr<'_>) -> RResult<RString, DriverError>;
    /// [`ClusterRequest`] → [`Validation`]
    fn validate_cluster(&self, request: RStr<'_>) -> RResult<RString, DriverError>;
    /// [`ClusterRequest`] → [`StackPlan`]
    fn create_cluster(&self, request: RStr<'_>) -> RResult<RString, DriverError>;
    /// [`ClusterRequest`] (new node counts in `cluster`) → [`StackPlan`]
    fn update_cluster(&self, request: RStr<'_>) -> RResult<RString, DriverError>;
    /// [`ResizeRequest`] → [`StackPlan`]
    fn resize_cluster(&self, request: RStr<'_>) -> RResult<RString, DriverError>;
    /// [`UpgradeRequest`] → [`StackPlan`]
    fn upgrade_cluster(&self, request: RStr<'_>) -> RResult<RString, DriverError>;
    /// [`ClusterRequest`] → [`StackPlan`] (nodegroup stacks first)
    fn delete_cluster(&self, request: RStr<'_>) -> RResult<RString, DriverError>;
    /// [`NodeGroupRequest`] → [`StackPlan`]
    fn create_nodegroup(&self, request: RStr<'_>) -> RResult<RString, DriverError>;
    /// [`NodeGroupRequest`] → [`StackPlan`]
    fn update_nodegroup(&self, request: RStr<'_>) -> RResult<RString, DriverError>;
    /// [`NodeGroupRequest`] → [`StackPlan`]
    fn delete_nodegroup(&self, request: RStr<'_>) -> RResult<RString, DriverError>;
    /// [`NodeTemplateRequest`] → [`NodeTemplate`]
    fn node_template(&self, request: RStr<'_>) -> RResult<RString, DriverError>;
    /// [`SubDriverRequest`] → [`SubDriverConfig`]
    fn network_driver(&self, request: RStr<'_>) -> RResult<RString, DriverError>;
    /// [`SubDriverRequest`] → [`SubDriverConfig`]
    fn volume_driver(&self, request: RStr<'_>) -> RResult<RString, DriverError>;
    /// [`StatusRequest`] → [`StatusUpdate`]
    #[sabi(last_prefix_field)]
    fn map_status(&self, request: RStr<'_>) -> RResult<RString, DriverError>;
    // 1.1+: append methods here, each with a default body returning
    // `RErr(DriverError::unsupported(..))`, which is what old drivers answer.
}

/// The owned, type-erased driver object handed to the host.
pub type DriverBox = Driver_TO<'static, RBox<()>>;

/// The exported symbol name of the library header. `export_driver!` must use
/// a literal; a test checks it against abi_stable's constant.
#[doc(hidden)]
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

#[cfg(test)]
mod tests {
    #[test]
    fn export_symbol_matches_abi_stable() {
        assert_eq!(
            super::ROOT_MODULE_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }
}
