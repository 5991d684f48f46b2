//! Cost of a driver call through the ABI (JSON + FFI + catch_unwind), and
//! through a runner process (`isolation = "process"`: JSON frames over a
//! pipe), against calling the same driver's rlib directly; and the time to
//! load the three bundled drivers. Run with `scripts/bench`, which builds
//! the release `.so` files and `magnum-driver-runner` first.

mod support;

use std::{hint::black_box, time::Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use magnum_driver_abi::{payload::*, CoeDriver, DriverConfig};
use magnum_driver_k8s_fedora_atomic::K8sFedoraAtomicDriver;
use magnum_host::plugins::{manifest::Isolation, Registry};

fn request() -> ClusterRequest {
    ClusterRequest {
        template: ClusterTemplate {
            coe: "kubernetes".into(),
            server_type: "vm".into(),
            cluster_distro: "fedora-atomic".into(),
            image_id: "fedora-atomic-latest".into(),
            flavor_id: Some("m1.small".into()),
            master_flavor_id: Some("m1.medium".into()),
            external_network_id: Some("public".into()),
            keypair_id: Some("default".into()),
            ..Default::default()
        },
        cluster: Cluster {
            uuid: "0b1f6a52-3c1d-4e7a-9f0b-2d6c8e4a5b01".into(),
            name: "bench".into(),
            master_count: 1,
            node_count: 3,
            keypair: Some("default".into()),
            ..Default::default()
        },
        nodegroups: vec![],
        context: HostContext::default(),
    }
}

fn benches(c: &mut Criterion) {
    // Manifests written by hand, so the first load below is the process's
    // first `dlopen` of each library (a cold load).
    let dir = support::plugins_dir("scripts/bench");
    let cold = Instant::now();
    let registry = Registry::load(dir.path()).expect("load");
    let cold = cold.elapsed();
    assert_eq!(
        registry.loaded().count(),
        3,
        "all three bundled drivers load"
    );
    println!("cold load of the three bundled drivers (first dlopen in this process): {cold:?}");

    c.bench_function(
        "load three drivers (warm: sha256 + header + layout + info + new)",
        |b| b.iter(|| black_box(Registry::load(dir.path()).expect("load"))),
    );

    let abi = registry.get("k8s_fedora_atomic_v1").expect("k8s loaded");
    let direct = K8sFedoraAtomicDriver::new(&DriverConfig::new()).expect("driver");
    let req = request();
    c.bench_function("create_cluster via ABI", |b| {
        b.iter(|| black_box(abi.create_cluster(black_box(&req)).expect("plan")))
    });
    c.bench_function("create_cluster via rlib", |b| {
        b.iter(|| black_box(direct.create_cluster(black_box(&req)).expect("plan")))
    });
    let treq = TemplateRequest {
        template: req.template.clone(),
    };
    c.bench_function("validate_template via ABI", |b| {
        b.iter(|| black_box(abi.validate_template(black_box(&treq)).expect("valid")))
    });
    c.bench_function("validate_template via rlib", |b| {
        b.iter(|| black_box(direct.validate_template(black_box(&treq)).expect("valid")))
    });

    // Process isolation: the same calls through a runner.
    let isolated_dir = support::plugins_dir_isolated("scripts/bench", Isolation::Process);
    let isolated = Registry::load(isolated_dir.path()).expect("load in runners");
    let runner = isolated
        .get("k8s_fedora_atomic_v1")
        .expect("k8s loaded in a runner");
    c.bench_function("create_cluster via runner", |b| {
        b.iter(|| black_box(runner.create_cluster(black_box(&req)).expect("plan")))
    });
    c.bench_function("validate_template via runner", |b| {
        b.iter(|| black_box(runner.validate_template(black_box(&treq)).expect("valid")))
    });

    // The three side by side, as ratios to the direct call.
    let per_call = |f: &dyn Fn()| {
        for _ in 0..200 {
            f();
        }
        let n = 2_000u32;
        let started = Instant::now();
        for _ in 0..n {
            f();
        }
        started.elapsed() / n
    };
    let rows: [(&str, [std::time::Duration; 3]); 2] = [
        (
            "create_cluster (k8s plan)",
            [
                per_call(&|| drop(black_box(direct.create_cluster(&req)))),
                per_call(&|| drop(black_box(abi.create_cluster(&req)))),
                per_call(&|| drop(black_box(runner.create_cluster(&req)))),
            ],
        ),
        (
            "validate_template",
            [
                per_call(&|| drop(black_box(direct.validate_template(&treq)))),
                per_call(&|| drop(black_box(abi.validate_template(&treq)))),
                per_call(&|| drop(black_box(runner.validate_template(&treq)))),
            ],
        ),
    ];
    println!("\nper call (mean of 2000): rlib | in-process ABI | process runner");
    for (what, [rlib, abi, proc]) in rows {
        let ratio = |d: std::time::Duration| d.as_secs_f64() / rlib.as_secs_f64().max(1e-12);
        println!(
            "{what}: {rlib:?} | {abi:?} ({:.2}x rlib) | {proc:?} ({:.2}x rlib, {:.2}x in-process)",
            ratio(abi),
            ratio(proc),
            proc.as_secs_f64() / abi.as_secs_f64().max(1e-12)
        );
    }
}

criterion_group!(driver_calls, benches);
criterion_main!(driver_calls);
