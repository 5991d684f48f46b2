//! The nodes' bootstrap signals. Every node template of the bundled drivers
//! has an `OS::Heat::WaitConditionHandle` and an `OS::Heat::WaitCondition`
//! (`master_wait_condition` in master.yaml, `worker_wait_condition` in
//! worker.yaml) that the node signals from `fragments/bootstrap.sh` after
//! its last fragment (SUCCESS, with what it runs) or at its first failing
//! one (FAILURE, naming the node and the step). So a stack, and its
//! cluster, completes only when its nodes say so, as upstream's
//! `master_wait_condition` (magnum/drivers/k8s_fedora_atomic_v1/templates/
//! kubemaster.yaml). This module reads those signals back out of a stack
//! snapshot: which role failed, which nodes never answered, and what the
//! nodes reported.

use serde_json::Value;

use crate::{
    basics::{string_list, MASTER_ROLE},
    NodeGroupUpdate, StackSnapshot,
};

/// The wait condition of each master (master.yaml).
pub const MASTER_WAIT_CONDITION: &str = "master_wait_condition";
/// The wait condition of each worker (worker.yaml).
pub const WORKER_WAIT_CONDITION: &str = "worker_wait_condition";
/// The cluster template's parameter the node templates' wait conditions
/// take their `timeout` (seconds) from.
pub const TIMEOUT_PARAMETER: &str = "wait_condition_timeout";
/// Cluster stack outputs: each master's and each worker's wait condition
/// `data` (a JSON text, `{"1": <what the node sent>}`).
pub const DATA_OUTPUTS: [&str; 2] = ["master_bootstrap_data", "worker_bootstrap_data"];

/// The role of the workers' node template.
const WORKER_ROLE: &str = "worker";

/// The nodes' wait condition timeout, in seconds, for a cluster created
/// within `create_timeout` minutes (None or 0: no limit, the template's
/// default applies). Nine tenths of it: the wait starts once Nova has built
/// the server, and a wait condition that times out before the stack does
/// makes Heat name the node's resource rather than say only "Create timed
/// out".
pub fn wait_condition_timeout(create_timeout: Option<i64>) -> Option<i64> {
    let minutes = create_timeout.filter(|m| *m > 0)?;
    Some((minutes.saturating_mul(60) / 10 * 9).max(60))
}

/// The node template role (`master` or `worker`) whose wait condition a
/// failed stack's `reason` names first: Heat's reason holds the failing
/// resource's path (`…resources.worker_wait_condition: <node's reason>`),
/// the local cloud's its name.
pub fn failed_role(reason: &str) -> Option<&'static str> {
    let master = reason.find(MASTER_WAIT_CONDITION);
    let worker = reason.find(WORKER_WAIT_CONDITION);
    match (master, worker) {
        (Some(m), Some(w)) if w < m => Some(WORKER_ROLE),
        (Some(_), _) => Some(MASTER_ROLE),
        (None, Some(_)) => Some(WORKER_ROLE),
        (None, None) => None,
    }
}

/// The servers whose wait condition timed out, from Heat's reason
/// (`WaitConditionTimeout: resources.kube_minions.resources[1].resources.
/// worker_wait_condition: 0 of 1 received`): Heat says how many signals
/// came, never from which server, so the server's name is rebuilt from the
/// group member's index as the cluster templates name servers
/// (`<fixed_network_name>-<nodegroup name>-<index>`).
pub fn silent_nodes(stack: &StackSnapshot) -> Vec<String> {
    let reason = &stack.status_reason;
    let parameter = |name: &str| stack.parameters.get(name).and_then(Value::as_str);
    let Some(network) = parameter("fixed_network_name") else {
        return Vec::new();
    };
    let mut nodes = Vec::new();
    for (condition, group_parameter) in [
        (MASTER_WAIT_CONDITION, "master_nodegroup_name"),
        (WORKER_WAIT_CONDITION, "worker_nodegroup_name"),
    ] {
        let Some(group) = parameter(group_parameter) else {
            continue;
        };
        for (at, _) in reason.match_indices(condition) {
            let after = &reason[at + condition.len()..];
            let timed_out = after
                .strip_prefix(": ")
                .and_then(|rest| rest.split_once(" received"))
                .is_some_and(|(counts, _)| counts.contains(" of "));
            if !timed_out {
                continue;
            }
            if let Some(index) = member_index(&reason[..at]) {
                let name = format!("{network}-{group}-{index}");
                if !nodes.contains(&name) {
                    nodes.push(name);
                }
            }
        }
    }
    nodes
}

/// The group member index that ends `path` (`…resources[3].resources.` or
/// `…resources.3.resources.`).
fn member_index(path: &str) -> Option<u64> {
    let member = path.strip_suffix(".resources.")?;
    let digits = match member.strip_suffix(']') {
        Some(bracketed) => bracketed.rsplit_once('[')?.1,
        None => member.rsplit_once('.')?.1,
    };
    digits.parse().ok()
}

/// The cluster's `status_reason` for a stack: Heat's, plus the names of
/// the nodes that never signalled when a wait condition timed out.
pub fn status_reason(stack: &StackSnapshot) -> String {
    let silent = silent_nodes(stack);
    if silent.is_empty() {
        stack.status_reason.clone()
    } else {
        format!(
            "{} (no bootstrap signal from {})",
            stack.status_reason,
            silent.join(", ")
        )
    }
}

/// Narrows a failed stack's status to the default nodegroup whose nodes
/// failed: `update` is the group of node template `role` (master or
/// worker) in `stack`. When the stack failed at a wait condition, the
/// failing group keeps the stack's failure; when workers failed, the
/// masters had bootstrapped (every cluster template gives the workers the
/// masters' address, so Heat builds the masters first); when masters
/// failed, the workers were never finished and fail with them, saying so.
pub fn narrow_failure(update: &mut NodeGroupUpdate, role: &str, stack: &StackSnapshot) {
    if !stack.status.ends_with("_FAILED") {
        return;
    }
    let Some(failed) = failed_role(&stack.status_reason) else {
        return;
    };
    if role == failed {
        return;
    }
    if failed == WORKER_ROLE {
        let action = stack.status.split('_').next().unwrap_or_default();
        update.status = Some(format!("{action}_COMPLETE"));
        update.status_reason = Some("its nodes bootstrapped; the workers failed".into());
    } else {
        update.status_reason = Some(format!(
            "not completed: the masters failed to bootstrap: {}",
            stack.status_reason
        ));
    }
}

/// The COE version the nodes reported at the end of their bootstrap (the
/// first master's, else the first worker's): the `coe_version` of the
/// wait condition data in the stack's [`DATA_OUTPUTS`]. `None` before the
/// stack completes, or when no node said.
pub fn reported_coe_version(stack: &StackSnapshot) -> Option<String> {
    DATA_OUTPUTS
        .iter()
        .filter_map(|output| stack.outputs.get(*output))
        .filter_map(string_list)
        .flatten()
        .find_map(|text| {
            // {"<signal id>": <data>}; the data may itself be a JSON text.
            let signals: serde_json::Map<String, Value> = serde_json::from_str(&text).ok()?;
            signals.values().find_map(|data| {
                let data = match data {
                    Value::String(s) => serde_json::from_str(s).ok()?,
                    other => other.clone(),
                };
                data.get("coe_version")
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
            })
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stack(status: &str, reason: &str) -> StackSnapshot {
        StackSnapshot {
            status: status.into(),
            status_reason: reason.into(),
            parameters: json!({
                "fixed_network_name": "k8s-abc",
                "master_nodegroup_name": "default-master",
                "worker_nodegroup_name": "default-worker",
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
            ..Default::default()
        }
    }

    #[test]
    fn the_timeout_follows_the_create_timeout() {
        assert_eq!(wait_condition_timeout(Some(60)), Some(3240));
        assert_eq!(wait_condition_timeout(Some(1)), Some(60));
        assert_eq!(wait_condition_timeout(Some(0)), None);
        assert_eq!(wait_condition_timeout(None), None);
    }

    #[test]
    fn a_failure_names_its_role() {
        let heat = "Resource CREATE failed: WaitConditionFailure: resources.kube_minions.resources[0].resources.worker_wait_condition: k8s-abc-default-worker-0: bootstrap step 40-configure-node.sh failed: master_wait_condition";
        assert_eq!(failed_role(heat), Some("worker"));
        let local = "Resource CREATE failed: OS::Heat::WaitCondition master_wait_condition: x";
        assert_eq!(failed_role(local), Some("master"));
        assert_eq!(
            failed_role("Resource CREATE failed: OS::Nova::Server server: injected fault"),
            None
        );
    }

    #[test]
    fn a_timeout_names_the_silent_servers() {
        let s = stack(
            "CREATE_FAILED",
            "Resource CREATE failed: WaitConditionTimeout: resources.kube_minions.resources[1].resources.worker_wait_condition: 0 of 1 received",
        );
        assert_eq!(silent_nodes(&s), ["k8s-abc-default-worker-1"]);
        assert!(status_reason(&s).ends_with("(no bootstrap signal from k8s-abc-default-worker-1)"));
        let dotted = stack(
            "CREATE_FAILED",
            "resources.kube_masters.resources.2.resources.master_wait_condition: 0 of 1 received",
        );
        assert_eq!(silent_nodes(&dotted), ["k8s-abc-default-master-2"]);
        // A failure signal is no timeout.
        let failed = stack(
            "CREATE_FAILED",
            "WaitConditionFailure: resources.kube_minions.resources[0].resources.worker_wait_condition: node x failed",
        );
        assert!(silent_nodes(&failed).is_empty());
        assert_eq!(status_reason(&failed), failed.status_reason);
    }

    #[test]
    fn a_worker_failure_leaves_the_masters_complete() {
        let s = stack(
            "CREATE_FAILED",
            "Resource CREATE failed: OS::Heat::WaitCondition worker_wait_condition: boom",
        );
        let base = NodeGroupUpdate {
            status: Some(s.status.clone()),
            status_reason: Some(s.status_reason.clone()),
            ..Default::default()
        };
        let mut masters = base.clone();
        narrow_failure(&mut masters, "master", &s);
        assert_eq!(masters.status.as_deref(), Some("CREATE_COMPLETE"));
        let mut workers = base.clone();
        narrow_failure(&mut workers, "worker", &s);
        assert_eq!(workers, base);

        let s = stack(
            "CREATE_FAILED",
            "OS::Heat::WaitCondition master_wait_condition: boom",
        );
        let mut workers = base.clone();
        narrow_failure(&mut workers, "worker", &s);
        assert_eq!(workers.status.as_deref(), Some("CREATE_FAILED"));
        assert!(workers
            .status_reason
            .as_deref()
            .is_some_and(|r| r.contains("masters failed")));
    }

    #[test]
    fn the_nodes_report_their_coe_version() {
        let mut s = stack("CREATE_COMPLETE", "");
        assert_eq!(reported_coe_version(&s), None);
        s.outputs.insert(
            "master_bootstrap_data".into(),
            json!([r#"{"1": {"node": "m0", "coe_version": "v1.27.3"}}"#]),
        );
        assert_eq!(reported_coe_version(&s).as_deref(), Some("v1.27.3"));
        s.outputs.insert(
            "master_bootstrap_data".into(),
            json!([r#"{"1": "{\"coe_version\": \"v1.28.0\"}"}"#]),
        );
        assert_eq!(reported_coe_version(&s).as_deref(), Some("v1.28.0"));
    }
}
