//! The `local` simulated cloud as the conductor's orchestrator.

use std::collections::HashMap;

use magnum_driver_abi::payload::{StackOperation, StackSnapshot};

use super::{Orchestrator, OrchestratorError};
use crate::{
    db::{
        models::{now, LocalStack},
        DbConnection,
    },
    orchestrator::local::{LocalCloud, LocalError},
};

fn map(e: LocalError) -> OrchestratorError {
    match e {
        // The database is the local cloud's only moving part: retry.
        LocalError::Db(e) => OrchestratorError::Unavailable(format!("local cloud database: {e}")),
        other => OrchestratorError::Rejected(other.to_string()),
    }
}

impl Orchestrator for LocalCloud {
    fn name(&self) -> &'static str {
        "local"
    }

    fn create(
        &self,
        conn: &mut DbConnection,
        project_id: &str,
        op: &StackOperation,
    ) -> Result<String, OrchestratorError> {
        self.create(conn, project_id, op, now())
            .map(|s| s.stack_id)
            .map_err(map)
    }

    fn find(
        &self,
        conn: &mut DbConnection,
        name: &str,
        _trust_id: Option<&str>,
    ) -> Result<Option<String>, OrchestratorError> {
        self.find_by_name(conn, name, now())
            .map(|s| s.map(|s| s.stack_id))
            .map_err(map)
    }

    fn get(
        &self,
        conn: &mut DbConnection,
        id: &str,
    ) -> Result<Option<StackSnapshot>, OrchestratorError> {
        match LocalCloud::get(self, conn, id, now()) {
            Ok(s) => Ok(Some(s)),
            Err(LocalError::NotFound(_)) => Ok(None),
            Err(e) => Err(map(e)),
        }
    }

    fn update(
        &self,
        conn: &mut DbConnection,
        id: &str,
        op: &StackOperation,
    ) -> Result<(), OrchestratorError> {
        LocalCloud::update(self, conn, id, op, now())
            .map(drop)
            .map_err(map)
    }

    fn node_health(
        &self,
        conn: &mut DbConnection,
        id: &str,
    ) -> Result<Option<Vec<(String, bool)>>, OrchestratorError> {
        let servers = self.servers(conn, id, now()).map_err(map)?;
        Ok(Some(
            servers
                .into_iter()
                .map(|s| (s.name, s.status == "ACTIVE"))
                .collect(),
        ))
    }

    fn stack_versions(
        &self,
        conn: &mut DbConnection,
        ids: &[String],
    ) -> Result<HashMap<String, String>, OrchestratorError> {
        let heads = LocalStack::heads(conn, ids).map_err(|e| map(e.into()))?;
        // A stored terminal status is final until an action rewrites the
        // row; one stored in progress may have finished by the clock alone.
        Ok(heads
            .into_iter()
            .filter(|h| !h.status.ends_with("_IN_PROGRESS"))
            .map(|h| {
                let version = format!("{}@{}", h.status, h.updated_at.unwrap_or(h.created_at));
                (h.id, version)
            })
            .collect())
    }

    fn delete(&self, conn: &mut DbConnection, id: &str) -> Result<(), OrchestratorError> {
        match LocalCloud::delete(self, conn, id, now()) {
            Ok(_) | Err(LocalError::NotFound(_)) => Ok(()),
            Err(e) => Err(map(e)),
        }
    }
}
