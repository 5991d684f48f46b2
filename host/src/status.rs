//! The status of a cluster or nodegroup: upstream's `ClusterStatus`
//! (magnum/objects/fields.py), the strings on the wire and in the database.
//! It mirrors Heat's `<ACTION>_<STATE>`, an incomplete copy of it as
//! upstream's is (no `SUSPEND_*`, no `RESUME_IN_PROGRESS`).

use std::{fmt, str::FromStr};

use diesel::{
    backend::Backend,
    deserialize::{self, FromSql, FromSqlRow},
    expression::AsExpression,
    mysql::Mysql,
    pg::Pg,
    serialize::{self, IsNull, Output, ToSql},
    sql_types::Text,
    sqlite::Sqlite,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! statuses {
    ($($variant:ident = $text:literal),+ $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, AsExpression, FromSqlRow)]
        #[diesel(sql_type = Text)]
        pub enum Status {
            $($variant),+
        }

        impl Status {
            pub const ALL: &'static [Status] = &[$(Status::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Status::$variant => $text),+
                }
            }
        }

        impl FromStr for Status {
            type Err = UnknownStatus;

            fn from_str(s: &str) -> Result<Self, UnknownStatus> {
                match s {
                    $($text => Ok(Status::$variant),)+
                    other => Err(UnknownStatus(other.to_owned())),
                }
            }
        }
    };
}

statuses! {
    CreateInProgress = "CREATE_IN_PROGRESS",
    CreateFailed = "CREATE_FAILED",
    CreateComplete = "CREATE_COMPLETE",
    UpdateInProgress = "UPDATE_IN_PROGRESS",
    UpdateFailed = "UPDATE_FAILED",
    UpdateComplete = "UPDATE_COMPLETE",
    DeleteInProgress = "DELETE_IN_PROGRESS",
    DeleteFailed = "DELETE_FAILED",
    DeleteComplete = "DELETE_COMPLETE",
    ResumeComplete = "RESUME_COMPLETE",
    ResumeFailed = "RESUME_FAILED",
    RestoreComplete = "RESTORE_COMPLETE",
    RollbackInProgress = "ROLLBACK_IN_PROGRESS",
    RollbackFailed = "ROLLBACK_FAILED",
    RollbackComplete = "ROLLBACK_COMPLETE",
    SnapshotComplete = "SNAPSHOT_COMPLETE",
    CheckComplete = "CHECK_COMPLETE",
    AdoptComplete = "ADOPT_COMPLETE",
}

/// A status string outside upstream's set (a Heat state upstream has no
/// name for, such as `SUSPEND_COMPLETE`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a cluster status")]
pub struct UnknownStatus(pub String);

impl Status {
    /// Statuses from which update, upgrade and CA rotation may start
    /// (upstream's conductor allowed set, §2.3).
    pub const UPDATE_ALLOWED: &'static [Status] = &[
        Status::CreateComplete,
        Status::UpdateComplete,
        Status::ResumeComplete,
        Status::RestoreComplete,
        Status::RollbackComplete,
        Status::SnapshotComplete,
        Status::CheckComplete,
        Status::AdoptComplete,
    ];

    /// upstream's `STATUS_FAILED`: what shows `faults`.
    pub const FAILED: &'static [Status] = &[
        Status::CreateFailed,
        Status::UpdateFailed,
        Status::DeleteFailed,
        Status::RollbackFailed,
        Status::ResumeFailed,
    ];

    pub fn is_in_progress(self) -> bool {
        self.as_str().ends_with("_IN_PROGRESS")
    }

    pub fn is_failed(self) -> bool {
        self.as_str().ends_with("_FAILED")
    }

    pub fn is_complete(self) -> bool {
        self.as_str().ends_with("_COMPLETE")
    }

    pub fn is_delete(self) -> bool {
        self.as_str().starts_with("DELETE")
    }

    pub fn update_allowed(self) -> bool {
        Self::UPDATE_ALLOWED.contains(&self)
    }

    /// Resize also retries from a failed or running update (upstream, for
    /// autoscalers).
    pub fn resize_allowed(self) -> bool {
        self.update_allowed() || matches!(self, Status::UpdateFailed | Status::UpdateInProgress)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Status {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl<DB: Backend> FromSql<Text, DB> for Status
where
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        Ok(String::from_sql(bytes)?.parse()?)
    }
}

impl ToSql<Text, Pg> for Status {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <str as ToSql<Text, Pg>>::to_sql(self.as_str(), &mut out.reborrow())
    }
}

impl ToSql<Text, Mysql> for Status {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Mysql>) -> serialize::Result {
        <str as ToSql<Text, Mysql>>::to_sql(self.as_str(), &mut out.reborrow())
    }
}

impl ToSql<Text, Sqlite> for Status {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.as_str());
        Ok(IsNull::No)
    }
}

/// The backend of [`crate::db::DbConnection`] (SQLite, PostgreSQL or MySQL, chosen
/// at run time): it binds the value through the real backend's impl above.
type Multi = <crate::db::DbConnection as diesel::Connection>::Backend;

impl ToSql<Text, Multi> for Status {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Multi>) -> serialize::Result {
        out.set_value((Text, self));
        Ok(IsNull::No)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_its_wire_string() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(Status::ALL.len(), 18, "upstream's ClusterStatus");
        assert!("SUSPEND_COMPLETE".parse::<Status>().is_err());
        assert!(Status::UpdateInProgress.resize_allowed());
        assert!(!Status::UpdateInProgress.update_allowed());
        assert!(Status::DeleteFailed.is_failed() && Status::DeleteFailed.is_delete());
    }
}
