//! The cloud resources a template or cluster names (image, flavors,
//! keypair, networks), checked as upstream §5.1 does, in one of two
//! catalogs: the embedded one, read from the config file, which describes
//! the `local` orchestrator's simulated cloud; or a real OpenStack's Glance,
//! Nova and Neutron ([`openstack`]), used with the `heat` orchestrator.

pub mod openstack;

use std::collections::BTreeMap;

use serde::Deserialize;

pub use openstack::OpenStackCatalog;

use crate::openstack::SecretToken;

/// Who asks: lookups run with the caller's token when it has one (so a
/// user sees only what its project may use), else with the service user's.
pub trait Caller: Send + Sync {
    fn user_id(&self) -> &str;
    fn auth_token(&self) -> Option<&SecretToken>;
}

/// Why a lookup failed, as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError {
    pub kind: CatalogErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogErrorKind {
    /// The request names something that does not exist or cannot serve (400).
    BadRequest,
    /// Not found where the API answers 404 (a keypair).
    NotFound,
    /// A name matches several resources (409).
    Conflict,
    /// The caller may not use it (403).
    Forbidden,
    /// The service refused the caller's token (401).
    Unauthorized,
    /// The service could not be asked (503; the cause is in the log).
    Unavailable,
}

impl CatalogError {
    fn new(kind: CatalogErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(CatalogErrorKind::BadRequest, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(CatalogErrorKind::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(CatalogErrorKind::Conflict, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(CatalogErrorKind::Forbidden, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(CatalogErrorKind::Unauthorized, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(CatalogErrorKind::Unavailable, message)
    }
}

/// Whether `ident` is a UUID, which is looked up by id before by name.
pub fn is_uuid_like(ident: &str) -> bool {
    uuid::Uuid::parse_str(ident).is_ok()
}

/// Where template and cluster fields are checked.
#[derive(Debug, Clone)]
pub enum CloudCatalog {
    Embedded(Catalog),
    OpenStack(OpenStackCatalog),
}

impl Default for CloudCatalog {
    fn default() -> Self {
        Self::Embedded(Catalog::default())
    }
}

impl CloudCatalog {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Embedded(_) => "embedded",
            Self::OpenStack(_) => "openstack",
        }
    }

    pub async fn image(&self, ctx: &dyn Caller, ident: &str) -> Result<Image, CatalogError> {
        match self {
            Self::Embedded(c) => c.image(ident).cloned(),
            Self::OpenStack(c) => c.image(ctx, ident).await,
        }
    }

    pub async fn flavor(&self, ctx: &dyn Caller, ident: &str) -> Result<Flavor, CatalogError> {
        match self {
            Self::Embedded(c) => c.flavor(ident).cloned(),
            Self::OpenStack(c) => c.flavor(ctx, ident).await,
        }
    }

    /// A flavor the nodes can boot from (upstream §5.1 step 11, for
    /// templates and clusters): one without a root disk only with a boot
    /// volume, the `boot_volume_size` label (default 0, as upstream's
    /// `[cinder] default_boot_volume_size`).
    pub async fn bootable_flavor(
        &self,
        ctx: &dyn Caller,
        ident: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Flavor, CatalogError> {
        let flavor = self.flavor(ctx, ident).await?;
        let boot_volume_size = labels
            .get("boot_volume_size")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0);
        if flavor.disk_gb == 0 && boot_volume_size <= 0 {
            return Err(CatalogError::bad_request(
                "Flavor with zero root volume size is not supported when boot_volume_size is zero.",
            ));
        }
        Ok(flavor)
    }

    pub async fn keypair(&self, ctx: &dyn Caller, name: &str) -> Result<(), CatalogError> {
        match self {
            Self::Embedded(c) => c.keypair(name),
            Self::OpenStack(c) => c.keypair(ctx, name).await,
        }
    }

    pub async fn external_network(
        &self,
        ctx: &dyn Caller,
        ident: &str,
    ) -> Result<Network, CatalogError> {
        match self {
            Self::Embedded(c) => c.external_network(ident).cloned(),
            Self::OpenStack(c) => c.external_network(ctx, ident).await,
        }
    }

    pub async fn fixed_network(
        &self,
        ctx: &dyn Caller,
        ident: &str,
    ) -> Result<Network, CatalogError> {
        match self {
            Self::Embedded(c) => c.fixed_network(ident).cloned(),
            Self::OpenStack(c) => c.fixed_network(ctx, ident).await,
        }
    }

    pub async fn fixed_subnet(
        &self,
        ctx: &dyn Caller,
        network: Option<&Network>,
        ident: &str,
    ) -> Result<Subnet, CatalogError> {
        match self {
            Self::Embedded(c) => c.fixed_subnet(network, ident).cloned(),
            Self::OpenStack(c) => c.fixed_subnet(ctx, network, ident).await,
        }
    }

    /// The subnet a cluster on fixed network `network` without a subnet
    /// uses: the network's first, from Neutron. `None` from the embedded
    /// catalog, whose first subnet the driver payload fills in without I/O.
    pub async fn default_subnet(
        &self,
        ctx: &dyn Caller,
        network: &str,
    ) -> Result<Option<String>, CatalogError> {
        match self {
            Self::Embedded(_) => Ok(None),
            Self::OpenStack(c) => {
                let net = c.fixed_network(ctx, network).await?;
                Ok(c.first_subnet(ctx, &net).await?.map(|s| s.id))
            }
        }
    }

    /// Upstream's fixed network and subnet checks: the subnet, when given,
    /// must be in the network, when given.
    pub async fn fixed(
        &self,
        ctx: &dyn Caller,
        network: Option<&str>,
        subnet: Option<&str>,
    ) -> Result<(), CatalogError> {
        let net = match network {
            Some(n) => Some(self.fixed_network(ctx, n).await?),
            None => None,
        };
        if let Some(s) = subnet {
            self.fixed_subnet(ctx, net.as_ref(), s).await?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Image {
    pub id: String,
    pub name: String,
    /// Glance's `os_distro` property; becomes the template's `cluster_distro`.
    pub os_distro: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    #[serde(default = "default_vcpus")]
    pub vcpus: u32,
    #[serde(default = "default_ram")]
    pub ram_mb: u32,
    #[serde(default = "default_disk")]
    pub disk_gb: u32,
}

fn default_vcpus() -> u32 {
    1
}
fn default_ram() -> u32 {
    2048
}
fn default_disk() -> u32 {
    20
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub external: bool,
    /// Subnets by name, with their CIDR.
    #[serde(default)]
    pub subnets: Vec<Subnet>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    pub id: String,
    pub name: String,
    pub cidr: String,
}

/// `[catalog] source`: the `[catalog]` lists, or the cloud's own services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum CatalogSource {
    Embedded,
    OpenStack,
}

impl TryFrom<String> for CatalogSource {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "embedded" => Ok(Self::Embedded),
            "openstack" => Ok(Self::OpenStack),
            other => Err(format!(
                "[catalog] source '{other}' is not supported; use embedded (the [catalog] lists) or openstack (Glance, Nova and Neutron through the Keystone catalog)"
            )),
        }
    }
}

/// The `[catalog]` config section; absent lists take the defaults below.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    /// `embedded` (these lists) or `openstack` (Glance, Nova and Neutron
    /// through the `[keystone]` catalog). Default: `openstack` with the
    /// `heat` orchestrator, else `embedded`.
    pub source: Option<CatalogSource>,
    /// Seconds per call to Glance, Nova or Neutron (openstack source).
    pub request_timeout_seconds: Option<u64>,
    pub images: Option<Vec<Image>>,
    pub flavors: Option<Vec<Flavor>>,
    pub keypairs: Option<Vec<String>>,
    pub networks: Option<Vec<Network>>,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub images: Vec<Image>,
    pub flavors: Vec<Flavor>,
    pub keypairs: Vec<String>,
    pub networks: Vec<Network>,
}

/// Deterministic ids, so the same config always describes the same cloud.
fn id_for(kind: &str, name: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("magnum-rs/{kind}/{name}").as_bytes(),
    )
    .to_string()
}

impl Default for Catalog {
    fn default() -> Self {
        Self::from_file(CatalogFile::default())
    }
}

impl Catalog {
    pub fn from_file(file: CatalogFile) -> Self {
        let image = |name: &str, distro: &str| Image {
            id: id_for("image", name),
            name: name.to_owned(),
            os_distro: Some(distro.to_owned()),
        };
        let flavor = |name: &str, vcpus, ram_mb, disk_gb| Flavor {
            id: id_for("flavor", name),
            name: name.to_owned(),
            vcpus,
            ram_mb,
            disk_gb,
        };
        Self {
            images: file.images.unwrap_or_else(|| {
                vec![
                    image("fedora-atomic-latest", "fedora-atomic"),
                    image("ubuntu-mesos", "ubuntu"),
                ]
            }),
            flavors: file.flavors.unwrap_or_else(|| {
                vec![
                    flavor("m1.small", 1, 2048, 20),
                    flavor("m1.medium", 2, 4096, 40),
                    flavor("m1.large", 4, 8192, 80),
                ]
            }),
            keypairs: file.keypairs.unwrap_or_else(|| vec!["default".to_owned()]),
            networks: file.networks.unwrap_or_else(|| {
                vec![
                    Network {
                        id: id_for("network", "public"),
                        name: "public".to_owned(),
                        external: true,
                        subnets: vec![Subnet {
                            id: id_for("subnet", "public-subnet"),
                            name: "public-subnet".to_owned(),
                            cidr: "127.24.0.0/16".to_owned(),
                        }],
                    },
                    Network {
                        id: id_for("network", "private"),
                        name: "private".to_owned(),
                        external: false,
                        subnets: vec![Subnet {
                            id: id_for("subnet", "private-subnet"),
                            name: "private-subnet".to_owned(),
                            cidr: "127.10.0.0/24".to_owned(),
                        }],
                    },
                ]
            }),
        }
    }

    /// By id or name; two with the name is a 409 as upstream.
    fn pick<'a, T>(
        items: &'a [T],
        ident: &str,
        id: impl Fn(&T) -> &str,
        name: impl Fn(&T) -> &str,
        what: &str,
    ) -> Result<Option<&'a T>, CatalogError> {
        if let Some(found) = items.iter().find(|i| id(i) == ident) {
            return Ok(Some(found));
        }
        let mut named = items.iter().filter(|i| name(i) == ident);
        let first = named.next();
        if first.is_some() && named.next().is_some() {
            return Err(CatalogError::conflict(format!(
                "Multiple {what}s exist with same name {ident}. Please use the {what} id instead."
            )));
        }
        Ok(first)
    }

    pub fn image(&self, ident: &str) -> Result<&Image, CatalogError> {
        let image =
            Self::pick(&self.images, ident, |i| &i.id, |i| &i.name, "image")?.ok_or_else(|| {
                CatalogError::bad_request(format!("Image {ident} could not be found."))
            })?;
        if image.os_distro.as_deref().is_none_or(str::is_empty) {
            return Err(CatalogError::bad_request(format!(
                "Image {ident} doesn't contain os_distro field."
            )));
        }
        Ok(image)
    }

    pub fn flavor(&self, ident: &str) -> Result<&Flavor, CatalogError> {
        Self::pick(&self.flavors, ident, |f| &f.id, |f| &f.name, "flavor")?
            .ok_or_else(|| CatalogError::bad_request(format!("Flavor {ident} could not be found.")))
    }

    /// Upstream: 404 "Unable to find keypair X." on cluster create.
    pub fn keypair(&self, name: &str) -> Result<(), CatalogError> {
        if self.keypairs.iter().any(|k| k == name) {
            Ok(())
        } else {
            Err(CatalogError::not_found(format!(
                "Unable to find keypair {name}."
            )))
        }
    }

    pub fn external_network(&self, ident: &str) -> Result<&Network, CatalogError> {
        let net = Self::pick(&self.networks, ident, |n| &n.id, |n| &n.name, "network")?
            .ok_or_else(|| {
                CatalogError::bad_request(format!("External network {ident} could not be found."))
            })?;
        if !net.external {
            return Err(CatalogError::bad_request(format!(
                "Network {ident} is not an external network (router:external is false)."
            )));
        }
        Ok(net)
    }

    pub fn fixed_network(&self, ident: &str) -> Result<&Network, CatalogError> {
        Self::pick(&self.networks, ident, |n| &n.id, |n| &n.name, "network")?.ok_or_else(|| {
            CatalogError::bad_request(format!("Fixed network {ident} could not be found."))
        })
    }

    /// A subnet by id or name, in `network` when one is given.
    pub fn fixed_subnet<'a>(
        &'a self,
        network: Option<&'a Network>,
        ident: &str,
    ) -> Result<&'a Subnet, CatalogError> {
        let pool: Vec<&Subnet> = match network {
            Some(n) => n.subnets.iter().collect(),
            None => self.networks.iter().flat_map(|n| &n.subnets).collect(),
        };
        if let Some(s) = pool.iter().find(|s| s.id == ident) {
            return Ok(s);
        }
        let named: Vec<&&Subnet> = pool.iter().filter(|s| s.name == ident).collect();
        match named.as_slice() {
            [one] => Ok(one),
            [] => Err(CatalogError::bad_request(format!(
                "Fixed subnet {ident} could not be found."
            ))),
            _ => Err(CatalogError::conflict(format!(
                "Multiple subnets exist with same name {ident}. Please use the subnet id instead."
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_embedded_cloud() {
        let c = Catalog::default();
        assert_eq!(
            c.image("fedora-atomic-latest")
                .unwrap()
                .os_distro
                .as_deref(),
            Some("fedora-atomic")
        );
        assert_eq!(
            c.image("ubuntu-mesos").unwrap().os_distro.as_deref(),
            Some("ubuntu")
        );
        let id = c.image("ubuntu-mesos").unwrap().id.clone();
        assert_eq!(c.image(&id).unwrap().name, "ubuntu-mesos");
        assert_eq!(
            c.image("nope").unwrap_err().kind,
            CatalogErrorKind::BadRequest
        );
        for f in ["m1.small", "m1.medium", "m1.large"] {
            c.flavor(f).unwrap();
        }
        assert_eq!(
            c.keypair("nope").unwrap_err().kind,
            CatalogErrorKind::NotFound
        );
        c.external_network("public").unwrap();
        assert!(c.external_network("private").is_err());
        let private = c.fixed_network("private").unwrap();
        c.fixed_subnet(Some(private), "private-subnet").unwrap();
        assert!(c.fixed_subnet(Some(private), "public-subnet").is_err());
    }
}
