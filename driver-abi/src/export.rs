//! The driver-author side: a typed trait, and the glue that turns it into the
//! JSON-over-FFI [`Driver`](crate::Driver) object with every call guarded by
//! `catch_unwind`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RErr, ROk, RResult, RStr, RString},
};
use serde::{de::DeserializeOwned, Serialize};

use crate::{
    capability as op, payload::*, Driver, DriverBox, DriverError, DriverMod, DriverMod_Ref,
    DriverResult, Driver_TO,
};

/// The manifest's `config` table, as given by the operator.
pub type DriverConfig = serde_json::Map<String, serde_json::Value>;

/// What a driver implements. Every operation defaults to `Unsupported`, so a
/// driver implements exactly what it lists in `DriverInfo::capabilities`.
/// Implementations must be pure: no I/O, no threads, no global state.
pub trait CoeDriver: Send + Sync + Sized + 'static {
    fn info() -> DriverInfo;
    fn new(config: &DriverConfig) -> DriverResult<Self>;

    fn validate_template(&self, _req: &TemplateRequest) -> DriverResult<Validation> {
        Err(DriverError::unsupported(op::VALIDATE_TEMPLATE))
    }
    fn validate_cluster(&self, _req: &ClusterRequest) -> DriverResult<Validation> {
        Err(DriverError::unsupported(op::VALIDATE_CLUSTER))
    }
    fn create_cluster(&self, _req: &ClusterRequest) -> DriverResult<StackPlan> {
        Err(DriverError::unsupported(op::CREATE_CLUSTER))
    }
    fn update_cluster(&self, _req: &ClusterRequest) -> DriverResult<StackPlan> {
        Err(DriverError::unsupported(op::UPDATE_CLUSTER))
    }
    fn resize_cluster(&self, _req: &ResizeRequest) -> DriverResult<StackPlan> {
        Err(DriverError::unsupported(op::RESIZE_CLUSTER))
    }
    fn upgrade_cluster(&self, _req: &UpgradeRequest) -> DriverResult<StackPlan> {
        Err(DriverError::unsupported(op::UPGRADE_CLUSTER))
    }
    fn delete_cluster(&self, _req: &ClusterRequest) -> DriverResult<StackPlan> {
        Err(DriverError::unsupported(op::DELETE_CLUSTER))
    }
    fn create_nodegroup(&self, _req: &NodeGroupRequest) -> DriverResult<StackPlan> {
        Err(DriverError::unsupported(op::CREATE_NODEGROUP))
    }
    fn update_nodegroup(&self, _req: &NodeGroupRequest) -> DriverResult<StackPlan> {
        Err(DriverError::unsupported(op::UPDATE_NODEGROUP))
    }
    fn delete_nodegroup(&self, _req: &NodeGroupRequest) -> DriverResult<StackPlan> {
        Err(DriverError::unsupported(op::DELETE_NODEGROUP))
    }
    fn node_template(&self, _req: &NodeTemplateRequest) -> DriverResult<NodeTemplate> {
        Err(DriverError::unsupported(op::NODE_TEMPLATE))
    }
    fn network_driver(&self, _req: &SubDriverRequest) -> DriverResult<SubDriverConfig> {
        Err(DriverError::unsupported(op::NETWORK_DRIVER))
    }
    fn volume_driver(&self, _req: &SubDriverRequest) -> DriverResult<SubDriverConfig> {
        Err(DriverError::unsupported(op::VOLUME_DRIVER))
    }
    fn map_status(&self, _req: &StatusRequest) -> DriverResult<StatusUpdate> {
        Err(DriverError::unsupported(op::MAP_STATUS))
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

/// Runs `f` so that neither a panic nor an error escapes as anything but a
/// `DriverError` tagged with `operation`. Unwinding across `extern "C"` would
/// abort the host.
fn guard<T>(operation: &str, f: impl FnOnce() -> DriverResult<T>) -> RResult<T, DriverError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => ROk(v),
        Ok(Err(e)) => RErr(e.in_operation(operation)),
        Err(payload) => RErr(DriverError::panicked(operation, panic_message(&*payload))),
    }
}

fn json_call<Req, Resp>(
    operation: &str,
    request: RStr<'_>,
    f: impl FnOnce(&Req) -> DriverResult<Resp>,
) -> RResult<RString, DriverError>
where
    Req: DeserializeOwned,
    Resp: Serialize,
{
    guard(operation, || {
        // A request the driver cannot parse is the host's bug, not the user's.
        let req: Req = serde_json::from_str(request.as_str())
            .map_err(|e| DriverError::internal(format!("malformed {operation} request: {e}")))?;
        let resp = f(&req)?;
        serde_json::to_string(&resp)
            .map(RString::from)
            .map_err(|e| DriverError::internal(format!("unserialisable {operation} reply: {e}")))
    })
}

/// Adapts a typed [`CoeDriver`] to the ABI trait object.
struct Exported<T>(T);

impl<T: CoeDriver> Driver for Exported<T> {
    fn validate_template(&self, r: RStr<'_>) -> RResult<RString, DriverError> {
        json_call(op::VALIDATE_TEMPLATE, r, |q| self.0.validate_template(q))
    }
    fn validate_cluster(&self, r: RStr<'_>) -> RResult<RString, DriverError> {
        json_call(op::VALIDATE_CLUSTER, r, |q| self.0.validate_cluster(q))
    }
    fn create_cluster(&self, r: RStr<'_>) -> RResult<RString, DriverError> {
        json_call(op::CREATE_CLUSTER, r, |q| self.0.create_cluster(q))
    }
    fn update_cluster(&self, r: RStr<'_>) -> RResult<RString, DriverError> {
        json_call(op::UPDATE_CLUSTER, r, |q| self.0.update_cluster(q))
    }
    fn resize_cluster(&self, r: RStr<'_>) -> RResult<RString, DriverError> {
        json_call(op::RESIZE_CLUSTER, r, |q| self.0.resize_cluster(q))
    }
    fn upgrade_cluster(&self, r: RStr<'_>) -> RResult<RString, DriverError> {
        json_call(op::UPGRADE_CLUSTER, r, |q| self.0.upgrade_cluster(q))
    }
    fn delete_cluster(&self, r: RStr<'_>) -> RResult<RString, DriverError> {
        json_call(op::DELETE_CLUSTER, r, |q| self.0.delete_cluster(q))
    }
    fn create_nodegroup(&self, r: RStr<'_>) -> RResult<RString, DriverError> {
        json_call(op::CREATE_NODEGROUP, r, |q| self.0.create_nodegroup(q))
    }
    fn update_nodegroup(&self, r: RStr<'_>) -> RResult<RString, DriverError> {
        json_call(op::UPDATE_NODEGROUP, r, |q| self.0.update_nodegroup(q))
    }
    fn delete_nodegroup(&self, r: RStr<'_>) -> RResult<RString, DriverError> {
        json_call(op::DELETE_NODEGROUP, r, |q| self.0.delete_nodegroup(q))
    }
    fn node_template(&self, r: RStr<'_>) -> RResult<RString, DriverError> {
        json_call(op::NODE_TEMPLATE, r, |q| self.0.node_template(q))
    }
    fn network_driver(&self, r: RStr<'_>) -> RResult<RString, DriverError> {
        json_call(op::NETWORK_DRIVER, r, |q| self.0.network_driver(q))
    }
    fn volume_driver(&self, r: RStr<'_>) -> RResult<RString, DriverError> {
        json_call(op::VOLUME_DRIVER, r, |q| self.0.volume_driver(q))
    }
    fn map_status(&self, r: RStr<'_>) -> RResult<RString, DriverError> {
        json_call(op::MAP_STATUS, r, |q| self.0.map_status(q))
    }
}

extern "C" fn info<T: CoeDriver>() -> RResult<RString, DriverError> {
    guard("info", || {
        serde_json::to_string(&T::info())
            .map(RString::from)
            .map_err(|e| DriverError::internal(format!("unserialisable driver info: {e}")))
    })
}

extern "C" fn new<T: CoeDriver>(config: RStr<'_>) -> RResult<DriverBox, DriverError> {
    guard("new", || {
        let config: DriverConfig = if config.trim().is_empty() {
            DriverConfig::new()
        } else {
            serde_json::from_str(config.as_str())
                .map_err(|e| DriverError::invalid("config", format!("not a JSON object: {e}")))?
        };
        let driver = T::new(&config)?;
        Ok(Driver_TO::from_value(Exported(driver), TD_Opaque))
    })
}

/// The root module for `T`; called once by the loader through
/// [`export_driver!`].
pub fn root_module<T: CoeDriver>() -> DriverMod_Ref {
    DriverMod {
        info: info::<T>,
        new: new::<T>,
    }
    .leak_into_prefix()
}

/// Exports `$driver` (a [`CoeDriver`]) as this library's root module.
///
/// Expands to the library header static that abi_stable's loader looks up.
/// It is written out here rather than with `#[export_root_module]` so that a
/// driver crate depends on `magnum-driver-abi` alone.
#[macro_export]
macro_rules! export_driver {
    ($driver:ty) => {
        #[doc(hidden)]
        pub fn __magnum_driver_root_module() -> $crate::DriverMod_Ref {
            $crate::root_module::<$driver>()
        }

        #[doc(hidden)]
        #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
        pub static MAGNUM_DRIVER_LIB_HEADER: $crate::abi_stable::library::LibHeader = {
            extern "C" fn erased() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(__magnum_driver_root_module)
            }
            // SAFETY: `erased` returns the root module of type `DriverMod_Ref`,
            // which is what the header is declared with.
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::DriverMod_Ref>(
                    erased,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}
