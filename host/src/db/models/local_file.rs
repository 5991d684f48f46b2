use diesel::prelude::*;
use sha2::{Digest, Sha256};

use super::{now, unless_duplicate, with_backend};
use crate::db::{
    schema::{local_file, local_stack},
    DbConnection,
};

/// A document of the local orchestrator stored once per content: the files
/// of a driver version's stacks are one row however many clusters use them.
pub struct LocalFile;

impl LocalFile {
    /// The key of `content`: its SHA-256 in hex.
    pub fn key(content: &str) -> String {
        hex::encode(Sha256::digest(content.as_bytes()))
    }

    /// Stores `content` unless a row holds it already, and returns its key.
    /// Concurrent stores of one content both succeed.
    pub fn store(conn: &mut DbConnection, content: &str) -> QueryResult<String> {
        let key = Self::key(content);
        let stored = local_file::table
            .find(&key)
            .select(local_file::sha256)
            .first::<String>(conn)
            .optional()?;
        if stored.is_none() {
            let row = (
                local_file::sha256.eq(&key),
                local_file::content.eq(content),
                local_file::created_at.eq(now()),
            );
            with_backend!(conn, c => diesel::insert_into(local_file::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c),
            mysql c => unless_duplicate(
                diesel::insert_into(local_file::table).values(row).execute(c)
            ))?;
        }
        Ok(key)
    }

    /// The key of the sample of the files `key`, if one is set.
    pub fn sample_key(conn: &mut DbConnection, key: &str) -> QueryResult<Option<String>> {
        local_file::table
            .find(key)
            .select(local_file::sample_sha256)
            .first(conn)
    }

    /// Sets `sample` as the sample of the files `key` unless one is set
    /// already, and returns the key of the one that is.
    pub fn offer_sample(conn: &mut DbConnection, key: &str, sample: &str) -> QueryResult<String> {
        let sample_key = Self::key(sample);
        diesel::update(
            local_file::table
                .filter(local_file::sha256.eq(key))
                .filter(local_file::sample_sha256.is_null()),
        )
        .set((
            local_file::sample.eq(sample),
            local_file::sample_sha256.eq(&sample_key),
        ))
        .execute(conn)?;
        Self::sample_key(conn, key)?.ok_or(diesel::result::Error::NotFound)
    }

    /// The files `key` and their sample (with its key), if one is set.
    pub fn content_and_sample(
        conn: &mut DbConnection,
        key: &str,
    ) -> QueryResult<(String, Option<(String, String)>)> {
        let (content, sample, sample_key): (String, Option<String>, Option<String>) =
            local_file::table
                .find(key)
                .select((
                    local_file::content,
                    local_file::sample,
                    local_file::sample_sha256,
                ))
                .first(conn)?;
        Ok((content, sample_key.zip(sample)))
    }

    pub fn content(conn: &mut DbConnection, key: &str) -> QueryResult<String> {
        local_file::table
            .find(key)
            .select(local_file::content)
            .first(conn)
    }

    /// Deletes the row of `key` unless a stack names it; returns whether it
    /// did. On PostgreSQL and MariaDB/MySQL a stack of another transaction
    /// may name it unseen: the foreign key then fails the delete, which is
    /// rolled back to a savepoint and counts as in use.
    pub fn delete_unused(conn: &mut DbConnection, key: &str) -> QueryResult<bool> {
        let deleted = conn.transaction(|conn| {
            let in_use =
                diesel::dsl::exists(local_stack::table.filter(local_stack::files_sha256.eq(key)));
            diesel::delete(
                local_file::table
                    .filter(local_file::sha256.eq(key))
                    .filter(diesel::dsl::not(in_use)),
            )
            .execute(conn)
        });
        match deleted {
            Ok(n) => Ok(n > 0),
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _,
            )) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
