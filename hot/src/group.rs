//! `OS::Heat::ResourceGroup`: members as nested resources, `removal_policies`
//! (names never reused once removed), and the group's attributes.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::python::{py_str, select_path};
use crate::scope::StackContext;
use crate::state::{digest, same_digest, ResourceKind, ResourceState, StackState};
use crate::{as_map, err, HotError, R};

/// The group resource the evaluator implements itself.
pub const RESOURCE_GROUP: &str = "OS::Heat::ResourceGroup";

/// The walker, as a group's members need it. The walker evaluates groups,
/// so it sits above this module: it implements this trait, and the group
/// reaches back through it instead of importing the walker.
pub(crate) trait GroupWalker {
    /// A new stack id, for the members' stack.
    fn new_id(&mut self) -> String;
    /// The member type, after the environment's resource registry.
    fn resolve_type(&self, resource: &str, type_name: &str) -> R<String>;
    /// One nesting level down: an error past Heat's limit.
    fn descend(&mut self) -> R<()>;
    /// Back up the level `descend` went down.
    fn ascend(&mut self);
    /// Whether a resource failed, which stops the evaluation.
    fn failed(&self) -> bool;
    /// Creates or updates a member as any resource of its type.
    fn typed(
        &mut self,
        context: &StackContext,
        name: &str,
        type_name: &str,
        properties: Map<String, Value>,
        previous: Option<&ResourceState>,
        start_ms: i64,
    ) -> R<Option<ResourceState>>;
    /// Deletes a resource the group no longer has.
    fn remove(&mut self, resource: &ResourceState) -> R<()>;
}

/// A group's `update_policy: {rolling_update: …}` (Heat's
/// `ResourceGroup.update_policy_schema`): members whose definition changed
/// are updated `max_batch_size` at a time, highest index first, each batch
/// once the one before it is ready plus `pause_time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rolling {
    pub(crate) max_batch_size: usize,
    pub(crate) pause_ms: i64,
}

impl Rolling {
    /// The rolling update of a resolved `update_policy`, if it has one.
    pub(crate) fn parse(policy: &Value) -> R<Option<Self>> {
        let policy = as_map(policy, "update_policy")?;
        let Some(rolling) = policy.get("rolling_update") else {
            return Ok(None);
        };
        let rolling = as_map(rolling, "rolling_update")?;
        let number = |key: &str, default: i64| -> R<i64> {
            match rolling.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_f64().map(|f| f.round() as i64))
                    .or_else(|| v.as_str()?.trim().parse().ok())
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| {
                        HotError::new(format!(
                            "rolling_update.{key}: Value '{}' is not an integer",
                            py_str(v)
                        ))
                    }),
            }
        };
        let max_batch_size = number("max_batch_size", 1)?;
        if max_batch_size < 1 {
            return err("rolling_update.max_batch_size: The value must be at least 1.");
        }
        Ok(Some(Self {
            max_batch_size: usize::try_from(max_batch_size).unwrap_or(usize::MAX),
            pause_ms: number("pause_time", 0)?.saturating_mul(1000),
        }))
    }
}

/// The order and start of each member: members whose definition changed
/// (a digest of their properties differs from the previous one's) go in
/// rolling batches after the others, which start at once.
fn schedule(names: &[String], changed: &[bool], rolling: Option<Rolling>) -> Vec<Vec<usize>> {
    let Some(rolling) = rolling else {
        return vec![(0..names.len()).collect()];
    };
    let mut first: Vec<usize> = (0..names.len()).filter(|i| !changed[*i]).collect();
    let mut updated: Vec<usize> = (0..names.len()).filter(|i| changed[*i]).collect();
    // Heat's replace_priority: the highest index first.
    updated.reverse();
    let mut batches: Vec<Vec<usize>> = updated
        .chunks(rolling.max_batch_size)
        .map(<[usize]>::to_vec)
        .collect();
    match batches.first_mut() {
        Some(batch) => batch.append(&mut first),
        None => batches.push(first),
    }
    batches
}

/// Creates or updates the group `name` of `context` and its members.
pub(crate) fn evaluate_group(
    walker: &mut dyn GroupWalker,
    context: &StackContext,
    name: &str,
    properties: Map<String, Value>,
    previous: Option<&ResourceState>,
    start_ms: i64,
    rolling: Option<Rolling>,
) -> R<Option<ResourceState>> {
    let group = GroupProperties::parse(&properties)?;
    let empty = StackState::default();
    let old_members = previous.and_then(|p| p.nested.as_ref()).unwrap_or(&empty);
    // Heat's name blacklist: kept forever, extended by the removal
    // policies (member names, or member refs as in `refs`).
    let mut removed: Vec<String> = match (previous, group.replace_removals) {
        (Some(p), false) => p.removed.clone(),
        _ => Vec::new(),
    };
    for entry in &group.to_remove {
        let matched = if old_members.resources.contains_key(entry) {
            Some(entry.clone())
        } else {
            old_members
                .resources
                .iter()
                .find(|(_, m)| &m.ref_id == entry)
                .map(|(n, _)| n.clone())
        };
        if let Some(matched) = matched {
            if !removed.contains(&matched) {
                removed.push(matched);
            }
        }
    }
    let names: Vec<String> = (0u64..)
        .map(|i| i.to_string())
        .filter(|n| !removed.contains(n))
        .take(group.count)
        .collect();
    let id = match previous.and_then(|p| p.stack_id.clone()) {
        Some(id) => id,
        None => walker.new_id(),
    };
    let short: String = id.chars().filter(|c| *c != '-').take(12).collect();
    let member_context = StackContext {
        name: format!("{}-{name}-{short}", context.name),
        id: id.clone(),
        top: false,
    };
    let member_type = walker.resolve_type(name, &group.member_type)?;
    walker.descend()?;
    let member_properties: Vec<Map<String, Value>> = names
        .iter()
        .map(|member| {
            let mut properties = match substitute(
                &Value::Object(group.member_properties.clone()),
                &group.index_var,
                member,
            ) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            // Heat drops unset properties so that the member's defaults apply.
            properties.retain(|_, v| !v.is_null());
            properties
        })
        .collect();
    let changed: Vec<bool> = names
        .iter()
        .zip(&member_properties)
        .map(|(member, properties)| {
            old_members.resources.get(member).is_some_and(|old| {
                !same_digest(
                    old.digest.as_deref(),
                    &digest(&Value::Object(properties.clone())),
                )
            })
        })
        .collect();
    let mut created = BTreeMap::new();
    let mut ready_ms: Option<i64> = None;
    let mut outcome = Ok(());
    let mut batch_start = start_ms;
    'batches: for batch in schedule(&names, &changed, rolling) {
        let mut batch_ready = batch_start;
        for index in batch {
            let member = &names[index];
            let old = old_members.resources.get(member);
            if walker.failed() {
                if let Some(old) = old {
                    created.insert(member.clone(), old.clone());
                }
                continue;
            }
            match walker.typed(
                &member_context,
                member,
                &member_type,
                member_properties[index].clone(),
                old,
                batch_start,
            ) {
                Ok(Some(state)) => {
                    ready_ms = Some(ready_ms.map_or(state.ready_ms, |r| r.max(state.ready_ms)));
                    batch_ready = batch_ready.max(state.ready_ms);
                    created.insert(member.clone(), state);
                }
                Ok(None) => {}
                Err(e) => {
                    outcome = Err(e.within(format!("resources[{member}]")));
                    break 'batches;
                }
            }
        }
        batch_start = batch_ready.saturating_add(rolling.map_or(0, |r| r.pause_ms));
    }
    walker.ascend();
    outcome?;
    for (member, old) in &old_members.resources {
        let kept = created
            .get(member)
            .is_some_and(|new| new.type_name == old.type_name && new.kind == old.kind);
        if kept {
            continue;
        }
        if walker.failed() {
            created.entry(member.clone()).or_insert_with(|| old.clone());
        } else {
            walker.remove(old)?;
        }
    }
    removed.sort_by_key(|n| (n.parse::<u64>().unwrap_or(u64::MAX), n.clone()));
    Ok(Some(ResourceState {
        type_name: RESOURCE_GROUP.to_owned(),
        kind: ResourceKind::Group,
        ref_id: id.clone(),
        attributes: Map::new(),
        open_attributes: false,
        ready_ms: ready_ms.unwrap_or(start_ms),
        digest: None,
        stack_id: Some(id),
        nested: Some(StackState { resources: created }),
        removed,
    }))
}

/// `OS::Heat::ResourceGroup`'s properties.
pub(crate) struct GroupProperties {
    pub(crate) count: usize,
    pub(crate) index_var: String,
    pub(crate) member_type: String,
    pub(crate) member_properties: Map<String, Value>,
    pub(crate) to_remove: Vec<String>,
    /// `removal_policies_mode: update` replaces the blacklist.
    pub(crate) replace_removals: bool,
}

pub(crate) const GROUP_PROPERTIES: &[&str] = &[
    "count",
    "index_var",
    "resource_def",
    "removal_policies",
    "removal_policies_mode",
];

impl GroupProperties {
    pub(crate) fn parse(properties: &Map<String, Value>) -> R<Self> {
        if let Some(key) = properties
            .keys()
            .find(|k| !GROUP_PROPERTIES.contains(&k.as_str()))
        {
            return err(format!("Unknown Property {key}"));
        }
        let count = match properties.get("count") {
            None | Some(Value::Null) => 1,
            Some(value) => {
                let n = match value {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                }
                .ok_or_else(|| {
                    HotError::new(format!(
                        "Property error: count: Value '{}' is not an integer",
                        py_str(value)
                    ))
                })?;
                usize::try_from(n).map_err(|_| {
                    HotError::new("Property error: count: The value must be at least 0.")
                })?
            }
        };
        let index_var = match properties.get("index_var") {
            None | Some(Value::Null) => "%index%".to_owned(),
            Some(Value::String(s)) if s.chars().count() >= 3 => s.clone(),
            Some(_) => return err("Property error: index_var: The length must be at least 3."),
        };
        let definition = properties
            .get("resource_def")
            .ok_or_else(|| HotError::new("Property resource_def not assigned"))?;
        let definition = as_map(definition, "Property error: resource_def")?;
        if let Some(key) = definition
            .keys()
            .find(|k| !["type", "properties", "metadata"].contains(&k.as_str()))
        {
            return err(format!(
                "Property error: resource_def: Unknown Property {key}"
            ));
        }
        let member_type = definition
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                HotError::new("Property error: resource_def: Property type not assigned")
            })?
            .to_owned();
        let member_properties = as_map(
            definition.get("properties").unwrap_or(&Value::Null),
            "Property error: resource_def.properties",
        )?
        .clone();
        let mut to_remove = Vec::new();
        match properties.get("removal_policies") {
            None | Some(Value::Null) => {}
            Some(Value::Array(policies)) => {
                for policy in policies {
                    let policy = as_map(policy, "Property error: removal_policies")?;
                    if let Some(key) = policy.keys().find(|k| *k != "resource_list") {
                        return err(format!(
                            "Property error: removal_policies: Unknown Property {key}"
                        ));
                    }
                    match policy.get("resource_list") {
                        None | Some(Value::Null) => {}
                        Some(Value::Array(items)) => {
                            to_remove.extend(items.iter().map(py_str));
                        }
                        Some(_) => return err(
                            "Property error: removal_policies.resource_list: Value must be a list",
                        ),
                    }
                }
            }
            Some(_) => return err("Property error: removal_policies: Value must be a list"),
        }
        let replace_removals = match properties.get("removal_policies_mode") {
            None | Some(Value::Null) => false,
            Some(Value::String(m)) if m == "append" => false,
            Some(Value::String(m)) if m == "update" => true,
            Some(other) => {
                return err(format!(
                    "Property error: removal_policies_mode: \"{}\" is not an allowed value [append, update]",
                    py_str(other)
                ))
            }
        };
        Ok(Self {
            count,
            index_var,
            member_type,
            member_properties,
            to_remove,
            replace_removals,
        })
    }
}

/// Replaces `var` by `index` in every string of `value` (Heat's
/// `_handle_repl_val`).
pub(crate) fn substitute(value: &Value, var: &str, index: &str) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace(var, index)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| substitute(i, var, index)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, var, index)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Group members by name in index order ("2" before "10").
pub(crate) fn members(state: &ResourceState) -> Vec<(&String, &ResourceState)> {
    let mut members: Vec<_> = state
        .nested
        .as_ref()
        .map(|n| n.resources.iter().collect())
        .unwrap_or_default();
    members.sort_by_key(|(name, _)| (name.parse::<u64>().unwrap_or(u64::MAX), (*name).clone()));
    members
}

pub(crate) fn invalid_attribute(resource: &str, attribute: &str) -> HotError {
    HotError::new(format!(
        "The Referenced Attribute ({resource} {attribute}) is incorrect."
    ))
}

/// `get_attr` of `resource` (named `name`): its `attribute`, then `path`.
pub(crate) fn attribute_of(
    name: &str,
    resource: &ResourceState,
    attribute: &str,
    path: &[Value],
) -> R<Value> {
    if resource.kind != ResourceKind::Group {
        let value = match resource.attributes.get(attribute) {
            Some(v) => v.clone(),
            None if resource.open_attributes => Value::Null,
            None => return Err(invalid_attribute(name, attribute)),
        };
        return Ok(select_path(value, path));
    }
    let members = members(resource);
    match attribute {
        "refs" => {
            let refs = members
                .iter()
                .map(|(_, m)| Value::String(m.ref_id.clone()))
                .collect();
            Ok(select_path(Value::Array(refs), path))
        }
        "refs_map" => {
            let refs = members
                .iter()
                .map(|(n, m)| ((*n).clone(), Value::String(m.ref_id.clone())))
                .collect();
            Ok(select_path(Value::Object(refs), path))
        }
        "removed_rsrc_list" => Ok(select_path(
            Value::Array(
                resource
                    .removed
                    .iter()
                    .cloned()
                    .map(Value::String)
                    .collect(),
            ),
            path,
        )),
        "attributes" => {
            let Some((Value::String(inner), rest)) = path.split_first() else {
                return Err(invalid_attribute(name, attribute));
            };
            let mut by_member = Map::new();
            for (member, state) in &members {
                by_member.insert((*member).clone(), attribute_of(member, state, inner, rest)?);
            }
            Ok(Value::Object(by_member))
        }
        _ if attribute.starts_with("resource.") => {
            let mut parts = attribute.splitn(3, '.').skip(1);
            let member = parts.next().unwrap_or_default();
            let state = members
                .iter()
                .find(|(n, _)| n.as_str() == member)
                .map(|(_, s)| *s)
                .ok_or_else(|| {
                    HotError::new(format!(
                        "Member '{member}' not found in group resource '{name}'."
                    ))
                })?;
            match parts.next() {
                Some(inner) => attribute_of(member, state, inner, path),
                None => Ok(select_path(Value::String(state.ref_id.clone()), path)),
            }
        }
        _ => {
            let mut values = Vec::with_capacity(members.len());
            for (member, state) in &members {
                values.push(attribute_of(member, state, attribute, path)?);
            }
            Ok(Value::Array(values))
        }
    }
}
