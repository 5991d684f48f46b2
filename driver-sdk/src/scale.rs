//! The size of a cluster stack's workers, shared by the three drivers.

use crate::{helpers, payload::ClusterRequest};

/// The default worker nodegroup's `node_count`: what the cluster stack's
/// worker count parameter holds. `cluster.node_count` is the sum over every
/// worker nodegroup (what upstream shows), so scaling the cluster stack to
/// it would grow the default group by the other groups' nodes on every
/// update or rotation; it is only the fallback for a request without
/// nodegroups.
pub fn default_worker_count(req: &ClusterRequest) -> i64 {
    helpers::default_nodegroup(req, "worker").map_or(req.cluster.node_count, |g| g.node_count)
}
