//! A string-level lint of a plan's HOT files, shared by the three driver
//! crates' tests (through `support`, which the others include with
//! `#[path]`). Drivers depend
//! on the ABI crate alone, so there is no YAML parser here: it relies on the
//! templates' layout (two-space indents, one key per line, intrinsic functions
//! in flow style but for block-style `if`), which the lint itself keeps
//! honest. The host's `verify` does the full structural check.

use std::collections::{BTreeMap, BTreeSet};

/// The versions a plan's templates may declare. In 2021-04-16 (Heat's
/// wallaby) `if` may take two arguments, dropping its key or item when false.
const VERSIONS: &[&str] = &["2018-08-31", "2021-04-16"];
const NULLABLE_IF_VERSION: &str = "2021-04-16";

const ALLOWED_FUNCTIONS: &[&str] = &[
    "get_param",
    "get_resource",
    "get_attr",
    "str_replace",
    "list_join",
    "get_file",
    "if",
];
/// Functions valid only in the `conditions` section.
const CONDITION_FUNCTIONS: &[&str] = &["equals", "not", "and", "or"];
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

/// The text of a top-level section, and the text without it.
fn split_section(text: &str, name: &str) -> (String, String) {
    let header = format!("{name}:");
    let (mut inside, mut outside) = (String::new(), String::new());
    let mut in_section = false;
    for line in text.lines() {
        if indent(line) == 0 && !is_blank(line) {
            in_section = line == header;
        }
        let target = if in_section {
            &mut inside
        } else {
            &mut outside
        };
        target.push_str(line);
        target.push('\n');
    }
    (inside, outside)
}

/// `(condition, number of arguments)` of every `if`, in flow style
/// (`{if: [c, a, b]}`) or block style (`if:` then one `- ` line per
/// argument).
fn if_calls(text: &str) -> Vec<(String, usize)> {
    let mut calls = Vec::new();
    for (at, pattern) in text.match_indices("if: [") {
        let mut arguments = vec![String::new()];
        let mut depth = 0usize;
        let mut quote = None;
        for c in text[at + pattern.len()..].chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '[' | '{') => depth += 1,
                (None, ']' | '}') if depth == 0 => break,
                (None, ']' | '}') => depth -= 1,
                (None, ',') if depth == 0 => {
                    arguments.push(String::new());
                    continue;
                }
                _ => {}
            }
            if let Some(last) = arguments.last_mut() {
                last.push(c);
            }
        }
        calls.push((arguments[0].trim().to_owned(), arguments.len()));
    }
    let lines: Vec<&str> = text.lines().filter(|l| !is_blank(l)).collect();
    for (i, line) in lines.iter().enumerate() {
        let key = line.trim_start().trim_start_matches("- ");
        if key != "if:" {
            continue;
        }
        let level = indent(line);
        let Some(first) = lines.get(i + 1).filter(|l| indent(l) > level) else {
            calls.push((String::new(), 0));
            continue;
        };
        let item = indent(first);
        let arguments: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| indent(l) >= item)
            .filter(|l| indent(l) == item && l.trim_start().starts_with("- "))
            .copied()
            .collect();
        let condition = arguments
            .first()
            .map(|l| l.trim_start()[2..].trim().to_owned())
            .unwrap_or_default();
        calls.push((condition, arguments.len()));
    }
    calls
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
        let version = VERSIONS
            .iter()
            .find(|v| text.starts_with(&format!("heat_template_version: {v}\n")));
        if version.is_none() {
            problems.push(format!(
                "{file}: not heat_template_version {}",
                VERSIONS.join(" or ")
            ));
        }
        let nullable_if = version == Some(&NULLABLE_IF_VERSION);
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
        for (condition, arguments) in if_calls(text) {
            if !conditions.contains(&condition) {
                problems.push(format!(
                    "{file}: `if` on `{condition}` names no declared condition"
                ));
            }
            match arguments {
                3 => {}
                2 if nullable_if => {}
                2 => problems.push(format!(
                    "{file}: two-argument `if` on `{condition}` needs heat_template_version {NULLABLE_IF_VERSION}"
                )),
                n => problems.push(format!(
                    "{file}: `if` on `{condition}` has {n} arguments"
                )),
            }
        }
        // Condition functions belong to the conditions section only.
        let (condition_text, other_text) = split_section(text, "conditions");
        for (part, extra) in [
            (&condition_text, CONDITION_FUNCTIONS),
            (&other_text, &[][..]),
        ] {
            for function in references(part, "{") {
                let function = function.trim_end_matches(':');
                if !function.is_empty()
                    && !ALLOWED_FUNCTIONS.contains(&function)
                    && !extra.contains(&function)
                {
                    problems.push(format!("{file}: function {function} is not allowed"));
                }
            }
            for line in part.lines() {
                let key = line.trim_start().trim_start_matches("- ");
                let disallowed = OTHER_FUNCTIONS
                    .iter()
                    .filter(|f| !extra.contains(f))
                    .any(|f| key.starts_with(&format!("{f}:")));
                if disallowed || key.starts_with("Fn::") {
                    problems.push(format!("{file}: disallowed function in `{}`", line.trim()));
                }
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
