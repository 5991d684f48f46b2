//! The catalog of a real OpenStack: Glance v2 images (`os_distro`), Nova
//! flavors and keypairs, Neutron networks (`router:external`) and subnets,
//! each found through the Keystone service catalog on the configured
//! region and interface.
//!
//! Calls carry the requesting user's token when there is one (keystone
//! mode), so the user sees what they would see with their own client:
//! their keypairs, their project's networks, images shared with them.
//! Without one (noauth with the heat orchestrator) the service user asks,
//! and keypairs are looked up for the request's user id (Nova 2.10).

use std::time::Duration;

use reqwest::{header::HeaderValue, Method};
use serde_json::Value;

use super::{is_uuid_like, Caller, CatalogError as ApiError};
use super::{Flavor, Image, Network, Subnet};
use crate::keystone::KeystoneClient;
use crate::openstack::{Answer, Call, FixedToken, Session};
/// The first Nova microversion where an admin may name another user's keypair.
const NOVA_KEYPAIR_USER_VERSION: &str = "2.10";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Image,
    Compute,
    Network,
}

impl Service {
    fn service_type(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Compute => "compute",
            Self::Network => "network",
        }
    }

    fn product(self) -> &'static str {
        match self {
            Self::Image => "Glance",
            Self::Compute => "Nova",
            Self::Network => "Neutron",
        }
    }

    /// The API version a catalog URL without one gets: Glance and Neutron
    /// register their unversioned root, Nova usually `/v2.1[/{project}]`.
    fn version_segment(self) -> &'static str {
        match self {
            Self::Image => "v2",
            Self::Compute => "v2.1",
            Self::Network => "v2.0",
        }
    }
}

/// One GET against a catalog service.
struct Get<'a> {
    service: Service,
    path: &'a [&'a str],
    query: &'a [(&'a str, &'a str)],
    headers: &'a [(&'static str, &'a str)],
}

#[derive(Clone)]
pub struct OpenStackCatalog {
    keystone: KeystoneClient,
    /// The keystone client's TLS, the catalog's timeout.
    session: Session,
}

impl std::fmt::Debug for OpenStackCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenStackCatalog")
            .field("keystone", &self.keystone)
            .finish_non_exhaustive()
    }
}

impl OpenStackCatalog {
    pub fn new(keystone: KeystoneClient, request_timeout: Duration) -> anyhow::Result<Self> {
        // The session follows no redirect: one would carry X-Auth-Token
        // wherever it points.
        let session = keystone
            .http_session()
            .with_timeouts(request_timeout, Duration::from_secs(5))?;
        Ok(Self { keystone, session })
    }

    /// Glance v2: by id, else by name (two with the name is a 409).
    pub async fn image(&self, ctx: &dyn Caller, ident: &str) -> Result<Image, ApiError> {
        let found = match self.by_id(ctx, Service::Image, &["images", ident]).await? {
            Some(image) => Some(image),
            None => {
                let list = self
                    .get(
                        ctx,
                        Get {
                            service: Service::Image,
                            path: &["images"],
                            query: &[("name", ident)],
                            headers: &[],
                        },
                    )
                    .await?
                    .unwrap_or_default();
                one_named(&list, "images", ident, "image")?
            }
        };
        let image = found
            .ok_or_else(|| ApiError::bad_request(format!("Image {ident} could not be found.")))?;
        let os_distro = str_field(&image, "os_distro");
        if os_distro.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(format!(
                "Image {ident} doesn't contain os_distro field."
            )));
        }
        Ok(Image {
            id: str_field(&image, "id").unwrap_or_default(),
            name: str_field(&image, "name").unwrap_or_default(),
            os_distro,
        })
    }

    /// Nova: by id (flavor ids need not be uuids), else by name among the
    /// flavors the caller may use.
    pub async fn flavor(&self, ctx: &dyn Caller, ident: &str) -> Result<Flavor, ApiError> {
        let found = match self
            .by_id(ctx, Service::Compute, &["flavors", ident])
            .await?
        {
            Some(f) => f.get("flavor").cloned(),
            None => {
                let list = self
                    .get(
                        ctx,
                        Get {
                            service: Service::Compute,
                            path: &["flavors", "detail"],
                            query: &[],
                            headers: &[],
                        },
                    )
                    .await?
                    .unwrap_or_default();
                let named: Vec<&Value> = array(&list, "flavors")
                    .iter()
                    .filter(|f| f.get("name").and_then(Value::as_str) == Some(ident))
                    .collect();
                match named.as_slice() {
                    [] => None,
                    [one] => Some((*one).clone()),
                    _ => return Err(ambiguous("flavor", ident)),
                }
            }
        };
        let f = found
            .ok_or_else(|| ApiError::bad_request(format!("Flavor {ident} could not be found.")))?;
        let num = |k: &str| f.get(k).and_then(Value::as_u64).unwrap_or(0) as u32;
        Ok(Flavor {
            id: str_field(&f, "id").unwrap_or_default(),
            name: str_field(&f, "name").unwrap_or_default(),
            vcpus: num("vcpus"),
            ram_mb: num("ram"),
            disk_gb: num("disk"),
        })
    }

    /// Nova keypairs belong to a user: the caller's own with their token,
    /// else (service token) the request user's through `user_id`.
    pub async fn keypair(&self, ctx: &dyn Caller, name: &str) -> Result<(), ApiError> {
        let as_user = ctx.auth_token().is_some();
        let user_query = [("user_id", ctx.user_id())];
        let found = self
            .get(
                ctx,
                Get {
                    service: Service::Compute,
                    path: &["os-keypairs", name],
                    query: if as_user { &[] } else { &user_query },
                    headers: if as_user {
                        &[]
                    } else {
                        &[
                            ("OpenStack-API-Version", "compute 2.10"),
                            ("X-OpenStack-Nova-API-Version", NOVA_KEYPAIR_USER_VERSION),
                        ]
                    },
                },
            )
            .await?;
        match found {
            Some(_) => Ok(()),
            None => Err(ApiError::not_found(format!(
                "Unable to find keypair {name}."
            ))),
        }
    }

    pub async fn external_network(
        &self,
        ctx: &dyn Caller,
        ident: &str,
    ) -> Result<Network, ApiError> {
        let net = self.network(ctx, ident).await?.ok_or_else(|| {
            ApiError::bad_request(format!("External network {ident} could not be found."))
        })?;
        if !net.external {
            return Err(ApiError::bad_request(format!(
                "Network {ident} is not an external network (router:external is false)."
            )));
        }
        Ok(net)
    }

    pub async fn fixed_network(&self, ctx: &dyn Caller, ident: &str) -> Result<Network, ApiError> {
        self.network(ctx, ident).await?.ok_or_else(|| {
            ApiError::bad_request(format!("Fixed network {ident} could not be found."))
        })
    }

    /// A subnet by id or name, in `network` when one is given.
    pub async fn fixed_subnet(
        &self,
        ctx: &dyn Caller,
        network: Option<&Network>,
        ident: &str,
    ) -> Result<Subnet, ApiError> {
        let by_id = self
            .by_id(ctx, Service::Network, &["subnets", ident])
            .await?
            .and_then(|s| s.get("subnet").cloned())
            .filter(|s| {
                network.is_none_or(|n| str_field(s, "network_id").as_deref() == Some(&n.id))
            });
        let found = match by_id {
            Some(s) => Some(s),
            None => {
                let mut query = vec![("name", ident)];
                if let Some(n) = network {
                    query.push(("network_id", n.id.as_str()));
                }
                let list = self
                    .get(
                        ctx,
                        Get {
                            service: Service::Network,
                            path: &["subnets"],
                            query: &query,
                            headers: &[],
                        },
                    )
                    .await?
                    .unwrap_or_default();
                match array(&list, "subnets") {
                    [] => None,
                    [one] => Some(one.clone()),
                    _ => return Err(ambiguous("subnet", ident)),
                }
            }
        };
        let s = found.ok_or_else(|| {
            ApiError::bad_request(format!("Fixed subnet {ident} could not be found."))
        })?;
        Ok(Subnet {
            id: str_field(&s, "id").unwrap_or_default(),
            name: str_field(&s, "name").unwrap_or_default(),
            cidr: str_field(&s, "cidr").unwrap_or_default(),
        })
    }

    /// The network's first subnet (Neutron's order), if it has any.
    pub async fn first_subnet(
        &self,
        ctx: &dyn Caller,
        network: &Network,
    ) -> Result<Option<Subnet>, ApiError> {
        let list = self
            .get(
                ctx,
                Get {
                    service: Service::Network,
                    path: &["subnets"],
                    query: &[("network_id", network.id.as_str())],
                    headers: &[],
                },
            )
            .await?
            .unwrap_or_default();
        Ok(array(&list, "subnets").first().map(|s| Subnet {
            id: str_field(s, "id").unwrap_or_default(),
            name: str_field(s, "name").unwrap_or_default(),
            cidr: str_field(s, "cidr").unwrap_or_default(),
        }))
    }

    async fn network(&self, ctx: &dyn Caller, ident: &str) -> Result<Option<Network>, ApiError> {
        let found = match self
            .by_id(ctx, Service::Network, &["networks", ident])
            .await?
            .and_then(|n| n.get("network").cloned())
        {
            Some(n) => Some(n),
            None => {
                let list = self
                    .get(
                        ctx,
                        Get {
                            service: Service::Network,
                            path: &["networks"],
                            query: &[("name", ident)],
                            headers: &[],
                        },
                    )
                    .await?
                    .unwrap_or_default();
                one_named(&list, "networks", ident, "network")?
            }
        };
        Ok(found.map(|n| Network {
            id: str_field(&n, "id").unwrap_or_default(),
            name: str_field(&n, "name").unwrap_or_default(),
            external: n
                .get("router:external")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            // Subnets are looked up on demand (`fixed_subnet`).
            subnets: Vec::new(),
        }))
    }

    /// GET of one resource by id; a name (not uuid-like where the service
    /// only has uuids) skips the call. `None` when it does not exist.
    async fn by_id(
        &self,
        ctx: &dyn Caller,
        service: Service,
        path: &[&str],
    ) -> Result<Option<Value>, ApiError> {
        let ident = path.last().copied().unwrap_or_default();
        // Glance and Neutron ids are uuids; Nova flavor ids are free-form.
        if service != Service::Compute && !is_uuid_like(ident) {
            return Ok(None);
        }
        self.get(
            ctx,
            Get {
                service,
                path,
                query: &[],
                headers: &[],
            },
        )
        .await
    }

    /// The JSON body of a 200, `None` for a 404; 403 is the caller's
    /// business, anything else the service's (503, cause in the log).
    async fn get(&self, ctx: &dyn Caller, req: Get<'_>) -> Result<Option<Value>, ApiError> {
        let product = req.service.product();
        let unavailable = |cause: String| {
            tracing::warn!(service = product, "catalog lookup failed: {cause}");
            ApiError::unavailable(format!("{product} could not be reached to check the request's cloud resources; try again later."),
            )
        };
        let mut url = self
            .keystone
            .catalog_endpoint(req.service.service_type())
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let versioned = url
            .path_segments()
            .and_then(|mut s| {
                s.find(|seg| {
                    seg.starts_with('v') && seg[1..].starts_with(|c: char| c.is_ascii_digit())
                })
            })
            .is_some();
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| unavailable("catalog URL cannot take a path".into()))?;
            segments.pop_if_empty();
            if !versioned {
                segments.push(req.service.version_segment());
            }
            segments.extend(req.path);
        }
        if !req.query.is_empty() {
            url.query_pairs_mut().extend_pairs(req.query);
        }
        let mut call = Call::new(Method::GET, url);
        for (name, v) in req.headers {
            let value = HeaderValue::from_str(v).map_err(|e| unavailable(e.to_string()))?;
            call = call.header(name, value);
        }
        // The user's own token gets no second try; the service user's is
        // renewed once on a 401.
        let answer = match ctx.auth_token() {
            Some(token) => self
                .session
                .send_authed(&FixedToken(token.clone()), &call)
                .await
                .map_err(|e| unavailable(e.to_string()))?,
            None => self
                .session
                .send_authed(&self.keystone.service_token_source(), &call)
                .await
                .map_err(|e| unavailable(e.to_string()))?,
        };
        let Answer { status, body, .. } = answer;
        tracing::debug!(service = product, path = call.url.path(), %status, "catalog lookup");
        match status.as_u16() {
            200 => serde_json::from_str(&body)
                .map(Some)
                .map_err(|e| unavailable(format!("unreadable answer: {e}"))),
            404 => Ok(None),
            401 => Err(ApiError::unauthorized(format!(
                "{product} refused the request's token."
            ))),
            403 => {
                let what = req.path.first().copied().unwrap_or("resource");
                let ident = req.path.get(1).copied().unwrap_or_default();
                Err(ApiError::forbidden(format!(
                    "Not authorized for {} {ident}.",
                    what.trim_end_matches('s').trim_start_matches("os-")
                )))
            }
            _ => Err(unavailable(format!(
                "{} answered {status}: {}",
                call.url.path(),
                body.chars().take(200).collect::<String>()
            ))),
        }
    }
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The one item of a by-name listing whose name is exactly `ident`.
fn one_named(list: &Value, key: &str, ident: &str, what: &str) -> Result<Option<Value>, ApiError> {
    let named: Vec<&Value> = array(list, key)
        .iter()
        .filter(|v| v.get("name").and_then(Value::as_str) == Some(ident))
        .collect();
    match named.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        _ => Err(ambiguous(what, ident)),
    }
}

fn ambiguous(what: &str, ident: &str) -> ApiError {
    ApiError::conflict(format!(
        "Multiple {what}s exist with same name {ident}. Please use the {what} id instead."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_name_listings_pick_one_or_conflict() {
        let list = serde_json::json!({"images": [
            {"id": "a", "name": "x"}, {"id": "b", "name": "y"}, {"id": "c", "name": "y"}
        ]});
        assert_eq!(
            one_named(&list, "images", "x", "image").unwrap().unwrap()["id"],
            "a"
        );
        assert!(one_named(&list, "images", "z", "image").unwrap().is_none());
        let err = one_named(&list, "images", "y", "image").unwrap_err();
        assert_eq!(err.kind, super::super::CatalogErrorKind::Conflict);
        assert!(err.message.contains("Please use the image id instead"));
    }
}
