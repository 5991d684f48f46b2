//! Cost of cluster certificates: the keys a create generates (RSA 2048, the
//! default, against ECDSA P-256 side by side), signing a CSR, and sealing a
//! key. Run with `scripts/bench-certs`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use magnum_host::certs::{x509, Authority, CertificateConfig, KeyAlgorithm};

fn settings(key_algorithm: KeyAlgorithm) -> CertificateConfig {
    CertificateConfig {
        key_algorithm,
        ..Default::default()
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("certs");
    g.sample_size(20);
    for (name, alg) in [
        ("ecdsa-p256", KeyAlgorithm::EcdsaP256),
        ("rsa-2048", KeyAlgorithm::Rsa2048),
    ] {
        let s = settings(alg);
        g.bench_function(format!("generate CA ({name})"), |b| {
            b.iter(|| x509::generate_ca(black_box(&s), "bench").expect("CA"))
        });
        let ca = x509::generate_ca(&s, "bench").expect("CA");
        // The CSR python-magnumclient sends: its own key, signed by this CA.
        let client = x509::issue_client(&s, &ca.cert_pem, &ca.key_pem, "admin", "system:masters")
            .expect("client");
        let csr_key = rcgen::KeyPair::from_pem(&client.key_pem).expect("key");
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "admin");
        let csr = params
            .serialize_request(&csr_key)
            .expect("csr")
            .pem()
            .expect("pem");
        g.bench_function(format!("sign CSR ({name} CA)"), |b| {
            b.iter(|| x509::sign_csr(&s, &ca.cert_pem, &ca.key_pem, black_box(&csr)).expect("sign"))
        });
    }
    let a = Authority::ephemeral(CertificateConfig::default());
    let key = x509::generate_ca(&settings(KeyAlgorithm::EcdsaP256), "bench").expect("CA");
    g.bench_function("seal + open a key", |b| {
        b.iter(|| {
            let sealed = a
                .seal(key.key_pem.as_bytes(), "cluster", "kubernetes")
                .expect("seal");
            a.open(black_box(&sealed), "cluster", "kubernetes")
                .expect("open")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
