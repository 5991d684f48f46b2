//! A template's structure: its version, sections, the keys a resource or
//! output may have, and the names of the functions it may call. The names
//! live here, with the language's other words, below both `conditions` and
//! `functions`, which need them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::parameters::{parse_parameter, ParamSchema};
use crate::python::py_str;
use crate::{as_map, err, HotError, R};

/// The HOT versions accepted (all are read with 2018-08-31 semantics, but
/// for the two-argument `if` of 2021-04-16).
pub const HOT_VERSIONS: &[&str] = &[
    "2013-05-23",
    "2014-10-16",
    "2015-04-30",
    "2015-10-15",
    "2016-04-08",
    "2016-10-14",
    "2017-02-24",
    "2017-09-01",
    "2018-03-02",
    "2018-08-31",
    "2021-04-16",
    "newton",
    "ocata",
    "pike",
    "queens",
    "rocky",
    "wallaby",
];

/// A parsed, structurally checked template.
#[derive(Debug, Clone)]
pub struct Template {
    pub version: String,
    pub(crate) parameters: BTreeMap<String, ParamSchema>,
    pub(crate) conditions: Map<String, Value>,
    pub(crate) resources: Map<String, Value>,
    pub(crate) outputs: Map<String, Value>,
}

pub(crate) const TEMPLATE_SECTIONS: &[&str] = &[
    "heat_template_version",
    "description",
    "parameter_groups",
    "parameters",
    "resources",
    "outputs",
    "conditions",
];
pub(crate) const RESOURCE_KEYS: &[&str] = &[
    "type",
    "properties",
    "metadata",
    "depends_on",
    "update_policy",
    "deletion_policy",
    "condition",
    "external_id",
];
pub(crate) const OUTPUT_KEYS: &[&str] = &["value", "description", "condition"];

/// The intrinsic functions this evaluator implements.
pub const SUPPORTED_FUNCTIONS: &[&str] = &[
    "get_param",
    "get_resource",
    "get_attr",
    "str_replace",
    "list_join",
    "get_file",
    "if",
];

/// Condition functions, valid in `conditions`, `condition` and `if`.
pub const CONDITION_FUNCTIONS: &[&str] = &["equals", "not", "and", "or"];

/// HOT functions Heat has that this evaluator does not implement.
pub(crate) const UNSUPPORTED_FUNCTIONS: &[&str] = &[
    "repeat",
    "resource_facade",
    "str_replace_strict",
    "str_replace_vstrict",
    "str_split",
    "digest",
    "map_merge",
    "map_replace",
    "yaql",
    "contains",
    "filter",
    "make_url",
    "list_concat",
    "list_concat_unique",
];

/// CloudFormation functions HOT removed.
pub(crate) const REMOVED_FUNCTIONS: &[&str] = &[
    "Ref",
    "Fn::GetAtt",
    "Fn::GetAZs",
    "Fn::Join",
    "Fn::Select",
    "Fn::Split",
    "Fn::Replace",
    "Fn::Base64",
    "Fn::MemberListToMap",
    "Fn::ResourceFacade",
];

pub(crate) fn is_function(name: &str) -> bool {
    SUPPORTED_FUNCTIONS.contains(&name)
        || CONDITION_FUNCTIONS.contains(&name)
        || UNSUPPORTED_FUNCTIONS.contains(&name)
        || REMOVED_FUNCTIONS.contains(&name)
}

/// How many valid templates [`Template::parse_shared`] remembers: a cloud
/// evaluates the same few driver templates for every stack.
const REMEMBERED: usize = 32;

/// Templates parsed lately, by their text, the latest first.
static PARSED: Mutex<Vec<(String, Arc<Template>)>> = Mutex::new(Vec::new());

impl Template {
    /// [`Self::parse`], remembering valid templates by their text: parsing
    /// the k8s templates' YAML was about a tenth of a stack create at scale.
    /// A template's structure does not depend on its name, and an invalid
    /// one is parsed again (its error names the file).
    pub fn parse_shared(name: &str, text: &str) -> R<Arc<Self>> {
        let lock = || PARSED.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut parsed = lock();
            if let Some(at) = parsed.iter().position(|(t, _)| t == text) {
                let found = parsed.remove(at);
                let template = Arc::clone(&found.1);
                parsed.insert(0, found);
                return Ok(template);
            }
        }
        let template = Arc::new(Self::parse(name, text)?);
        let mut parsed = lock();
        parsed.insert(0, (text.to_owned(), Arc::clone(&template)));
        parsed.truncate(REMEMBERED);
        Ok(template)
    }

    /// Parses HOT text (YAML or JSON); `name` is used in error messages.
    pub fn parse(name: &str, text: &str) -> R<Self> {
        let doc: Value = serde_norway::from_str(text)
            .map_err(|e| HotError::new(format!("{name}: not valid YAML: {e}")))?;
        Self::from_value(&doc)
    }

    pub(crate) fn from_value(doc: &Value) -> R<Self> {
        let Value::Object(doc) = doc else {
            return err("The template is not a YAML or JSON map");
        };
        if doc.contains_key("AWSTemplateFormatVersion")
            || doc.contains_key("HeatTemplateFormatVersion")
        {
            return err(
                "CloudFormation templates are not supported: use HOT (heat_template_version)",
            );
        }
        let version = match doc.get("heat_template_version") {
            None => return err("Template format version not found."),
            Some(Value::String(v)) => v.clone(),
            Some(other) => py_str(other),
        };
        if !HOT_VERSIONS.contains(&version.as_str()) {
            return err(format!(
                "The template version is invalid: \"heat_template_version: {version}\". \
                 \"heat_template_version\" should be one of: {}",
                HOT_VERSIONS.join(", ")
            ));
        }
        if let Some(section) = doc
            .keys()
            .find(|k| !TEMPLATE_SECTIONS.contains(&k.as_str()))
        {
            return err(format!("The template section is invalid: {section}"));
        }
        let section = |key: &str| -> R<Map<String, Value>> {
            doc.get(key)
                .map_or(Ok(Map::new()), |v| as_map(v, key).cloned())
        };
        let mut parameters = BTreeMap::new();
        for (name, schema) in section("parameters")? {
            let schema = parse_parameter(&name, &schema)
                .map_err(|e| e.within(format!("parameters.{name}")))?;
            parameters.insert(name, schema);
        }
        let resources = section("resources")?;
        for (name, definition) in &resources {
            let Value::Object(definition) = definition else {
                return err(format!("Resource {name} definition must be a map"));
            };
            if let Some(key) = definition
                .keys()
                .find(|k| !RESOURCE_KEYS.contains(&k.as_str()))
            {
                return err(format!(
                    "\"{key}\" is not a valid keyword inside a resource definition"
                ))
                .map_err(|e: HotError| e.within(format!("resources.{name}")));
            }
            match definition.get("type") {
                Some(Value::String(_)) => {}
                Some(_) => {
                    return err(format!("Resource {name} type must be a string"));
                }
                None => return err(format!("Resource {name} has no type")),
            }
        }
        let outputs = section("outputs")?;
        for (name, definition) in &outputs {
            let Value::Object(definition) = definition else {
                return err(format!("Output {name} definition must be a map"));
            };
            if let Some(key) = definition
                .keys()
                .find(|k| !OUTPUT_KEYS.contains(&k.as_str()))
            {
                return err(format!(
                    "\"{key}\" is not a valid keyword inside an output definition"
                ))
                .map_err(|e: HotError| e.within(format!("outputs.{name}")));
            }
        }
        Ok(Self {
            version,
            parameters,
            conditions: section("conditions")?,
            resources,
            outputs,
        })
    }

    /// Whether `if` may take two arguments, the missing "else" omitting
    /// the key or item (Heat's `IfNullable`, from HOT 2021-04-16 on).
    pub(crate) fn nullable_if(&self) -> bool {
        matches!(self.version.as_str(), "2021-04-16" | "wallaby")
    }

    /// The declared parameters that are hidden (shown as `******`).
    pub fn hidden_parameters(&self) -> Vec<&str> {
        self.parameters
            .iter()
            .filter(|(_, s)| s.hidden)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}
