//! What nodes fetch and whom they trust: the settings the bundled drivers'
//! node scripts (`drivers/common/fragments/lib-common.sh`,
//! `configure-host.sh`) take from a cluster, as Heat parameters.
//!
//! - **Downloads**: each binary comes from a base URL (a Heat parameter such
//!   as `etcd_download_url`, upstream's release site by default) at a version
//!   label (`etcd_tag`). The [`MIRROR_LABEL`] points them all at one mirror,
//!   laid out as `<mirror>/<dir>/<the upstream path>`
//!   (`<mirror>/etcd/v3.5.9/etcd-v3.5.9-linux-amd64.tar.gz`). Every download
//!   is checked against a sha256: the artifact's `<name>_sha256` label, else
//!   the checksum file published next to it on the same mirror. Only the
//!   label protects against a compromised mirror; the published file catches
//!   corruption.
//! - **Images**: upstream's `container_infra_prefix` label, the registry and
//!   path every image the nodes run is pulled from.
//! - **Registry and proxy**: the cluster template's `insecure_registry`,
//!   `registry_enabled`, `http_proxy`, `https_proxy`, `no_proxy`.
//! - **The cloud's CA**: the host's `HostContext::openstack_ca`, which nodes
//!   add to their system trust store.
//!
//! These values are written between double quotes into a file the nodes
//! source (`/etc/sysconfig/heat-params`): [`check`] refuses the characters
//! that would end the quotes or expand there.

use serde_json::{Map, Value};

use crate::{
    helpers::label_spec, ClusterTemplate, DriverError, DriverResult, HostContext, LabelSpec,
    LabelType, Labels,
};

/// The label pointing every download at a mirror.
pub const MIRROR_LABEL: &str = "download_mirror_url";
/// Upstream's label: the registry and path of every image the nodes run.
pub const PREFIX_LABEL: &str = "container_infra_prefix";
/// The suffix of the labels pinning an artifact's sha256.
pub const SHA256_SUFFIX: &str = "_sha256";

/// One download site of a driver's nodes.
#[derive(Debug, Clone, Copy)]
pub struct Download {
    /// The Heat parameter holding the site's base URL (`etcd_download_url`).
    pub parameter: &'static str,
    /// The site's directory on a mirror ([`MIRROR_LABEL`]`/etcd`).
    pub mirror_dir: &'static str,
    /// The version label and its default (`etcd_tag`, `v3.5.9`), when the
    /// driver has no label of its own for it.
    pub tag: Option<(&'static str, &'static str)>,
    /// The artifacts fetched from it (the scripts' names: `etcd`,
    /// `kube_apiserver`), each pinned by the label `<name>_sha256`.
    pub artifacts: &'static [&'static str],
}

/// The download sites several bundled drivers share, written once so a
/// default version cannot drift between them.
pub const ETCD: Download = Download {
    parameter: "etcd_download_url",
    mirror_dir: "etcd",
    tag: Some(("etcd_tag", "v3.5.9")),
    artifacts: &["etcd"],
};
pub const FLANNEL: Download = Download {
    parameter: "flannel_download_url",
    mirror_dir: "flannel",
    tag: Some(("flannel_tag", "v0.22.0")),
    artifacts: &["flanneld"],
};
pub const REXRAY: Download = Download {
    parameter: "rexray_download_url",
    mirror_dir: "rexray",
    tag: Some(("rexray_tag", "0.11.4")),
    artifacts: &["rexray"],
};

/// The labels of `downloads`: the mirror, the image prefix, the version
/// labels and one `<artifact>_sha256` per artifact.
pub fn label_specs(downloads: &[Download]) -> Vec<LabelSpec> {
    let mut specs = vec![
        label_spec(
            MIRROR_LABEL,
            LabelType::String,
            None,
            &[],
            "base URL of a mirror of every binary the nodes download, laid out as <url>/<project>/<upstream path>",
        ),
        label_spec(
            PREFIX_LABEL,
            LabelType::String,
            None,
            &[],
            "registry and path of every image the nodes run (e.g. registry.example.com/magnum/)",
        ),
    ];
    for download in downloads {
        if let Some((tag, default)) = download.tag {
            specs.push(label_spec(
                tag,
                LabelType::String,
                Some(default),
                &[],
                &format!(
                    "version of what the nodes fetch from {}",
                    download.parameter
                ),
            ));
        }
        for artifact in download.artifacts {
            specs.push(label_spec(
                &format!("{artifact}{SHA256_SUFFIX}"),
                LabelType::String,
                None,
                &[],
                &format!(
                    "sha256 of {artifact}; without it nodes check the checksum file published next to it"
                ),
            ));
        }
    }
    specs
}

/// Refuses values the nodes could not take safely; warns about settings
/// that do less than their name says.
pub fn check(template: &ClusterTemplate, downloads: &[Download]) -> DriverResult<Vec<String>> {
    let labels = &template.labels;
    let fields = [
        ("http_proxy", template.http_proxy.as_deref()),
        ("https_proxy", template.https_proxy.as_deref()),
        ("no_proxy", template.no_proxy.as_deref()),
        ("insecure_registry", template.insecure_registry.as_deref()),
    ];
    for (field, value) in fields {
        if let Some(value) = value {
            check_quotable(field, value)?;
        }
    }
    for label in [MIRROR_LABEL, PREFIX_LABEL] {
        if let Some(value) = labels.get(label) {
            check_quotable(&format!("labels.{label}"), value)?;
        }
    }
    if let Some(mirror) = labels.get(MIRROR_LABEL) {
        if !(mirror.starts_with("http://") || mirror.starts_with("https://")) {
            return Err(DriverError::invalid(
                &format!("labels.{MIRROR_LABEL}"),
                format!("{MIRROR_LABEL} must be an http:// or https:// URL, got '{mirror}'"),
            ));
        }
    }
    for download in downloads {
        if let Some((tag, _)) = download.tag {
            if let Some(value) = labels.get(tag) {
                check_path_part(&format!("labels.{tag}"), value)?;
            }
        }
        for artifact in download.artifacts {
            let name = format!("{artifact}{SHA256_SUFFIX}");
            if let Some(value) = labels.get(&name) {
                let hex = value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit());
                if !hex {
                    return Err(DriverError::invalid(
                        &format!("labels.{name}"),
                        format!("{name} must be 64 hexadecimal digits (a sha256), got '{value}'"),
                    ));
                }
            }
        }
    }
    let mut warnings = Vec::new();
    if template.registry_enabled && template.insecure_registry.is_none() {
        warnings.push(
            "registry_enabled: nodes use insecure_registry as their Docker Hub mirror; without it they have none (upstream's per-node Swift-backed registry is not provided)"
                .to_owned(),
        );
    }
    Ok(warnings)
}

/// The Heat parameters of `downloads`, the image prefix, the registry and
/// the cloud's CA, from the effective template and `labels` (the template's
/// with a nodegroup's over them).
pub fn parameters(
    template: &ClusterTemplate,
    labels: &Labels,
    context: &HostContext,
    downloads: &[Download],
) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("registry_enabled".into(), template.registry_enabled.into());
    if let Some(registry) = &template.insecure_registry {
        p.insert("insecure_registry_url".into(), registry.as_str().into());
    }
    if let Some(prefix) = labels.get(PREFIX_LABEL) {
        p.insert(PREFIX_LABEL.into(), prefix.as_str().into());
    }
    let mirror = labels
        .get(MIRROR_LABEL)
        .map(|url| url.trim_end_matches('/'));
    let mut pins = Vec::new();
    for download in downloads {
        if let Some(mirror) = mirror {
            p.insert(
                download.parameter.into(),
                format!("{mirror}/{}", download.mirror_dir).into(),
            );
        }
        if let Some((tag, default)) = download.tag {
            let value = labels.get(tag).map_or(default, String::as_str);
            p.insert(tag.into(), value.into());
        }
        for artifact in download.artifacts {
            if let Some(sha) = labels.get(&format!("{artifact}{SHA256_SUFFIX}")) {
                pins.push(format!("{artifact}={}", sha.to_ascii_lowercase()));
            }
        }
    }
    pins.sort();
    pins.dedup();
    p.insert("artifact_sha256".into(), pins.join(" ").into());
    if let Some(ca) = context.openstack_ca.as_deref().and_then(certificates) {
        p.insert("openstack_ca".into(), ca.into());
    }
    p
}

/// The certificates of a PEM bundle, and nothing else (comments and other
/// blocks are dropped), one base64 line after another: what nodes write to
/// their trust store, safe between the double quotes of heat-params.
/// `None` when the bundle holds no certificate.
pub fn certificates(bundle: &str) -> Option<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in bundle.lines().map(str::trim) {
        match (&mut current, line) {
            (None, BEGIN) => current = Some(vec![BEGIN]),
            (Some(lines), END) => {
                lines.push(END);
                out.push(lines.join("\n"));
                current = None;
            }
            (Some(lines), body)
                if body
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')) =>
            {
                if !body.is_empty() {
                    lines.push(body);
                }
            }
            // A malformed block is dropped whole.
            (Some(_), _) => current = None,
            (None, _) => {}
        }
    }
    (!out.is_empty()).then(|| out.join("\n"))
}

/// `value` may go between the double quotes of heat-params: no quote,
/// expansion, escape or line break.
fn check_quotable(field: &str, value: &str) -> DriverResult<()> {
    if let Some(c) = value
        .chars()
        .find(|c| matches!(c, '"' | '$' | '`' | '\\' | '\n' | '\r'))
    {
        return Err(DriverError::invalid(
            field,
            format!("{field} must not contain {c:?}, which the nodes' shell would interpret"),
        ));
    }
    Ok(())
}

/// A version tag, which becomes part of a URL path.
fn check_path_part(field: &str, value: &str) -> DriverResult<()> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'));
    if ok {
        Ok(())
    } else {
        Err(DriverError::invalid(
            field,
            format!("{field} must be a version such as v3.5.9, got '{value}'"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_mirror_moves_every_site_and_labels_pin_artifacts() {
        let template = ClusterTemplate {
            insecure_registry: Some("10.0.0.5:5000".into()),
            registry_enabled: true,
            ..Default::default()
        };
        let sha = "AB".repeat(32);
        let labels = labels(&[
            (MIRROR_LABEL, "https://mirror.example/magnum/"),
            ("etcd_tag", "v3.5.10"),
            ("etcd_sha256", &sha),
            (PREFIX_LABEL, "registry.example/magnum/"),
        ]);
        let p = parameters(&template, &labels, &HostContext::default(), &[ETCD]);
        assert_eq!(p["etcd_download_url"], "https://mirror.example/magnum/etcd");
        assert_eq!(p["etcd_tag"], "v3.5.10");
        assert_eq!(p["artifact_sha256"], format!("etcd={}", "ab".repeat(32)));
        assert_eq!(p[PREFIX_LABEL], "registry.example/magnum/");
        assert_eq!(p["insecure_registry_url"], "10.0.0.5:5000");
        assert_eq!(p["registry_enabled"], true);
        assert!(!p.contains_key("openstack_ca"));
        // Without labels: the template's sites, the default version.
        let p = parameters(&template, &Labels::new(), &HostContext::default(), &[ETCD]);
        assert!(!p.contains_key("etcd_download_url"));
        assert_eq!(p["etcd_tag"], "v3.5.9");
        assert_eq!(p["artifact_sha256"], "");
    }

    #[test]
    fn bad_values_are_refused() {
        let with = |pairs: &[(&str, &str)]| ClusterTemplate {
            labels: labels(pairs),
            ..Default::default()
        };
        let field = |t: &ClusterTemplate| check(t, &[ETCD]).unwrap_err().field.to_string();
        assert_eq!(
            field(&with(&[("etcd_sha256", "abc")])),
            "labels.etcd_sha256"
        );
        assert_eq!(
            field(&with(&[(MIRROR_LABEL, "ftp://x")])),
            "labels.download_mirror_url"
        );
        assert_eq!(field(&with(&[("etcd_tag", "v1/../x")])), "labels.etcd_tag");
        assert_eq!(
            field(&with(&[(PREFIX_LABEL, "reg/$(id)/")])),
            "labels.container_infra_prefix"
        );
        let proxy = ClusterTemplate {
            http_proxy: Some("http://p:3128\"; rm -rf /".into()),
            ..Default::default()
        };
        assert_eq!(field(&proxy), "http_proxy");
        let fine = with(&[("etcd_sha256", &"0".repeat(64)), (MIRROR_LABEL, "http://m")]);
        assert_eq!(check(&fine, &[ETCD]).unwrap(), Vec::<String>::new());
        let registry = ClusterTemplate {
            registry_enabled: true,
            ..Default::default()
        };
        assert!(check(&registry, &[ETCD]).unwrap()[0].contains("insecure_registry"));
    }

    #[test]
    fn only_certificates_reach_the_nodes() {
        let bundle = "# Issuer: \"Evil\" $(reboot)\n-----BEGIN CERTIFICATE-----\nMIIB+/=\nabc\n-----END CERTIFICATE-----\n\
                      junk\n-----BEGIN CERTIFICATE-----\nbad $line\n-----END CERTIFICATE-----\n\
                      -----BEGIN CERTIFICATE-----\r\nZZZ\r\n-----END CERTIFICATE-----\r\n";
        assert_eq!(
            certificates(bundle).as_deref(),
            Some(
                "-----BEGIN CERTIFICATE-----\nMIIB+/=\nabc\n-----END CERTIFICATE-----\n\
                 -----BEGIN CERTIFICATE-----\nZZZ\n-----END CERTIFICATE-----"
            )
        );
        assert_eq!(certificates("no certificate here"), None);
        let context = HostContext {
            openstack_ca: Some(bundle.into()),
            ..Default::default()
        };
        let p = parameters(&ClusterTemplate::default(), &Labels::new(), &context, &[]);
        assert!(p["openstack_ca"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN"));
    }
}
