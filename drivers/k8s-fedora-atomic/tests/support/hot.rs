//! A string-level lint of a plan's HOT files, shared by the three driver
//! crates' tests (through `support`, which the others include with
//! `#[path]`). Drivers depend
//! on the ABI crate alone, so there is no YAML parser here: it relies on the
//! templates' layout (two-space indents, one key per line, intrinsic functions
//! in flow style), which the lint itself keeps honest. The host's `verify`
//! does the full structural check.

use std::collections::{BTreeMap, BTreeSet};

const ALLOWED_FUNCTIONS: &[&str] = &[
    "get_param",
    "get_resource",
    "get_attr",
    "str_replace",
    "list_join",
    "get_file",
    "if",
];
const OTHER_FUNCTIONS: &[&str] = &[
    "Fn::",
    "get_input",
    "repeat",
    "digest",
    "map_merge",
    "map_replace",
    "yaql",
    "equals",
    "not",
    "and",
    "or",
    "contains",
    "str_split",
    "list_concat",
    "list_concat_unique",
    "filter",
    "make_url",
    "str_replace_strict",
    "str_replace_vstrict",
    "resolve",
];

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// The entries of a top-level section: `(key, body lines)`.
pub fn section<'a>(text: &'a str, name: &str) -> Vec<(String, Vec<&'a str>)> {
    let header = format!("{name}:");
    let mut lines = text.lines().skip_while(|l| *l != header).skip(1);
    let mut entries: Vec<(String, Vec<&str>)> = Vec::new();
    for line in lines.by_ref() {
        if is_blank(line) {
            continue;
        }
        match indent(line) {
            0 => break,
            2 => {
                let key = line.trim().split(':').next().unwrap_or_default();
                entries.push((key.trim_matches('"').to_owned(), Vec::new()));
            }
            _ => {
                if let Some((_, body)) = entries.last_mut() {
                    body.push(line);
                }
            }
        }
    }
    entries
}

/// Declared parameters, each with whether it has a default.
pub fn parameters(text: &str) -> BTreeMap<String, bool> {
    section(text, "parameters")
        .into_iter()
        .map(|(name, body)| {
            let has_default = body.iter().any(|l| l.trim_start().starts_with("default:"));
            (name, has_default)
        })
        .collect()
}

fn names(text: &str, section_name: &str) -> BTreeSet<String> {
    section(text, section_name)
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// The identifiers that follow each occurrence of `pattern`.
pub fn references(text: &str, pattern: &str) -> Vec<String> {
    text.match_indices(pattern)
        .map(|(at, _)| {
            // `{get_param: [name, path...]}` names its parameter first.
            let rest = &text[at + pattern.len()..];
            rest.strip_prefix('[')
                .unwrap_or(rest)
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-' || *c == ':')
                .collect::<String>()
        })
        .collect()
}

/// `(file, properties)` of every nested template a resource uses, directly
/// or through `registry` (the environment's `resource_registry`, type to
/// type or file).
pub fn nested(text: &str, registry: &BTreeMap<String, String>) -> Vec<(String, Vec<String>)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(file) = line.trim().strip_prefix("type: ") else {
            continue;
        };
        let file = registry.get(file).map_or(file, String::as_str);
        if !file.ends_with(".yaml") {
            continue;
        }
        let level = indent(line);
        let mut properties = Vec::new();
        let mut in_properties = false;
        for next in lines[i + 1..].iter().filter(|l| !is_blank(l)) {
            let n = indent(next);
            if n < level || (n == level && in_properties) {
                break;
            }
            if n == level {
                in_properties = next.trim() == "properties:";
            } else if in_properties && n == level + 2 {
                properties.push(next.trim().split(':').next().unwrap_or_default().to_owned());
            }
        }
        found.push((file.to_owned(), properties));
    }
    found
}

/// Every problem found in `files` when `top` is created with `passed` and
/// the environment's `registry`: besides the checks of each file, every
/// `Magnum::*` type a template uses must be mapped by the registry, to a
/// type or to a file of `files`.
pub fn lint(
    files: &BTreeMap<String, String>,
    top: &str,
    passed: &[String],
    registry: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(top_text) = files.get(top) else {
        return vec![format!("top-level template {top} is not in files")];
    };
    check_passed(&mut problems, top, top_text, passed);
    // Bootstrap scripts ride along in `files` for `get_file`; only the
    // templates are HOT.
    for (file, text) in files.iter().filter(|(name, _)| !name.ends_with(".sh")) {
        if !text.starts_with("heat_template_version: 2018-08-31\n") {
            problems.push(format!("{file}: not heat_template_version 2018-08-31"));
        }
        let params = parameters(text);
        let resources = names(text, "resources");
        let conditions = names(text, "conditions");
        // A switcher template (network_existing.yaml) may create nothing.
        if params.is_empty() || (resources.is_empty() && !text.contains("\noutputs:\n")) {
            problems.push(format!("{file}: no parameters or no resources found"));
        }
        for name in references(text, "type: Magnum::") {
            let name = format!("Magnum::{name}");
            match registry.get(&name) {
                None => problems.push(format!("{file}: type {name} is not in the environment")),
                Some(target) if target.ends_with(".yaml") && !files.contains_key(target) => {
                    problems.push(format!("{file}: {name} maps to {target}, not in files"))
                }
                Some(_) => {}
            }
        }
        let checks = [
            (
                "get_param: ",
                "parameter",
                params.keys().cloned().collect::<BTreeSet<_>>(),
            ),
            ("get_resource: ", "resource", resources.clone()),
            ("get_attr: [", "resource", resources),
            ("condition: ", "condition", conditions.clone()),
            ("if: [", "condition", conditions),
        ];
        for (pattern, kind, declared) in checks {
            for name in references(text, pattern) {
                if !declared.contains(&name) {
                    problems.push(format!(
                        "{file}: `{pattern}{name}` names no declared {kind}"
                    ));
                }
            }
        }
        for function in references(text, "{") {
            let function = function.trim_end_matches(':');
            if !function.is_empty() && !ALLOWED_FUNCTIONS.contains(&function) {
                problems.push(format!("{file}: function {function} is not allowed"));
            }
        }
        for line in text.lines() {
            let key = line.trim_start().trim_start_matches("- ");
            if OTHER_FUNCTIONS
                .iter()
                .any(|f| key.starts_with(&format!("{f}:")) || key.starts_with("Fn::"))
            {
                problems.push(format!("{file}: disallowed function in `{}`", line.trim()));
            }
        }
        for (nested_file, properties) in nested(text, registry) {
            match files.get(&nested_file) {
                None => problems.push(format!("{file}: nested {nested_file} is not in files")),
                Some(nested_text) => {
                    check_passed(&mut problems, &nested_file, nested_text, &properties)
                }
            }
        }
    }
    problems
}

/// `passed` must all be declared in `text`, and cover every parameter
/// without a default.
fn check_passed(problems: &mut Vec<String>, file: &str, text: &str, passed: &[String]) {
    let params = parameters(text);
    for name in passed {
        if !params.contains_key(name) {
            problems.push(format!(
                "{file}: parameter {name} is passed but not declared"
            ));
        }
    }
    for (name, has_default) in &params {
        if !has_default && !passed.contains(name) {
            problems.push(format!("{file}: required parameter {name} is not passed"));
        }
    }
}
