use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{expect_one, now, with_backend, MAX_LIMIT};
use crate::db::{schema::quotas, DbConnection};

/// A row of `quotas`; `(project_id, resource)` is unique. The only resource
/// upstream knows is `Cluster`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = quotas)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
pub struct Quota {
    pub id: i32,
    pub project_id: String,
    pub resource: String,
    pub hard_limit: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

impl Quota {
    /// A duplicate `(project_id, resource)` is `DatabaseError(UniqueViolation, _)`
    /// (upstream's 409 on quota create).
    pub fn insert(
        conn: &mut DbConnection,
        project_id: &str,
        resource: &str,
        hard_limit: i32,
    ) -> QueryResult<Self> {
        diesel::insert_into(quotas::table)
            .values((
                quotas::project_id.eq(project_id),
                quotas::resource.eq(resource),
                quotas::hard_limit.eq(hard_limit),
                quotas::created_at.eq(now()),
            ))
            .execute(conn)?;
        Self::find(conn, project_id, resource)
    }

    /// Sets the limit, creating the row if there is none.
    pub fn upsert(
        conn: &mut DbConnection,
        project_id: &str,
        resource: &str,
        hard_limit: i32,
    ) -> QueryResult<Self> {
        let at = now();
        let row = (
            quotas::project_id.eq(project_id),
            quotas::resource.eq(resource),
            quotas::hard_limit.eq(hard_limit),
            quotas::created_at.eq(at),
        );
        let changes = (
            quotas::hard_limit.eq(hard_limit),
            quotas::updated_at.eq(Some(at)),
        );
        with_backend!(conn, c => diesel::insert_into(quotas::table)
            .values(row)
            .on_conflict((quotas::project_id, quotas::resource))
            .do_update()
            .set(changes)
            .execute(c),
            // The only unique key besides the id is (project_id, resource).
            mysql c => diesel::insert_into(quotas::table)
            .values(row)
            .on_conflict(diesel::dsl::DuplicatedKeys)
            .do_update()
            .set(changes)
            .execute(c))?;
        Self::find(conn, project_id, resource)
    }

    pub fn find(conn: &mut DbConnection, project_id: &str, resource: &str) -> QueryResult<Self> {
        quotas::table
            .filter(quotas::project_id.eq(project_id))
            .filter(quotas::resource.eq(resource))
            .select(Self::as_select())
            .first(conn)
    }

    /// Quotas in id order after `marker` (upstream's quota marker is the id);
    /// `project_id: None` lists every project's.
    pub fn list(
        conn: &mut DbConnection,
        project_id: Option<&str>,
        limit: Option<i64>,
        marker: Option<i32>,
    ) -> QueryResult<Vec<Self>> {
        let mut query = quotas::table.into_boxed();
        if let Some(project_id) = project_id {
            query = query.filter(quotas::project_id.eq(project_id));
        }
        if let Some(marker) = marker {
            query = query.filter(quotas::id.gt(marker));
        }
        query
            .order(quotas::id.asc())
            .limit(limit.map_or(MAX_LIMIT, |l| l.clamp(1, MAX_LIMIT)))
            .select(Self::as_select())
            .load(conn)
    }

    pub fn delete(conn: &mut DbConnection, project_id: &str, resource: &str) -> QueryResult<()> {
        expect_one(
            diesel::delete(
                quotas::table
                    .filter(quotas::project_id.eq(project_id))
                    .filter(quotas::resource.eq(resource)),
            )
            .execute(conn)?,
        )
    }
}
