use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{new_uuid, now};
use crate::db::{schema::certificate, DbConnection};

/// A certificate of a cluster: one of its CAs (`kubernetes`, `etcd`,
/// `front_proxy`) or Magnum's client certificate (`magnum_client`).
/// `private_key` is stored as given (encrypted and base64-encoded by the
/// caller). A CA rotation inserts new rows; the newest of a kind is current.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = certificate)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
pub struct Certificate {
    pub id: i32,
    pub uuid: String,
    pub cluster_uuid: String,
    pub kind: String,
    pub pem: String,
    pub private_key: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = certificate)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
pub struct NewCertificate {
    pub uuid: String,
    pub cluster_uuid: String,
    pub kind: String,
    pub pem: String,
    pub private_key: String,
}

impl NewCertificate {
    pub fn new(cluster_uuid: &str, kind: &str, pem: &str, private_key: &str) -> Self {
        Self {
            uuid: new_uuid(),
            cluster_uuid: cluster_uuid.to_owned(),
            kind: kind.to_owned(),
            pem: pem.to_owned(),
            private_key: private_key.to_owned(),
        }
    }
}

impl Certificate {
    pub fn insert(conn: &mut DbConnection, new: &NewCertificate) -> QueryResult<Self> {
        diesel::insert_into(certificate::table)
            .values((new, certificate::created_at.eq(now())))
            .execute(conn)?;
        Self::find_by_uuid(conn, &new.uuid)
    }

    pub fn find_by_uuid(conn: &mut DbConnection, uuid: &str) -> QueryResult<Self> {
        certificate::table
            .filter(certificate::uuid.eq(uuid))
            .select(Self::as_select())
            .first(conn)
    }

    /// The newest certificate of `kind` for the cluster.
    pub fn current(conn: &mut DbConnection, cluster_uuid: &str, kind: &str) -> QueryResult<Self> {
        certificate::table
            .filter(certificate::cluster_uuid.eq(cluster_uuid))
            .filter(certificate::kind.eq(kind))
            .order(certificate::id.desc())
            .select(Self::as_select())
            .first(conn)
    }
}
