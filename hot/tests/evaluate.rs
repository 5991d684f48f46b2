//! The evaluator on its own, over a stub cloud (`Stub`): parameters, the
//! environment, intrinsic functions, structure, references and group
//! properties. What depends on the simulated cloud's addresses, boot times
//! and faults (conditions choosing resources, dependency order, nested
//! stacks, resource groups, two-argument `if` on servers) is tested over the
//! host's `sim` in host/src/orchestrator/tests/sim.rs.

use serde_json::{json, Map, Value};

use magnum_hot::testing::{self, files, hot, run_with, T0};
use magnum_hot::{
    py_json, py_repr, py_str, select_path, Applied, Evaluation, HotError, Provider, ProviderError,
    ResourceRequest, ResourceState,
};

/// A cloud with a few types, each ready at once:
/// `OS::Heat::Value` has the one attribute `value`, the others their
/// properties and any other attribute (null).
#[derive(Default)]
struct Stub {
    next_id: u64,
}

const STUB_TYPES: &[&str] = &[
    "OS::Heat::None",
    "OS::Heat::Value",
    "OS::Cinder::Volume",
    "OS::Nova::Server",
];

impl Provider for Stub {
    fn supports(&self, type_name: &str) -> bool {
        STUB_TYPES.contains(&type_name)
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

fn provider() -> Stub {
    Stub::default()
}

fn eval(body: &str, parameters: Value) -> Result<Evaluation, HotError> {
    testing::eval(&mut provider(), body, parameters)
}

fn outputs(body: &str, parameters: Value) -> Value {
    testing::outputs(&mut provider(), body, parameters)
}

fn error(body: &str, parameters: Value) -> String {
    testing::error(&mut provider(), body, parameters)
}

// ---- Parameters ------------------------------------------------------------------

const TYPED: &str = r#"
parameters:
  name: {type: string, default: web}
  count: {type: number, default: 2}
  flag: {type: boolean, default: false}
  blob: {type: json, default: {a: 1}}
  items: {type: comma_delimited_list, default: "x,y"}
  secret: {type: string, default: s3cr3t, hidden: true}
outputs:
  all:
    value: [{get_param: name}, {get_param: count}, {get_param: flag}, {get_param: blob}, {get_param: items}]
  pseudo:
    value: [{get_param: OS::stack_name}, {get_param: OS::stack_id}, {get_param: OS::project_id}]
"#;

#[test]
fn parameters_take_defaults_and_types() {
    let e = eval(TYPED, json!({})).unwrap();
    assert_eq!(
        e.outputs["all"],
        json!(["web", 2, false, {"a": 1}, ["x", "y"]])
    );
    assert_eq!(e.outputs["pseudo"], json!(["demo", "stack-1", "project-1"]));
    // Given values are converted to the declared type.
    let e = eval(
        TYPED,
        json!({"name": 7, "count": "3", "flag": "yes", "blob": "[1, 2]", "items": "a, b ,c"}),
    )
    .unwrap();
    assert_eq!(
        e.outputs["all"],
        json!(["7", 3, true, [1, 2], ["a", "b", "c"]])
    );
    // Stack show's form: strings, Python's spelling, hidden masked.
    assert_eq!(
        Value::Object(e.parameters),
        json!({
            "name": "7", "count": "3", "flag": "True", "blob": "[1, 2]", "items": "a,b,c",
            "secret": "******", "OS::stack_name": "demo", "OS::stack_id": "stack-1",
            "OS::project_id": "project-1",
        })
    );
    let e = eval(TYPED, json!({"items": ["p", 1], "count": 2.5})).unwrap();
    assert_eq!(e.outputs["all"][4], json!(["p", "1"]));
    assert_eq!(e.parameters["count"], json!("2.5"));
}

#[test]
fn parameter_errors_name_the_parameter() {
    let required = "parameters:\n  image: {type: string}\n";
    assert_eq!(
        error(required, json!({})),
        "The Parameter (image) was not provided."
    );
    assert_eq!(
        error(required, json!({"image": "x", "flavor": "y"})),
        "The Parameter (flavor) was not defined in template."
    );
    let cases = [
        (
            json!({"flag": "maybe"}),
            "Parameter 'flag' is invalid: Unrecognized value \"maybe\", acceptable values are: \
             '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'",
        ),
        (
            json!({"count": "many"}),
            "Parameter 'count' is invalid: could not convert string to float: 'many'",
        ),
        (
            json!({"name": ["a"]}),
            "Parameter 'name' is invalid: Value must be a string; got ['a']",
        ),
        (
            json!({"blob": "{not json"}),
            "Parameter 'blob' is invalid: Value must be valid JSON: key must be a string at line 1 column 2",
        ),
        (
            json!({"items": {"a": 1}}),
            "Parameter 'items' is invalid: Value must be a comma-delimited list string; got {'a': 1}",
        ),
    ];
    for (given, message) in cases {
        // serde_json words the JSON syntax error: compare up to it.
        let got = error(TYPED, given);
        assert!(
            got.starts_with(message.split(": key").next().unwrap()),
            "{got}"
        );
    }
}

const CONSTRAINED: &str = r#"
parameters:
  backend:
    type: string
    default: vxlan
    constraints:
      - allowed_values: [udp, vxlan, host-gw]
  size:
    type: number
    default: 1
    constraints:
      - range: {min: 1, max: 10}
  low:
    type: number
    default: 5
    constraints:
      - range: {min: 3}
  name:
    type: string
    default: abc
    constraints:
      - length: {min: 2, max: 4}
  label:
    type: string
    default: ok
    constraints:
      - allowed_pattern: "[a-z]+"
        description: lower-case letters only
  zones:
    type: comma_delimited_list
    default: a
    constraints:
      - allowed_values: [a, b]
  image:
    type: string
    default: fedora
    constraints:
      - custom_constraint: glance.image
"#;

#[test]
fn constraints_are_checked_with_heats_messages() {
    eval(CONSTRAINED, json!({})).unwrap();
    let cases = [
        (
            json!({"backend": "gre"}),
            "Parameter 'backend' is invalid: \"gre\" is not an allowed value [udp, vxlan, host-gw]",
        ),
        (
            json!({"size": 11}),
            "Parameter 'size' is invalid: The value must be in the range 1 to 10.",
        ),
        (
            json!({"low": 2}),
            "Parameter 'low' is invalid: The value must be at least 3.",
        ),
        (
            json!({"name": "abcde"}),
            "Parameter 'name' is invalid: The length must be in the range 2 to 4.",
        ),
        (
            json!({"label": "UPPER"}),
            "Parameter 'label' is invalid: lower-case letters only",
        ),
        (
            json!({"zones": "a,c"}),
            "Parameter 'zones' is invalid: \"c\" is not an allowed value [a, b]",
        ),
    ];
    for (given, message) in cases {
        assert_eq!(error(CONSTRAINED, given), message);
    }
    // A default is checked too.
    let bad_default =
        "parameters:\n  n:\n    type: number\n    default: 0\n    constraints: [{range: {min: 1}}]\n";
    assert_eq!(
        error(bad_default, json!({})),
        "Parameter 'n' is invalid: The value must be at least 1."
    );
}

#[test]
fn get_param_follows_paths() {
    let body = r#"
parameters:
  blob: {type: json, default: {servers: [{name: a}, {name: b}]}}
  items: {type: comma_delimited_list, default: "x,y,z"}
outputs:
  second: {value: {get_param: [blob, servers, 1, name]}}
  by_string_index: {value: {get_param: [items, "2"]}}
  missing: {value: {get_param: [blob, nothing, 0]}}
"#;
    assert_eq!(
        outputs(body, json!({})),
        json!({"second": "b", "by_string_index": "z", "missing": ""})
    );
    assert_eq!(
        error("outputs:\n  o: {value: {get_param: nope}}\n", json!({})),
        "outputs.o: The Parameter (nope) was not provided."
    );
}

// ---- Environment -------------------------------------------------------------------

#[test]
fn the_environment_sets_parameters_and_maps_types() {
    let main = hot(r#"
parameters:
  a: {type: string, default: template}
  b: {type: string, default: template}
  c: {type: string, default: template}
resources:
  server: {type: OS::Nova::Server, properties: {image: fedora}}
  volume: {type: My::Volume}
  nested: {type: My::Nested}
outputs:
  values: {value: [{get_param: a}, {get_param: b}, {get_param: c}]}
  stubbed: {value: {get_attr: [server, first_address]}}
  nested: {value: {get_attr: [nested, greeting]}}
"#);
    let nested = hot(r#"
parameters:
  c: {type: string, default: own}
outputs:
  greeting: {value: {get_param: c}}
"#);
    let files = files(&[("main.yaml", &main), ("nested.yaml", &nested)]);
    let environment = json!({
        "parameters": {"a": "env"},
        "parameter_defaults": {"b": "defaults", "c": "everywhere"},
        "resource_registry": {
            "OS::Nova::*": "OS::Heat::None",
            "My::Volume": "OS::Cinder::Volume",
            "My::Nested": "nested.yaml",
        },
    });
    let e = run_with(
        &mut provider(),
        &files,
        environment.clone(),
        json!({"b": "given"}),
        None,
        T0,
    )
    .unwrap();
    assert_eq!(e.outputs["values"], json!(["env", "given", "everywhere"]));
    assert_eq!(e.outputs["stubbed"], Value::Null, "OS::Heat::None");
    assert_eq!(
        e.outputs["nested"],
        json!("everywhere"),
        "defaults reach nested stacks"
    );
    assert_eq!(e.resources.resources["server"].type_name, "OS::Heat::None");
    assert_eq!(
        e.resources.resources["volume"].type_name,
        "OS::Cinder::Volume"
    );

    let bad = json!({"resource_registry": {}, "paramters": {}});
    let err = run_with(&mut provider(), &files, bad, json!({}), None, T0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment: environment has wrong section \"paramters\""
    );
    let unknown = json!({"parameters": {"zzz": 1}});
    let err = run_with(&mut provider(), &files, unknown, json!({}), None, T0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "The Parameter (zzz) was not defined in template."
    );
    let per_resource = json!({"resource_registry": {"resources": {"volume": {"My::Volume": "OS::Heat::None"}}, "My::Volume": "OS::Cinder::Volume", "My::Nested": "nested.yaml"}});
    let e = run_with(&mut provider(), &files, per_resource, json!({}), None, T0).unwrap();
    assert_eq!(e.resources.resources["volume"].type_name, "OS::Heat::None");
}

// ---- Intrinsic functions -----------------------------------------------------------------

#[test]
fn str_replace_renders_values_as_heat_does() {
    let body = r#"
parameters:
  port: {type: number, default: 6443}
  tls: {type: boolean, default: false}
outputs:
  text:
    value:
      str_replace:
        template: "$HOST:$PORT $HOSTNAME tls=$TLS list=$LIST none=$NONE"
        params:
          $HOST: a
          $HOSTNAME: longest-first
          $PORT: {get_param: port}
          $TLS: {get_param: tls}
          $LIST: {b: [1, 2], a: x}
          $NONE: null
"#;
    assert_eq!(
        outputs(body, json!({}))["text"],
        json!("a:6443 longest-first tls=False list={\"a\": \"x\", \"b\": [1, 2]} none=")
    );
    assert_eq!(
        error(
            "outputs:\n  o: {value: {str_replace: {template: [a], params: {}}}}\n",
            json!({})
        ),
        "outputs.o: \"str_replace\" template must be a string"
    );
    assert!(error(
        "outputs:\n  o: {value: {str_replace: {template: a}}}\n",
        json!({})
    )
    .contains("\"str_replace\" syntax should be"));
}

#[test]
fn list_join_joins_lists() {
    let body = r#"
outputs:
  one: {value: {list_join: ['-', [a, b, c]]}}
  many: {value: {list_join: [',', [a], [b, c], []]}}
  json: {value: {list_join: [' ', [{k: v}, [1], null]]}}
"#;
    assert_eq!(
        outputs(body, json!({})),
        json!({"one": "a-b-c", "many": "a,b,c", "json": "{\"k\": \"v\"} [1] "})
    );
    assert_eq!(
        error(
            "outputs:\n  o: {value: {list_join: [',', [a, 3]]}}\n",
            json!({})
        ),
        "outputs.o: Items to join must be string, map or list not 3"
    );
    assert_eq!(
        error(
            "outputs:\n  o: {value: {list_join: [',', abc]}}\n",
            json!({})
        ),
        "outputs.o: \"list_join\" must operate on a list"
    );
}

#[test]
fn get_file_reads_the_files() {
    let main = hot("outputs:\n  script: {value: {get_file: scripts/boot.sh}}\n");
    let files = files(&[("main.yaml", &main), ("scripts/boot.sh", "#!/bin/sh\n")]);
    let e = run_with(&mut provider(), &files, json!({}), json!({}), None, T0).unwrap();
    assert_eq!(e.outputs["script"], json!("#!/bin/sh\n"));
    assert_eq!(
        error("outputs:\n  o: {value: {get_file: nope.sh}}\n", json!({})),
        "outputs.o: No content found in the \"files\" section for get_file path: nope.sh"
    );
}

#[test]
fn unsupported_functions_are_named() {
    let cases = [
        ("{repeat: {template: x, for_each: {}}}", "the local orchestrator does not support the intrinsic function \"repeat\""),
        ("{yaql: {expression: '1'}}", "the local orchestrator does not support the intrinsic function \"yaql\""),
        ("{map_merge: [{a: 1}]}", "the local orchestrator does not support the intrinsic function \"map_merge\""),
        ("{'Fn::Join': [',', [a]]}", "The function \"Fn::Join\" is not supported in HOT templates"),
        ("{equals: [a, a]}", "\"equals\" is a condition function: use it in the conditions section, a condition or the condition of \"if\""),
    ];
    for (value, message) in cases {
        let body = format!("outputs:\n  o: {{value: {value}}}\n");
        assert_eq!(error(&body, json!({})), format!("outputs.o: {message}"));
    }
    // A map that merely has one key is data.
    assert_eq!(
        outputs("outputs:\n  o: {value: {network: private}}\n", json!({}))["o"],
        json!({"network": "private"})
    );
}

#[test]
fn templates_are_checked_structurally() {
    let cases = [
        ("resources:\n  r: {type: OS::Heat::None, propertes: {}}\n", "resources.r: \"propertes\" is not a valid keyword inside a resource definition"),
        ("parameters:\n  p: {type: text}\n", "parameters.p: Invalid type (text)"),
        ("parameters:\n  p: {type: string, defualt: x}\n", "parameters.p: Invalid key 'defualt' for parameter (p)"),
        ("resourses: {}\n", "The template section is invalid: resourses"),
        ("resources:\n  r: {type: OS::Foo::Bar}\n", "resources.r: The Resource Type (OS::Foo::Bar) could not be found."),
        ("resources:\n  r: {type: kubemaster.yaml}\n", "resources.r: The Resource Type (kubemaster.yaml) could not be found. (no file of that name among the stack's files)"),
    ];
    for (body, message) in cases {
        assert_eq!(error(body, json!({})), message, "{body}");
    }
    let files = files(&[("main.yaml", "heat_template_version: 2099-01-01\n")]);
    let err = run_with(&mut provider(), &files, json!({}), json!({}), None, T0).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("The template version is invalid"),
        "{err}"
    );
}

// ---- References and dependencies ---------------------------------------------------------

#[test]
fn bad_references_and_cycles_are_errors() {
    assert_eq!(
        error(
            "resources:\n  a: {type: OS::Heat::Value, properties: {value: {get_resource: b}}}\n",
            json!({})
        ),
        "The specified reference \"b\" (in a) is incorrect."
    );
    assert_eq!(
        error(
            "resources:\n  a: {type: OS::Heat::Value, depends_on: [zz]}\n",
            json!({})
        ),
        "The specified reference \"zz\" (in a) is incorrect."
    );
    assert_eq!(
        error("resources:\n  a: {type: OS::Heat::Value, properties: {value: x}}\noutputs:\n  o: {value: {get_attr: [a, nope]}}\n", json!({})),
        "outputs.o: The Referenced Attribute (a nope) is incorrect."
    );
    let cycle = r#"
resources:
  a: {type: OS::Heat::Value, properties: {value: {get_attr: [b, value]}}}
  b: {type: OS::Heat::Value, properties: {value: {get_resource: c}}}
  c: {type: OS::Heat::Value, depends_on: a}
  d: {type: OS::Heat::Value}
"#;
    assert_eq!(
        error(cycle, json!({})),
        "Circular Dependency Found: a, b, c"
    );
    // Only the branch `if` takes creates a dependency.
    let branch = r#"
conditions:
  never: false
resources:
  a: {type: OS::Heat::Value, properties: {value: {if: [never, {get_attr: [b, value]}, x]}}}
  b: {type: OS::Heat::Value, properties: {value: {get_attr: [a, value]}}}
outputs:
  b: {value: {get_attr: [b, value]}}
"#;
    assert_eq!(outputs(branch, json!({}))["b"], json!("x"));
}

// ---- Resource groups ---------------------------------------------------------------------------

#[test]
fn group_properties_are_checked() {
    let group = |props: &str| {
        error(
            &format!(
                "resources:\n  g:\n    type: OS::Heat::ResourceGroup\n    properties: {props}\n"
            ),
            json!({}),
        )
    };
    assert_eq!(
        group("{count: -1, resource_def: {type: OS::Heat::None}}"),
        "resources.g: Property error: count: The value must be at least 0."
    );
    assert_eq!(
        group("{count: two, resource_def: {type: OS::Heat::None}}"),
        "resources.g: Property error: count: Value 'two' is not an integer"
    );
    assert_eq!(
        group("{count: 1}"),
        "resources.g: Property resource_def not assigned"
    );
    assert_eq!(
        group("{count: 1, size: 2, resource_def: {type: OS::Heat::None}}"),
        "resources.g: Unknown Property size"
    );
    assert_eq!(
        group("{count: 2, resource_def: {type: OS::Nope}}"),
        "resources.g.resources[0]: The Resource Type (OS::Nope) could not be found."
    );
    // index_var and nested substitution.
    let body = r#"
resources:
  g:
    type: OS::Heat::ResourceGroup
    properties:
      count: 2
      index_var: "%%n%%"
      resource_def:
        type: OS::Heat::Value
        properties: {value: {names: ["v-%%n%%"], untouched: "%index%"}}
outputs:
  values: {value: {get_attr: [g, value]}}
"#;
    assert_eq!(
        outputs(body, json!({}))["values"],
        json!([{"names": ["v-0"], "untouched": "%index%"}, {"names": ["v-1"], "untouched": "%index%"}])
    );
}

// ---- Helpers -------------------------------------------------------------------------------------

#[test]
fn python_renderings_match_heat() {
    assert_eq!(py_str(&json!(true)), "True");
    assert_eq!(py_str(&json!(2.0)), "2.0");
    assert_eq!(py_str(&json!("x")), "x");
    assert_eq!(
        py_repr(&json!(["a", null, {"k": 1}])),
        "['a', None, {'k': 1}]"
    );
    assert_eq!(
        py_json(&json!({"b": [1, "x"], "a": null})),
        "{\"a\": null, \"b\": [1, \"x\"]}"
    );
    assert_eq!(select_path(json!([1, 2, 3]), &[json!(-1)]), json!(3));
    assert_eq!(
        select_path(json!({"a": [1]}), &[json!("a"), json!(5)]),
        Value::Null
    );
    assert_eq!(select_path(json!([1]), &[json!("0")]), Value::Null);
}

/// A cloud whose servers take 100 ms to be ready.
struct Slow(Stub);

impl Provider for Slow {
    fn supports(&self, type_name: &str) -> bool {
        self.0.supports(type_name)
    }

    fn new_id(&mut self) -> String {
        self.0.new_id()
    }

    fn apply(&mut self, request: &ResourceRequest<'_>) -> Result<Applied, ProviderError> {
        let mut applied = self.0.apply(request)?;
        applied.ready_ms += 100;
        Ok(applied)
    }

    fn remove(&mut self, resource: &ResourceState) -> Result<(), HotError> {
        self.0.remove(resource)
    }
}

#[test]
fn a_rolling_update_changes_members_in_batches() {
    let template = hot(r#"
parameters:
  tag: {type: string}
  count: {type: number}
  batch: {type: number}
resources:
  group:
    type: OS::Heat::ResourceGroup
    update_policy:
      rolling_update: {max_batch_size: {get_param: batch}, pause_time: 1}
    properties:
      count: {get_param: count}
      resource_def:
        type: OS::Nova::Server
        properties: {tag: {get_param: tag}}
"#);
    let files = files(&[("main.yaml", &template)]);
    let mut cloud = Slow(Stub::default());
    let run = |cloud: &mut Slow, parameters: Value, previous, at| {
        run_with(cloud, &files, json!({}), parameters, previous, at).unwrap()
    };
    let created = run(
        &mut cloud,
        json!({"tag": "a", "count": 3, "batch": 2}),
        None,
        T0,
    );
    let ready = |e: &Evaluation, member: &str| {
        e.resources.resources["group"]
            .nested
            .as_ref()
            .map(|n| n.resources[member].ready_ms)
            .unwrap()
    };
    // A changed definition: the highest indices first, two at a time, the
    // next batch when the first is ready plus the pause.
    let t1 = T0 + 10_000;
    let rolled = run(
        &mut cloud,
        json!({"tag": "b", "count": 3, "batch": 2}),
        Some(&created.resources),
        t1,
    );
    assert_eq!(ready(&rolled, "2"), t1 + 100);
    assert_eq!(ready(&rolled, "1"), t1 + 100);
    assert_eq!(ready(&rolled, "0"), t1 + 100 + 1000 + 100);
    // Only the count: no member's definition changed, so nothing rolls
    // (the stub cloud re-applies every member; none waits for another).
    let t2 = t1 + 10_000;
    let scaled = run(
        &mut cloud,
        json!({"tag": "b", "count": 4, "batch": 1}),
        Some(&rolled.resources),
        t2,
    );
    assert_eq!(ready(&scaled, "3"), t2 + 100);
    assert_eq!(ready(&scaled, "0"), t2 + 100);
    assert_eq!(scaled.ready_ms, t2 + 100);
}

/// Every stored digest of `state` (nested ones too) passed through `f`.
fn rewrite_digests(state: &mut magnum_hot::StackState, f: &dyn Fn(&str) -> String) {
    for resource in state.resources.values_mut() {
        if let Some(d) = &resource.digest {
            resource.digest = Some(f(d));
        }
        if let Some(nested) = &mut resource.nested {
            rewrite_digests(nested, f);
        }
    }
}

#[test]
fn digests_stored_full_length_before_still_mean_unchanged() {
    let template = hot(r#"
parameters:
  tag: {type: string}
resources:
  group:
    type: OS::Heat::ResourceGroup
    update_policy:
      rolling_update: {max_batch_size: 1, pause_time: 1}
    properties:
      count: 3
      resource_def:
        type: OS::Nova::Server
        properties: {tag: {get_param: tag}}
"#);
    let files = files(&[("main.yaml", &template)]);
    let mut cloud = Slow(Stub::default());
    let created = run_with(&mut cloud, &files, json!({}), json!({"tag": "a"}), None, T0).unwrap();
    let ready = |e: &Evaluation| -> Vec<i64> {
        let members = &e.resources.resources["group"]
            .nested
            .as_ref()
            .unwrap()
            .resources;
        members.values().map(|m| m.ready_ms).collect()
    };
    // A state written before digests were shortened held all 64 hex digits
    // of SHA-256, of which today's 16 are the start.
    let mut before = created.resources.clone();
    rewrite_digests(&mut before, &|d| {
        assert_eq!(d.len(), 16, "{d}");
        format!("{d}{}", "0".repeat(48))
    });
    let t1 = T0 + 10_000;
    let same = run_with(
        &mut cloud,
        &files,
        json!({}),
        json!({"tag": "a"}),
        Some(&before),
        t1,
    )
    .unwrap();
    // Unchanged members: nothing rolls, none waits for another.
    assert_eq!(ready(&same), vec![t1 + 100; 3]);
    // The check tells a changed definition: digests that do not match roll
    // the members one at a time.
    let mut other = created.resources.clone();
    rewrite_digests(&mut other, &|_| "f".repeat(64));
    let rolled = run_with(
        &mut cloud,
        &files,
        json!({}),
        json!({"tag": "a"}),
        Some(&other),
        t1,
    )
    .unwrap();
    assert_ne!(ready(&rolled), vec![t1 + 100; 3], "{:?}", ready(&rolled));
}
