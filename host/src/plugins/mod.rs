//! Driver plugins: manifests in `plugins.d`, the abi_stable loader, the
//! registry of loaded drivers, operator commands and the conformance check.

pub mod call;
pub mod conformance;
pub mod loader;
pub mod manage;
pub mod manifest;
pub mod registry;
pub mod runner;
pub mod threads;

pub use call::LoadedDriver;
pub use registry::{DriverState, Drivers, Registry};

/// Where running magnumd processes write their drivers' health.
pub fn health_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("driver-health")
}

/// The health reports in `dir` of processes still running, by driver name.
pub fn read_health(dir: &std::path::Path) -> Vec<call::HealthReport> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut reports: Vec<call::HealthReport> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|text| serde_json::from_str::<call::HealthReport>(&text).ok())
        // A process that exited no longer speaks for its drivers.
        .filter(|r| std::path::Path::new(&format!("/proc/{}", r.pid)).exists())
        .collect();
    reports.sort_by(|a, b| (&a.driver, a.pid).cmp(&(&b.driver, b.pid)));
    reports
}
