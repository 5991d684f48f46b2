//! Cost of a driver call through the ABI (JSON + FFI + catch_unwind) against
//! calling the same driver's rlib directly, and the time to load the three
//! bundled drivers. Run with `scripts/bench`, which builds the release `.so`
//! files first.

mod support;

use std::{hint::black_box, time::Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use magnum_driver_abi::{payload::*, CoeDriver, DriverConfig};
use magnum_driver_k8s_fedora_atomic::K8sFedoraAtomicDriver;
use magnum_host::plugins::Registry;

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
}

criterion_group!(driver_calls, benches);
criterion_main!(driver_calls);
