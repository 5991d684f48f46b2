//! The conductor's job queue, with crates.io's background-job semantics:
//! JSON `data`, `priority` (higher first), delete on success, retries with
//! exponential backoff. A claim is a lease (`locked_by`, `locked_at`) taken in
//! a short transaction, so no transaction stays open while a job runs (that
//! would block every writer on SQLite); a lease older than the caller's lease
//! time is taken over, so a crashed worker's jobs are not lost.
//!
//! Times are passed in by the caller (normally [`now()`](super::now)) so the
//! scheduling rules can be tested without waiting.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use super::now;
use crate::db::{schema::jobs, DbConnection};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = jobs)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
pub struct Job {
    pub id: i64,
    pub job_type: String,
    pub data: String,
    pub priority: i32,
    pub retries: i32,
    pub last_retry: Option<NaiveDateTime>,
    /// Not claimable before this time (set by the backoff).
    pub run_after: NaiveDateTime,
    pub locked_by: Option<String>,
    pub locked_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    /// The cluster the job concerns: jobs of one cluster run in queue order.
    pub cluster_uuid: Option<String>,
    /// JSON: the run's bookkeeping, apart from the arguments in `data`.
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = jobs)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
pub struct NewJob {
    pub job_type: String,
    pub data: String,
    pub priority: i32,
    pub run_after: NaiveDateTime,
    pub cluster_uuid: Option<String>,
}

impl NewJob {
    /// A job runnable now at the default priority; `data` is JSON.
    pub fn new(job_type: &str, data: &str) -> Self {
        Self {
            job_type: job_type.to_owned(),
            data: data.to_owned(),
            priority: 0,
            run_after: now(),
            cluster_uuid: None,
        }
    }

    /// The job concerns `cluster` (ordered with that cluster's other jobs).
    pub fn of_cluster(mut self, cluster: &str) -> Self {
        self.cluster_uuid = Some(cluster.to_owned());
        self
    }
}

/// The backoff doubles per retry from 5 s and stops growing at 2^10 × 5 s
/// (about 85 minutes). Short at first: most failures are transient (an
/// orchestrator answering 409 while it holds a stack's lock); operations
/// still end at their own deadline.
const BACKOFF_BASE_SECS: i64 = 5;
const BACKOFF_MAX_EXPONENT: i32 = 10;

impl Job {
    pub fn enqueue(conn: &mut DbConnection, new: &NewJob) -> QueryResult<Self> {
        let row = (new, jobs::created_at.eq(now()));
        let id = match conn {
            DbConnection::Pg(c) => diesel::insert_into(jobs::table)
                .values(row)
                .returning(jobs::id)
                .get_result::<i64>(c)?,
            DbConnection::Sqlite(c) => diesel::insert_into(jobs::table)
                .values(row)
                .returning(jobs::id)
                .get_result::<i64>(c)?,
            // No RETURNING: the id this connection's insert generated.
            // LAST_INSERT_ID() is unsigned; cast, as diesel reads BIGINT signed.
            DbConnection::Mysql(c) => {
                diesel::insert_into(jobs::table).values(row).execute(c)?;
                diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                    "CAST(LAST_INSERT_ID() AS SIGNED)",
                ))
                .get_result::<i64>(c)?
            }
        };
        Self::find(conn, id)
    }

    pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Self> {
        jobs::table.find(id).select(Self::as_select()).first(conn)
    }

    pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
        jobs::table.count().get_result(conn)
    }

    /// How long a job that has failed `retries` times waits before it runs again.
    pub fn backoff(retries: i32) -> TimeDelta {
        let exponent = retries.clamp(0, BACKOFF_MAX_EXPONENT) as u32;
        TimeDelta::seconds(BACKOFF_BASE_SECS * 2_i64.pow(exponent))
    }

    /// Leases the next runnable job to `worker`: the highest priority, then
    /// the oldest, among jobs due at `at` that are unleased or whose lease
    /// is older than `lease`. `None` when there is nothing to do.
    ///
    /// PostgreSQL and MariaDB/MySQL: `SELECT … FOR UPDATE SKIP LOCKED` then
    /// `UPDATE`, in one transaction: concurrent workers skip the row being
    /// leased instead of waiting for it (MariaDB has `SKIP LOCKED` from
    /// 10.6, which `establish` checks; without `RETURNING` the row is read
    /// back in the same transaction, still locked). SQLite has no row
    /// locks: `BEGIN IMMEDIATE` takes the database's write lock before the
    /// `SELECT`, so no other claim can read the same candidate before the
    /// `UPDATE … RETURNING` has leased it.
    /// (A single `UPDATE … WHERE id IN (SELECT … LIMIT 1)` would do too, but
    /// diesel's types for it made rustc use over 20 GB.)
    pub fn claim(
        conn: &mut DbConnection,
        worker: &str,
        at: NaiveDateTime,
        lease: TimeDelta,
    ) -> QueryResult<Option<Self>> {
        let stale = at - lease;
        let lease_set = (
            jobs::locked_by.eq(Some(worker)),
            jobs::locked_at.eq(Some(at)),
        );
        match conn {
            DbConnection::Pg(c) => c.transaction::<_, diesel::result::Error, _>(|c| {
                let candidate = jobs::table
                    .select(jobs::id)
                    .filter(jobs::run_after.le(at))
                    .filter(jobs::locked_by.is_null().or(jobs::locked_at.lt(stale)))
                    .order((jobs::priority.desc(), jobs::id.asc()))
                    .limit(1)
                    .for_update()
                    .skip_locked()
                    .get_result::<i64>(c)
                    .optional()?;
                match candidate {
                    None => Ok(None),
                    Some(id) => diesel::update(jobs::table.find(id))
                        .set(lease_set)
                        .returning(Self::as_returning())
                        .get_result(c)
                        .map(Some),
                }
            }),
            DbConnection::Mysql(c) => c.transaction::<_, diesel::result::Error, _>(|c| {
                let candidate = jobs::table
                    .select(jobs::id)
                    .filter(jobs::run_after.le(at))
                    .filter(jobs::locked_by.is_null().or(jobs::locked_at.lt(stale)))
                    .order((jobs::priority.desc(), jobs::id.asc()))
                    .limit(1)
                    .for_update()
                    .skip_locked()
                    .get_result::<i64>(c)
                    .optional()?;
                match candidate {
                    None => Ok(None),
                    Some(id) => {
                        diesel::update(jobs::table.find(id))
                            .set(lease_set)
                            .execute(c)?;
                        jobs::table
                            .find(id)
                            .select(Self::as_select())
                            .first(c)
                            .map(Some)
                    }
                }
            }),
            DbConnection::Sqlite(c) => {
                c.immediate_transaction::<_, diesel::result::Error, _>(|c| {
                    let candidate = jobs::table
                        .select(jobs::id)
                        .filter(jobs::run_after.le(at))
                        .filter(jobs::locked_by.is_null().or(jobs::locked_at.lt(stale)))
                        .order((jobs::priority.desc(), jobs::id.asc()))
                        .limit(1)
                        .get_result::<i64>(c)
                        .optional()?;
                    match candidate {
                        None => Ok(None),
                        Some(id) => diesel::update(jobs::table.find(id))
                            .set(lease_set)
                            .returning(Self::as_returning())
                            .get_result(c)
                            .map(Some),
                    }
                })
            }
        }
    }

    /// Deletes a job `worker` finished. `false` if the lease was lost (taken
    /// over after it went stale), in which case the other worker owns the job.
    pub fn complete(conn: &mut DbConnection, id: i64, worker: &str) -> QueryResult<bool> {
        let deleted = diesel::delete(
            jobs::table
                .filter(jobs::id.eq(id))
                .filter(jobs::locked_by.eq(worker)),
        )
        .execute(conn)?;
        Ok(deleted == 1)
    }

    /// Extends `worker`'s lease on job `id` to `at`, so that a run longer
    /// than the lease is not taken over while it is still going. `false` if
    /// the lease was lost.
    pub fn renew(
        conn: &mut DbConnection,
        id: i64,
        worker: &str,
        at: NaiveDateTime,
    ) -> QueryResult<bool> {
        let updated = diesel::update(
            jobs::table
                .filter(jobs::id.eq(id))
                .filter(jobs::locked_by.eq(worker)),
        )
        .set(jobs::locked_at.eq(Some(at)))
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// Records a failed run of `job` (as claimed by `worker`) at `at`: one more
    /// retry, the lease released, and not runnable again before the backoff.
    /// `false` if the lease was lost.
    pub fn fail(
        conn: &mut DbConnection,
        job: &Job,
        worker: &str,
        at: NaiveDateTime,
    ) -> QueryResult<bool> {
        let retries = job.retries.saturating_add(1);
        let updated = diesel::update(
            jobs::table
                .filter(jobs::id.eq(job.id))
                .filter(jobs::locked_by.eq(worker)),
        )
        .set((
            jobs::retries.eq(retries),
            jobs::last_retry.eq(Some(at)),
            jobs::run_after.eq(at + Self::backoff(retries)),
            jobs::locked_by.eq(None::<String>),
            jobs::locked_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// Replaces the run's bookkeeping (kept while it is leased to `worker`).
    pub fn set_state(
        conn: &mut DbConnection,
        id: i64,
        worker: &str,
        state: &str,
    ) -> QueryResult<bool> {
        let updated = diesel::update(
            jobs::table
                .filter(jobs::id.eq(id))
                .filter(jobs::locked_by.eq(worker)),
        )
        .set(jobs::state.eq(state))
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// Releases `job` without counting a failure and makes it runnable again
    /// at `run_after` with the run's new `state`: how a job that tracks a
    /// long operation polls. `false` if the lease was lost.
    pub fn reschedule(
        conn: &mut DbConnection,
        id: i64,
        worker: &str,
        run_after: NaiveDateTime,
        state: &str,
    ) -> QueryResult<bool> {
        let updated = diesel::update(
            jobs::table
                .filter(jobs::id.eq(id))
                .filter(jobs::locked_by.eq(worker)),
        )
        .set((
            jobs::state.eq(state),
            jobs::run_after.eq(run_after),
            jobs::locked_by.eq(None::<String>),
            jobs::locked_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// Gives back the claim `claimed` (leased to `worker`) unrun: unleased
    /// again, due as before. Only that very claim is released: if the lease
    /// was renewed since (a run of the job still holds it) or taken by
    /// another worker, nothing changes. `false` then.
    pub fn release(conn: &mut DbConnection, claimed: &Job, worker: &str) -> QueryResult<bool> {
        let Some(at) = claimed.locked_at else {
            return Ok(false);
        };
        let updated = diesel::update(
            jobs::table
                .filter(jobs::id.eq(claimed.id))
                .filter(jobs::locked_by.eq(worker))
                .filter(jobs::locked_at.eq(at)),
        )
        .set((
            jobs::locked_by.eq(None::<String>),
            jobs::locked_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// Whether a job of `cluster` was queued before job `id`: jobs of one
    /// cluster run in the order they were queued.
    pub fn older_of_cluster_exists(
        conn: &mut DbConnection,
        id: i64,
        cluster: &str,
    ) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            jobs::table
                .filter(jobs::cluster_uuid.eq(cluster))
                .filter(jobs::id.lt(id)),
        ))
        .get_result(conn)
    }

    /// The jobs of `cluster` queued after job `id`: requests accepted later,
    /// which supersede its final status.
    pub fn newer_of_cluster(
        conn: &mut DbConnection,
        id: i64,
        cluster: &str,
    ) -> QueryResult<Vec<Self>> {
        jobs::table
            .filter(jobs::cluster_uuid.eq(cluster))
            .filter(jobs::id.gt(id))
            .order(jobs::id.asc())
            .select(Self::as_select())
            .load(conn)
    }
}
