//! Nova refuses a server whose user data is longer than 65535 bytes once
//! base64-encoded ("Invalid input for field/attribute user_data ... is too
//! long", HTTP 400: nova/api/validation/parameter_types.py), which is 49151
//! bytes of script. The bundled node templates write their bootstrap
//! fragments with heredocs (`cat > FILE <<'MAGNUM_FRAGMENT'`, the fragment
//! by `get_file`, `MAGNUM_FRAGMENT`): ~70 KB for a k8s master, so real Nova
//! refused every k8s cluster. [`bundle_fragments`] replaces each run of
//! those heredocs in a stack's templates by one gzip + base64 heredoc that
//! the node unpacks and runs (coreutils `base64` and `gzip` are in every
//! image the drivers boot): the same files, written in the same order, in
//! ~30 KB. The heat-params heredoc, which Heat fills in, stays plain.

use std::{collections::BTreeMap, io::Write};

use base64::Engine as _;

/// The line that unpacks and runs a bundle, followed by its base64 text
/// and [`BUNDLE_END`]: with the user data's own `set -euo pipefail`, a
/// corrupt bundle fails the boot.
pub const BUNDLE_START: &str = "base64 -d <<'MAGNUM_BUNDLE' | gzip -dc | bash -euo pipefail";
/// The bundle heredoc's terminator.
pub const BUNDLE_END: &str = "MAGNUM_BUNDLE";
/// Nova's limit on user data, base64-encoded.
pub const NOVA_USER_DATA_MAX: usize = 65535;

const FRAGMENT_END: &str = "MAGNUM_FRAGMENT";

/// Base64 length of `n` bytes, what Nova checks against
/// [`NOVA_USER_DATA_MAX`].
pub fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// One heredoc of a template's user data list: its `cat > … <<'MAGNUM_FRAGMENT'`
/// line and the files it takes with `get_file`.
struct Heredoc<'a> {
    start: &'a str,
    files: Vec<&'a str>,
}

/// The list item of `line` (`- ITEM` at `indent` spaces), if it is one.
fn item(line: &str, indent: usize) -> Option<&str> {
    let rest = line.get(indent..)?;
    if !line[..indent].bytes().all(|b| b == b' ') {
        return None;
    }
    rest.strip_prefix("- ")
}

/// The heredoc starting at `lines[at]`, and how many lines it spans.
fn heredoc<'a>(lines: &[&'a str], at: usize) -> Option<(usize, Heredoc<'a>)> {
    let line = lines[at];
    let indent = line.len() - line.trim_start().len();
    let start = item(line, indent)?
        .strip_prefix('"')?
        .strip_suffix('"')
        .filter(|s| s.starts_with("cat > ") && s.ends_with("<<'MAGNUM_FRAGMENT'"))?;
    let mut files = Vec::new();
    for (offset, next) in lines.iter().enumerate().skip(at + 1) {
        let next = item(next, indent)?;
        if next == FRAGMENT_END {
            return (!files.is_empty()).then_some((offset - at + 1, Heredoc { start, files }));
        }
        files.push(
            next.strip_prefix("{get_file: ")?
                .strip_suffix('}')
                .map(str::trim)?,
        );
    }
    None
}

/// The script Heat's `list_join` with "\n" makes of these heredocs.
fn script(run: &[Heredoc<'_>], files: &BTreeMap<String, String>) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for heredoc in run {
        parts.push(heredoc.start);
        for name in &heredoc.files {
            parts.push(files.get(*name)?);
        }
        parts.push(FRAGMENT_END);
    }
    let mut text = parts.join("\n");
    text.push('\n');
    Some(text)
}

fn pack(script: &str) -> String {
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = gzip.write_all(script.as_bytes());
    let bytes = gzip.finish().unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// How many scripts [`packed`] remembers: a driver bundles the same few
/// (one per node template) for every cluster.
const REMEMBERED: usize = 16;

/// Bundles made, the latest first: `(script, pack(script))`.
static BUNDLES: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// [`pack`] of `script`, remembered: the fragments are the driver's own
/// files, so every cluster bundles the same text, and gzip at its best
/// level took about a fifth of a create's time at scale. The output is the
/// same bytes either way (gzip's header carries no time here).
fn packed(script: &str) -> String {
    let mut bundles = BUNDLES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(at) = bundles.iter().position(|(s, _)| s == script) {
        let found = bundles.remove(at);
        let bundle = found.1.clone();
        bundles.insert(0, found);
        return bundle;
    }
    drop(bundles);
    let bundle = pack(script);
    let mut bundles = BUNDLES.lock().unwrap_or_else(|p| p.into_inner());
    bundles.insert(0, (script.to_owned(), bundle.clone()));
    bundles.truncate(REMEMBERED);
    bundle
}

/// `template` with every run of fragment heredocs replaced by one bundle
/// (see the module doc); unchanged when it has none, or names a file that
/// `files` lacks (Heat then reports the missing file itself).
pub fn bundle_fragments(template: &str, files: &BTreeMap<String, String>) -> String {
    let lines: Vec<&str> = template.split('\n').collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut at = 0;
    while at < lines.len() {
        let mut run = Vec::new();
        let mut end = at;
        while end < lines.len() {
            match heredoc(&lines, end) {
                Some((span, heredoc)) => {
                    run.push(heredoc);
                    end += span;
                }
                None => break,
            }
        }
        let Some(script) = (!run.is_empty()).then(|| script(&run, files)).flatten() else {
            out.push(lines[at].to_owned());
            at += 1;
            continue;
        };
        let indent = &lines[at][..lines[at].len() - lines[at].trim_start().len()];
        out.push(format!("{indent}- \"{BUNDLE_START}\""));
        out.push(format!("{indent}- \"{}\"", packed(&script)));
        out.push(format!("{indent}- {BUNDLE_END}"));
        at = end;
    }
    out.join("\n")
}

/// Rewrites every template of a stack's `files` that writes fragment
/// heredocs (see [`bundle_fragments`]).
pub fn bundle_stack_files(files: &mut BTreeMap<String, String>) {
    let rewritten: Vec<(String, String)> = files
        .iter()
        .filter(|(name, text)| {
            name.ends_with(".yaml") && text.contains(&format!("<<'{FRAGMENT_END}'"))
        })
        .map(|(name, text)| (name.clone(), bundle_fragments(text, files)))
        .collect();
    files.extend(rewritten);
}

/// Rendered user data with each bundle unpacked back into the heredocs it
/// stands for, as the node runs them: what tests read. `None` when a
/// bundle does not decode.
pub fn expand_bundles(user_data: &str) -> Option<String> {
    let start = format!("{BUNDLE_START}\n");
    let mut out = String::with_capacity(user_data.len() * 3);
    let mut rest = user_data;
    while let Some(at) = rest.find(&start) {
        out.push_str(&rest[..at]);
        let after = &rest[at + start.len()..];
        let (encoded, tail) = after.split_once('\n')?;
        let tail = tail.strip_prefix(BUNDLE_END)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let mut script = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(bytes.as_slice()),
            &mut script,
        )
        .ok()?;
        out.push_str(script.strip_suffix('\n').unwrap_or(&script));
        rest = tail;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "      user_data:
        list_join:
          - \"\\n\"
          - - str_replace:
                template: |
                  #!/bin/bash
                  X=\"$X\"
                params:
                  $X: {get_param: x}
            - \"cat > /var/lib/magnum/lib.sh <<'MAGNUM_FRAGMENT'\"
            - {get_file: fragments/a.sh}
            - {get_file: fragments/b.sh}
            - MAGNUM_FRAGMENT
            - \"cat > /var/lib/magnum/fragments/00-c.sh <<'MAGNUM_FRAGMENT'\"
            - {get_file: fragments/c.sh}
            - MAGNUM_FRAGMENT
            - bash /var/lib/magnum/bootstrap.sh
";

    fn files() -> BTreeMap<String, String> {
        [
            ("a.sh", "echo a\n"),
            ("b.sh", "echo b\n"),
            ("c.sh", "echo c\n"),
        ]
        .into_iter()
        .map(|(k, v)| (format!("fragments/{k}"), v.to_owned()))
        .collect()
    }

    #[test]
    fn heredoc_runs_become_one_bundle_that_expands_to_the_same_script() {
        let bundled = bundle_fragments(TEMPLATE, &files());
        assert!(!bundled.contains("get_file"), "{bundled}");
        assert!(bundled.contains(&format!("            - \"{BUNDLE_START}\"\n")));
        assert!(bundled.contains("            - bash /var/lib/magnum/bootstrap.sh\n"));
        // What Heat's list_join makes of each, unpacked: the same text.
        let encoded = bundled
            .lines()
            .skip_while(|l| !l.contains(BUNDLE_START))
            .nth(1)
            .and_then(|l| l.trim().strip_prefix("- \"")?.strip_suffix('"'))
            .expect("the bundle line");
        let joined = format!("{BUNDLE_START}\n{encoded}\n{BUNDLE_END}\nbash x");
        let expanded = expand_bundles(&joined).expect("decodes");
        assert_eq!(
            expanded,
            "cat > /var/lib/magnum/lib.sh <<'MAGNUM_FRAGMENT'\necho a\n\necho b\n\n\
             MAGNUM_FRAGMENT\ncat > /var/lib/magnum/fragments/00-c.sh <<'MAGNUM_FRAGMENT'\n\
             echo c\n\nMAGNUM_FRAGMENT\nbash x"
        );
    }

    #[test]
    fn a_missing_file_leaves_the_template_alone() {
        let mut files = files();
        files.remove("fragments/c.sh");
        assert_eq!(bundle_fragments(TEMPLATE, &files), TEMPLATE);
    }

    #[test]
    fn a_remembered_bundle_is_the_bundle_made_afresh() {
        for script in ["echo one\n", "echo two\n", "echo one\n"] {
            assert_eq!(packed(script), pack(script));
        }
    }

    #[test]
    fn a_corrupt_bundle_does_not_expand() {
        assert_eq!(
            expand_bundles(&format!("{BUNDLE_START}\n!!!\n{BUNDLE_END}")),
            None
        );
        assert_eq!(expand_bundles("plain").as_deref(), Some("plain"));
    }
}
