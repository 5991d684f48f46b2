//! The conductor: claims the jobs the API queued and drives each cluster
//! operation to a terminal state through the driver and an orchestrator.
//!
//! Tracking is per job, not a global scan (upstream pain point 1): a job
//! that waits on a stack reschedules itself with its own next poll time
//! (1 s doubling to `poll_cap`), so idle and finished clusters cost nothing.
//! Jobs of one cluster run in queue order. Every operation has a deadline
//! after which it fails with a reason saying what timed out (pain point 3),
//! and a crash anywhere resumes from the database: leases expire, and a
//! stack is looked up by its deterministic name before one is created.

mod health;
mod ops;

use std::{sync::Arc, time::Duration};

use chrono::NaiveDateTime;
use tokio::sync::{watch, Semaphore};

pub use crate::orchestrator::{Orchestrator, OrchestratorError};
use crate::{
    app::AppState,
    db::{
        self,
        models::{now, Job, MagnumService},
    },
};
pub use health::HealthPass;

#[derive(Debug, Clone)]
pub struct Settings {
    /// `magnum_service.host`: what `GET /v1/mservices` shows.
    pub host: String,
    /// Jobs run at once (each may call the orchestrator).
    pub concurrency: usize,
    /// How often an idle conductor looks for new jobs.
    pub idle_poll: Duration,
    /// The longest wait between two polls of one stack.
    pub poll_cap: Duration,
    /// A job claimed longer than this by a silent worker is taken over.
    pub lease: Duration,
    /// Deadline of operations other than create (which uses the cluster's
    /// `create_timeout`).
    pub operation_timeout: Duration,
    pub heartbeat: Duration,
    /// How often complete clusters' health is refreshed.
    pub health_interval: Duration,
}

impl Settings {
    /// `[conductor]`'s settings; the rest keep their defaults.
    pub fn from_config(c: &crate::config::ConductorFile) -> Self {
        let mut settings = Self {
            concurrency: c.concurrency,
            operation_timeout: Duration::from_secs(c.operation_timeout_minutes * 60),
            lease: Duration::from_secs(c.lease_seconds),
            health_interval: Duration::from_secs(c.health_interval_seconds),
            ..Default::default()
        };
        if let Some(host) = &c.host {
            settings.host = host.clone();
        }
        settings
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            host: hostname(),
            concurrency: 4,
            idle_poll: Duration::from_millis(250),
            poll_cap: Duration::from_secs(10),
            lease: Duration::from_secs(60),
            operation_timeout: Duration::from_secs(60 * 60),
            heartbeat: Duration::from_secs(30),
            health_interval: Duration::from_secs(60),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// What became of one run of a job.
#[derive(Debug)]
pub enum Outcome {
    /// Finished (successfully or with the cluster marked failed): delete it.
    Done,
    /// Waiting on the orchestrator: run again after `after` with `state`.
    Poll {
        after: Duration,
        state: crate::jobs::RunState,
    },
    /// A transient failure (database, orchestrator unreachable): retry with
    /// the queue's backoff.
    Retry(String),
}

pub struct Conductor {
    pub state: Arc<AppState>,
    pub orchestrator: Arc<dyn Orchestrator>,
    pub settings: Settings,
    /// Unique per process: leases name it.
    pub worker: String,
    health_seen: health::Seen,
    /// Jobs this process is running now. Every slot leases as `worker`, so
    /// a lease that lapsed while its run was slow (a loaded machine: the
    /// renewal is late) is claimable again by this same process, and the
    /// lease checks (`renew`, `complete`) cannot tell the two runs apart:
    /// the second claim is dropped here instead of running the step twice.
    /// A run older than the operation timeout no longer counts (its lease
    /// renewal gave up too), so a step that hangs is not stuck for good.
    running: std::sync::Mutex<std::collections::HashMap<i64, (u64, std::time::Instant)>>,
    runs: std::sync::atomic::AtomicU64,
}

impl Conductor {
    pub fn new(
        state: Arc<AppState>,
        orchestrator: Arc<dyn Orchestrator>,
        settings: Settings,
    ) -> Self {
        let worker = format!(
            "{}:{}:{}",
            settings.host,
            std::process::id(),
            &uuid::Uuid::new_v4().to_string()[..8]
        );
        // Every orchestrator call is counted and timed for /metrics.
        let orchestrator: Arc<dyn Orchestrator> =
            Arc::new(crate::orchestrator::Metered(orchestrator));
        Self {
            state,
            orchestrator,
            settings,
            worker,
            health_seen: health::Seen::default(),
            running: Default::default(),
            runs: Default::default(),
        }
    }

    /// Marks job `id` running in this process: the run's token, or `None`
    /// if a run of it started here less than the operation timeout ago.
    fn start_running(&self, id: i64) -> Option<u64> {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, since)) = running.get(&id) {
            if since.elapsed() < self.settings.operation_timeout {
                return None;
            }
        }
        let token = self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        running.insert(id, (token, std::time::Instant::now()));
        Some(token)
    }

    /// Ends run `token` of job `id` (not a later run that replaced it).
    fn stop_running(&self, id: i64, token: u64) {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if running.get(&id).is_some_and(|(t, _)| *t == token) {
            running.remove(&id);
        }
    }

    /// One health pass (the conductor runs one every `health_interval`).
    pub fn health_pass(&self) -> Result<HealthPass, String> {
        let mut conn = self.state.pool.get().map_err(|e| e.to_string())?;
        health::pass(self, &mut conn).map_err(|e| e.to_string())
    }

    /// Runs until `shutdown` turns true; jobs in flight finish first.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.worker, orchestrator = self.orchestrator.name(), "conductor started");
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let heartbeat = tokio::spawn(self.clone().heartbeat_loop(shutdown.clone()));
        let health = tokio::spawn(self.clone().health_loop(shutdown.clone()));
        loop {
            if *shutdown.borrow() {
                break;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let me = self.clone();
            let claimed =
                db::run_blocking(&self.state.pool, move |conn| -> Result<_, db::DbError> {
                    let lease = chrono::TimeDelta::from_std(me.settings.lease)
                        .unwrap_or(chrono::TimeDelta::MAX);
                    Ok(Job::claim(conn, &me.worker, now(), lease)?)
                })
                .await;
            match claimed {
                Ok(Some(job)) => match self.start_running(job.id) {
                    Some(token) => {
                        let me = self.clone();
                        tokio::spawn(async move {
                            let id = job.id;
                            me.clone().process(job).await;
                            me.stop_running(id, token);
                            drop(permit);
                        });
                    }
                    None => {
                        // A slot of this process still runs it: either its
                        // lease lapsed mid-run, or the run has just written
                        // its outcome (a poll due at once) and not yet
                        // returned. Give this claim back, so the job is not
                        // left leased with nobody running it; a run that
                        // renewed its lease since keeps it.
                        let me = self.clone();
                        let released = db::run_blocking(
                            &self.state.pool,
                            move |conn| -> Result<_, db::DbError> {
                                Ok(Job::release(conn, &job, &me.worker)?)
                            },
                        )
                        .await;
                        if let Err(e) = released {
                            tracing::warn!("conductor: cannot release a claim: {e}");
                        }
                        tracing::debug!(
                            "job claimed again while this process runs it; not run twice"
                        );
                        drop(permit);
                        tokio::time::sleep(self.settings.idle_poll).await;
                    }
                },
                Ok(None) => {
                    drop(permit);
                    tokio::select! {
                        _ = tokio::time::sleep(self.settings.idle_poll) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(e) => {
                    drop(permit);
                    tracing::warn!("conductor: cannot claim jobs: {e}");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
        // Wait for running jobs: every permit back.
        let _ = permits
            .acquire_many(self.settings.concurrency.max(1) as u32)
            .await;
        heartbeat.abort();
        health.abort();
        tracing::info!(worker = %self.worker, "conductor stopped");
    }

    async fn heartbeat_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let host = self.settings.host.clone();
            let r = db::run_blocking(&self.state.pool, move |conn| -> Result<_, db::DbError> {
                Ok(MagnumService::report(conn, &host, "magnum-conductor")?)
            })
            .await;
            if let Err(e) = r {
                tracing::warn!("conductor heartbeat failed: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.heartbeat) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn health_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.settings.health_interval) => {}
                _ = shutdown.changed() => return,
            }
            let me = self.clone();
            let pass = tokio::task::spawn_blocking(move || me.health_pass()).await;
            match pass {
                Ok(Ok(p)) if p.changed > 0 => tracing::info!(
                    changed = p.changed,
                    examined = p.examined,
                    clusters = p.clusters,
                    "cluster health updated"
                ),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!("health pass failed: {e}"),
                Err(e) => tracing::warn!("health pass task failed: {e}"),
            }
        }
    }

    /// Runs one job on the blocking pool; a panic is caught and retried.
    async fn process(self: Arc<Self>, job: Job) {
        let me = self.clone();
        let id = job.id;
        let job_type = job.job_type.clone();
        let renewal = tokio::spawn(self.clone().renew_lease(id));
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let mut conn = match me.state.pool.get() {
                Ok(c) => c,
                Err(e) => return Outcome::Retry(format!("database: {e}")),
            };
            let at = now();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                ops::run(&me, &mut conn, &job, at)
            }))
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                Outcome::Retry(format!("job panicked: {what}"))
            });
            let finish = match &outcome {
                Outcome::Done => Job::complete(&mut conn, job.id, &me.worker),
                Outcome::Poll { after, state } => Job::reschedule(
                    &mut conn,
                    job.id,
                    &me.worker,
                    at + chrono::TimeDelta::from_std(*after)
                        .unwrap_or(chrono::TimeDelta::seconds(1)),
                    &state.to_json(),
                ),
                Outcome::Retry(_) => Job::fail(&mut conn, &job, &me.worker, at),
            };
            if let Err(e) = finish {
                tracing::warn!(job = job.id, "cannot record the job's outcome: {e}");
            }
            outcome
        })
        .await;
        renewal.abort();
        let outcome = match &result {
            Ok(Outcome::Done) => "done",
            Ok(Outcome::Poll { .. }) => "poll",
            Ok(Outcome::Retry(_)) | Err(_) => "retry",
        };
        crate::metrics::METRICS.job_step(&job_type, outcome, started.elapsed());
        match result {
            Ok(Outcome::Retry(reason)) => {
                tracing::warn!(job = id, %job_type, "job will be retried: {reason}")
            }
            Ok(Outcome::Done) => tracing::debug!(job = id, %job_type, "job done"),
            Ok(Outcome::Poll { .. }) => {}
            Err(e) => tracing::error!(job = id, %job_type, "job task failed: {e}"),
        }
    }
}

impl Conductor {
    /// Keeps the lease on job `id` while this process runs it: a run may
    /// outlast the lease (a slow orchestrator call, a loaded machine), and
    /// another conductor must not start the same step meanwhile. Only a
    /// process that died, or a run stuck past the operation timeout, lets
    /// its lease lapse.
    async fn renew_lease(self: Arc<Self>, id: i64) {
        let every = (self.settings.lease / 3).max(Duration::from_millis(100));
        let until = tokio::time::Instant::now() + self.settings.operation_timeout;
        loop {
            tokio::time::sleep(every).await;
            if tokio::time::Instant::now() >= until {
                tracing::warn!(
                    job = id,
                    "job still running after the operation timeout; its lease lapses"
                );
                return;
            }
            let me = self.clone();
            let renewed =
                db::run_blocking(&self.state.pool, move |conn| -> Result<_, db::DbError> {
                    Ok(Job::renew(conn, id, &me.worker, now())?)
                })
                .await;
            match renewed {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(job = id, "lease lost to another conductor");
                    return;
                }
                Err(e) => tracing::warn!(job = id, "cannot renew the job's lease: {e}"),
            }
        }
    }
}

/// Seconds since `t` (negative if `t` is in the future).
pub(crate) fn elapsed(t: NaiveDateTime, at: NaiveDateTime) -> chrono::TimeDelta {
    at - t
}
