//! A nodegroup's `node_labels` and `node_taints` as kubelet takes them at
//! registration (`--node-labels`, `--register-with-taints`): Kubernetes'
//! rules for the keys and values, and kubelet's allow-list for the
//! `kubernetes.io` namespaces (the NodeRestriction admission plugin refuses
//! the rest, and the node would never register).

use magnum_driver_sdk::{DriverError, DriverResult, Labels, NodeGroup, Taint};

const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// Label keys in the Kubernetes namespaces that kubelet may set itself
/// (kubelet's `--node-labels` allow-list).
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/arch",
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
];

/// Checks every group's node labels and taints; the first problem is an
/// `invalid` error naming the group and the key.
pub fn check(groups: &[NodeGroup]) -> DriverResult<()> {
    for group in groups {
        check_group(group)?;
    }
    Ok(())
}

pub fn check_group(group: &NodeGroup) -> DriverResult<()> {
    for (key, value) in &group.node_labels {
        check_label(key, value).map_err(|why| {
            DriverError::invalid("node_labels", format!("Node label {key}: {why}"))
        })?;
    }
    if group.role == "master" && !group.node_taints.is_empty() {
        return Err(DriverError::invalid(
            "node_taints",
            "Taints are not allowed on master nodegroups.",
        ));
    }
    for taint in &group.node_taints {
        check_taint(taint).map_err(|why| {
            DriverError::invalid("node_taints", format!("Node taint {}: {why}", taint.key))
        })?;
    }
    Ok(())
}

/// `k=v,...` for kubelet's `--node-labels`.
pub fn kubelet_labels(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `k=v:Effect,...` (or `k:Effect`) for kubelet's `--register-with-taints`.
pub fn kubelet_taints(taints: &[Taint]) -> String {
    taints
        .iter()
        .map(|t| match t.value.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => format!("{}={v}:{}", t.key, t.effect),
            None => format!("{}:{}", t.key, t.effect),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn check_label(key: &str, value: &str) -> Result<(), String> {
    check_key(key)?;
    check_value(value)?;
    let (prefix, _) = key.rsplit_once('/').unwrap_or(("", key));
    let k8s = ["kubernetes.io", "k8s.io"]
        .iter()
        .any(|ns| prefix == *ns || prefix.ends_with(&format!(".{ns}")));
    let allowed = prefix == "kubelet.kubernetes.io"
        || prefix == "node.kubernetes.io"
        || KUBELET_LABELS.contains(&key);
    if k8s && !allowed {
        return Err("it is in a Kubernetes namespace kubelet may not set; use kubelet.kubernetes.io/ or node.kubernetes.io/ prefixes.".into());
    }
    Ok(())
}

fn check_taint(taint: &Taint) -> Result<(), String> {
    check_key(&taint.key)?;
    if let Some(value) = &taint.value {
        check_value(value)?;
    }
    if !TAINT_EFFECTS.contains(&taint.effect.as_str()) {
        return Err(format!(
            "effect {:?} should be one of: {}",
            taint.effect,
            TAINT_EFFECTS.join(", ")
        ));
    }
    Ok(())
}

/// A qualified name: an optional DNS-subdomain prefix and `/`, then a name of
/// at most 63 characters (Kubernetes' `IsQualifiedName`).
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let dns = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|part| {
                !part.is_empty()
                    && part.len() <= 63
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        if !dns {
            return Err(format!(
                "the key's prefix {prefix:?} must be a DNS subdomain (lower case letters, digits, '-' and '.')"
            ));
        }
    }
    if name.is_empty() || name.len() > 63 || !name_chars(name) {
        return Err(format!(
            "the key's name {name:?} must be 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A label value: empty, or at most 63 characters as a name.
fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || (value.len() <= 63 && name_chars(value)) {
        Ok(())
    } else {
        Err(format!(
            "the value {value:?} must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

fn name_chars(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        && s.chars().next().is_some_and(alnum)
        && s.chars().last().is_some_and(alnum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(labels: &[(&str, &str)], taints: &[(&str, Option<&str>, &str)]) -> NodeGroup {
        NodeGroup {
            name: "g".into(),
            role: "worker".into(),
            node_labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            node_taints: taints
                .iter()
                .map(|(k, v, e)| Taint {
                    key: k.to_string(),
                    value: v.map(str::to_owned),
                    effect: e.to_string(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn kubelet_rules_for_labels() {
        assert!(check_group(&group(
            &[("node.kubernetes.io/pool", "a"), ("team", "x")],
            &[]
        ))
        .is_ok());
        assert!(check_group(&group(&[("kubernetes.io/os", "linux")], &[])).is_ok());
        assert!(check_group(&group(&[("kubelet.kubernetes.io/x", "")], &[])).is_ok());
        let refused = check_group(&group(&[("kubernetes.io/role", "master")], &[])).unwrap_err();
        assert_eq!(refused.field.as_str(), "node_labels");
        assert!(
            refused.message.contains("kubelet may not set"),
            "{refused:?}"
        );
        assert!(check_group(&group(&[("foo.k8s.io/x", "y")], &[])).is_err());
        // What would break kubelet's k=v,k=v flag is refused, not passed on.
        for (k, v) in [
            ("a,b", "x"),
            ("a", "x,y=z"),
            ("a", "x y"),
            ("", "x"),
            ("Bad_Prefix/x", "y"),
        ] {
            assert!(check_group(&group(&[(k, v)], &[])).is_err(), "{k}={v}");
        }
    }

    #[test]
    fn kubelet_rules_for_taints() {
        assert!(check_group(&group(&[], &[("gpu", Some("true"), "NoSchedule")])).is_ok());
        assert!(check_group(&group(&[], &[("gpu", None, "NoExecute")])).is_ok());
        let refused = check_group(&group(&[], &[("k", None, "Sometimes")])).unwrap_err();
        assert!(
            refused
                .message
                .contains("NoSchedule, PreferNoSchedule, NoExecute"),
            "{refused:?}"
        );
        assert!(check_group(&group(&[], &[("k", Some("a:b"), "NoSchedule")])).is_err());
        let mut master = group(&[], &[("k", None, "NoSchedule")]);
        master.role = "master".into();
        assert!(check_group(&master).is_err());
    }

    #[test]
    fn kubelet_flags() {
        let g = group(
            &[("node.kubernetes.io/pool", "gpu"), ("team", "x")],
            &[
                ("gpu", Some("true"), "NoSchedule"),
                ("spot", None, "PreferNoSchedule"),
            ],
        );
        assert_eq!(
            kubelet_labels(&g.node_labels),
            "node.kubernetes.io/pool=gpu,team=x"
        );
        assert_eq!(
            kubelet_taints(&g.node_taints),
            "gpu=true:NoSchedule,spot:PreferNoSchedule"
        );
    }
}
