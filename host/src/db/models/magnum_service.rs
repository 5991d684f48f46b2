use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{now, with_backend};
use crate::db::{schema::magnum_service, DbConnection};

/// A row of `magnum_service` (`GET /v1/mservices`); `(host, binary)` is unique.
/// `state` (up/down) is computed at request time from `last_seen_up`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = magnum_service)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
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
        with_backend!(conn, c => diesel::insert_into(magnum_service::table)
            .values((
                magnum_service::host.eq(host),
                magnum_service::binary.eq(binary),
                magnum_service::report_count.eq(1),
                magnum_service::last_seen_up.eq(Some(at)),
                magnum_service::created_at.eq(at),
            ))
            .on_conflict((magnum_service::host, magnum_service::binary))
            .do_update()
            .set((
                magnum_service::report_count.eq(magnum_service::report_count + 1),
                magnum_service::last_seen_up.eq(Some(at)),
                magnum_service::updated_at.eq(Some(at)),
            ))
            .returning(Self::as_returning())
            .get_result(c))
    }

    pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<Self>> {
        magnum_service::table
            .order(magnum_service::id.asc())
            .select(Self::as_select())
            .load(conn)
    }
}
