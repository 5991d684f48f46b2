//! Pure helpers every COE driver needs; not part of the ABI itself, so they
//! may change between minors without affecting loaded libraries.

use crate::{DriverError, DriverResult, LabelSpec, LabelType, Labels, SubDriverInfo};

/// Checks `labels` against `schema`: known labels must parse as their type and
/// be among the allowed values. Unknown labels pass, as upstream lets users
/// carry arbitrary labels.
pub fn validate_labels(schema: &[LabelSpec], labels: &Labels) -> DriverResult<()> {
    for spec in schema {
        let Some(value) = labels.get(&spec.name) else {
            continue;
        };
        let field = format!("labels.{}", spec.name);
        let ok = match spec.kind {
            LabelType::String => true,
            LabelType::Integer => value.parse::<i64>().is_ok(),
            LabelType::Boolean => matches!(value.to_ascii_lowercase().as_str(), "true" | "false"),
            LabelType::Semver => parse_version(value).is_some(),
            LabelType::Cidr => is_ipv4_cidr(value),
        };
        if !ok {
            let kind = format!("{:?}", spec.kind).to_lowercase();
            return Err(DriverError::invalid(
                &field,
                format!("label {} must be a {kind}, got '{value}'", spec.name),
            ));
        }
        if !spec.allowed.is_empty() && !spec.allowed.iter().any(|a| a == value) {
            return Err(DriverError::invalid(
                &field,
                format!(
                    "label {} must be one of {}, got '{value}'",
                    spec.name,
                    spec.allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The label's value, else its schema default.
pub fn label<'a>(schema: &'a [LabelSpec], labels: &'a Labels, name: &str) -> Option<&'a str> {
    labels.get(name).map(String::as_str).or_else(|| {
        schema
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.default.as_deref())
    })
}

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

fn is_ipv4_cidr(value: &str) -> bool {
    let Some((addr, len)) = value.split_once('/') else {
        return false;
    };
    addr.parse::<std::net::Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|l| l <= 32)
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

    fn spec(name: &str, kind: LabelType, allowed: &[&str]) -> LabelSpec {
        LabelSpec {
            name: name.into(),
            kind,
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn labels_are_checked_by_type_and_allowed_values() {
        let schema = [
            spec("strategy", LabelType::String, &["spread", "binpack"]),
            spec("size", LabelType::Integer, &[]),
            spec("cidr", LabelType::Cidr, &[]),
            spec("tag", LabelType::Semver, &[]),
        ];
        let mut labels = Labels::new();
        labels.insert("strategy".into(), "spread".into());
        labels.insert("size".into(), "3".into());
        labels.insert("cidr".into(), "10.0.0.0/8".into());
        labels.insert("tag".into(), "v1.27.3".into());
        labels.insert("unknown".into(), "anything".into());
        assert_eq!(validate_labels(&schema, &labels), Ok(()));

        labels.insert("strategy".into(), "random".into());
        let err = validate_labels(&schema, &labels).unwrap_err();
        assert_eq!(err.field.as_str(), "labels.strategy");
        assert!(err.message.contains("spread, binpack"), "{err}");

        labels.insert("strategy".into(), "spread".into());
        labels.insert("cidr".into(), "10.0.0.0/33".into());
        assert_eq!(
            validate_labels(&schema, &labels)
                .unwrap_err()
                .field
                .as_str(),
            "labels.cidr"
        );
    }

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
