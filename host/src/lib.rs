//! magnum-rs host: configuration, the driver plugin host, and the HTTP API.

pub mod api;
pub mod config;
pub mod drivers;
