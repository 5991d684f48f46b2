//! The operations the API hands the conductor, one job each, enqueued in
//! the same transaction as the rows they concern.

use serde_json::Value;

use crate::db::{
    models::{Job, NewJob},
    DbConnection,
};

pub const CLUSTER_CREATE: &str = "cluster_create";
pub const CLUSTER_UPDATE: &str = "cluster_update";
pub const CLUSTER_RESIZE: &str = "cluster_resize";
pub const CLUSTER_UPGRADE: &str = "cluster_upgrade";
pub const CLUSTER_DELETE: &str = "cluster_delete";
pub const NODEGROUP_CREATE: &str = "nodegroup_create";
pub const NODEGROUP_UPDATE: &str = "nodegroup_update";
pub const NODEGROUP_DELETE: &str = "nodegroup_delete";
pub const ROTATE_CA: &str = "rotate_ca";
pub const ROTATE_CREDENTIAL: &str = "rotate_credential";

pub fn enqueue(conn: &mut DbConnection, job_type: &str, data: Value) -> diesel::QueryResult<Job> {
    Job::enqueue(conn, &NewJob::new(job_type, &data.to_string()))
}
