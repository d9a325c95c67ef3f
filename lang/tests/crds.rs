//! The CRDs in `crds/` are what `koreo_lang::schema` generates, they are valid structural
//! schemas, the decoder's checks of the schema (`Decoder::conform`) accept and refuse what an
//! API server validating the CRD does (`openapi/`), and every Koreo file of the conformance
//! corpus validates against them.

mod openapi;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use koreo_lang::schema::{self, Expression, Field, Pattern, Type};
use koreo_lang::source::Diagnostic;
use koreo_lang::{Workspace, model, yaml};
use serde_json::{Value as Json, json};

#[path = "../../test-support/shared.rs"]
mod shared;

const BLESS: &str = "KOREO_BLESS=1 cargo test -p koreo-lang --test crds";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn open_api(kind: &str) -> Json {
    schema::crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn parse_yaml(text: &str) -> Vec<Json> {
    yaml::parse_documents(text)
        .unwrap_or_else(|e| panic!("invalid YAML at {:?}: {}", e.pos, e.message))
        .iter()
        .map(|d| d.root.to_json())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// (a) The checked-in files are fresh.

#[test]
fn checked_in_crds_are_fresh() {
    let bless = std::env::var_os("KOREO_BLESS").is_some();
    let mut stale = Vec::new();
    for kind in schema::KINDS {
        let path = repo().join("crds").join(schema::crd_file_name(kind));
        let want = schema::crd_yaml(kind);
        if bless {
            fs::write(&path, &want).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        } else if fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "these CRD files differ from what schema.rs generates: {}\nregenerate them with `{BLESS}`",
        stale.join(", ")
    );
}

#[test]
fn kustomization_lists_every_crd() {
    let text = fs::read_to_string(repo().join("crds/kustomization.yaml")).unwrap();
    let listed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .collect();
    let files: Vec<String> = schema::KINDS
        .iter()
        .map(|k| schema::crd_file_name(k))
        .collect();
    assert_eq!(listed, files);
}

#[test]
fn yaml_output_parses_back_to_the_same_json() {
    for kind in schema::KINDS {
        let text = schema::crd_yaml(kind);
        assert!(text.starts_with(schema::GENERATED_HEADER));
        assert_eq!(
            parse_yaml(&text),
            vec![schema::crd(kind)],
            "{kind} (our parser)"
        );
        let other: Json = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(other, schema::crd(kind), "{kind} (serde-saphyr)");
    }
    let all: Vec<Json> = schema::KINDS.iter().map(|k| schema::crd(k)).collect();
    assert_eq!(parse_yaml(&schema::crds_yaml()), all);
    assert_eq!(schema::crds_yaml(), schema::crds_yaml(), "stable output");
}

#[test]
fn crd_metadata() {
    for kind in schema::KINDS {
        let crd = schema::crd(kind);
        let plural = schema::plural(kind);
        assert_eq!(crd["metadata"]["name"], format!("{plural}.koreo.dev"));
        let spec = &crd["spec"];
        assert_eq!(spec["group"], "koreo.dev");
        assert_eq!(spec["scope"], "Namespaced");
        assert_eq!(spec["names"]["kind"], *kind);
        assert_eq!(spec["names"]["plural"], plural);
        assert_eq!(spec["names"]["singular"], kind.to_lowercase());
        assert_eq!(spec["names"]["categories"], json!(["koreo"]));
        let version = &spec["versions"][0];
        assert_eq!(spec["versions"].as_array().unwrap().len(), 1);
        assert_eq!(
            (&version["name"], &version["served"], &version["storage"]),
            (&json!("v1beta1"), &json!(true), &json!(true))
        );
        assert_eq!(version["subresources"], json!({"status": {}}));
        let columns = &version["additionalPrinterColumns"];
        assert_eq!(
            columns[0]["jsonPath"],
            r#".status.conditions[?(@.type=="Ready")].status"#
        );
        assert_eq!(columns[1]["name"], "Age");
        let root = open_api(kind);
        assert_eq!(root["required"], json!(["spec"]));
        let conditions = &root["properties"]["status"]["properties"]["conditions"]["items"];
        for key in ["type", "status", "reason", "message", "lastTransitionTime"] {
            assert_eq!(
                conditions["properties"][key]["type"], "string",
                "{kind} {key}"
            );
        }
        assert_eq!(
            root["properties"]["status"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
    }
}

// ---------------------------------------------------------------------------------------------
// (c) Every CRD is a structural schema.

fn structural_problems(node: &Json, path: &str, in_branch: bool, out: &mut Vec<String>) {
    let Some(map) = node.as_object() else {
        out.push(format!("{path}: not an object"));
        return;
    };
    if in_branch {
        for key in map.keys() {
            if key != "required" {
                out.push(format!("{path}: `{key}` inside oneOf/anyOf"));
            }
        }
        return;
    }
    let typed = map.get("type").and_then(Json::as_str);
    let preserve = map.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    let int_or_string = map.get("x-kubernetes-int-or-string") == Some(&json!(true));
    match (typed, preserve, int_or_string) {
        (Some(_), _, false) | (None, true, false) | (None, false, true) => {}
        _ => out.push(format!(
            "{path}: needs a type, or preserve-unknown-fields, or int-or-string alone"
        )),
    }
    if !matches!(map.get("description"), Some(Json::String(d)) if !d.is_empty()) {
        out.push(format!("{path}: no description"));
    }
    if map.contains_key("properties") && map.contains_key("additionalProperties") {
        out.push(format!(
            "{path}: properties and additionalProperties together"
        ));
    }
    if (typed == Some("array")) != map.contains_key("items") {
        out.push(format!("{path}: arrays, and only arrays, have items"));
    }
    if map.contains_key("properties") && typed != Some("object") {
        out.push(format!("{path}: properties on a non-object"));
    }
    let properties = map.get("properties").and_then(Json::as_object);
    let declared = |key: &str| properties.is_some_and(|p| p.contains_key(key));
    for key in map
        .get("required")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        if !declared(key.as_str().unwrap_or_default()) {
            out.push(format!("{path}: required `{key}` is not a property"));
        }
    }
    for junctor in ["oneOf", "anyOf"] {
        for (i, branch) in map
            .get(junctor)
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            structural_problems(branch, &format!("{path}.{junctor}[{i}]"), true, out);
            for key in branch["required"].as_array().into_iter().flatten() {
                if !declared(key.as_str().unwrap_or_default()) {
                    out.push(format!("{path}.{junctor}[{i}]: `{key}` is not a property"));
                }
            }
        }
    }
    for key in [
        "allOf",
        "not",
        "$ref",
        "additionalItems",
        "patternProperties",
    ] {
        if map.contains_key(key) {
            out.push(format!("{path}: `{key}` is not used by Koreo's CRDs"));
        }
    }
    if let Some(default) = map.get("default") {
        // A default must survive pruning and validate against its own schema.
        let mut errors = Vec::new();
        openapi::check(
            node,
            &openapi::with_defaults(node, default.clone()),
            path,
            &mut errors,
        );
        out.extend(errors.into_iter().map(|e| format!("default: {e}")));
    }
    if let Some(values) = map.get("enum").and_then(Json::as_array) {
        for value in values {
            let mut errors = Vec::new();
            openapi::check(node, value, path, &mut errors);
            out.extend(errors.into_iter().map(|e| format!("enum: {e}")));
        }
    }
    if map.get("x-kubernetes-list-type") == Some(&json!("map")) {
        let items = &map["items"];
        for key in map["x-kubernetes-list-map-keys"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let key = key.as_str().unwrap_or_default();
            let property = &items["properties"][key];
            let required = items["required"]
                .as_array()
                .is_some_and(|r| r.contains(&json!(key)));
            if !required && property.get("default").is_none() {
                out.push(format!("{path}: list-map key `{key}` must be required"));
            }
            if matches!(property["type"].as_str(), Some("object" | "array")) {
                out.push(format!("{path}: list-map key `{key}` must be a scalar"));
            }
        }
    }
    for rule in map
        .get("x-kubernetes-validations")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        if let Err(e) = openapi::compile_rule(rule["rule"].as_str().unwrap_or_default()) {
            out.push(format!("{path}: rule does not compile: {e}"));
        }
        if rule["message"].as_str().is_none_or(str::is_empty) {
            out.push(format!("{path}: rule without a message"));
        }
    }
    for (key, child) in properties.into_iter().flatten() {
        structural_problems(child, &format!("{path}.{key}"), false, out);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = map.get(key) {
            structural_problems(child, &format!("{path}.{key}"), false, out);
        }
    }
}

#[test]
fn crds_are_structural_schemas() {
    let mut problems = Vec::new();
    for kind in schema::KINDS {
        let root = open_api(kind);
        let properties = root["properties"].as_object().unwrap();
        assert_eq!(
            properties.keys().collect::<Vec<_>>(),
            ["apiVersion", "kind", "metadata", "spec", "status"]
        );
        // Only name and generateName of metadata may be constrained; we constrain nothing.
        assert_eq!(properties["metadata"], json!({"type": "object"}), "{kind}");
        for (key, child) in properties {
            if key != "metadata" {
                structural_problems(child, &format!("{kind}.{key}"), false, &mut problems);
            }
        }
        assert_eq!(root["type"], "object");
        assert!(root["description"].as_str().is_some_and(|d| !d.is_empty()));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn expression_and_pattern_rules_are_generated() {
    let rf = open_api("ResourceFunction");
    let assert =
        &rf["properties"]["spec"]["properties"]["preconditions"]["items"]["properties"]["assert"];
    assert_eq!(
        assert["x-kubernetes-validations"],
        json!([{"rule": "self.startsWith('=')", "message": "must be an expression (start with `=`)"}])
    );
    let wf = open_api("Workflow");
    let step = &wf["properties"]["spec"]["properties"]["steps"]["items"];
    let label = &step["properties"]["label"];
    assert_eq!(
        (&label["minLength"], &label["maxLength"]),
        (&json!(3), &json!(45))
    );
    let rules: Vec<&str> = label["x-kubernetes-validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["self.matches('^[a-zA-Z0-9_]+$')"]);
    let name = &step["properties"]["ref"]["properties"]["name"];
    assert_eq!(
        name["x-kubernetes-validations"],
        json!([{"rule": "!self.startsWith('=')", "message": "may not be an expression"}])
    );
    assert_eq!(
        step["oneOf"],
        json!([{"required": ["ref"]}, {"required": ["refSwitch"]}])
    );
    let case =
        &step["properties"]["refSwitch"]["properties"]["cases"]["items"]["properties"]["case"];
    assert_eq!(case["x-kubernetes-int-or-string"], true);
    assert!(case.get("type").is_none());
    // On the int-or-string itself a real API server refuses the rule as too costly; on the
    // case it is within budget.
    assert!(case.get("x-kubernetes-validations").is_none());
    let rules = &step["properties"]["refSwitch"]["properties"]["cases"]["items"]["x-kubernetes-validations"];
    assert_eq!(
        rules[0]["rule"],
        "!has(self.case) || type(self.case) != string || !self.case.startsWith('=')"
    );
}

// ---------------------------------------------------------------------------------------------
// (b) The schema and the decoder agree.

/// Valid documents that together hold every field of every kind.
const SAMPLES: &str = r#"
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata:
  name: sample-vf
  namespace: default
  labels: {team: platform}
  annotations: {note: a sample}
spec:
  preconditions:
  - {assert: "=inputs.a > 0", ok: {}}
  - {assert: "=has(inputs.b)", skip: {message: no b}}
  - {assert: "=inputs.c", depSkip: {message: "=inputs.name + ' waits'"}}
  - {assert: "=inputs.d", retry: {message: not yet, delay: 5}}
  - {assert: "=inputs.e", permFail: {message: broken}}
  locals:
    doubled: =inputs.a * 2
  return:
    value: =locals.doubled
status:
  conditions:
  - {type: Ready, status: "True", reason: Ready, message: ok, lastTransitionTime: "2025-01-01T00:00:00Z"}
---
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: sample-rf, namespace: default}
spec:
  preconditions:
  - {assert: "=inputs.a > 0", ok: {}}
  - {assert: "=inputs.b", skip: {message: s}}
  - {assert: "=inputs.c", depSkip: {message: d}}
  - {assert: "=inputs.d", retry: {message: r, delay: 5}}
  - {assert: "=inputs.e", permFail: {message: p}}
  locals: {name: =inputs.name}
  apiConfig:
    apiVersion: v1
    kind: ConfigMap
    plural: configmaps
    namespaced: true
    owned: true
    readonly: false
    deleteIfExists: false
    name: =locals.name
    namespace: =inputs.namespace
  resource:
    data: {key: =inputs.value}
  overlays:
  - overlay: {data: {extra: =resource.data.key}}
    skipIf: =inputs.plain
  - overlayRef: {kind: ValueFunction, name: labels}
    inputs: {name: =locals.name}
  create:
    enabled: true
    delay: 10
    overlay: {data: {created: "yes"}}
  update:
    patch: {delay: 10}
  delete:
    abandon: {}
  postconditions:
  - {assert: "=has(resource.data)", ok: {}}
  - {assert: "=inputs.b", skip: {message: s}}
  - {assert: "=inputs.c", depSkip: {message: d}}
  - {assert: "=has(resource.status)", retry: {message: "=locals.name + ' not ready'", delay: 5}}
  - {assert: "=inputs.e", permFail: {message: p}}
  return:
    uid: =resource.metadata.uid
---
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: sample-rf-template, namespace: default}
spec:
  apiConfig: {apiVersion: v1, kind: Namespace, namespaced: false, name: =inputs.name}
  resourceTemplateRef: {name: ="template-" + inputs.flavour}
  update:
    recreate: {delay: 5}
  delete:
    destroy: {}
---
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: sample-rf-never, namespace: default}
spec:
  apiConfig: {apiVersion: v1, kind: ConfigMap, name: fixed, namespace: default}
  resource: {}
  update:
    never: {}
---
apiVersion: koreo.dev/v1beta1
kind: ResourceTemplate
metadata: {name: sample-template, namespace: default}
spec:
  template:
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: from-template}
    data: {a: b}
  context: {owner: platform}
---
apiVersion: koreo.dev/v1beta1
kind: Workflow
metadata: {name: sample-workflow, namespace: default}
spec:
  crdRef: {apiGroup: example.com, version: v1, kind: App}
  steps:
  - label: config
    ref: {kind: ValueFunction, name: config}
    inputs: {name: =parent.metadata.name}
    condition: {type: ConfigReady, name: Configuration}
    state: {config: =value}
  - label: resources
    refSwitch:
      switchOn: =inputs.size
      cases:
      - {case: small, default: true, kind: ResourceFunction, name: small}
      - {case: 2, kind: Workflow, name: big}
    skipIf: =!has(steps.config.items)
    forEach: {itemIn: =steps.config.items, inputKey: item}
    inputs: {size: =steps.config.size}
---
apiVersion: koreo.dev/v1beta1
kind: FunctionTest
metadata: {name: sample-test, namespace: default}
spec:
  functionRef: {kind: ResourceFunction, name: sample-rf}
  inputs: {name: x, namespace: default}
  currentResource: {apiVersion: v1, kind: ConfigMap, metadata: {name: x, namespace: default}}
  testCases:
  - label: creates
    variant: false
    skip: false
    inputOverrides: {name: y}
    currentResource: {apiVersion: v1, kind: ConfigMap, metadata: {name: y, namespace: default}}
    overlayResource: {status: {ready: =inputs.name == 'y'}}
    expectResource: {apiVersion: v1, kind: ConfigMap, metadata: {name: y, namespace: default}}
  - expectDelete: true
  - expectReturn: {uid: abc}
  - expectOutcome: {ok: {}}
  - expectOutcome: {skip: {message: s}}
  - expectOutcome: {depSkip: {message: d}}
  - expectOutcome: {retry: {message: r, delay: 0}}
  - expectOutcome: {permFail: {message: p}}
---
apiVersion: koreo.dev/v1beta1
kind: WorkflowTest
metadata: {name: hello-converges, namespace: default}
spec:
  workflowRef: {name: hello}
  parent:
    metadata: {name: ada, namespace: default, labels: {team: a}, annotations: {note: b}}
    spec: {greeting: hi}
  currentResources:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: existing, namespace: default}, data: {a: b}}
  testCases:
  - label: first pass
    variant: false
    skip: false
    parentOverrides:
      metadata: {labels: {team: null}, annotations: {note: c}}
      spec: {greeting: hello}
    applyResources:
    - {apiVersion: v1, kind: Secret, metadata: {name: s, namespace: default}}
    overlayResources:
    - {apiVersion: v1, kind: ConfigMap, metadata: {name: existing, namespace: default}, status: {ready: true}}
    deleteResources:
    - {apiVersion: v1, kind: ConfigMap, name: old, namespace: default}
    expectResources:
    - {apiVersion: v1, kind: ConfigMap, metadata: {name: ada-greeting, namespace: default}, data: {greeting: hello}}
    expectResourcesExact:
    - {apiVersion: v1, kind: ConfigMap, metadata: {name: ada-greeting, namespace: default}, data: {greeting: hello}}
    expectMissing:
    - {apiVersion: v1, kind: ConfigMap, name: old, namespace: default}
    expectStatus:
      conditions: [{type: Ready, status: "True", reason: Ready, messageContains: done}]
      state: {greeting: hello}
    expectSteps:
      config: {outcome: Retry, messageContains: Waiting}
    expectOutcome: Ok
    expectNoWrites: true
"#;

#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A place in a sample where a schema field has a value.
struct Occurrence {
    path: Vec<Seg>,
    schema_path: String,
    field: &'static Field,
}

fn occurrences(
    field: &'static Field,
    value: &Json,
    path: &mut Vec<Seg>,
    schema_path: &str,
    out: &mut Vec<Occurrence>,
) {
    out.push(Occurrence {
        path: path.clone(),
        schema_path: schema_path.to_string(),
        field,
    });
    match value {
        Json::Object(map) => {
            for (key, v) in map {
                let (child, suffix) = match field.fields.iter().find(|f| f.name == key) {
                    Some(child) => (child, key.as_str()),
                    None => match field.values {
                        Some(values) => (values, "*"),
                        None => continue,
                    },
                };
                path.push(Seg::Key(key.clone()));
                let child_path = if schema_path.is_empty() {
                    suffix.to_string()
                } else {
                    format!("{schema_path}.{suffix}")
                };
                occurrences(child, v, path, &child_path, out);
                path.pop();
            }
        }
        Json::Array(items) => {
            if let Some(item) = field.items {
                for (i, v) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    occurrences(item, v, path, &format!("{schema_path}[]"), out);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

fn schema_paths(field: &'static Field, path: &str, out: &mut BTreeSet<String>) {
    out.insert(path.to_string());
    for child in field.fields {
        let child_path = if path.is_empty() {
            child.name.to_string()
        } else {
            format!("{path}.{}", child.name)
        };
        schema_paths(child, &child_path, out);
    }
    if let Some(items) = field.items {
        schema_paths(items, &format!("{path}[]"), out);
    }
    if let Some(values) = field.values {
        schema_paths(values, &format!("{path}.*"), out);
    }
}

/// The path as the decoder writes it in messages: `spec.steps[0].ref`, or the kind at the top.
fn decoder_path(kind: &str, path: &[Seg]) -> String {
    if path.is_empty() {
        return kind.to_string();
    }
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn at_mut<'a>(doc: &'a mut Json, path: &[Seg]) -> &'a mut Json {
    path.iter().fold(doc, |value, seg| match seg {
        Seg::Key(k) => &mut value[k.as_str()],
        Seg::Index(i) => &mut value[*i],
    })
}

enum Expect {
    /// Both reject, with the decoder's unknown-key error listing these valid keys.
    Unknown {
        path: String,
        keys: Vec<&'static str>,
    },
    /// Both reject, the decoder saying `key` is missing under `path`.
    Missing { path: String, key: String },
    /// Both reject, the decoder asking for exactly one of the group.
    NoneOf(&'static [&'static str]),
    /// Both reject, the decoder saying only one of the group may be given.
    ManyOf(&'static [&'static str]),
    /// Both reject.
    Rejected,
    /// Both give the same verdict.
    Same,
}

struct Mutation {
    what: String,
    doc: Json,
    expect: Expect,
}

fn mutate(
    doc: &Json,
    path: &[Seg],
    what: String,
    expect: Expect,
    f: impl FnOnce(&mut Json),
) -> Mutation {
    let mut doc = doc.clone();
    f(at_mut(&mut doc, path));
    Mutation { what, doc, expect }
}

/// The value of the wrong type for a field.
fn wrong_type(ty: Type) -> Json {
    match ty {
        Type::Object | Type::Array | Type::Integer | Type::Boolean => json!("zz"),
        Type::String | Type::IntOrString => json!({"zz": 1}),
        Type::Any => Json::Null,
    }
}

fn mutations(
    kind: &str,
    doc: &Json,
    occurrence: &Occurrence,
    parent: Option<&Field>,
) -> Vec<Mutation> {
    let Occurrence {
        path,
        field,
        schema_path,
    } = occurrence;
    let field: &Field = field;
    let mut out = Vec::new();
    let value = {
        let mut d = doc.clone();
        at_mut(&mut d, path).clone()
    };
    let here = decoder_path(kind, path);
    let m = |what: &str, expect: Expect, f: &dyn Fn(&mut Json)| {
        mutate(doc, path, format!("{schema_path}: {what}"), expect, f)
    };
    if let Json::Object(map) = &value {
        if field.ty == Type::Object && !field.free_form && field.values.is_none() {
            out.push(m(
                "unknown key",
                Expect::Unknown {
                    path: here.clone(),
                    keys: field.fields.iter().map(|f| f.name).collect(),
                },
                &|v| {
                    v["zzUnknown"] = json!(1);
                },
            ));
        }
        for child in field.fields.iter().filter(|f| f.required) {
            // The API server itself requires metadata.
            if map.contains_key(child.name) && !(path.is_empty() && child.name == "metadata") {
                let key = child.name;
                out.push(m(
                    &format!("without `{key}`"),
                    Expect::Missing {
                        path: if path.is_empty() {
                            String::new()
                        } else {
                            here.clone()
                        },
                        key: key.to_string(),
                    },
                    &|v| {
                        v.as_object_mut().unwrap().remove(key);
                    },
                ));
            }
        }
        let present: Vec<&str> = field
            .one_of
            .iter()
            .copied()
            .filter(|k| map.get(*k).is_some_and(|v| !v.is_null()))
            .collect();
        if let [one] = present.as_slice() {
            out.push(m(
                &format!("without `{one}`"),
                Expect::NoneOf(field.one_of),
                &|v| {
                    v.as_object_mut().unwrap().remove(*one);
                },
            ));
            for other in field.one_of.iter().filter(|k| *k != one) {
                out.push(m(
                    &format!("`{other}` with `{one}`"),
                    Expect::ManyOf(field.one_of),
                    &|v| {
                        v[*other] = json!({});
                    },
                ));
            }
        }
        if !field.any_of.is_empty() {
            out.push(m("without any of its anyOf keys", Expect::Rejected, &|v| {
                for key in field.any_of {
                    v.as_object_mut().unwrap().remove(*key);
                }
            }));
        }
        if field.min_properties.is_some_and(|n| n > 0) {
            out.push(m("empty", Expect::Rejected, &|v| *v = json!({})));
        }
        if let Some(max) = field.max_properties {
            out.push(m("too many keys", Expect::Rejected, &|v| {
                *v = (0..=max).map(|i| (format!("k{i}"), json!(i))).collect();
            }));
        }
    }
    if let Json::Array(items) = &value {
        if let (Some(max), Some(first)) = (field.max_items, items.first()) {
            out.push(m("too many items", Expect::Rejected, &|v| {
                *v = Json::Array(vec![first.clone(); max as usize + 1]);
            }));
        }
        if field.min_items.is_some_and(|n| n > 0) {
            out.push(m("empty", Expect::Rejected, &|v| *v = json!([])));
        }
    }
    if value.is_string() || field.ty == Type::IntOrString {
        if !field.enum_values.is_empty() {
            out.push(m("not in the enum", Expect::Rejected, &|v| {
                *v = json!("NotInTheEnum")
            }));
        }
        match field.expression {
            Expression::Required => {
                out.push(m("not an expression", Expect::Rejected, &|v| {
                    *v = json!("true")
                }));
            }
            Expression::Forbidden => {
                out.push(m("an expression", Expect::Rejected, &|v| *v = json!("=x")));
            }
            _ => {}
        }
        match field.pattern {
            Some(Pattern::Identifier) => {
                out.push(m("not an identifier", Expect::Rejected, &|v| {
                    *v = json!("has-dash")
                }));
            }
            Some(Pattern::PascalCase) => {
                out.push(m("not PascalCase", Expect::Rejected, &|v| {
                    *v = json!("lowerCase")
                }));
            }
            None => {}
        }
        if let Some(min) = field.min_length.filter(|n| *n > 0) {
            out.push(m("too short", Expect::Rejected, &|v| {
                *v = json!("a".repeat(min as usize - 1));
            }));
        }
        if let Some(max) = field.max_length {
            out.push(m("too long", Expect::Rejected, &|v| {
                *v = json!(format!("A{}", "a".repeat(max as usize)));
            }));
        }
    }
    if field.ty != Type::Any && !path.is_empty() {
        let wrong = wrong_type(field.ty);
        out.push(m("of the wrong type", Expect::Rejected, &|v| {
            *v = wrong.clone()
        }));
    }
    let in_group =
        parent.is_some_and(|p| p.one_of.contains(&field.name) || p.any_of.contains(&field.name));
    if !path.is_empty() && !field.required && !in_group && matches!(path.last(), Some(Seg::Key(_)))
    {
        out.push(m("null", Expect::Same, &|v| *v = Json::Null));
    }
    if let Some(default) = field.default_value() {
        out.push(m("set to its default", Expect::Same, &|v| {
            *v = default.clone()
        }));
    }
    out
}

fn decoder_errors(doc: &Json) -> Vec<Diagnostic> {
    let text = serde_json::to_string(doc).unwrap();
    let ws = Workspace::load_str("sample.yaml", text);
    assert_eq!(
        ws.definitions.len() + ws.rejected.len(),
        1,
        "one definition"
    );
    ws.diagnostics
        .into_iter()
        .filter(Diagnostic::is_error)
        .collect()
}

/// The backticked names in `text`.
fn backticked(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn check_message(expect: &Expect, errors: &[Diagnostic]) -> Result<(), String> {
    let found = |pred: &dyn Fn(&Diagnostic) -> bool| errors.iter().any(pred);
    let ok = match expect {
        Expect::Unknown { path, keys } => found(&|d| {
            let want: BTreeSet<String> = keys.iter().map(|k| k.to_string()).collect();
            let listed: BTreeSet<String> = d
                .hint
                .as_deref()
                .and_then(|h| h.split("valid keys: ").nth(1))
                .map(|l| {
                    l.split(", ")
                        .filter(|k| !k.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            d.message == format!("unknown key `zzUnknown` in `{path}`") && listed == want
        }),
        Expect::Missing { path, key } => found(&|d| {
            d.message.contains(path.as_str())
                && (d.message.contains(&format!(".{key}`"))
                    || d.message.contains(&format!("`{key}`")))
        }),
        Expect::NoneOf(group) => found(&|d| {
            let want: BTreeSet<String> = group.iter().map(|k| k.to_string()).collect();
            d.message
                .split_once("needs exactly one of ")
                .is_some_and(|(_, keys)| backticked(keys) == want)
        }),
        Expect::ManyOf(group) => found(&|d| {
            let want: BTreeSet<String> = group.iter().map(|k| k.to_string()).collect();
            d.message
                .split_once("may have only one of ")
                .and_then(|(_, rest)| rest.split_once(", found"))
                .is_some_and(|(keys, _)| backticked(keys) == want)
        }),
        Expect::Rejected | Expect::Same => true,
    };
    if ok {
        Ok(())
    } else {
        Err("the decoder's errors do not say so".into())
    }
}

#[test]
fn schema_and_decoder_agree() {
    let samples = parse_yaml(SAMPLES);
    let mut failures = Vec::new();
    let mut checked = 0;
    for kind in schema::KINDS {
        let root = schema::kind(kind).unwrap();
        let schema = open_api(kind);
        // WorkflowTest is decoded once its decoder lands; until then only the schema side runs.
        let has_decoder = model::KINDS.contains(&kind);
        let docs: Vec<&Json> = samples.iter().filter(|d| d["kind"] == *kind).collect();
        let mut covered = BTreeSet::new();
        for doc in &docs {
            let name = doc["metadata"]["name"].as_str().unwrap_or_default();
            let schema_errors = openapi::validate_document(&schema, doc);
            assert!(
                schema_errors.is_empty(),
                "sample {name}: {schema_errors:#?}"
            );
            if has_decoder {
                let errors = decoder_errors(doc);
                assert!(errors.is_empty(), "sample {name}: {errors:#?}");
            }
            let mut found = Vec::new();
            occurrences(root, doc, &mut Vec::new(), "", &mut found);
            let parent_of = |o: &Occurrence| -> Option<&'static Field> {
                found
                    .iter()
                    .filter(|p| {
                        p.path.len() + 1 == o.path.len() && o.path.starts_with_segs(&p.path)
                    })
                    .map(|p| p.field)
                    .next()
            };
            for occurrence in &found {
                covered.insert(occurrence.schema_path.clone());
                let top = match occurrence.path.first() {
                    Some(Seg::Key(k)) => k.as_str(),
                    _ => "",
                };
                // The API server checks apiVersion, kind and metadata; status is koreo's.
                if matches!(top, "apiVersion" | "kind" | "metadata" | "status") {
                    continue;
                }
                for mutation in mutations(kind, doc, occurrence, parent_of(occurrence)) {
                    checked += 1;
                    let schema_rejects =
                        !openapi::validate_document(&schema, &mutation.doc).is_empty();
                    let what = format!("{kind} {name} {}", mutation.what);
                    if !matches!(mutation.expect, Expect::Same) && !schema_rejects {
                        failures.push(format!("{what}: the CRD accepts it"));
                    }
                    if !has_decoder {
                        continue;
                    }
                    let errors = decoder_errors(&mutation.doc);
                    let decoder_rejects = !errors.is_empty();
                    if decoder_rejects != schema_rejects {
                        failures.push(format!(
                            "{what}: the decoder {} it, the CRD {} it{}",
                            if decoder_rejects {
                                "rejects"
                            } else {
                                "accepts"
                            },
                            if schema_rejects { "rejects" } else { "accepts" },
                            if decoder_rejects {
                                format!(
                                    " ({})",
                                    errors
                                        .iter()
                                        .map(|d| d.message.as_str())
                                        .collect::<Vec<_>>()
                                        .join("; ")
                                )
                            } else {
                                format!(
                                    " ({})",
                                    openapi::validate_document(&schema, &mutation.doc).join("; ")
                                )
                            }
                        ));
                    } else if let Err(e) = check_message(&mutation.expect, &errors) {
                        failures.push(format!(
                            "{what}: {e}: {:#?}",
                            errors
                                .iter()
                                .map(|d| format!(
                                    "{} (hint: {})",
                                    d.message,
                                    d.hint.as_deref().unwrap_or("")
                                ))
                                .collect::<Vec<_>>()
                        ));
                    }
                }
            }
        }
        let mut declared = BTreeSet::new();
        schema_paths(root, "", &mut declared);
        let missing: Vec<&String> = declared
            .iter()
            .filter(|p| {
                let top = p.split(['.', '[']).next().unwrap_or_default();
                !matches!(top, "metadata" | "status")
            })
            .filter(|p| !covered.contains(*p))
            .collect();
        assert!(
            missing.is_empty(),
            "{kind}: no sample has a value at {missing:?}; add one to SAMPLES"
        );
    }
    eprintln!("{checked} mutations checked");
    assert!(checked > 300, "only {checked} mutations");
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

trait StartsWithSegs {
    fn starts_with_segs(&self, prefix: &[Seg]) -> bool;
}

impl StartsWithSegs for Vec<Seg> {
    fn starts_with_segs(&self, prefix: &[Seg]) -> bool {
        self.len() >= prefix.len()
            && self.iter().zip(prefix).all(|(a, b)| match (a, b) {
                (Seg::Key(a), Seg::Key(b)) => a == b,
                (Seg::Index(a), Seg::Index(b)) => a == b,
                _ => false,
            })
    }
}

// ---------------------------------------------------------------------------------------------
// Rules across fields, both sides.

#[test]
fn cross_field_rules_agree_with_the_decoder() {
    let samples = parse_yaml(SAMPLES);
    let sample = |name: &str| {
        samples
            .iter()
            .find(|d| d["metadata"]["name"] == name)
            .unwrap()
            .clone()
    };
    let mut cases: Vec<(&str, Json)> = Vec::new();
    let mut rf = sample("sample-rf");
    rf["spec"]["apiConfig"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    cases.push(("namespace required when namespaced", rf));
    let mut rf = sample("sample-rf");
    rf["spec"]["overlays"][0]["inputs"] = json!({"a": 1});
    cases.push(("inputs with an inline overlay", rf));
    let mut wf = sample("sample-workflow");
    wf["spec"]["steps"][1]["refSwitch"]["cases"][1]["default"] = json!(true);
    cases.push(("two default cases", wf));
    let mut wf = sample("sample-workflow");
    wf["spec"]["steps"][1]["refSwitch"]["cases"][1]["case"] = json!("small");
    cases.push(("duplicate cases", wf));
    let mut ft = sample("sample-test");
    ft["spec"]["functionRef"]["kind"] = json!("ValueFunction");
    ft["spec"]["testCases"] = json!([{"expectResource": {"a": 1}}]);
    cases.push(("expectResource in a ValueFunction test", ft));
    let mut ft = sample("sample-test");
    ft["spec"]["functionRef"]["kind"] = json!("ValueFunction");
    ft["spec"]["testCases"] = json!([{"expectDelete": true}]);
    cases.push(("expectDelete in a ValueFunction test", ft));
    for (what, doc) in &cases {
        let kind = doc["kind"].as_str().unwrap();
        assert!(
            !decoder_errors(doc).is_empty(),
            "{what}: the decoder accepts it"
        );
        assert!(
            !openapi::validate_document(&open_api(kind), doc).is_empty(),
            "{what}: the CRD accepts it"
        );
    }
    // Two steps with one label: the analysis rejects it (not the decoder), and so does the CRD.
    let mut wf = sample("sample-workflow");
    wf["spec"]["steps"][1]["label"] = json!("config");
    let errors = openapi::validate_document(&open_api("Workflow"), &wf);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("step labels must be unique")),
        "{errors:?}"
    );
    // `expectOutcome: {ok: null}` means Ok to both.
    let mut ft = sample("sample-test");
    ft["spec"]["testCases"] = json!([{"expectOutcome": {"ok": null}}]);
    assert!(decoder_errors(&ft).is_empty());
    assert!(openapi::validate_document(&open_api("FunctionTest"), &ft).is_empty());
}

// ---------------------------------------------------------------------------------------------
// (d) Koreo's own files validate.

/// Snippets of the koreo.dev docs that Koreo itself rejects (they have no `apiConfig`).
const KNOWN_PARTIAL_SNIPPETS: [&str; 2] = ["docs-template-function.v1", "s3-bucket-factory.v1"];

#[test]
fn conformance_files_validate_against_the_crds() {
    let Some(root) = shared::shared("conformance") else {
        return;
    };
    let mut files = Vec::new();
    for folder in ["koreo-core", "koreo-docs"] {
        for entry in fs::read_dir(root.join(folder)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    files.sort();
    let mut validated = 0;
    let mut failures = Vec::new();
    let mut partial_rejected = BTreeSet::new();
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        for doc in parse_yaml(&text) {
            let kind = doc["kind"].as_str().unwrap_or_default();
            if doc["apiVersion"] != "koreo.dev/v1beta1" || schema::kind(kind).is_none() {
                continue;
            }
            let name = doc["metadata"]["name"].as_str().unwrap_or_default();
            let errors = openapi::validate_document(&open_api(kind), &doc);
            validated += 1;
            if errors.is_empty() {
                continue;
            }
            // Koreo rejects these too, and for the same reason.
            if KNOWN_PARTIAL_SNIPPETS.contains(&name)
                && errors.iter().any(|e| e.contains("`apiConfig` is required"))
            {
                partial_rejected.insert(name.to_string());
            } else {
                failures.push(format!("{}: {kind} {name}: {errors:#?}", file.display()));
            }
        }
    }
    assert_eq!(partial_rejected.len(), KNOWN_PARTIAL_SNIPPETS.len());
    assert!(validated >= 80, "only {validated} Koreo documents found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
