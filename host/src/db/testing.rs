//! Per-test databases: a fresh temporary SQLite file, or a fresh schema on
//! the PostgreSQL server at `TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`), dropped after the
//! test. An unreachable server skips the PostgreSQL half of a test with a
//! message, unless `CI=true`, where it fails.

use std::sync::OnceLock;

use diesel::{connection::SimpleConnection, pg::PgConnection, Connection};

use super::{migrate, Backend, DbConnection, DbPool, PooledConnection};

pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

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
                    if std::env::var("CI").as_deref() == Ok("true") {
                        panic!(
                            "PostgreSQL at {admin_url} is unreachable and CI=true, so the \
                             PostgreSQL tests cannot be skipped: {reason}"
                        );
                    }
                    eprintln!(
                        "skipping the PostgreSQL half of this test: {admin_url} is \
                         unreachable ({reason}); start PostgreSQL or set TEST_DATABASE_URL"
                    );
                    return None;
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
        }
    }

    /// The SQLite database file (for tests that read it raw).
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        match &self.cleanup {
            Cleanup::Sqlite(dir) => Some(dir.path().join("magnum.sqlite")),
            Cleanup::Postgres { .. } => None,
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
        if let Cleanup::Postgres { admin_url, schema } = &self.cleanup {
            // Best effort: a failed drop must not hide the test's own result.
            if let Ok(mut admin) = PgConnection::establish(admin_url) {
                let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

/// Defines `mod $name { fn sqlite(); fn postgres(); }`, each running the body
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
        }
    };
}

#[cfg(test)]
pub(crate) use db_test;
