//! docs/writing-a-driver.md, followed: a driver crate outside the workspace,
//! depending only on driver-sdk, built, registered, verified and enabled.

use crate::support::*;

#[test]
fn out_of_tree_driver_builds_registers_and_verifies() {
    let out = build_external("tests/fixtures/vendor-driver");
    let lib = out.join("libacme_magnum_driver.so");
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path();
    let said = ok(manage(plugins, &["register", lib.to_str().unwrap()]));
    assert!(
        said.starts_with("registered acme_v1 0.3.0 (abi 1.2.0"),
        "{said}"
    );
    assert!(said.contains("disabled"), "{said}");
    let verified = ok(manage(plugins, &["verify", "acme_v1"]));
    assert!(
        verified.contains("PASS acme_v1: create_cluster (vm, acme-linux, acme)"),
        "{verified}"
    );
    assert!(
        verified.contains("PASS acme_v1: validate_template rejects an unknown network driver"),
        "{verified}"
    );
    ok(manage(plugins, &["enable", "acme_v1"]));
    let listed = ok(manage(plugins, &["list-drivers", "-d", "-f", "csv"]));
    assert_eq!(
        listed,
        "\"Name\",\"Server_Type\",\"OS\",\"COE\"\n\"acme_v1\",\"vm\",\"acme-linux\",\"acme\"\n"
    );

    // Its dependency tree holds the SDK, the ABI it brings and theirs, nothing
    // of the host.
    let tree =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "tree",
                "--edges",
                "normal",
                "--prefix",
                "none",
                "--manifest-path",
            ])
            .arg(workspace().join("tests/fixtures/vendor-driver/Cargo.toml"))
            .output()
            .expect("cargo tree");
    let tree = String::from_utf8_lossy(&tree.stdout);
    assert!(tree.contains("magnum-driver-sdk v0.1.0"), "{tree}");
    assert!(tree.contains("magnum-driver-abi v1.2.0"), "{tree}");
    assert!(!tree.contains("magnum-host"), "{tree}");
}
