//! Database tests. Every `db_test!` runs once on SQLite, once on
//! PostgreSQL and once on MariaDB/MySQL (see `testing.rs`).

use std::collections::BTreeSet;

use chrono::TimeDelta;
use diesel::migration::MigrationSource;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_migrations::MigrationHarness;

use super::{
    models::{
        now, Certificate, Cluster, ClusterTemplate, Federation, Job, LocalStack, MagnumService,
        NewCertificate, NewCluster, NewClusterTemplate, NewFederation, NewJob, NewLocalStack,
        NewNodeGroup, NodeGroup, Page, Quota, SortDir, SortKey, TemplateScope,
    },
    testing::{db_test, TestDatabase},
    *,
};

const TABLES: [&str; 12] = [
    "certificate",
    "cluster",
    "cluster_template",
    "federation",
    "jobs",
    "local_file",
    "local_ip",
    "local_ipam",
    "local_stack",
    "magnum_service",
    "nodegroup",
    "quotas",
];

/// The tables of `backend`: MariaDB/MySQL have one more, the rows
/// `lock_project` locks.
fn tables_of(backend: Backend) -> Vec<String> {
    let mut tables: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
    if backend == Backend::Mysql {
        tables.push("project_locks".to_owned());
        tables.sort();
    }
    tables
}

fn is_unique_violation<T: std::fmt::Debug>(result: diesel::QueryResult<T>) -> bool {
    matches!(
        result,
        Err(DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            _
        ))
    )
}

fn template(conn: &mut DbConnection, project: &str, name: &str) -> ClusterTemplate {
    ClusterTemplate::insert(
        conn,
        &NewClusterTemplate::new(project, "user-1", name, "kubernetes", "fedora-atomic"),
    )
    .expect("insert template")
}

fn cluster(conn: &mut DbConnection, project: &str, name: &str, template: &str) -> Cluster {
    Cluster::insert(
        conn,
        &NewCluster::new(project, "user-1", name, template, "k8s_fedora_atomic_v1"),
    )
    .expect("insert cluster")
}

// ---- URLs -------------------------------------------------------------

#[test]
fn the_url_scheme_picks_the_backend() {
    let cases = [
        (
            "sqlite:///var/lib/magnum/magnum.sqlite",
            DbTarget::Sqlite("/var/lib/magnum/magnum.sqlite".into()),
        ),
        (
            "sqlite://var/magnum.sqlite",
            DbTarget::Sqlite("var/magnum.sqlite".into()),
        ),
        (
            "sqlite:magnum.sqlite",
            DbTarget::Sqlite("magnum.sqlite".into()),
        ),
        (
            "/srv/magnum.sqlite",
            DbTarget::Sqlite("/srv/magnum.sqlite".into()),
        ),
        (
            "postgres://u@db/magnum",
            DbTarget::Postgres("postgres://u@db/magnum".into()),
        ),
        (
            "postgresql://u:p@db:5433/magnum",
            DbTarget::Postgres("postgresql://u:p@db:5433/magnum".into()),
        ),
        (
            "mysql://root@db/magnum",
            DbTarget::Mysql("mysql://root@db/magnum".into()),
        ),
        (
            "mysql://magnum:p@db:3307/magnum",
            DbTarget::Mysql("mysql://magnum:p@db:3307/magnum".into()),
        ),
    ];
    for (url, want) in cases {
        assert_eq!(DbTarget::parse(url).unwrap(), want, "{url}");
    }
    for url in [
        "mariadb://root@db/magnum",
        "http://x",
        "sqlite://",
        "",
        ":memory:",
        "sqlite::memory:",
    ] {
        assert!(DbTarget::parse(url).is_err(), "{url} should be rejected");
    }
    let err = DbTarget::parse("mariadb://root:secret@db/magnum")
        .unwrap_err()
        .to_string();
    assert!(err.contains("mariadb://root:***@db/magnum"), "{err}");
    assert!(!err.contains("secret"), "{err}");
    let shown = DbTarget::parse("mysql://magnum:secret@db/magnum")
        .unwrap()
        .display();
    assert_eq!(shown, "mysql://magnum:***@db/magnum");
}

#[test]
fn an_unreachable_mysql_is_a_clear_error() {
    let err = DbPool::connect("mysql://u:pw@127.0.0.1:1/magnum").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "cannot connect to the mysql database at mysql://u:***@127.0.0.1:1/magnum"
        ),
        "{text}"
    );
}

#[test]
fn mariadb_before_10_6_is_refused() {
    for ok in [
        "10.6.0-MariaDB",
        "10.11.19-MariaDB-0+deb12u1",
        "11.4.2-MariaDB-ubu2404",
        "8.0.13",
        "8.4.3",
        "9.1.0-commercial",
    ] {
        assert_eq!(check_mysql_version(ok), Ok(()), "{ok}");
    }
    for (old, shown) in [
        (
            "10.5.23-MariaDB-0+deb11u1",
            "MariaDB 10.5.23-MariaDB-0+deb11u1",
        ),
        ("10.3.39-MariaDB", "MariaDB 10.3.39-MariaDB"),
        // MariaDB 10.x announced itself as 5.5.5-10.x to old clients.
        ("5.5.5-10.4.1-MariaDB", "MariaDB 5.5.5-10.4.1-MariaDB"),
        ("5.7.44-log", "MySQL 5.7.44-log"),
        ("8.0.12", "MySQL 8.0.12"),
    ] {
        assert_eq!(check_mysql_version(old), Err(shown.to_owned()), "{old}");
    }
    assert!(check_mysql_version("unknown").is_err());
    let err = DbError::ServerTooOld {
        url: "mysql://root@db/magnum".into(),
        server: "MariaDB 10.5.23-MariaDB".into(),
    };
    assert_eq!(
        err.to_string(),
        "the server at mysql://root@db/magnum is MariaDB 10.5.23-MariaDB, but magnum-rs \
         needs MariaDB 10.6 or later (or MySQL 8.0.13 or later) for the job queue's \
         FOR UPDATE SKIP LOCKED"
    );
}

#[test]
fn an_unreachable_postgres_is_a_clear_error() {
    // Port 1 on loopback: nothing listens there, so the refusal is immediate.
    let err = DbPool::connect("postgres://u:pw@127.0.0.1:1/magnum").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "cannot connect to the postgresql database at postgres://u:***@127.0.0.1:1/magnum"
        ),
        "{text}"
    );
}

#[test]
fn postgres_urls_get_a_connect_timeout_unless_they_set_one() {
    assert_eq!(
        with_connect_timeout("postgres://u@h/db", 2),
        "postgres://u@h/db?connect_timeout=2"
    );
    assert_eq!(
        with_connect_timeout("postgres://u@h/db?options=x", 3),
        "postgres://u@h/db?options=x&connect_timeout=3"
    );
    let own = "postgres://u@h/db?connect_timeout=9";
    assert_eq!(with_connect_timeout(own, 2), own);
}

// ---- Migrations -------------------------------------------------------

#[test]
fn both_backends_have_the_same_migrations() {
    let sqlite: Vec<String> =
        MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
            .unwrap()
            .iter()
            .map(|m| m.name().to_string())
            .collect();
    let postgres: Vec<String> = MigrationSource::<diesel::pg::Pg>::migrations(&POSTGRES_MIGRATIONS)
        .unwrap()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let mysql: Vec<String> = MigrationSource::<diesel::mysql::Mysql>::migrations(&MYSQL_MIGRATIONS)
        .unwrap()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres);
    assert_eq!(sqlite, mysql);
}

fn revert_all(conn: &mut DbConnection) -> Vec<String> {
    match conn {
        DbConnection::Pg(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS),
        DbConnection::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS),
        DbConnection::Mysql(c) => c.revert_all_migrations(MYSQL_MIGRATIONS),
    }
    .expect("revert all migrations")
    .iter()
    .map(|v| v.to_string())
    .collect()
}

/// The migrations shipped (each backend has the same list).
fn migration_count() -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let sqlite = std::fs::read_dir(&dir).unwrap().count();
    let postgres = std::fs::read_dir(dir.with_file_name("postgres"))
        .unwrap()
        .count();
    let mysql = std::fs::read_dir(dir.with_file_name("mysql"))
        .unwrap()
        .count();
    assert_eq!(sqlite, postgres, "one migration list per backend");
    assert_eq!(sqlite, mysql, "one migration list per backend");
    sqlite
}

db_test!(migrations_go_up_down_and_up_again, |db: &TestDatabase| {
    let mut conn = db.conn();
    assert_eq!(db.table_names(), tables_of(db.backend()));
    let latest = schema_version(&mut conn).unwrap().expect("a version");
    assert!(pending_migrations(&mut conn).unwrap().is_empty());
    assert!(
        migrate(&mut conn).unwrap().is_empty(),
        "nothing left to apply"
    );

    let reverted = revert_all(&mut conn);
    assert_eq!(
        reverted.len(),
        migration_count(),
        "every migration reverted"
    );
    assert_eq!(reverted.first(), Some(&latest), "newest reverted first");
    assert_eq!(
        db.table_names(),
        Vec::<String>::new(),
        "down.sql left tables behind"
    );
    assert_eq!(schema_version(&mut conn).unwrap(), None);
    assert_eq!(pending_migrations(&mut conn).unwrap().len(), reverted.len());

    let applied = migrate(&mut conn).unwrap();
    assert_eq!(applied.len(), reverted.len());
    assert_eq!(applied.last(), Some(&latest));
    assert_eq!(db.table_names(), tables_of(db.backend()));
    // The tables work after the round trip.
    template(&mut conn, "p", "after-redo");
});

#[test]
fn serve_migrates_sqlite_but_only_checks_the_servers() {
    let db = TestDatabase::empty(Backend::Sqlite).unwrap();
    let applied = prepare_for_serve(&mut db.conn()).unwrap();
    assert_eq!(applied.len(), migration_count());
    assert!(prepare_for_serve(&mut db.conn()).unwrap().is_empty());

    for backend in [Backend::Postgres, Backend::Mysql] {
        let Some(db) = TestDatabase::empty(backend) else {
            continue;
        };
        let err = prepare_for_serve(&mut db.conn()).unwrap_err();
        assert!(
            matches!(err, DbError::SchemaBehind { pending, .. } if pending == migration_count()),
            "{backend}: {err}"
        );
        assert!(err.to_string().contains("magnumd db upgrade"), "{err}");
        assert!(
            db.table_names().is_empty(),
            "serve must not migrate {backend}"
        );
        migrate(&mut db.conn()).unwrap();
        assert!(prepare_for_serve(&mut db.conn()).unwrap().is_empty());
    }
}

// ---- Cluster templates ------------------------------------------------

db_test!(cluster_template_round_trip, |db: &TestDatabase| {
    let mut pooled = db.conn();
    let conn: &mut DbConnection = &mut pooled;
    let mut new = NewClusterTemplate::new("p1", "u1", "k8s", "kubernetes", "fedora-coreos-40");
    new.labels = r#"{"kube_tag":"v1.30.1"}"#.into();
    new.flavor_id = Some("m1.small".into());
    let created = ClusterTemplate::insert(conn, &new).unwrap();
    assert_eq!(created.uuid, new.uuid);
    assert_eq!(created.labels, new.labels);
    assert!(created.floating_ip_enabled && !created.public);
    assert_eq!(created.server_type, "vm");
    assert_eq!(created.updated_at, None);
    assert_eq!(
        ClusterTemplate::find_by_uuid(conn, &new.uuid).unwrap(),
        created
    );

    let mut changed = created.clone();
    changed.name = "k8s-renamed".into();
    changed.flavor_id = None;
    changed.docker_volume_size = Some(20);
    changed.public = true;
    let updated = changed.update(conn).unwrap();
    assert_eq!(updated.name, "k8s-renamed");
    assert_eq!(updated.flavor_id, None, "None writes NULL");
    assert_eq!(updated.docker_volume_size, Some(20));
    assert!(updated.updated_at.is_some());
    assert_eq!(updated.created_at, created.created_at);
    assert_eq!(
        ClusterTemplate::find_by_uuid(conn, &new.uuid).unwrap(),
        updated
    );

    assert_eq!(
        ClusterTemplate::find_by_name(conn, TemplateScope::All, "k8s-renamed").unwrap(),
        vec![updated.clone()]
    );
    ClusterTemplate::delete(conn, &new.uuid).unwrap();
    assert_eq!(
        ClusterTemplate::find_by_uuid(conn, &new.uuid),
        Err(DieselError::NotFound)
    );
    assert_eq!(
        ClusterTemplate::delete(conn, &new.uuid),
        Err(DieselError::NotFound)
    );

    // The uuid is unique.
    ClusterTemplate::insert(conn, &new).unwrap();
    assert!(is_unique_violation(ClusterTemplate::insert(conn, &new)));
});

db_test!(cluster_template_visibility, |db: &TestDatabase| {
    let mut pooled = db.conn();
    let conn: &mut DbConnection = &mut pooled;
    let own = template(conn, "p1", "own");
    let other = template(conn, "p2", "other");
    let mut public = NewClusterTemplate::new("p2", "u", "public", "kubernetes", "img");
    public.public = true;
    let public = ClusterTemplate::insert(conn, &public).unwrap();
    let mut hidden = NewClusterTemplate::new("p2", "u", "hidden", "kubernetes", "img");
    hidden.public = true;
    hidden.hidden = true;
    let hidden = ClusterTemplate::insert(conn, &hidden).unwrap();

    let names = |scope| -> Vec<String> {
        ClusterTemplate::list(&mut db.conn(), scope, &Page::default())
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect()
    };
    let p1 = TemplateScope::Visible {
        project_id: "p1",
        include_hidden: false,
    };
    let p1_admin = TemplateScope::Visible {
        project_id: "p1",
        include_hidden: true,
    };
    assert_eq!(names(p1), [own.name.clone(), public.name.clone()]);
    assert_eq!(
        names(p1_admin),
        [own.name.clone(), public.name.clone(), hidden.name.clone()]
    );
    assert_eq!(
        names(TemplateScope::All),
        [own.name, other.name, public.name, hidden.name]
    );
});

fn collect_pages<F>(limit: i64, sort_key: SortKey, sort_dir: SortDir, mut list: F) -> Vec<String>
where
    F: FnMut(&Page) -> Vec<(String, String)>,
{
    let mut page = Page {
        limit: Some(limit),
        marker: None,
        sort_key,
        sort_dir,
    };
    let mut names = Vec::new();
    // Bounded: at most one page per row plus the empty last one.
    for _ in 0..20 {
        let rows = list(&page);
        let full = rows.len() as i64 == limit;
        assert!(rows.len() as i64 <= limit);
        page.marker = rows.last().map(|(uuid, _)| uuid.clone());
        names.extend(rows.into_iter().map(|(_, name)| name));
        if !full {
            return names;
        }
    }
    panic!("pagination did not end");
}

db_test!(cluster_template_pagination, |db: &TestDatabase| {
    let mut pooled = db.conn();
    let conn: &mut DbConnection = &mut pooled;
    // Two "delta"s: the id must break the tie.
    let names = ["delta", "alpha", "echo", "delta", "charlie", "bravo"];
    let rows: Vec<ClusterTemplate> = names.iter().map(|n| template(conn, "p1", n)).collect();
    template(conn, "p2", "not-mine");
    let scope = TemplateScope::Visible {
        project_id: "p1",
        include_hidden: false,
    };
    let list = |page: &Page| -> Vec<(String, String)> {
        ClusterTemplate::list(&mut db.conn(), scope, page)
            .unwrap()
            .into_iter()
            .map(|t| (t.uuid, t.name))
            .collect()
    };

    let mut by_name: Vec<(String, i32)> = rows.iter().map(|t| (t.name.clone(), t.id)).collect();
    by_name.sort();
    let asc: Vec<String> = by_name.iter().map(|(n, _)| n.clone()).collect();
    let desc: Vec<String> = asc.iter().rev().cloned().collect();
    let by_id: Vec<String> = names.iter().map(|n| n.to_string()).collect();

    for limit in [1, 2, 4, 6, 10] {
        assert_eq!(
            collect_pages(limit, SortKey::Name, SortDir::Asc, list),
            asc,
            "limit {limit}"
        );
        assert_eq!(
            collect_pages(limit, SortKey::Name, SortDir::Desc, list),
            desc,
            "limit {limit}"
        );
        assert_eq!(
            collect_pages(limit, SortKey::Id, SortDir::Asc, list),
            by_id,
            "limit {limit}"
        );
        let mut rev = by_id.clone();
        rev.reverse();
        assert_eq!(
            collect_pages(limit, SortKey::Id, SortDir::Desc, list),
            rev,
            "limit {limit}"
        );
        // created_at may tie within a clock tick: id keeps the order total.
        assert_eq!(
            collect_pages(limit, SortKey::CreatedAt, SortDir::Asc, list),
            by_id,
            "limit {limit}"
        );
        let uuid_pages = collect_pages(limit, SortKey::Uuid, SortDir::Asc, list);
        let mut by_uuid: Vec<(String, String)> = rows
            .iter()
            .map(|t| (t.uuid.clone(), t.name.clone()))
            .collect();
        by_uuid.sort();
        assert_eq!(
            uuid_pages,
            by_uuid.into_iter().map(|(_, n)| n).collect::<Vec<_>>()
        );
    }

    let unknown = Page {
        marker: Some("no-such-uuid".into()),
        ..Page::default()
    };
    assert_eq!(
        ClusterTemplate::list(conn, scope, &unknown),
        Err(DieselError::NotFound)
    );
    assert!("state".parse::<SortKey>().is_err());
    assert_eq!("created_at".parse::<SortKey>().unwrap(), SortKey::CreatedAt);
    assert!("up".parse::<SortDir>().is_err());
});

// ---- Clusters ---------------------------------------------------------

db_test!(cluster_round_trip, |db: &TestDatabase| {
    let mut pooled = db.conn();
    let conn: &mut DbConnection = &mut pooled;
    let tmpl = template(conn, "p1", "k8s");
    let created = cluster(conn, "p1", "c1", &tmpl.uuid);
    assert_eq!(created.status, "CREATE_IN_PROGRESS");
    assert_eq!(created.driver, "k8s_fedora_atomic_v1");
    assert_eq!(created.create_timeout, Some(60));
    assert_eq!(Cluster::find_by_uuid(conn, &created.uuid).unwrap(), created);

    let mut changed = created.clone();
    changed.status = crate::status::Status::CreateComplete;
    changed.stack_id = Some("stack-1".into());
    changed.api_address = Some("https://10.0.0.5:6443".into());
    changed.health_status_reason = Some(r#"{"api":"ok"}"#.into());
    let updated = changed.update(conn).unwrap();
    assert_eq!(Cluster::find_by_uuid(conn, &created.uuid).unwrap(), updated);
    assert_eq!(
        updated.api_address.as_deref(),
        Some("https://10.0.0.5:6443")
    );

    cluster(conn, "p1", "c2", &tmpl.uuid);
    cluster(conn, "p2", "c1", &tmpl.uuid);
    assert_eq!(Cluster::count_by_project(conn, "p1").unwrap(), 2);
    assert_eq!(
        Cluster::find_by_name(conn, Some("p1"), "c1").unwrap().len(),
        1
    );
    assert_eq!(Cluster::find_by_name(conn, None, "c1").unwrap().len(), 2);
    let p1: Vec<String> = Cluster::list(conn, Some("p1"), &Page::default())
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(p1, ["c1", "c2"]);
    let page = Page {
        limit: Some(2),
        sort_dir: SortDir::Desc,
        ..Page::default()
    };
    assert_eq!(Cluster::list(conn, None, &page).unwrap().len(), 2);

    // A template in use cannot be deleted, and says so.
    assert!(ClusterTemplate::is_in_use(conn, &tmpl.uuid).unwrap());
    assert!(matches!(
        ClusterTemplate::delete(conn, &tmpl.uuid),
        Err(DieselError::DatabaseError(
            DatabaseErrorKind::ForeignKeyViolation,
            _
        ))
    ));
    // Nor can a cluster point at a template that does not exist.
    assert!(matches!(
        Cluster::insert(
            conn,
            &NewCluster::new("p1", "u", "c9", "no-such-template", "d")
        ),
        Err(DieselError::DatabaseError(
            DatabaseErrorKind::ForeignKeyViolation,
            _
        ))
    ));

    Cluster::delete(conn, &created.uuid).unwrap();
    assert_eq!(
        Cluster::find_by_uuid(conn, &created.uuid),
        Err(DieselError::NotFound)
    );
    assert_eq!(Cluster::count_by_project(conn, "p1").unwrap(), 1);
});

// ---- Nodegroups -------------------------------------------------------

db_test!(nodegroup_round_trip_and_unique_name, |db: &TestDatabase| {
    let mut pooled = db.conn();
    let conn: &mut DbConnection = &mut pooled;
    let tmpl = template(conn, "p1", "k8s");
    let c1 = cluster(conn, "p1", "c1", &tmpl.uuid);
    let c2 = cluster(conn, "p1", "c2", &tmpl.uuid);

    let mut master = NewNodeGroup::new(&c1.uuid, "p1", "default-master");
    master.role = "master".into();
    master.is_default = true;
    let master = NodeGroup::insert(conn, &master).unwrap();
    let mut worker = NewNodeGroup::new(&c1.uuid, "p1", "default-worker");
    worker.is_default = true;
    worker.node_count = 3;
    let worker = NodeGroup::insert(conn, &worker).unwrap();
    assert_eq!(NodeGroup::find_by_uuid(conn, &worker.uuid).unwrap(), worker);
    assert_eq!(
        NodeGroup::find_by_name(conn, &c1.uuid, "default-master").unwrap(),
        master
    );
    assert_eq!(worker.node_taints, "[]");
    assert_eq!(worker.min_node_count, 0);

    // The same name again in the cluster is a unique violation; in another cluster it is fine.
    let duplicate = NodeGroup::insert(conn, &NewNodeGroup::new(&c1.uuid, "p1", "default-worker"));
    assert!(
        is_unique_violation(duplicate),
        "duplicate nodegroup name accepted"
    );
    NodeGroup::insert(conn, &NewNodeGroup::new(&c2.uuid, "p1", "default-worker")).unwrap();

    let extra = NodeGroup::insert(conn, &NewNodeGroup::new(&c1.uuid, "p1", "gpu")).unwrap();
    let workers: Vec<String> =
        NodeGroup::list_by_cluster(conn, &c1.uuid, Some("worker"), &Page::default())
            .unwrap()
            .into_iter()
            .map(|ng| ng.name)
            .collect();
    assert_eq!(workers, ["default-worker", "gpu"]);
    let by_name = Page {
        limit: Some(2),
        sort_key: SortKey::Name,
        ..Page::default()
    };
    let first = NodeGroup::list_by_cluster(conn, &c1.uuid, None, &by_name).unwrap();
    assert_eq!(
        first.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        ["default-master", "default-worker"]
    );
    let next = Page {
        marker: Some(first[1].uuid.clone()),
        ..by_name
    };
    let second = NodeGroup::list_by_cluster(conn, &c1.uuid, None, &next).unwrap();
    assert_eq!(second, vec![extra.clone()]);

    let mut changed = extra.clone();
    changed.max_node_count = Some(5);
    changed.node_labels = r#"{"gpu":"true"}"#.into();
    let updated = changed.update(conn).unwrap();
    assert_eq!(NodeGroup::find_by_uuid(conn, &extra.uuid).unwrap(), updated);
    assert_eq!(updated.max_node_count, Some(5));

    // The conductor's write of a copy it read before that PATCH keeps the
    // PATCH (bounds, labels) and sets only its own columns; the count is the
    // API's (what the last accepted request asked for), never the copy's.
    let mut progress = extra.clone();
    progress.status = Some(crate::status::Status::UpdateComplete);
    progress.node_count = 3;
    progress.node_addresses = r#"["10.0.0.5"]"#.into();
    let saved = progress.save_progress(conn).unwrap();
    assert_eq!(saved.max_node_count, Some(5));
    assert_eq!(saved.node_labels, r#"{"gpu":"true"}"#);
    assert_eq!(saved.status, Some(crate::status::Status::UpdateComplete));
    assert_eq!(saved.node_count, extra.node_count);
    assert_eq!(saved.node_addresses, r#"["10.0.0.5"]"#);
    NodeGroup::set_node_count(conn, &extra.uuid, 3).unwrap();
    assert_eq!(
        NodeGroup::find_by_uuid(conn, &extra.uuid)
            .unwrap()
            .node_count,
        3
    );

    NodeGroup::delete(conn, &extra.uuid).unwrap();
    assert_eq!(
        NodeGroup::find_by_uuid(conn, &extra.uuid),
        Err(DieselError::NotFound)
    );
    assert_eq!(
        NodeGroup::delete(conn, &extra.uuid),
        Err(DieselError::NotFound)
    );

    // Deleting the cluster takes its nodegroups (and only its) along.
    Cluster::delete(conn, &c1.uuid).unwrap();
    assert!(NodeGroup::all_of_cluster(conn, &c1.uuid)
        .unwrap()
        .is_empty());
    assert_eq!(NodeGroup::all_of_cluster(conn, &c2.uuid).unwrap().len(), 1);
});

// ---- Quotas and services ----------------------------------------------

db_test!(quota_insert_and_upsert, |db: &TestDatabase| {
    let mut pooled = db.conn();
    let conn: &mut DbConnection = &mut pooled;
    let q = Quota::insert(conn, "p1", "Cluster", 5).unwrap();
    assert_eq!((q.hard_limit, q.updated_at), (5, None));
    assert!(is_unique_violation(Quota::insert(conn, "p1", "Cluster", 6)));

    let up = Quota::upsert(conn, "p1", "Cluster", 10).unwrap();
    assert_eq!(up.id, q.id, "upsert updates the existing row");
    assert_eq!(up.hard_limit, 10);
    assert!(up.updated_at.is_some());
    assert_eq!(Quota::find(conn, "p1", "Cluster").unwrap(), up);

    let other = Quota::upsert(conn, "p2", "Cluster", 1).unwrap();
    assert_ne!(other.id, q.id, "upsert inserts a missing row");
    assert_eq!(other.updated_at, None);
    assert_eq!(
        Quota::list(conn, None, None, None).unwrap(),
        vec![up.clone(), other.clone()]
    );
    assert_eq!(
        Quota::list(conn, None, Some(1), Some(up.id)).unwrap(),
        vec![other.clone()]
    );
    assert_eq!(
        Quota::list(conn, Some("p2"), None, None).unwrap(),
        vec![other]
    );

    Quota::delete(conn, "p1", "Cluster").unwrap();
    assert_eq!(
        Quota::find(conn, "p1", "Cluster"),
        Err(DieselError::NotFound)
    );
});

db_test!(service_heartbeat_upsert, |db: &TestDatabase| {
    let mut pooled = db.conn();
    let conn: &mut DbConnection = &mut pooled;
    let first = MagnumService::report(conn, "node-1", "magnum-conductor").unwrap();
    assert_eq!(first.report_count, 1);
    assert!(first.last_seen_up.is_some() && !first.disabled && !first.forced_down);
    let second = MagnumService::report(conn, "node-1", "magnum-conductor").unwrap();
    assert_eq!((second.id, second.report_count), (first.id, 2));
    assert!(second.updated_at.is_some());
    assert!(second.last_seen_up >= first.last_seen_up);
    let other = MagnumService::report(conn, "node-2", "magnum-conductor").unwrap();
    assert_ne!(other.id, first.id);
    let all = MagnumService::list(conn).unwrap();
    assert_eq!(all, vec![second, other]);
});

// ---- Certificates, federations, local stacks --------------------------

db_test!(other_tables_round_trip, |db: &TestDatabase| {
    let mut pooled = db.conn();
    let conn: &mut DbConnection = &mut pooled;
    let tmpl = template(conn, "p1", "k8s");
    let c = cluster(conn, "p1", "c1", &tmpl.uuid);

    let old = Certificate::insert(
        conn,
        &NewCertificate::new(&c.uuid, "kubernetes", "PEM-1", "S0VZ"),
    )
    .unwrap();
    let new = Certificate::insert(
        conn,
        &NewCertificate::new(&c.uuid, "kubernetes", "PEM-2", "S0VZMg=="),
    )
    .unwrap();
    Certificate::insert(conn, &NewCertificate::new(&c.uuid, "etcd", "PEM-E", "RQ==")).unwrap();
    assert_eq!(Certificate::find_by_uuid(conn, &old.uuid).unwrap(), old);
    assert_eq!(
        Certificate::current(conn, &c.uuid, "kubernetes").unwrap(),
        new
    );
    Cluster::delete(conn, &c.uuid).unwrap();
    assert_eq!(
        Certificate::current(conn, &c.uuid, "etcd"),
        Err(DieselError::NotFound)
    );

    let mut fed = NewFederation::new("p1", "fed");
    fed.properties = r#"{"dns-zone":"example.com."}"#.into();
    let fed = Federation::insert(conn, &fed).unwrap();
    let mut changed = fed.clone();
    changed.member_ids = r#"["a","b"]"#.into();
    let updated = changed.update(conn).unwrap();
    assert_eq!(Federation::find_by_uuid(conn, &fed.uuid).unwrap(), updated);
    Federation::delete(conn, &fed.uuid).unwrap();
    assert_eq!(
        Federation::find_by_uuid(conn, &fed.uuid),
        Err(DieselError::NotFound)
    );

    let stack = LocalStack::insert(
        conn,
        &NewLocalStack::new("p1", "c1-stack", r#"{"resources":{}}"#, r#"{"n":1}"#),
    )
    .unwrap();
    assert_eq!(LocalStack::find(conn, &stack.id).unwrap(), stack);
    let mut changed = stack.clone();
    changed.status = "CREATE_COMPLETE".into();
    changed.outputs = r#"{"api_address":"https://10.0.0.5:6443"}"#.into();
    let updated = changed.update(conn).unwrap();
    assert_eq!(LocalStack::find(conn, &stack.id).unwrap(), updated);
    LocalStack::delete(conn, &stack.id).unwrap();
    assert_eq!(
        LocalStack::find(conn, &stack.id),
        Err(DieselError::NotFound)
    );
});

// ---- Job queue --------------------------------------------------------

const LEASE: TimeDelta = TimeDelta::minutes(5);

db_test!(jobs_enqueue_claim_complete, |db: &TestDatabase| {
    let mut pooled = db.conn();
    let conn: &mut DbConnection = &mut pooled;
    assert_eq!(Job::claim(conn, "w1", now(), LEASE).unwrap(), None);
    let low = Job::enqueue(conn, &NewJob::new("cluster_create", r#"{"cluster":"a"}"#)).unwrap();
    let mut urgent = NewJob::new("cluster_delete", r#"{"cluster":"b"}"#);
    urgent.priority = 10;
    let urgent = Job::enqueue(conn, &urgent).unwrap();
    let later = Job::enqueue(conn, &NewJob::new("cluster_create", "{}")).unwrap();
    let at = now();

    let first = Job::claim(conn, "w1", at, LEASE).unwrap().expect("a job");
    assert_eq!(first.id, urgent.id, "higher priority first");
    assert_eq!(first.locked_by.as_deref(), Some("w1"));
    assert_eq!(first.data, r#"{"cluster":"b"}"#);
    let second = Job::claim(conn, "w2", at, LEASE).unwrap().expect("a job");
    assert_eq!(second.id, low.id, "then the oldest");
    assert!(
        !Job::complete(conn, first.id, "w2").unwrap(),
        "only the lease holder completes"
    );
    assert!(Job::complete(conn, first.id, "w1").unwrap());
    assert_eq!(
        Job::find(conn, first.id),
        Err(DieselError::NotFound),
        "deleted on success"
    );
    assert!(Job::complete(conn, second.id, "w2").unwrap());
    assert_eq!(
        Job::claim(conn, "w1", at, LEASE).unwrap().map(|j| j.id),
        Some(later.id)
    );
    assert_eq!(
        Job::claim(conn, "w1", at, LEASE).unwrap(),
        None,
        "all leased"
    );
    assert_eq!(Job::count(conn).unwrap(), 1);
});

db_test!(jobs_failure_backs_off, |db: &TestDatabase| {
    let mut pooled = db.conn();
    let conn: &mut DbConnection = &mut pooled;
    let job = Job::enqueue(conn, &NewJob::new("cluster_update", "{}")).unwrap();
    let t0 = now();
    let claimed = Job::claim(conn, "w1", t0, LEASE).unwrap().expect("a job");
    assert!(
        !Job::fail(conn, &claimed, "w2", t0).unwrap(),
        "not w2's lease"
    );
    assert!(Job::fail(conn, &claimed, "w1", t0).unwrap());

    let failed = Job::find(conn, job.id).unwrap();
    assert_eq!(failed.retries, 1);
    assert_eq!(failed.last_retry, Some(t0));
    assert_eq!(failed.run_after, t0 + Job::backoff(1));
    assert_eq!((failed.locked_by, failed.locked_at), (None, None));

    let due = t0 + Job::backoff(1);
    assert_eq!(
        Job::claim(conn, "w1", due - TimeDelta::seconds(1), LEASE).unwrap(),
        None,
        "claimed before its backoff"
    );
    let again = Job::claim(conn, "w1", due, LEASE)
        .unwrap()
        .expect("due again");
    assert_eq!((again.id, again.retries), (job.id, 1));

    // Each failure doubles the wait, up to a ceiling.
    assert!(Job::fail(conn, &again, "w1", due).unwrap());
    assert_eq!(
        Job::find(conn, job.id).unwrap().run_after,
        due + Job::backoff(2)
    );
    assert_eq!(Job::backoff(2), Job::backoff(1) * 2);
    assert_eq!(Job::backoff(50), Job::backoff(10));
});

db_test!(
    jobs_release_gives_back_only_that_claim,
    |db: &TestDatabase| {
        let mut pooled = db.conn();
        let conn: &mut DbConnection = &mut pooled;
        let job = Job::enqueue(conn, &NewJob::new("cluster_create", "{}")).unwrap();
        let t0 = now();
        let claimed = Job::claim(conn, "w1", t0, LEASE).unwrap().expect("a job");
        assert!(
            !Job::release(conn, &claimed, "w2").unwrap(),
            "not w2's claim"
        );
        assert!(Job::release(conn, &claimed, "w1").unwrap());
        let released = Job::find(conn, job.id).unwrap();
        assert_eq!((released.locked_by, released.locked_at), (None, None));
        assert_eq!(released.run_after, job.run_after, "due as before");
        assert_eq!(
            Job::claim(conn, "w2", t0, LEASE).unwrap().map(|j| j.id),
            Some(job.id),
            "claimable again at once"
        );

        // A claim whose lease was renewed since is a running job's: kept.
        let t1 = t0 + LEASE + TimeDelta::seconds(1);
        let again = Job::claim(conn, "w1", t1, LEASE)
            .unwrap()
            .expect("stale lease");
        assert!(Job::renew(conn, job.id, "w1", t1 + TimeDelta::seconds(1)).unwrap());
        assert!(!Job::release(conn, &again, "w1").unwrap());
        assert_eq!(
            Job::find(conn, job.id).unwrap().locked_by.as_deref(),
            Some("w1")
        );
    }
);

db_test!(jobs_stale_lease_is_taken_over, |db: &TestDatabase| {
    let mut pooled = db.conn();
    let conn: &mut DbConnection = &mut pooled;
    let job = Job::enqueue(conn, &NewJob::new("cluster_create", "{}")).unwrap();
    let t0 = now();
    assert_eq!(
        Job::claim(conn, "crashed", t0, LEASE)
            .unwrap()
            .map(|j| j.id),
        Some(job.id)
    );
    assert_eq!(
        Job::claim(conn, "w2", t0 + LEASE, LEASE).unwrap(),
        None,
        "lease still valid"
    );
    let taken = Job::claim(conn, "w2", t0 + LEASE + TimeDelta::seconds(1), LEASE)
        .unwrap()
        .expect("stale lease");
    assert_eq!(taken.locked_by.as_deref(), Some("w2"));
    assert!(
        !Job::complete(conn, job.id, "crashed").unwrap(),
        "the old holder lost the job"
    );
    assert!(Job::complete(conn, job.id, "w2").unwrap());
});

db_test!(
    jobs_concurrent_claims_never_share_a_job,
    |db: &TestDatabase| {
        const JOBS: usize = 60;
        const WORKERS: usize = 4;
        let mut enqueued = BTreeSet::new();
        {
            let mut pooled = db.conn();
            let conn: &mut DbConnection = &mut pooled;
            for i in 0..JOBS {
                let job =
                    Job::enqueue(conn, &NewJob::new("noop", &format!(r#"{{"i":{i}}}"#))).unwrap();
                enqueued.insert(job.id);
            }
        }
        let handles: Vec<_> = (0..WORKERS)
            .map(|w| {
                let pool = db.pool.clone();
                std::thread::spawn(move || {
                    let worker = format!("worker-{w}");
                    let mut conn = pool.get().unwrap();
                    let mut claimed = Vec::new();
                    // Bounded in count: far more rounds than jobs, with a short
                    // pause when the queue looks empty but is not (jobs leased
                    // by others, or a skipped row on PostgreSQL).
                    for _ in 0..5_000 {
                        match Job::claim(&mut conn, &worker, now(), LEASE).unwrap() {
                            Some(job) => {
                                claimed.push(job.id);
                                assert!(
                                    Job::complete(&mut conn, job.id, &worker).unwrap(),
                                    "lease lost"
                                );
                            }
                            None if Job::count(&mut conn).unwrap() == 0 => break,
                            None => std::thread::sleep(std::time::Duration::from_millis(1)),
                        }
                    }
                    claimed
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().expect("worker panicked"));
        }
        let unique: BTreeSet<i64> = all.iter().copied().collect();
        assert_eq!(unique.len(), all.len(), "a job was handed to two workers");
        assert_eq!(unique, enqueued, "every job claimed exactly once");
        assert_eq!(Job::count(&mut db.conn()).unwrap(), 0);
    }
);

// ---- The quota rule ---------------------------------------------------

db_test!(
    lock_project_serialises_the_quota_count,
    |db: &TestDatabase| {
        const LIMIT: i64 = 3;
        const CREATORS: usize = 6;
        let tmpl = template(&mut db.conn(), "p1", "k8s").uuid;
        let start = std::sync::Arc::new(std::sync::Barrier::new(CREATORS));
        let handles: Vec<_> = (0..CREATORS)
            .map(|i| {
                let (pool, tmpl, start) = (db.pool.clone(), tmpl.clone(), start.clone());
                std::thread::spawn(move || {
                    let mut conn = pool.get().unwrap();
                    start.wait();
                    // As the API's create: insert, then count inside the
                    // project's lock, and roll back when over the limit.
                    write_transaction(&mut conn, |conn| {
                        // A read before the lock: on MariaDB a snapshot
                        // taken here (REPEATABLE READ) would hide the
                        // clusters others commit while this one waits.
                        Cluster::count_by_project(conn, "p1")?;
                        lock_project(conn, "p1")?;
                        cluster(conn, "p1", &format!("c{i}"), &tmpl);
                        if Cluster::count_by_project(conn, "p1")? > LIMIT {
                            return Err(DieselError::RollbackTransaction);
                        }
                        Ok(())
                    })
                })
            })
            .collect();
        let outcomes: Vec<diesel::QueryResult<()>> = handles
            .into_iter()
            .map(|h| h.join().expect("creator panicked"))
            .collect();
        for outcome in &outcomes {
            assert!(
                matches!(outcome, Ok(()) | Err(DieselError::RollbackTransaction)),
                "neither created nor refused: {outcome:?}"
            );
        }
        let created = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(created, LIMIT as usize, "creates that passed the quota");
        assert_eq!(
            Cluster::count_by_project(&mut db.conn(), "p1").unwrap(),
            LIMIT
        );
    }
);

// ---- run_blocking -----------------------------------------------------

#[tokio::test]
async fn run_blocking_returns_the_closure_result() {
    let db = TestDatabase::new(Backend::Sqlite).unwrap();
    let created: Result<ClusterTemplate, DbError> =
        run_blocking(&db.pool, |conn| Ok(template(conn, "p1", "from-async"))).await;
    let uuid = created.unwrap().uuid;
    let found = run_blocking(&db.pool, move |conn| {
        ClusterTemplate::find_by_uuid(conn, &uuid).map_err(DbError::from)
    })
    .await
    .unwrap();
    assert_eq!(found.name, "from-async");
}

#[tokio::test]
#[should_panic(expected = "boom inside the database task")]
async fn run_blocking_re_raises_panics() {
    let db = TestDatabase::new(Backend::Sqlite).unwrap();
    let _: Result<(), DbError> =
        run_blocking(&db.pool, |_conn| panic!("boom inside the database task")).await;
}

/// On SQLite the writers of one process take turns: with busy_timeout 0,
/// any two write transactions that overlapped would fail with "database
/// is locked", so sixteen concurrent ones all committing, never two at
/// once, shows they queued instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_write_queues_sqlite_writers() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.sqlite").display());
    let timeouts = DbTimeouts {
        sqlite_busy_timeout_ms: 0,
        acquire_timeout_seconds: 30,
        ..DbTimeouts::default()
    };
    let pool = DbPool::open(&url, 16, timeouts).unwrap();
    migrate(&mut pool.get().unwrap()).unwrap();
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..16)
        .map(|i| {
            let (pool, inside, most) = (pool.clone(), inside.clone(), most.clone());
            tokio::spawn(async move {
                run_write(&pool, move |conn| -> Result<(), DbError> {
                    write_transaction(conn, |conn| {
                        let now_inside = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now_inside, Ordering::SeqCst);
                        template(conn, "p1", &format!("queued-{i}"));
                        // Widens the window another writer would hit.
                        std::thread::sleep(Duration::from_millis(5));
                        inside.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    })
                })
                .await
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap().unwrap();
    }
    assert_eq!(most.load(Ordering::SeqCst), 1, "one writer at a time");
    let mut conn = pool.get().unwrap();
    assert_eq!(
        ClusterTemplate::list(&mut conn, TemplateScope::All, &Page::default())
            .unwrap()
            .len(),
        16
    );
}

/// Other backends lock rows, so `run_write` adds no turn there.
#[test]
fn run_write_takes_turns_only_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.sqlite").display());
    assert!(DbPool::connect(&url).unwrap().writer.is_some());
    let pg = DbPool::open_lazy(
        "postgres://nobody@127.0.0.1:1/none",
        1,
        DbTimeouts::default(),
    )
    .unwrap();
    assert!(pg.writer.is_none());
}

/// The first connection switches a new SQLite file to WAL before the pool
/// opens its own; racing it failed with "database is locked".
#[test]
fn new_sqlite_databases_open_without_a_lock_race() {
    for _ in 0..50 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.sqlite").display());
        let pool = DbPool::connect_with(&url, 6).unwrap_or_else(|e| panic!("{e}"));
        drop(pool.get().unwrap());
    }
}
