//! The plans' HOT files through `magnum-hot`'s static check, the one the
//! host's `magnum-driver-manage verify` runs.

use std::collections::BTreeMap;

use magnum_driver_sdk::{
    serde_json::{Map, Value},
    user_data, StackPlan,
};
use magnum_hot::check::{check, nested_templates, parse_template, Stack};
use magnum_hot::{
    evaluate, Action, Applied, HotError, Provider, ProviderError, ResourceRequest, ResourceState,
    StackRequest,
};

/// Every problem found in `files` when `top` is created with the parameters
/// `passed` and the environment's `registry` (its `resource_registry`).
pub fn lint(
    files: &BTreeMap<String, String>,
    top: &str,
    passed: &[String],
    registry: &BTreeMap<String, String>,
) -> Vec<String> {
    let registry: Map<String, Value> = registry
        .iter()
        .map(|(from, to)| (from.clone(), Value::String(to.clone())))
        .collect();
    let environment = Map::from_iter([("resource_registry".to_owned(), Value::Object(registry))]);
    let parameters: Map<String, Value> = passed.iter().map(|p| (p.clone(), Value::Null)).collect();
    let stack = Stack {
        template: top,
        files,
        environment: &environment,
        parameters: &parameters,
    };
    check(&stack).iter().map(ToString::to_string).collect()
}

/// `(file, properties)` of every nested template `top` uses.
pub fn nested(files: &BTreeMap<String, String>, top: &str) -> Vec<(String, Vec<String>)> {
    let template = parse_template(top, &files[top]).unwrap_or_else(|e| panic!("{top}: {e}"));
    nested_templates(&template, files, &Default::default())
        .into_iter()
        .map(|n| (n.file, n.properties))
        .collect()
}

/// The user data of every server the plan's first operation creates, as
/// `(resource name, user data)` (`kube_master`, `swarm_node`...), by
/// evaluating its templates over a stub cloud in which every `OS::*`
/// resource is ready at once with its properties as attributes (addresses
/// and other attributes a real cloud makes up are null). This is what a
/// node's cloud-init would run: parameters as the templates deliver them.
pub fn user_data(plan: &StackPlan) -> Vec<(String, String)> {
    let operation = plan.operations.first().expect("the plan has an operation");
    let request = StackRequest {
        stack_name: &operation.stack_name,
        stack_id: "stack-1",
        project_id: "project-1",
        template: &operation.template,
        files: &operation.files,
        environment: &operation.environment,
        parameters: &operation.parameters,
        action: Action::Create,
        start_ms: 0,
    };
    let mut cloud = StubCloud::default();
    let evaluation = evaluate(&request, None, &mut cloud)
        .unwrap_or_else(|e| panic!("the plan does not evaluate: {e}"));
    assert!(
        evaluation.failure.is_none(),
        "the stub cloud failed: {:?}",
        evaluation.failure
    );
    // What real Nova takes (it refuses longer user data), then the script
    // as the node runs it: bundles unpacked into the heredocs they stand for.
    cloud
        .servers
        .into_iter()
        .map(|(name, text)| {
            let encoded = user_data::base64_len(text.len());
            assert!(
                encoded <= user_data::NOVA_USER_DATA_MAX,
                "{name}: user data is {encoded} bytes base64-encoded; Nova takes at most {}",
                user_data::NOVA_USER_DATA_MAX
            );
            let expanded = user_data::expand_bundles(&text)
                .unwrap_or_else(|| panic!("{name}: a fragment bundle does not decode"));
            (name, expanded)
        })
        .collect()
}

#[derive(Default)]
struct StubCloud {
    next_id: u64,
    servers: Vec<(String, String)>,
}

impl Provider for StubCloud {
    fn supports(&self, type_name: &str) -> bool {
        type_name.starts_with("OS::")
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("stub-{}", self.next_id)
    }

    fn apply(&mut self, request: &ResourceRequest<'_>) -> Result<Applied, ProviderError> {
        let attributes = match request.type_name {
            "OS::Heat::None" => Map::new(),
            "OS::Heat::Value" => {
                let value = request.properties.get("value").cloned();
                Map::from_iter([("value".to_owned(), value.unwrap_or(Value::Null))])
            }
            _ => request.properties.clone(),
        };
        if request.type_name == "OS::Nova::Server" {
            let user_data = request
                .properties
                .get("user_data")
                .and_then(Value::as_str)
                .unwrap_or_default();
            self.servers
                .push((request.name.to_owned(), user_data.to_owned()));
        }
        Ok(Applied {
            ref_id: self.new_id(),
            attributes,
            open_attributes: request.type_name != "OS::Heat::Value",
            ready_ms: request.start_ms,
        })
    }

    fn remove(&mut self, _resource: &ResourceState) -> Result<(), HotError> {
        Ok(())
    }
}
