//! The labels that change what a node runs (issue 15, defect 9): their
//! schema, the checks their type cannot express, and the Heat parameters
//! they become. Names, meanings and defaults follow upstream's
//! `magnum/drivers/heat/k8s_fedora_template_def.py` and
//! `k8s_template_def.py`; the node fragments read them from
//! /etc/sysconfig/heat-params under the same names in upper case.

use std::net::Ipv4Addr;

use magnum_driver_sdk::{
    helpers::{self, label_spec as label},
    serde_json::{Map, Value},
    ClusterTemplate, DriverError, DriverResult, LabelSpec, LabelType, Labels,
};

/// The service network when `service_cluster_ip_range` is not set.
pub const DEFAULT_SERVICE_RANGE: &str = "10.254.0.0/16";
/// CoreDNS's address is this host of the service network by default
/// (10.254.0.10 in the default one, upstream's `dns_service_ip`).
const DNS_HOST: u32 = 10;
/// kube-apiserver takes at most 20 host bits for IPv4 services; CoreDNS's
/// default address needs at least 16 addresses.
const SERVICE_PREFIXES: std::ops::RangeInclusive<u8> = 12..=28;
/// Octavia's algorithms; the ovn provider supports only SOURCE_IP_PORT.
const LB_ALGORITHMS: [&str; 4] = [
    "ROUND_ROBIN",
    "LEAST_CONNECTIONS",
    "SOURCE_IP",
    "SOURCE_IP_PORT",
];
/// The `*_options` labels and the Kubernetes component whose command line
/// each extends.
const OPTIONS: [(&str, &str); 5] = [
    ("kubelet_options", "kubelet"),
    ("kubeapi_options", "kube-apiserver"),
    ("kubeproxy_options", "kube-proxy"),
    ("kubecontroller_options", "kube-controller-manager"),
    ("kubescheduler_options", "kube-scheduler"),
];
/// Labels passed on as they are, to the Heat parameter of the same name.
pub const PASSED: &[&str] = &[
    "cgroup_driver",
    "kubelet_options",
    "kubeapi_options",
    "kubeproxy_options",
    "kubecontroller_options",
    "kubescheduler_options",
    "admission_control_list",
    "availability_zone",
    "cinder_csi_enabled",
    "octavia_provider",
];

/// The schema of these labels, appended to the driver's.
pub fn specs() -> Vec<LabelSpec> {
    let mut specs = vec![
        label(
            "service_cluster_ip_range",
            LabelType::Cidr,
            Some(DEFAULT_SERVICE_RANGE),
            &[],
            "the Kubernetes service network (kube-apiserver's and kube-controller-manager's --service-cluster-ip-range): a /12 to /28 apart from the pod network and the private subnet; CoreDNS's default address is its 10th host",
        ),
        label(
            "availability_zone",
            LabelType::String,
            None,
            &[],
            "availability zone of every node and of its Cinder volumes, as upstream (unset: the cloud's default)",
        ),
        label(
            "master_lb_allowed_cidrs",
            LabelType::String,
            None,
            &[],
            "comma-separated IPv4 CIDRs allowed to reach the API load balancer's listener; the driver's private subnet is added so nodes keep access (unset: everyone); needs master_lb_enabled",
        ),
        label(
            "octavia_provider",
            LabelType::String,
            Some("amphora"),
            &[],
            "Octavia provider of the API load balancer, e.g. amphora or ovn; needs master_lb_enabled",
        ),
        label(
            "octavia_lb_algorithm",
            LabelType::String,
            None,
            &LB_ALGORITHMS,
            "algorithm of the API load balancer's pool (default ROUND_ROBIN; SOURCE_IP_PORT, the only one it supports, with the ovn provider); needs master_lb_enabled",
        ),
        label(
            "cgroup_driver",
            LabelType::String,
            Some("cgroupfs"),
            &["cgroupfs", "systemd"],
            "cgroup driver of kubelet and of the container runtime (containerd's runc, or Docker)",
        ),
        label(
            "admission_control_list",
            LabelType::String,
            None,
            &[],
            "comma-separated admission plugins kube-apiserver enables (--enable-admission-plugins) besides its defaults, e.g. NodeRestriction,AlwaysPullImages",
        ),
        label(
            "cinder_csi_enabled",
            LabelType::Boolean,
            Some("false"),
            &[],
            "Cinder CSI for persistent volumes: the controller plugin on the masters and the node plugin on every node, calling Cinder with the cluster's Keystone application credentials; needs cloud_provider_enabled=true",
        ),
    ];
    specs.extend(OPTIONS.iter().map(|(name, component)| {
        label(
            name,
            LabelType::String,
            None,
            &[],
            &format!(
                "extra {component} flags, space-separated --flag or --flag=value, appended after the driver's own (so they override them)"
            ),
        )
    }));
    specs
}

/// The rules of these labels beyond their schema types, on the effective
/// template; `pods` is the pod network the network driver uses. Returns
/// warnings for labels that are valid but have no effect on this template.
pub fn check(template: &ClusterTemplate, pods: Option<&str>) -> DriverResult<Vec<String>> {
    let labels = &template.labels;
    // The nodes download <url>/<kube_tag>/bin/...: the tag needs its v.
    // (etcd_tag, flannel_tag, calico_tag and container_infra_prefix belong
    // to the downloads, driver-sdk's node_setup.)
    if let Some(value) = labels.get("kube_tag") {
        if !value.starts_with('v') {
            return Err(invalid(
                "kube_tag",
                format!(
                    "label kube_tag is a Kubernetes release tag with its leading v, as the download paths need it: use 'v{value}', not '{value}'"
                ),
            ));
        }
    }
    let service = service_range(labels)?;
    let mut others = vec![("the pod network", pods.map(str::to_owned))];
    if template.fixed_network.is_none() {
        let subnet = labels
            .get("fixed_subnet_cidr")
            .cloned()
            .unwrap_or_else(|| "10.0.0.0/24".into());
        others.push(("the private subnet (fixed_subnet_cidr)", Some(subnet)));
    }
    for (what, other) in others {
        if let Some(other) = other.as_deref().and_then(cidr) {
            if overlaps(service, other) {
                return Err(invalid(
                    "service_cluster_ip_range",
                    format!(
                        "service_cluster_ip_range {} overlaps {what} {}",
                        show(service),
                        show(other)
                    ),
                ));
            }
        }
    }
    dns_service_ip(labels, service)?;
    if let Some(zone) = labels.get("availability_zone") {
        if zone.trim().is_empty() || zone.len() > 255 || zone.chars().any(char::is_control) {
            return Err(invalid(
                "availability_zone",
                format!("availability_zone must be a zone name of 1 to 255 printable characters, got '{zone}'"),
            ));
        }
    }
    allowed_cidrs(labels)?;
    if let Some(provider) = labels.get("octavia_provider") {
        let ok = provider.len() <= 64
            && provider.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && provider
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
        if !ok {
            return Err(invalid(
                "octavia_provider",
                format!("octavia_provider must be an Octavia provider name such as amphora or ovn, got '{provider}'"),
            ));
        }
    }
    if is_ovn(labels) {
        if let Some(algorithm) = labels.get("octavia_lb_algorithm") {
            if algorithm != "SOURCE_IP_PORT" {
                return Err(invalid(
                    "octavia_lb_algorithm",
                    format!("the ovn Octavia provider supports only octavia_lb_algorithm SOURCE_IP_PORT, got '{algorithm}'"),
                ));
            }
        }
    }
    for (name, component) in OPTIONS {
        if let Some(value) = labels.get(name) {
            check_options(name, component, value)?;
        }
    }
    if let Some(list) = labels.get("admission_control_list") {
        let ok = list.split(',').all(|plugin| {
            plugin.starts_with(|c: char| c.is_ascii_uppercase())
                && plugin.chars().all(|c| c.is_ascii_alphanumeric())
        });
        if !ok {
            return Err(invalid(
                "admission_control_list",
                format!("admission_control_list must be comma-separated admission plugin names such as NodeRestriction,AlwaysPullImages, got '{list}'"),
            ));
        }
    }
    let mut warnings = Vec::new();
    if !template.master_lb_enabled {
        for name in [
            "master_lb_allowed_cidrs",
            "octavia_provider",
            "octavia_lb_algorithm",
        ] {
            if labels.contains_key(name) {
                warnings.push(format!(
                    "label {name} has no effect: the template has no API load balancer (master_lb_enabled is false)"
                ));
            }
        }
    } else if template.fixed_network.is_some() && labels.contains_key("master_lb_allowed_cidrs") {
        warnings.push(
            "master_lb_allowed_cidrs: the cluster joins an existing network whose CIDR the driver does not know; list its subnet too, or the nodes cannot reach the API through the load balancer".into(),
        );
    }
    Ok(warnings)
}

/// The Heat parameters of these labels. `labels` were checked with
/// [`check`]; `template` is the effective template.
pub fn parameters(
    schema: &[LabelSpec],
    labels: &Labels,
    template: &ClusterTemplate,
) -> DriverResult<Map<String, Value>> {
    let mut p = helpers::label_parameters(schema, labels, PASSED);
    let service = service_range(labels)?;
    p.insert("portal_network_cidr".into(), show(service).into());
    p.insert(
        "dns_service_ip".into(),
        dns_service_ip(labels, service)?.to_string().into(),
    );
    let algorithm = labels.get("octavia_lb_algorithm").map_or(
        if is_ovn(labels) {
            "SOURCE_IP_PORT"
        } else {
            "ROUND_ROBIN"
        },
        String::as_str,
    );
    p.insert("octavia_lb_algorithm".into(), algorithm.into());
    let mut cidrs = allowed_cidrs(labels)?;
    // Upstream adds the cluster's subnet so the nodes, which reach the API
    // through the load balancer, are not locked out.
    if !cidrs.is_empty() && template.fixed_network.is_none() {
        let subnet = helpers::label(schema, labels, "fixed_subnet_cidr")
            .unwrap_or("10.0.0.0/24")
            .to_owned();
        if !cidrs.contains(&subnet) {
            cidrs.push(subnet);
        }
    }
    p.insert("master_lb_allowed_cidrs".into(), cidrs.into());
    Ok(p)
}

fn invalid(name: &str, message: String) -> DriverError {
    DriverError::invalid(&format!("labels.{name}"), message)
}

fn is_ovn(labels: &Labels) -> bool {
    labels.get("octavia_provider").map(String::as_str) == Some("ovn")
}

/// An IPv4 network `a.b.c.d/n` as (network address, prefix length), host
/// bits cleared.
fn cidr(value: &str) -> Option<(u32, u8)> {
    let (address, prefix) = value.split_once('/')?;
    let address: Ipv4Addr = address.parse().ok()?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some((u32::from(address) & mask(prefix), prefix))
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn show((network, prefix): (u32, u8)) -> String {
    format!("{}/{prefix}", Ipv4Addr::from(network))
}

fn overlaps(a: (u32, u8), b: (u32, u8)) -> bool {
    let shorter = mask(a.1.min(b.1));
    a.0 & shorter == b.0 & shorter
}

/// The service network, checked: an IPv4 network of an allowed size.
fn service_range(labels: &Labels) -> DriverResult<(u32, u8)> {
    let value = labels
        .get("service_cluster_ip_range")
        .map_or(DEFAULT_SERVICE_RANGE, String::as_str);
    match cidr(value) {
        Some(range) if SERVICE_PREFIXES.contains(&range.1) => Ok(range),
        _ => Err(invalid(
            "service_cluster_ip_range",
            format!(
                "service_cluster_ip_range must be an IPv4 network from /{} to /{}, got '{value}'",
                SERVICE_PREFIXES.start(),
                SERVICE_PREFIXES.end()
            ),
        )),
    }
}

/// CoreDNS's address: the label, which must be a host of the service
/// network other than the API's (its first), else the network's 10th host.
fn dns_service_ip(labels: &Labels, (network, prefix): (u32, u8)) -> DriverResult<Ipv4Addr> {
    let Some(value) = labels.get("dns_service_ip") else {
        return Ok(Ipv4Addr::from(network + DNS_HOST));
    };
    let hosts = !mask(prefix);
    let inside = value.parse::<Ipv4Addr>().ok().filter(|ip| {
        let ip = u32::from(*ip);
        let host = ip & hosts;
        ip & mask(prefix) == network && host > 1 && host < hosts
    });
    inside.ok_or_else(|| {
        invalid(
            "dns_service_ip",
            format!(
                "dns_service_ip must be a host address of the service network {} other than the API's, got '{value}'",
                show((network, prefix))
            ),
        )
    })
}

/// `master_lb_allowed_cidrs` as a list, each an IPv4 CIDR.
fn allowed_cidrs(labels: &Labels) -> DriverResult<Vec<String>> {
    let Some(value) = labels.get("master_lb_allowed_cidrs") else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .map(|item| {
            let item = item.trim();
            if cidr(item).is_some() {
                Ok(item.to_owned())
            } else {
                Err(invalid(
                    "master_lb_allowed_cidrs",
                    format!("master_lb_allowed_cidrs must be comma-separated IPv4 CIDRs such as 192.0.2.0/24,198.51.100.7/32, got '{item}' in '{value}'"),
                ))
            }
        })
        .collect()
}

/// Flags for a component's command line: `--flag` or `--flag=value`
/// separated by single spaces, of characters that mean nothing to the
/// shell that reads heat-params nor to the systemd unit they land in (no
/// quotes, `$`, `%`, `\`, `;` or newlines).
fn check_options(name: &str, component: &str, value: &str) -> DriverResult<()> {
    let flag = |token: &str| {
        token
            .strip_prefix("--")
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_alphanumeric()))
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.,:/=+@".contains(c))
    };
    match value.split(' ').find(|token| !flag(token)) {
        None => Ok(()),
        Some(bad) => Err(invalid(
            name,
            format!(
                "{name} must be {component} flags such as --v=2 --feature-gates=A=true, separated by single spaces, each --flag or --flag=value of letters, digits and -_.,:/=+@; '{bad}' is not"
            ),
        )),
    }
}
