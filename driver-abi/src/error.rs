//! The error that crosses the ABI.
//!
//! A fixed `repr(C)` struct whose `kind` is an integer newtype, so a later
//! minor can add kinds without changing the layout; a host that sees a kind it
//! does not know treats it as [`ErrorKind::INTERNAL`].

use std::fmt;

use abi_stable::{std_types::RString, StableAbi};

/// What went wrong, as an open set of integer codes.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorKind(pub u8);

impl ErrorKind {
    /// The user's input is wrong; `field` names the offending field or label.
    pub const INVALID: Self = Self(1);
    /// The driver does not implement `operation` (or this ABI version lacks it).
    pub const UNSUPPORTED: Self = Self(2);
    /// The driver panicked inside `operation`; the host survives.
    pub const PANICKED: Self = Self(3);
    /// A bug or broken invariant, in the driver or in what the host sent it.
    pub const INTERNAL: Self = Self(4);

    /// A stable lower-case name, for logs and the host's error mapping.
    pub fn name(self) -> &'static str {
        match self {
            Self::INVALID => "invalid",
            Self::UNSUPPORTED => "unsupported",
            Self::PANICKED => "panicked",
            Self::INTERNAL => "internal",
            _ => "unknown",
        }
    }
}

/// An error returned by a driver function.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct DriverError {
    pub kind: ErrorKind,
    /// The input field at fault (for `INVALID`), else empty.
    pub field: RString,
    /// The ABI operation that failed, filled in by the export wrapper.
    pub operation: RString,
    /// One human-readable sentence; never contains secrets.
    pub message: RString,
}

impl DriverError {
    fn new(kind: ErrorKind, field: &str, operation: &str, message: String) -> Self {
        Self {
            kind,
            field: field.into(),
            operation: operation.into(),
            message: message.into(),
        }
    }

    /// Bad user input in `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INVALID, field, "", message.into())
    }

    /// `operation` is not supported by this driver.
    pub fn unsupported(operation: &str) -> Self {
        Self::new(
            ErrorKind::UNSUPPORTED,
            "",
            operation,
            format!("operation {operation} is not supported by this driver"),
        )
    }

    /// The driver panicked while running `operation`.
    pub fn panicked(operation: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PANICKED, "", operation, message.into())
    }

    /// Anything else.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INTERNAL, "", "", message.into())
    }

    pub fn is_unsupported(&self) -> bool {
        self.kind == ErrorKind::UNSUPPORTED
    }

    /// Sets the operation unless the driver already named one.
    pub fn in_operation(mut self, operation: &str) -> Self {
        if self.operation.is_empty() {
            self.operation = operation.into();
        }
        self
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::INVALID if !self.field.is_empty() => {
                write!(f, "invalid {}: {}", self.field, self.message)
            }
            ErrorKind::PANICKED => {
                write!(f, "driver panicked in {}: {}", self.operation, self.message)
            }
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DriverError {}

/// The result type of typed driver code.
pub type DriverResult<T> = Result<T, DriverError>;
