//! Boot from volume, alike in the three drivers: the two labels, their
//! check, and the parameters they become. The node templates (HOT
//! 2021-04-16) omit the server's `image` and add a Cinder boot volume when
//! `boot_volume_size` is above 0.

use crate::{
    helpers::{check_at_least, label_spec},
    DriverResult, LabelSpec, LabelType, Labels,
};

/// The labels, passed through as the cluster template's parameters of the
/// same names.
pub const LABELS: [&str; 2] = ["boot_volume_size", "boot_volume_type"];

/// The labels' schema entries.
pub fn label_specs() -> [LabelSpec; 2] {
    [
        label_spec(
            "boot_volume_size",
            LabelType::Integer,
            Some("0"),
            &[],
            "size in GB of a Cinder volume each node boots from, made from the image (0: boot from the image on the flavor's disk)",
        ),
        label_spec(
            "boot_volume_type",
            LabelType::String,
            None,
            &[],
            "Cinder volume type of the boot volumes (default: Cinder's default type)",
        ),
    ]
}

/// `boot_volume_size` may not be negative (the schema check has already
/// refused a value that is no integer).
pub fn check(labels: &Labels) -> DriverResult<()> {
    match labels.get("boot_volume_size").map(|v| v.parse::<i64>()) {
        Some(Ok(size)) => check_at_least("labels.boot_volume_size", size, 0),
        _ => Ok(()),
    }
}
