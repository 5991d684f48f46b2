//! A Heat environment: `parameters`, `parameter_defaults` and the
//! `resource_registry` (type to type or file, `*` globs, per-resource maps).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::{as_map, err, R};

pub(crate) const ENVIRONMENT_SECTIONS: &[&str] = &[
    "parameters",
    "parameter_defaults",
    "resource_registry",
    "encrypted_param_names",
    "event_sinks",
    "parameter_merge_strategies",
];

/// A Heat environment.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub parameters: Map<String, Value>,
    pub parameter_defaults: Map<String, Value>,
    /// `(type or glob, target)`.
    pub(crate) registry: Vec<(String, String)>,
    /// Resource name → its own mappings (`resource_registry.resources`).
    pub(crate) per_resource: BTreeMap<String, Vec<(String, String)>>,
}

pub(crate) fn registry_entries(map: &Map<String, Value>, at: &str) -> R<Vec<(String, String)>> {
    let mut entries = Vec::new();
    for (from, to) in map {
        match to {
            Value::String(to) => entries.push((from.clone(), to.clone())),
            // Heat's per-resource hooks and restrictions change nothing here.
            _ if at == "resources" => {}
            Value::Null => {}
            _ => {
                return err(format!(
                    "resource_registry: the mapping of {from} must be a type or a file name"
                ))
            }
        }
    }
    Ok(entries)
}

impl Environment {
    pub fn parse(env: &Map<String, Value>) -> R<Self> {
        if let Some(section) = env
            .keys()
            .find(|k| !ENVIRONMENT_SECTIONS.contains(&k.as_str()))
        {
            return err(format!("environment has wrong section \"{section}\""));
        }
        let section = |key: &str| -> R<Map<String, Value>> {
            env.get(key)
                .map_or(Ok(Map::new()), |v| as_map(v, key).cloned())
        };
        let registry_map = section("resource_registry")?;
        let mut per_resource = BTreeMap::new();
        let mut global = Map::new();
        for (key, value) in registry_map {
            if key == "resources" {
                for (resource, mappings) in as_map(&value, "resource_registry.resources")? {
                    let mappings = as_map(mappings, "resource_registry.resources")?;
                    per_resource.insert(resource.clone(), registry_entries(mappings, "resources")?);
                }
            } else {
                global.insert(key, value);
            }
        }
        Ok(Self {
            parameters: section("parameters")?,
            parameter_defaults: section("parameter_defaults")?,
            registry: registry_entries(&global, "")?,
            per_resource,
        })
    }

    pub(crate) fn lookup(&self, resource: &str, type_name: &str) -> Option<String> {
        let find = |entries: &[(String, String)]| -> Option<String> {
            if let Some((_, to)) = entries.iter().find(|(from, _)| from == type_name) {
                return Some(to.clone());
            }
            entries.iter().find_map(|(from, to)| {
                let prefix = from.strip_suffix('*')?;
                let rest = type_name.strip_prefix(prefix)?;
                Some(match to.strip_suffix('*') {
                    Some(target) => format!("{target}{rest}"),
                    None => to.clone(),
                })
            })
        };
        self.per_resource
            .get(resource)
            .and_then(|entries| find(entries))
            .or_else(|| find(&self.registry))
    }

    /// `type_name` after the registry's mappings for `resource`.
    pub fn resolve_type(&self, resource: &str, type_name: &str) -> R<String> {
        let mut current = type_name.to_owned();
        for _ in 0..10 {
            match self.lookup(resource, &current) {
                Some(next) if next != current => current = next,
                _ => return Ok(current),
            }
        }
        err(format!(
            "resource_registry: the mappings of {type_name} form a loop"
        ))
    }
}
