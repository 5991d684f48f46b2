//! Persistence: sync diesel over SQLite (the embedded default, a file in the
//! data directory), PostgreSQL or MariaDB/MySQL (several API/conductor
//! processes), picked from the URL scheme. One portable `schema.rs`;
//! migrations per backend, embedded in the binary. Async code reaches the
//! database only through [`run_blocking`], or [`run_write`] for the API's
//! writes.
//!
//! Layers: models return `diesel::QueryResult`; pool set-up and migrations
//! return [`DbError`].

pub mod models;
pub mod schema;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde::Deserialize;

use diesel::{
    connection::SimpleConnection, mysql::MysqlConnection, pg::PgConnection, r2d2::R2D2Connection,
    sqlite::SqliteConnection, Connection,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub use diesel::r2d2::PoolError;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");

/// The oldest MariaDB with `FOR UPDATE SKIP LOCKED`, which the job claim
/// needs (10.6); MySQL has it from 8.0.1, and the migrations' expression
/// defaults on text columns from 8.0.13.
const MARIADB_MIN: (u32, u32, u32) = (10, 6, 0);
const MYSQL_MIN: (u32, u32, u32) = (8, 0, 13);

/// The file name of the default SQLite database inside the data directory.
pub const SQLITE_FILE: &str = "magnum.sqlite";

/// A connection to any backend. Queries written against it run on all;
/// the few statements whose SQL differs (upserts, locks, the job claim)
/// match on the variant.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
    Mysql(MysqlConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
    Mysql,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "postgresql",
            Backend::Sqlite => "sqlite",
            Backend::Mysql => "mysql",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "unsupported database URL '{0}': use sqlite://PATH (or a plain file path) \
         or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE \
         or mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
    )]
    UnsupportedUrl(String),
    #[error(
        "an in-memory SQLite database would be a different one on every pooled \
         connection; use a file path"
    )]
    InMemorySqlite,
    // The causes below are in the message and deliberately not `source`s,
    // so `{:#}` does not print them twice.
    #[error("cannot create the directory {}: {reason}", path.display())]
    CreateDir {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("cannot create the database file {}: {reason}", path.display())]
    CreateFile {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("cannot connect to the {backend} database at {url}: {}", reason.to_string().trim_end())]
    Connect {
        backend: Backend,
        url: String,
        reason: diesel::ConnectionError,
    },
    #[error("cannot set up the SQLite connection to {path}: {reason}")]
    Pragmas {
        path: String,
        reason: diesel::result::Error,
    },
    #[error("cannot set up the MySQL connection to {url}: {reason}")]
    Session {
        url: String,
        reason: diesel::result::Error,
    },
    #[error(
        "the server at {url} is {server}, but magnum-rs needs MariaDB {}.{} or later \
         (or MySQL {}.{}.{} or later) for the job queue's FOR UPDATE SKIP LOCKED",
        MARIADB_MIN.0, MARIADB_MIN.1, MYSQL_MIN.0, MYSQL_MIN.1, MYSQL_MIN.2
    )]
    ServerTooOld { url: String, server: String },
    #[error("database migrations failed: {0}")]
    Migration(String),
    #[error(
        "the database schema is at version {current} but this magnumd needs {latest} \
         ({pending} pending migrations): run `magnumd db upgrade` first"
    )]
    SchemaBehind {
        current: String,
        latest: String,
        pending: usize,
    },
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

/// No usable connection within the acquire timeout: the database is down,
/// unreachable or not answering (or every connection is busy).
#[derive(Debug, Clone, thiserror::Error)]
#[error("no answer from the database within {} ms", waited.as_millis())]
pub struct Unavailable {
    pub waited: Duration,
}

/// How long database work may wait before the caller gets an error (a 503
/// at the API), so an outage is reported in seconds rather than after
/// r2d2's 30 s default, and `/healthcheck` within about one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DbTimeouts {
    /// PostgreSQL: libpq's `connect_timeout` (at least 2), added to the URL
    /// unless it sets one. Without it a server that accepts the TCP
    /// connection but never answers blocks a connect forever. (diesel's
    /// MySQL connection has no such option: there the acquire timeout is
    /// the bound.)
    pub connect_timeout_seconds: u64,
    /// The longest wait for a pooled connection, including the check that
    /// it still answers (r2d2's `connection_timeout`).
    pub acquire_timeout_seconds: u64,
    /// The longest `/healthcheck` database probe, connection included.
    pub healthcheck_timeout_ms: u64,
    /// SQLite: how long a writer waits for another's write lock.
    pub sqlite_busy_timeout_ms: u64,
}

impl Default for DbTimeouts {
    fn default() -> Self {
        Self {
            connect_timeout_seconds: 2,
            acquire_timeout_seconds: 3,
            healthcheck_timeout_ms: 1000,
            sqlite_busy_timeout_ms: 5000,
        }
    }
}

impl DbTimeouts {
    pub fn acquire(&self) -> Duration {
        Duration::from_secs(self.acquire_timeout_seconds.max(1))
    }

    pub fn healthcheck(&self) -> Duration {
        Duration::from_millis(self.healthcheck_timeout_ms.max(1))
    }
}

/// Where the database is, decided by the URL scheme alone: SQLite accepts
/// any string as a file name, so trying one backend after the other would
/// silently create a file named like a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbTarget {
    Postgres(String),
    Sqlite(String),
    Mysql(String),
}

impl DbTarget {
    pub fn parse(url: &str) -> Result<Self, DbError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        if url.starts_with("mysql://") {
            return Ok(Self::Mysql(url.to_owned()));
        }
        let path = if let Some(rest) = url.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            rest
        } else if url.contains("://") {
            return Err(DbError::UnsupportedUrl(redact(url)));
        } else {
            url
        };
        if path.is_empty() {
            return Err(DbError::UnsupportedUrl(url.to_owned()));
        }
        if path == ":memory:" || path.contains("mode=memory") {
            return Err(DbError::InMemorySqlite);
        }
        Ok(Self::Sqlite(path.to_owned()))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Mysql(_) => Backend::Mysql,
        }
    }

    /// The URL with any password hidden, for messages and logs.
    pub fn display(&self) -> String {
        match self {
            Self::Postgres(url) | Self::Mysql(url) => redact(url),
            Self::Sqlite(path) => format!("sqlite://{path}"),
        }
    }
}

/// Replaces the password of `scheme://user:password@host` with `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The WAL file is cut back to this size whenever SQLite restarts it from
/// the beginning (after a checkpoint); without a limit it keeps its
/// high-water size, which a burst of writes beside steady readers leaves at
/// tens of MiB.
const SQLITE_WAL_LIMIT_BYTES: u64 = 4 << 20;

/// Set on every new SQLite connection. busy_timeout comes first so that the
/// switch to WAL waits for other connections instead of failing; WAL lets
/// readers run beside the one writer; SQLite leaves foreign keys off unless
/// asked, per connection.
fn sqlite_pragmas(busy_timeout_ms: u64) -> String {
    format!(
        "PRAGMA busy_timeout = {busy_timeout_ms};
PRAGMA journal_mode = WAL;
PRAGMA journal_size_limit = {SQLITE_WAL_LIMIT_BYTES};
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;"
    )
}

/// `url` with libpq's `connect_timeout`, unless it names one already.
fn with_connect_timeout(url: &str, seconds: u64) -> String {
    if url.contains("connect_timeout=") || seconds == 0 {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}connect_timeout={seconds}")
}

/// Opens one connection to `target` (with the SQLite pragmas applied).
pub fn establish(target: &DbTarget) -> Result<DbConnection, DbError> {
    establish_with(target, &DbTimeouts::default())
}

/// [`establish`] with explicit timeouts.
pub fn establish_with(target: &DbTarget, timeouts: &DbTimeouts) -> Result<DbConnection, DbError> {
    match target {
        DbTarget::Postgres(url) => {
            PgConnection::establish(&with_connect_timeout(url, timeouts.connect_timeout_seconds))
                .map(DbConnection::Pg)
                .map_err(|reason| DbError::Connect {
                    backend: Backend::Postgres,
                    url: redact(url),
                    reason,
                })
        }
        DbTarget::Sqlite(path) => {
            let mut conn =
                SqliteConnection::establish(path).map_err(|reason| DbError::Connect {
                    backend: Backend::Sqlite,
                    url: target.display(),
                    reason,
                })?;
            conn.batch_execute(&sqlite_pragmas(timeouts.sqlite_busy_timeout_ms))
                .map_err(|reason| DbError::Pragmas {
                    path: path.clone(),
                    reason,
                })?;
            Ok(DbConnection::Sqlite(conn))
        }
        DbTarget::Mysql(url) => {
            let mut conn = MysqlConnection::establish(url).map_err(|reason| DbError::Connect {
                backend: Backend::Mysql,
                url: redact(url),
                reason,
            })?;
            mysql_session(&mut conn, url)?;
            Ok(DbConnection::Mysql(conn))
        }
    }
}

/// Checks the server's version and sets up a new MariaDB/MySQL session.
///
/// READ COMMITTED, as PostgreSQL's default: InnoDB's REPEATABLE READ would
/// read a transaction's snapshot from before it waited for a lock, so the
/// quota's count-after-lock (`lock_project`) could miss a cluster another
/// transaction committed meanwhile. `sql_mode` rejects values that do not
/// fit instead of truncating them; diesel sets the time zone (UTC) and
/// utf8mb4 itself (diesel `src/mysql/connection/mod.rs`).
fn mysql_session(conn: &mut MysqlConnection, url: &str) -> Result<(), DbError> {
    use diesel::RunQueryDsl;
    let session = |reason| DbError::Session {
        url: redact(url),
        reason,
    };
    let version: String = diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>("VERSION()"))
        .get_result(conn)
        .map_err(session)?;
    check_mysql_version(&version).map_err(|server| DbError::ServerTooOld {
        url: redact(url),
        server,
    })?;
    conn.batch_execute(
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED;
SET SESSION sql_mode = 'STRICT_TRANS_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION';",
    )
    .map_err(session)
}

/// `Ok` when `VERSION()` (e.g. `10.11.19-MariaDB-0+deb12u1` or `8.0.36`)
/// names a server with `SKIP LOCKED`; else the server's name for the error.
fn check_mysql_version(version: &str) -> Result<(), String> {
    let mariadb = version.to_ascii_lowercase().contains("mariadb");
    // MariaDB 10 announced itself to old clients as `5.5.5-10.x.y-MariaDB`.
    let number = match version.strip_prefix("5.5.5-") {
        Some(rest) if mariadb => rest,
        _ => version,
    };
    let mut numbers = number
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    let found = match (
        numbers.next().flatten(),
        numbers.next().flatten(),
        numbers.next().flatten(),
    ) {
        (Some(major), Some(minor), patch) => (major, minor, patch.unwrap_or(0)),
        _ => return Err(format!("of an unknown version ({version})")),
    };
    let (name, min) = if mariadb {
        ("MariaDB", MARIADB_MIN)
    } else {
        ("MySQL", MYSQL_MIN)
    };
    if found >= min {
        Ok(())
    } else {
        Err(format!("{name} {version}"))
    }
}

/// The r2d2 manager. diesel's own `ConnectionManager` would establish a
/// `MultiConnection` by trying each backend in turn, which is what
/// [`DbTarget`] exists to avoid.
#[derive(Debug)]
pub struct ConnectionManager {
    target: DbTarget,
    timeouts: DbTimeouts,
}

impl diesel::r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = DbError;

    fn connect(&self) -> Result<DbConnection, DbError> {
        establish_with(&self.target, &self.timeouts)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), DbError> {
        conn.ping().map_err(DbError::Query)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        // A connection dropped while unwinding may be mid-transaction.
        std::thread::panicking() || conn.is_broken()
    }
}

pub type PooledConnection = diesel::r2d2::PooledConnection<ConnectionManager>;

/// What [`DbPool::usage`] reports.
#[derive(Debug, Clone, Copy)]
pub struct PoolUsage {
    pub connections: u32,
    pub idle: u32,
    pub max: u32,
}

/// A pool of connections to one database; cheap to clone.
#[derive(Clone)]
pub struct DbPool {
    pool: diesel::r2d2::Pool<ConnectionManager>,
    target: DbTarget,
    timeouts: DbTimeouts,
    /// SQLite only: the turn [`run_write`] waits for.
    writer: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl std::fmt::Debug for DbPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbPool")
            .field("url", &self.target.display())
            .field("state", &self.pool.state())
            .finish()
    }
}

impl DbPool {
    pub const DEFAULT_MAX_SIZE: u32 = 10;

    pub fn connect(url: &str) -> Result<Self, DbError> {
        Self::connect_with(url, Self::DEFAULT_MAX_SIZE)
    }

    /// Builds the pool after one direct connection attempt, so that a wrong
    /// URL or an unreachable server is reported at once with the driver's
    /// message rather than as a pool timeout.
    pub fn connect_with(url: &str, max_size: u32) -> Result<Self, DbError> {
        Self::open(url, max_size, DbTimeouts::default())
    }

    /// [`Self::connect_with`] with explicit timeouts.
    pub fn open(url: &str, max_size: u32, timeouts: DbTimeouts) -> Result<Self, DbError> {
        let target = Self::prepare(url)?;
        // Before the pool exists: its own first connection would otherwise
        // race this one to switch a new SQLite file to WAL.
        drop(establish_with(&target, &timeouts)?);
        Ok(Self::build(target, max_size, timeouts))
    }

    /// The pool without the first connection: it connects on first use, so
    /// a database that is away shows as errors on use (503s), not here.
    pub fn open_lazy(url: &str, max_size: u32, timeouts: DbTimeouts) -> Result<Self, DbError> {
        Ok(Self::build(Self::prepare(url)?, max_size, timeouts))
    }

    fn prepare(url: &str) -> Result<DbTarget, DbError> {
        let target = DbTarget::parse(url)?;
        if let DbTarget::Sqlite(path) = &target {
            prepare_sqlite_file(Path::new(path))?;
        }
        Ok(target)
    }

    fn build(target: DbTarget, max_size: u32, timeouts: DbTimeouts) -> Self {
        let pool = diesel::r2d2::Pool::builder()
            .max_size(max_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(timeouts.acquire())
            .build_unchecked(ConnectionManager {
                target: target.clone(),
                timeouts,
            });
        let writer = matches!(target, DbTarget::Sqlite(_)).then(Default::default);
        Self {
            pool,
            target,
            timeouts,
            writer,
        }
    }

    /// Connections open, idle, and the most there may be.
    pub fn usage(&self) -> PoolUsage {
        let state = self.pool.state();
        PoolUsage {
            connections: state.connections,
            idle: state.idle_connections,
            max: self.pool.max_size(),
        }
    }

    pub fn timeouts(&self) -> &DbTimeouts {
        &self.timeouts
    }

    pub fn get(&self) -> Result<PooledConnection, PoolError> {
        self.pool.get()
    }

    pub fn backend(&self) -> Backend {
        self.target.backend()
    }

    pub fn target(&self) -> &DbTarget {
        &self.target
    }
}

/// Creates the database's directory (0700) when missing and the file
/// itself (0600) before SQLite opens it, or tightens looser ones, -wal and
/// -shm included: it holds proxy passwords and the cloud's state.
fn prepare_sqlite_file(path: &Path) -> Result<(), DbError> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() && !parent.exists() {
            crate::files::private_dir(parent).map_err(|reason| DbError::CreateDir {
                path: parent.to_owned(),
                reason,
            })?;
        }
    }
    // A URI filename (`file:…?…`) is SQLite's to interpret.
    if path.to_string_lossy().starts_with("file:") {
        return Ok(());
    }
    crate::files::private_file(path).map_err(|reason| DbError::CreateFile {
        path: path.to_owned(),
        reason,
    })?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        crate::files::tighten_if_present(Path::new(&side), crate::files::FILE_MODE);
    }
    Ok(())
}

/// Runs `f` with a pooled connection on tokio's blocking pool, so sync
/// diesel never stalls the async workers. A panic inside `f` is re-raised in
/// the caller, as if `f` had been called directly.
///
/// Getting the connection is bounded by the acquire timeout, also when the
/// database stops answering on a connection the pool already holds (its
/// check on checkout would otherwise wait for the network for minutes):
/// the caller then gets [`Unavailable`], and `f` never runs, so a request
/// answered with an error has changed nothing. `f` itself is not bounded:
/// cutting a transaction off midway could not tell the caller whether it
/// committed.
pub async fn run_blocking<T, E, F>(pool: &DbPool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<PoolError> + From<Unavailable> + Send + 'static,
{
    run_within(pool, pool.timeouts.acquire(), None, f).await
}

/// [`run_blocking`] for work that writes. On SQLite the writers of this
/// process take turns, first come first served, before they take a
/// connection: SQLite has one writer at a time, and one that finds the lock
/// taken sleeps in SQLite's busy handler 1, 2, 5, 10, 15, 20, 25… ms
/// between retries (103 ms after eight), which at 16 concurrent POSTs made
/// the p99 about 110 ms for writes of well under a millisecond. Waiting for
/// the turn is bounded like a checkout (the acquire timeout, then
/// [`Unavailable`], `f` never run); the turn is held until `f` returns,
/// also when the caller has gone. PostgreSQL and MariaDB/MySQL lock rows,
/// so their writers run at once, as with [`run_blocking`].
pub async fn run_write<T, E, F>(pool: &DbPool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<PoolError> + From<Unavailable> + Send + 'static,
{
    let limit = pool.timeouts.acquire();
    let turn = match &pool.writer {
        None => None,
        Some(writer) => match tokio::time::timeout(limit, writer.clone().lock_owned()).await {
            Ok(turn) => Some(turn),
            Err(_) => return Err(Unavailable { waited: limit }.into()),
        },
    };
    run_within(pool, limit, turn, f).await
}

async fn run_within<T, E, F>(
    pool: &DbPool,
    limit: Duration,
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    f: F,
) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<PoolError> + From<Unavailable> + Send + 'static,
{
    let pool = pool.clone();
    let (checked_out, mut got_connection) = tokio::sync::oneshot::channel::<()>();
    // The caller's span (a request's, with its id) follows the work onto
    // the blocking pool, so what the closure logs names the request.
    let span = tracing::Span::current();
    let mut task = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        // Released when this task ends, not when the caller stops waiting.
        let _turn = turn;
        let mut conn = pool.get()?;
        if checked_out.send(()).is_err() {
            // The caller gave up waiting and has answered already.
            return Err(Unavailable { waited: limit }.into());
        }
        f(&mut conn)
    });
    let joined = tokio::select! {
        biased;
        joined = &mut task => joined,
        // Sent, or dropped because the task ended: either way, wait for it.
        _ = &mut got_connection => task.await,
        _ = tokio::time::sleep(limit) => {
            // Closed first, so `f` either started already (then its outcome
            // is the answer) or never will.
            got_connection.close();
            if got_connection.try_recv().is_err() {
                return Err(Unavailable { waited: limit }.into());
            }
            task.await
        }
    };
    match joined {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Blocking tasks are only cancelled when the runtime shuts down.
        Err(e) => panic!("database task cancelled: {e}"),
    }
}

/// `SELECT 1` within the healthcheck timeout, connection included (it
/// writes nothing, so it can be cut off at any point).
pub async fn probe(pool: &DbPool) -> Result<(), DbError> {
    let limit = pool.timeouts.healthcheck();
    let query = run_within(pool, limit, None, |conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query("SELECT 1")
            .execute(conn)
            .map_err(DbError::from)
    });
    match tokio::time::timeout(limit, query).await {
        Ok(result) => result.map(drop),
        Err(_) => Err(Unavailable { waited: limit }.into()),
    }
}

fn migration_error(e: impl std::fmt::Display) -> DbError {
    DbError::Migration(e.to_string())
}

/// Applies every pending migration; returns the versions applied, oldest first.
pub fn migrate(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    let applied = match conn {
        DbConnection::Pg(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS),
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
        DbConnection::Mysql(c) => c.run_pending_migrations(MYSQL_MIGRATIONS),
    }
    .map_err(migration_error)?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

/// The latest applied migration, `None` on an empty database.
pub fn schema_version(conn: &mut DbConnection) -> Result<Option<String>, DbError> {
    let applied = match conn {
        DbConnection::Pg(c) => c.applied_migrations(),
        DbConnection::Sqlite(c) => c.applied_migrations(),
        DbConnection::Mysql(c) => c.applied_migrations(),
    }
    .map_err(migration_error)?;
    // Versions are fixed-width timestamps, so the largest string is the latest.
    Ok(applied.iter().map(|v| v.to_string()).max())
}

/// Versions this binary knows but the database has not applied yet.
pub fn pending_migrations(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    let pending: Vec<String> = match conn {
        DbConnection::Pg(c) => c
            .pending_migrations(POSTGRES_MIGRATIONS)
            .map_err(migration_error)?
            .iter()
            .map(|m| m.name().version().to_string())
            .collect(),
        DbConnection::Sqlite(c) => c
            .pending_migrations(SQLITE_MIGRATIONS)
            .map_err(migration_error)?
            .iter()
            .map(|m| m.name().version().to_string())
            .collect(),
        DbConnection::Mysql(c) => c
            .pending_migrations(MYSQL_MIGRATIONS)
            .map_err(migration_error)?
            .iter()
            .map(|m| m.name().version().to_string())
            .collect(),
    };
    Ok(pending)
}

/// What `magnumd serve` does before serving: SQLite is migrated in place
/// (one process owns the file); on PostgreSQL and MariaDB/MySQL migrations
/// are a release step (`magnumd db upgrade`), so a schema that is behind is
/// an error. Returns the versions applied.
pub fn prepare_for_serve(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    match conn {
        DbConnection::Sqlite(_) => migrate(conn),
        DbConnection::Pg(_) | DbConnection::Mysql(_) => {
            let pending = pending_migrations(conn)?;
            match pending.last() {
                None => Ok(Vec::new()),
                Some(latest) => Err(DbError::SchemaBehind {
                    current: schema_version(conn)?.unwrap_or_else(|| "none".to_owned()),
                    latest: latest.clone(),
                    pending: pending.len(),
                }),
            }
        }
    }
}

/// Serialises writers of one project until the surrounding transaction
/// ends, so a count-then-insert (the cluster quota) cannot race. PostgreSQL
/// takes a transaction-scoped advisory lock. MariaDB/MySQL lock the
/// project's row of `project_locks` (created on first use): `GET_LOCK` would
/// outlive the transaction (it is the session's) and Galera does not
/// replicate it, whereas a row lock ends with the transaction, and an
/// upsert takes it exclusively at once (a plain `INSERT IGNORE` then
/// `SELECT … FOR UPDATE` would hold a shared lock first, and two such
/// transactions would deadlock upgrading it). SQLite needs nothing, because
/// its first write in a transaction already holds the database's only
/// write lock until commit.
pub fn lock_project(conn: &mut DbConnection, project_id: &str) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;
    match conn {
        DbConnection::Pg(c) => {
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind::<diesel::sql_types::Text, _>(project_id)
                .execute(c)?;
        }
        DbConnection::Mysql(c) => {
            diesel::sql_query(
                "INSERT INTO project_locks (project_id) VALUES (?) \
                 ON DUPLICATE KEY UPDATE project_id = project_id",
            )
            .bind::<diesel::sql_types::Text, _>(project_id)
            .execute(c)?;
        }
        DbConnection::Sqlite(_) => {}
    }
    Ok(())
}

/// Locks one row of `table` (by `uuid`) until the transaction ends, so a
/// read-modify-write of it cannot lose a concurrent update. Not on SQLite:
/// there `write_transaction` already holds the database's lock.
pub fn lock_row(conn: &mut DbConnection, table: &str, uuid: &str) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;
    // `table` is one of ours, never input.
    match conn {
        DbConnection::Pg(c) => {
            diesel::sql_query(format!("SELECT 1 FROM {table} WHERE uuid = $1 FOR UPDATE"))
                .bind::<diesel::sql_types::Text, _>(uuid)
                .execute(c)?;
        }
        DbConnection::Mysql(c) => {
            diesel::sql_query(format!("SELECT 1 FROM {table} WHERE uuid = ? FOR UPDATE"))
                .bind::<diesel::sql_types::Text, _>(uuid)
                .execute(c)?;
        }
        DbConnection::Sqlite(_) => {}
    }
    Ok(())
}

/// Whether writers of one row must lock it first (`lock_row`): every
/// backend but SQLite, whose writers are serialised anyway.
pub fn has_row_locks(conn: &DbConnection) -> bool {
    !matches!(conn, DbConnection::Sqlite(_))
}

/// A transaction that will write. On SQLite it takes the database's write
/// lock with its first statement: a deferred transaction that reads first
/// fails with "database is locked" when it later writes after another
/// writer committed (WAL snapshots cannot be upgraded), whereas a first
/// write waits for the lock (`busy_timeout`). PostgreSQL and MariaDB/MySQL
/// need nothing (row locks).
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::Connection;
    conn.transaction(|conn| {
        if let DbConnection::Sqlite(c) = conn {
            use diesel::RunQueryDsl;
            // A write statement that changes nothing still takes the lock.
            diesel::sql_query("UPDATE jobs SET id = id WHERE 1 = 0").execute(c)?;
        }
        f(conn)
    })
}
