//! The compatibility rule for loading a driver library, in one place.
//!
//! abi_stable's own `init_root_module` accepts a library only when its prefix
//! types have at least as many fields as the loader's, i.e. a library of the
//! same or a *newer* minor. We also need the reverse — a newer host loading
//! a driver built against an *older* minor — which prefix types support by
//! design (fields past the library's end read as `None`, and `Driver` trait
//! methods past its vtable fall back to their default body). So the layout is
//! checked in both directions and accepted if either holds.

use abi_stable::{
    abi_stability::abi_checking::check_layout_compatibility,
    library::{LibHeader, RootModule},
    sabi_types::VersionNumber,
    StableAbi,
};

use crate::DriverMod_Ref;

/// Why a library's root module was refused.
#[derive(Debug)]
pub enum CompatError {
    /// The library's ABI major differs from ours.
    Major {
        library: VersionNumber,
        host: VersionNumber,
    },
    /// The version strings of either side do not parse.
    Version(String),
    /// The root module's layout is incompatible in both directions.
    Layout(String),
    /// The library's root-module constructor returned an error or panicked.
    RootModule(String),
}

impl std::fmt::Display for CompatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Major { library, host } => write!(
                f,
                "library built against magnum-driver-abi {library}, this host speaks {host} (same major required)"
            ),
            Self::Version(e) | Self::Layout(e) | Self::RootModule(e) => f.write_str(e),
        }
    }
}

/// This crate's ABI version.
pub fn abi_version() -> VersionNumber {
    VersionNumber::new(<DriverMod_Ref as RootModule>::VERSION_STRINGS).unwrap_or(VersionNumber {
        major: 0,
        minor: 0,
        patch: 0,
    })
}

/// Checks a library header against this ABI and returns its root module and
/// ABI version.
pub fn init_root_module(header: &LibHeader) -> Result<(DriverMod_Ref, VersionNumber), CompatError> {
    let library = VersionNumber::new(header.version_strings())
        .map_err(|e| CompatError::Version(e.to_string()))?;
    let host = abi_version();
    if library.major != host.major {
        return Err(CompatError::Major { library, host });
    }
    if let Some(lib_layout) = header.layout() {
        let ours = <DriverMod_Ref as StableAbi>::LAYOUT;
        let newer_or_same = check_layout_compatibility(ours, lib_layout);
        if let Err(e) = newer_or_same {
            // An older-minor library is the interface the host extends.
            check_layout_compatibility(lib_layout, ours)
                .map_err(|_| CompatError::Layout(e.to_string()))?;
        }
    } else {
        return Err(CompatError::Layout(
            "the library exports no root-module layout to check".into(),
        ));
    }
    // SAFETY: the layout was checked above, in the direction that applies.
    let module = unsafe { header.unchecked_layout::<DriverMod_Ref>() }.map_err(|e| {
        CompatError::RootModule(e.into_library_error::<DriverMod_Ref>().to_string())
    })?;
    Ok((module, library))
}
