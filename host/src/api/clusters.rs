//! `/v1/clusters` and its actions (upstream §1.8, §1.9, §2.3, §5.3).
//!
//! Unlike upstream, the cluster row and its default nodegroups exist when
//! the 202 returns, status preconditions are checked here (409) rather than
//! logged by the conductor, and the quota check shares the insert's
//! transaction.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use diesel::OptionalExtension;
use magnum_driver_abi::{capability as op, payload};
use serde_json::{json, Map, Value};

use super::{
    common::{self, Query},
    context::Ctx,
    error::{ApiError, ApiResult},
    input::{apply_patch, patch_ops, Fields, JsonBody},
    render::{ClusterDoc, ClusterSummary, JsonBytes},
    templates,
};
use crate::app::AppState;
use crate::{
    db::{
        self,
        models::{Cluster, ClusterTemplate, NewCluster, NewNodeGroup, NodeGroup, Quota},
        DbConnection,
    },
    jobs::{self, Operation},
    microversion::Version,
    plugins::{LoadedDriver, Registry},
    status::Status,
};

pub use crate::domain::{counts, nodegroup_payload, request};

const CREATE_FIELDS: &[&str] = &[
    "uuid",
    "name",
    "cluster_template_id",
    "keypair",
    "node_count",
    "master_count",
    "docker_volume_size",
    "labels",
    "master_flavor_id",
    "flavor_id",
    "create_timeout",
    "discovery_url",
    "fixed_network",
    "fixed_subnet",
    "floating_ip_enabled",
    "master_lb_enabled",
    "merge_labels",
];

const INTERNAL: &[&str] = &[
    "/created_at",
    "/id",
    "/links",
    "/updated_at",
    "/uuid",
    "/project_id",
    "/user_id",
    "/api_address",
    "/node_addresses",
    "/master_addresses",
    "/stack_id",
    "/cluster_id",
    "/ca_cert_ref",
    "/magnum_cert_ref",
    "/etcd_ca_cert_ref",
    "/front_proxy_ca_cert_ref",
];

/// What a cluster PATCH may change.
const PATCHABLE: &[&str] = &["node_count", "health_status", "health_status_reason"];

const NAME_MAX: usize = 242;

fn check_name(name: &str) -> ApiResult<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if first_ok && rest_ok && name.len() <= NAME_MAX {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "name",
            &Value::String(name.to_owned()),
            &format!(
                "Names must match ^[a-zA-Z][a-zA-Z0-9_.-]*$ and be at most {NAME_MAX} characters"
            ),
        ))
    }
}

fn stack_field(v: Version) -> &'static str {
    if v >= Version::new(1, 13) {
        "cluster_id"
    } else {
        "stack_id"
    }
}

/// The summary fields of `GET /v1/clusters`, as a `Value`: what
/// [`ClusterSummary`] renders straight to bytes (the tests compare them).
#[cfg(test)]
pub fn summary(c: &Cluster, groups: &[NodeGroup], base: &str, v: Version) -> Value {
    let n = counts(groups);
    let mut doc = json!({
        "uuid": c.uuid,
        "name": c.name,
        "cluster_template_id": c.cluster_template_id,
        "keypair": c.keypair,
        "docker_volume_size": c.docker_volume_size,
        "labels": common::labels_of(&c.labels),
        "node_count": n.node_count,
        "master_count": n.master_count,
        "status": c.status,
        "master_flavor_id": c.master_flavor_id,
        "flavor_id": c.flavor_id,
        "create_timeout": c.create_timeout,
        "health_status": c.health_status,
        "merge_labels": false,
        "links": common::links(base, "clusters", &c.uuid),
    });
    doc[stack_field(v)] = json!(c.stack_id);
    doc
}

/// The full object; `template_labels` adds the label diff fields.
pub fn full(
    c: &Cluster,
    groups: &[NodeGroup],
    template_labels: Option<&BTreeMap<String, String>>,
    base: &str,
    v: Version,
) -> Value {
    let n = counts(groups);
    let labels = common::labels_of(&c.labels);
    let mut doc = json!({
        "uuid": c.uuid,
        "name": c.name,
        "cluster_template_id": c.cluster_template_id,
        "keypair": c.keypair,
        "docker_volume_size": c.docker_volume_size,
        "labels": labels,
        "master_flavor_id": c.master_flavor_id,
        "flavor_id": c.flavor_id,
        "create_timeout": c.create_timeout,
        "discovery_url": c.discovery_url,
        "fixed_network": c.fixed_network,
        "fixed_subnet": c.fixed_subnet,
        "floating_ip_enabled": c.floating_ip_enabled,
        "master_lb_enabled": c.master_lb_enabled,
        // Input only, never stored: upstream's views show the attribute's
        // default (wsattr default=False, magnum/api/controllers/v1/cluster.py).
        "merge_labels": false,
        "status": c.status,
        "status_reason": c.status_reason,
        "health_status": c.health_status,
        "health_status_reason": c.health_status_reason.as_deref().map_or(json!({}), common::json_of),
        "api_address": c.api_address,
        "coe_version": c.coe_version,
        "container_version": c.container_version,
        "node_count": n.node_count,
        "master_count": n.master_count,
        "node_addresses": n.node_addresses,
        "master_addresses": n.master_addresses,
        "project_id": c.project_id,
        "user_id": c.user_id,
        "links": common::links(base, "clusters", &c.uuid),
        "created_at": common::time(&c.created_at),
        "updated_at": common::opt_time(&c.updated_at),
    });
    doc[stack_field(v)] = json!(c.stack_id);
    if let Some(parent) = template_labels {
        let (o, a, s) = common::label_diff(parent, &labels);
        doc["labels_overridden"] = o;
        doc["labels_added"] = a;
        doc["labels_skipped"] = s;
    }
    doc
}

/// The cluster's labels its driver does not declare, which change nothing
/// (`None` when that driver is not enabled in `registry`).
fn labels_ignored(
    registry: &Registry,
    c: &Cluster,
    labels: &BTreeMap<String, String>,
) -> Option<Vec<String>> {
    registry
        .get(&c.driver)
        .map(|driver| crate::domain::ignored_labels(&driver.info, labels))
}

/// A cluster the caller may see, by uuid or name.
pub fn lookup(conn: &mut DbConnection, ctx: &Ctx, ident: &str) -> ApiResult<Cluster> {
    common::by_uuid_or_name(
        conn,
        ident,
        ("Cluster", "cluster"),
        |conn| Cluster::find_by_uuid(conn, ident),
        |c| ctx.can_see(&c.project_id),
        |conn| Cluster::find_by_name(conn, ctx.scope(), ident),
    )
}

/// `lookup` for a write: the row is locked and read again, so what the
/// caller writes back is based on the newest version (a conductor may have
/// changed it since the first read).
pub fn lookup_for_update(conn: &mut DbConnection, ctx: &Ctx, ident: &str) -> ApiResult<Cluster> {
    let found = lookup(conn, ctx, ident)?;
    if db::has_row_locks(conn) {
        db::lock_row(conn, "cluster", &found.uuid)?;
        return Ok(Cluster::find_by_uuid(conn, &found.uuid)?);
    }
    Ok(found)
}

/// The driver that created the cluster (never re-resolved: upstream pain
/// point 5).
pub fn driver_of(state: &AppState, c: &Cluster) -> ApiResult<Arc<LoadedDriver>> {
    state.registry.get(&c.driver).ok_or_else(|| {
        ApiError::conflict(format!(
            "Cluster {} was created by driver {}, which is not enabled on this server.",
            c.uuid, c.driver
        ))
    })
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<JsonBytes> {
    list_inner(state, ctx, headers, raw, false).await
}

pub async fn detail(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<JsonBytes> {
    list_inner(state, ctx, headers, raw, true).await
}

async fn list_inner(
    state: Arc<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    raw: Option<String>,
    detail: bool,
) -> ApiResult<JsonBytes> {
    ctx.authorize(if detail {
        "cluster:detail"
    } else {
        "cluster:get_all"
    })?;
    let page = Query::parse(raw.as_deref()).page()?;
    let base = common::base_url(&headers);
    let version = ctx.version;
    let p = page.clone();
    let (rows, groups, tmpls) = db::run_blocking(&state.pool, move |conn| -> ApiResult<_> {
        if let Some(m) = &p.marker {
            lookup(conn, &ctx, m)?;
        }
        let rows = Cluster::list(conn, ctx.scope(), &p)?;
        let uuids: Vec<String> = rows.iter().map(|c| c.uuid.clone()).collect();
        let groups = NodeGroup::of_clusters(conn, &uuids)?;
        let tmpls = if detail {
            let ids: Vec<String> = rows.iter().map(|c| c.cluster_template_id.clone()).collect();
            ClusterTemplate::find_many(conn, &ids)?
        } else {
            Vec::new()
        };
        Ok((rows, groups, tmpls))
    })
    .await?;
    let mut by_cluster: HashMap<&str, Vec<&NodeGroup>> = HashMap::new();
    for g in &groups {
        by_cluster.entry(g.cluster_id.as_str()).or_default().push(g);
    }
    let own = |c: &Cluster| -> Vec<&NodeGroup> {
        by_cluster.get(c.uuid.as_str()).cloned().unwrap_or_default()
    };
    let last = rows.last().map(|c| c.uuid.as_str());
    if !detail {
        let docs: Vec<_> = rows
            .iter()
            .map(|c| ClusterSummary::new(c, &own(c), &base, version))
            .collect();
        return JsonBytes::collection("clusters", &docs, last, &page, &base, "clusters");
    }
    // One registry snapshot for the whole page.
    let registry = state.registry.current();
    let template_labels: BTreeMap<&str, BTreeMap<String, String>> = tmpls
        .iter()
        .map(|t| (t.uuid.as_str(), templates::labels(t)))
        .collect();
    let owned: Vec<Vec<&NodeGroup>> = rows.iter().map(own).collect();
    let docs: Vec<_> = rows
        .iter()
        .zip(&owned)
        .map(|(c, groups)| {
            ClusterDoc::new(
                c,
                groups,
                template_labels.get(c.cluster_template_id.as_str()),
                |labels| labels_ignored(&registry, c, labels),
                &base,
                version,
            )
        })
        .collect();
    JsonBytes::collection("clusters", &docs, last, &page, &base, "clusters/detail")
}

pub async fn get_one(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(ident): Path<String>,
) -> ApiResult<JsonBytes> {
    ctx.authorize("cluster:get")?;
    let version = ctx.version;
    let (c, groups, tmpl) = db::run_blocking(&state.pool, move |conn| -> ApiResult<_> {
        let c = lookup(conn, &ctx, &ident)?;
        let groups = NodeGroup::all_of_cluster(conn, &c.uuid)?;
        let tmpl = ClusterTemplate::find_by_uuid(conn, &c.cluster_template_id).optional()?;
        Ok((c, groups, tmpl))
    })
    .await?;
    let base = common::base_url(&headers);
    let tl = tmpl.as_ref().map(templates::labels);
    let groups: Vec<&NodeGroup> = groups.iter().collect();
    let registry = state.registry.current();
    let doc = ClusterDoc::new(
        &c,
        &groups,
        tl.as_ref(),
        |labels| labels_ignored(&registry, &c, labels),
        &base,
        version,
    )
    .with_faults(&c, &groups);
    JsonBytes::of(&doc, 2048)
}

fn accepted(uuid: &str) -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "uuid": uuid }))).into_response()
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.authorize("cluster:create")?;
    let f = Fields::new("cluster", body, CREATE_FIELDS)?;
    let below_1_10 = ctx.version < Version::new(1, 10);
    let template_ident = f.required_string("cluster_template_id", 255)?;
    let node_count = f.int("node_count", 0, 10_000)?.unwrap_or(1);
    if below_1_10 && node_count == 0 {
        return Err(ApiError::bad_request(
            "Creating a cluster with 0 nodes is not supported in the provided microversion; use 1.10 or later.",
        ));
    }
    let master_count = f.int("master_count", 1, 100)?.unwrap_or(1);
    let create_timeout = f.int("create_timeout", 0, 7 * 24 * 60)?;
    let name = match f.string("name", NAME_MAX)? {
        Some(n) => {
            check_name(&n)?;
            n
        }
        None => common::generated_name("cluster"),
    };
    let uuid = match f.string("uuid", 36)? {
        Some(u) if common::is_uuid_like(&u) => u,
        Some(u) => {
            return Err(ApiError::invalid_field(
                "uuid",
                &Value::String(u),
                "Value should be a UUID",
            ))
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let given_labels = f.labels("labels")?;
    let merge = f.bool("merge_labels")?.unwrap_or(false);
    let st = state.clone();
    let c2 = ctx.clone();
    let template = db::run_blocking(&state.pool, move |conn| -> ApiResult<_> {
        match templates::lookup(conn, &c2, &template_ident) {
            // Upstream answers 400 below 1.10 for a missing template.
            Err(e) if e.status == StatusCode::NOT_FOUND && below_1_10 => {
                Err(ApiError::bad_request(e.detail))
            }
            other => other,
        }
    })
    .await?;
    if template.hidden && !ctx.is_admin() && template.project_id != ctx.project_id {
        return Err(ApiError::forbidden(format!(
            "Cluster template {} is hidden; it cannot be used to create clusters.",
            template.uuid
        )));
    }
    // Inheritance: a value that is unset (or falsy, as upstream) comes from the template.
    let pick = |own: Option<String>, inherited: &Option<String>| own.or_else(|| inherited.clone());
    let mut new = NewCluster::new(&ctx.project_id, &ctx.user_id, &name, &template.uuid, "");
    new.uuid = uuid;
    new.keypair = pick(f.string("keypair", 255)?, &template.keypair_id);
    new.docker_volume_size = f
        .int("docker_volume_size", 1, i32::MAX.into())?
        .map(|v| v as i32)
        .or(template.docker_volume_size);
    new.master_flavor_id = pick(
        f.string("master_flavor_id", 255)?,
        &template.master_flavor_id,
    );
    new.flavor_id = pick(f.string("flavor_id", 255)?, &template.flavor_id);
    new.fixed_network = pick(f.string("fixed_network", 255)?, &template.fixed_network);
    new.fixed_subnet = pick(f.string("fixed_subnet", 255)?, &template.fixed_subnet);
    new.discovery_url = f.string("discovery_url", 1024)?;
    new.floating_ip_enabled = f
        .bool("floating_ip_enabled")?
        .unwrap_or(template.floating_ip_enabled);
    new.master_lb_enabled = f
        .bool("master_lb_enabled")?
        .unwrap_or(template.master_lb_enabled);
    // Stored as given, as upstream; 0 means the default stack timeout, not
    // "no timeout" (see `request`).
    new.create_timeout = Some(create_timeout.unwrap_or(60) as i32);
    let labels = common::inherit_labels(&templates::labels(&template), given_labels, merge);
    new.labels = common::labels_text(&labels);
    if master_count > 1 && !new.master_lb_enabled {
        return Err(ApiError::bad_request(
            "master_count must be 1 when master_lb_enabled is False",
        ));
    }
    let catalog = &state.catalog;
    if let Some(kp) = &new.keypair {
        catalog.keypair(&ctx, kp).await?;
    }
    for fl in [&new.flavor_id, &new.master_flavor_id]
        .into_iter()
        .flatten()
    {
        catalog.bootable_flavor(&ctx, fl, &labels).await?;
    }
    catalog
        .fixed(
            &ctx,
            new.fixed_network.as_deref(),
            new.fixed_subnet.as_deref(),
        )
        .await?;
    // A fixed network without a subnet: the nodes' ports need one, and a
    // pure driver cannot ask Neutron which.
    if let (Some(net), None) = (&new.fixed_network, &new.fixed_subnet) {
        new.fixed_subnet = catalog.default_subnet(&ctx, net).await?;
    }
    let driver = templates::select_driver(&state, &template)?;
    state
        .registry
        .current()
        .accepts_new(driver.name())
        .map_err(ApiError::bad_request)?;
    templates::check_undeclared_labels(&state, &driver, &labels, &templates::labels(&template))?;
    new.driver = driver.name.clone();

    // The two default nodegroups (upstream §2.3), created with the cluster.
    let mut master = NewNodeGroup::new(&new.uuid, &new.project_id, "default-master");
    master.role = "master".to_owned();
    master.is_default = true;
    master.node_count = master_count as i32;
    master.min_node_count = 1;
    master.flavor_id = new.master_flavor_id.clone();
    let mut worker = NewNodeGroup::new(&new.uuid, &new.project_id, "default-worker");
    worker.is_default = true;
    worker.node_count = node_count as i32;
    worker.flavor_id = new.flavor_id.clone();
    worker.min_node_count = labels
        .get("min_node_count")
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|v| *v >= 0)
        .unwrap_or(0);
    worker.max_node_count = labels
        .get("max_node_count")
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|v| *v > 0);
    for g in [&mut master, &mut worker] {
        g.image_id = Some(template.image_id.clone());
        g.docker_volume_size = new.docker_volume_size;
        g.labels = new.labels.clone();
        g.status = Some(Status::CreateInProgress);
    }

    // The driver sees the cluster exactly as it will be stored.
    let preview = preview_cluster(&new);
    let preview_groups = [preview_group(&master), preview_group(&worker)];
    let validation =
        driver.validate_cluster(&request(&state, &template, &preview, &preview_groups))?;
    for w in validation.warnings {
        tracing::warn!(cluster = %new.uuid, driver = %driver.name, "{w}");
    }

    // The trust exists before the row: a cluster is never stored without
    // the trust its stacks need, and a row that fails to commit takes the
    // trust back with it (below).
    let trust = create_trust(&state, &ctx, &new.uuid).await?;
    let stored_trust = trust.clone();
    // The nodes' OpenStack credential, when the driver asks for one: made
    // with the caller's own token (Keystone lets no one else), before the
    // row, and released with the trust if the row is not stored.
    let app_cred = if validation.cloud_credential {
        match create_app_credential(&state, &ctx, &new.uuid, &new.name, None).await {
            Ok(c) => c,
            Err(e) => {
                if let Some(t) = &trust {
                    release_trust(&state, &t.id).await;
                }
                return Err(e);
            }
        }
    } else {
        None
    };
    let app_cred_row = match &app_cred {
        Some(c) => match state
            .certs
            .app_credential_row(&new.uuid, &c.cred, &c.secret)
        {
            Ok(row) => Some(row),
            Err(e) => {
                release_app_credential(&state, &new.uuid, &c.cred).await;
                if let Some(t) = &trust {
                    release_trust(&state, &t.id).await;
                }
                return Err(e.into());
            }
        },
        None => None,
    };
    let limit_default = state.settings.max_clusters_per_project;
    let result = db::run_write(&st.pool, move |conn| -> ApiResult<String> {
        db::write_transaction(conn, |conn| {
            db::lock_project(conn, &new.project_id)?;
            let mut cluster = Cluster::insert(conn, &new).map_err(|e| {
                if common::is_unique_violation(&e) {
                    ApiError::conflict(format!("A cluster with UUID {} already exists.", new.uuid))
                } else {
                    e.into()
                }
            })?;
            if let Some(t) = stored_trust {
                cluster.trust_id = Some(t.id);
                cluster.trustee_user_id = Some(t.trustee_user_id);
                cluster.trustee_username = t.trustee_username;
                cluster = cluster.update(conn)?;
            }
            if let Some(row) = &app_cred_row {
                crate::db::models::Certificate::insert(conn, row)?;
            }
            NodeGroup::insert(conn, &master)?;
            NodeGroup::insert(conn, &worker)?;
            // Counted after the insert, inside the project's lock: two
            // concurrent creates cannot both pass.
            let count = Cluster::count_by_project(conn, &cluster.project_id)?;
            let limit = Quota::find(conn, &cluster.project_id, "Cluster")
                .optional()?
                .map_or(limit_default, |q| i64::from(q.hard_limit));
            if count > limit {
                return Err(ApiError::forbidden(format!(
                    "Resource limit exceeded: You have reached the maximum clusters per project, {limit}. You may delete a cluster to make room for a new one."
                )));
            }
            jobs::enqueue(conn, &cluster.uuid, &Operation::ClusterCreate)?;
            Ok(cluster.uuid)
        })
    })
    .await;
    let uuid = match result {
        Ok(uuid) => uuid,
        Err(e) => {
            if let Some(c) = &app_cred {
                release_app_credential(&state, &preview.uuid, &c.cred).await;
            }
            if let Some(t) = &trust {
                release_trust(&state, &t.id).await;
            }
            return Err(e);
        }
    };
    tracing::info!(cluster = %uuid, "cluster create accepted");
    Ok(accepted(&uuid))
}

/// The trust stored with a new cluster.
#[derive(Clone)]
struct ClusterTrust {
    id: String,
    trustee_user_id: String,
    trustee_username: Option<String>,
}

/// The Keystone trust of a new cluster, when the heat orchestrator needs one
/// (`Settings::cluster_trusts`, keystone identity): from the caller to the
/// service user on the caller's project, with impersonation, the caller's
/// roles and redelegation (Heat makes its own trust from it). `None` in
/// every other setup.
async fn create_trust(
    state: &AppState,
    ctx: &Ctx,
    cluster: &str,
) -> ApiResult<Option<ClusterTrust>> {
    let crate::api::Identity::Keystone(client) = &state.identity else {
        return Ok(None);
    };
    if !state.settings.cluster_trusts {
        return Ok(None);
    }
    let Some(token) = ctx.auth_token() else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication: creating a cluster needs a Keystone token.",
        ));
    };
    // Served from the validation cache: the token was validated for this
    // request a moment ago.
    let created = match client.validate(token.expose()).await {
        Ok(info) => client.create_trust(token.expose(), &info).await,
        Err(e) => Err(e),
    };
    let trust = created.map_err(|e| trust_error(cluster, e))?;
    let trustee_username = client.service_token_info().await.ok().map(|i| i.user_name);
    tracing::info!(
        cluster = %cluster,
        trust = %trust.id,
        trustor = %trust.trustor_user_id,
        "cluster trust created"
    );
    Ok(Some(ClusterTrust {
        id: trust.id,
        trustee_user_id: trust.trustee_user_id,
        trustee_username,
    }))
}

/// Best effort: a trust whose cluster was not stored is deleted again.
async fn release_trust(state: &AppState, trust_id: &str) {
    if let crate::api::Identity::Keystone(client) = &state.identity {
        match client.delete_trust(trust_id).await {
            Ok(()) => tracing::info!(trust = %trust_id, "trust of a cluster not created deleted"),
            Err(e) => tracing::warn!(
                trust = %trust_id,
                "the trust of a cluster that was not created could not be deleted: {e}"
            ),
        }
    }
}

/// A new application credential, before it is stored.
pub(crate) struct NewAppCredential {
    pub cred: crate::certs::AppCredRef,
    pub secret: zeroize::Zeroizing<String>,
}

/// The Keystone application credential of a cluster whose nodes need an
/// OpenStack credential (the driver's `Validation::cloud_credential`):
/// created with the caller's own token, with `[drivers]
/// cloud_credential_roles`, no expiry. `None` without Keystone (noauth):
/// there is no user to create it for. `rotation` tells a rotation's
/// credential apart (names are unique per user).
pub(crate) async fn create_app_credential(
    state: &AppState,
    ctx: &Ctx,
    cluster: &str,
    cluster_name: &str,
    rotation: Option<i64>,
) -> ApiResult<Option<NewAppCredential>> {
    let crate::api::Identity::Keystone(client) = &state.identity else {
        return Ok(None);
    };
    let Some(token) = ctx.auth_token() else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication: the cluster's nodes need an application credential, which only a Keystone token can create.",
        ));
    };
    let name = match rotation {
        None => format!("magnum-{cluster}"),
        Some(n) => format!("magnum-{cluster}-{n}"),
    };
    let description = format!(
        "Cloud provider and volumes of Magnum cluster {cluster_name} ({cluster}); deleted with the cluster"
    );
    let created = match client.validate(token.expose()).await {
        Ok(info) => {
            client
                .create_application_credential(
                    token.expose(),
                    &info,
                    &name,
                    &description,
                    &state.settings.cloud_credential_roles,
                )
                .await
        }
        Err(e) => Err(e),
    };
    let c = created.map_err(|e| app_credential_error(cluster, e))?;
    tracing::info!(
        cluster = %cluster,
        app_credential = %c.id,
        user = %c.user_id,
        "cluster application credential created"
    );
    Ok(Some(NewAppCredential {
        cred: crate::certs::AppCredRef {
            id: c.id,
            user_id: c.user_id,
        },
        secret: c.secret,
    }))
}

/// Best effort: an application credential that was not stored is deleted
/// again (a failure is logged with its id, never its secret).
pub(crate) async fn release_app_credential(
    state: &AppState,
    cluster: &str,
    cred: &crate::certs::AppCredRef,
) {
    if let crate::api::Identity::Keystone(client) = &state.identity {
        match client
            .delete_application_credential(&cred.user_id, &cred.id)
            .await
        {
            Ok(()) => {
                tracing::info!(cluster = %cluster, app_credential = %cred.id, "unused application credential deleted")
            }
            Err(e) => tracing::warn!(
                cluster = %cluster,
                app_credential = %cred.id,
                user = %cred.user_id,
                "an unused application credential could not be deleted (delete it in Keystone): {e}"
            ),
        }
    }
}

/// Why Keystone did not create the application credential, as the user
/// reads it: Keystone only lets a user create one with their own
/// non-delegated token.
fn app_credential_error(cluster: &str, e: crate::keystone::KeystoneError) -> ApiError {
    use crate::keystone::KeystoneError as K;
    let refused = |status: StatusCode, why: &str| {
        ApiError::new(
            status,
            format!(
                "Keystone refused to create the application credential this cluster's nodes need (cloud provider, Cinder volumes): {why}. Authenticate with a password or an unrestricted application credential (not a trust or a restricted application credential), or set the label cloud_provider_enabled=false (and use no volume driver)."
            ),
        )
    };
    match e {
        K::InvalidToken => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication: the token is invalid or expired, so the application credential the cluster needs could not be created.",
        ),
        K::Forbidden(why) => refused(StatusCode::FORBIDDEN, why.trim_end_matches('.')),
        K::NotFound(why) | K::Config(why) => {
            refused(StatusCode::BAD_REQUEST, why.trim_end_matches('.'))
        }
        K::Unexpected { status, message } if (400..500).contains(&status) => refused(
            StatusCode::BAD_REQUEST,
            &format!("{status}: {}", message.trim_end_matches('.')),
        ),
        K::Unavailable(reason) => {
            tracing::warn!(cluster = %cluster, "keystone unavailable creating the cluster application credential: {reason}");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The identity service is unavailable; the application credential the cluster needs could not be created.",
            )
        }
        other => ApiError::internal(format!("cluster {cluster}: application credential: {other}")),
    }
}

/// Why Keystone did not create the trust, as the user reads it.
fn trust_error(cluster: &str, e: crate::keystone::KeystoneError) -> ApiError {
    use crate::keystone::KeystoneError as K;
    let refused = |status: StatusCode, why: &str| {
        ApiError::new(
            status,
            format!("Keystone refused to create the trust the cluster needs: {why}"),
        )
    };
    match e {
        K::InvalidToken => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication: the token is invalid or expired, so the trust the cluster needs could not be created.",
        ),
        K::Forbidden(why) => refused(StatusCode::FORBIDDEN, &why),
        K::NotFound(why) => refused(StatusCode::BAD_REQUEST, &why),
        K::Config(why) => refused(StatusCode::BAD_REQUEST, &why),
        K::Unexpected { status, message } if (400..500).contains(&status) => {
            refused(StatusCode::BAD_REQUEST, &format!("{status}: {message}"))
        }
        K::Unavailable(reason) => {
            tracing::warn!(cluster = %cluster, "keystone unavailable creating the cluster trust: {reason}");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The identity service is unavailable; the trust the cluster needs could not be created.",
            )
        }
        other => ApiError::internal(format!("cluster {cluster}: trust: {other}")),
    }
}

fn preview_cluster(n: &NewCluster) -> Cluster {
    Cluster {
        id: 0,
        uuid: n.uuid.clone(),
        project_id: n.project_id.clone(),
        user_id: n.user_id.clone(),
        name: n.name.clone(),
        cluster_template_id: n.cluster_template_id.clone(),
        driver: n.driver.clone(),
        keypair: n.keypair.clone(),
        docker_volume_size: n.docker_volume_size,
        labels: n.labels.clone(),
        master_flavor_id: n.master_flavor_id.clone(),
        flavor_id: n.flavor_id.clone(),
        stack_id: None,
        api_address: None,
        status: n.status,
        status_reason: None,
        health_status: None,
        health_status_reason: None,
        create_timeout: n.create_timeout,
        discovery_url: n.discovery_url.clone(),
        coe_version: None,
        container_version: None,
        ca_cert_ref: None,
        magnum_cert_ref: None,
        etcd_ca_cert_ref: None,
        front_proxy_ca_cert_ref: None,
        trust_id: None,
        trustee_username: None,
        trustee_user_id: None,
        fixed_network: n.fixed_network.clone(),
        fixed_subnet: n.fixed_subnet.clone(),
        floating_ip_enabled: n.floating_ip_enabled,
        master_lb_enabled: n.master_lb_enabled,
        created_at: db::models::now(),
        updated_at: None,
    }
}

pub fn preview_group(n: &NewNodeGroup) -> NodeGroup {
    NodeGroup {
        id: 0,
        uuid: n.uuid.clone(),
        name: n.name.clone(),
        cluster_id: n.cluster_id.clone(),
        project_id: n.project_id.clone(),
        docker_volume_size: n.docker_volume_size,
        labels: n.labels.clone(),
        flavor_id: n.flavor_id.clone(),
        image_id: n.image_id.clone(),
        node_addresses: "[]".to_owned(),
        node_count: n.node_count,
        role: n.role.clone(),
        max_node_count: n.max_node_count,
        min_node_count: n.min_node_count,
        is_default: n.is_default,
        stack_id: None,
        status: n.status,
        status_reason: None,
        version: None,
        node_labels: n.node_labels.clone(),
        node_taints: n.node_taints.clone(),
        created_at: db::models::now(),
        updated_at: None,
    }
}

/// The cluster, its template and nodegroups, for an operation.
struct Loaded {
    cluster: Cluster,
    template: ClusterTemplate,
    groups: Vec<NodeGroup>,
}

/// The cluster (locked, see `lookup_for_update`), its template and groups.
fn load(conn: &mut DbConnection, ctx: &Ctx, ident: &str) -> ApiResult<Loaded> {
    let cluster = lookup_for_update(conn, ctx, ident)?;
    let template = ClusterTemplate::find_by_uuid(conn, &cluster.cluster_template_id)?;
    let groups = NodeGroup::all_of_cluster(conn, &cluster.uuid)?;
    Ok(Loaded {
        cluster,
        template,
        groups,
    })
}

fn require_status(c: &Cluster, allowed: impl Fn(Status) -> bool, what: &str) -> ApiResult<()> {
    if allowed(c.status) {
        Ok(())
    } else {
        Err(ApiError::conflict(format!(
            "{what} a cluster when status is {} is not supported.",
            c.status
        )))
    }
}

fn require_capability(driver: &LoadedDriver, operation: &str, what: &str) -> ApiResult<()> {
    if driver.info.supports(operation) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{what} is not supported by driver {}.",
            driver.name
        )))
    }
}

pub async fn patch(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(ident): Path<String>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.authorize("cluster:update")?;
    let query = Query::parse(raw.as_deref());
    let rollback = match query.bool("rollback")? {
        Some(_) if ctx.version < Version::new(1, 3) => {
            return Err(ApiError::bad_request(
                "Rollback is not supported in the provided microversion; use 1.3 or later.",
            ))
        }
        r => r.unwrap_or(false),
    };
    let ops = patch_ops(body, INTERNAL)?;
    let st = state.clone();
    let uuid = db::run_write(&state.pool, move |conn| -> ApiResult<String> {
        db::write_transaction(conn, |conn| {
            let Loaded {
                mut cluster,
                template,
                groups,
            } = load(conn, &ctx, &ident)?;
            let base = "";
            let mut before = match full(&cluster, &groups, None, base, ctx.version) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            // `node_count` is shown as the sum over every worker group but
            // patched as the default worker group's size (upstream): the
            // patch applies to, and is compared with, that size, so asking
            // for the shown sum on a cluster with extra groups still sets
            // the default group to it.
            if let Some(worker) = groups.iter().find(|g| g.is_default && g.role != "master") {
                before.insert("node_count".into(), json!(worker.node_count));
            }
            let mut doc = before.clone();
            apply_patch(&mut doc, &ops, &[])?;
            let changed: Vec<&String> = doc.keys().filter(|k| doc.get(*k) != before.get(*k)).collect();
            let forbidden: Vec<&str> = changed
                .iter()
                .map(|k| k.as_str())
                .filter(|k| !PATCHABLE.contains(k))
                .collect();
            if !forbidden.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "cannot change cluster property(ies) {}.",
                    forbidden.join(", ")
                )));
            }
            if changed.is_empty() {
                return Ok(cluster.uuid);
            }
            let mut health_changed = false;
            if changed.iter().any(|k| *k == "health_status" || *k == "health_status_reason") {
                ctx.authorize_on(
                    "cluster:update_health_status",
                    &cluster.project_id,
                    &cluster.user_id,
                )?;
                let hs = Fields::new(
                    "cluster",
                    json!({"health_status": doc.get("health_status").cloned().unwrap_or(Value::Null)}),
                    &["health_status"],
                )?;
                cluster.health_status = hs.choice("health_status", &["HEALTHY", "UNHEALTHY", "UNKNOWN"])?;
                cluster.health_status_reason = match doc.get("health_status_reason") {
                    None | Some(Value::Null) => None,
                    Some(reason) => Some(common::labels_text(&super::input::parse_labels(
                        "health_status_reason",
                        reason,
                    )?)),
                };
                health_changed = true;
            }
            if changed.iter().any(|k| *k == "node_count") {
                let node_count = match doc.get("node_count") {
                    None | Some(Value::Null) => 1,
                    Some(v) => Fields::new("cluster", json!({"node_count": v}), &["node_count"])?
                        .int("node_count", 0, 10_000)?
                        .unwrap_or(1),
                };
                if node_count == 0 && ctx.version < Version::new(1, 10) {
                    return Err(ApiError::bad_request(
                        "Resizing a nodegroup to zero is not supported in the provided microversion.",
                    ));
                }
                require_status(&cluster, Status::update_allowed, "Updating")?;
                let driver = driver_of(&st, &cluster)?;
                require_capability(&driver, op::UPDATE_CLUSTER, "Updating a cluster")?;
                let mut worker = groups
                    .iter()
                    .find(|g| g.is_default && g.role != "master")
                    .cloned()
                    .ok_or_else(|| ApiError::conflict("The cluster has no default worker nodegroup."))?;
                let old = worker.node_count;
                worker.node_count = node_count as i32;
                let new_groups: Vec<NodeGroup> = groups
                    .iter()
                    .map(|g| if g.uuid == worker.uuid { worker.clone() } else { g.clone() })
                    .collect();
                let mut preview = cluster.clone();
                preview.status = Status::UpdateInProgress;
                driver.call::<_, payload::StackPlan>(
                    op::UPDATE_CLUSTER,
                    &request(&st, &template, &preview, &new_groups),
                )?;
                worker.status = Some(Status::UpdateInProgress);
                worker.update(conn)?;
                cluster.status = Status::UpdateInProgress;
                cluster.status_reason = None;
                cluster.update(conn)?;
                jobs::enqueue(
                    conn,
                    &cluster.uuid,
                    &Operation::ClusterUpdate {
                        nodegroup: worker.uuid.clone(),
                        node_count,
                        previous_node_count: old,
                        rollback,
                    },
                )?;
                return Ok(cluster.uuid);
            }
            if health_changed {
                cluster.update(conn)?;
            }
            Ok(cluster.uuid)
        })
    })
    .await?;
    Ok(accepted(&uuid))
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.authorize("cluster:delete")?;
    db::run_write(&state.pool, move |conn| -> ApiResult<()> {
        db::write_transaction(conn, |conn| {
            let mut cluster = lookup_for_update(conn, &ctx, &ident)?;
            if cluster.status == Status::DeleteInProgress {
                // Already on its way; deleting twice is not an error.
                return Ok(());
            }
            cluster.status = Status::DeleteInProgress;
            cluster.status_reason = None;
            cluster.update(conn)?;
            jobs::enqueue(conn, &cluster.uuid, &Operation::ClusterDelete)?;
            tracing::info!(cluster = %cluster.uuid, "cluster delete accepted");
            Ok(())
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn resize(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(ident): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.require_version(Version::new(1, 7), "resize")?;
    ctx.authorize("cluster:resize")?;
    let f = Fields::new(
        "resize",
        body,
        &["node_count", "nodes_to_remove", "nodegroup"],
    )?;
    let node_count = f
        .int("node_count", 0, 10_000)?
        .ok_or_else(|| ApiError::bad_request("Mandatory field missing: node_count"))?;
    if node_count == 0 && ctx.version < Version::new(1, 10) {
        return Err(ApiError::bad_request(
            "Resizing a nodegroup to zero is not supported in the provided microversion.",
        ));
    }
    let nodes_to_remove: Vec<String> = match f.raw("nodes_to_remove") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) if !s.is_empty() && s.len() <= 255 => Ok(s.clone()),
                other => Err(ApiError::invalid_field(
                    "nodes_to_remove",
                    other,
                    "Value should be a list of server ids or names",
                )),
            })
            .collect::<ApiResult<_>>()?,
        Some(other) => {
            return Err(ApiError::invalid_field(
                "nodes_to_remove",
                other,
                "Value should be a list",
            ))
        }
    };
    let ng_ident = f.string("nodegroup", 255)?;
    let st = state.clone();
    let uuid = db::run_write(&state.pool, move |conn| -> ApiResult<String> {
        db::write_transaction(conn, |conn| {
            let Loaded {
                mut cluster,
                template,
                groups,
            } = load(conn, &ctx, &ident)?;
            let mut group = match &ng_ident {
                None => groups.iter().find(|g| g.is_default && g.role != "master").cloned(),
                Some(n) => groups.iter().find(|g| &g.uuid == n || &g.name == n).cloned(),
            }
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "Nodegroup {} could not be found.",
                    ng_ident.as_deref().unwrap_or("default-worker")
                ))
            })?;
            let driver = driver_of(&st, &cluster)?;
            require_capability(&driver, op::RESIZE_CLUSTER, "Resizing a cluster")?;
            if group.role == "master" {
                return Err(ApiError::bad_request(
                    "Resizing the master nodegroup is not supported by this driver.",
                ));
            }
            let min = i64::from(group.min_node_count);
            let max = group.max_node_count.map(i64::from);
            if node_count < min || max.is_some_and(|m| node_count > m) {
                return Err(ApiError::bad_request(format!(
                    "Resizing {} outside the allowed range: min_node_count = {min}, max_node_count = {}",
                    group.name,
                    max.map_or("None".to_owned(), |m| m.to_string())
                )));
            }
            require_status(&cluster, common::resize_allowed, "Resizing")?;
            if group.status == Some(Status::DeleteInProgress) {
                return Err(ApiError::conflict(format!(
                    "Nodegroup {} is being deleted.",
                    group.name
                )));
            }
            let old = group.node_count;
            // The plan is computed here only to surface the driver's
            // objections before anything changes; the conductor recomputes it
            // from the rows. A nodegroup whose create is still queued has no
            // stack yet: its create builds the size asked here.
            let being_created = group.stack_id.is_none()
                && group.status == Some(Status::CreateInProgress);
            if !being_created {
                driver.call::<_, payload::StackPlan>(
                    op::RESIZE_CLUSTER,
                    &payload::ResizeRequest {
                        base: request(&st, &template, &cluster, &groups),
                        nodegroup: group.uuid.clone(),
                        node_count,
                        nodes_to_remove: nodes_to_remove.clone(),
                    },
                )?;
            }
            group.node_count = node_count as i32;
            if !being_created {
                group.status = Some(Status::UpdateInProgress);
            }
            group.update(conn)?;
            cluster.status = Status::UpdateInProgress;
            cluster.status_reason = None;
            cluster.update(conn)?;
            jobs::enqueue(
                conn,
                &cluster.uuid,
                &Operation::ClusterResize {
                    nodegroup: group.uuid.clone(),
                    node_count,
                    previous_node_count: old,
                    nodes_to_remove,
                },
            )?;
            Ok(cluster.uuid)
        })
    })
    .await?;
    Ok(accepted(&uuid))
}

pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(ident): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    if ctx.version < Version::new(1, 8) {
        return Err(ApiError::bad_request(
            "Cluster upgrade is not supported in the provided microversion",
        ));
    }
    ctx.authorize("cluster:upgrade")?;
    let f = Fields::new(
        "upgrade",
        body,
        &["cluster_template", "max_batch_size", "nodegroup"],
    )?;
    let tmpl_ident = f.required_string("cluster_template", 255)?;
    let max_batch_size = f.int("max_batch_size", 1, 1000)?.unwrap_or(1);
    let ng_ident = f.string("nodegroup", 255)?;
    let st = state.clone();
    let uuid = db::run_write(&state.pool, move |conn| -> ApiResult<String> {
        db::write_transaction(conn, |conn| {
            let Loaded {
                mut cluster,
                template,
                groups,
            } = load(conn, &ctx, &ident)?;
            let new_template = templates::lookup(conn, &ctx, &tmpl_ident)?;
            let driver = driver_of(&st, &cluster)?;
            require_capability(&driver, op::UPGRADE_CLUSTER, "Upgrading a cluster")?;
            require_status(&cluster, Status::update_allowed, "Upgrading")?;
            let group = match &ng_ident {
                None => groups
                    .iter()
                    .find(|g| g.is_default && g.role != "master")
                    .cloned(),
                Some(n) => groups
                    .iter()
                    .find(|g| &g.uuid == n || &g.name == n)
                    .cloned(),
            }
            .ok_or_else(|| ApiError::not_found("Nodegroup could not be found."))?;
            if !group.is_default && new_template.uuid != template.uuid {
                return Err(ApiError::conflict(format!(
                    "Nodegroup {} can only be upgraded to the cluster's current template {}.",
                    group.name, template.uuid
                )));
            }
            driver.call::<_, payload::StackPlan>(
                op::UPGRADE_CLUSTER,
                &payload::UpgradeRequest {
                    base: request(&st, &template, &cluster, &groups),
                    new_template: templates::payload(&st, &new_template),
                    nodegroup: group.uuid.clone(),
                    max_batch_size,
                },
            )?;
            cluster.status = Status::UpdateInProgress;
            cluster.status_reason = None;
            cluster.update(conn)?;
            jobs::enqueue(
                conn,
                &cluster.uuid,
                &Operation::ClusterUpgrade {
                    cluster_template: new_template.uuid.clone(),
                    nodegroup: group.uuid.clone(),
                    max_batch_size,
                },
            )?;
            Ok(cluster.uuid)
        })
    })
    .await?;
    Ok(accepted(&uuid))
}
