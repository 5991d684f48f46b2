//! `LocalCloud` on SQLite and PostgreSQL: the status timeline, updates,
//! deletes, conflicts and injected faults.

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use magnum_driver_abi::{StackAction, StackOperation, StackSnapshot, StackTarget};
use serde_json::{json, Value};

use super::{files, hot, map, NODE};
use crate::db::testing::{db_test, TestDatabase};
use crate::db::{
    models::LocalFile,
    schema::{local_file, local_ipam, local_stack},
    DbConnection,
};
use crate::orchestrator::{LocalCloud, LocalCloudConfig, LocalError};

const CLUSTER: &str = r#"
parameters:
  image: {type: string}
  workers: {type: number, default: 2, constraints: [{range: {min: 0, max: 20}}]}
  to_remove: {type: comma_delimited_list, default: []}
  password: {type: string, default: secret, hidden: true}
resources:
  net: {type: OS::Neutron::Net, properties: {name: {get_param: OS::stack_name}}}
  subnet:
    type: OS::Neutron::Subnet
    properties: {name: {get_param: OS::stack_name}, network: {get_resource: net}, cidr: 10.0.0.0/24}
  master:
    type: node.yaml
    properties: {name: master, subnet: {get_resource: subnet}, role: master}
  workers:
    type: OS::Heat::ResourceGroup
    properties:
      count: {get_param: workers}
      removal_policies: [{resource_list: {get_param: to_remove}}]
      resource_def:
        type: node.yaml
        properties: {name: 'worker-%index%', subnet: {get_resource: subnet}, peer: {get_attr: [master, ip]}}
outputs:
  api_address: {value: {get_attr: [master, external_ip]}}
  workers: {value: {get_attr: [workers, external_ip]}}
  workers_private: {value: {get_attr: [workers, ip]}}
"#;

fn t0() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 11, 23)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .expect("a valid time")
}

fn at(seconds: i64) -> NaiveDateTime {
    t0() + TimeDelta::seconds(seconds)
}

fn create_op(name: &str, parameters: Value) -> StackOperation {
    StackOperation {
        action: StackAction::Create,
        target: StackTarget {
            nodegroup: Some("ng-1".into()),
        },
        stack_name: name.into(),
        template: "cluster.yaml".into(),
        files: files(&[("cluster.yaml", &hot(CLUSTER)), ("node.yaml", NODE)]),
        parameters: map(parameters),
        disable_rollback: true,
        timeout_mins: Some(60),
        ..Default::default()
    }
}

fn update_op(id: &str, parameters: Value) -> StackOperation {
    StackOperation {
        action: StackAction::Update,
        stack_name: "ignored".into(),
        stack_id: Some(id.into()),
        parameters: map(parameters),
        existing: true,
        disable_rollback: true,
        ..Default::default()
    }
}

fn cloud() -> LocalCloud {
    LocalCloud::default()
}

fn faulty(config: LocalCloudConfig) -> LocalCloud {
    LocalCloud::new(config)
}

fn status(s: &StackSnapshot) -> (&str, &str) {
    (s.status.as_str(), s.status_reason.as_str())
}

fn pools(conn: &mut DbConnection) -> i64 {
    local_ipam::table
        .filter(local_ipam::stack_id.is_not_null())
        .count()
        .get_result(conn)
        .expect("count pools")
}

db_test!(
    a_stack_completes_when_its_servers_have_booted,
    |db: &TestDatabase| {
        let conn: &mut DbConnection = &mut db.conn();
        let cloud = cloud();
        let op = create_op("demo-1", json!({"image": "fedora"}));
        let created = cloud.create(conn, "p1", &op, t0()).unwrap();
        assert_eq!(
            status(&created),
            ("CREATE_IN_PROGRESS", "Stack CREATE started")
        );
        assert!(created.outputs.is_empty());
        assert_eq!(created.target.nodegroup.as_deref(), Some("ng-1"));
        let id = created.stack_id.clone();
        assert_eq!(
            Value::Object(created.parameters.clone()),
            json!({
                "image": "fedora", "workers": "2", "to_remove": "", "password": "******",
                "OS::stack_name": "demo-1", "OS::stack_id": id, "OS::project_id": "p1",
            })
        );

        // The master boots first, then the workers that use its address.
        let servers = cloud.servers(conn, &id, at(3)).unwrap();
        let states: Vec<(&str, &str)> = servers
            .iter()
            .map(|s| (s.resource.as_str(), s.status.as_str()))
            .collect();
        assert_eq!(
            states,
            [
                ("master.server", "ACTIVE"),
                ("workers.0.server", "BUILD"),
                ("workers.1.server", "BUILD"),
            ]
        );
        assert_eq!(servers[0].name, "master");
        assert_eq!(servers[0].addresses, ["127.64.0.3"]);
        let midway = cloud.get(conn, &id, at(5)).unwrap();
        assert_eq!(midway.status, "CREATE_IN_PROGRESS");

        // A new instance (a restart) sees the same stack.
        let done = LocalCloud::default().get(conn, &id, at(6)).unwrap();
        assert_eq!(
            status(&done),
            ("CREATE_COMPLETE", "Stack CREATE completed successfully")
        );
        assert_eq!(
            Value::Object(done.outputs.clone()),
            json!({
                "api_address": "127.24.0.2",
                "workers": ["127.24.0.3", "127.24.0.4"],
                "workers_private": ["127.64.0.4", "127.64.0.5"],
            })
        );
        assert_eq!(cloud.get(conn, &id, at(600)).unwrap(), done);

        let found = cloud.find_by_name(conn, "demo-1", at(7)).unwrap().unwrap();
        assert_eq!(found.stack_id, id);
        assert_eq!(cloud.find_by_name(conn, "demo-2", at(7)).unwrap(), None);
        match cloud.create(conn, "p1", &op, at(8)) {
            Err(LocalError::Conflict(m)) => assert_eq!(m, "The Stack (demo-1) already exists."),
            other => panic!("expected a conflict, got {other:?}"),
        }
        // Addresses are unique across stacks.
        let other = cloud
            .create(
                conn,
                "p1",
                &create_op("demo-2", json!({"image": "f"})),
                at(8),
            )
            .unwrap();
        let other = cloud.get(conn, &other.stack_id, at(20)).unwrap();
        assert_eq!(other.outputs["api_address"], json!("127.24.0.5"));
    }
);

db_test!(invalid_templates_fail_at_once, |db: &TestDatabase| {
    let conn: &mut DbConnection = &mut db.conn();
    let cloud = cloud();
    let failed = cloud
        .create(conn, "p1", &create_op("bad-1", json!({})), t0())
        .unwrap();
    assert_eq!(
        status(&failed),
        ("CREATE_FAILED", "The Parameter (image) was not provided.")
    );
    assert_eq!(failed.parameters.get("image"), None);
    let failed = cloud
        .create(
            conn,
            "p1",
            &create_op("bad-2", json!({"image": "f", "workers": 50})),
            t0(),
        )
        .unwrap();
    assert_eq!(
        failed.status_reason,
        "Parameter 'workers' is invalid: The value must be in the range 0 to 20."
    );
    let mut op = create_op("bad-3", json!({"image": "f"}));
    let broken = NODE.replace("OS::Neutron::FloatingIP", "OS::Neutron::FloatingIPs");
    op.files.insert("node.yaml".into(), broken);
    let failed = cloud.create(conn, "p1", &op, t0()).unwrap();
    assert_eq!(
        failed.status_reason,
        "resources.master.resources.fip: The Resource Type (OS::Neutron::FloatingIPs) could not be found."
    );
    // The evaluation was rolled back: no address pool was left behind.
    assert_eq!(pools(conn), 0);
    // A failed stack stays until deleted, and can then be created anew.
    assert_eq!(
        cloud.get(conn, &failed.stack_id, at(100)).unwrap().status,
        "CREATE_FAILED"
    );
    cloud.delete(conn, &failed.stack_id, at(100)).unwrap();
    assert!(matches!(
        cloud.get(conn, &failed.stack_id, at(102)),
        Err(LocalError::NotFound(_))
    ));
    let ok = cloud
        .create(
            conn,
            "p1",
            &create_op("bad-3", json!({"image": "f"})),
            at(103),
        )
        .unwrap();
    assert_eq!(ok.status, "CREATE_IN_PROGRESS");
});

db_test!(
    updates_scale_groups_and_keep_what_did_not_change,
    |db: &TestDatabase| {
        let conn: &mut DbConnection = &mut db.conn();
        let cloud = cloud();
        let id = cloud
            .create(conn, "p1", &create_op("scale", json!({"image": "f"})), t0())
            .unwrap()
            .stack_id;
        match cloud.update(conn, &id, &update_op(&id, json!({"workers": 3})), at(1)) {
            Err(LocalError::Conflict(m)) => {
                assert_eq!(m, "Stack scale already has an action (CREATE) in progress.")
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        let up = cloud
            .update(conn, &id, &update_op(&id, json!({"workers": 3})), at(10))
            .unwrap();
        assert_eq!(status(&up), ("UPDATE_IN_PROGRESS", "Stack UPDATE started"));
        // The previous outputs stay until the update completes.
        assert_eq!(up.outputs["workers"], json!(["127.24.0.3", "127.24.0.4"]));
        let up = cloud.get(conn, &id, at(13)).unwrap();
        assert_eq!(
            status(&up),
            ("UPDATE_COMPLETE", "Stack UPDATE completed successfully")
        );
        assert_eq!(
            up.outputs["workers"],
            json!(["127.24.0.3", "127.24.0.4", "127.24.0.5"])
        );
        assert_eq!(up.parameters["workers"], json!("3"));
        assert_eq!(up.parameters["image"], json!("f"), "existing: merged");

        // Remove worker 0 by its server id (what `refs` gives) and shrink.
        let servers = cloud.servers(conn, &id, at(20)).unwrap();
        let worker_0 = servers
            .iter()
            .find(|s| s.resource == "workers.0.server")
            .unwrap();
        let down = cloud
            .update(
                conn,
                &id,
                &update_op(&id, json!({"workers": 1, "to_remove": [worker_0.id]})),
                at(20),
            )
            .unwrap();
        assert_eq!(down.status, "UPDATE_COMPLETE", "nothing to boot");
        assert_eq!(down.outputs["workers"], json!(["127.24.0.4"]));
        let names: Vec<String> = cloud
            .servers(conn, &id, at(20))
            .unwrap()
            .into_iter()
            .map(|s| s.resource)
            .collect();
        assert_eq!(names, ["master.server", "workers.1.server"]);

        // A full (not `existing`) update replaces the parameters.
        let mut replace = create_op("scale", json!({"image": "g", "workers": 0}));
        replace.action = StackAction::Update;
        replace.stack_id = Some(id.clone());
        let replaced = cloud.execute(conn, "p1", &replace, at(30)).unwrap();
        assert_eq!(replaced.status, "UPDATE_COMPLETE");
        assert_eq!(replaced.outputs["workers"], json!([]));
        assert_eq!(replaced.parameters["to_remove"], json!(""));
    }
);

db_test!(deleted_stacks_are_gone, |db: &TestDatabase| {
    let conn: &mut DbConnection = &mut db.conn();
    let cloud = cloud();
    let id = cloud
        .create(conn, "p1", &create_op("gone", json!({"image": "f"})), t0())
        .unwrap()
        .stack_id;
    assert_eq!(pools(conn), 1, "the stack's subnet");
    let deleting = cloud.delete(conn, &id, at(2)).unwrap();
    assert_eq!(
        status(&deleting),
        ("DELETE_IN_PROGRESS", "Stack DELETE started")
    );
    assert_eq!(cloud.delete(conn, &id, at(2)).unwrap(), deleting);
    assert!(matches!(
        cloud.update(conn, &id, &update_op(&id, json!({})), at(2)),
        Err(LocalError::Conflict(_))
    ));
    match cloud.get(conn, &id, at(3)) {
        Err(LocalError::NotFound(m)) => {
            assert_eq!(m, format!("The Stack ({id}) could not be found."))
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(cloud.find_by_name(conn, "gone", at(3)).unwrap(), None);
    assert!(matches!(
        cloud.delete(conn, &id, at(4)),
        Err(LocalError::NotFound(_))
    ));
    assert_eq!(pools(conn), 0);

    // With no delete time, a delete completes at once.
    let instant = LocalCloud::new(LocalCloudConfig {
        boot_seconds: 0.0,
        delete_seconds: 0.0,
        ..Default::default()
    });
    let created = instant
        .create(conn, "p1", &create_op("gone", json!({"image": "f"})), at(5))
        .unwrap();
    assert_eq!(created.status, "CREATE_COMPLETE");
    assert_eq!(created.outputs["workers"].as_array().map(Vec::len), Some(2));
    let deleted = instant.delete(conn, &created.stack_id, at(5)).unwrap();
    assert_eq!(deleted.status, "DELETE_COMPLETE");
    assert!(matches!(
        instant.get(conn, &created.stack_id, at(5)),
        Err(LocalError::NotFound(_))
    ));
});

db_test!(
    injected_faults_fail_create_update_and_delete,
    |db: &TestDatabase| {
        let conn: &mut DbConnection = &mut db.conn();
        let failing_servers = faulty(LocalCloudConfig {
            fail_resource_type: Some("OS::Nova::Server".into()),
            ..Default::default()
        });
        let id = failing_servers
            .create(conn, "p1", &create_op("f-1", json!({"image": "f"})), t0())
            .unwrap()
            .stack_id;
        assert_eq!(
            failing_servers.get(conn, &id, at(2)).unwrap().status,
            "CREATE_IN_PROGRESS"
        );
        let failed = failing_servers.get(conn, &id, at(3)).unwrap();
        assert_eq!(
            status(&failed),
            (
                "CREATE_FAILED",
                "Resource CREATE failed: OS::Nova::Server server: injected fault"
            )
        );
        // A retry on a healthy cloud completes the stack.
        let retry = cloud()
            .update(conn, &id, &update_op(&id, json!({})), at(10))
            .unwrap();
        assert_eq!(retry.status, "UPDATE_IN_PROGRESS");
        let retried = cloud().get(conn, &id, at(16)).unwrap();
        assert_eq!(retried.status, "UPDATE_COMPLETE");
        assert_eq!(retried.outputs["workers"].as_array().map(Vec::len), Some(2));

        // Three servers allowed: the create works, growing past it fails.
        let three = faulty(LocalCloudConfig {
            fail_after_servers: Some(3),
            ..Default::default()
        });
        let id = three
            .create(conn, "p1", &create_op("f-2", json!({"image": "f"})), t0())
            .unwrap()
            .stack_id;
        assert_eq!(
            three.get(conn, &id, at(6)).unwrap().status,
            "CREATE_COMPLETE"
        );
        three
            .update(conn, &id, &update_op(&id, json!({"workers": 3})), at(10))
            .unwrap();
        let failed = three.get(conn, &id, at(13)).unwrap();
        assert_eq!(
            status(&failed),
            (
                "UPDATE_FAILED",
                "Resource UPDATE failed: OS::Nova::Server server: injected fault after 3 servers"
            )
        );
        assert_eq!(failed.outputs["workers"].as_array().map(Vec::len), Some(2));
        let retried = cloud()
            .update(conn, &id, &update_op(&id, json!({})), at(20))
            .unwrap();
        assert_eq!(retried.status, "UPDATE_IN_PROGRESS");
        assert_eq!(
            cloud().get(conn, &id, at(23)).unwrap().outputs["workers"]
                .as_array()
                .map(Vec::len),
            Some(3)
        );

        // A delete fails on a resource of the failing type; a retry works.
        let failing_subnets = faulty(LocalCloudConfig {
            fail_resource_type: Some("OS::Neutron::Subnet".into()),
            ..Default::default()
        });
        failing_subnets.delete(conn, &id, at(30)).unwrap();
        let failed = failing_subnets.get(conn, &id, at(31)).unwrap();
        assert_eq!(
            status(&failed),
            (
                "DELETE_FAILED",
                "Resource DELETE failed: OS::Neutron::Subnet subnet: injected fault"
            )
        );
        cloud().delete(conn, &id, at(40)).unwrap();
        assert!(matches!(
            cloud().get(conn, &id, at(41)),
            Err(LocalError::NotFound(_))
        ));

        // Never finishing, a stack times out as Heat's does.
        let stuck = faulty(LocalCloudConfig {
            never_finish: true,
            ..Default::default()
        });
        let mut op = create_op("f-3", json!({"image": "f"}));
        op.timeout_mins = Some(1);
        let id = stuck.create(conn, "p1", &op, t0()).unwrap().stack_id;
        assert_eq!(
            stuck.get(conn, &id, at(59)).unwrap().status,
            "CREATE_IN_PROGRESS"
        );
        assert_eq!(
            status(&stuck.get(conn, &id, at(60)).unwrap()),
            ("CREATE_FAILED", "Create timed out")
        );
    }
);

/// `count` floating IPs on network `public` in one stack.
fn floating_ips_op(name: &str, count: usize) -> StackOperation {
    let template = hot(r#"
parameters:
  count: {type: number}
resources:
  fips:
    type: OS::Heat::ResourceGroup
    properties:
      count: {get_param: count}
      resource_def: {type: OS::Neutron::FloatingIP, properties: {floating_network: public}}
outputs:
  addresses: {value: {get_attr: [fips, floating_ip_address]}}
"#);
    StackOperation {
        action: StackAction::Create,
        stack_name: name.into(),
        template: "fips.yaml".into(),
        files: files(&[("fips.yaml", &template)]),
        parameters: map(json!({ "count": count })),
        disable_rollback: true,
        ..Default::default()
    }
}

fn floating_addresses(s: &StackSnapshot) -> Vec<String> {
    s.outputs["addresses"]
        .as_array()
        .unwrap_or_else(|| panic!("addresses: {s:?}"))
        .iter()
        .map(|a| a.as_str().expect("an address").to_owned())
        .collect()
}

fn create_complete(
    cloud: &LocalCloud,
    conn: &mut DbConnection,
    op: &StackOperation,
    t: i64,
) -> StackSnapshot {
    let created = cloud.create(conn, "p1", op, at(t)).unwrap();
    let done = cloud.get(conn, &created.stack_id, at(t + 1)).unwrap();
    assert_eq!(done.status, "CREATE_COMPLETE", "{done:?}");
    done
}

db_test!(
    floating_ips_are_unique_across_live_stacks_and_reused_once_released,
    |db: &TestDatabase| {
        let conn: &mut DbConnection = &mut db.conn();
        // Past the 1,022 of a /22, all live at once.
        let cloud = cloud();
        let mut live = std::collections::BTreeSet::new();
        for (i, name) in ["big-1", "big-2"].into_iter().enumerate() {
            let stack = create_complete(&cloud, conn, &floating_ips_op(name, 700), i as i64);
            for address in floating_addresses(&stack) {
                assert!(live.insert(address.clone()), "{address} handed out twice");
            }
        }
        assert_eq!(live.len(), 1400);
        for address in &live {
            let ip: std::net::Ipv4Addr = address.parse().expect("IPv4");
            assert_eq!(ip.octets()[0], 127, "{address} is on loopback");
        }

        // A /22 of 1,021 usable addresses: full, then one more is Neutron's
        // error on that resource, and a delete gives addresses back.
        let small = faulty(LocalCloudConfig {
            floating_ip_cidr: "127.25.0.0/22".into(),
            delete_seconds: 0.0,
            ..Default::default()
        });
        let a = create_complete(&small, conn, &floating_ips_op("a", 600), 10);
        let b = create_complete(&small, conn, &floating_ips_op("b", 421), 11);
        let mut held: std::collections::BTreeSet<String> =
            floating_addresses(&b).into_iter().collect();
        assert_eq!(held.len(), 421);
        assert!(floating_addresses(&a).iter().all(|x| !held.contains(x)));
        let full = small
            .create(conn, "p1", &floating_ips_op("c", 1), at(12))
            .unwrap();
        let full = small.get(conn, &full.stack_id, at(13)).unwrap();
        assert_eq!(full.status, "CREATE_FAILED", "{full:?}");
        assert!(
            full.status_reason
                .contains("No more IP addresses available on network public"),
            "{}",
            full.status_reason
        );
        small.delete(conn, &a.stack_id, at(14)).unwrap();
        small.delete(conn, &full.stack_id, at(14)).unwrap();
        let d = create_complete(&small, conn, &floating_ips_op("d", 600), 15);
        for address in floating_addresses(&d) {
            assert!(held.insert(address.clone()), "{address} handed out twice");
        }
        assert_eq!(held.len(), 1021);
    }
);

/// Two processes' conductors at once on PostgreSQL: each takes its own
/// connection, and no address is handed out twice.
#[test]
fn concurrent_creates_on_postgres_never_share_an_address() {
    let Some(db) = TestDatabase::new(crate::db::Backend::Postgres) else {
        return;
    };
    let addresses = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for worker in 0..3 {
            let (db, addresses) = (&db, &addresses);
            scope.spawn(move || {
                let conn: &mut DbConnection = &mut db.conn();
                let cloud = cloud();
                for i in 0..4 {
                    let op = floating_ips_op(&format!("w{worker}-{i}"), 40);
                    let stack = create_complete(&cloud, conn, &op, i);
                    addresses
                        .lock()
                        .expect("not poisoned")
                        .extend(floating_addresses(&stack));
                }
            });
        }
    });
    let all = addresses.into_inner().expect("not poisoned");
    let unique: std::collections::BTreeSet<&String> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (480, 480));
}

fn stored_files(conn: &mut DbConnection) -> Vec<String> {
    local_file::table
        .select(local_file::sha256)
        .order(local_file::sha256)
        .load(conn)
        .expect("stored files")
}

/// `(files_sha256, files, template)` of the stack.
fn files_columns(conn: &mut DbConnection, id: &str) -> (Option<String>, String, String) {
    local_stack::table
        .find(id)
        .select((
            local_stack::files_sha256,
            local_stack::files,
            local_stack::template,
        ))
        .first(conn)
        .expect("the stack's row")
}

db_test!(
    stacks_share_their_files_and_the_last_one_takes_them_along,
    |db: &TestDatabase| {
        let conn: &mut DbConnection = &mut db.conn();
        let cloud = cloud();
        let op = |name: &str| create_op(name, json!({"image": "f"}));
        let a = cloud.create(conn, "p1", &op("a"), t0()).unwrap().stack_id;
        let b = cloud.create(conn, "p1", &op("b"), t0()).unwrap().stack_id;
        let shared = stored_files(conn);
        assert_eq!(shared.len(), 1, "one copy for both stacks");
        let (key, inline, template) = files_columns(conn, &a);
        assert_eq!(key.as_deref(), Some(shared[0].as_str()));
        assert_eq!((inline.as_str(), template.as_str()), ("{}", ""));
        assert_eq!(files_columns(conn, &b).0, key);

        // An `existing` update that adds a file gives `a` files of its own;
        // `b` keeps the first ones.
        let mut extra = update_op(&a, json!({"workers": 1}));
        extra.files = files(&[("extra.yaml", "# unused\n")]);
        let updated = cloud.update(conn, &a, &extra, at(10)).unwrap();
        assert_eq!(updated.status, "UPDATE_COMPLETE");
        assert_eq!(stored_files(conn).len(), 2);
        let (a_key, ..) = files_columns(conn, &a);
        assert_ne!(a_key, key);
        // The merged files still hold the templates: a scale evaluates them.
        let scaled = cloud
            .update(conn, &a, &update_op(&a, json!({"workers": 2})), at(20))
            .unwrap();
        assert_eq!(scaled.status, "UPDATE_IN_PROGRESS");
        assert_eq!(files_columns(conn, &a).0, a_key, "same files, same row");

        // Deleting `b` frees the first files; deleting `a` the rest.
        cloud.delete(conn, &b, at(30)).unwrap();
        assert!(cloud.get(conn, &b, at(40)).is_err());
        assert_eq!(stored_files(conn), a_key.into_iter().collect::<Vec<_>>());
        cloud.delete(conn, &a, at(40)).unwrap();
        assert!(cloud.get(conn, &a, at(50)).is_err());
        assert_eq!(stored_files(conn), Vec::<String>::new());
    }
);

db_test!(
    stacks_written_before_shared_files_keep_working,
    |db: &TestDatabase| {
        let conn: &mut DbConnection = &mut db.conn();
        let cloud = cloud();
        let op = create_op("old", json!({"image": "f"}));
        let id = cloud.create(conn, "p1", &op, t0()).unwrap().stack_id;
        // The row as the release before `local_file` wrote it: its files
        // inline, its state as JSON, its parameters in their column.
        let inline = serde_json::to_string(&op.files).unwrap();
        let parameters = serde_json::to_string(&op.parameters).unwrap();
        let state = cloud.stored_state(conn, &id).unwrap();
        assert!(state.contains("\"servers_created\":3"), "{state}");
        diesel::update(local_stack::table.find(&id))
            .set((
                local_stack::files_sha256.eq(None::<String>),
                local_stack::files.eq(&inline),
                local_stack::template.eq(&op.files["cluster.yaml"]),
                local_stack::state.eq(&state),
                local_stack::state_z.eq(None::<Vec<u8>>),
                local_stack::parameters.eq(&parameters),
            ))
            .execute(conn)
            .unwrap();
        diesel::delete(local_file::table).execute(conn).unwrap();

        let up = cloud
            .update(conn, &id, &update_op(&id, json!({"workers": 3})), at(10))
            .unwrap();
        assert_eq!(up.status, "UPDATE_IN_PROGRESS");
        let up = cloud.get(conn, &id, at(13)).unwrap();
        assert_eq!(up.status, "UPDATE_COMPLETE");
        assert_eq!(
            up.outputs["workers"],
            json!(["127.24.0.3", "127.24.0.4", "127.24.0.5"])
        );
        // The update moved it over to the shared files and packed its state.
        let (key, files, template) = files_columns(conn, &id);
        let (state, packed): (String, Option<Vec<u8>>) = local_stack::table
            .find(&id)
            .select((local_stack::state, local_stack::state_z))
            .first(conn)
            .unwrap();
        assert_eq!(state, "");
        assert!(packed.is_some_and(|p| !p.is_empty()));
        assert!(cloud
            .stored_state(conn, &id)
            .unwrap()
            .contains("\"servers_created\":4"));
        // Its parameters and outputs went into the packed state too.
        let columns: (String, String) = local_stack::table
            .find(&id)
            .select((local_stack::parameters, local_stack::outputs))
            .first(conn)
            .unwrap();
        assert_eq!(columns, ("{}".to_owned(), "{}".to_owned()));
        assert_eq!(
            cloud.get(conn, &id, at(14)).unwrap().outputs["workers"],
            json!(["127.24.0.3", "127.24.0.4", "127.24.0.5"])
        );
        assert_eq!(key, Some(LocalFile::key(&inline)));
        assert_eq!((files.as_str(), template.as_str()), ("{}", ""));
        assert_eq!(stored_files(conn).len(), 1);
    }
);
