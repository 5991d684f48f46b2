use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{expect_one, new_uuid, now, paginate, Page};
use crate::db::{schema::federation, DbConnection};

/// A row of `federation` (upstream §2.1). Upstream's conductor never
/// implemented federations; the table keeps the API's shape.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, AsChangeset)]
#[diesel(table_name = federation)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
#[diesel(treat_none_as_null = true)]
pub struct Federation {
    pub id: i32,
    #[diesel(skip_update)]
    pub uuid: String,
    pub name: String,
    #[diesel(skip_update)]
    pub project_id: String,
    pub hostcluster_id: Option<String>,
    pub member_ids: String,
    pub status: Option<String>,
    pub status_reason: Option<String>,
    pub properties: String,
    #[diesel(skip_update)]
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = federation)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
pub struct NewFederation {
    pub uuid: String,
    pub name: String,
    pub project_id: String,
    pub hostcluster_id: Option<String>,
    pub member_ids: String,
    pub status: Option<String>,
    pub properties: String,
}

impl NewFederation {
    pub fn new(project_id: &str, name: &str) -> Self {
        Self {
            uuid: new_uuid(),
            name: name.to_owned(),
            project_id: project_id.to_owned(),
            hostcluster_id: None,
            member_ids: "[]".to_owned(),
            status: None,
            properties: "{}".to_owned(),
        }
    }
}

impl Federation {
    pub fn insert(conn: &mut DbConnection, new: &NewFederation) -> QueryResult<Self> {
        diesel::insert_into(federation::table)
            .values((new, federation::created_at.eq(now())))
            .execute(conn)?;
        Self::find_by_uuid(conn, &new.uuid)
    }

    pub fn find_by_uuid(conn: &mut DbConnection, uuid: &str) -> QueryResult<Self> {
        federation::table
            .filter(federation::uuid.eq(uuid))
            .select(Self::as_select())
            .first(conn)
    }

    /// Every federation with this name in the project (`None`: any project).
    pub fn find_by_name(
        conn: &mut DbConnection,
        project_id: Option<&str>,
        name: &str,
    ) -> QueryResult<Vec<Self>> {
        let mut query = federation::table
            .filter(federation::name.eq(name))
            .into_boxed();
        if let Some(p) = project_id {
            query = query.filter(federation::project_id.eq(p));
        }
        query
            .order(federation::id.asc())
            .select(Self::as_select())
            .load(conn)
    }

    /// A page of the project's federations (`None`: every project's).
    pub fn list(
        conn: &mut DbConnection,
        project_id: Option<&str>,
        page: &Page,
    ) -> QueryResult<Vec<Self>> {
        let marker = match &page.marker {
            Some(uuid) => Some(Self::find_by_uuid(conn, uuid)?),
            None => None,
        };
        let mut query = federation::table.into_boxed();
        if let Some(p) = project_id {
            query = query.filter(federation::project_id.eq(p));
        }
        paginate!(query, federation, page, marker)
            .select(Self::as_select())
            .load(conn)
    }

    pub fn update(&self, conn: &mut DbConnection) -> QueryResult<Self> {
        let mut row = self.clone();
        row.updated_at = Some(now());
        expect_one(
            diesel::update(federation::table.find(self.id))
                .set(&row)
                .execute(conn)?,
        )?;
        federation::table
            .find(self.id)
            .select(Self::as_select())
            .first(conn)
    }

    pub fn delete(conn: &mut DbConnection, uuid: &str) -> QueryResult<()> {
        expect_one(
            diesel::delete(federation::table.filter(federation::uuid.eq(uuid))).execute(conn)?,
        )
    }
}
