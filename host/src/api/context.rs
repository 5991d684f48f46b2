//! Who is calling: the request context built from the identity mode, and
//! upstream's "new default" policy rules (admin, project member, project
//! reader) over it.

use std::sync::Arc;

use axum::{extract::FromRequestParts, http::request::Parts, http::HeaderMap};

use super::error::ApiError;
use crate::app::{AppState, Identity};
use crate::db::models::Cluster;
use crate::keystone::{KeystoneError, SecretToken};
use crate::microversion::{Version, MIN};
use crate::policy::{Creds, Policy, Target};

/// The caller of one request and the negotiated microversion.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub project_id: String,
    pub user_id: String,
    pub roles: Vec<String>,
    pub version: Version,
    /// Set when the caller presented a cluster credential (a node of that
    /// cluster): it has no role, only the certificate routes of its cluster.
    pub cluster: Option<String>,
    /// The rules in force (`[policy] file` over upstream's defaults).
    policy: Arc<Policy>,
    /// The caller's validated Keystone token (keystone mode only), for the
    /// calls made on the user's behalf (a cluster's trust). Its `Debug`
    /// prints `***`, so it never reaches a log.
    auth_token: Option<SecretToken>,
}

/// Catalog lookups run as the request's caller.
impl crate::catalog::Caller for Ctx {
    fn user_id(&self) -> &str {
        &self.user_id
    }
    fn auth_token(&self) -> Option<&SecretToken> {
        self.auth_token.as_ref()
    }
}

impl Ctx {
    /// The caller's Keystone token: `None` in noauth mode and for nodes.
    pub fn auth_token(&self) -> Option<&SecretToken> {
        self.auth_token.as_ref()
    }

    /// `context_is_admin`: sees and changes every project's resources.
    pub fn is_admin(&self) -> bool {
        self.cluster.is_none()
            && self
                .policy
                .allows("context_is_admin", self.creds(), self.own_target())
    }

    fn creds(&self) -> Creds<'_> {
        Creds {
            project_id: &self.project_id,
            user_id: &self.user_id,
            roles: &self.roles,
        }
    }

    fn own_target(&self) -> Target<'_> {
        Target {
            project_id: &self.project_id,
            user_id: &self.user_id,
        }
    }

    /// The project filter for queries: admins see every project (upstream's
    /// `*_all_projects` rules), everyone else only their own.
    pub fn scope(&self) -> Option<&str> {
        if self.is_admin() {
            None
        } else {
            Some(&self.project_id)
        }
    }

    /// Whether the caller may see a row of `project_id`.
    pub fn can_see(&self, project_id: &str) -> bool {
        self.is_admin() || self.project_id == project_id
    }

    /// Policy rule `action` (see [`crate::policy::DEFAULTS`]) on the
    /// caller's own project, as upstream's target for creates and lists;
    /// rows of other projects are kept out by the queries' project filter
    /// ([`Ctx::scope`]), as upstream's.
    pub fn authorize(&self, action: &str) -> Result<(), ApiError> {
        self.authorize_on(action, &self.project_id, &self.user_id)
    }

    /// Policy rule `action` on a resource owned by `project_id` and
    /// `user_id`. A node presenting its cluster credential has no role and
    /// passes no rule.
    pub fn authorize_on(
        &self,
        action: &str,
        project_id: &str,
        user_id: &str,
    ) -> Result<(), ApiError> {
        let target = Target {
            project_id,
            user_id,
        };
        if self.cluster.is_none() && self.policy.allows(action, self.creds(), target) {
            Ok(())
        } else {
            Err(ApiError::policy(action))
        }
    }

    /// Upstream's `certificate:get` and `certificate:create` on a cluster
    /// (magnum/common/policies/certificate.py: by default admin, or a
    /// reader/member of the cluster's project who is the cluster's own
    /// user), plus a node of that cluster presenting its credential. Other
    /// members of the project are refused: a signed `system:masters` CSR is
    /// cluster-admin access.
    pub fn require_cluster_user(&self, action: &str, cluster: &Cluster) -> Result<(), ApiError> {
        if let Some(own) = &self.cluster {
            return if *own == cluster.uuid {
                Ok(())
            } else {
                Err(ApiError::policy(action))
            };
        }
        self.authorize_on(action, &cluster.project_id, &cluster.user_id)
    }

    /// Refuses a route below the microversion that introduced it.
    pub fn require_version(&self, min: Version, method: &str) -> Result<(), ApiError> {
        if self.version >= min {
            Ok(())
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::NOT_ACCEPTABLE,
                format!(
                    "Version {} was requested but the requested API {method} is not supported for this version.",
                    self.version
                ),
            ))
        }
    }
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(axum::http::StatusCode::UNAUTHORIZED, detail)
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The context of a node presenting its cluster's credential.
async fn node_ctx(state: &Arc<AppState>, token: String, version: Version) -> Result<Ctx, ApiError> {
    let certs = state.certs.clone();
    let found = crate::db::run_blocking(&state.pool, move |conn| -> Result<_, ApiError> {
        let Some(uuid) = certs.check_credential(conn, &token)? else {
            return Ok(None);
        };
        use diesel::OptionalExtension;
        let cluster = crate::db::models::Cluster::find_by_uuid(conn, &uuid).optional()?;
        Ok(cluster.map(|c| (uuid, c.project_id)))
    })
    .await?;
    match found {
        Some((uuid, project_id)) => Ok(Ctx {
            project_id,
            user_id: format!("cluster:{uuid}"),
            roles: Vec::new(),
            version,
            cluster: Some(uuid),
            policy: state.policy.clone(),
            auth_token: None,
        }),
        None => Err(unauthorized(
            "The request you have made requires authentication: the cluster credential is invalid or was rotated.",
        )),
    }
}

impl FromRequestParts<Arc<AppState>> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let version = parts.extensions.get::<Version>().copied().unwrap_or(MIN);
        // A cluster credential is checked here, in either identity mode, and
        // never sent to Keystone.
        if let Some(token) = header(&parts.headers, "x-auth-token")
            .filter(|t| t.starts_with(crate::certs::CREDENTIAL_PREFIX))
        {
            return node_ctx(state, token, version).await;
        }
        match &state.identity {
            Identity::NoAuth {
                project_id,
                user_id,
                roles,
            } => {
                let h = &parts.headers;
                // A header that is present but empty names no roles (as
                // keystonemiddleware's would); only an absent one means the
                // configured defaults.
                let roles = match h.get("x-roles") {
                    None => roles.clone(),
                    Some(v) => v
                        .to_str()
                        .unwrap_or_default()
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect(),
                };
                Ok(Ctx {
                    project_id: header(h, "x-project-id").unwrap_or_else(|| project_id.clone()),
                    user_id: header(h, "x-user-id").unwrap_or_else(|| user_id.clone()),
                    roles,
                    version,
                    cluster: None,
                    policy: state.policy.clone(),
                    auth_token: None,
                })
            }
            Identity::Keystone(client) => {
                let Some(token) = header(&parts.headers, "x-auth-token") else {
                    return Err(unauthorized(
                        "The request you have made requires authentication.",
                    ));
                };
                match client.validate(&token).await {
                    Ok(info) => Ok(Ctx {
                        // A token without a project scope acts in no project:
                        // it sees nothing but what its roles allow globally.
                        project_id: info.project_id.unwrap_or_default(),
                        user_id: info.user_id,
                        roles: info.roles,
                        version,
                        cluster: None,
                        policy: state.policy.clone(),
                        auth_token: Some(SecretToken::new(token)),
                    }),
                    Err(KeystoneError::InvalidToken) => Err(unauthorized(
                        "The request you have made requires authentication: the token is invalid or expired.",
                    )),
                    Err(KeystoneError::Unavailable(reason)) => {
                        tracing::warn!("keystone unavailable: {reason}");
                        Err(ApiError::new(
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "The identity service is unavailable; the token could not be validated.",
                        ))
                    }
                    Err(e) => Err(ApiError::internal(format!("token validation: {e}"))),
                }
            }
        }
    }
}
