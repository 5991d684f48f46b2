use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::now;
use crate::db::{schema::local_ipam, DbConnection};

/// An address pool of the `local` orchestrator's simulated cloud: a subnet a
/// local stack created (`stack_id` set) or a network or floating pool of the
/// cloud itself. `allocated` counts the addresses handed out.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = local_ipam)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct LocalIpam {
    pub id: String,
    pub name: String,
    pub network: String,
    pub stack_id: Option<String>,
    pub cidr: String,
    pub allocated: i64,
    pub created_at: NaiveDateTime,
}

impl LocalIpam {
    pub fn new(id: &str, name: &str, network: &str, stack_id: Option<&str>, cidr: &str) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            network: network.to_owned(),
            stack_id: stack_id.map(str::to_owned),
            cidr: cidr.to_owned(),
            allocated: 0,
            created_at: now(),
        }
    }

    /// Inserts the pool unless one with its id exists: two stacks created at
    /// once both create the cloud's shared pools (the floating IPs), and the
    /// loser must not fail (on PostgreSQL a failed insert aborts its
    /// transaction). Returns the rows inserted (0 or 1).
    pub fn insert(conn: &mut DbConnection, pool: &LocalIpam) -> QueryResult<usize> {
        super::with_backend!(conn, c => diesel::insert_into(local_ipam::table)
            .values(pool)
            .on_conflict_do_nothing()
            .execute(c))
    }

    pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Self>> {
        local_ipam::table
            .find(id)
            .select(Self::as_select())
            .first(conn)
            .optional()
    }

    /// The first pool (by id) named `key` or on network `key`.
    pub fn find_by_name_or_network(
        conn: &mut DbConnection,
        key: &str,
    ) -> QueryResult<Option<Self>> {
        local_ipam::table
            .filter(local_ipam::name.eq(key).or(local_ipam::network.eq(key)))
            .order(local_ipam::id)
            .select(Self::as_select())
            .first(conn)
            .optional()
    }

    /// Counts one more address of pool `id` handed out; returns the count.
    pub fn take(conn: &mut DbConnection, id: &str) -> QueryResult<i64> {
        diesel::update(local_ipam::table.find(id))
            .set(local_ipam::allocated.eq(local_ipam::allocated + 1))
            .execute(conn)?;
        local_ipam::table
            .find(id)
            .select(local_ipam::allocated)
            .first(conn)
    }

    pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
        diesel::delete(local_ipam::table.find(id)).execute(conn)
    }

    /// Drops the pools (subnets) of the local stack `stack_id`.
    pub fn delete_for_stack(conn: &mut DbConnection, stack_id: &str) -> QueryResult<usize> {
        diesel::delete(local_ipam::table.filter(local_ipam::stack_id.eq(stack_id))).execute(conn)
    }
}
