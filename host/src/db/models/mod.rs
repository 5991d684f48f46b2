//! Rows and the queries on them. Every function takes a `&mut DbConnection`
//! and returns `diesel::QueryResult`; a missing row is `Error::NotFound`.
//! JSON columns are plain `String`s here: the API layer owns their shape.
//!
//! MariaDB/MySQL have no `RETURNING`, so a write that returns its row is a
//! write then a read by key (uuid, or the id the insert generated) on the
//! same connection. The few statements that still use `RETURNING` on
//! PostgreSQL and SQLite read the table's columns by position: so every row
//! struct lists its fields in the order of `schema.rs`.

pub mod certificate;
pub mod cluster;
pub mod cluster_template;
pub mod federation;
pub mod job;
pub mod local_file;
pub mod local_ipam;
pub mod local_stack;
pub mod magnum_service;
pub mod nodegroup;
pub mod quota;

pub use certificate::{Certificate, NewCertificate};
pub use cluster::{Cluster, HealthRow, NewCluster};
pub use cluster_template::{ClusterTemplate, NewClusterTemplate, TemplateScope};
pub use federation::{Federation, NewFederation};
pub use job::{Job, NewJob};
pub use local_file::LocalFile;
pub use local_ipam::LocalIpam;
pub use local_stack::{LocalStack, NewLocalStack, StackHead};
pub use magnum_service::MagnumService;
pub use nodegroup::{NewNodeGroup, NodeGroup};
pub use quota::Quota;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::QueryResult;

/// The current UTC time at the precision every backend stores (PostgreSQL
/// and MariaDB's DATETIME(6) keep microseconds), so a row reads back equal
/// to what was written.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

/// Upstream's `max_limit`: the largest page, and the page size when none is asked.
pub const MAX_LIMIT: i64 = 1000;

/// Upstream's list pagination: `limit`, `marker` (the uuid of the last row of
/// the previous page), `sort_key` and `sort_dir`; `id` breaks ties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub limit: Option<i64>,
    pub marker: Option<String>,
    pub sort_key: SortKey,
    pub sort_dir: SortDir,
}

impl Page {
    /// The page size, clamped to 1..=MAX_LIMIT (the API rejects `limit <= 0`
    /// before it gets here).
    pub fn limit(&self) -> i64 {
        self.limit.map_or(MAX_LIMIT, |l| l.clamp(1, MAX_LIMIT))
    }
}

/// The columns a list can be sorted on: the ones every listed table has and
/// that are never NULL (NULLs sort first on SQLite and last on PostgreSQL,
/// which would make pages differ per backend).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    #[default]
    Id,
    Uuid,
    Name,
    CreatedAt,
}

#[derive(Debug, thiserror::Error)]
#[error("The sort_key value \"{0}\" is an invalid field for sorting")]
pub struct InvalidSortKey(pub String);

impl std::str::FromStr for SortKey {
    type Err = InvalidSortKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "id" => Ok(Self::Id),
            "uuid" => Ok(Self::Uuid),
            "name" => Ok(Self::Name),
            "created_at" => Ok(Self::CreatedAt),
            other => Err(InvalidSortKey(other.to_owned())),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortDir {
    #[default]
    Asc,
    Desc,
}

#[derive(Debug, thiserror::Error)]
#[error("Invalid sort direction: {0}. Acceptable values are 'asc' or 'desc'")]
pub struct InvalidSortDir(pub String);

impl std::str::FromStr for SortDir {
    type Err = InvalidSortDir;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "asc" => Ok(Self::Asc),
            "desc" => Ok(Self::Desc),
            other => Err(InvalidSortDir(other.to_owned())),
        }
    }
}

/// Keyset pagination on a boxed query: rows strictly after `$after`
/// (`Option<(sort value, id)>`) in `(col, id)` order, then that order.
macro_rules! seek {
    ($query:expr, $col:expr, $id:expr, $after:expr, $dir:expr) => {{
        let mut query = $query;
        if let Some((value, id)) = $after {
            query = match $dir {
                $crate::db::models::SortDir::Asc => {
                    query.filter($col.gt(value.clone()).or($col.eq(value).and($id.gt(id))))
                }
                $crate::db::models::SortDir::Desc => {
                    query.filter($col.lt(value.clone()).or($col.eq(value).and($id.lt(id))))
                }
            };
        }
        match $dir {
            $crate::db::models::SortDir::Asc => {
                query.then_order_by($col.asc()).then_order_by($id.asc())
            }
            $crate::db::models::SortDir::Desc => {
                query.then_order_by($col.desc()).then_order_by($id.desc())
            }
        }
    }};
}

/// Applies `$page` to a boxed query on `$table`, whose model has `id`,
/// `uuid`, `name` and `created_at`; `$marker` is the marker row, if any.
macro_rules! paginate {
    ($query:expr, $table:ident, $page:expr, $marker:expr) => {{
        let page: &$crate::db::models::Page = $page;
        let marker = $marker;
        let query = $query;
        let query = match page.sort_key {
            $crate::db::models::SortKey::Id => {
                let mut query = query;
                if let Some(m) = &marker {
                    query = match page.sort_dir {
                        $crate::db::models::SortDir::Asc => query.filter($table::id.gt(m.id)),
                        $crate::db::models::SortDir::Desc => query.filter($table::id.lt(m.id)),
                    };
                }
                match page.sort_dir {
                    $crate::db::models::SortDir::Asc => query.then_order_by($table::id.asc()),
                    $crate::db::models::SortDir::Desc => query.then_order_by($table::id.desc()),
                }
            }
            $crate::db::models::SortKey::Uuid => $crate::db::models::seek!(
                query,
                $table::uuid,
                $table::id,
                marker.as_ref().map(|m| (m.uuid.clone(), m.id)),
                page.sort_dir
            ),
            $crate::db::models::SortKey::Name => $crate::db::models::seek!(
                query,
                $table::name,
                $table::id,
                marker.as_ref().map(|m| (m.name.clone(), m.id)),
                page.sort_dir
            ),
            $crate::db::models::SortKey::CreatedAt => $crate::db::models::seek!(
                query,
                $table::created_at,
                $table::id,
                marker.as_ref().map(|m| (m.created_at, m.id)),
                page.sort_dir
            ),
        };
        query.limit(page.limit())
    }};
}

/// Runs the same diesel expression against the concrete connection, for the
/// statements the multi-backend query builder does not offer (ON CONFLICT,
/// locking clauses): the SQL is generated per backend. MariaDB/MySQL get
/// their own expression (`mysql c => …`): their upserts have no conflict
/// target (`ON DUPLICATE KEY UPDATE`).
macro_rules! with_backend {
    ($conn:expr, $c:ident => $body:expr, mysql $m:ident => $mysql:expr) => {
        match $conn {
            $crate::db::DbConnection::Pg($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
            $crate::db::DbConnection::Mysql($m) => $mysql,
        }
    };
}

pub(crate) use {paginate, seek, with_backend};

/// `Err(NotFound)` when a statement by key touched no row.
pub(crate) fn expect_one(affected: usize) -> diesel::QueryResult<()> {
    if affected == 0 {
        Err(diesel::result::Error::NotFound)
    } else {
        Ok(())
    }
}

/// An insert that may hit a unique key: `Ok(0)` then, as PostgreSQL's and
/// SQLite's `ON CONFLICT DO NOTHING` report it. For MariaDB/MySQL, whose
/// `ON DUPLICATE KEY UPDATE` counts a no-op update as a row (diesel sets
/// `CLIENT_FOUND_ROWS`), and whose `INSERT IGNORE` would also swallow
/// foreign-key errors. A failed statement there leaves the transaction
/// usable.
pub(crate) fn unless_duplicate(inserted: QueryResult<usize>) -> QueryResult<usize> {
    match inserted {
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(0),
        other => other,
    }
}

pub(crate) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
