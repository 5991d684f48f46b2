use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{expect_one, new_uuid, now};
use crate::db::{schema::local_stack, DbConnection};

/// A stack of the embedded `local` orchestrator (what Heat keeps upstream).
/// `files`, `parameters`, `outputs` and `state` are JSON documents. The
/// files are the `local_file` of `files_sha256` when it is set (`files` is
/// then `{}`) and `state` is packed against them in `state_z`; rows written
/// before that table hold them inline, the top-level template's text in
/// `template` (no longer written) and their state as JSON.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, AsChangeset)]
#[diesel(table_name = local_stack)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
#[diesel(treat_none_as_null = true)]
pub struct LocalStack {
    pub id: String,
    pub name: String,
    #[diesel(skip_update)]
    pub project_id: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub template: String,
    pub files: String,
    pub parameters: String,
    pub outputs: String,
    #[diesel(skip_update)]
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
    /// The orchestrator's working state (`crate::orchestrator::local`).
    pub state: String,
    pub files_sha256: Option<String>,
    pub state_z: Option<Vec<u8>>,
}

/// What tells whether a stack changed, without its JSON documents.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = local_stack)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
pub struct StackHead {
    pub id: String,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = local_stack)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
pub struct NewLocalStack {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub template: String,
    pub files: String,
    pub parameters: String,
    pub outputs: String,
    pub state: String,
    pub files_sha256: Option<String>,
    pub state_z: Option<Vec<u8>>,
}

impl NewLocalStack {
    /// A `CREATE_IN_PROGRESS` stack with a fresh id.
    pub fn new(project_id: &str, name: &str, template: &str, parameters: &str) -> Self {
        Self {
            id: new_uuid(),
            name: name.to_owned(),
            project_id: project_id.to_owned(),
            status: "CREATE_IN_PROGRESS".to_owned(),
            status_reason: None,
            template: template.to_owned(),
            files: "{}".to_owned(),
            parameters: parameters.to_owned(),
            outputs: "{}".to_owned(),
            state: "{}".to_owned(),
            files_sha256: None,
            state_z: None,
        }
    }
}

impl LocalStack {
    pub fn insert(conn: &mut DbConnection, new: &NewLocalStack) -> QueryResult<Self> {
        Self::insert_at(conn, new, now())
    }

    /// Inserts with an explicit creation time (the orchestrator's clock).
    pub fn insert_at(
        conn: &mut DbConnection,
        new: &NewLocalStack,
        created_at: NaiveDateTime,
    ) -> QueryResult<Self> {
        diesel::insert_into(local_stack::table)
            .values((new, local_stack::created_at.eq(created_at)))
            .execute(conn)?;
        Self::find(conn, &new.id)
    }

    /// Like [`Self::find`], locking the row until the transaction ends on
    /// PostgreSQL and MariaDB/MySQL (SQLite's writers are serialised
    /// anyway), so two processes cannot both start an action on one stack.
    pub fn find_for_update(conn: &mut DbConnection, id: &str) -> QueryResult<Self> {
        match conn {
            DbConnection::Pg(c) => local_stack::table
                .find(id)
                .select(Self::as_select())
                .for_update()
                .first(c),
            DbConnection::Mysql(c) => local_stack::table
                .find(id)
                .select(Self::as_select())
                .for_update()
                .first(c),
            DbConnection::Sqlite(c) => local_stack::table
                .find(id)
                .select(Self::as_select())
                .first(c),
        }
    }

    /// The stack named `name` (names are unique).
    pub fn find_by_name(conn: &mut DbConnection, name: &str) -> QueryResult<Self> {
        local_stack::table
            .filter(local_stack::name.eq(name))
            .select(Self::as_select())
            .first(conn)
    }

    pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Self> {
        local_stack::table
            .find(id)
            .select(Self::as_select())
            .first(conn)
    }

    /// The heads of the stacks among `ids` that exist.
    pub fn heads(conn: &mut DbConnection, ids: &[String]) -> QueryResult<Vec<StackHead>> {
        let mut heads = Vec::with_capacity(ids.len());
        // Bounded IN lists: SQLite and PostgreSQL cap bind parameters.
        for chunk in ids.chunks(1000) {
            heads.extend(
                local_stack::table
                    .filter(local_stack::id.eq_any(chunk))
                    .select(StackHead::as_select())
                    .load(conn)?,
            );
        }
        Ok(heads)
    }

    /// Saves every updatable column and stamps `updated_at`.
    pub fn update(&self, conn: &mut DbConnection) -> QueryResult<Self> {
        let mut row = self.clone();
        row.updated_at = Some(now());
        expect_one(
            diesel::update(local_stack::table.find(&self.id))
                .set(&row)
                .execute(conn)?,
        )?;
        local_stack::table
            .find(&self.id)
            .select(Self::as_select())
            .first(conn)
    }

    pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
        expect_one(diesel::delete(local_stack::table.find(id)).execute(conn)?)
    }
}
