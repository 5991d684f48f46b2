//! `/v1/clustertemplates` (upstream §1.7, §5.1, §5.2).

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use magnum_driver_abi::payload;
use serde_json::{json, Map, Value};

use super::{
    common::{self, Query},
    context::Ctx,
    error::{ApiError, ApiResult},
    input::{apply_patch, patch_ops, Fields, JsonBody},
    render::{JsonBytes, TemplateDoc},
};
use crate::app::AppState;
pub use crate::domain::{template_labels as labels, template_payload as payload};
use crate::{
    db::{
        self,
        models::{ClusterTemplate, NewClusterTemplate, TemplateScope},
        DbConnection,
    },
    plugins::{LoadedDriver, Registry},
};

/// Every attribute a client may send on create.
const WRITABLE: &[&str] = &[
    "name",
    "coe",
    "image_id",
    "flavor_id",
    "master_flavor_id",
    "dns_nameserver",
    "keypair_id",
    "external_network_id",
    "fixed_network",
    "fixed_subnet",
    "network_driver",
    "volume_driver",
    "apiserver_port",
    "docker_volume_size",
    "docker_storage_driver",
    "cluster_distro",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "registry_enabled",
    "labels",
    "tls_disabled",
    "public",
    "hidden",
    "server_type",
    "insecure_registry",
    "master_lb_enabled",
    "floating_ip_enabled",
    "tags",
    "driver",
];

const INTERNAL: &[&str] = &[
    "/created_at",
    "/id",
    "/links",
    "/updated_at",
    "/uuid",
    "/project_id",
    "/user_id",
];

const MANDATORY: &[&str] = &[
    "/coe",
    "/image_id",
    "/network_driver",
    "/external_network_id",
    "/tls_disabled",
    "/public",
    "/server_type",
    "/registry_enabled",
    "/cluster_distro",
    "/hidden",
];

/// The full template as the API shows it.
pub fn view(t: &ClusterTemplate, base: &str) -> Value {
    let mut doc = editable(t);
    doc.insert("uuid".into(), json!(t.uuid));
    doc.insert("project_id".into(), json!(t.project_id));
    doc.insert("user_id".into(), json!(t.user_id));
    doc.insert(
        "links".into(),
        common::links(base, "clustertemplates", &t.uuid),
    );
    doc.insert("created_at".into(), common::time(&t.created_at));
    doc.insert("updated_at".into(), common::opt_time(&t.updated_at));
    Value::Object(doc)
}

/// [`view`] plus `labels_ignored`: the labels of the template that its
/// driver does not declare, which change nothing (`null` when no enabled
/// driver provides the template). Not writable: a patch never sees it.
pub fn shown(state: &AppState, t: &ClusterTemplate, base: &str) -> Value {
    let mut doc = view(t, base);
    doc["labels_ignored"] = json!(ignored_labels(&state.registry.current(), t, &labels(t)));
    doc
}

/// `labels_ignored` of a template whose parsed labels are `labels`, with
/// the drivers of `registry`.
pub fn ignored_labels(
    registry: &Registry,
    t: &ClusterTemplate,
    labels: &BTreeMap<String, String>,
) -> Option<Vec<String>> {
    select_driver_in(registry, t)
        .ok()
        .map(|driver| crate::domain::ignored_labels(&driver.info, labels))
}

/// The writable attributes, `null` when unset: what JSON-patch applies to.
fn editable(t: &ClusterTemplate) -> Map<String, Value> {
    let doc = json!({
        "name": t.name,
        "coe": t.coe,
        "image_id": t.image_id,
        "flavor_id": t.flavor_id,
        "master_flavor_id": t.master_flavor_id,
        "dns_nameserver": t.dns_nameserver,
        "keypair_id": t.keypair_id,
        "external_network_id": t.external_network_id,
        "fixed_network": t.fixed_network,
        "fixed_subnet": t.fixed_subnet,
        "network_driver": t.network_driver,
        "volume_driver": t.volume_driver,
        "apiserver_port": t.apiserver_port,
        "docker_volume_size": t.docker_volume_size,
        "docker_storage_driver": t.docker_storage_driver,
        "cluster_distro": t.cluster_distro,
        "http_proxy": t.http_proxy,
        "https_proxy": t.https_proxy,
        "no_proxy": t.no_proxy,
        "registry_enabled": t.registry_enabled,
        "labels": common::labels_of(&t.labels),
        "tls_disabled": t.tls_disabled,
        "public": t.public,
        "hidden": t.hidden,
        "server_type": t.server_type,
        "insecure_registry": t.insecure_registry,
        "master_lb_enabled": t.master_lb_enabled,
        "floating_ip_enabled": t.floating_ip_enabled,
        "tags": t.tags,
        "driver": t.driver,
    });
    match doc {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Reads the writable attributes into `t` (create: onto defaults; patch:
/// onto the patched document, where `null` means unset/default).
fn read_fields(f: &Fields, t: &mut ClusterTemplate) -> ApiResult<()> {
    let s = |name: &str| f.string(name, 255);
    if let Some(name) = s("name")? {
        t.name = name;
    }
    t.coe = f.required_string("coe", 255)?;
    t.image_id = f.required_string("image_id", 255)?;
    t.flavor_id = s("flavor_id")?;
    t.master_flavor_id = s("master_flavor_id")?;
    t.dns_nameserver = s("dns_nameserver")?;
    if let Some(dns) = &t.dns_nameserver {
        check_dns(dns)?;
    }
    t.keypair_id = s("keypair_id")?;
    t.external_network_id = s("external_network_id")?;
    t.fixed_network = s("fixed_network")?;
    t.fixed_subnet = s("fixed_subnet")?;
    t.network_driver = s("network_driver")?;
    t.volume_driver = s("volume_driver")?;
    t.apiserver_port = f.int("apiserver_port", 1024, 65535)?.map(|v| v as i32);
    t.docker_volume_size = f
        .int("docker_volume_size", 1, i32::MAX.into())?
        .map(|v| v as i32);
    t.docker_storage_driver = s("docker_storage_driver")?;
    // Upstream types it (a string of 1..255) and then always replaces it
    // with the image's os_distro (magnum/api/controllers/v1/cluster_template.py),
    // as check_cloud does here: validated, never stored as given.
    s("cluster_distro")?;
    t.http_proxy = s("http_proxy")?;
    t.https_proxy = s("https_proxy")?;
    t.no_proxy = s("no_proxy")?;
    t.registry_enabled = f.bool("registry_enabled")?.unwrap_or(false);
    t.labels = common::labels_text(&f.labels("labels")?.unwrap_or_default());
    t.tls_disabled = f.bool("tls_disabled")?.unwrap_or(false);
    t.public = f.bool("public")?.unwrap_or(false);
    t.hidden = f.bool("hidden")?.unwrap_or(false);
    t.server_type = f
        .choice("server_type", &["vm", "bm"])?
        .unwrap_or_else(|| "vm".to_owned());
    t.insecure_registry = s("insecure_registry")?;
    t.master_lb_enabled = f.bool("master_lb_enabled")?.unwrap_or(false);
    t.floating_ip_enabled = f.bool("floating_ip_enabled")?.unwrap_or(true);
    t.tags = s("tags")?;
    t.driver = s("driver")?;
    Ok(())
}

fn check_dns(dns: &str) -> ApiResult<()> {
    let ok = dns
        .split(',')
        .all(|a| a.trim().parse::<std::net::Ipv4Addr>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Expected a single dns address or comma separated dns list, but received {}.",
            super::error::truncate(dns, 64)
        )))
    }
}

/// The enabled driver for a template: its explicit `driver`, else the one
/// providing (server_type, cluster_distro, coe).
pub fn select_driver(state: &AppState, t: &ClusterTemplate) -> ApiResult<Arc<LoadedDriver>> {
    select_driver_in(&state.registry.current(), t)
}

/// [`select_driver`] among the drivers of one registry snapshot.
fn select_driver_in(registry: &Registry, t: &ClusterTemplate) -> ApiResult<Arc<LoadedDriver>> {
    let distro = t.cluster_distro.as_deref().unwrap_or_default();
    if let Some(name) = &t.driver {
        // Upstream's name of a driver bundled under another name resolves
        // to it, for the COE the upstream driver had.
        let upstream = crate::plugins::registry::upstream_name(registry, name);
        let lookup = upstream.map_or(name.as_str(), |u| u.driver);
        let driver = registry.get(lookup).ok_or_else(|| {
            let known = registry.entries.iter().any(|e| e.name == lookup);
            ApiError::bad_request(if known {
                format!("Driver {lookup} is registered but not enabled; enable it with magnum-driver-manage enable {lookup}.")
            } else {
                format!("Driver {name} is not registered. Registered drivers are listed by magnum-driver-manage list-drivers.")
            })
        })?;
        let wanted = magnum_driver_abi::Provides::new(&t.server_type, distro, &t.coe);
        let upstream_coe = upstream.is_none_or(|u| u.coe == t.coe);
        if !upstream_coe || !driver.info.provides.contains(&wanted) {
            return Err(ApiError::bad_request(format!(
                "Driver {name} does not support cluster type ({}, {distro}, {}).",
                t.server_type, t.coe
            )));
        }
        return Ok(driver.clone());
    }
    registry
        .for_tuple(&t.server_type, distro, &t.coe)
        .cloned()
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Cluster type ({}, {distro}, {}) not supported.",
                t.server_type, t.coe
            ))
        })
}

/// Upstream §5.1 step 8: the cloud resources the template names. Fills
/// `cluster_distro` from the image's `os_distro`; returns the subnet a
/// fixed network without one gives its clusters (see
/// [`CloudCatalog::default_subnet`]), for the driver's validation.
async fn check_cloud(
    state: &AppState,
    ctx: &Ctx,
    t: &mut ClusterTemplate,
) -> ApiResult<Option<String>> {
    let catalog = &state.catalog;
    let image = catalog.image(ctx, &t.image_id).await?;
    t.cluster_distro = image.os_distro;
    let labels = labels(t);
    for f in [&t.flavor_id, &t.master_flavor_id].into_iter().flatten() {
        catalog.bootable_flavor(ctx, f, &labels).await?;
    }
    if let Some(net) = &t.external_network_id {
        catalog.external_network(ctx, net).await?;
    }
    catalog
        .fixed(ctx, t.fixed_network.as_deref(), t.fixed_subnet.as_deref())
        .await?;
    match (&t.fixed_network, &t.fixed_subnet) {
        (Some(net), None) => Ok(catalog.default_subnet(ctx, net).await?),
        _ => Ok(None),
    }
}

/// `[api] undeclared_labels = "refuse"`: a 400 naming the labels that
/// `driver` and the host do not read, unless the row already had them
/// (`kept`: stored under `keep`, or before this rule), so an unrelated
/// change to an older template still goes through. Upstream accepts any
/// label and silently ignores the unknown ones (issue 15, defect 9).
pub fn check_undeclared_labels(
    state: &AppState,
    driver: &LoadedDriver,
    labels: &BTreeMap<String, String>,
    kept: &BTreeMap<String, String>,
) -> ApiResult<()> {
    if state.settings.undeclared_labels == crate::config::UndeclaredLabels::Keep {
        return Ok(());
    }
    let new: Vec<String> = crate::domain::ignored_labels(&driver.info, labels)
        .into_iter()
        .filter(|name| !kept.contains_key(name))
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "Labels not read by driver {name}: {list}. They would change nothing: remove them or fix \
         their names. An operator lists the labels the driver reads with \
         `magnum-driver-manage show {name}`, and can accept such labels with \
         [api] undeclared_labels = \"keep\".",
        name = driver.name,
        list = new.join(", "),
    )))
}

/// Upstream §5.1 steps 3–7: the driver, its defaults and its own
/// validation, after [`check_cloud`]. Fills the default network driver.
fn validate(
    state: &AppState,
    t: &mut ClusterTemplate,
    default_subnet: Option<String>,
    kept: &BTreeMap<String, String>,
) -> ApiResult<Arc<LoadedDriver>> {
    if t.docker_storage_driver.as_deref() == Some("devicemapper")
        && t.docker_volume_size.is_none_or(|s| s < 3)
    {
        return Err(ApiError::bad_request(format!(
            "docker volume size {} GB is not valid, expecting minimum value 3GB for devicemapper storage driver.",
            t.docker_volume_size.unwrap_or(0)
        )));
    }
    let driver = select_driver(state, t)?;
    check_undeclared_labels(state, &driver, &labels(t), kept)?;
    if t.network_driver.is_none() {
        t.network_driver = magnum_driver_abi::convention::choose_sub_driver(
            "network_driver",
            &driver.info.network_drivers,
            &t.coe,
            None,
        )
        .ok()
        .flatten()
        .map(|d| d.name.clone());
    }
    let mut template = payload(state, t);
    if default_subnet.is_some() {
        template.fixed_subnet = default_subnet;
    }
    let validation = driver.validate_template(&payload::TemplateRequest { template })?;
    for w in validation.warnings {
        tracing::warn!(template = %t.uuid, driver = %driver.name, "{w}");
    }
    Ok(driver)
}

/// Upstream's rule for a template clusters use: one field, and only a
/// harmless one.
fn check_in_use(
    conn: &mut DbConnection,
    current: &ClusterTemplate,
    t: &ClusterTemplate,
    changed: &[&str],
) -> ApiResult<()> {
    if !ClusterTemplate::is_in_use(conn, &current.uuid)? {
        return Ok(());
    }
    let harmless = match changed {
        ["name"] | ["hidden"] => true,
        ["public"] => t.public,
        ["tags"] => t.tags.is_some(),
        _ => false,
    };
    if harmless {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "ClusterTemplate {} is referenced by one or multiple clusters.",
            current.uuid
        )))
    }
}

/// Finds a template the caller may see by uuid or name.
pub fn lookup(conn: &mut DbConnection, ctx: &Ctx, ident: &str) -> ApiResult<ClusterTemplate> {
    let scope = if ctx.is_admin() {
        TemplateScope::All
    } else {
        TemplateScope::Visible {
            project_id: &ctx.project_id,
            include_hidden: false,
        }
    };
    common::by_uuid_or_name(
        conn,
        ident,
        ("ClusterTemplate", "cluster template"),
        |conn| ClusterTemplate::find_by_uuid(conn, ident),
        |t| ctx.can_see(&t.project_id) || (t.public && !t.hidden),
        |conn| ClusterTemplate::find_by_name(conn, scope, ident),
    )
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<JsonBytes> {
    list_inner(state, ctx, headers, raw, "clustertemplates").await
}

pub async fn detail(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<JsonBytes> {
    list_inner(state, ctx, headers, raw, "clustertemplates/detail").await
}

async fn list_inner(
    state: Arc<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    raw: Option<String>,
    path: &str,
) -> ApiResult<JsonBytes> {
    ctx.authorize("clustertemplate:get_all")?;
    let page = Query::parse(raw.as_deref()).page()?;
    let base = common::base_url(&headers);
    let p = page.clone();
    let rows = db::run_blocking(&state.pool, move |conn| -> ApiResult<_> {
        if let Some(m) = &p.marker {
            lookup(conn, &ctx, m)?;
        }
        let scope = if ctx.is_admin() {
            TemplateScope::All
        } else {
            TemplateScope::Visible {
                project_id: &ctx.project_id,
                include_hidden: false,
            }
        };
        Ok(ClusterTemplate::list(conn, scope, &p)?)
    })
    .await?;
    // One registry snapshot for the whole page.
    let registry = state.registry.current();
    let labels: Vec<_> = rows.iter().map(labels).collect();
    let docs: Vec<_> = rows
        .iter()
        .zip(&labels)
        .map(|(t, l)| TemplateDoc::new(t, l, ignored_labels(&registry, t, l), &base))
        .collect();
    let last = rows.last().map(|t| t.uuid.as_str());
    JsonBytes::collection("clustertemplates", &docs, last, &page, &base, path)
}

pub async fn get_one(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(ident): Path<String>,
) -> ApiResult<JsonBytes> {
    ctx.authorize("clustertemplate:get")?;
    let t = db::run_blocking(&state.pool, move |conn| lookup(conn, &ctx, &ident)).await?;
    let base = common::base_url(&headers);
    let labels = labels(&t);
    let ignored = ignored_labels(&state.registry.current(), &t, &labels);
    JsonBytes::of(&TemplateDoc::new(&t, &labels, ignored, &base), 2048)
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.authorize("clustertemplate:create")?;
    let mut allowed = WRITABLE.to_vec();
    allowed.push("uuid");
    let f = Fields::new("cluster_template", body, &allowed)?;
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
    let fresh = NewClusterTemplate::new(&ctx.project_id, &ctx.user_id, "", "", "");
    let mut t = from_new(fresh);
    t.uuid = uuid;
    t.name = common::generated_name("template");
    read_fields(&f, &mut t)?;
    if (t.public || t.hidden) && ctx.authorize("clustertemplate:publish").is_err() {
        return Err(ApiError::forbidden(
            "Not authorized to set public or hidden flag for cluster template.",
        ));
    }
    let default_subnet = check_cloud(&state, &ctx, &mut t).await?;
    let driver = validate(&state, &mut t, default_subnet, &BTreeMap::new())?;
    state
        .registry
        .current()
        .accepts_new(driver.name())
        .map_err(ApiError::bad_request)?;
    let new = to_new(&t);
    let saved = db::run_write(&state.pool, move |conn| -> ApiResult<_> {
        ClusterTemplate::insert(conn, &new).map_err(|e| {
            if common::is_unique_violation(&e) {
                ApiError::conflict(format!(
                    "A cluster template with UUID {} already exists.",
                    new.uuid
                ))
            } else {
                e.into()
            }
        })
    })
    .await?;
    let base = common::base_url(&headers);
    let location = format!("{base}/v1/clustertemplates/{}", saved.uuid);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(shown(&state, &saved, &base)),
    )
        .into_response())
}

pub async fn patch(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(ident): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    ctx.authorize("clustertemplate:update")?;
    let ops = patch_ops(body, INTERNAL)?;
    // Read and patch, check the cloud (network calls, outside any
    // transaction), then write unless someone else wrote in between.
    let c = ctx.clone();
    let planned = db::run_blocking(&state.pool, move |conn| -> ApiResult<_> {
        let current = lookup(conn, &c, &ident)?;
        if !c.can_see(&current.project_id) {
            return Err(ApiError::policy("clustertemplate:update"));
        }
        let before = editable(&current);
        let mut doc = before.clone();
        apply_patch(&mut doc, &ops, MANDATORY)?;
        let f = Fields::new("cluster_template", Value::Object(doc.clone()), WRITABLE)?;
        let mut t = current.clone();
        read_fields(&f, &mut t)?;
        let changed: Vec<&'static str> = WRITABLE
            .iter()
            .copied()
            .filter(|k| editable(&t).get(*k) != before.get(*k))
            .collect();
        if changed.is_empty() {
            return Ok((current, None));
        }
        if (t.public != current.public || t.hidden != current.hidden)
            && c.authorize("clustertemplate:publish").is_err()
        {
            return Err(ApiError::forbidden(
                "Not authorized to set public or hidden flag for cluster template.",
            ));
        }
        check_in_use(conn, &current, &t, &changed)?;
        Ok((current, Some((t, changed))))
    })
    .await?;
    let (current, Some((mut t, changed))) = planned else {
        return Ok(Json(shown(&state, &planned.0, &common::base_url(&headers))));
    };
    let default_subnet = check_cloud(&state, &ctx, &mut t).await?;
    let st = state.clone();
    let saved = db::run_write(&state.pool, move |conn| -> ApiResult<_> {
        db::write_transaction(conn, |conn| {
            db::lock_row(conn, "cluster_template", &current.uuid)?;
            let fresh = lookup(conn, &ctx, &current.uuid)?;
            if fresh.updated_at != current.updated_at {
                return Err(ApiError::conflict(format!(
                    "ClusterTemplate {} was modified by another request; retry.",
                    current.uuid
                )));
            }
            check_in_use(conn, &current, &t, &changed)?;
            validate(&st, &mut t, default_subnet, &labels(&current))?;
            Ok(t.update(conn)?)
        })
    })
    .await?;
    Ok(Json(shown(&state, &saved, &common::base_url(&headers))))
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.authorize("clustertemplate:delete")?;
    db::run_write(&state.pool, move |conn| -> ApiResult<_> {
        let t = lookup(conn, &ctx, &ident)?;
        if !ctx.can_see(&t.project_id) {
            return Err(ApiError::policy("clustertemplate:delete"));
        }
        if ClusterTemplate::is_in_use(conn, &t.uuid)? {
            return Err(ApiError::bad_request(format!(
                "ClusterTemplate {} is referenced by one or multiple clusters.",
                t.uuid
            )));
        }
        ClusterTemplate::delete(conn, &t.uuid)?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn from_new(n: NewClusterTemplate) -> ClusterTemplate {
    ClusterTemplate {
        id: 0,
        uuid: n.uuid,
        project_id: n.project_id,
        user_id: n.user_id,
        name: n.name,
        coe: n.coe,
        image_id: n.image_id,
        flavor_id: n.flavor_id,
        master_flavor_id: n.master_flavor_id,
        dns_nameserver: n.dns_nameserver,
        keypair_id: n.keypair_id,
        external_network_id: n.external_network_id,
        fixed_network: n.fixed_network,
        fixed_subnet: n.fixed_subnet,
        network_driver: n.network_driver,
        volume_driver: n.volume_driver,
        apiserver_port: n.apiserver_port,
        docker_volume_size: n.docker_volume_size,
        docker_storage_driver: n.docker_storage_driver,
        cluster_distro: n.cluster_distro,
        http_proxy: n.http_proxy,
        https_proxy: n.https_proxy,
        no_proxy: n.no_proxy,
        registry_enabled: n.registry_enabled,
        labels: n.labels,
        tls_disabled: n.tls_disabled,
        public: n.public,
        hidden: n.hidden,
        server_type: n.server_type,
        insecure_registry: n.insecure_registry,
        master_lb_enabled: n.master_lb_enabled,
        floating_ip_enabled: n.floating_ip_enabled,
        tags: n.tags,
        driver: n.driver,
        created_at: db::models::now(),
        updated_at: None,
    }
}

fn to_new(t: &ClusterTemplate) -> NewClusterTemplate {
    NewClusterTemplate {
        uuid: t.uuid.clone(),
        project_id: t.project_id.clone(),
        user_id: t.user_id.clone(),
        name: t.name.clone(),
        coe: t.coe.clone(),
        image_id: t.image_id.clone(),
        flavor_id: t.flavor_id.clone(),
        master_flavor_id: t.master_flavor_id.clone(),
        dns_nameserver: t.dns_nameserver.clone(),
        keypair_id: t.keypair_id.clone(),
        external_network_id: t.external_network_id.clone(),
        fixed_network: t.fixed_network.clone(),
        fixed_subnet: t.fixed_subnet.clone(),
        network_driver: t.network_driver.clone(),
        volume_driver: t.volume_driver.clone(),
        apiserver_port: t.apiserver_port,
        docker_volume_size: t.docker_volume_size,
        docker_storage_driver: t.docker_storage_driver.clone(),
        cluster_distro: t.cluster_distro.clone(),
        http_proxy: t.http_proxy.clone(),
        https_proxy: t.https_proxy.clone(),
        no_proxy: t.no_proxy.clone(),
        registry_enabled: t.registry_enabled,
        labels: t.labels.clone(),
        tls_disabled: t.tls_disabled,
        public: t.public,
        hidden: t.hidden,
        server_type: t.server_type.clone(),
        insecure_registry: t.insecure_registry.clone(),
        master_lb_enabled: t.master_lb_enabled,
        floating_ip_enabled: t.floating_ip_enabled,
        tags: t.tags.clone(),
        driver: t.driver.clone(),
    }
}
