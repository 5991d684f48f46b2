//! What the conductor needs from an orchestrator: stacks created, found by
//! their deterministic name, read, updated and deleted. Calls are sync: the
//! conductor runs every job on the blocking pool, and the `local` cloud
//! works on the database connection it is given.

use std::collections::HashMap;

use magnum_driver_abi::payload::{StackOperation, StackSnapshot};

use crate::db::DbConnection;

#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// The orchestrator refused the request (bad template or parameters):
    /// retrying cannot help; the operation fails with this reason.
    #[error("{0}")]
    Rejected(String),
    /// The orchestrator could not be reached or failed internally: the job
    /// is retried later.
    #[error("{0}")]
    Unavailable(String),
}

pub trait Orchestrator: Send + Sync {
    fn name(&self) -> &'static str;

    /// Starts creating the stack `op` describes; returns its id.
    /// `trust_id` is the cluster's Keystone trust, passed by the conductor
    /// (never read from the plan: no driver gives it to its stacks, whose
    /// nodes must not have it): with it, the stack is made in the trust's
    /// project, the user's.
    fn create(
        &self,
        conn: &mut DbConnection,
        project_id: &str,
        trust_id: Option<&str>,
        op: &StackOperation,
    ) -> Result<String, OrchestratorError>;

    /// The id of the stack with this name, if one exists (so a retried
    /// create never makes a second stack). `trust_id` is the cluster's
    /// trust: its stacks live in the user's project, where only a
    /// trust-scoped call sees them by name.
    fn find(
        &self,
        conn: &mut DbConnection,
        name: &str,
        trust_id: Option<&str>,
    ) -> Result<Option<String>, OrchestratorError>;

    /// The stack as it is now; `None` when it no longer exists (Heat's 404).
    fn get(
        &self,
        conn: &mut DbConnection,
        id: &str,
    ) -> Result<Option<StackSnapshot>, OrchestratorError>;

    /// Starts an update (`existing` semantics: parameters merged), as the
    /// cluster's trust when it has one (as [`Self::create`]).
    fn update(
        &self,
        conn: &mut DbConnection,
        id: &str,
        trust_id: Option<&str>,
        op: &StackOperation,
    ) -> Result<(), OrchestratorError>;

    /// Per-server health of a stack (server name, healthy) where the
    /// orchestrator can tell; `None` leaves the cluster's health UNKNOWN
    /// (real Heat cannot see inside the COE).
    fn node_health(
        &self,
        _conn: &mut DbConnection,
        _id: &str,
    ) -> Result<Option<Vec<(String, bool)>>, OrchestratorError> {
        Ok(None)
    }

    /// For the stacks among `ids` that are settled (not in progress), a
    /// version that changes whenever the stack does. The health pass skips
    /// a cluster whose rows and stack versions are unchanged since it last
    /// looked, so an orchestrator that answers [`Self::node_health`] from
    /// stack state must implement this too. Stacks left out are looked at
    /// on every pass; the default leaves out all.
    fn stack_versions(
        &self,
        _conn: &mut DbConnection,
        _ids: &[String],
    ) -> Result<HashMap<String, String>, OrchestratorError> {
        Ok(HashMap::new())
    }

    /// Starts deleting the stack; deleting a missing stack is not an error.
    fn delete(&self, conn: &mut DbConnection, id: &str) -> Result<(), OrchestratorError>;

    /// The longest the conductor should wait between two polls of one of
    /// this orchestrator's stacks, when it knows better than the
    /// conductor's backoff (a simulated cloud whose polls are cheap and
    /// whose boot time it knows). `None`: the conductor's `poll_cap`.
    fn poll_cap(&self) -> Option<std::time::Duration> {
        None
    }
}

/// An orchestrator whose every call is counted and timed in
/// [`crate::metrics::METRICS`]; the conductor wraps its orchestrator in it.
pub struct Metered(pub std::sync::Arc<dyn Orchestrator>);

impl Metered {
    fn timed<T>(
        &self,
        operation: &str,
        call: impl FnOnce() -> Result<T, OrchestratorError>,
    ) -> Result<T, OrchestratorError> {
        let started = std::time::Instant::now();
        let result = call();
        crate::metrics::METRICS.orchestrator_call(
            self.0.name(),
            operation,
            result.is_ok(),
            started.elapsed(),
        );
        result
    }
}

impl Orchestrator for Metered {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn create(
        &self,
        conn: &mut DbConnection,
        project_id: &str,
        trust_id: Option<&str>,
        op: &StackOperation,
    ) -> Result<String, OrchestratorError> {
        self.timed("create", || self.0.create(conn, project_id, trust_id, op))
    }

    fn find(
        &self,
        conn: &mut DbConnection,
        name: &str,
        trust_id: Option<&str>,
    ) -> Result<Option<String>, OrchestratorError> {
        self.timed("find", || self.0.find(conn, name, trust_id))
    }

    fn get(
        &self,
        conn: &mut DbConnection,
        id: &str,
    ) -> Result<Option<StackSnapshot>, OrchestratorError> {
        self.timed("get", || self.0.get(conn, id))
    }

    fn update(
        &self,
        conn: &mut DbConnection,
        id: &str,
        trust_id: Option<&str>,
        op: &StackOperation,
    ) -> Result<(), OrchestratorError> {
        self.timed("update", || self.0.update(conn, id, trust_id, op))
    }

    fn node_health(
        &self,
        conn: &mut DbConnection,
        id: &str,
    ) -> Result<Option<Vec<(String, bool)>>, OrchestratorError> {
        self.timed("node_health", || self.0.node_health(conn, id))
    }

    fn stack_versions(
        &self,
        conn: &mut DbConnection,
        ids: &[String],
    ) -> Result<HashMap<String, String>, OrchestratorError> {
        self.timed("stack_versions", || self.0.stack_versions(conn, ids))
    }

    fn delete(&self, conn: &mut DbConnection, id: &str) -> Result<(), OrchestratorError> {
        self.timed("delete", || self.0.delete(conn, id))
    }

    fn poll_cap(&self) -> Option<std::time::Duration> {
        self.0.poll_cap()
    }
}
