//! The real OpenStack CLI against `magnumd` (src/clients.rs), as a test
//! binary of its own so that it runs alone.

mod clients;
mod upstream_import;
// Shared with the e2e binary, which uses the helpers this one does not.
#[allow(dead_code)]
mod support;
