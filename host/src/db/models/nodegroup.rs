use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{expect_one, new_uuid, now, paginate, Page};
use crate::db::{
    schema::{cluster, nodegroup},
    DbConnection,
};

/// A row of `nodegroup` (upstream §1.10); `(cluster_id, name)` is unique.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, AsChangeset)]
#[diesel(table_name = nodegroup)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
#[diesel(treat_none_as_null = true)]
pub struct NodeGroup {
    pub id: i32,
    #[diesel(skip_update)]
    pub uuid: String,
    pub name: String,
    #[diesel(skip_update)]
    pub cluster_id: String,
    #[diesel(skip_update)]
    pub project_id: String,
    pub docker_volume_size: Option<i32>,
    pub labels: String,
    pub flavor_id: Option<String>,
    pub image_id: Option<String>,
    pub node_addresses: String,
    pub node_count: i32,
    pub role: String,
    pub max_node_count: Option<i32>,
    pub min_node_count: i32,
    pub is_default: bool,
    pub stack_id: Option<String>,
    pub status: Option<crate::status::Status>,
    pub status_reason: Option<String>,
    pub version: Option<String>,
    pub node_labels: String,
    pub node_taints: String,
    #[diesel(skip_update)]
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = nodegroup)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
pub struct NewNodeGroup {
    pub uuid: String,
    pub name: String,
    pub cluster_id: String,
    pub project_id: String,
    pub docker_volume_size: Option<i32>,
    pub labels: String,
    pub flavor_id: Option<String>,
    pub image_id: Option<String>,
    pub node_count: i32,
    pub role: String,
    pub max_node_count: Option<i32>,
    pub min_node_count: i32,
    pub is_default: bool,
    pub status: Option<crate::status::Status>,
    pub node_labels: String,
    pub node_taints: String,
}

impl NewNodeGroup {
    /// A worker nodegroup of one node with upstream's defaults.
    pub fn new(cluster_id: &str, project_id: &str, name: &str) -> Self {
        Self {
            uuid: new_uuid(),
            name: name.to_owned(),
            cluster_id: cluster_id.to_owned(),
            project_id: project_id.to_owned(),
            docker_volume_size: None,
            labels: "{}".to_owned(),
            flavor_id: None,
            image_id: None,
            node_count: 1,
            role: "worker".to_owned(),
            max_node_count: None,
            min_node_count: 0,
            is_default: false,
            status: None,
            node_labels: "{}".to_owned(),
            node_taints: "[]".to_owned(),
        }
    }
}

impl NodeGroup {
    /// A duplicate name in the cluster is `DatabaseError(UniqueViolation, _)`.
    pub fn insert(conn: &mut DbConnection, new: &NewNodeGroup) -> QueryResult<Self> {
        diesel::insert_into(nodegroup::table)
            .values((new, nodegroup::created_at.eq(now())))
            .execute(conn)?;
        Self::find_by_uuid(conn, &new.uuid)
    }

    pub fn find_by_uuid(conn: &mut DbConnection, uuid: &str) -> QueryResult<Self> {
        nodegroup::table
            .filter(nodegroup::uuid.eq(uuid))
            .select(Self::as_select())
            .first(conn)
    }

    pub fn find_by_name(
        conn: &mut DbConnection,
        cluster_uuid: &str,
        name: &str,
    ) -> QueryResult<Self> {
        nodegroup::table
            .filter(nodegroup::cluster_id.eq(cluster_uuid))
            .filter(nodegroup::name.eq(name))
            .select(Self::as_select())
            .first(conn)
    }

    /// A page of the cluster's nodegroups, optionally of one role.
    pub fn list_by_cluster(
        conn: &mut DbConnection,
        cluster_uuid: &str,
        role: Option<&str>,
        page: &Page,
    ) -> QueryResult<Vec<Self>> {
        let marker = match &page.marker {
            Some(uuid) => Some(Self::find_by_uuid(conn, uuid)?),
            None => None,
        };
        let mut query = nodegroup::table
            .filter(nodegroup::cluster_id.eq(cluster_uuid))
            .into_boxed();
        if let Some(role) = role {
            query = query.filter(nodegroup::role.eq(role));
        }
        paginate!(query, nodegroup, page, marker)
            .select(Self::as_select())
            .load(conn)
    }

    /// The nodegroups of several clusters (one page of them), in id order.
    pub fn of_clusters(
        conn: &mut DbConnection,
        cluster_uuids: &[String],
    ) -> QueryResult<Vec<Self>> {
        nodegroup::table
            .filter(nodegroup::cluster_id.eq_any(cluster_uuids))
            .order(nodegroup::id.asc())
            .select(Self::as_select())
            .load(conn)
    }

    /// `(cluster_id, stack_id)` of every nodegroup with a stack whose
    /// cluster is in one of `statuses`, in id order.
    pub fn stacks_of_clusters_in(
        conn: &mut DbConnection,
        statuses: &[crate::status::Status],
    ) -> QueryResult<Vec<(String, String)>> {
        let clusters = cluster::table
            .filter(cluster::status.eq_any(statuses))
            .select(cluster::uuid);
        let rows: Vec<(String, Option<String>)> = nodegroup::table
            .filter(nodegroup::cluster_id.eq_any(clusters))
            .filter(nodegroup::stack_id.is_not_null())
            .order(nodegroup::id.asc())
            .select((nodegroup::cluster_id, nodegroup::stack_id))
            .load(conn)?;
        Ok(rows
            .into_iter()
            .filter_map(|(cluster, stack)| Some((cluster, stack?)))
            .collect())
    }

    /// Sum of `node_count` over nodegroups, of one project or all (stats).
    pub fn node_total(conn: &mut DbConnection, project_id: Option<&str>) -> QueryResult<i64> {
        let mut query = nodegroup::table.into_boxed();
        if let Some(p) = project_id {
            query = query.filter(nodegroup::project_id.eq(p));
        }
        let counts: Vec<i32> = query.select(nodegroup::node_count).load(conn)?;
        Ok(counts.into_iter().map(i64::from).sum())
    }

    /// Every nodegroup of the cluster, in creation order.
    pub fn all_of_cluster(conn: &mut DbConnection, cluster_uuid: &str) -> QueryResult<Vec<Self>> {
        nodegroup::table
            .filter(nodegroup::cluster_id.eq(cluster_uuid))
            .order(nodegroup::id.asc())
            .select(Self::as_select())
            .load(conn)
    }

    /// Saves every updatable column and stamps `updated_at`.
    pub fn update(&self, conn: &mut DbConnection) -> QueryResult<Self> {
        let mut row = self.clone();
        row.updated_at = Some(now());
        expect_one(
            diesel::update(nodegroup::table.find(self.id))
                .set(&row)
                .execute(conn)?,
        )?;
        nodegroup::table
            .find(self.id)
            .select(Self::as_select())
            .first(conn)
    }

    /// Writes only the columns the conductor owns (status, reason,
    /// addresses, node count, stack id): a bounds or labels PATCH the API
    /// commits meanwhile is kept, not overwritten with a stale copy.
    pub fn save_progress(&self, conn: &mut DbConnection) -> QueryResult<Self> {
        expect_one(
            diesel::update(nodegroup::table.find(self.id))
                .set((
                    nodegroup::status.eq(&self.status),
                    nodegroup::status_reason.eq(&self.status_reason),
                    nodegroup::node_addresses.eq(&self.node_addresses),
                    nodegroup::stack_id.eq(&self.stack_id),
                    nodegroup::updated_at.eq(Some(now())),
                ))
                .execute(conn)?,
        )?;
        nodegroup::table
            .find(self.id)
            .select(Self::as_select())
            .first(conn)
    }

    /// Sets only `labels` (a JSON object text): an upgrade's new labels.
    pub fn set_labels(conn: &mut DbConnection, uuid: &str, labels: &str) -> QueryResult<()> {
        diesel::update(nodegroup::table.filter(nodegroup::uuid.eq(uuid)))
            .set((
                nodegroup::labels.eq(labels),
                nodegroup::updated_at.eq(Some(now())),
            ))
            .execute(conn)
            .map(drop)
    }

    /// Sets only `node_count`: the count is what the last accepted request
    /// asked for, so the conductor writes it only to restore the count of
    /// a failed operation that no later request superseded.
    pub fn set_node_count(conn: &mut DbConnection, uuid: &str, node_count: i32) -> QueryResult<()> {
        diesel::update(nodegroup::table.filter(nodegroup::uuid.eq(uuid)))
            .set((
                nodegroup::node_count.eq(node_count),
                nodegroup::updated_at.eq(Some(now())),
            ))
            .execute(conn)
            .map(drop)
    }

    pub fn delete(conn: &mut DbConnection, uuid: &str) -> QueryResult<()> {
        expect_one(diesel::delete(nodegroup::table.filter(nodegroup::uuid.eq(uuid))).execute(conn)?)
    }
}
