//! The `mesos_ubuntu_v1` COE driver as a magnum-rs plugin library.

mod driver;

pub use driver::{MesosUbuntuDriver, CLUSTER_FILE, DRIVER_NAME, HOST_PARAMETERS, TEMPLATES};

magnum_driver_sdk::export_driver!(driver::MesosUbuntuDriver);
