//! Cluster health: `health_status` and `health_status_reason` of complete
//! clusters, refreshed from what the orchestrator knows of their servers.
//!
//! A pass where nothing changed costs three queries and no stack reads: a
//! cluster is looked at again only when its row, its set of stacks or one
//! of its stacks' versions differs from what the last pass saw, or when one
//! of its stacks had not settled then.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use serde_json::{json, Map, Value};

use super::Conductor;
use crate::{
    db::{
        models::{Cluster, HealthRow, NodeGroup},
        DbConnection,
    },
    domain::UPDATE_ALLOWED,
};

/// What the last pass saw of each cluster it could skip next time.
#[derive(Debug, Default)]
pub(super) struct Seen(Mutex<HashMap<String, String>>);

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthPass {
    /// Clusters in a `*_COMPLETE` status.
    pub clusters: usize,
    /// Those whose servers were read; the others had not changed.
    pub examined: usize,
    /// Those whose health columns were written.
    pub changed: usize,
}

pub(super) fn pass(c: &Conductor, conn: &mut DbConnection) -> diesel::QueryResult<HealthPass> {
    let rows = Cluster::health_rows(conn, UPDATE_ALLOWED)?;
    let mut stacks: HashMap<&str, Vec<String>> = rows
        .iter()
        .map(|r| (r.uuid.as_str(), r.stack_id.iter().cloned().collect()))
        .collect();
    for (cluster, stack) in NodeGroup::stacks_of_clusters_in(conn, UPDATE_ALLOWED)? {
        // A cluster that completed between the two queries waits a pass.
        if let Some(ids) = stacks.get_mut(cluster.as_str()) {
            if !ids.contains(&stack) {
                ids.push(stack);
            }
        }
    }
    let all: Vec<String> = stacks.values().flatten().cloned().collect();
    let versions = c
        .orchestrator
        .stack_versions(conn, &all)
        .unwrap_or_else(|e| {
            tracing::debug!("health: stack versions: {e}");
            HashMap::new()
        });

    // Taken, not borrowed: a pass that fails half-way starts afresh.
    let mut seen = std::mem::take(
        &mut *c
            .health_seen
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    let mut next = HashMap::new();
    let mut done = HealthPass {
        clusters: rows.len(),
        ..HealthPass::default()
    };
    for row in &rows {
        let ids = stacks.get(row.uuid.as_str()).map_or(&[][..], Vec::as_slice);
        let fingerprint = fingerprint(row, ids, &versions);
        if fingerprint.is_some() && seen.remove(&row.uuid) == fingerprint {
            next.insert(row.uuid.clone(), fingerprint.unwrap_or_default());
            continue;
        }
        done.examined += 1;
        let (status, reason, settled) = assess(c, conn, &row.uuid, ids);
        let current = row.health_status.as_deref() == Some(status)
            && row.health_status_reason.as_deref() == Some(reason.as_str());
        // Only the health columns, and only while still complete: a
        // whole-row write here could undo a request made meanwhile.
        let written =
            !current && Cluster::set_health(conn, &row.uuid, UPDATE_ALLOWED, status, &reason)?;
        if written {
            done.changed += 1;
        }
        if let (Some(f), true) = (fingerprint, settled && (current || written)) {
            next.insert(row.uuid.clone(), f);
        }
    }
    *c.health_seen
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = next;
    Ok(done)
}

/// The cluster's row and stack versions as one string, or `None` when a
/// stack has no settled version (it must be looked at on every pass).
fn fingerprint(
    row: &HealthRow,
    ids: &[String],
    versions: &HashMap<String, String>,
) -> Option<String> {
    let mut f = format!("{}|{:?}", row.status, row.updated_at);
    for id in ids {
        f.push('|');
        f.push_str(id);
        f.push('=');
        f.push_str(versions.get(id)?);
    }
    Some(f)
}

/// `(health_status, health_status_reason, settled)` from the servers of
/// `ids`. UNKNOWN when the orchestrator cannot tell or failed; after a
/// failure the answer is not settled, so the next pass asks again.
fn assess(
    c: &Conductor,
    conn: &mut DbConnection,
    uuid: &str,
    ids: &[String],
) -> (&'static str, String, bool) {
    let mut nodes = Vec::new();
    let mut known = true;
    let mut settled = true;
    for id in ids {
        match c.orchestrator.node_health(conn, id) {
            Ok(Some(n)) => nodes.extend(n),
            Ok(None) => known = false,
            Err(e) => {
                tracing::debug!(cluster = %uuid, "health: {e}");
                known = false;
                settled = false;
            }
        }
    }
    if !known || nodes.is_empty() {
        return ("UNKNOWN", Value::Object(Map::new()).to_string(), settled);
    }
    let mut reason = Map::new();
    reason.insert("api".into(), json!("ok"));
    for (name, ok) in &nodes {
        reason.insert(
            format!("{name}.Ready"),
            json!(if *ok { "True" } else { "False" }),
        );
    }
    let healthy = nodes.iter().all(|(_, ok)| *ok);
    let status = if healthy { "HEALTHY" } else { "UNHEALTHY" };
    (status, Value::Object(reason).to_string(), settled)
}
