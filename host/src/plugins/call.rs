//! A loaded driver and typed calls through its ABI object.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use abi_stable::std_types::{RResult, RStr, RString};
use magnum_driver_abi::{capability as op, payload::*, DriverBox, DriverError, DriverMod_Ref};
use serde::{de::DeserializeOwned, Serialize};

use super::{
    manifest::Isolation,
    runner::{Failure, RunnerPool},
    threads::CallThreads,
};

/// A driver whose library is mapped and whose instance is built. Libraries
/// are never unloaded; dropping this only drops the instance.
pub struct LoadedDriver {
    /// The manifest name: the key clusters and operators use.
    pub name: String,
    pub info: DriverInfo,
    pub path: PathBuf,
    /// The `magnum-driver-abi` version the library was built against.
    pub abi_version: String,
    /// Where the driver's code runs (the manifest's `isolation`).
    pub isolation: Isolation,
    backend: Backend,
    /// Milliseconds a call may take ([`Self::set_deadline`]).
    deadline_ms: AtomicU64,
    health: Mutex<Health>,
    /// Calls abandoned at their deadline whose thread still runs.
    abandoned: Arc<AtomicU32>,
    /// The threads in-process calls run on.
    threads: Arc<CallThreads>,
    /// Where this driver's health is written for `magnum-driver-manage
    /// list-drivers` ([`Self::report_health_in`]).
    health_dir: Mutex<Option<PathBuf>>,
}

enum Backend {
    /// The library is mapped into this process.
    InProcess {
        #[expect(
            dead_code,
            reason = "kept for root-module functions added in later minors"
        )]
        module: DriverMod_Ref,
        /// Shared with the thread of each call, which may outlive the call
        /// when it misses its deadline.
        driver: Arc<DriverBox>,
    },
    /// The library is loaded by runner processes.
    Process(RunnerPool),
}

/// Calls that time out in a row before a driver is unhealthy.
pub const UNHEALTHY_AFTER: u32 = 3;
/// The deadline of a call unless `[drivers] call_timeout_seconds` says.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct Health {
    timeouts_in_a_row: u32,
    /// Set while unhealthy: since when, and the last call let through to
    /// probe it.
    unhealthy: Option<(chrono::DateTime<chrono::Utc>, Instant)>,
}

/// A driver's health as `list-drivers` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HealthReport {
    pub driver: String,
    pub healthy: bool,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub reason: String,
    /// Calls abandoned at their deadline whose thread still runs.
    pub abandoned_calls: u32,
    pub pid: u32,
}

impl std::fmt::Debug for LoadedDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedDriver")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("abi_version", &self.abi_version)
            .field("isolation", &self.isolation)
            .finish()
    }
}

impl LoadedDriver {
    pub(super) fn new(
        name: String,
        info: DriverInfo,
        module: DriverMod_Ref,
        driver: DriverBox,
        path: PathBuf,
        abi_version: String,
    ) -> Self {
        Self::with_backend(
            name,
            info,
            path,
            abi_version,
            Backend::InProcess {
                module,
                driver: Arc::new(driver),
            },
        )
    }

    /// A driver whose library runner processes load ([`RunnerPool`]).
    pub(super) fn in_runners(
        name: String,
        info: DriverInfo,
        pool: RunnerPool,
        path: PathBuf,
        abi_version: String,
    ) -> Self {
        Self::with_backend(name, info, path, abi_version, Backend::Process(pool))
    }

    fn with_backend(
        name: String,
        info: DriverInfo,
        path: PathBuf,
        abi_version: String,
        backend: Backend,
    ) -> Self {
        Self {
            threads: CallThreads::new(&name),
            name,
            info,
            path,
            abi_version,
            isolation: match backend {
                Backend::InProcess { .. } => Isolation::InProcess,
                Backend::Process(_) => Isolation::Process,
            },
            backend,
            deadline_ms: AtomicU64::new(DEFAULT_DEADLINE.as_millis() as u64),
            health: Mutex::default(),
            abandoned: Arc::default(),
            health_dir: Mutex::default(),
        }
    }

    /// The deadline of every later call (`[drivers] call_timeout_seconds`).
    pub fn set_deadline(&self, deadline: Duration) {
        let ms = u64::try_from(deadline.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.deadline_ms.store(ms, Ordering::Relaxed);
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms.load(Ordering::Relaxed))
    }

    /// Writes this driver's health to `<dir>/<name>-<pid>.json` whenever it
    /// changes (and now), for `magnum-driver-manage list-drivers`.
    pub fn report_health_in(&self, dir: PathBuf) {
        *self
            .health_dir
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(dir);
        self.write_health(&self.health_report());
    }

    pub fn health_report(&self) -> HealthReport {
        let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        HealthReport {
            driver: self.name.clone(),
            healthy: health.unhealthy.is_none(),
            since: health.unhealthy.map(|(since, _)| since),
            reason: if health.unhealthy.is_some() {
                format!(
                    "{} calls in a row did not answer within {} s",
                    health.timeouts_in_a_row.max(UNHEALTHY_AFTER),
                    self.deadline().as_secs_f64()
                )
            } else {
                String::new()
            },
            abandoned_calls: self.abandoned.load(Ordering::Relaxed),
            pid: std::process::id(),
        }
    }

    fn write_health(&self, report: &HealthReport) {
        let dir = self
            .health_dir
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(dir) = dir else { return };
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            let text = serde_json::to_string(report).unwrap_or_default();
            // One file per process: an API and a conductor on one host
            // each have their own view.
            let file = format!("{}-{}.json", self.name, std::process::id());
            let tmp = dir.join(format!(".{file}.tmp"));
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, dir.join(file))
        });
        if let Err(e) = written {
            tracing::warn!(driver = %self.name, "cannot write the driver's health to {}: {e}", dir.display());
        }
    }

    /// `Some(refusal)` while the driver is unhealthy, except for one call
    /// every [`Self::probe_every`], which goes through to see if it answers.
    fn refuse_while_unhealthy(&self, operation: &str) -> Option<DriverError> {
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        let (since, probed) = health.unhealthy.as_mut()?;
        if probed.elapsed() >= self.probe_every() {
            *probed = Instant::now();
            return None;
        }
        Some(DriverError::internal(format!(
            "driver {} is unhealthy since {}: its last {UNHEALTHY_AFTER} calls did not answer \
             within {} s; {operation} is refused until it answers again (one call every {} s \
             is let through to check)",
            self.name,
            since.format("%Y-%m-%dT%H:%M:%SZ"),
            self.deadline().as_secs_f64(),
            self.probe_every().as_secs_f64()
        )))
    }

    /// How often an unhealthy driver gets one call to show it answers
    /// again: every two deadlines.
    pub fn probe_every(&self) -> Duration {
        self.deadline() * 2
    }

    fn answered(&self) {
        let recovered = {
            let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
            health.timeouts_in_a_row = 0;
            health.unhealthy.take().is_some()
        };
        if recovered {
            tracing::warn!(driver = %self.name, "driver answers again: healthy");
            self.write_health(&self.health_report());
        }
    }

    fn timed_out(&self, operation: &str, what: &str) {
        let became_unhealthy = {
            let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
            health.timeouts_in_a_row = health.timeouts_in_a_row.saturating_add(1);
            if health.unhealthy.is_none() && health.timeouts_in_a_row >= UNHEALTHY_AFTER {
                health.unhealthy = Some((chrono::Utc::now(), Instant::now()));
                true
            } else {
                false
            }
        };
        tracing::error!(
            driver = %self.name,
            operation,
            deadline_s = self.deadline().as_secs_f64(),
            abandoned = self.abandoned.load(Ordering::Relaxed),
            "driver call did not answer within its deadline; {what}"
        );
        if became_unhealthy {
            tracing::error!(
                driver = %self.name,
                "driver marked unhealthy after {UNHEALTHY_AFTER} calls in a row missed their \
                 deadline: its new work is refused until it answers again"
            );
            self.write_health(&self.health_report());
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls `operation` with a JSON request and returns the JSON reply. An
    /// operation the driver does not declare is refused without calling it.
    pub fn call_json(&self, operation: &str, request: &str) -> Result<String, DriverError> {
        if !self.info.supports(operation) {
            return Err(DriverError {
                message: format!(
                    "operation {operation} is not supported by driver {}",
                    self.name
                )
                .into(),
                ..DriverError::unsupported(operation)
            });
        }
        if let Some(refusal) = self.refuse_while_unhealthy(operation) {
            return Err(refusal);
        }
        let started = Instant::now();
        let deadline = self.deadline();
        let reply = match &self.backend {
            Backend::InProcess { driver, .. } => {
                self.call_on_thread(driver, operation, request, deadline)
            }
            Backend::Process(pool) => match pool.call(operation, request, deadline) {
                Ok(reply) => {
                    self.answered();
                    Ok(reply)
                }
                Err(Failure { error, timed_out }) => {
                    if timed_out {
                        self.timed_out(operation, "its runner was killed");
                    }
                    Err(error)
                }
            },
        };
        crate::metrics::METRICS.driver_call(
            &self.name,
            operation,
            reply.is_ok(),
            started.elapsed(),
        );
        reply
    }

    /// In-process: the call runs on a thread of its own (an idle one of
    /// [`CallThreads`] when there is one), so that a driver that never
    /// answers costs that thread, not the caller (an API request or a
    /// conductor slot): at the deadline the call is abandoned there.
    fn call_on_thread(
        &self,
        driver: &Arc<DriverBox>,
        operation: &str,
        request: &str,
        deadline: Duration,
    ) -> Result<String, DriverError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let driver = driver.clone();
        let abandoned = self.abandoned.clone();
        let (op_name, req) = (operation.to_owned(), request.to_owned());
        let spawned = self.threads.run(Box::new(move || {
            let reply = invoke(&driver, &op_name, &req);
            // Nobody waits any more: the call was abandoned, and its
            // thread is not reused.
            let waited = tx.send(reply).is_ok();
            if !waited {
                abandoned.fetch_sub(1, Ordering::Relaxed);
            }
            waited
        }));
        if let Err(e) = spawned {
            return Err(DriverError::internal(format!(
                "cannot start a thread for a call to driver {}: {e}",
                self.name
            )));
        }
        match rx.recv_timeout(deadline) {
            Ok(reply) => {
                self.answered();
                reply
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                self.abandoned.fetch_add(1, Ordering::Relaxed);
                // The thread may have answered just now.
                match rx.try_recv() {
                    Ok(reply) => {
                        self.abandoned.fetch_sub(1, Ordering::Relaxed);
                        self.answered();
                        reply
                    }
                    Err(_) => {
                        drop(rx);
                        self.timed_out(operation, "abandoned on its thread");
                        Err(DriverError::internal(format!(
                            "driver {} did not answer {operation} within {} s",
                            self.name,
                            deadline.as_secs_f64()
                        )))
                    }
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(DriverError::internal(
                format!("driver {} ended {operation} without an answer", self.name),
            )),
        }
    }

    /// The call itself, on the calling thread, without a deadline: what a
    /// runner process does with the calls it receives.
    pub fn invoke_direct(&self, operation: &str, request: &str) -> Result<String, DriverError> {
        match &self.backend {
            Backend::InProcess { driver, .. } => invoke(driver, operation, request),
            Backend::Process(_) => self.call_json(operation, request),
        }
    }

    /// Typed call: serialises `request`, deserialises the reply.
    pub fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        operation: &str,
        request: &Req,
    ) -> Result<Resp, DriverError> {
        let json = serde_json::to_string(request).map_err(|e| {
            DriverError::internal(format!("cannot encode {operation} request: {e}"))
        })?;
        let reply = self.call_json(operation, &json)?;
        serde_json::from_str(&reply).map_err(|e| {
            DriverError::internal(format!(
                "driver {} sent a malformed {operation} reply: {e}",
                self.name
            ))
        })
    }

    pub fn validate_template(&self, req: &TemplateRequest) -> Result<Validation, DriverError> {
        self.call(op::VALIDATE_TEMPLATE, req)
    }
    pub fn validate_cluster(&self, req: &ClusterRequest) -> Result<Validation, DriverError> {
        self.call(op::VALIDATE_CLUSTER, req)
    }
    pub fn create_cluster(&self, req: &ClusterRequest) -> Result<StackPlan, DriverError> {
        self.call(op::CREATE_CLUSTER, req)
    }
    pub fn map_status(&self, req: &StatusRequest) -> Result<StatusUpdate, DriverError> {
        self.call(op::MAP_STATUS, req)
    }
}

/// One call through the ABI object, on the call's own thread.
fn invoke(d: &DriverBox, operation: &str, request: &str) -> Result<String, DriverError> {
    let r = RStr::from_str(request);
    let reply: RResult<RString, DriverError> = match operation {
        op::VALIDATE_TEMPLATE => d.validate_template(r),
        op::VALIDATE_CLUSTER => d.validate_cluster(r),
        op::CREATE_CLUSTER => d.create_cluster(r),
        op::UPDATE_CLUSTER => d.update_cluster(r),
        op::RESIZE_CLUSTER => d.resize_cluster(r),
        op::UPGRADE_CLUSTER => d.upgrade_cluster(r),
        op::DELETE_CLUSTER => d.delete_cluster(r),
        op::CREATE_NODEGROUP => d.create_nodegroup(r),
        op::UPDATE_NODEGROUP => d.update_nodegroup(r),
        op::DELETE_NODEGROUP => d.delete_nodegroup(r),
        op::NODE_TEMPLATE => d.node_template(r),
        op::NETWORK_DRIVER => d.network_driver(r),
        op::VOLUME_DRIVER => d.volume_driver(r),
        op::MAP_STATUS => d.map_status(r),
        // Declared by the driver but unknown to this host's ABI version.
        other => return Err(DriverError::unsupported(other)),
    };
    reply.into_result().map(String::from)
}
