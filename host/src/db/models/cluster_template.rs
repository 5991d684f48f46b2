use chrono::NaiveDateTime;
use diesel::{prelude::*, sql_types::Bool};

use super::{expect_one, new_uuid, now, paginate, Page};
use crate::db::{schema::cluster_template, DbConnection};

/// A row of `cluster_template` (upstream §1.7). Saved whole by [`Self::update`]:
/// the API reads the row, applies the JSON patch and writes it back, so `None`
/// writes NULL.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, AsChangeset)]
#[diesel(table_name = cluster_template)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
#[diesel(treat_none_as_null = true)]
pub struct ClusterTemplate {
    pub id: i32,
    #[diesel(skip_update)]
    pub uuid: String,
    #[diesel(skip_update)]
    pub project_id: String,
    #[diesel(skip_update)]
    pub user_id: String,
    pub name: String,
    pub coe: String,
    pub image_id: String,
    pub flavor_id: Option<String>,
    pub master_flavor_id: Option<String>,
    pub dns_nameserver: Option<String>,
    pub keypair_id: Option<String>,
    pub external_network_id: Option<String>,
    pub fixed_network: Option<String>,
    pub fixed_subnet: Option<String>,
    pub network_driver: Option<String>,
    pub volume_driver: Option<String>,
    pub apiserver_port: Option<i32>,
    pub docker_volume_size: Option<i32>,
    pub docker_storage_driver: Option<String>,
    pub cluster_distro: Option<String>,
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
    pub registry_enabled: bool,
    pub labels: String,
    pub tls_disabled: bool,
    pub public: bool,
    pub hidden: bool,
    pub server_type: String,
    pub insecure_registry: Option<String>,
    pub master_lb_enabled: bool,
    pub floating_ip_enabled: bool,
    pub tags: Option<String>,
    pub driver: Option<String>,
    #[diesel(skip_update)]
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = cluster_template)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite, diesel::mysql::Mysql))]
pub struct NewClusterTemplate {
    pub uuid: String,
    pub project_id: String,
    pub user_id: String,
    pub name: String,
    pub coe: String,
    pub image_id: String,
    pub flavor_id: Option<String>,
    pub master_flavor_id: Option<String>,
    pub dns_nameserver: Option<String>,
    pub keypair_id: Option<String>,
    pub external_network_id: Option<String>,
    pub fixed_network: Option<String>,
    pub fixed_subnet: Option<String>,
    pub network_driver: Option<String>,
    pub volume_driver: Option<String>,
    pub apiserver_port: Option<i32>,
    pub docker_volume_size: Option<i32>,
    pub docker_storage_driver: Option<String>,
    pub cluster_distro: Option<String>,
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
    pub registry_enabled: bool,
    pub labels: String,
    pub tls_disabled: bool,
    pub public: bool,
    pub hidden: bool,
    pub server_type: String,
    pub insecure_registry: Option<String>,
    pub master_lb_enabled: bool,
    pub floating_ip_enabled: bool,
    pub tags: Option<String>,
    pub driver: Option<String>,
}

impl NewClusterTemplate {
    /// The mandatory fields, a fresh uuid, and upstream's defaults for the rest.
    pub fn new(project_id: &str, user_id: &str, name: &str, coe: &str, image_id: &str) -> Self {
        Self {
            uuid: new_uuid(),
            project_id: project_id.to_owned(),
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            coe: coe.to_owned(),
            image_id: image_id.to_owned(),
            flavor_id: None,
            master_flavor_id: None,
            dns_nameserver: None,
            keypair_id: None,
            external_network_id: None,
            fixed_network: None,
            fixed_subnet: None,
            network_driver: None,
            volume_driver: None,
            apiserver_port: None,
            docker_volume_size: None,
            docker_storage_driver: None,
            cluster_distro: None,
            http_proxy: None,
            https_proxy: None,
            no_proxy: None,
            registry_enabled: false,
            labels: "{}".to_owned(),
            tls_disabled: false,
            public: false,
            hidden: false,
            server_type: "vm".to_owned(),
            insecure_registry: None,
            master_lb_enabled: false,
            floating_ip_enabled: true,
            tags: None,
            driver: None,
        }
    }
}

/// Which templates a list shows.
#[derive(Debug, Clone, Copy)]
pub enum TemplateScope<'a> {
    /// Every template of every project (admin `all_projects`).
    All,
    /// The project's own templates and the public ones; public hidden ones
    /// only with `include_hidden` (upstream shows those to admins).
    Visible {
        project_id: &'a str,
        include_hidden: bool,
    },
}

impl ClusterTemplate {
    pub fn insert(conn: &mut DbConnection, new: &NewClusterTemplate) -> QueryResult<Self> {
        diesel::insert_into(cluster_template::table)
            .values((new, cluster_template::created_at.eq(now())))
            .execute(conn)?;
        Self::find_by_uuid(conn, &new.uuid)
    }

    /// The templates with these uuids (for the clusters of one page).
    pub fn find_many(conn: &mut DbConnection, uuids: &[String]) -> QueryResult<Vec<Self>> {
        cluster_template::table
            .filter(cluster_template::uuid.eq_any(uuids))
            .select(Self::as_select())
            .load(conn)
    }

    pub fn find_by_uuid(conn: &mut DbConnection, uuid: &str) -> QueryResult<Self> {
        cluster_template::table
            .filter(cluster_template::uuid.eq(uuid))
            .select(Self::as_select())
            .first(conn)
    }

    /// Every template with this name in the scope; more than one means the
    /// name is ambiguous (upstream answers 409).
    pub fn find_by_name(
        conn: &mut DbConnection,
        scope: TemplateScope<'_>,
        name: &str,
    ) -> QueryResult<Vec<Self>> {
        Self::scoped(scope)
            .filter(cluster_template::name.eq(name))
            .order(cluster_template::id.asc())
            .select(Self::as_select())
            .load(conn)
    }

    pub fn list(
        conn: &mut DbConnection,
        scope: TemplateScope<'_>,
        page: &Page,
    ) -> QueryResult<Vec<Self>> {
        let marker = match &page.marker {
            Some(uuid) => Some(Self::find_by_uuid(conn, uuid)?),
            None => None,
        };
        paginate!(Self::scoped(scope), cluster_template, page, marker)
            .select(Self::as_select())
            .load(conn)
    }

    fn scoped<'a>(
        scope: TemplateScope<'a>,
    ) -> cluster_template::BoxedQuery<'a, <DbConnection as Connection>::Backend> {
        let query = cluster_template::table.into_boxed();
        match scope {
            TemplateScope::All => query,
            TemplateScope::Visible {
                project_id,
                include_hidden,
            } => {
                let public = cluster_template::public.eq(true).and(
                    cluster_template::hidden
                        .eq(false)
                        .or(include_hidden.into_sql::<Bool>()),
                );
                query.filter(cluster_template::project_id.eq(project_id).or(public))
            }
        }
    }

    /// Saves every updatable column and stamps `updated_at`.
    pub fn update(&self, conn: &mut DbConnection) -> QueryResult<Self> {
        let mut row = self.clone();
        row.updated_at = Some(now());
        expect_one(
            diesel::update(cluster_template::table.find(self.id))
                .set(&row)
                .execute(conn)?,
        )?;
        cluster_template::table
            .find(self.id)
            .select(Self::as_select())
            .first(conn)
    }

    /// Fails with a foreign-key violation while a cluster uses the template.
    pub fn delete(conn: &mut DbConnection, uuid: &str) -> QueryResult<()> {
        expect_one(
            diesel::delete(cluster_template::table.filter(cluster_template::uuid.eq(uuid)))
                .execute(conn)?,
        )
    }

    /// Whether any cluster was created from this template.
    pub fn is_in_use(conn: &mut DbConnection, uuid: &str) -> QueryResult<bool> {
        use crate::db::schema::cluster;
        diesel::select(diesel::dsl::exists(
            cluster::table.filter(cluster::cluster_template_id.eq(uuid)),
        ))
        .get_result(conn)
    }
}
