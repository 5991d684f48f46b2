//! Orchestrators: what turns a driver's stack plan into (simulated or real)
//! resources, behind one trait, [`Orchestrator`], which the conductor uses.
//!
//! - [`hot`]: a pure evaluator of the Heat Orchestration Templates the
//!   drivers' plans carry;
//! - [`sim`]: the simulated cloud's resource types (no real machines);
//! - [`local`]: the embedded `local` orchestrator, [`LocalCloud`], which keeps
//!   its stacks in the database;
//! - [`heat`]: the `heat` orchestrator, [`HeatOrchestrator`], on a real
//!   OpenStack Heat.

pub mod heat;
pub mod hot;
mod interface;
pub mod local;
pub mod sim;

#[cfg(test)]
mod tests;

pub use heat::{HeatOrchestrator, HeatSettings};
pub use interface::{Orchestrator, OrchestratorError};
pub use local::{LocalCloud, LocalCloudConfig, LocalError, SimServer};
