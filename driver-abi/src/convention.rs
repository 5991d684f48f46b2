//! Upstream Magnum's conventions that the host and every driver must read
//! alike: the name of a cluster's Heat stack, which network or volume driver
//! a template gets when it names none, and what a `semver` label accepts.
//! They are part of the contract (a host and a driver that disagreed would
//! look for different stacks or pick different defaults), so they live here
//! and not in magnum-driver-sdk, which re-exports them in its `helpers`.

use crate::{DriverError, DriverResult, SubDriverInfo};

/// Resolves a network or volume sub-driver: the named one, or the default for
/// `coe`. An unknown name is an `Invalid` error listing the allowed names.
pub fn choose_sub_driver<'a>(
    field: &str,
    offered: &'a [SubDriverInfo],
    coe: &str,
    name: Option<&str>,
) -> DriverResult<Option<&'a SubDriverInfo>> {
    let applies = |d: &&SubDriverInfo| d.coes.is_empty() || d.coes.iter().any(|c| c == coe);
    match name {
        None => Ok(offered.iter().filter(applies).find(|d| d.default)),
        Some(name) => offered
            .iter()
            .filter(applies)
            .find(|d| d.name == name)
            .map(Some)
            .ok_or_else(|| {
                let allowed: Vec<&str> = offered
                    .iter()
                    .filter(applies)
                    .map(|d| d.name.as_str())
                    .collect();
                DriverError::invalid(
                    field,
                    format!(
                        "{field} '{name}' is not supported for coe {coe}; allowed: {}",
                        if allowed.is_empty() {
                            "none".to_owned()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                )
            }),
    }
}

/// Parses `v1.2.3`, `1.2` or `1` into a comparable triple.
pub fn parse_version(value: &str) -> Option<(u64, u64, u64)> {
    let core = value.strip_prefix('v').unwrap_or(value);
    // Drop pre-release/build suffixes (`1.27.3-rancher1`, `1.2+b1`).
    let core = core.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>());
    let major = parts.next()?.ok()?;
    let minor = parts.next().transpose().ok()?.unwrap_or(0);
    let patch = parts.next().transpose().ok()?.unwrap_or(0);
    parts.next().is_none().then_some((major, minor, patch))
}

/// Heat stack name as upstream builds it: the first 30 characters of the
/// cluster name with `_`/`.` turned into `-` and anything else outside
/// `[A-Za-z0-9-]` dropped, then `-` and the first 12 characters of `uuid`,
/// lower-cased.
pub fn stack_name(cluster_name: &str, uuid: &str) -> String {
    let base: String = cluster_name
        .chars()
        .take(30)
        .filter_map(|c| match c {
            '_' | '.' => Some('-'),
            c if c.is_ascii_alphanumeric() || c == '-' => Some(c),
            _ => None,
        })
        .collect();
    let short: String = uuid.chars().filter(|c| *c != '-').take(12).collect();
    format!("{base}-{short}").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(parse_version("v1.27.3"), Some((1, 27, 3)));
        assert_eq!(parse_version("1.2"), Some((1, 2, 0)));
        assert_eq!(parse_version("v1.18.2-rancher1"), Some((1, 18, 2)));
        assert_eq!(parse_version("latest"), None);
        assert!(parse_version("v1.9.0") < parse_version("v1.10.0"));
    }

    #[test]
    fn stack_names_follow_upstream_rules() {
        assert_eq!(
            stack_name("My_Cluster.prod!", "3f2a9c1e-77aa-4b0e-9d1f-0123456789ab"),
            "my-cluster-prod-3f2a9c1e77aa"
        );
    }

    #[test]
    fn sub_driver_choice_names_the_allowed_ones() {
        let offered = [
            SubDriverInfo {
                name: "flannel".into(),
                default: true,
                ..Default::default()
            },
            SubDriverInfo {
                name: "calico".into(),
                coes: vec!["kubernetes".into()],
                ..Default::default()
            },
        ];
        let chosen = choose_sub_driver("network_driver", &offered, "kubernetes", None).unwrap();
        assert_eq!(chosen.map(|d| d.name.as_str()), Some("flannel"));
        let err =
            choose_sub_driver("network_driver", &offered, "swarm", Some("calico")).unwrap_err();
        assert!(err.message.contains("allowed: flannel"), "{err}");
    }
}
