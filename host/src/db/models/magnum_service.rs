use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{now, with_backend};
use crate::db::{schema::magnum_service, DbConnection};

/// A row of `magnum_service` (`GET /v1/mservices`); `(host, binary)` is unique.
/// `state` (up/down) is computed at request time from `last_seen_up`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = magnum_service)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
pub struct MagnumService {
    pub id: i32,
    pub host: String,
    pub binary: String,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub last_seen_up: Option<NaiveDateTime>,
    pub forced_down: bool,
    pub report_count: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

impl MagnumService {
    /// The conductor's heartbeat: registers `(host, binary)` on first call,
    /// then bumps `report_count` and `last_seen_up`, in one statement so two
    /// processes starting together cannot both insert.
    pub fn report(conn: &mut DbConnection, host: &str, binary: &str) -> QueryResult<Self> {
        let at = now();
        let row = (
            magnum_service::host.eq(host),
            magnum_service::binary.eq(binary),
            magnum_service::report_count.eq(1),
            magnum_service::last_seen_up.eq(Some(at)),
            magnum_service::created_at.eq(at),
        );
        let changes = (
            magnum_service::report_count.eq(magnum_service::report_count + 1),
            magnum_service::last_seen_up.eq(Some(at)),
            magnum_service::updated_at.eq(Some(at)),
        );
        with_backend!(conn, c => diesel::insert_into(magnum_service::table)
            .values(row)
            .on_conflict((magnum_service::host, magnum_service::binary))
            .do_update()
            .set(changes)
            .execute(c),
            // The only unique key besides the id is (host, binary).
            mysql c => diesel::insert_into(magnum_service::table)
            .values(row)
            .on_conflict(diesel::dsl::DuplicatedKeys)
            .do_update()
            .set(changes)
            .execute(c))?;
        magnum_service::table
            .filter(magnum_service::host.eq(host))
            .filter(magnum_service::binary.eq(binary))
            .select(Self::as_select())
            .first(conn)
    }

    pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<Self>> {
        magnum_service::table
            .order(magnum_service::id.asc())
            .select(Self::as_select())
            .load(conn)
    }
}
