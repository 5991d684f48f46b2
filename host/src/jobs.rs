//! The operations the API hands the conductor: one typed job each, enqueued
//! in the same transaction as the rows they concern. A job's arguments
//! (`data`) are what the accepted request asked for and never change; the
//! run's bookkeeping (`state`) is the conductor's. Both are JSON in the
//! `jobs` table, the job type in `job_type`, the cluster in `cluster_uuid`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::{
    models::{Job, NewJob},
    DbConnection,
};

/// What an accepted request asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Operation {
    ClusterCreate,
    /// `PATCH node_count`: the default worker group's row holds the new size.
    ClusterUpdate {
        nodegroup: String,
        node_count: i64,
        previous_node_count: i32,
        #[serde(default)]
        rollback: bool,
    },
    /// The group's row holds the new size (the last accepted request's).
    ClusterResize {
        nodegroup: String,
        node_count: i64,
        previous_node_count: i32,
        #[serde(default)]
        nodes_to_remove: Vec<String>,
    },
    ClusterUpgrade {
        cluster_template: String,
        nodegroup: String,
        max_batch_size: i64,
    },
    ClusterDelete,
    NodegroupCreate {
        nodegroup: String,
    },
    /// Bounds and node labels only, which no bundled driver turns into a
    /// stack change.
    NodegroupUpdate {
        nodegroup: String,
    },
    NodegroupDelete {
        nodegroup: String,
    },
    RotateCa,
    RotateCredential,
}

impl Operation {
    /// The `job_type` column: the serde tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ClusterCreate => "cluster_create",
            Self::ClusterUpdate { .. } => "cluster_update",
            Self::ClusterResize { .. } => "cluster_resize",
            Self::ClusterUpgrade { .. } => "cluster_upgrade",
            Self::ClusterDelete => "cluster_delete",
            Self::NodegroupCreate { .. } => "nodegroup_create",
            Self::NodegroupUpdate { .. } => "nodegroup_update",
            Self::NodegroupDelete { .. } => "nodegroup_delete",
            Self::RotateCa => "rotate_ca",
            Self::RotateCredential => "rotate_credential",
        }
    }

    /// The nodegroup the operation is about, if one.
    pub fn nodegroup(&self) -> Option<&str> {
        match self {
            Self::ClusterUpdate { nodegroup, .. }
            | Self::ClusterResize { nodegroup, .. }
            | Self::ClusterUpgrade { nodegroup, .. }
            | Self::NodegroupCreate { nodegroup }
            | Self::NodegroupUpdate { nodegroup }
            | Self::NodegroupDelete { nodegroup } => Some(nodegroup),
            _ => None,
        }
    }

    /// The arguments of a stored job. Jobs queued before the typed form
    /// carry no `type` in their data: the `job_type` column supplies it.
    pub fn of(job: &Job) -> Result<Self, String> {
        let mut data: Value =
            serde_json::from_str(&job.data).map_err(|e| format!("job data is not JSON: {e}"))?;
        let Value::Object(map) = &mut data else {
            return Err("job data is not a JSON object".to_owned());
        };
        map.entry("type")
            .or_insert_with(|| Value::String(job.job_type.clone()));
        serde_json::from_value(data).map_err(|e| format!("job {}: {e}", job.job_type))
    }
}

/// Where a run of a job stands; kept between its runs (polls, retries and
/// takeovers after a crash). Every step can start over from the default,
/// which is what a job queued before this form does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunState {
    /// When the operation's first run started (Unix seconds): its deadline
    /// counts from here, across retries.
    pub started_at: Option<i64>,
    /// The plan was issued; the run now tracks `stacks`.
    pub tracking: bool,
    /// The stacks the operation issued and waits for (a delete: in order).
    pub stacks: Vec<String>,
    /// Polls since the last step, for the backoff.
    pub polls: u32,
    /// A delete: the stack being deleted, and whether its delete was issued.
    pub step: usize,
    pub issued: bool,
    /// An upgrade: the new template's labels its plan applied to the stacks
    /// (passed as stack parameters of the same name and value), which the
    /// cluster's labels take once the upgrade completes.
    pub carried_labels: std::collections::BTreeMap<String, String>,
}

impl RunState {
    /// The state of a stored job (a malformed one starts over).
    pub fn of(job: &Job) -> Self {
        serde_json::from_str(&job.state).unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// Queues `operation` on `cluster`.
pub fn enqueue(
    conn: &mut DbConnection,
    cluster: &str,
    operation: &Operation,
) -> diesel::QueryResult<Job> {
    let data = serde_json::to_string(operation).unwrap_or_else(|_| "{}".to_owned());
    Job::enqueue(
        conn,
        &NewJob::new(operation.kind(), &data).of_cluster(cluster),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(job_type: &str, data: &str) -> Job {
        Job {
            id: 1,
            job_type: job_type.into(),
            data: data.into(),
            priority: 0,
            retries: 0,
            last_retry: None,
            run_after: crate::db::models::now(),
            locked_by: None,
            locked_at: None,
            created_at: crate::db::models::now(),
            cluster_uuid: Some("c".into()),
            state: "{}".into(),
        }
    }

    #[test]
    fn operations_round_trip_and_read_untyped_rows() {
        let op = Operation::ClusterResize {
            nodegroup: "ng".into(),
            node_count: 3,
            previous_node_count: 1,
            nodes_to_remove: vec!["n-1".into()],
        };
        let data = serde_json::to_string(&op).unwrap();
        assert_eq!(Operation::of(&stored(op.kind(), &data)), Ok(op));
        // A row queued before the typed form: the column names the type.
        let old = stored(
            "cluster_resize",
            r#"{"cluster":"c","nodegroup":"ng","node_count":2,"previous_node_count":1,"nodes_to_remove":[]}"#,
        );
        assert!(matches!(
            Operation::of(&old),
            Ok(Operation::ClusterResize { node_count: 2, .. })
        ));
        assert_eq!(
            Operation::of(&stored("rotate_ca", r#"{"cluster":"c"}"#)),
            Ok(Operation::RotateCa)
        );
        // Missing arguments are an error, never a silent default.
        assert!(Operation::of(&stored("cluster_resize", r#"{"cluster":"c"}"#)).is_err());
        assert!(Operation::of(&stored("no_such_job", "{}")).is_err());
        assert!(Operation::of(&stored("cluster_create", "[]")).is_err());
    }
}
