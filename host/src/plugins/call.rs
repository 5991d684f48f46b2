//! A loaded driver and typed calls through its ABI object.

use std::path::PathBuf;

use abi_stable::std_types::{RResult, RStr, RString};
use magnum_driver_abi::{capability as op, payload::*, DriverBox, DriverError, DriverMod_Ref};
use serde::{de::DeserializeOwned, Serialize};

/// A driver whose library is mapped and whose instance is built. Libraries
/// are never unloaded; dropping this only drops the instance.
pub struct LoadedDriver {
    /// The manifest name: the key clusters and operators use.
    pub name: String,
    pub info: DriverInfo,
    pub path: PathBuf,
    /// The `magnum-driver-abi` version the library was built against.
    pub abi_version: String,
    #[expect(
        dead_code,
        reason = "kept for root-module functions added in later minors"
    )]
    module: DriverMod_Ref,
    driver: DriverBox,
}

impl std::fmt::Debug for LoadedDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedDriver")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("abi_version", &self.abi_version)
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
        Self {
            name,
            info,
            path,
            abi_version,
            module,
            driver,
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
        let started = std::time::Instant::now();
        let d = &self.driver;
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
        let reply = reply.into_result().map(String::from);
        crate::metrics::METRICS.driver_call(
            &self.name,
            operation,
            reply.is_ok(),
            started.elapsed(),
        );
        reply
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
