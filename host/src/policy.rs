//! Access rules in oslo.policy's language, with upstream Magnum's rule names
//! and "new defaults" (magnum/common/policies/*.py), overridable by a
//! `policy.yaml` in oslo.policy's format (`[policy] file`).
//!
//! The check language is oslo.policy's (oslo_policy/_parser.py): `@` and an
//! empty string allow, `!` denies, `role:NAME`, `rule:NAME`, `FIELD:VALUE`
//! where VALUE is a literal (`True`, `'text'`) or `%(target_field)s`, joined
//! by `and`, `or`, `not` and parentheses. `http:` checks are refused: this
//! service never calls out to decide.
//!
//! Callers' roles are expanded as Keystone's default implied roles are
//! (admin implies member, member implies reader), so `role:reader` admits a
//! member whose token lists only `member`.

use std::collections::BTreeMap;

use anyhow::{anyhow, Context};

/// Base rules, then every rule this service enforces, with its default.
/// `(name, default, what it guards)`.
pub const DEFAULTS: &[(&str, &str, &str)] = &[
    (
        "context_is_admin",
        "role:admin",
        "Admin of the cloud: sees and changes every project's resources.",
    ),
    (
        "project_member",
        "role:member and project_id:%(project_id)s",
        "A member of the target's project.",
    ),
    (
        "project_reader",
        "role:reader and project_id:%(project_id)s",
        "A reader of the target's project.",
    ),
    ("is_user", "user_id:%(user_id)s", "The target's own user."),
    (
        "admin_or_member",
        "rule:context_is_admin or rule:project_member",
        "Admin, or a member of the target's project.",
    ),
    (
        "admin_or_reader",
        "rule:context_is_admin or rule:project_reader",
        "Admin, or a reader of the target's project.",
    ),
    (
        "cluster:create",
        "rule:admin_or_member",
        "Create a cluster.",
    ),
    (
        "cluster:delete",
        "rule:admin_or_member",
        "Delete a cluster.",
    ),
    (
        "cluster:update",
        "rule:admin_or_member",
        "Update a cluster.",
    ),
    (
        "cluster:resize",
        "rule:admin_or_member",
        "Resize a cluster.",
    ),
    (
        "cluster:upgrade",
        "rule:admin_or_member",
        "Upgrade a cluster.",
    ),
    ("cluster:get", "rule:admin_or_reader", "Show a cluster."),
    ("cluster:get_all", "rule:admin_or_reader", "List clusters."),
    (
        "cluster:detail",
        "rule:admin_or_reader",
        "List clusters with details.",
    ),
    (
        "cluster:update_health_status",
        "rule:context_is_admin or (rule:project_member and rule:is_user)",
        "Report a cluster's health (the auto-healer).",
    ),
    (
        "clustertemplate:create",
        "rule:admin_or_member",
        "Create a cluster template.",
    ),
    (
        "clustertemplate:delete",
        "rule:admin_or_member",
        "Delete a cluster template.",
    ),
    (
        "clustertemplate:update",
        "rule:admin_or_member",
        "Update a cluster template.",
    ),
    (
        "clustertemplate:get",
        "rule:admin_or_reader",
        "Show a cluster template.",
    ),
    (
        "clustertemplate:get_all",
        "rule:admin_or_reader",
        "List cluster templates.",
    ),
    (
        "clustertemplate:detail",
        "rule:admin_or_reader",
        "List cluster templates with details.",
    ),
    (
        "clustertemplate:publish",
        "rule:context_is_admin",
        "Make a cluster template public or hidden.",
    ),
    ("nodegroup:get", "rule:admin_or_reader", "Show a nodegroup."),
    (
        "nodegroup:get_all",
        "rule:admin_or_reader",
        "List a cluster's nodegroups.",
    ),
    (
        "nodegroup:create",
        "rule:admin_or_member",
        "Create a nodegroup.",
    ),
    (
        "nodegroup:update",
        "rule:admin_or_member",
        "Update a nodegroup.",
    ),
    (
        "nodegroup:delete",
        "rule:admin_or_member",
        "Delete a nodegroup.",
    ),
    (
        "certificate:create",
        "rule:context_is_admin or (rule:project_member and rule:is_user)",
        "Sign a CSR with a cluster's CA (cluster-admin access: the cluster's own user only).",
    ),
    (
        "certificate:get",
        "rule:context_is_admin or (rule:project_reader and rule:is_user)",
        "Show a cluster's CA certificate.",
    ),
    (
        "certificate:rotate_ca",
        "rule:admin_or_member",
        "Rotate a cluster's CA.",
    ),
    (
        "credential:rotate",
        "rule:project_member",
        "Rotate a cluster's credentials (no admin shortcut, as upstream).",
    ),
    ("quota:create", "rule:context_is_admin", "Create a quota."),
    ("quota:update", "rule:context_is_admin", "Update a quota."),
    ("quota:delete", "rule:context_is_admin", "Delete a quota."),
    (
        "quota:get_all",
        "rule:context_is_admin",
        "List every project's quotas.",
    ),
    (
        "quota:get",
        "rule:admin_or_reader",
        "Show a project's quota.",
    ),
    (
        "stats:get_all",
        "rule:admin_or_reader",
        "Show cluster statistics.",
    ),
    (
        "magnum-service:get_all",
        "rule:context_is_admin",
        "List the conductor services.",
    ),
    (
        "federation:create",
        "rule:admin_or_member",
        "Create a federation.",
    ),
    (
        "federation:update",
        "rule:admin_or_member",
        "Update a federation.",
    ),
    (
        "federation:delete",
        "rule:admin_or_member",
        "Delete a federation.",
    ),
    (
        "federation:get",
        "rule:admin_or_reader",
        "Show a federation.",
    ),
    (
        "federation:get_all",
        "rule:admin_or_reader",
        "List federations.",
    ),
];

/// Upstream's rule names this service accepts in a policy file but does not
/// enforce (a file copied from an upstream deployment keeps working): the
/// `*_all_projects` rules (here the project filter follows
/// `context_is_admin`), the removed bay/baymodel API and upstream's legacy
/// base rules.
const UPSTREAM_ONLY: &[&str] = &[
    "admin_or_owner",
    "admin_or_user",
    "admin_api",
    "cluster_user",
    "deny_cluster_user",
    "default",
    "cluster:get_one_all_projects",
    "cluster:get_all_all_projects",
    "cluster:detail_all_projects",
    "cluster:update_all_projects",
    "cluster:delete_all_projects",
    "cluster:upgrade_all_projects",
    "clustertemplate:get_one_all_projects",
    "clustertemplate:get_all_all_projects",
    "clustertemplate:detail_all_projects",
    "clustertemplate:update_all_projects",
    "clustertemplate:delete_all_projects",
    "nodegroup:get_all_all_projects",
    "nodegroup:get_one_all_projects",
    "bay:create",
    "bay:delete",
    "bay:detail",
    "bay:get",
    "bay:get_all",
    "bay:update",
    "baymodel:create",
    "baymodel:delete",
    "baymodel:detail",
    "baymodel:get",
    "baymodel:get_all",
    "baymodel:update",
    "baymodel:publish",
];

/// A compiled check.
#[derive(Debug, Clone, PartialEq)]
enum Check {
    Allow,
    Deny,
    Role(String),
    Rule(String),
    /// `FIELD:VALUE`: the caller's FIELD equals the literal or the target's
    /// field.
    Field {
        field: String,
        value: Value,
    },
    And(Vec<Check>),
    Or(Vec<Check>),
    Not(Box<Check>),
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Literal(String),
    Target(String),
}

/// Who asks.
#[derive(Debug, Clone, Copy)]
pub struct Creds<'a> {
    pub project_id: &'a str,
    pub user_id: &'a str,
    pub roles: &'a [String],
}

/// What the rule is about: the resource's owner (the caller's own for
/// creates and lists, as upstream's target).
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub project_id: &'a str,
    pub user_id: &'a str,
}

/// The rules in force: the defaults with a policy file's overrides.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: BTreeMap<String, Check>,
    /// The rules a file changed, for the start-up log.
    overridden: Vec<String>,
    /// Upstream rules a file set that this service does not enforce.
    ignored: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self::from_overrides(&BTreeMap::new()).expect("the built-in defaults parse")
    }
}

impl Policy {
    /// The defaults, overridden by the policy file at `path` (YAML or JSON,
    /// a map of rule name to check string, as oslo.policy reads). An unknown
    /// rule name, a check that does not parse, an `http:` check or a rule
    /// that refers to a missing or circular rule stops the start.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the policy file {}", path.display()))?;
        // oslo.policy takes JSON or YAML; YAML reads both. An empty file is
        // no override.
        let rules: Option<BTreeMap<String, String>> =
            serde_norway::from_str(&text).with_context(|| {
                format!(
                    "{}: not a map of rule names to check strings",
                    path.display()
                )
            })?;
        Self::from_overrides(&rules.unwrap_or_default())
            .with_context(|| format!("policy file {}", path.display()))
    }

    pub fn from_overrides(overrides: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let mut rules = BTreeMap::new();
        for (name, default, _) in DEFAULTS {
            rules.insert((*name).to_owned(), parse(default)?);
        }
        let mut overridden = Vec::new();
        let mut ignored = Vec::new();
        for (name, text) in overrides {
            let known = rules.contains_key(name);
            if !known && !UPSTREAM_ONLY.contains(&name.as_str()) {
                return Err(anyhow!(
                    "unknown rule '{name}' (`magnumd policy sample` lists every rule)"
                ));
            }
            let check = parse(text).with_context(|| format!("rule '{name}'"))?;
            if known {
                overridden.push(name.clone());
            } else {
                ignored.push(name.clone());
            }
            rules.insert(name.clone(), check);
        }
        let policy = Self {
            rules,
            overridden,
            ignored,
        };
        policy.check_references()?;
        Ok(policy)
    }

    /// The rule names a policy file overrode.
    pub fn overridden(&self) -> &[String] {
        &self.overridden
    }

    /// Upstream rule names a policy file set that are not enforced here.
    pub fn ignored(&self) -> &[String] {
        &self.ignored
    }

    /// Every `rule:` names a rule, and no rule reaches itself.
    fn check_references(&self) -> anyhow::Result<()> {
        fn walk<'a>(
            policy: &'a Policy,
            check: &'a Check,
            path: &mut Vec<&'a str>,
        ) -> anyhow::Result<()> {
            match check {
                Check::Rule(name) => {
                    let Some(next) = policy.rules.get(name) else {
                        return Err(anyhow!(
                            "rule '{}' refers to rule '{name}', which does not exist",
                            path.last().copied().unwrap_or_default()
                        ));
                    };
                    if path.contains(&name.as_str()) {
                        return Err(anyhow!(
                            "rules refer to each other in a circle: {} -> {name}",
                            path.join(" -> ")
                        ));
                    }
                    path.push(name);
                    walk(policy, next, path)?;
                    path.pop();
                    Ok(())
                }
                Check::And(all) | Check::Or(all) => {
                    all.iter().try_for_each(|c| walk(policy, c, path))
                }
                Check::Not(inner) => walk(policy, inner, path),
                _ => Ok(()),
            }
        }
        for (name, check) in &self.rules {
            walk(self, check, &mut vec![name.as_str()])?;
        }
        Ok(())
    }

    /// Whether rule `name` allows `creds` on `target`. A name that is not a
    /// rule denies (the handlers name only rules of [`DEFAULTS`]).
    pub fn allows(&self, name: &str, creds: Creds<'_>, target: Target<'_>) -> bool {
        let roles = implied_roles(creds.roles);
        let env = Env {
            policy: self,
            creds,
            roles: &roles,
            target,
        };
        self.rules.get(name).is_some_and(|check| env.eval(check, 0))
    }

    /// `magnumd policy sample`: every rule with its default, commented out
    /// as oslopolicy-sample-generator writes them, then the upstream names
    /// that are accepted and ignored.
    pub fn sample() -> String {
        let mut out = String::from(
            "# magnum-rs policy rules (oslo.policy format). Uncomment a rule to\n\
             # override its default; name this file in the configuration as\n\
             # [policy] file = \"/etc/magnum/policy.yaml\".\n\
             # A caller's roles are expanded as Keystone's default implied\n\
             # roles: admin implies member, member implies reader.\n\n",
        );
        for (name, default, what) in DEFAULTS {
            out.push_str(&format!("# {what}\n#\"{name}\": \"{default}\"\n\n"));
        }
        out.push_str("# Accepted for files copied from upstream Magnum, not enforced:\n");
        for name in UPSTREAM_ONLY {
            out.push_str(&format!("#   {name}\n"));
        }
        out
    }
}

/// Keystone's default role implications: admin -> member -> reader.
fn implied_roles(roles: &[String]) -> Vec<String> {
    let mut all: Vec<String> = roles.iter().map(|r| r.to_ascii_lowercase()).collect();
    let has = |all: &[String], r: &str| all.iter().any(|x| x == r);
    if has(&all, "admin") && !has(&all, "member") {
        all.push("member".into());
    }
    if has(&all, "member") && !has(&all, "reader") {
        all.push("reader".into());
    }
    all
}

struct Env<'a> {
    policy: &'a Policy,
    creds: Creds<'a>,
    roles: &'a [String],
    target: Target<'a>,
}

impl Env<'_> {
    fn eval(&self, check: &Check, depth: usize) -> bool {
        // References were checked for circles at load; this only bounds a
        // very deep (but finite) chain.
        if depth > 64 {
            return false;
        }
        match check {
            Check::Allow => true,
            Check::Deny => false,
            Check::Role(role) => self.roles.iter().any(|r| r.eq_ignore_ascii_case(role)),
            Check::Rule(name) => self
                .policy
                .rules
                .get(name)
                .is_some_and(|c| self.eval(c, depth + 1)),
            Check::Field { field, value } => {
                let Some(mine) = self.cred(field) else {
                    return false;
                };
                match value {
                    Value::Literal(l) => mine == *l,
                    Value::Target(t) => self
                        .target_field(t)
                        .is_some_and(|v| !v.is_empty() && mine == v),
                }
            }
            Check::And(all) => all.iter().all(|c| self.eval(c, depth + 1)),
            Check::Or(any) => any.iter().any(|c| self.eval(c, depth + 1)),
            Check::Not(inner) => !self.eval(inner, depth + 1),
        }
    }

    fn cred(&self, field: &str) -> Option<String> {
        match field {
            "project_id" | "tenant" | "tenant_id" => Some(self.creds.project_id.to_owned()),
            "user_id" | "user" => Some(self.creds.user_id.to_owned()),
            "is_admin" => Some(
                if self.roles.iter().any(|r| r == "admin") {
                    "True"
                } else {
                    "False"
                }
                .to_owned(),
            ),
            _ => None,
        }
    }

    fn target_field(&self, field: &str) -> Option<&str> {
        match field {
            "project_id" | "tenant" | "tenant_id" => Some(self.target.project_id),
            "user_id" | "user" => Some(self.target.user_id),
            _ => None,
        }
    }
}

/// Parses one check string.
fn parse(text: &str) -> anyhow::Result<Check> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Ok(Check::Allow);
    }
    let mut p = Parser { tokens, at: 0 };
    let check = p.or()?;
    if p.at != p.tokens.len() {
        return Err(anyhow!("'{text}': unexpected '{}'", p.tokens[p.at].text()));
    }
    Ok(check)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    Atom(String),
}

impl Token {
    fn text(&self) -> &str {
        match self {
            Token::Open => "(",
            Token::Close => ")",
            Token::And => "and",
            Token::Or => "or",
            Token::Not => "not",
            Token::Atom(a) => a,
        }
    }
}

fn tokenize(text: &str) -> anyhow::Result<Vec<Token>> {
    let mut tokens = Vec::new();
    for word in text.split_whitespace() {
        // Parentheses may cling to a word: "(role:a" or "b)".
        let mut rest = word;
        while let Some(r) = rest.strip_prefix('(') {
            tokens.push(Token::Open);
            rest = r;
        }
        let mut closes = 0;
        while let Some(r) = rest.strip_suffix(')') {
            closes += 1;
            rest = r;
        }
        if !rest.is_empty() {
            tokens.push(match rest.to_ascii_lowercase().as_str() {
                "and" => Token::And,
                "or" => Token::Or,
                "not" => Token::Not,
                _ => Token::Atom(rest.to_owned()),
            });
        }
        tokens.extend(std::iter::repeat_n(Token::Close, closes));
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn or(&mut self) -> anyhow::Result<Check> {
        let mut all = vec![self.and()?];
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            all.push(self.and()?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Check::Or(all)
        })
    }

    fn and(&mut self) -> anyhow::Result<Check> {
        let mut all = vec![self.not()?];
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            all.push(self.not()?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Check::And(all)
        })
    }

    fn not(&mut self) -> anyhow::Result<Check> {
        if self.peek() == Some(&Token::Not) {
            self.at += 1;
            return Ok(Check::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> anyhow::Result<Check> {
        let Some(token) = self.tokens.get(self.at).cloned() else {
            return Err(anyhow!("a check is missing at the end"));
        };
        self.at += 1;
        match token {
            Token::Open => {
                let inner = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return Err(anyhow!("a '(' is not closed"));
                }
                self.at += 1;
                Ok(inner)
            }
            Token::Atom(a) => atom(&a),
            other => Err(anyhow!("unexpected '{}'", other.text())),
        }
    }
}

fn atom(text: &str) -> anyhow::Result<Check> {
    match text {
        "@" => return Ok(Check::Allow),
        "!" => return Ok(Check::Deny),
        _ => {}
    }
    let Some((kind, rest)) = text.split_once(':') else {
        return Err(anyhow!("'{text}' is not a check (KIND:VALUE, @ or !)"));
    };
    if rest.is_empty() {
        return Err(anyhow!("'{text}' has nothing after ':'"));
    }
    match kind {
        "role" => Ok(Check::Role(rest.to_owned())),
        "rule" => Ok(Check::Rule(rest.to_owned())),
        "http" | "https" => Err(anyhow!(
            "'{text}': http checks are not supported (this service decides locally)"
        )),
        field => {
            let value = if let Some(t) = rest.strip_prefix("%(").and_then(|r| r.strip_suffix(")s"))
            {
                Value::Target(t.to_owned())
            } else {
                Value::Literal(rest.trim_matches(|c| c == '\'' || c == '"').to_owned())
            };
            Ok(Check::Field {
                field: field.to_owned(),
                value,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| (*s).to_owned()).collect()
    }

    fn allows(p: &Policy, rule: &str, r: &[&str], project: &str, user: &str) -> bool {
        let r = roles(r);
        p.allows(
            rule,
            Creds {
                project_id: "p1",
                user_id: "u1",
                roles: &r,
            },
            Target {
                project_id: project,
                user_id: user,
            },
        )
    }

    #[test]
    fn defaults_are_upstreams_new_defaults() {
        let p = Policy::default();
        assert!(allows(&p, "cluster:create", &["member"], "p1", "u1"));
        assert!(!allows(&p, "cluster:create", &["reader"], "p1", "u1"));
        assert!(allows(&p, "cluster:get", &["reader"], "p1", "u1"));
        assert!(
            allows(&p, "cluster:get", &["member"], "p1", "u1"),
            "member implies reader"
        );
        assert!(allows(&p, "cluster:create", &["admin"], "p2", "u2"));
        assert!(
            !allows(&p, "cluster:create", &["member"], "p2", "u1"),
            "another project"
        );
        assert!(!allows(&p, "cluster:get", &[], "p1", "u1"));
        assert!(allows(&p, "certificate:create", &["member"], "p1", "u1"));
        assert!(
            !allows(&p, "certificate:create", &["member"], "p1", "u2"),
            "not the cluster's user"
        );
        assert!(
            !allows(&p, "credential:rotate", &["admin"], "p2", "u2"),
            "no admin shortcut"
        );
        assert!(!allows(&p, "quota:create", &["member"], "p1", "u1"));
        assert!(!allows(&p, "no:such:rule", &["admin"], "p1", "u1"));
    }

    #[test]
    fn overrides_and_the_language() {
        let file: BTreeMap<String, String> = [
            (
                "cluster:create",
                "role:admin or (role:creator and project_id:%(project_id)s)",
            ),
            ("cluster:delete", "!"),
            ("cluster:get", "@"),
            (
                "clustertemplate:publish",
                "rule:admin_or_member and not role:auditor",
            ),
            ("quota:get", "is_admin:True"),
            ("cluster:get_all_all_projects", "role:admin"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let p = Policy::from_overrides(&file).expect("valid overrides");
        assert_eq!(
            p.overridden().len(),
            5,
            "the upstream-only one is not counted"
        );
        assert!(!allows(&p, "cluster:create", &["member"], "p1", "u1"));
        assert!(allows(&p, "cluster:create", &["creator"], "p1", "u1"));
        assert!(!allows(&p, "cluster:create", &["creator"], "p2", "u1"));
        assert!(!allows(&p, "cluster:delete", &["admin"], "p1", "u1"));
        assert!(allows(&p, "cluster:get", &[], "p9", "u9"));
        assert!(allows(
            &p,
            "clustertemplate:publish",
            &["member"],
            "p1",
            "u1"
        ));
        assert!(!allows(
            &p,
            "clustertemplate:publish",
            &["member", "auditor"],
            "p1",
            "u1"
        ));
        assert!(allows(&p, "quota:get", &["admin"], "p2", "u1"));
        assert!(!allows(&p, "quota:get", &["member"], "p1", "u1"));
        // Untouched rules keep their defaults.
        assert!(allows(&p, "cluster:update", &["member"], "p1", "u1"));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let refuse = |name: &str, check: &str| {
            let file = BTreeMap::from([(name.to_owned(), check.to_owned())]);
            format!("{:#}", Policy::from_overrides(&file).expect_err(check))
        };
        assert!(refuse("cluster:craete", "@").contains("unknown rule 'cluster:craete'"));
        assert!(refuse("cluster:create", "rule:nope").contains("rule 'nope', which does not exist"));
        assert!(refuse("cluster:create", "role:a or").contains("missing"));
        assert!(refuse("cluster:create", "(role:a").contains("not closed"));
        assert!(refuse("cluster:create", "admin").contains("not a check"));
        assert!(refuse("cluster:create", "http://x/y").contains("http checks"));
        assert!(refuse("admin_or_member", "rule:cluster:create").contains("circle"));
    }

    #[test]
    fn the_sample_lists_every_rule_and_reads_back() {
        let sample = Policy::sample();
        for (name, default, _) in DEFAULTS {
            assert!(
                sample.contains(&format!("#\"{name}\": \"{default}\"")),
                "{name}"
            );
        }
        // Uncommented, the sample is a valid file that changes nothing.
        let uncommented: String = sample
            .lines()
            .filter_map(|l| l.strip_prefix("#\""))
            .map(|l| format!("\"{l}\n"))
            .collect();
        let file: BTreeMap<String, String> = serde_norway::from_str(&uncommented).expect("yaml");
        assert_eq!(file.len(), DEFAULTS.len());
        Policy::from_overrides(&file).expect("the defaults as a file");
    }
}
