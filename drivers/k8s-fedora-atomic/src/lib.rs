//! The `k8s_fedora_atomic_v1` COE driver as a magnum-rs plugin library.

mod driver;
mod labels;
mod node_labels;

pub use driver::{K8sFedoraAtomicDriver, CLUSTER_FILE, DRIVER_NAME, HOST_PARAMETERS, TEMPLATES};

magnum_driver_sdk::export_driver!(driver::K8sFedoraAtomicDriver);
