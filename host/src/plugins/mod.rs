//! Driver plugins: manifests in `plugins.d`, the abi_stable loader, the
//! registry of loaded drivers, operator commands and the conformance check.

pub mod call;
pub mod conformance;
pub mod loader;
pub mod manage;
pub mod manifest;
pub mod registry;

pub use call::LoadedDriver;
pub use registry::{DriverState, Registry};
