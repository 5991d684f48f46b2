//! The magnum-rs driver SDK: what a COE driver is written with.
//!
//! It re-exports the whole of `magnum-driver-abi` (the contract: root module,
//! `Driver` trait object, payloads, errors, [`export_driver!`]), so a driver
//! crate has this one dependency. On top of it:
//!
//! - [`helpers`]: upstream Magnum's conventions as pure functions (labels,
//!   effective templates, parameters, stack operations, status from stack
//!   outputs);
//! - [`environment`], [`boot_volume`], [`rexray`], [`scale`]: pieces the
//!   bundled Heat drivers share;
//! - [`node_setup`]: what the nodes download (mirror, versions, checksums),
//!   their images' registry, proxy and the cloud's CA, as Heat parameters;
//! - [`user_data`]: the node templates' bootstrap fragments gzipped into the
//!   user data, which Nova limits to 64 KiB;
//! - [`heat`]: a [`HeatDriver`](heat::HeatDriver) trait whose provided methods
//!   make a whole one-stack Heat driver out of its parameters and templates.
//!
//! Unlike the ABI, the SDK may change in any release: a driver built with an
//! older SDK keeps loading, since what the host checks is the ABI alone.

pub use magnum_driver_abi::*;

mod basics;
pub mod boot_volume;
pub mod bootstrap;
pub mod environment;
pub mod heat;
pub mod helpers;
pub mod node_setup;
pub mod rexray;
pub mod scale;
pub mod user_data;
