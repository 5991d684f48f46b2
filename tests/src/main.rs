//! magnum-rs end-to-end tests: real driver libraries through the real loader,
//! the real `magnum-driver-manage` and `magnumd` binaries as processes, and
//! the real OpenStack CLI against `magnumd` (tests/clients/, in the `clients`
//! test binary: src/clients_main.rs).
//!
//! Run through `scripts/test`, which builds the workspace (binaries and
//! driver `.so` files) first; fixtures outside the workspace are built here.

mod abi_compat;
mod api;
mod bootstrap;
mod bundled;
mod certificates;
mod conductor;
mod files;
mod isolation;
mod loader;
mod local_cloud;
mod model;
mod network;
mod outage;
mod outcomes;
mod request_ids;
mod sandbox;
mod support;
mod upgrade;
mod vendor;
