use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{expect_one, new_uuid, now, paginate, Page};
use crate::db::{schema::cluster, DbConnection};

/// A row of `cluster` (upstream §2.1, plus `driver`, without the trustee
/// password). `node_count`, `master_count` and the address lists are not
/// stored: they are sums over the cluster's nodegroups.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, AsChangeset)]
#[diesel(table_name = cluster)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
#[diesel(treat_none_as_null = true)]
pub struct Cluster {
    pub id: i32,
    #[diesel(skip_update)]
    pub uuid: String,
    #[diesel(skip_update)]
    pub project_id: String,
    #[diesel(skip_update)]
    pub user_id: String,
    pub name: String,
    pub cluster_template_id: String,
    pub driver: String,
    pub keypair: Option<String>,
    pub docker_volume_size: Option<i32>,
    pub labels: String,
    pub master_flavor_id: Option<String>,
    pub flavor_id: Option<String>,
    pub stack_id: Option<String>,
    pub api_address: Option<String>,
    pub status: crate::status::Status,
    pub status_reason: Option<String>,
    pub health_status: Option<String>,
    pub health_status_reason: Option<String>,
    pub create_timeout: Option<i32>,
    pub discovery_url: Option<String>,
    pub coe_version: Option<String>,
    pub container_version: Option<String>,
    pub ca_cert_ref: Option<String>,
    pub magnum_cert_ref: Option<String>,
    pub etcd_ca_cert_ref: Option<String>,
    pub front_proxy_ca_cert_ref: Option<String>,
    pub trust_id: Option<String>,
    pub trustee_username: Option<String>,
    pub trustee_user_id: Option<String>,
    pub fixed_network: Option<String>,
    pub fixed_subnet: Option<String>,
    pub floating_ip_enabled: bool,
    pub master_lb_enabled: bool,
    #[diesel(skip_update)]
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

/// What the health pass reads of a cluster: enough to tell whether it
/// changed, without its labels and addresses.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = cluster)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
pub struct HealthRow {
    pub uuid: String,
    pub status: crate::status::Status,
    pub stack_id: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
    pub health_status: Option<String>,
    pub health_status_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = cluster)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
pub struct NewCluster {
    pub uuid: String,
    pub project_id: String,
    pub user_id: String,
    pub name: String,
    pub cluster_template_id: String,
    pub driver: String,
    pub keypair: Option<String>,
    pub docker_volume_size: Option<i32>,
    pub labels: String,
    pub master_flavor_id: Option<String>,
    pub flavor_id: Option<String>,
    pub status: crate::status::Status,
    pub status_reason: Option<String>,
    pub create_timeout: Option<i32>,
    pub discovery_url: Option<String>,
    pub fixed_network: Option<String>,
    pub fixed_subnet: Option<String>,
    pub floating_ip_enabled: bool,
    pub master_lb_enabled: bool,
}

impl NewCluster {
    /// A `CREATE_IN_PROGRESS` cluster with upstream's defaults.
    pub fn new(
        project_id: &str,
        user_id: &str,
        name: &str,
        cluster_template_id: &str,
        driver: &str,
    ) -> Self {
        Self {
            uuid: new_uuid(),
            project_id: project_id.to_owned(),
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            cluster_template_id: cluster_template_id.to_owned(),
            driver: driver.to_owned(),
            keypair: None,
            docker_volume_size: None,
            labels: "{}".to_owned(),
            master_flavor_id: None,
            flavor_id: None,
            status: crate::status::Status::CreateInProgress,
            status_reason: None,
            create_timeout: Some(60),
            discovery_url: None,
            fixed_network: None,
            fixed_subnet: None,
            floating_ip_enabled: true,
            master_lb_enabled: false,
        }
    }
}

impl Cluster {
    pub fn insert(conn: &mut DbConnection, new: &NewCluster) -> QueryResult<Self> {
        diesel::insert_into(cluster::table)
            .values((new, cluster::created_at.eq(now())))
            .execute(conn)?;
        Self::find_by_uuid(conn, &new.uuid)
    }

    pub fn find_by_uuid(conn: &mut DbConnection, uuid: &str) -> QueryResult<Self> {
        cluster::table
            .filter(cluster::uuid.eq(uuid))
            .select(Self::as_select())
            .first(conn)
    }

    /// Every cluster with this name in the project (`None`: any project);
    /// more than one means the name is ambiguous.
    pub fn find_by_name(
        conn: &mut DbConnection,
        project_id: Option<&str>,
        name: &str,
    ) -> QueryResult<Vec<Self>> {
        let mut query = cluster::table.filter(cluster::name.eq(name)).into_boxed();
        if let Some(project_id) = project_id {
            query = query.filter(cluster::project_id.eq(project_id));
        }
        query
            .order(cluster::id.asc())
            .select(Self::as_select())
            .load(conn)
    }

    /// A page of the project's clusters (`None`: every project's).
    pub fn list(
        conn: &mut DbConnection,
        project_id: Option<&str>,
        page: &Page,
    ) -> QueryResult<Vec<Self>> {
        let marker = match &page.marker {
            Some(uuid) => Some(Self::find_by_uuid(conn, uuid)?),
            None => None,
        };
        let mut query = cluster::table.into_boxed();
        if let Some(project_id) = project_id {
            query = query.filter(cluster::project_id.eq(project_id));
        }
        paginate!(query, cluster, page, marker)
            .select(Self::as_select())
            .load(conn)
    }

    /// [`HealthRow`]s of the clusters in one of `statuses`, in id order.
    pub fn health_rows(
        conn: &mut DbConnection,
        statuses: &[crate::status::Status],
    ) -> QueryResult<Vec<HealthRow>> {
        cluster::table
            .filter(cluster::status.eq_any(statuses))
            .order(cluster::id.asc())
            .select(HealthRow::as_select())
            .load(conn)
    }

    /// Clusters pinned to a driver, which must not be disabled under them.
    pub fn count_by_driver(conn: &mut DbConnection, driver: &str) -> QueryResult<i64> {
        cluster::table
            .filter(cluster::driver.eq(driver))
            .count()
            .get_result(conn)
    }

    /// For the per-project cluster quota.
    pub fn count_by_project(conn: &mut DbConnection, project_id: &str) -> QueryResult<i64> {
        cluster::table
            .filter(cluster::project_id.eq(project_id))
            .count()
            .get_result(conn)
    }

    /// Saves every updatable column and stamps `updated_at`.
    pub fn update(&self, conn: &mut DbConnection) -> QueryResult<Self> {
        let mut row = self.clone();
        row.updated_at = Some(now());
        expect_one(
            diesel::update(cluster::table.find(self.id))
                .set(&row)
                .execute(conn)?,
        )?;
        cluster::table
            .find(self.id)
            .select(Self::as_select())
            .first(conn)
    }

    /// Saves the row only if its status is still `expected` (no API request
    /// changed it meanwhile, e.g. a delete); `false` when it was changed.
    pub fn update_if_status(
        &self,
        conn: &mut DbConnection,
        expected: crate::status::Status,
    ) -> QueryResult<bool> {
        let mut row = self.clone();
        row.updated_at = Some(now());
        let n = diesel::update(
            cluster::table
                .filter(cluster::id.eq(self.id))
                .filter(cluster::status.eq(expected)),
        )
        .set(&row)
        .execute(conn)?;
        Ok(n == 1)
    }

    /// Sets only the health columns, and only while the cluster is in one of
    /// `statuses` (the health pass must never write back a stale status).
    pub fn set_health(
        conn: &mut DbConnection,
        uuid: &str,
        statuses: &[crate::status::Status],
        health: &str,
        reason: &str,
    ) -> QueryResult<bool> {
        let n = diesel::update(
            cluster::table
                .filter(cluster::uuid.eq(uuid))
                .filter(cluster::status.eq_any(statuses)),
        )
        .set((
            cluster::health_status.eq(Some(health)),
            cluster::health_status_reason.eq(Some(reason)),
        ))
        .execute(conn)?;
        Ok(n == 1)
    }

    /// Deletes the cluster; its nodegroups and certificates go with it
    /// (ON DELETE CASCADE).
    pub fn delete(conn: &mut DbConnection, uuid: &str) -> QueryResult<()> {
        expect_one(diesel::delete(cluster::table.filter(cluster::uuid.eq(uuid))).execute(conn)?)
    }
}
