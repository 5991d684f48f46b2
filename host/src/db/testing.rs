//! Per-test databases: a fresh temporary SQLite file, a fresh schema on
//! the PostgreSQL server at `TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`), or a fresh
//! database on the MariaDB/MySQL server at `TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306/`), dropped after the test. An unreachable
//! server skips that backend's part of a test with a message, unless
//! `CI=true`, where it fails.

use std::sync::OnceLock;

use diesel::{connection::SimpleConnection, pg::PgConnection, Connection};

use super::{establish, migrate, Backend, DbConnection, DbPool, DbTarget, PooledConnection};

pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const DEFAULT_TEST_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/";

/// Small, so that tests running in parallel stay under the server's
/// connection limit.
const TEST_POOL_SIZE: u32 = 6;

pub struct TestDatabase {
    pub pool: DbPool,
    cleanup: Cleanup,
}

enum Cleanup {
    /// Held to delete the directory on drop.
    Sqlite(tempfile::TempDir),
    Postgres {
        admin_url: String,
        schema: String,
    },
    Mysql {
        admin_url: String,
        database: String,
    },
}

fn test_mysql_url() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| DEFAULT_TEST_MYSQL_URL.to_owned())
}

/// Whether the MariaDB/MySQL server answers (and is recent enough),
/// checked once per test process.
fn mysql_reachable() -> Result<(), String> {
    static REACHABLE: OnceLock<Result<(), String>> = OnceLock::new();
    REACHABLE
        .get_or_init(|| {
            mysql_admin(&test_mysql_url())
                .map(drop)
                .map_err(|e| e.to_string().trim().to_owned())
        })
        .clone()
}

fn mysql_admin(admin_url: &str) -> Result<DbConnection, super::DbError> {
    establish(&DbTarget::Mysql(admin_url.to_owned()))
}

/// `url` (`mysql://USER@HOST[:PORT][/DB][?QUERY]`) naming `database`.
fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("mysql", url));
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}/{database}{query}")
}

/// Fails under CI=true, else tells why `backend`'s part of the test is
/// skipped. `None` either way, for the caller to return.
fn unreachable<T>(backend: &str, url: &str, variable: &str, reason: &str) -> Option<T> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{backend} at {url} is unreachable and CI=true, so the {backend} tests \
             cannot be skipped: {reason}"
        );
    }
    eprintln!(
        "skipping the {backend} part of this test: {url} is unreachable ({reason}); \
         start {backend} or set {variable}"
    );
    None
}

fn test_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_owned())
}

/// Whether the PostgreSQL server answers, checked once per test process.
fn postgres_reachable() -> Result<(), String> {
    static REACHABLE: OnceLock<Result<(), String>> = OnceLock::new();
    REACHABLE
        .get_or_init(|| {
            PgConnection::establish(&test_database_url())
                .map(drop)
                .map_err(|e| e.to_string().trim().to_owned())
        })
        .clone()
}

/// `url` with `search_path` set to `schema` for every connection (libpq's
/// `options` parameter).
fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

impl TestDatabase {
    /// An empty database without migrations.
    pub fn empty(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("magnum.sqlite");
                let url = format!("sqlite://{}", path.display());
                let pool = DbPool::connect_with(&url, TEST_POOL_SIZE).expect("open SQLite");
                Some(Self {
                    pool,
                    cleanup: Cleanup::Sqlite(dir),
                })
            }
            Backend::Postgres => {
                let admin_url = test_database_url();
                if let Err(reason) = postgres_reachable() {
                    return unreachable("PostgreSQL", &admin_url, "TEST_DATABASE_URL", &reason);
                }
                let schema = format!("magnum_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::establish(&admin_url).expect("connect PostgreSQL");
                admin
                    .batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .expect("create test schema");
                let pool =
                    DbPool::connect_with(&with_search_path(&admin_url, &schema), TEST_POOL_SIZE)
                        .expect("open PostgreSQL pool");
                Some(Self {
                    pool,
                    cleanup: Cleanup::Postgres { admin_url, schema },
                })
            }
            Backend::Mysql => {
                let admin_url = test_mysql_url();
                if let Err(reason) = mysql_reachable() {
                    return unreachable("MariaDB", &admin_url, "TEST_MYSQL_URL", &reason);
                }
                let database = format!("magnum_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = mysql_admin(&admin_url).expect("connect MariaDB");
                admin
                    .batch_execute(&format!(
                        "CREATE DATABASE {database} \
                         CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                    ))
                    .expect("create test database");
                let pool =
                    DbPool::connect_with(&with_database(&admin_url, &database), TEST_POOL_SIZE)
                        .expect("open MariaDB pool");
                Some(Self {
                    pool,
                    cleanup: Cleanup::Mysql {
                        admin_url,
                        database,
                    },
                })
            }
        }
    }

    /// A database with every migration applied.
    pub fn new(backend: Backend) -> Option<Self> {
        let db = Self::empty(backend)?;
        migrate(&mut db.conn()).expect("migrations apply");
        Some(db)
    }

    /// The URL other processes (a `magnumd`) open this database with.
    pub fn url(&self) -> String {
        match &self.cleanup {
            Cleanup::Sqlite(dir) => {
                format!("sqlite://{}", dir.path().join("magnum.sqlite").display())
            }
            Cleanup::Postgres { admin_url, schema } => with_search_path(admin_url, schema),
            Cleanup::Mysql {
                admin_url,
                database,
            } => with_database(admin_url, database),
        }
    }

    /// The SQLite database file (for tests that read it raw).
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        match &self.cleanup {
            Cleanup::Sqlite(dir) => Some(dir.path().join("magnum.sqlite")),
            Cleanup::Postgres { .. } | Cleanup::Mysql { .. } => None,
        }
    }

    pub fn conn(&self) -> PooledConnection {
        self.pool.get().expect("pooled connection")
    }

    pub fn backend(&self) -> Backend {
        self.pool.backend()
    }

    /// The tables in the database, without diesel's own bookkeeping.
    pub fn table_names(&self) -> Vec<String> {
        use diesel::{sql_types::Text, QueryableByName, RunQueryDsl};
        #[derive(QueryableByName)]
        struct Name {
            #[diesel(sql_type = Text)]
            name: String,
        }
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name"
            }
            Backend::Postgres => {
                "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables \
                 WHERE table_schema = current_schema() ORDER BY name"
            }
            Backend::Mysql => {
                "SELECT CAST(table_name AS CHAR) AS name FROM information_schema.tables \
                 WHERE table_schema = DATABASE() ORDER BY name"
            }
        };
        let conn: &mut DbConnection = &mut self.conn();
        diesel::sql_query(sql)
            .load::<Name>(conn)
            .expect("list tables")
            .into_iter()
            .map(|n| n.name)
            .filter(|n| n != "__diesel_schema_migrations")
            .collect()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Best effort: a failed drop must not hide the test's own result.
        match &self.cleanup {
            Cleanup::Postgres { admin_url, schema } => {
                if let Ok(mut admin) = PgConnection::establish(admin_url) {
                    let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
                }
            }
            Cleanup::Mysql {
                admin_url,
                database,
            } => {
                if let Ok(mut admin) = mysql_admin(admin_url) {
                    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {database}"));
                }
            }
            Cleanup::Sqlite(_) => {}
        }
    }
}

/// Defines `mod $name { fn sqlite(); fn postgres(); fn mysql(); }`, each running the body
/// `|db: &TestDatabase| { … }` on a fresh, migrated database of that backend.
#[cfg(test)]
macro_rules! db_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body(db: &$crate::db::testing::TestDatabase) {
                let f: &dyn Fn(&$crate::db::testing::TestDatabase) = &$body;
                f(db)
            }

            #[test]
            fn sqlite() {
                if let Some(db) =
                    $crate::db::testing::TestDatabase::new($crate::db::Backend::Sqlite)
                {
                    body(&db);
                }
            }

            #[test]
            fn postgres() {
                if let Some(db) =
                    $crate::db::testing::TestDatabase::new($crate::db::Backend::Postgres)
                {
                    body(&db);
                }
            }

            #[test]
            fn mysql() {
                if let Some(db) = $crate::db::testing::TestDatabase::new($crate::db::Backend::Mysql)
                {
                    body(&db);
                }
            }
        }
    };
}

#[cfg(test)]
pub(crate) use db_test;
