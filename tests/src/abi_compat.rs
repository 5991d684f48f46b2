//! ABI evolution: a driver built against the frozen 1.0 copy loads in this
//! (1.2) host and in a fixture "next minor" (1.3) host, which gets
//! Unsupported / None for what the old driver lacks; a 1.3 driver loads in
//! this host.

use std::process::Command;

use magnum_driver_abi::payload::*;
use magnum_host::plugins::Registry;
use serde_json::Value;

use crate::support::*;

const COMPAT: &str = "tests/fixtures/abi-compat";

#[test]
fn old_minor_driver_works_in_this_host_and_newer_driver_too() {
    let out = build_external(&format!("{COMPAT}/old-driver"));
    build_external(&format!("{COMPAT}/next-driver"));
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path();
    for lib in [
        "libmagnum_fixture_old_driver.so",
        "libmagnum_fixture_next_driver.so",
    ] {
        ok(manage(
            plugins,
            &["register", out.join(lib).to_str().unwrap(), "--enable"],
        ));
    }
    let registry = Registry::load(plugins).unwrap();
    let old = registry.get("old_driver").expect("1.0 driver loads");
    assert_eq!(old.abi_version, "1.0.0");
    let v = old
        .validate_template(&TemplateRequest {
            template: ClusterTemplate {
                name: "t-old".into(),
                ..Default::default()
            },
        })
        .unwrap();
    assert_eq!(v.warnings, ["old driver saw template t-old"]);

    // A driver of a newer minor loads here too; its extra functions are unseen.
    let next = registry
        .get("next_driver")
        .expect("a newer-minor driver loads in this host");
    assert_eq!(next.abi_version, "1.3.0");
    assert!(next.validate_template(&TemplateRequest::default()).is_ok());
    let manifest = std::fs::read_to_string(plugins.join("next_driver.toml")).unwrap();
    assert!(manifest.contains("abi = \"^1.3\""), "{manifest}");
}

#[test]
fn newer_host_answers_unsupported_for_what_an_old_driver_lacks() {
    let out = build_external(&format!("{COMPAT}/old-driver"));
    build_external(&format!("{COMPAT}/next-driver"));
    build_external(&format!("{COMPAT}/next-host"));
    let run = |lib: &str| -> Value {
        let o = Command::new(out.join("magnum-fixture-next-host"))
            .arg(out.join(lib))
            .output()
            .expect("run next-host");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).expect("JSON report")
    };

    let old = run("libmagnum_fixture_old_driver.so");
    assert_eq!(old["info_name"], "old_driver");
    assert_eq!(old["library_abi"], "1.0.0");
    assert_eq!(
        old["validate_template"]["ok"]["warnings"][0],
        "old driver saw template t1"
    );
    assert_eq!(old["rotate_ca_certificate"]["error_kind"], "unsupported");
    assert_eq!(
        old["features"],
        Value::Null,
        "a 1.3 root function is None on a 1.0 driver"
    );

    let new = run("libmagnum_fixture_next_driver.so");
    assert_eq!(
        new["rotate_ca_certificate"]["ok"]["operations"][0]["existing"],
        true
    );
    assert_eq!(new["features"][0], "ca-rotation");

    build_external(&format!("{COMPAT}/major2-driver"));
    let major2 = run("libmagnum_fixture_major2_driver.so");
    assert!(
        major2["load_error"]
            .as_str()
            .unwrap_or_default()
            .contains("magnum-driver-abi 2.0.0"),
        "{major2}"
    );
}

/// The frozen copy of the current minor (`abi-MAJOR.MINOR`) must be the same
/// source as driver-abi: a change to the ABI crate without a version bump
/// would otherwise go unseen. Older minors' copies are history.
#[test]
fn frozen_copy_matches_the_released_abi() {
    let abi_version = magnum_driver_abi::compat::abi_version();
    let live = workspace().join("driver-abi/src");
    let frozen = workspace().join(COMPAT).join(format!(
        "abi-{}.{}/src",
        abi_version.major, abi_version.minor
    ));
    assert!(
        frozen.is_dir(),
        "driver-abi is {abi_version}: freeze a copy of it in {}",
        frozen.display()
    );
    let mut names: Vec<_> = std::fs::read_dir(&live)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let a = std::fs::read_to_string(live.join(&name)).unwrap();
        let b = std::fs::read_to_string(frozen.join(&name)).unwrap_or_default();
        assert!(
            a == b,
            "driver-abi/src/{} differs from its frozen copy: bump the ABI version (see driver-abi/CHANGELOG.md) or keep the released contract unchanged",
            name.to_string_lossy()
        );
    }
}

/// driver-abi is the contract alone (root module, trait object, payloads,
/// errors, export macro, compat and the conventions host and drivers share):
/// what helps to write a driver belongs in driver-sdk, where it may change in
/// a minor. A helper added here would make every fix to it an ABI release.
#[test]
fn the_abi_crate_holds_the_contract_alone() {
    const MAX_LINES: usize = 1_200;
    let src = workspace().join("driver-abi/src");
    let mut lines = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.starts_with("helpers"),
            "driver-abi/src/{name}: helpers belong in driver-sdk/src/helpers.rs"
        );
        if path.is_file() {
            lines += std::fs::read_to_string(&path).unwrap().lines().count();
        }
    }
    assert!(
        lines < MAX_LINES,
        "driver-abi/src has {lines} lines (limit {MAX_LINES}): move what is not the contract to driver-sdk"
    );
    // The one `helpers` left is the path 1.0.0 gave the conventions:
    // re-exports of `convention`, nothing written here.
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let shim = lib
        .split_once("pub mod helpers {")
        .map(|(_, rest)| rest.split_once('}').expect("the module closes").0)
        .unwrap_or_default();
    for line in shim.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(
            line.starts_with("pub use crate::convention::"),
            "driver-abi's helpers module may only re-export convention, found: {line}"
        );
    }
}

/// Drivers share Rust code through driver-sdk, not `#[path]` includes.
#[test]
fn bundled_drivers_include_no_shared_rust_by_path() {
    let drivers = workspace().join("drivers");
    for driver in std::fs::read_dir(&drivers).unwrap() {
        let driver = driver.unwrap().path();
        // Their code shares through driver-sdk, their tests through
        // driver-testkit.
        for dir in ["src", "tests"] {
            let Ok(files) = std::fs::read_dir(driver.join(dir)) else {
                continue;
            };
            for file in files {
                let path = file.unwrap().path();
                if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    assert!(
                        !text.contains("#[path"),
                        "{}: share code through driver-sdk or driver-testkit instead of #[path]",
                        path.display()
                    );
                }
            }
        }
    }
}
