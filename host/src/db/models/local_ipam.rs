use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::now;
use crate::db::{
    schema::{local_ip, local_ipam},
    DbConnection,
};

/// An address pool of the `local` orchestrator's simulated cloud: a subnet a
/// local stack created (`stack_id` set) or a network or floating pool of the
/// cloud itself. `allocated` is its cursor: how many addresses it has
/// handed out so far, from which the next one to try follows.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = local_ipam)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
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
        .execute(c),
        mysql c => super::unless_duplicate(
            diesel::insert_into(local_ipam::table).values(pool).execute(c)
        ))
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

    /// Drops the pool and the addresses handed out from it.
    pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
        diesel::delete(local_ip::table.filter(local_ip::pool_id.eq(id))).execute(conn)?;
        diesel::delete(local_ipam::table.find(id)).execute(conn)
    }

    /// Drops the pools (subnets) of the local stack `stack_id`, and gives
    /// back every address the stack held, in any pool.
    pub fn delete_for_stack(conn: &mut DbConnection, stack_id: &str) -> QueryResult<usize> {
        diesel::delete(local_ip::table.filter(local_ip::stack_id.eq(stack_id))).execute(conn)?;
        let pools = local_ipam::table
            .filter(local_ipam::stack_id.eq(stack_id))
            .select(local_ipam::id)
            .load::<String>(conn)?;
        for chunk in pools.chunks(500) {
            diesel::delete(local_ip::table.filter(local_ip::pool_id.eq_any(chunk)))
                .execute(conn)?;
        }
        diesel::delete(local_ipam::table.filter(local_ipam::stack_id.eq(stack_id))).execute(conn)
    }

    /// Hands a free host of pool `id` (an index in its CIDR, from `first`
    /// to `last`) to `owner`, a resource of stack `stack_id`, recording its
    /// `address`; `None` when every host is taken. Live addresses are never
    /// handed out twice: the pool row is locked first (the cursor update;
    /// on SQLite the transaction holds the write lock already), and the
    /// primary key of `local_ip` backs that up. Released hosts are found
    /// again once the cursor wraps around.
    pub fn allocate(
        conn: &mut DbConnection,
        id: &str,
        (first, last): (i64, i64),
        stack_id: &str,
        owner: &str,
        address: impl Fn(i64) -> String,
    ) -> QueryResult<Option<i64>> {
        let usable = last - first + 1;
        if usable < 1 {
            return Ok(None);
        }
        diesel::update(local_ipam::table.find(id))
            .set(local_ipam::allocated.eq(local_ipam::allocated + 1))
            .execute(conn)?;
        let cursor: i64 = local_ipam::table
            .find(id)
            .select(local_ipam::allocated)
            .first(conn)?;
        let try_host = |conn: &mut DbConnection, host: i64| -> QueryResult<bool> {
            let row = (
                local_ip::pool_id.eq(id),
                local_ip::host.eq(host),
                local_ip::address.eq(address(host)),
                local_ip::stack_id.eq(stack_id),
                local_ip::owner.eq(owner),
            );
            let inserted = super::with_backend!(conn, c => diesel::insert_into(local_ip::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c),
            mysql c => super::unless_duplicate(
                diesel::insert_into(local_ip::table).values(row).execute(c)
            ))?;
            Ok(inserted == 1)
        };
        // The usual case: the host after the last one handed out is free.
        let candidate = first + (cursor - 1).rem_euclid(usable);
        if try_host(conn, candidate)? {
            return Ok(Some(candidate));
        }
        // Wrapped around onto live hosts: the first gap from the
        // candidate on, else from the start; none means the pool is full.
        // (No count up front: it would scan the pool on every allocation.)
        let free = match first_gap(conn, id, candidate, last)? {
            Some(host) => Some(host),
            None => first_gap(conn, id, first, candidate - 1)?,
        };
        let Some(host) = free else {
            return Ok(None);
        };
        if !try_host(conn, host)? {
            return Ok(None);
        }
        diesel::update(local_ipam::table.find(id))
            .set(local_ipam::allocated.eq(host - first + 1))
            .execute(conn)?;
        Ok(Some(host))
    }

    /// Gives back the addresses `owner` (a resource) holds.
    pub fn release(conn: &mut DbConnection, owner: &str) -> QueryResult<usize> {
        diesel::delete(local_ip::table.filter(local_ip::owner.eq(owner))).execute(conn)
    }
}

/// The lowest host from `from` to `to` of pool `id` not handed out.
fn first_gap(conn: &mut DbConnection, id: &str, from: i64, to: i64) -> QueryResult<Option<i64>> {
    if from > to {
        return Ok(None);
    }
    let taken: Vec<i64> = local_ip::table
        .filter(local_ip::pool_id.eq(id))
        .filter(local_ip::host.between(from, to))
        .order(local_ip::host)
        .select(local_ip::host)
        .load(conn)?;
    let mut expected = from;
    for host in taken {
        if host != expected {
            break;
        }
        expected += 1;
    }
    Ok((expected <= to).then_some(expected))
}
