//! The `local` orchestrator's engine: a simulated cloud that runs the
//! drivers' stack operations as Heat would, in the database.
//!
//! An operation is evaluated at once ([`magnum_hot`]): an invalid template
//! or parameter fails the stack immediately, with Heat's message. What the
//! evaluation creates is stored with the times it becomes ready; the status
//! then only *advances with time*: every method takes `now` and works out
//! the status from the stored timeline (servers boot in
//! [`LocalCloudConfig::boot_seconds`], dependents start when what they use
//! is ready). Nothing runs in the background and nothing is lost on a
//! restart: each call reads and writes the `local_stack` row (and the
//! address pools in `local_ipam`), so any process sharing the database sees
//! the same stacks.
//!
//! Statuses and reasons are Heat's: `CREATE_IN_PROGRESS` ("Stack CREATE
//! started") until every resource is ready, then `CREATE_COMPLETE` ("Stack
//! CREATE completed successfully") with the outputs; the same for `UPDATE`
//! and `DELETE`. A stack whose delete completed is gone: the next call gets
//! [`LocalError::NotFound`], as Heat's 404.

use std::net::Ipv4Addr;

use chrono::NaiveDateTime;
use diesel::Connection;
use magnum_driver_abi::{StackAction, StackOperation, StackSnapshot, StackTarget};
use magnum_hot::{self as hot, Action, Evaluation, Failure, HotError, StackRequest, StackState};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::packed;
use super::sim::{self, Ipam, Pool, SimConfig, SimProvider};
use crate::db::models::{LocalFile, LocalIpam, LocalStack, NewLocalStack};
use crate::db::DbConnection;

/// How the simulated cloud behaves. Fault injection is read when an
/// operation starts and recorded with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalCloudConfig {
    /// Seconds a server takes to boot.
    pub boot_seconds: f64,
    /// Seconds a stack takes to delete.
    pub delete_seconds: f64,
    /// Resources of this type fail (`Resource CREATE failed: <type> <name>:
    /// injected fault`), on create, update and delete.
    pub fail_resource_type: Option<String>,
    /// Each stack's servers after the first N fail to create.
    pub fail_after_servers: Option<u32>,
    /// Operations never finish (until their timeout, if any).
    pub never_finish: bool,
    /// `"master"` or `"worker"`: in each stack operation, the first new
    /// server of that role (its metadata's `nodegroup_role`) signals its
    /// bootstrap wait condition FAILURE, naming itself, so the stack fails
    /// as Heat's does when a node's bootstrap fails.
    pub fail_bootstrap_role: Option<String>,
    /// The pool floating IPs come from (inside 127.0.0.0/8).
    pub floating_ip_cidr: String,
    /// The CIDR of a network or subnet the cloud has but no stack created
    /// (e.g. a cluster template's `fixed_network`); inside 127.0.0.0/8.
    pub default_subnet_cidr: String,
    /// Where the subnets stacks create are carved from: a template's CIDR
    /// (e.g. `fixed_subnet_cidr` 10.0.0.0/24) gives the prefix length and
    /// the host bits, this pool the network bits ([`sim::local_cidr`]).
    pub subnet_pool_cidr: String,
    /// The longest wait between two polls of one of this cloud's stacks.
    /// Unset: a sixth of `boot_seconds`, between 50 ms and 1 s, so that a
    /// cluster shows complete within that much of its last node booting
    /// (with the conductor's own backoff, 1, 2, 4, 8 s, a 3 s boot showed
    /// as 8 s). Polling this cloud is one database read.
    pub poll_cap_ms: Option<u64>,
}

impl LocalCloudConfig {
    /// See [`Self::poll_cap_ms`].
    pub fn poll_cap(&self) -> std::time::Duration {
        let ms = self.poll_cap_ms.unwrap_or_else(|| {
            let sixth = (self.boot_seconds.max(0.0) * 1000.0 / 6.0) as u64;
            sixth.clamp(50, 1000)
        });
        std::time::Duration::from_millis(ms.max(1))
    }
}

impl LocalCloudConfig {
    /// Every pool is an IPv4 CIDR inside 127.0.0.0/8, and none overlaps
    /// another, so what the cloud hands out never leads off the machine; a
    /// bootstrap fault names a node role the templates have.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(role) = &self.fail_bootstrap_role {
            if !sim::BOOTSTRAP_ROLES.contains(&role.as_str()) {
                return Err(format!(
                    "[local] fail_bootstrap_role = \"{role}\": must be one of {}",
                    sim::BOOTSTRAP_ROLES.join(", ")
                ));
            }
        }
        let pools = [
            ("floating_ip_cidr", &self.floating_ip_cidr),
            ("default_subnet_cidr", &self.default_subnet_cidr),
            ("subnet_pool_cidr", &self.subnet_pool_cidr),
        ];
        let mut ranges = Vec::new();
        for (key, cidr) in pools {
            let invalid = |why: String| format!("[local] {key} = \"{cidr}\": {why}");
            if !sim::on_loopback(cidr).map_err(invalid)? {
                return Err(invalid(
                    "must lie inside 127.0.0.0/8, so that simulated addresses stay on this machine"
                        .to_owned(),
                ));
            }
            let (network, length) = sim::parse_cidr(cidr).map_err(invalid)?;
            let end = u64::from(network) + (1u64 << (32 - length)) - 1;
            ranges.push((key, u64::from(network), end));
        }
        for (i, (a, a_start, a_end)) in ranges.iter().enumerate() {
            for (b, b_start, b_end) in &ranges[i + 1..] {
                if a_start <= b_end && b_start <= a_end {
                    return Err(format!("[local] {a} and {b} overlap"));
                }
            }
        }
        Ok(())
    }
}

impl Default for LocalCloudConfig {
    fn default() -> Self {
        let sim = SimConfig::default();
        Self {
            boot_seconds: 3.0,
            delete_seconds: 1.0,
            fail_resource_type: None,
            fail_after_servers: None,
            never_finish: false,
            fail_bootstrap_role: None,
            floating_ip_cidr: sim.floating_ip_cidr,
            default_subnet_cidr: sim.default_subnet_cidr,
            subnet_pool_cidr: sim.subnet_pool_cidr,
            poll_cap_ms: None,
        }
    }
}

fn seconds_to_ms(seconds: f64) -> i64 {
    if seconds.is_finite() && seconds > 0.0 {
        (seconds * 1000.0).round() as i64
    } else {
        0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// Heat's 404.
    #[error("{0}")]
    NotFound(String),
    /// Heat's 409: a stack of that name exists, or an action is in progress.
    #[error("{0}")]
    Conflict(String),
    /// An operation this engine cannot run (e.g. a create given as update).
    #[error("{0}")]
    Invalid(String),
    /// The stored row is unreadable.
    #[error("local stack {id} has a corrupt {what}: {reason}")]
    Corrupt {
        id: String,
        what: &'static str,
        reason: String,
    },
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
}

/// The operation in flight (or last finished) and its timeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct Operation {
    action: Action,
    started_ms: i64,
    /// When every resource is ready; `None`: never (failed or never_finish).
    complete_ms: Option<i64>,
    failure: Option<Failure>,
    /// Heat's stack timeout.
    deadline_ms: Option<i64>,
}

/// The `state` column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct State {
    target: StackTarget,
    /// The key of `files` holding the top-level template.
    template: String,
    environment: Map<String, Value>,
    timeout_mins: Option<i64>,
    resources: StackState,
    operation: Operation,
    /// Outputs of the operation in flight, published when it completes.
    pending_outputs: Option<Map<String, Value>>,
    /// The parameters as stack show gives them.
    shown_parameters: Map<String, Value>,
    servers_created: u64,
    /// The servers this stack's operations created and deleted, in order.
    server_events: Vec<sim::ServerEvent>,
}

/// What a status read needs of [`State`]: the resources are skipped, so
/// polling a stack does not build its whole resource tree.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Head {
    target: StackTarget,
    operation: Operation,
    pending_outputs: Option<Map<String, Value>>,
    shown_parameters: Map<String, Value>,
}

/// A server of a stack, for health reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimServer {
    /// The resource path, e.g. `kube_minions.0.kube_minion`.
    pub resource: String,
    pub id: String,
    pub name: String,
    pub addresses: Vec<String>,
    /// The image it booted from; empty for one booted from a volume, as
    /// Nova shows it.
    pub image: String,
    /// `BUILD` until it has booted, then `ACTIVE`.
    pub status: String,
}

/// The embedded simulated cloud. Cheap to build; holds only its config.
#[derive(Debug, Clone, Default)]
pub struct LocalCloud {
    config: LocalCloudConfig,
}

fn millis(time: NaiveDateTime) -> i64 {
    time.and_utc().timestamp_millis()
}

fn title(action: Action) -> &'static str {
    match action {
        Action::Create => "Create",
        Action::Update => "Update",
        Action::Delete => "Delete",
    }
}

/// `(status, reason)` of `operation` at `now_ms`: whichever of failure,
/// timeout and completion came first, if any has.
fn status_at(operation: &Operation, now_ms: i64) -> (String, String) {
    let action = operation.action.as_str();
    let mut events: Vec<(i64, u8, String, String)> = Vec::new();
    if let Some(failure) = &operation.failure {
        events.push((
            failure.at_ms,
            0,
            format!("{action}_FAILED"),
            failure.reason.clone(),
        ));
    }
    if let Some(deadline) = operation.deadline_ms {
        if operation.complete_ms.is_none_or(|c| c > deadline) {
            let reason = format!("{} timed out", title(operation.action));
            events.push((deadline, 1, format!("{action}_FAILED"), reason));
        }
    }
    if let Some(complete) = operation.complete_ms {
        let reason = format!("Stack {action} completed successfully");
        events.push((complete, 2, format!("{action}_COMPLETE"), reason));
    }
    events
        .into_iter()
        .filter(|(at, ..)| *at <= now_ms)
        .min_by_key(|(at, order, ..)| (*at, *order))
        .map(|(_, _, status, reason)| (status, reason))
        .unwrap_or_else(|| {
            (
                format!("{action}_IN_PROGRESS"),
                format!("Stack {action} started"),
            )
        })
}

/// Why a savepoint was rolled back.
enum Rollback {
    Template(HotError),
    Local(LocalError),
}

impl From<diesel::result::Error> for Rollback {
    fn from(e: diesel::result::Error) -> Self {
        Rollback::Local(LocalError::Db(e))
    }
}

/// [`Ipam`] over the `local_ipam` table. A database error is kept aside
/// (the evaluator only carries messages) and reported after evaluation.
struct DbIpam<'c> {
    conn: &'c mut DbConnection,
    /// The stack whose operation allocates (its delete releases them).
    stack_id: String,
    error: Option<diesel::result::Error>,
}

impl DbIpam<'_> {
    fn keep<T>(&mut self, result: diesel::QueryResult<T>) -> Result<T, String> {
        result.map_err(|e| {
            let message = format!("address pools: {e}");
            self.error.get_or_insert(e);
            message
        })
    }
}

impl Ipam for DbIpam<'_> {
    fn find(&mut self, key: &str) -> Result<Option<Pool>, String> {
        let mut found = LocalIpam::find(self.conn, key);
        if matches!(found, Ok(None)) && !key.is_empty() {
            found = LocalIpam::find_by_name_or_network(self.conn, key);
        }
        Ok(self.keep(found)?.map(|row| Pool {
            id: row.id,
            name: row.name,
            network: row.network,
            cidr: row.cidr,
            stack_id: row.stack_id,
        }))
    }

    fn add(&mut self, pool: Pool) -> Result<(), String> {
        let row = LocalIpam::new(
            &pool.id,
            &pool.name,
            &pool.network,
            pool.stack_id.as_deref(),
            &pool.cidr,
        );
        let inserted = LocalIpam::insert(self.conn, &row);
        self.keep(inserted).map(drop)
    }

    fn remove(&mut self, id: &str) -> Result<(), String> {
        let deleted = LocalIpam::delete(self.conn, id);
        self.keep(deleted).map(drop)
    }

    fn allocate(
        &mut self,
        pool: &Pool,
        first: u32,
        owner: &str,
    ) -> Result<Option<Ipv4Addr>, String> {
        let (network, first, last) = sim::host_range(&pool.cidr, first)?;
        let address = |host: i64| {
            let host = u32::try_from(host).unwrap_or_default();
            Ipv4Addr::from(network.saturating_add(host)).to_string()
        };
        let allocated = LocalIpam::allocate(
            self.conn,
            &pool.id,
            (i64::from(first), i64::from(last)),
            &self.stack_id,
            owner,
            address,
        );
        Ok(self
            .keep(allocated)?
            .and_then(|host| u32::try_from(host).ok())
            .map(|host| Ipv4Addr::from(network.saturating_add(host))))
    }

    fn release(&mut self, owner: &str) -> Result<(), String> {
        let released = LocalIpam::release(self.conn, owner);
        self.keep(released).map(drop)
    }
}

/// `base` with each section of `overlay` merged in key by key (Heat's
/// environment merge for `existing` updates).
fn merge_environment(
    base: &Map<String, Value>,
    overlay: &Map<String, Value>,
) -> Map<String, Value> {
    let mut merged = base.clone();
    for (section, value) in overlay {
        match (merged.get_mut(section), value) {
            (Some(Value::Object(old)), Value::Object(new)) => {
                for (k, v) in new {
                    old.insert(k.clone(), v.clone());
                }
            }
            _ => {
                merged.insert(section.clone(), value.clone());
            }
        }
    }
    merged
}

struct Evaluated {
    evaluation: Evaluation,
    servers_created: u64,
    server_events: Vec<sim::ServerEvent>,
}

/// How many server events a stack keeps (the latest).
const KEPT_SERVER_EVENTS: usize = 1000;

impl LocalCloud {
    pub fn new(config: LocalCloudConfig) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &LocalCloudConfig {
        &self.config
    }

    fn sim_config(&self) -> SimConfig {
        SimConfig {
            boot_ms: seconds_to_ms(self.config.boot_seconds),
            fail_resource_type: self.config.fail_resource_type.clone(),
            fail_after_servers: self.config.fail_after_servers,
            fail_bootstrap_role: self.config.fail_bootstrap_role.clone(),
            floating_ip_cidr: self.config.floating_ip_cidr.clone(),
            default_subnet_cidr: self.config.default_subnet_cidr.clone(),
            subnet_pool_cidr: self.config.subnet_pool_cidr.clone(),
        }
    }

    /// Runs `operation` by its action: create, update (of `stack_id`, else
    /// the stack of that name) or delete (likewise).
    pub fn execute(
        &self,
        conn: &mut DbConnection,
        project_id: &str,
        operation: &StackOperation,
        now: NaiveDateTime,
    ) -> Result<StackSnapshot, LocalError> {
        let id = || -> Result<String, LocalError> {
            match &operation.stack_id {
                Some(id) => Ok(id.clone()),
                None => Err(LocalError::Invalid(format!(
                    "the {:?} of stack {} names no stack id",
                    operation.action, operation.stack_name
                ))),
            }
        };
        match operation.action {
            StackAction::Create => self.create(conn, project_id, operation, now),
            StackAction::Update => self.update(conn, &id()?, operation, now),
            StackAction::Delete => self.delete(conn, &id()?, now),
        }
    }

    /// Creates the stack `operation.stack_name`. The template is evaluated
    /// at once: an invalid one gives a `CREATE_FAILED` stack whose reason
    /// names the parameter or resource. A live stack of the same name is a
    /// [`LocalError::Conflict`], as in Heat.
    pub fn create(
        &self,
        conn: &mut DbConnection,
        project_id: &str,
        operation: &StackOperation,
        now: NaiveDateTime,
    ) -> Result<StackSnapshot, LocalError> {
        if operation.action != StackAction::Create {
            return Err(LocalError::Invalid(format!(
                "create was given a {:?} operation",
                operation.action
            )));
        }
        crate::db::write_transaction(conn, |conn| {
            let name = &operation.stack_name;
            if self.refreshed_by_name(conn, name, now)?.is_some() {
                return Err(LocalError::Conflict(format!(
                    "The Stack ({name}) already exists."
                )));
            }
            let id = uuid::Uuid::new_v4().to_string();
            let now_ms = millis(now);
            let mut state = State {
                target: operation.target.clone(),
                template: operation.template.clone(),
                environment: operation.environment.clone(),
                timeout_mins: operation.timeout_mins,
                ..Default::default()
            };
            let outcome = self.evaluate(
                conn,
                StackRequest {
                    stack_name: name,
                    stack_id: &id,
                    project_id,
                    template: &operation.template,
                    files: &operation.files,
                    environment: &operation.environment,
                    parameters: &operation.parameters,
                    action: Action::Create,
                    start_ms: now_ms,
                },
                None,
                0,
            )?;
            self.record(
                &mut state,
                Action::Create,
                now_ms,
                outcome,
                &operation.parameters,
            );
            let mut row = NewLocalStack::new(project_id, name, "", "{}");
            row.id = id.clone();
            let files_key = LocalFile::store(conn, &to_json(&operation.files))?;
            let secrets = hidden_values(&operation.parameters, &state.shown_parameters);
            row.parameters = redact(to_json(&operation.parameters), &secrets);
            let state = redact(to_json(&state), &secrets);
            let documents = packed::Documents {
                state: &state,
                parameters: &row.parameters,
                outputs: &row.outputs,
            };
            row.state_z = Some(pack_state(conn, &id, documents, &files_key)?);
            // Packed with the state.
            row.parameters = "{}".into();
            row.files_sha256 = Some(files_key);
            let inserted = LocalStack::insert_at(conn, &row, now).map_err(|e| match e {
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ) => LocalError::Conflict(format!("The Stack ({name}) already exists.")),
                other => LocalError::Db(other),
            })?;
            let inserted = open(conn, inserted)?;
            let row = self
                .refresh(conn, inserted, now)?
                .ok_or_else(|| not_found(&id))?;
            snapshot(&row)
        })
    }

    /// The live stack named `name`, if any.
    pub fn find_by_name(
        &self,
        conn: &mut DbConnection,
        name: &str,
        now: NaiveDateTime,
    ) -> Result<Option<StackSnapshot>, LocalError> {
        self.refreshed_by_name(conn, name, now)?
            .map(|row| snapshot(&row))
            .transpose()
    }

    /// The stack's working state as JSON, as stored (not brought to any
    /// time): what tests of what the cloud keeps read.
    pub fn stored_state(&self, conn: &mut DbConnection, id: &str) -> Result<String, LocalError> {
        match LocalStack::find(conn, id) {
            Ok(row) => Ok(open(conn, row)?.state),
            Err(diesel::result::Error::NotFound) => Err(not_found(id)),
            Err(e) => Err(e.into()),
        }
    }

    /// The stack as Heat's stack show gives it at `now`.
    pub fn get(
        &self,
        conn: &mut DbConnection,
        id: &str,
        now: NaiveDateTime,
    ) -> Result<StackSnapshot, LocalError> {
        snapshot(&self.refreshed(conn, id, now)?)
    }

    /// The stack's primitive resources as the cloud made them, by their
    /// dotted paths (`kube_minions.0.kube_minion_eth0`): what tests of a
    /// plan's outcome read (ports, security groups, load balancers).
    pub fn resources(
        &self,
        conn: &mut DbConnection,
        id: &str,
        now: NaiveDateTime,
    ) -> Result<Vec<(String, hot::ResourceState)>, LocalError> {
        let row = self.refreshed(conn, id, now)?;
        let state = read_state(&row)?;
        Ok(state
            .resources
            .primitives()
            .into_iter()
            .map(|(path, r)| (path, r.clone()))
            .collect())
    }

    /// The servers the stack's operations created and deleted (replaced
    /// ones included), in order: what a test of a rolling replacement
    /// reads.
    pub fn server_events(
        &self,
        conn: &mut DbConnection,
        id: &str,
        now: NaiveDateTime,
    ) -> Result<Vec<sim::ServerEvent>, LocalError> {
        let row = self.refreshed(conn, id, now)?;
        Ok(read_state(&row)?.server_events)
    }

    /// The stack's servers and whether each has booted at `now`.
    pub fn servers(
        &self,
        conn: &mut DbConnection,
        id: &str,
        now: NaiveDateTime,
    ) -> Result<Vec<SimServer>, LocalError> {
        let row = self.refreshed(conn, id, now)?;
        let state = read_state(&row)?;
        let now_ms = millis(now);
        Ok(state
            .resources
            .primitives()
            .into_iter()
            .filter(|(_, r)| r.type_name == sim::SERVER)
            .map(|(path, r)| {
                let text = |key: &str| {
                    r.attributes
                        .get(key)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                let addresses = r
                    .attributes
                    .get("networks")
                    .and_then(Value::as_object)
                    .map(|n| {
                        n.values()
                            .filter_map(Value::as_array)
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                SimServer {
                    resource: path,
                    id: r.ref_id.clone(),
                    name: text("name"),
                    addresses,
                    image: r
                        .attributes
                        .get("show")
                        .and_then(|show| show.get("image"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    status: if r.ready_ms <= now_ms {
                        "ACTIVE"
                    } else {
                        "BUILD"
                    }
                    .into(),
                }
            })
            .collect())
    }

    /// Updates the stack. With `existing` (Heat's PATCH) the stored template
    /// and files are reused and the parameters and environment merged over
    /// the stored ones; otherwise they are replaced. ResourceGroups scale to
    /// their new `count`, honouring `removal_policies`; only new or changed
    /// servers boot. An update while an action is in progress is a
    /// [`LocalError::Conflict`]; a failed stack can be updated (a retry).
    pub fn update(
        &self,
        conn: &mut DbConnection,
        id: &str,
        operation: &StackOperation,
        now: NaiveDateTime,
    ) -> Result<StackSnapshot, LocalError> {
        crate::db::write_transaction(conn, |conn| {
            let mut row = self.load(conn, id, now, true)?;
            let mut state = read_state(&row)?;
            if row.status.ends_with("_IN_PROGRESS") {
                return Err(LocalError::Conflict(format!(
                    "Stack {} already has an action ({}) in progress.",
                    row.name,
                    state.operation.action.as_str()
                )));
            }
            let stored_files = read_files(conn, &row)?;
            let stored_parameters: Map<String, Value> =
                parse_column(&row, "parameters", &row.parameters)?;
            let (files, template, environment, parameters) = if operation.existing {
                let mut files = stored_files;
                files.extend(operation.files.clone());
                let mut parameters = stored_parameters;
                parameters.extend(operation.parameters.clone());
                (
                    files,
                    state.template.clone(),
                    merge_environment(&state.environment, &operation.environment),
                    parameters,
                )
            } else {
                (
                    operation.files.clone(),
                    operation.template.clone(),
                    operation.environment.clone(),
                    operation.parameters.clone(),
                )
            };
            let now_ms = millis(now);
            let previous = state.resources.clone();
            let outcome = self.evaluate(
                conn,
                StackRequest {
                    stack_name: &row.name,
                    stack_id: &row.id,
                    project_id: &row.project_id,
                    template: &template,
                    files: &files,
                    environment: &environment,
                    parameters: &parameters,
                    action: Action::Update,
                    start_ms: now_ms,
                },
                Some(&previous),
                state.servers_created,
            )?;
            let mut unused_files = None;
            if outcome.is_ok() {
                let key = LocalFile::store(conn, &to_json(&files))?;
                if row.files_sha256.as_ref() != Some(&key) {
                    unused_files = row.files_sha256.replace(key);
                }
                // A row from before `local_file` leaves its copies behind.
                row.template = String::new();
                row.files = "{}".into();
                row.parameters = to_json(&parameters);
                state.template = template;
                state.environment = environment;
            }
            if operation.timeout_mins.is_some() {
                state.timeout_mins = operation.timeout_mins;
            }
            self.record(&mut state, Action::Update, now_ms, outcome, &parameters);
            let secrets = hidden_values(&parameters, &state.shown_parameters);
            row.parameters = redact(std::mem::take(&mut row.parameters), &secrets);
            row.state = redact(to_json(&state), &secrets);
            let row = save(conn, row)?;
            if let Some(key) = unused_files {
                LocalFile::delete_unused(conn, &key)?;
            }
            let row = self.refresh(conn, row, now)?.ok_or_else(|| not_found(id))?;
            snapshot(&row)
        })
    }

    /// Deletes the stack: `DELETE_IN_PROGRESS` for the configured delete
    /// time, then gone. Deleting a stack already being deleted changes
    /// nothing; a failed delete can be retried.
    pub fn delete(
        &self,
        conn: &mut DbConnection,
        id: &str,
        now: NaiveDateTime,
    ) -> Result<StackSnapshot, LocalError> {
        crate::db::write_transaction(conn, |conn| {
            let mut row = self.load(conn, id, now, true)?;
            if row.status == "DELETE_IN_PROGRESS" {
                return snapshot(&row);
            }
            let mut state = read_state(&row)?;
            let now_ms = millis(now);
            let done_ms = now_ms + seconds_to_ms(self.config.delete_seconds);
            let failure = self
                .config
                .fail_resource_type
                .as_deref()
                .and_then(|failing| {
                    let primitives = state.resources.primitives();
                    let (path, resource) =
                        primitives.iter().find(|(_, r)| r.type_name == failing)?;
                    let name = path.rsplit('.').next().unwrap_or(path);
                    Some(Failure {
                        at_ms: done_ms,
                        reason: format!(
                            "Resource DELETE failed: {} {name}: injected fault",
                            resource.type_name
                        ),
                    })
                });
            let never = self.config.never_finish || failure.is_some();
            state.operation = Operation {
                action: Action::Delete,
                started_ms: now_ms,
                complete_ms: (!never).then_some(done_ms),
                failure,
                deadline_ms: self.deadline(now_ms, state.timeout_mins),
            };
            state.pending_outputs = None;
            row.state = to_json(&state);
            let row = save(conn, row)?;
            // A zero delete time completes at once: report it, then forget.
            let (status, reason) = status_at(&state.operation, now_ms);
            if status == "DELETE_COMPLETE" {
                let mut gone = snapshot(&row)?;
                gone.status = status;
                gone.status_reason = reason;
                self.forget(conn, &row)?;
                return Ok(gone);
            }
            let row = self.refresh(conn, row, now)?.ok_or_else(|| not_found(id))?;
            snapshot(&row)
        })
    }

    fn deadline(&self, now_ms: i64, timeout_mins: Option<i64>) -> Option<i64> {
        timeout_mins
            .filter(|m| *m > 0)
            .map(|m| now_ms.saturating_add(m.saturating_mul(60_000)))
    }

    /// Evaluates in a savepoint, rolled back (address pools included) when
    /// the template is invalid: `Ok(Err(_))` then.
    fn evaluate(
        &self,
        conn: &mut DbConnection,
        request: StackRequest<'_>,
        previous: Option<&StackState>,
        servers_created: u64,
    ) -> Result<Result<Evaluated, HotError>, LocalError> {
        let outcome = conn.transaction::<_, Rollback, _>(|conn| {
            let ipam = DbIpam {
                conn,
                stack_id: request.stack_id.to_owned(),
                error: None,
            };
            let mut provider =
                SimProvider::new(self.sim_config(), ipam, request.stack_id, servers_created);
            let result = hot::evaluate(&request, previous, &mut provider);
            let servers_created = provider.servers_created;
            let server_events = std::mem::take(&mut provider.server_events);
            if let Some(e) = provider.into_ipam().error {
                return Err(Rollback::Local(LocalError::Db(e)));
            }
            match result {
                Ok(evaluation) => Ok(Evaluated {
                    evaluation,
                    servers_created,
                    server_events,
                }),
                Err(e) => Err(Rollback::Template(e)),
            }
        });
        match outcome {
            Ok(evaluated) => Ok(Ok(evaluated)),
            Err(Rollback::Template(e)) => Ok(Err(e)),
            Err(Rollback::Local(e)) => Err(e),
        }
    }

    /// Records the outcome of a create or update in `state`.
    fn record(
        &self,
        state: &mut State,
        action: Action,
        now_ms: i64,
        outcome: Result<Evaluated, HotError>,
        parameters: &Map<String, Value>,
    ) {
        let deadline_ms = self.deadline(now_ms, state.timeout_mins);
        match outcome {
            Ok(Evaluated {
                evaluation,
                servers_created,
                server_events,
            }) => {
                state.server_events.extend(server_events);
                let excess = state.server_events.len().saturating_sub(KEPT_SERVER_EVENTS);
                state.server_events.drain(..excess);
                let failed = evaluation.failure.is_some();
                let never = self.config.never_finish || failed;
                state.operation = Operation {
                    action,
                    started_ms: now_ms,
                    complete_ms: (!never).then_some(evaluation.ready_ms.max(now_ms)),
                    failure: evaluation.failure,
                    deadline_ms,
                };
                state.resources = evaluation.resources;
                state.pending_outputs = (!failed).then_some(evaluation.outputs);
                state.shown_parameters = evaluation.parameters;
                state.servers_created = servers_created;
            }
            Err(error) => {
                state.operation = Operation {
                    action,
                    started_ms: now_ms,
                    complete_ms: None,
                    failure: Some(Failure {
                        at_ms: now_ms,
                        reason: error.to_string(),
                    }),
                    deadline_ms: None,
                };
                state.pending_outputs = None;
                if state.shown_parameters.is_empty() {
                    state.shown_parameters = parameters
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(hot::py_str(v))))
                        .collect();
                }
            }
        }
    }

    fn refreshed(
        &self,
        conn: &mut DbConnection,
        id: &str,
        now: NaiveDateTime,
    ) -> Result<LocalStack, LocalError> {
        self.load(conn, id, now, false)
    }

    /// The row, locked for the rest of the transaction when `lock`.
    fn load(
        &self,
        conn: &mut DbConnection,
        id: &str,
        now: NaiveDateTime,
        lock: bool,
    ) -> Result<LocalStack, LocalError> {
        let found = if lock {
            LocalStack::find_for_update(conn, id)
        } else {
            LocalStack::find(conn, id)
        };
        let row = match found {
            Ok(row) => open(conn, row)?,
            Err(diesel::result::Error::NotFound) => return Err(not_found(id)),
            Err(e) => return Err(e.into()),
        };
        self.refresh(conn, row, now)?.ok_or_else(|| not_found(id))
    }

    fn refreshed_by_name(
        &self,
        conn: &mut DbConnection,
        name: &str,
        now: NaiveDateTime,
    ) -> Result<Option<LocalStack>, LocalError> {
        match LocalStack::find_by_name(conn, name) {
            Ok(row) => {
                let row = open(conn, row)?;
                self.refresh(conn, row, now)
            }
            Err(diesel::result::Error::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Brings the row's status to `now`: publishes the outputs of a
    /// completed operation, forgets a deleted stack (`None`).
    fn refresh(
        &self,
        conn: &mut DbConnection,
        mut row: LocalStack,
        now: NaiveDateTime,
    ) -> Result<Option<LocalStack>, LocalError> {
        let head: Head = parse_column(&row, "state", &row.state)?;
        let (status, reason) = status_at(&head.operation, millis(now));
        if status == "DELETE_COMPLETE" {
            self.forget(conn, &row)?;
            return Ok(None);
        }
        let publish = status.ends_with("_COMPLETE") && head.pending_outputs.is_some();
        if status == row.status && row.status_reason.as_deref() == Some(reason.as_str()) && !publish
        {
            return Ok(Some(row));
        }
        if publish {
            let mut state = read_state(&row)?;
            if let Some(outputs) = state.pending_outputs.take() {
                row.outputs = to_json(&outputs);
            }
            row.state = to_json(&state);
        }
        row.status = status;
        row.status_reason = Some(reason);
        Ok(Some(save(conn, row)?))
    }

    fn forget(&self, conn: &mut DbConnection, row: &LocalStack) -> Result<(), LocalError> {
        LocalIpam::delete_for_stack(conn, &row.id)?;
        match LocalStack::delete(conn, &row.id) {
            // Another process finished the same delete first.
            Ok(()) | Err(diesel::result::Error::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        // The last stack of a driver version takes its files along.
        if let Some(key) = &row.files_sha256 {
            LocalFile::delete_unused(conn, key)?;
        }
        Ok(())
    }
}

fn not_found(id: &str) -> LocalError {
    LocalError::NotFound(format!("The Stack ({id}) could not be found."))
}

/// The values of hidden parameters (those shown as `******`). The simulated
/// cloud does not keep them: what it persists carries `******` instead, so a
/// credential passed to nodes is not left in clear in the database. Short
/// values are skipped; replacing them could mangle unrelated text.
fn hidden_values(parameters: &Map<String, Value>, shown: &Map<String, Value>) -> Vec<String> {
    parameters
        .iter()
        .filter(|(name, _)| shown.get(*name).and_then(Value::as_str) == Some("******"))
        .filter_map(|(_, value)| value.as_str())
        .filter(|v| v.len() >= 8)
        .map(|v| {
            // As it appears inside serialized JSON.
            let quoted = serde_json::to_string(v).unwrap_or_default();
            quoted.trim_matches('"').to_owned()
        })
        .filter(|v| v.len() >= 8)
        .collect()
}

fn redact(text: String, secrets: &[String]) -> String {
    secrets
        .iter()
        .fold(text, |text, secret| text.replace(secret.as_str(), "******"))
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Maps of strings and JSON values always serialise.
    serde_json::to_string(value).unwrap_or_else(|_| "{}".into())
}

fn parse_column<T: serde::de::DeserializeOwned>(
    row: &LocalStack,
    what: &'static str,
    text: &str,
) -> Result<T, LocalError> {
    serde_json::from_str(text).map_err(|e| LocalError::Corrupt {
        id: row.id.clone(),
        what,
        reason: e.to_string(),
    })
}

fn missing_files(id: &str, key: &str) -> LocalError {
    LocalError::Corrupt {
        id: id.to_owned(),
        what: "files",
        reason: format!("no stored files {key}"),
    }
}

fn packing_error(id: &str, e: packed::PackError<diesel::result::Error>) -> LocalError {
    match e {
        packed::PackError::Dictionary(diesel::result::Error::NotFound) => LocalError::Corrupt {
            id: id.to_owned(),
            what: "files",
            reason: "the files its state is packed against are gone".into(),
        },
        packed::PackError::Dictionary(e) => LocalError::Db(e),
        packed::PackError::Invalid(reason) => LocalError::Corrupt {
            id: id.to_owned(),
            what: "state",
            reason,
        },
    }
}

fn pack_state(
    conn: &mut DbConnection,
    id: &str,
    documents: packed::Documents<'_>,
    files_key: &str,
) -> Result<Vec<u8>, LocalError> {
    packed::pack(documents, files_key, &mut FileRows(conn)).map_err(|e| packing_error(id, e))
}

/// The `local_file` rows, where packed states find their dictionaries.
struct FileRows<'c>(&'c mut DbConnection);

impl packed::Texts for FileRows<'_> {
    type Error = diesel::result::Error;

    fn files(&mut self, key: &str) -> Result<String, Self::Error> {
        LocalFile::content(self.0, key)
    }

    fn sample_key(&mut self, key: &str) -> Result<Option<String>, Self::Error> {
        LocalFile::sample_key(self.0, key)
    }

    fn offer_sample(&mut self, key: &str, sample: &str) -> Result<String, Self::Error> {
        LocalFile::offer_sample(self.0, key, sample)
    }

    fn files_and_sample(&mut self, key: &str) -> Result<packed::FilesAndSample, Self::Error> {
        LocalFile::content_and_sample(self.0, key)
    }
}

/// The row with its state, parameters and outputs as JSON in their
/// fields, unpacked if they were packed.
fn open(conn: &mut DbConnection, mut row: LocalStack) -> Result<LocalStack, LocalError> {
    if let Some(packed) = row.state_z.take() {
        let Some(key) = row.files_sha256.as_deref() else {
            return Err(LocalError::Corrupt {
                id: row.id,
                what: "state",
                reason: "packed without files".into(),
            });
        };
        let unpacked = packed::unpack(&packed, key, &mut FileRows(conn))
            .map_err(|e| packing_error(&row.id, e))?;
        row.state = unpacked.state;
        // A row packed before they moved in keeps them in their columns.
        if let Some(parameters) = unpacked.parameters {
            row.parameters = parameters;
        }
        if let Some(outputs) = unpacked.outputs {
            row.outputs = outputs;
        }
    }
    Ok(row)
}

/// Saves an opened row, its state, parameters and outputs packed when it
/// has shared files (rows from before them keep JSON until an update moves
/// them over).
fn save(conn: &mut DbConnection, mut row: LocalStack) -> Result<LocalStack, LocalError> {
    let unpacked = match &row.files_sha256 {
        Some(key) => {
            let documents = packed::Documents {
                state: &row.state,
                parameters: &row.parameters,
                outputs: &row.outputs,
            };
            row.state_z = Some(pack_state(conn, &row.id, documents, key)?);
            Some((
                std::mem::take(&mut row.state),
                std::mem::replace(&mut row.parameters, "{}".into()),
                std::mem::replace(&mut row.outputs, "{}".into()),
            ))
        }
        None => None,
    };
    let mut saved = row.update(conn)?;
    if let Some((state, parameters, outputs)) = unpacked {
        saved.state_z = None;
        saved.state = state;
        saved.parameters = parameters;
        saved.outputs = outputs;
    }
    Ok(saved)
}

/// The stack's files: the shared `local_file`, or the row's own copy.
fn read_files(conn: &mut DbConnection, row: &LocalStack) -> Result<hot::Files, LocalError> {
    match &row.files_sha256 {
        Some(key) => {
            let text = match LocalFile::content(conn, key) {
                Ok(text) => text,
                Err(diesel::result::Error::NotFound) => return Err(missing_files(&row.id, key)),
                Err(e) => return Err(e.into()),
            };
            parse_column(row, "files", &text)
        }
        None => parse_column(row, "files", &row.files),
    }
}

fn read_state(row: &LocalStack) -> Result<State, LocalError> {
    parse_column(row, "state", &row.state)
}

fn snapshot(row: &LocalStack) -> Result<StackSnapshot, LocalError> {
    let state: Head = parse_column(row, "state", &row.state)?;
    Ok(StackSnapshot {
        target: state.target,
        stack_id: row.id.clone(),
        status: row.status.clone(),
        status_reason: row.status_reason.clone().unwrap_or_default(),
        outputs: parse_column(row, "outputs", &row.outputs)?,
        parameters: state.shown_parameters,
    })
}

// ---- The local cloud as the conductor's orchestrator -------------------------

mod adapter {
    use std::collections::HashMap;

    use magnum_driver_abi::payload::{StackOperation, StackSnapshot};

    use super::{LocalCloud, LocalError};
    use crate::{
        db::{
            models::{now, LocalStack},
            DbConnection,
        },
        orchestrator::{Orchestrator, OrchestratorError},
    };

    fn map(e: LocalError) -> OrchestratorError {
        match e {
            // The database is the local cloud's only moving part: retry.
            LocalError::Db(e) => {
                OrchestratorError::Unavailable(format!("local cloud database: {e}"))
            }
            other => OrchestratorError::Rejected(other.to_string()),
        }
    }

    impl Orchestrator for LocalCloud {
        fn name(&self) -> &'static str {
            "local"
        }

        fn poll_cap(&self) -> Option<std::time::Duration> {
            Some(self.config.poll_cap())
        }

        fn create(
            &self,
            conn: &mut DbConnection,
            project_id: &str,
            _trust_id: Option<&str>,
            op: &StackOperation,
        ) -> Result<String, OrchestratorError> {
            self.create(conn, project_id, op, now())
                .map(|s| s.stack_id)
                .map_err(map)
        }

        fn find(
            &self,
            conn: &mut DbConnection,
            name: &str,
            _trust_id: Option<&str>,
        ) -> Result<Option<String>, OrchestratorError> {
            self.find_by_name(conn, name, now())
                .map(|s| s.map(|s| s.stack_id))
                .map_err(map)
        }

        fn get(
            &self,
            conn: &mut DbConnection,
            id: &str,
        ) -> Result<Option<StackSnapshot>, OrchestratorError> {
            match LocalCloud::get(self, conn, id, now()) {
                Ok(s) => Ok(Some(s)),
                Err(LocalError::NotFound(_)) => Ok(None),
                Err(e) => Err(map(e)),
            }
        }

        fn update(
            &self,
            conn: &mut DbConnection,
            id: &str,
            _trust_id: Option<&str>,
            op: &StackOperation,
        ) -> Result<(), OrchestratorError> {
            LocalCloud::update(self, conn, id, op, now())
                .map(drop)
                .map_err(map)
        }

        fn node_health(
            &self,
            conn: &mut DbConnection,
            id: &str,
        ) -> Result<Option<Vec<(String, bool)>>, OrchestratorError> {
            let servers = self.servers(conn, id, now()).map_err(map)?;
            Ok(Some(
                servers
                    .into_iter()
                    .map(|s| (s.name, s.status == "ACTIVE"))
                    .collect(),
            ))
        }

        fn stack_versions(
            &self,
            conn: &mut DbConnection,
            ids: &[String],
        ) -> Result<HashMap<String, String>, OrchestratorError> {
            let heads = LocalStack::heads(conn, ids).map_err(|e| map(e.into()))?;
            // A stored terminal status is final until an action rewrites the
            // row; one stored in progress may have finished by the clock alone.
            Ok(heads
                .into_iter()
                .filter(|h| !h.status.ends_with("_IN_PROGRESS"))
                .map(|h| {
                    let version = format!("{}@{}", h.status, h.updated_at.unwrap_or(h.created_at));
                    (h.id, version)
                })
                .collect())
        }

        fn delete(&self, conn: &mut DbConnection, id: &str) -> Result<(), OrchestratorError> {
            match LocalCloud::delete(self, conn, id, now()) {
                Ok(_) | Err(LocalError::NotFound(_)) => Ok(()),
                Err(e) => Err(map(e)),
            }
        }
    }
}
