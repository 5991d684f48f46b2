//! One run of each job type: plan with the driver, act through the
//! orchestrator, then poll the stacks and let the driver map them onto the
//! rows, until a terminal status or the deadline.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::OptionalExtension;
use magnum_driver_abi::{capability as op, payload::*, DriverError};
use serde_json::Value;

use super::{elapsed, Conductor, OrchestratorError, Outcome};
use crate::{
    db::{
        models::{Cluster, ClusterTemplate, Job, NodeGroup},
        DbConnection,
    },
    domain,
    jobs::{Operation, RunState},
    plugins::LoadedDriver,
    status::Status,
};

type Conn = DbConnection;

pub fn run(c: &Conductor, conn: &mut Conn, job: &Job, at: NaiveDateTime) -> Outcome {
    let op = match Operation::of(job) {
        Ok(op) => op,
        Err(e) => {
            tracing::error!(job = job.id, "{e}; dropped");
            return Outcome::Done;
        }
    };
    let Some(cluster_uuid) = job.cluster_uuid.clone() else {
        tracing::error!(job = job.id, "job names no cluster; dropped");
        return Outcome::Done;
    };
    let mut state = RunState::of(job);
    // Jobs of one cluster run in the order they were queued.
    match Job::older_of_cluster_exists(conn, job.id, &cluster_uuid) {
        Ok(true) => return poll(state, Duration::from_secs(1)),
        Ok(false) => {}
        Err(e) => return Outcome::Retry(format!("database: {e}")),
    }
    // The first run records when the operation started; a run that ends in
    // a retry keeps that record, so an orchestrator that stays unavailable
    // still meets the operation's deadline instead of restarting its clock.
    let first_run = state.started_at.is_none();
    state.started_at.get_or_insert(at.and_utc().timestamp());
    let started = first_run.then(|| state.to_json());
    let run = Run {
        job: job.id,
        cluster: &cluster_uuid,
        op: &op,
    };
    let result = match &op {
        Operation::ClusterCreate => cluster_create(c, conn, &cluster_uuid, state, at),
        Operation::ClusterUpdate { .. }
        | Operation::ClusterResize { .. }
        | Operation::ClusterUpgrade { .. }
        | Operation::RotateCa
        | Operation::RotateCredential => cluster_update(c, conn, &run, state, at),
        Operation::ClusterDelete => cluster_delete(c, conn, &cluster_uuid, state, at),
        Operation::NodegroupCreate { .. } | Operation::NodegroupDelete { .. } => {
            nodegroup_op(c, conn, &run, state, at)
        }
        // Nodegroup PATCH changes bounds and node labels only, which no
        // bundled driver turns into a stack change.
        Operation::NodegroupUpdate { .. } => Ok(Outcome::Done),
    };
    let outcome = result.unwrap_or_else(|e| e);
    if let (Outcome::Retry(_), Some(started)) = (&outcome, started) {
        if let Err(e) = Job::set_state(conn, job.id, &c.worker, &started) {
            tracing::warn!(job = job.id, "cannot record the operation's start: {e}");
        }
    }
    outcome
}

/// The job a run belongs to.
struct Run<'a> {
    job: i64,
    cluster: &'a str,
    op: &'a Operation,
}

/// Early exits of a step: `Err(outcome)` ends the run with that outcome.
type Step<T> = Result<T, Outcome>;

fn db<T>(r: diesel::QueryResult<T>) -> Step<T> {
    r.map_err(|e| Outcome::Retry(format!("database: {e}")))
}

fn poll(state: RunState, after: Duration) -> Outcome {
    Outcome::Poll { after, state }
}

/// 1 s, 2 s, 4 s … up to the cap (the orchestrator's, when it is lower);
/// the count lives in the run state.
fn next_poll(c: &Conductor, mut state: RunState) -> Outcome {
    let polls = state.polls;
    state.polls = polls.saturating_add(1);
    let cap = c
        .orchestrator
        .poll_cap()
        .map_or(c.settings.poll_cap, |o| o.min(c.settings.poll_cap));
    let after = Duration::from_secs(1u64 << polls.min(10)).min(cap);
    poll(state, after)
}

/// The `HostContext::extra` key of the cluster stack's outputs, given to
/// a nodegroup create (the SDK's `helpers::CLUSTER_STACK_OUTPUTS`, which
/// the host does not depend on).
const CLUSTER_STACK_OUTPUTS: &str = "cluster_stack_outputs";
/// The `HostContext::extra` key of the upgraded nodegroup stack's current
/// parameters (the SDK's `helpers::NODEGROUP_STACK_PARAMETERS`).
const NODEGROUP_STACK_PARAMETERS: &str = "nodegroup_stack_parameters";

struct Loaded {
    cluster: Cluster,
    template: ClusterTemplate,
    groups: Vec<NodeGroup>,
}

fn load(conn: &mut Conn, uuid: &str) -> Step<Option<Loaded>> {
    let Some(cluster) = db(Cluster::find_by_uuid(conn, uuid).optional())? else {
        return Ok(None);
    };
    let template = db(ClusterTemplate::find_by_uuid(
        conn,
        &cluster.cluster_template_id,
    ))?;
    let groups = db(NodeGroup::all_of_cluster(conn, uuid))?;
    Ok(Some(Loaded {
        cluster,
        template,
        groups,
    }))
}

fn driver(c: &Conductor, cluster: &Cluster) -> Result<std::sync::Arc<LoadedDriver>, String> {
    c.state.registry.get(&cluster.driver).ok_or_else(|| {
        format!(
            "driver {} that created the cluster is not enabled on conductor {}",
            cluster.driver, c.settings.host
        )
    })
}

fn request(c: &Conductor, l: &Loaded) -> ClusterRequest {
    domain::request(&c.state, &l.template, &l.cluster, &l.groups)
}

/// The request of an operation that boots or changes nodes: it also carries
/// what nodes need from the host (the cluster credential, the CA rotation).
fn node_request(c: &Conductor, conn: &mut Conn, l: &Loaded) -> Result<ClusterRequest, String> {
    let mut req = request(c, l);
    let extra = c
        .state
        .certs
        .host_extra(conn, &l.cluster.uuid)
        .map_err(|e| e.to_string())?;
    req.context.extra.extend(extra);
    // No `trust_id` here: the trust goes to the orchestrator alone (see
    // `trust_of`), never into a plan, whose parameters reach the nodes.
    Ok(req)
}

/// The cluster's Keystone trust (keystone identity mode), which every
/// create, update and lookup of its stacks is given: with the heat
/// orchestrator its stacks live in the user's project, reached through it.
fn trust_of(cluster: &Cluster) -> Option<&str> {
    cluster.trust_id.as_deref().filter(|t| !t.is_empty())
}

/// Deletes the cluster's trust once its stacks are gone (Heat may still need
/// it while it deletes a stack). Through the service user's Keystone client
/// of the keystone identity mode, the one that created it. A trust already
/// gone counts as deleted; any failure is logged and never blocks the
/// delete. Runs on the conductor's blocking pool, as the orchestrators do.
fn release_trust(c: &Conductor, cluster: &Cluster) {
    let Some(trust) = trust_of(cluster) else {
        return;
    };
    let crate::app::Identity::Keystone(client) = &c.state.identity else {
        tracing::warn!(
            cluster = %cluster.uuid,
            trust = %trust,
            "cluster trust not deleted: this conductor has no Keystone client ([auth] mode is not keystone)"
        );
        return;
    };
    let handle = match tokio::runtime::Handle::try_current() {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(cluster = %cluster.uuid, trust = %trust, "cluster trust not deleted: {e}");
            return;
        }
    };
    match handle.block_on(client.delete_trust(trust)) {
        Ok(()) => tracing::info!(cluster = %cluster.uuid, trust = %trust, "cluster trust deleted"),
        Err(e) => tracing::warn!(
            cluster = %cluster.uuid,
            trust = %trust,
            "cluster trust could not be deleted (delete it in Keystone): {e}"
        ),
    }
}

/// Deletes the cluster's application credentials recorded under `kind`
/// from Keystone with the service token (Keystone refuses delegated tokens
/// here, so not the trust), and the rows of those deleted. One that cannot
/// be deleted is logged with its id (never its secret) and never blocks:
/// its row stays until the cluster's rows go.
fn release_app_credentials(c: &Conductor, conn: &mut Conn, cluster: &str, kind: &str) -> Step<()> {
    let creds = db(crate::certs::app_credentials_of(conn, cluster, kind))?;
    if creds.is_empty() {
        return Ok(());
    }
    let client = match &c.state.identity {
        crate::app::Identity::Keystone(client) => Some(client),
        _ => None,
    };
    let handle = tokio::runtime::Handle::try_current();
    for cred in creds {
        let result = match (client, &handle) {
            (Some(client), Ok(h)) => h
                .block_on(client.delete_application_credential(&cred.user_id, &cred.id))
                .map_err(|e| e.to_string()),
            (None, _) => Err(
                "this conductor has no Keystone client ([auth] mode is not keystone)".to_owned(),
            ),
            (_, Err(e)) => Err(e.to_string()),
        };
        match result {
            Ok(()) => {
                db(crate::certs::forget_app_credential(conn, cluster, &cred.id))?;
                tracing::info!(cluster = %cluster, app_credential = %cred.id, "application credential deleted");
            }
            Err(e) => tracing::warn!(
                cluster = %cluster,
                app_credential = %cred.id,
                user = %cred.user_id,
                "application credential could not be deleted (delete it in Keystone): {e}"
            ),
        }
    }
    Ok(())
}

/// Marks the cluster failed with `reason` (and the nodegroups still in
/// progress with it), ending the job.
fn fail(conn: &mut Conn, cluster: &mut Cluster, status: Status, reason: &str) -> Outcome {
    tracing::warn!(cluster = %cluster.uuid, %status, "{reason}");
    let expected = cluster.status;
    cluster.status = status;
    cluster.status_reason = Some(reason.to_owned());
    match cluster.update_if_status(conn, expected) {
        Ok(true) => {}
        // A request (a delete) changed the cluster meanwhile: its job decides.
        Ok(false) => return Outcome::Done,
        Err(e) => return Outcome::Retry(format!("database: {e}")),
    }
    if let Ok(groups) = NodeGroup::all_of_cluster(conn, &cluster.uuid) {
        for mut g in groups {
            if g.status.is_some_and(Status::is_in_progress) {
                g.status = Some(status);
                g.status_reason = Some(reason.to_owned());
                let _ = g.save_progress(conn);
            }
        }
    }
    Outcome::Done
}

fn orchestrator_error(e: OrchestratorError) -> Result<String, Outcome> {
    match e {
        OrchestratorError::Rejected(reason) => Ok(reason),
        OrchestratorError::Unavailable(reason) => {
            Err(Outcome::Retry(format!("orchestrator: {reason}")))
        }
    }
}

fn driver_error(e: DriverError) -> String {
    let field = e.field.to_string();
    if field.is_empty() {
        e.message.to_string()
    } else {
        format!("{} ({field})", e.message)
    }
}

/// Has the operation outlived its deadline?
fn overdue(state: &RunState, at: NaiveDateTime, limit: Duration) -> bool {
    let started = state.started_at.unwrap_or(i64::MAX);
    at.and_utc().timestamp().saturating_sub(started) > limit.as_secs() as i64
}

/// Saves the cluster if no request changed its status since it was loaded
/// (`expected`); otherwise this run ends and the newer request's job decides.
fn save(conn: &mut Conn, cluster: &Cluster, expected: Status) -> Step<()> {
    if db(cluster.update_if_status(conn, expected))? {
        Ok(())
    } else {
        tracing::info!(cluster = %cluster.uuid, "cluster changed by a newer request; this job ends");
        Err(Outcome::Done)
    }
}

/// Creates the stacks of `plan` that do not exist yet (found by name first,
/// so a retry after a crash reuses them) and records their ids.
fn create_stacks(
    c: &Conductor,
    conn: &mut Conn,
    l: &mut Loaded,
    plan: &StackPlan,
) -> Step<Result<(), String>> {
    for operation in &plan.operations {
        if operation.action != StackAction::Create {
            continue;
        }
        let found = match c
            .orchestrator
            .find(conn, &operation.stack_name, trust_of(&l.cluster))
        {
            Ok(f) => f,
            Err(e) => return Ok(Err(orchestrator_error(e)?)),
        };
        let id = match found {
            Some(id) => id,
            None => match c.orchestrator.create(
                conn,
                &l.cluster.project_id,
                trust_of(&l.cluster),
                operation,
            ) {
                Ok(id) => id,
                Err(e) => {
                    let reason = orchestrator_error(e)?;
                    // Refused because a stack of this name appeared since the
                    // lookup: another run of this step made it (stack names
                    // carry the cluster's uuid). It is this cluster's.
                    match c
                        .orchestrator
                        .find(conn, &operation.stack_name, trust_of(&l.cluster))
                    {
                        Ok(Some(id)) => {
                            tracing::info!(cluster = %l.cluster.uuid, stack = %id, "stack made by another run of this create; adopted");
                            id
                        }
                        _ => return Ok(Err(reason)),
                    }
                }
            },
        };
        match &operation.target.nodegroup {
            None => {
                l.cluster.stack_id = Some(id.clone());
                let status = l.cluster.status;
                save(conn, &l.cluster, status)?;
                // Upstream: the default nodegroups live in the cluster stack.
                for g in l.groups.iter_mut().filter(|g| g.is_default) {
                    g.stack_id = Some(id.clone());
                    db(g.save_progress(conn))?;
                }
            }
            Some(ng) => {
                if let Some(g) = l.groups.iter_mut().find(|g| &g.uuid == ng) {
                    g.stack_id = Some(id.clone());
                    db(g.save_progress(conn))?;
                }
            }
        }
    }
    Ok(Ok(()))
}

/// Reads every stack of the cluster and applies the driver's mapping to the
/// rows. `Ok(None)` when a stack is gone.
fn refresh(
    c: &Conductor,
    conn: &mut Conn,
    l: &mut Loaded,
    drv: &LoadedDriver,
) -> Step<Result<StatusUpdate, String>> {
    let mut stacks = Vec::new();
    let mut seen = Vec::new();
    let mut targets: Vec<(Option<String>, String)> = Vec::new();
    if let Some(id) = &l.cluster.stack_id {
        targets.push((None, id.clone()));
    }
    for g in &l.groups {
        if let Some(id) = &g.stack_id {
            if Some(id) != l.cluster.stack_id.as_ref() {
                targets.push((Some(g.uuid.clone()), id.clone()));
            }
        }
    }
    for (target, id) in targets {
        if seen.contains(&id) {
            continue;
        }
        seen.push(id.clone());
        match c.orchestrator.get(conn, &id) {
            Ok(Some(mut snap)) => {
                snap.target = StackTarget { nodegroup: target };
                stacks.push(snap);
            }
            Ok(None) => {
                return Ok(Err(format!(
                    "stack {id} no longer exists in the orchestrator"
                )))
            }
            Err(e) => return Ok(Err(orchestrator_error(e)?)),
        }
    }
    let update = match drv.map_status(&StatusRequest {
        base: request(c, l),
        stacks,
    }) {
        Ok(u) => u,
        Err(e) => return Ok(Err(driver_error(e))),
    };
    Ok(Ok(update))
}

/// A status a driver mapped from a stack, as a row status: one upstream
/// has no name for (a Heat state such as `SUSPEND_COMPLETE`) leaves the row
/// as it is.
fn row_status(s: &str) -> Option<Status> {
    s.parse()
        .map_err(|e| tracing::warn!("driver mapped a stack to {e}; status left unchanged"))
        .ok()
}

/// Writes a StatusUpdate's nodegroup part; the cluster part is the caller's.
/// Never the count: a row's `node_count` is what the last accepted request
/// asked for (see [`finish`]).
fn apply_groups(conn: &mut Conn, l: &mut Loaded, update: &StatusUpdate) -> Step<()> {
    for u in &update.nodegroups {
        let Some(g) = l.groups.iter_mut().find(|g| g.uuid == u.uuid) else {
            continue;
        };
        if let Some(s) = u.status.as_deref().and_then(row_status) {
            g.status = Some(s);
        }
        g.status_reason = u.status_reason.clone().filter(|r| !r.is_empty());
        if let Some(a) = &u.node_addresses {
            g.node_addresses = serde_json::to_string(a).unwrap_or_else(|_| "[]".to_owned());
        }
        db(g.save_progress(conn))?;
    }
    Ok(())
}

fn apply_cluster(conn: &mut Conn, l: &mut Loaded, u: &ClusterUpdate) -> Step<()> {
    let expected = l.cluster.status;
    let c = &mut l.cluster;
    if let Some(s) = u.status.as_deref().and_then(row_status) {
        c.status = s;
    }
    c.status_reason = u.status_reason.clone().filter(|r| !r.is_empty());
    for (field, value) in [
        (&mut c.api_address, &u.api_address),
        (&mut c.coe_version, &u.coe_version),
        (&mut c.container_version, &u.container_version),
        (&mut c.discovery_url, &u.discovery_url),
    ] {
        if value.is_some() {
            *field = value.clone();
        }
    }
    save(conn, c, expected)?;
    Ok(())
}

/// Polls the cluster's stacks until the cluster status is a terminal one of
/// `action` (e.g. `CREATE`), then ends the job.
fn track_cluster(
    c: &Conductor,
    conn: &mut Conn,
    l: &mut Loaded,
    drv: &LoadedDriver,
    action: &str,
    state: RunState,
) -> Step<Outcome> {
    let update = match refresh(c, conn, l, drv)? {
        Ok(u) => u,
        Err(reason) => {
            let failed = format!("{action}_FAILED")
                .parse()
                .unwrap_or(Status::UpdateFailed);
            return Ok(fail(conn, &mut l.cluster, failed, &reason));
        }
    };
    let status = update.cluster.status.clone().unwrap_or_default();
    // Right after an update call a stack may still show its previous
    // terminal status: only a status of this action counts.
    if !status.starts_with(action) {
        return Ok(next_poll(c, state));
    }
    apply_groups(conn, l, &update)?;
    apply_cluster(conn, l, &update.cluster)?;
    if status.ends_with("_IN_PROGRESS") {
        return Ok(next_poll(c, state));
    }
    if status.ends_with("_FAILED") && l.cluster.status_reason.is_none() {
        l.cluster.status_reason = Some(format!("stack {action} failed"));
        let status = l.cluster.status;
        save(conn, &l.cluster, status)?;
    }
    tracing::info!(cluster = %l.cluster.uuid, %status, "operation finished");
    Ok(Outcome::Done)
}

fn cluster_create(
    c: &Conductor,
    conn: &mut Conn,
    uuid: &str,
    state: RunState,
    at: NaiveDateTime,
) -> Step<Outcome> {
    let Some(mut l) = load(conn, uuid)? else {
        return Ok(Outcome::Done);
    };
    if l.cluster.status != Status::CreateInProgress {
        return Ok(Outcome::Done);
    }
    let minutes = l.cluster.create_timeout.filter(|m| *m > 0).unwrap_or(60);
    if elapsed(l.cluster.created_at, at) > chrono::TimeDelta::minutes(minutes.into()) {
        let reason = format!(
            "Timed out after {minutes} minutes (create_timeout) waiting for the cluster's stacks to be created"
        );
        return Ok(fail(conn, &mut l.cluster, Status::CreateFailed, &reason));
    }
    let drv = match driver(c, &l.cluster) {
        Ok(d) => d,
        Err(reason) => return Ok(fail(conn, &mut l.cluster, Status::CreateFailed, &reason)),
    };
    if l.cluster.stack_id.is_none() {
        // Upstream generates the certificates before the stack: nodes fetch
        // the CA as they boot. Idempotent, so a resumed create reuses them.
        let name = if l.cluster.name.is_empty() {
            l.cluster.uuid.clone()
        } else {
            l.cluster.name.clone()
        };
        let tls = !l.template.tls_disabled;
        match c
            .state
            .certs
            .ensure_cluster(conn, &l.cluster.uuid, &name, tls)
        {
            Ok(()) => {}
            Err(crate::certs::CertError::Db(e)) => {
                return Err(Outcome::Retry(format!("database: {e}")))
            }
            Err(e) => {
                let reason = format!("cluster certificates: {e}");
                return Ok(fail(conn, &mut l.cluster, Status::CreateFailed, &reason));
            }
        }
        let req = match node_request(c, conn, &l) {
            Ok(r) => r,
            Err(reason) => return Ok(fail(conn, &mut l.cluster, Status::CreateFailed, &reason)),
        };
        let plan = match drv.create_cluster(&req) {
            Ok(p) => p,
            Err(e) => {
                return Ok(fail(
                    conn,
                    &mut l.cluster,
                    Status::CreateFailed,
                    &driver_error(e),
                ))
            }
        };
        if let Err(reason) = create_stacks(c, conn, &mut l, &plan)? {
            return Ok(fail(conn, &mut l.cluster, Status::CreateFailed, &reason));
        }
        return Ok(poll(state, Duration::from_secs(1)));
    }
    track_cluster(c, conn, &mut l, &drv, "CREATE", state)
}

/// Whether a job of the cluster queued after `run` decides its final
/// status (`nodegroup`: one about that nodegroup). A nodegroup PATCH does
/// not: its job changes no stack and writes no status.
fn superseded(conn: &mut Conn, run: &Run, nodegroup: Option<&str>) -> diesel::QueryResult<bool> {
    Ok(Job::newer_of_cluster(conn, run.job, run.cluster)?
        .iter()
        .filter_map(|j| Operation::of(j).ok())
        .filter(|op| !matches!(op, Operation::NodegroupUpdate { .. }))
        .any(|op| nodegroup.is_none() || op.nodegroup() == nodegroup))
}

/// The start of an update-family job (update, resize, upgrade, rotations,
/// nodegroup create and delete). `false` ends it: the cluster is gone or
/// being deleted, and the delete supersedes every earlier request. A
/// cluster left `*_COMPLETE` by the operation before this one (a create
/// that finished while a nodegroup create waited behind it) goes
/// `UPDATE_IN_PROGRESS` again; a failed one keeps its status when
/// `keep_failed` (a nodegroup operation does not make a failed cluster look
/// healthy).
fn begin_update(conn: &mut Conn, l: &mut Loaded, keep_failed: bool) -> Step<bool> {
    let status = l.cluster.status;
    if status.is_delete() {
        return Ok(false);
    }
    if status == Status::UpdateInProgress
        || status == Status::CreateInProgress
        || keep_failed && status.is_failed()
    {
        return Ok(true);
    }
    l.cluster.status = Status::UpdateInProgress;
    l.cluster.status_reason = None;
    save(conn, &l.cluster, status)?;
    Ok(true)
}

/// How an update-family operation ends.
struct Finish {
    /// The nodegroup the operation was about, with the status it ends in
    /// (`None`: the driver's mapping of its stack decides).
    group: Option<(String, Status, Option<String>)>,
    /// The nodegroup count to put back if the operation failed.
    restore: Option<(String, i32)>,
    failure: Option<String>,
}

/// Ends an update-family operation. The last accepted request of a cluster
/// wins: every 202 is carried out or superseded by a later one, never
/// dropped. So, in one write transaction with the cluster row locked (the
/// API locks it too before it accepts a request), this run writes the
/// cluster's final status only when no newer job of the cluster is queued;
/// otherwise that job runs next, from the rows, and writes it. The
/// operation's own nodegroup status is written unless a newer job names
/// that nodegroup. Counts are never read back from the stacks: a row's
/// `node_count` is what the last accepted request asked for, and only a
/// failure that nothing superseded restores the count from before it.
fn finish(
    c: &Conductor,
    conn: &mut Conn,
    run: &Run,
    drv: Option<&LoadedDriver>,
    f: Finish,
) -> Step<Outcome> {
    let uuid = run.cluster;
    // The driver's view of every stack, read before the transaction:
    // orchestrator calls may be slow. A stack that cannot be read only
    // leaves the other groups' statuses as they are.
    let mapped = match (load(conn, uuid)?, drv) {
        (Some(mut l), Some(drv)) => match refresh(c, conn, &mut l, drv) {
            Ok(Ok(update)) => Some(update),
            Ok(Err(reason)) | Err(Outcome::Retry(reason)) => {
                tracing::warn!(cluster = %uuid, "cannot map the stacks at the end of an operation: {reason}");
                None
            }
            Err(_) => None,
        },
        _ => None,
    };
    if let Some(reason) = &f.failure {
        tracing::warn!(cluster = %uuid, "{reason}");
    }
    let written = crate::db::write_transaction(conn, |conn| -> diesel::QueryResult<bool> {
        crate::db::lock_row(conn, "cluster", uuid)?;
        let Some(mut cluster) = Cluster::find_by_uuid(conn, uuid).optional()? else {
            return Ok(false);
        };
        if cluster.status.is_delete() {
            return Ok(false);
        }
        if let Some((g, status, reason)) = &f.group {
            if !superseded(conn, run, Some(g))? {
                if let Some(mut row) = NodeGroup::find_by_uuid(conn, g).optional()? {
                    row.status = Some(*status);
                    row.status_reason = reason.clone();
                    if let Some(u) = mapped
                        .as_ref()
                        .and_then(|m| m.nodegroups.iter().find(|u| &u.uuid == g))
                    {
                        if let Some(a) = &u.node_addresses {
                            row.node_addresses =
                                serde_json::to_string(a).unwrap_or_else(|_| "[]".to_owned());
                        }
                    }
                    row.save_progress(conn)?;
                }
            }
        }
        if superseded(conn, run, None)? {
            return Ok(false);
        }
        if let Some(update) = &mapped {
            for u in &update.nodegroups {
                if f.group.as_ref().is_some_and(|(g, ..)| g == &u.uuid) {
                    continue;
                }
                let Some(mut row) = NodeGroup::find_by_uuid(conn, &u.uuid).optional()? else {
                    continue;
                };
                if let Some(s) = u.status.as_deref().and_then(row_status) {
                    row.status = Some(s);
                }
                row.status_reason = u.status_reason.clone().filter(|r| !r.is_empty());
                if let Some(a) = &u.node_addresses {
                    row.node_addresses =
                        serde_json::to_string(a).unwrap_or_else(|_| "[]".to_owned());
                }
                row.save_progress(conn)?;
            }
            let u = &update.cluster;
            for (field, value) in [
                (&mut cluster.api_address, &u.api_address),
                (&mut cluster.coe_version, &u.coe_version),
                (&mut cluster.container_version, &u.container_version),
                (&mut cluster.discovery_url, &u.discovery_url),
            ] {
                if value.is_some() {
                    *field = value.clone();
                }
            }
        }
        if let (Some(_), Some((g, n))) = (&f.failure, &f.restore) {
            NodeGroup::set_node_count(conn, g, *n)?;
        }
        // A nodegroup operation on a failed cluster leaves its status.
        if cluster.status == Status::UpdateInProgress {
            cluster.status = if f.failure.is_some() {
                Status::UpdateFailed
            } else {
                Status::UpdateComplete
            };
            cluster.status_reason = f.failure.clone();
        }
        cluster.update(conn)?;
        Ok(true)
    });
    // A credential rotation that updated the stacks: the credentials it
    // replaced are no longer in any plan.
    if f.failure.is_none() && matches!(run.op, Operation::RotateCredential) {
        release_app_credentials(c, conn, uuid, crate::certs::APP_CREDENTIAL_RETIRED)?;
    }
    if db(written)? {
        tracing::info!(cluster = %uuid, failed = f.failure.is_some(), "operation finished");
    } else {
        tracing::info!(cluster = %uuid, "operation finished; a newer request decides the cluster's status");
    }
    Ok(Outcome::Done)
}

/// Ends the run waiting when one of `plan`'s stacks is busy with an action
/// (a run of this job that died after it issued its updates, or an earlier
/// operation's stack still settling): the update is issued again once it
/// has finished, which changes nothing a second time.
fn wait_for_busy_stacks(
    c: &Conductor,
    conn: &mut Conn,
    plan: &StackPlan,
    state: &RunState,
) -> Step<Result<(), String>> {
    for id in plan.operations.iter().filter_map(|o| o.stack_id.as_ref()) {
        match c.orchestrator.get(conn, id) {
            Ok(Some(s)) if s.status.ends_with("_IN_PROGRESS") => {
                tracing::info!(stack = %id, status = %s.status, "stack busy; the update waits for it");
                return Err(next_poll(c, state.clone()));
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                return Ok(Err(format!(
                    "stack {id} no longer exists in the orchestrator"
                )))
            }
            Err(e) => return Ok(Err(orchestrator_error(e)?)),
        }
    }
    Ok(Ok(()))
}

/// The labels of `labels` that `plan` passes to its stacks as parameters of
/// the same name and value: what an upgrade applied.
fn applied_labels(
    labels: &std::collections::BTreeMap<String, String>,
    plan: &StackPlan,
) -> std::collections::BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(name, value)| {
            plan.operations.iter().any(|o| {
                o.parameters
                    .get(name.as_str())
                    .and_then(Value::as_str)
                    .is_some_and(|p| p == value.as_str())
            })
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Polls the stacks an update issued: `Ok(None)` while one of them has not
/// reached a terminal status of `action`, else the failure (if any).
fn settled(
    c: &Conductor,
    conn: &mut Conn,
    ids: &[String],
    action: &str,
) -> Step<Option<Option<String>>> {
    let mut failures = Vec::new();
    for id in ids {
        match c.orchestrator.get(conn, id) {
            Ok(Some(s)) => {
                // Right after an update call a stack may still show its
                // previous terminal status: only a status of this action
                // counts.
                if !s.status.starts_with(action) || s.status.ends_with("_IN_PROGRESS") {
                    return Ok(None);
                }
                if s.status.ends_with("_FAILED") {
                    let reason = if s.status_reason.is_empty() {
                        format!("stack {action} failed")
                    } else {
                        s.status_reason
                    };
                    failures.push(reason);
                }
            }
            Ok(None) => failures.push(format!("stack {id} no longer exists in the orchestrator")),
            Err(e) => failures.push(orchestrator_error(e)?),
        }
    }
    Ok(Some((!failures.is_empty()).then(|| failures.join("; "))))
}

fn cluster_update(
    c: &Conductor,
    conn: &mut Conn,
    run: &Run,
    mut state: RunState,
    at: NaiveDateTime,
) -> Step<Outcome> {
    let uuid = run.cluster;
    let Some(mut l) = load(conn, uuid)? else {
        return Ok(Outcome::Done);
    };
    if !begin_update(conn, &mut l, false)? {
        return Ok(Outcome::Done);
    }
    if l.cluster.status == Status::CreateInProgress {
        return Ok(next_poll(c, state));
    }
    // A resize or a count change that fails puts the count back (upstream:
    // "NG count restored"), unless a later request superseded it.
    let restore = match run.op {
        Operation::ClusterUpdate {
            nodegroup,
            previous_node_count,
            ..
        }
        | Operation::ClusterResize {
            nodegroup,
            previous_node_count,
            ..
        } => Some((nodegroup.clone(), *previous_node_count)),
        _ => None,
    };
    let failed = |reason: String| Finish {
        group: restore
            .as_ref()
            .map(|(g, _)| (g.clone(), Status::UpdateFailed, Some(reason.clone()))),
        restore: restore.clone(),
        failure: Some(reason),
    };
    if overdue(&state, at, c.settings.operation_timeout) {
        let reason = format!(
            "Timed out after {} minutes waiting for the {} to finish",
            c.settings.operation_timeout.as_secs() / 60,
            run.op.kind()
        );
        let drv = driver(c, &l.cluster).ok();
        return finish(c, conn, run, drv.as_deref(), failed(reason));
    }
    let drv = match driver(c, &l.cluster) {
        Ok(d) => d,
        Err(reason) => return finish(c, conn, run, None, failed(reason)),
    };
    if !state.tracking {
        let base = match node_request(c, conn, &l) {
            Ok(r) => r,
            Err(reason) => return finish(c, conn, run, Some(&drv), failed(reason)),
        };
        let mut carried = std::collections::BTreeMap::new();
        let plan = match run.op {
            // A rotation is an update whose host context changed (new
            // credential, new CA id); the driver declared it takes part.
            // Counts come from the rows: every group keeps its size.
            Operation::ClusterResize {
                nodegroup: ng,
                nodes_to_remove,
                ..
            } => {
                // The size the last accepted request asked for: a resize
                // accepted while this one waited is carried out here too.
                let Some(node_count) = l
                    .groups
                    .iter()
                    .find(|g| &g.uuid == ng)
                    .map(|g| i64::from(g.node_count))
                else {
                    // The nodegroup was deleted since: nothing to resize.
                    return finish(
                        c,
                        conn,
                        run,
                        Some(&drv),
                        Finish {
                            group: None,
                            restore: None,
                            failure: None,
                        },
                    );
                };
                drv.call::<_, StackPlan>(
                    op::RESIZE_CLUSTER,
                    &ResizeRequest {
                        base,
                        nodegroup: ng.clone(),
                        node_count,
                        nodes_to_remove: nodes_to_remove.clone(),
                    },
                )
            }
            Operation::ClusterUpgrade {
                cluster_template: tmpl,
                nodegroup,
                max_batch_size,
            } => {
                let new_template = db(ClusterTemplate::find_by_uuid(conn, tmpl).optional())?;
                let Some(new_template) = new_template else {
                    let reason = format!("cluster template {tmpl} no longer exists");
                    return finish(c, conn, run, Some(&drv), failed(reason));
                };
                // What the upgrade moves on from (a node generation): the
                // nodegroup stack's current parameters.
                let mut base = base;
                let stack = l
                    .groups
                    .iter()
                    .find(|g| &g.uuid == nodegroup)
                    .and_then(|g| g.stack_id.clone().filter(|_| !g.is_default))
                    .or_else(|| l.cluster.stack_id.clone());
                if let Some(id) = stack {
                    match c.orchestrator.get(conn, &id) {
                        Ok(Some(s)) => {
                            base.context.extra.insert(
                                NODEGROUP_STACK_PARAMETERS.into(),
                                Value::Object(s.parameters),
                            );
                        }
                        Ok(None) => {
                            let reason = format!("stack {id} no longer exists in the orchestrator");
                            return finish(c, conn, run, Some(&drv), failed(reason));
                        }
                        Err(e) => {
                            let reason = orchestrator_error(e)?;
                            return finish(c, conn, run, Some(&drv), failed(reason));
                        }
                    }
                }
                let planned = drv.call::<_, StackPlan>(
                    op::UPGRADE_CLUSTER,
                    &UpgradeRequest {
                        base,
                        new_template: domain::template_payload(&c.state, &new_template),
                        nodegroup: nodegroup.clone(),
                        max_batch_size: *max_batch_size,
                    },
                );
                if let Ok(plan) = &planned {
                    carried = applied_labels(&domain::template_labels(&new_template), plan);
                }
                planned
            }
            // A rotation is an update whose host context changed (new
            // credential, new CA id); the driver declared it takes part.
            // Counts come from the rows: every group keeps its size.
            _ => drv.call::<_, StackPlan>(op::UPDATE_CLUSTER, &base),
        };
        let plan = match plan {
            Ok(p) => p,
            Err(e) => return finish(c, conn, run, Some(&drv), failed(driver_error(e))),
        };
        match wait_for_busy_stacks(c, conn, &plan, &state) {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return finish(c, conn, run, Some(&drv), failed(reason)),
            Err(outcome) => return Ok(outcome),
        }
        let mut issued = Vec::new();
        for operation in &plan.operations {
            let Some(id) = &operation.stack_id else {
                continue;
            };
            if let Err(e) = c
                .orchestrator
                .update(conn, id, trust_of(&l.cluster), operation)
            {
                let reason = orchestrator_error(e)?;
                // Busy since the check above (another run of this job whose
                // lease lapsed, on a loaded machine): wait, then issue again.
                if let Ok(Some(s)) = c.orchestrator.get(conn, id) {
                    if s.status.ends_with("_IN_PROGRESS") {
                        tracing::info!(stack = %id, "stack became busy; the update waits for it: {reason}");
                        return Ok(next_poll(c, state));
                    }
                }
                return finish(c, conn, run, Some(&drv), failed(reason));
            }
            issued.push(id.clone());
        }
        state.stacks = issued;
        state.carried_labels = carried;
        state.tracking = true;
        state.polls = 0;
        return Ok(poll(state, Duration::from_secs(1)));
    }
    let Some(failure) = settled(c, conn, &state.stacks, "UPDATE")? else {
        return Ok(next_poll(c, state));
    };
    if let (
        None,
        Operation::ClusterUpgrade {
            cluster_template: tmpl,
            nodegroup,
            ..
        },
    ) = (&failure, run.op)
    {
        // The upgraded nodegroup's nodes run what the upgrade applied: its
        // labels say so, and the next upgrade starts from them.
        if let Some(group) = l.groups.iter().find(|g| &g.uuid == nodegroup) {
            let mut labels = domain::labels_of(&group.labels);
            labels.extend(state.carried_labels.clone());
            db(NodeGroup::set_labels(
                conn,
                nodegroup,
                &domain::labels_text(&labels),
            ))?;
        }
        // The cluster now runs the new template, with the labels the
        // upgrade applied (kube_tag for kubernetes: the driver's plan says
        // which, the host knows no COE).
        {
            if let Some(new_template) = db(ClusterTemplate::find_by_uuid(conn, tmpl).optional())? {
                let mut labels = domain::labels_of(&l.cluster.labels);
                labels.extend(state.carried_labels.clone());
                l.cluster.labels = domain::labels_text(&labels);
                l.cluster.cluster_template_id = new_template.uuid.clone();
                let status = l.cluster.status;
                save(conn, &l.cluster, status)?;
            }
        }
    }
    let f = match failure {
        Some(reason) => failed(reason),
        None => Finish {
            group: None,
            restore: None,
            failure: None,
        },
    };
    finish(c, conn, run, Some(&drv), f)
}

fn cluster_delete(
    c: &Conductor,
    conn: &mut Conn,
    uuid: &str,
    mut state: RunState,
    at: NaiveDateTime,
) -> Step<Outcome> {
    let Some(mut l) = load(conn, uuid)? else {
        return Ok(Outcome::Done);
    };
    if l.cluster.status != Status::DeleteInProgress {
        return Ok(Outcome::Done);
    }
    if overdue(&state, at, c.settings.operation_timeout) {
        let reason = format!(
            "Timed out after {} minutes waiting for the cluster's stacks to be deleted",
            c.settings.operation_timeout.as_secs() / 60
        );
        return Ok(fail(conn, &mut l.cluster, Status::DeleteFailed, &reason));
    }
    // Without its driver a cluster can still be deleted: the host knows
    // every stack from the rows (the nodegroups' own, then the cluster's).
    let drv = driver(c, &l.cluster);
    if !state.tracking {
        // A create interrupted before it recorded its stack: find it by name.
        if l.cluster.stack_id.is_none() {
            let name = magnum_driver_abi::convention::stack_name(&l.cluster.name, &l.cluster.uuid);
            match c.orchestrator.find(conn, &name, trust_of(&l.cluster)) {
                Ok(found) => l.cluster.stack_id = found,
                Err(e) => {
                    let reason = orchestrator_error(e)?;
                    return Ok(fail(conn, &mut l.cluster, Status::DeleteFailed, &reason));
                }
            }
        }
        let ids: Vec<String> = match &drv {
            Ok(drv) => match drv.call::<_, StackPlan>(op::DELETE_CLUSTER, &request(c, &l)) {
                Ok(plan) => plan
                    .operations
                    .iter()
                    .filter_map(|o| o.stack_id.clone())
                    .collect(),
                Err(e) => {
                    return Ok(fail(
                        conn,
                        &mut l.cluster,
                        Status::DeleteFailed,
                        &driver_error(e),
                    ))
                }
            },
            Err(reason) => {
                tracing::warn!(cluster = %uuid, "{reason}; deleting the stacks the cluster's rows name");
                let mut ids: Vec<String> = l
                    .groups
                    .iter()
                    .filter(|g| g.stack_id != l.cluster.stack_id)
                    .filter_map(|g| g.stack_id.clone())
                    .collect();
                ids.extend(l.cluster.stack_id.clone());
                ids.dedup();
                ids
            }
        };
        state.stacks = ids;
        state.tracking = true;
        state.step = 0;
        state.issued = false;
    }
    let ids = state.stacks.clone();
    let step = state.step;
    if let Some(id) = ids.get(step) {
        if !state.issued {
            if let Err(e) = c.orchestrator.delete(conn, id) {
                let reason = orchestrator_error(e)?;
                return Ok(fail(conn, &mut l.cluster, Status::DeleteFailed, &reason));
            }
            state.issued = true;
            return Ok(poll(state, Duration::from_secs(1)));
        }
        match c.orchestrator.get(conn, id) {
            Ok(None) => {}
            Ok(Some(s)) if s.status == "DELETE_COMPLETE" => {}
            Ok(Some(s)) if s.status == "DELETE_FAILED" => {
                let reason = format!("stack {id}: {}", s.status_reason);
                return Ok(fail(conn, &mut l.cluster, Status::DeleteFailed, &reason));
            }
            Ok(Some(_)) => return Ok(next_poll(c, state)),
            Err(e) => {
                let reason = orchestrator_error(e)?;
                return Ok(fail(conn, &mut l.cluster, Status::DeleteFailed, &reason));
            }
        }
        state.step = step + 1;
        state.issued = false;
        state.polls = 0;
        return Ok(poll(state, Duration::from_millis(10)));
    }
    // Every stack is gone: the trust goes, then the rows (nodegroups and
    // certificates cascade). In this order a crash in between deletes the
    // trust again on the rerun (a 404 is fine) rather than leaking it.
    release_trust(c, &l.cluster);
    for kind in [
        crate::certs::APP_CREDENTIAL,
        crate::certs::APP_CREDENTIAL_RETIRED,
    ] {
        release_app_credentials(c, conn, &l.cluster.uuid, kind)?;
    }
    db(Cluster::delete(conn, &l.cluster.uuid).or_else(|e| match e {
        diesel::result::Error::NotFound => Ok(()),
        e => Err(e),
    }))?;
    tracing::info!(cluster = %uuid, "cluster deleted");
    Ok(Outcome::Done)
}

fn nodegroup_op(
    c: &Conductor,
    conn: &mut Conn,
    run: &Run,
    mut state: RunState,
    at: NaiveDateTime,
) -> Step<Outcome> {
    let uuid = run.cluster;
    let Some(mut l) = load(conn, uuid)? else {
        return Ok(Outcome::Done);
    };
    let ng_uuid = run.op.nodegroup().unwrap_or_default().to_owned();
    let Some(idx) = l.groups.iter().position(|g| g.uuid == ng_uuid) else {
        return Ok(Outcome::Done);
    };
    let creating = matches!(run.op, Operation::NodegroupCreate { .. });
    let failed_status = if creating {
        Status::CreateFailed
    } else {
        Status::DeleteFailed
    };
    let failed = |name: &str, reason: String| Finish {
        group: Some((ng_uuid.clone(), failed_status, Some(reason.clone()))),
        restore: None,
        failure: Some(format!("{name} failed: {reason}")),
    };
    let name = l.groups[idx].name.clone();
    if !begin_update(conn, &mut l, true)? {
        return Ok(Outcome::Done);
    }
    if l.cluster.status == Status::CreateInProgress {
        // Built once the cluster is: it joins the cluster's network.
        return Ok(next_poll(c, state));
    }
    if l.cluster.status.is_failed() && l.cluster.stack_id.is_none() {
        let reason = format!("cluster {} is {}", l.cluster.uuid, l.cluster.status);
        return finish(c, conn, run, None, failed(&name, reason));
    }
    if overdue(&state, at, c.settings.operation_timeout) {
        let reason = "Timed out waiting for the nodegroup stack".to_owned();
        let drv = driver(c, &l.cluster).ok();
        return finish(c, conn, run, drv.as_deref(), failed(&name, reason));
    }
    let drv = match driver(c, &l.cluster) {
        Ok(d) => d,
        Err(reason) => return finish(c, conn, run, None, failed(&name, reason)),
    };
    if !state.tracking {
        let mut base = match node_request(c, conn, &l) {
            Ok(r) => r,
            Err(reason) => return finish(c, conn, run, Some(&drv), failed(&name, reason)),
        };
        // A new nodegroup's stack joins what the cluster stack made (its
        // network, subnet, security group): the driver reads their ids
        // from the cluster stack's outputs, as upstream's drivers read the
        // stack in get_nodegroup_extra_params.
        if creating {
            if let Some(id) = l.cluster.stack_id.as_deref() {
                match c.orchestrator.get(conn, id) {
                    Ok(Some(stack)) => {
                        base.context
                            .extra
                            .insert(CLUSTER_STACK_OUTPUTS.into(), Value::Object(stack.outputs));
                    }
                    // Gone: the driver's plan says what it can do without.
                    Ok(None) => {}
                    Err(e) => {
                        let reason = orchestrator_error(e)?;
                        return finish(c, conn, run, Some(&drv), failed(&name, reason));
                    }
                }
            }
        }
        // From the row: a resize accepted before this create ran is built
        // in at once.
        let req = NodeGroupRequest {
            base,
            nodegroup: domain::nodegroup_payload(&l.groups[idx]),
        };
        let operation = if creating {
            op::CREATE_NODEGROUP
        } else {
            op::DELETE_NODEGROUP
        };
        let plan = match drv.call::<_, StackPlan>(operation, &req) {
            Ok(p) => p,
            Err(e) => {
                return finish(c, conn, run, Some(&drv), failed(&name, driver_error(e)));
            }
        };
        if creating {
            if let Err(reason) = create_stacks(c, conn, &mut l, &plan)? {
                return finish(c, conn, run, Some(&drv), failed(&name, reason));
            }
        } else {
            for operation in &plan.operations {
                if let Some(id) = &operation.stack_id {
                    if let Err(e) = c.orchestrator.delete(conn, id) {
                        let reason = orchestrator_error(e)?;
                        return finish(c, conn, run, Some(&drv), failed(&name, reason));
                    }
                }
            }
        }
        state.tracking = true;
        state.polls = 0;
        return Ok(poll(state, Duration::from_secs(1)));
    }
    let ok = |group_status: Option<Status>| Finish {
        group: group_status.map(|s| (ng_uuid.clone(), s, None)),
        restore: None,
        failure: None,
    };
    let Some(stack_id) = l.groups[idx].stack_id.clone() else {
        if creating {
            let reason = "the nodegroup stack was never created".to_owned();
            return finish(c, conn, run, Some(&drv), failed(&name, reason));
        }
        db(NodeGroup::delete(conn, &ng_uuid))?;
        return finish(c, conn, run, Some(&drv), ok(None));
    };
    let snapshot = match c.orchestrator.get(conn, &stack_id) {
        Ok(s) => s,
        Err(e) => {
            let reason = orchestrator_error(e)?;
            return finish(c, conn, run, Some(&drv), failed(&name, reason));
        }
    };
    if !creating {
        return match snapshot {
            Some(s) if s.status == "DELETE_FAILED" => {
                finish(c, conn, run, Some(&drv), failed(&name, s.status_reason))
            }
            Some(s) if s.status != "DELETE_COMPLETE" => Ok(next_poll(c, state)),
            _ => {
                db(NodeGroup::delete(conn, &ng_uuid))?;
                finish(c, conn, run, Some(&drv), ok(None))
            }
        };
    }
    let Some(s) = snapshot else {
        let reason = format!("stack {stack_id} no longer exists in the orchestrator");
        return finish(c, conn, run, Some(&drv), failed(&name, reason));
    };
    if !s.status.starts_with("CREATE") || s.status.ends_with("_IN_PROGRESS") {
        return Ok(next_poll(c, state));
    }
    if s.status.ends_with("_COMPLETE") {
        finish(c, conn, run, Some(&drv), ok(Some(Status::CreateComplete)))
    } else {
        let reason = if s.status_reason.is_empty() {
            "stack create failed".to_owned()
        } else {
            s.status_reason
        };
        finish(c, conn, run, Some(&drv), failed(&name, reason))
    }
}
