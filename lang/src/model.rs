//! The five Koreo kinds as typed values, decoded and validated the way Koreo's CRD schemas (and
//! the rules only its API server enforced) validate them.

use std::sync::Arc;

use serde_json::Value as Json;

use crate::codes::Code;
use crate::decode::{Decoder, Fields};
use crate::expr::{Expr, ExprCache, Template};
use crate::source::{Diagnostic, FileRef, Location};
use crate::yaml::Node;

pub const API_VERSION: &str = "koreo.dev/v1beta1";
pub const KINDS: [&str; 6] = [
    "Workflow",
    "ResourceFunction",
    "ValueFunction",
    "ResourceTemplate",
    "FunctionTest",
    "WorkflowTest",
];
const MAX_CONDITIONS: usize = 20;
const MAX_STEPS: usize = 20;
const MAX_TEST_CASES: usize = 20;
const MAX_SWITCH_CASES: usize = 10;
const MAX_STATE_KEYS: usize = 10;

/// Name, namespace and where the definition is written.
#[derive(Clone, Debug)]
pub struct Meta {
    pub name: String,
    pub namespace: Option<String>,
    /// The whole document.
    pub location: Location,
    /// The `metadata.name` value, where diagnostics about the definition point.
    pub name_location: Location,
    pub labels: Json,
    pub annotations: Json,
}

/// A predicate of `preconditions` or `postconditions`.
#[derive(Debug)]
pub struct Condition {
    pub assert: Arc<Expr>,
    pub outcome: ConditionOutcome,
}

#[derive(Debug)]
pub enum ConditionOutcome {
    /// Stop checking and carry on.
    Ok,
    Skip {
        message: Template,
    },
    DepSkip {
        message: Template,
    },
    Retry {
        message: Template,
        delay: i64,
    },
    PermFail {
        message: Template,
    },
}

#[derive(Debug)]
pub struct ValueFunction {
    pub meta: Meta,
    pub preconditions: Vec<Condition>,
    pub locals: Option<Template>,
    pub ret: Option<Template>,
}

#[derive(Debug)]
pub struct ApiConfig {
    pub api_version: String,
    pub kind: String,
    pub plural: Option<String>,
    pub namespaced: bool,
    pub owned: bool,
    pub readonly: bool,
    pub delete_if_exists: bool,
    pub name: Template,
    pub namespace: Option<Template>,
}

#[derive(Debug)]
pub enum TargetSource {
    Inline(Template),
    /// The name may be an expression.
    TemplateRef(Template),
}

#[derive(Debug)]
pub enum OverlaySource {
    Inline(Template),
    ValueFunction {
        name: String,
        name_location: Location,
        inputs: Option<Template>,
    },
}

#[derive(Debug)]
pub struct Overlay {
    pub source: OverlaySource,
    pub skip_if: Option<Arc<Expr>>,
}

#[derive(Debug)]
pub struct Create {
    pub enabled: bool,
    pub delay: i64,
    pub overlay: Option<Template>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    Patch { delay: i64 },
    Recreate { delay: i64 },
    Never,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletePolicy {
    /// Koreo never implemented `delete`; leaving resources alone is the safe default.
    #[default]
    Abandon,
    Destroy,
}

#[derive(Debug)]
pub struct ResourceFunction {
    pub meta: Meta,
    pub preconditions: Vec<Condition>,
    pub locals: Option<Template>,
    pub api_config: ApiConfig,
    pub target: TargetSource,
    pub overlays: Vec<Overlay>,
    pub create: Create,
    pub update: Update,
    pub delete: DeletePolicy,
    pub postconditions: Vec<Condition>,
    pub ret: Option<Template>,
}

#[derive(Debug)]
pub struct ResourceTemplate {
    pub meta: Meta,
    pub template: Json,
    pub context: Option<Json>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrdRef {
    pub api_group: String,
    pub version: String,
    pub kind: String,
}

impl CrdRef {
    /// `group/version`, or just `version` for the core group (`apiGroup: ""`).
    pub fn api_version(&self) -> String {
        if self.api_group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.api_group, self.version)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogicKind {
    ResourceFunction,
    ValueFunction,
    Workflow,
}

impl LogicKind {
    pub fn parse(s: &str) -> Option<LogicKind> {
        match s {
            "ResourceFunction" => Some(LogicKind::ResourceFunction),
            "ValueFunction" => Some(LogicKind::ValueFunction),
            "Workflow" => Some(LogicKind::Workflow),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogicKind::ResourceFunction => "ResourceFunction",
            LogicKind::ValueFunction => "ValueFunction",
            LogicKind::Workflow => "Workflow",
        }
    }
}

/// A reference to a function or workflow by kind and name.
#[derive(Clone, Debug)]
pub struct LogicRef {
    pub kind: LogicKind,
    pub name: String,
    pub location: Location,
}

#[derive(Debug)]
pub struct SwitchCase {
    pub case: String,
    pub default: bool,
    pub logic: LogicRef,
}

#[derive(Debug)]
pub enum StepLogic {
    Ref(LogicRef),
    Switch {
        switch_on: Arc<Expr>,
        cases: Vec<SwitchCase>,
    },
}

#[derive(Debug)]
pub struct ForEach {
    pub item_in: Arc<Expr>,
    pub input_key: String,
}

#[derive(Clone, Debug)]
pub struct StepCondition {
    pub kind: String,
    pub name: String,
}

#[derive(Debug)]
pub struct Step {
    pub label: String,
    pub label_location: Location,
    pub logic: StepLogic,
    pub skip_if: Option<Arc<Expr>>,
    pub for_each: Option<ForEach>,
    pub inputs: Option<Template>,
    pub condition: Option<StepCondition>,
    pub state: Option<Template>,
    pub location: Location,
}

#[derive(Debug)]
pub struct Workflow {
    pub meta: Meta,
    pub crd_ref: Option<CrdRef>,
    pub steps: Vec<Step>,
    /// The steps' dependencies and a run order, built once when the file loads (`check`
    /// reports its problems).
    pub graph: crate::analysis::StepGraph,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionKind {
    ResourceFunction,
    ValueFunction,
}

#[derive(Debug)]
pub enum Expectation {
    Resource(Json),
    Delete(bool),
    Return(Json),
    Outcome(ExpectedOutcome),
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExpectedOutcome {
    Ok,
    Skip { message: String },
    DepSkip { message: String },
    Retry { message: String, delay: i64 },
    PermFail { message: String },
}

#[derive(Debug)]
pub struct TestCase {
    pub label: String,
    pub variant: bool,
    pub skip: bool,
    pub input_overrides: Option<Json>,
    pub current_resource: Option<Json>,
    pub overlay_resource: Option<Template>,
    pub expectation: Expectation,
    /// The expectation's key, where failures point.
    pub expectation_location: Location,
    pub location: Location,
}

#[derive(Debug)]
pub struct FunctionTest {
    pub meta: Meta,
    pub function_kind: FunctionKind,
    pub function_name: String,
    pub function_location: Location,
    pub inputs: Option<Json>,
    pub inputs_location: Option<Location>,
    pub current_resource: Option<Json>,
    pub test_cases: Vec<TestCase>,
}

/// A step's expected outcome in a WorkflowTest case.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectedStep {
    pub outcome: String,
    pub message_contains: Option<String>,
}

/// One reconcile pass of a WorkflowTest: what changes before it, what must hold after it.
/// Objects are literal JSON, as written.
#[derive(Clone, Debug)]
pub struct WorkflowTestCase {
    pub label: String,
    pub variant: bool,
    pub skip: bool,
    pub parent_overrides: Option<Json>,
    pub apply_resources: Vec<Json>,
    pub overlay_resources: Vec<Json>,
    pub delete_resources: Vec<Json>,
    pub expect_resources: Vec<Json>,
    pub expect_resources_exact: Vec<Json>,
    pub expect_missing: Vec<Json>,
    pub expect_status: Option<Json>,
    pub expect_steps: Vec<(String, ExpectedStep)>,
    pub expect_outcome: Option<String>,
    pub expect_no_writes: bool,
    pub location: Location,
}

/// A whole workflow tested offline over several reconcile passes.
#[derive(Debug)]
pub struct WorkflowTest {
    pub meta: Meta,
    pub workflow_name: String,
    pub workflow_location: Location,
    /// `metadata` and `spec` of the parent.
    pub parent: Json,
    pub current_resources: Vec<Json>,
    pub test_cases: Vec<WorkflowTestCase>,
}

/// A loaded Koreo definition.
#[derive(Clone, Debug)]
pub enum Definition {
    ValueFunction(Arc<ValueFunction>),
    ResourceFunction(Arc<ResourceFunction>),
    ResourceTemplate(Arc<ResourceTemplate>),
    Workflow(Arc<Workflow>),
    FunctionTest(Arc<FunctionTest>),
    WorkflowTest(Arc<WorkflowTest>),
}

impl Definition {
    pub fn meta(&self) -> &Meta {
        match self {
            Definition::ValueFunction(d) => &d.meta,
            Definition::ResourceFunction(d) => &d.meta,
            Definition::ResourceTemplate(d) => &d.meta,
            Definition::Workflow(d) => &d.meta,
            Definition::FunctionTest(d) => &d.meta,
            Definition::WorkflowTest(d) => &d.meta,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Definition::ValueFunction(_) => "ValueFunction",
            Definition::ResourceFunction(_) => "ResourceFunction",
            Definition::ResourceTemplate(_) => "ResourceTemplate",
            Definition::Workflow(_) => "Workflow",
            Definition::FunctionTest(_) => "FunctionTest",
            Definition::WorkflowTest(_) => "WorkflowTest",
        }
    }
}

/// Decodes one document of a Koreo kind. Returns `None` when it has errors (all reported).
pub fn decode(
    kind: &str,
    root: &Node,
    file: &FileRef,
    diags: &mut Vec<Diagnostic>,
    cache: &ExprCache,
) -> Option<Definition> {
    let errors_before = diags.iter().filter(|d| d.is_error()).count();
    let mut d = Decoder { file, diags, cache };
    let top = d.fields(
        root,
        kind,
        &["apiVersion", "kind", "metadata", "spec", "status"],
    )?;
    let meta = decode_meta(&mut d, &top)?;
    let spec = d.required(&top, "spec", kind)?;
    let definition =
        match kind {
            "ValueFunction" => {
                value_function(&mut d, meta, spec).map(|f| Definition::ValueFunction(Arc::new(f)))
            }
            "ResourceFunction" => resource_function(&mut d, meta, spec)
                .map(|f| Definition::ResourceFunction(Arc::new(f))),
            "ResourceTemplate" => resource_template(&mut d, meta, spec)
                .map(|t| Definition::ResourceTemplate(Arc::new(t))),
            "Workflow" => workflow(&mut d, meta, spec).map(|w| Definition::Workflow(Arc::new(w))),
            "FunctionTest" => {
                function_test(&mut d, meta, spec).map(|t| Definition::FunctionTest(Arc::new(t)))
            }
            "WorkflowTest" => {
                workflow_test(&mut d, meta, spec).map(|t| Definition::WorkflowTest(Arc::new(t)))
            }
            _ => None,
        };
    let errors_after = d.diags.iter().filter(|d| d.is_error()).count();
    definition.filter(|_| errors_after == errors_before)
}

fn decode_meta(d: &mut Decoder, top: &Fields) -> Option<Meta> {
    let metadata = d.required(top, "metadata", "")?;
    let fields = d.any_map(metadata, "metadata")?;
    let name_node = d.required(&fields, "name", "metadata")?;
    let name = d.literal_string(name_node, "metadata.name")?;
    if name.is_empty() {
        d.error(
            Code::InvalidValue,
            name_node.span,
            "`metadata.name` may not be empty",
        );
    } else if !is_dns_subdomain(&name) {
        d.error(
            Code::InvalidValue,
            name_node.span,
            format!("`metadata.name` `{name}` is not a Kubernetes name: at most 253 lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit (the API server refuses it)"),
        );
    }
    let namespace = match fields.get("namespace") {
        Some(n) => {
            let namespace = d.literal_string(n, "metadata.namespace")?;
            if !is_dns_label(&namespace) {
                d.error(
                    Code::InvalidValue,
                    n.span,
                    format!("`metadata.namespace` `{namespace}` is not a namespace name: at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit"),
                );
            }
            Some(namespace)
        }
        None => None,
    };
    Some(Meta {
        name,
        namespace,
        location: d.location(top.span()),
        name_location: d.location(name_node.span),
        labels: fields.get("labels").map_or(Json::Null, Node::to_json),
        annotations: fields.get("annotations").map_or(Json::Null, Node::to_json),
    })
}

/// RFC 1123 subdomain, as Kubernetes requires of object names.
fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label_part)
}

/// RFC 1123 label, as Kubernetes requires of namespace names.
/// A Kubernetes DNS label (a namespace's name, for one): lowercase letters, digits and `-`,
/// starting and ending with a letter or digit, at most 63 characters.
pub fn is_dns_label(name: &str) -> bool {
    name.len() <= 63 && is_dns_label_part(name)
}

fn is_dns_label_part(part: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    edge(part.chars().next())
        && edge(part.chars().last())
        && part
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

const SCOPE_INPUTS: &[&str] = &["inputs"];
const SCOPE_VF_INPUTS: &[&str] = &["inputs", "resource"];
const SCOPE_VF_RETURN: &[&str] = &["inputs", "locals", "resource"];
const SCOPE_INPUTS_LOCALS: &[&str] = &["inputs", "locals"];
const SCOPE_WITH_RESOURCE: &[&str] = &["inputs", "locals", "resource"];
const SCOPE_STEP: &[&str] = &["parent", "steps"];
const SCOPE_SWITCH: &[&str] = &["inputs", "parent", "steps"];
const SCOPE_STATE: &[&str] = &["value"];
const SCOPE_TEST_OVERLAY: &[&str] = &["inputs", "resource"];

fn value_function(d: &mut Decoder, meta: Meta, spec: &Node) -> Option<ValueFunction> {
    let f = d.fields(spec, "spec", &["preconditions", "locals", "return"])?;
    if !f.has("preconditions") && !f.has("return") {
        d.error_hint(
            Code::MissingField,
            f.span(),
            "a ValueFunction needs `spec.preconditions`, `spec.return` or both",
            "add a `return:` mapping with the value the function gives",
        );
    }
    let preconditions = conditions(
        d,
        f.get("preconditions"),
        "spec.preconditions",
        SCOPE_VF_INPUTS,
    );
    let locals = f
        .get("locals")
        .and_then(|n| d.map_template(n, "spec.locals", SCOPE_VF_INPUTS));
    let ret = f
        .get("return")
        .and_then(|n| d.map_template(n, "spec.return", SCOPE_VF_RETURN));
    Some(ValueFunction {
        meta,
        preconditions,
        locals,
        ret,
    })
}

fn conditions(d: &mut Decoder, node: Option<&Node>, path: &str, scope: &[&str]) -> Vec<Condition> {
    let Some(node) = node else { return Vec::new() };
    let mut out = Vec::new();
    for (i, item) in d.seq(node, path, MAX_CONDITIONS).iter().enumerate() {
        let path = format!("{path}[{i}]");
        if let Some(c) = condition(d, item, &path, scope) {
            out.push(c);
        }
    }
    out
}

fn condition(d: &mut Decoder, node: &Node, path: &str, scope: &[&str]) -> Option<Condition> {
    const OUTCOMES: [&str; 5] = ["ok", "skip", "depSkip", "retry", "permFail"];
    let f = d.fields(
        node,
        path,
        &["assert", "ok", "skip", "depSkip", "retry", "permFail"],
    )?;
    let assert_node = d.required(&f, "assert", path)?;
    let assert = d.expression(assert_node, &format!("{path}.assert"), scope);
    let which = d.one_of(&f, &OUTCOMES, path)?;
    let body = f.get(which)?;
    let at = format!("{path}.{which}");
    let outcome = match which {
        "ok" => {
            d.fields(body, &at, &[])?;
            ConditionOutcome::Ok
        }
        "retry" => {
            let o = d.fields(body, &at, &["message", "delay"])?;
            let message = outcome_message(d, &o, &at, scope)?;
            let delay = d
                .required(&o, "delay", &at)
                .and_then(|n| d.int(n, &format!("{at}.delay")))?;
            ConditionOutcome::Retry { message, delay }
        }
        _ => {
            let o = d.fields(body, &at, &["message"])?;
            let message = outcome_message(d, &o, &at, scope)?;
            match which {
                "skip" => ConditionOutcome::Skip { message },
                "depSkip" => ConditionOutcome::DepSkip { message },
                _ => ConditionOutcome::PermFail { message },
            }
        }
    };
    Some(Condition {
        assert: assert?,
        outcome,
    })
}

fn outcome_message(d: &mut Decoder, f: &Fields, path: &str, scope: &[&str]) -> Option<Template> {
    let node = d.required(f, "message", path)?;
    d.string(node, &format!("{path}.message"))?;
    Some(d.template(node, &format!("{path}.message"), scope))
}

fn resource_function(d: &mut Decoder, meta: Meta, spec: &Node) -> Option<ResourceFunction> {
    let f = d.fields(
        spec,
        "spec",
        &[
            "preconditions",
            "locals",
            "apiConfig",
            "resource",
            "resourceTemplateRef",
            "overlays",
            "create",
            "update",
            "delete",
            "postconditions",
            "return",
        ],
    )?;
    let preconditions = conditions(
        d,
        f.get("preconditions"),
        "spec.preconditions",
        SCOPE_INPUTS,
    );
    let locals = f
        .get("locals")
        .and_then(|n| d.map_template(n, "spec.locals", SCOPE_INPUTS));
    let api_config = d
        .required(&f, "apiConfig", "spec")
        .and_then(|n| api_config(d, n));
    let target = match d.one_of(&f, &["resource", "resourceTemplateRef"], "spec") {
        Some("resource") => f
            .get("resource")
            .and_then(|n| d.map_template(n, "spec.resource", SCOPE_INPUTS_LOCALS))
            .map(TargetSource::Inline),
        Some(_) => f.get("resourceTemplateRef").and_then(|n| {
            let r = d.fields(n, "spec.resourceTemplateRef", &["name"])?;
            let name = d.required(&r, "name", "spec.resourceTemplateRef")?;
            d.string(name, "spec.resourceTemplateRef.name")?;
            Some(TargetSource::TemplateRef(d.template(
                name,
                "spec.resourceTemplateRef.name",
                SCOPE_INPUTS_LOCALS,
            )))
        }),
        None => None,
    };
    let overlays = f.get("overlays").map_or_else(Vec::new, |n| {
        d.seq(n, "spec.overlays", usize::MAX)
            .iter()
            .enumerate()
            .filter_map(|(i, item)| overlay(d, item, &format!("spec.overlays[{i}]")))
            .collect()
    });
    let create = match f.get("create") {
        Some(n) => create(d, n)?,
        None => Create {
            enabled: true,
            delay: 30,
            overlay: None,
        },
    };
    let update = match f.get("update") {
        Some(n) => update(d, n)?,
        None => Update::Patch { delay: 30 },
    };
    let delete = match f.get("delete") {
        Some(n) => {
            let del = d.fields(n, "spec.delete", &["abandon", "destroy"])?;
            let which = d.one_of(&del, &["abandon", "destroy"], "spec.delete")?;
            d.fields(del.get(which)?, &format!("spec.delete.{which}"), &[])?;
            if which == "destroy" {
                DeletePolicy::Destroy
            } else {
                DeletePolicy::Abandon
            }
        }
        None => DeletePolicy::default(),
    };
    let postconditions = conditions(
        d,
        f.get("postconditions"),
        "spec.postconditions",
        SCOPE_WITH_RESOURCE,
    );
    let ret = f
        .get("return")
        .and_then(|n| d.map_template(n, "spec.return", SCOPE_WITH_RESOURCE));
    Some(ResourceFunction {
        meta,
        preconditions,
        locals,
        api_config: api_config?,
        target: target?,
        overlays,
        create,
        update,
        delete,
        postconditions,
        ret,
    })
}

fn api_config(d: &mut Decoder, node: &Node) -> Option<ApiConfig> {
    let path = "spec.apiConfig";
    let f = d.fields(
        node,
        path,
        &[
            "apiVersion",
            "kind",
            "plural",
            "namespaced",
            "owned",
            "readonly",
            "deleteIfExists",
            "name",
            "namespace",
        ],
    )?;
    let api_version = d
        .required(&f, "apiVersion", path)
        .and_then(|n| d.literal_string(n, "spec.apiConfig.apiVersion"));
    let kind = d
        .required(&f, "kind", path)
        .and_then(|n| d.literal_string(n, "spec.apiConfig.kind"));
    let plural = f
        .get("plural")
        .and_then(|n| d.literal_string(n, "spec.apiConfig.plural"));
    let namespaced = d.opt_bool(&f, "namespaced", path, true);
    let name = d.required(&f, "name", path).and_then(|n| {
        d.string(n, "spec.apiConfig.name")?;
        Some(d.template(n, "spec.apiConfig.name", SCOPE_INPUTS_LOCALS))
    });
    let namespace = f.get("namespace").and_then(|n| {
        d.string(n, "spec.apiConfig.namespace")?;
        Some(d.template(n, "spec.apiConfig.namespace", SCOPE_INPUTS_LOCALS))
    });
    if namespaced && namespace.is_none() {
        d.error_hint(
            Code::MissingField,
            f.span(),
            "`spec.apiConfig.namespace` is required when `spec.apiConfig.namespaced` is true",
            "set `namespace:` (often `=inputs.metadata.namespace`), or `namespaced: false` for cluster-scoped kinds",
        );
    }
    Some(ApiConfig {
        api_version: api_version?,
        kind: kind?,
        plural,
        namespaced,
        owned: d.opt_bool(&f, "owned", path, true),
        readonly: d.opt_bool(&f, "readonly", path, false),
        delete_if_exists: d.opt_bool(&f, "deleteIfExists", path, false),
        name: name?,
        namespace,
    })
}

fn overlay(d: &mut Decoder, node: &Node, path: &str) -> Option<Overlay> {
    let f = d.fields(node, path, &["overlay", "overlayRef", "inputs", "skipIf"])?;
    let skip_if = match f.get("skipIf") {
        Some(n) => Some(d.expression(n, &format!("{path}.skipIf"), SCOPE_INPUTS_LOCALS)?),
        None => None,
    };
    let source = match d.one_of(&f, &["overlay", "overlayRef"], path)? {
        "overlay" => {
            if f.has("inputs") {
                d.error(
                    Code::InvalidValue,
                    f.span(),
                    format!("`{path}.inputs` goes with `overlayRef`, not with an inline `overlay`"),
                );
            }
            let node = f.get("overlay")?;
            let template = d.map_template(node, &format!("{path}.overlay"), SCOPE_WITH_RESOURCE)?;
            if node.as_map().is_some_and(<[_]>::is_empty) {
                d.error(
                    Code::InvalidValue,
                    node.span,
                    format!("`{path}.overlay` is empty"),
                );
            }
            OverlaySource::Inline(template)
        }
        _ => {
            let at = format!("{path}.overlayRef");
            let r = d.fields(f.get("overlayRef")?, &at, &["kind", "name"])?;
            let kind_node = d.required(&r, "kind", &at)?;
            let kind = d.literal_string(kind_node, &format!("{at}.kind"))?;
            if kind != "ValueFunction" {
                d.error(
                    Code::WrongKind,
                    kind_node.span,
                    format!("`{at}.kind` must be `ValueFunction`, not `{kind}`"),
                );
            }
            let name_node = d.required(&r, "name", &at)?;
            let name = d.literal_string(name_node, &format!("{at}.name"))?;
            let inputs = f
                .get("inputs")
                .and_then(|n| d.map_template(n, &format!("{path}.inputs"), SCOPE_INPUTS_LOCALS));
            OverlaySource::ValueFunction {
                name,
                name_location: d.location(name_node.span),
                inputs,
            }
        }
    };
    Some(Overlay { source, skip_if })
}

fn create(d: &mut Decoder, node: &Node) -> Option<Create> {
    let f = d.fields(node, "spec.create", &["enabled", "delay", "overlay"])?;
    let delay = f
        .get("delay")
        .and_then(|n| d.int(n, "spec.create.delay"))
        .unwrap_or(30);
    Some(Create {
        enabled: d.opt_bool(&f, "enabled", "spec.create", true),
        delay,
        overlay: f
            .get("overlay")
            .and_then(|n| d.map_template(n, "spec.create.overlay", SCOPE_WITH_RESOURCE)),
    })
}

fn update(d: &mut Decoder, node: &Node) -> Option<Update> {
    let f = d.fields(node, "spec.update", &["patch", "recreate", "never"])?;
    let which = d.one_of(&f, &["patch", "recreate", "never"], "spec.update")?;
    let path = format!("spec.update.{which}");
    let body = f.get(which)?;
    if which == "never" {
        d.fields(body, &path, &[])?;
        return Some(Update::Never);
    }
    let o = d.fields(body, &path, &["delay"])?;
    let delay = o
        .get("delay")
        .and_then(|n| d.int(n, &format!("{path}.delay")))
        .unwrap_or(30);
    Some(if which == "patch" {
        Update::Patch { delay }
    } else {
        Update::Recreate { delay }
    })
}

fn resource_template(d: &mut Decoder, meta: Meta, spec: &Node) -> Option<ResourceTemplate> {
    let f = d.fields(spec, "spec", &["template", "context"])?;
    let node = d.required(&f, "template", "spec")?;
    let t = d.any_map(node, "spec.template")?;
    for key in ["apiVersion", "kind"] {
        if !t.has(key) {
            d.error_hint(
                Code::MissingField,
                node.span,
                format!("`spec.template` must set `{key}`"),
                "a template is a whole Kubernetes object; the function's apiConfig overrides apiVersion, kind, name and namespace",
            );
        }
    }
    let context = match f.get("context") {
        Some(n) => Some(d.any_map(n, "spec.context").map(|_| n.to_json())?),
        None => None,
    };
    Some(ResourceTemplate {
        meta,
        template: node.to_json(),
        context,
    })
}

fn workflow(d: &mut Decoder, meta: Meta, spec: &Node) -> Option<Workflow> {
    let f = d.fields(spec, "spec", &["crdRef", "steps"])?;
    let crd_ref = match f.get("crdRef") {
        Some(n) => {
            let c = d.fields(n, "spec.crdRef", &["apiGroup", "version", "kind"])?;
            let mut get = |key: &str| {
                d.required(&c, key, "spec.crdRef")
                    .and_then(|n| d.literal_string(n, &format!("spec.crdRef.{key}")))
            };
            let (api_group, version, kind) = (get("apiGroup"), get("version"), get("kind"));
            Some(CrdRef {
                api_group: api_group?,
                version: version?,
                kind: kind?,
            })
        }
        None => None,
    };
    let steps_node = d.required(&f, "steps", "spec")?;
    let items = d.seq(steps_node, "spec.steps", MAX_STEPS);
    if items.is_empty() && steps_node.as_seq().is_some() {
        d.error(
            Code::InvalidValue,
            steps_node.span,
            "`spec.steps` needs at least one step",
        );
    }
    let steps = items
        .iter()
        .enumerate()
        .filter_map(|(i, n)| step(d, n, &format!("spec.steps[{i}]")))
        .collect();
    let mut workflow = Workflow {
        meta,
        crd_ref,
        steps,
        graph: Default::default(),
    };
    let mut problems = Vec::new();
    workflow.graph = crate::analysis::step_graph(&workflow, &mut problems);
    workflow.graph.problems = problems;
    Some(workflow)
}

fn logic_ref(d: &mut Decoder, f: &Fields, path: &str) -> Option<LogicRef> {
    let kind_node = d.required(f, "kind", path)?;
    let kind_text = d.literal_string(kind_node, &format!("{path}.kind"))?;
    let Some(kind) = LogicKind::parse(&kind_text) else {
        d.error_hint(
            Code::WrongKind,
            kind_node.span,
            format!("`{path}.kind` is `{kind_text}`"),
            "a step calls a `ResourceFunction`, a `ValueFunction` or a `Workflow`",
        );
        return None;
    };
    let name_node = d.required(f, "name", path)?;
    let name = d.literal_string(name_node, &format!("{path}.name"))?;
    Some(LogicRef {
        kind,
        name,
        location: d.location(name_node.span),
    })
}

fn step(d: &mut Decoder, node: &Node, path: &str) -> Option<Step> {
    let f = d.fields(
        node,
        path,
        &[
            "label",
            "ref",
            "refSwitch",
            "skipIf",
            "forEach",
            "inputs",
            "condition",
            "state",
        ],
    )?;
    let label_node = d.required(&f, "label", path)?;
    let label = d.literal_string(label_node, &format!("{path}.label"))?;
    let label_len = label.chars().count();
    if !(3..=45).contains(&label_len) {
        d.error(
            Code::InvalidValue,
            label_node.span,
            format!("step label `{label}` must be 3 to 45 characters long"),
        );
    }
    if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        d.error_hint(
            Code::InvalidValue,
            label_node.span,
            format!("step label `{label}` may only hold letters, digits and `_`"),
            "other steps read its result as `steps.<label>`, so it must be an identifier",
        );
    }
    let logic = match d.one_of(&f, &["ref", "refSwitch"], path)? {
        "ref" => {
            let r = d.fields(f.get("ref")?, &format!("{path}.ref"), &["kind", "name"])?;
            StepLogic::Ref(logic_ref(d, &r, &format!("{path}.ref"))?)
        }
        _ => ref_switch(d, f.get("refSwitch")?, &format!("{path}.refSwitch"))?,
    };
    let skip_if = match f.get("skipIf") {
        Some(n) => Some(d.expression(n, &format!("{path}.skipIf"), SCOPE_STEP)?),
        None => None,
    };
    let for_each = match f.get("forEach") {
        Some(n) => {
            let at = format!("{path}.forEach");
            let fe = d.fields(n, &at, &["itemIn", "inputKey"])?;
            let item_in = d.required(&fe, "itemIn", &at)?;
            let item_in = d.expression(item_in, &format!("{at}.itemIn"), SCOPE_STEP);
            let input_key = d.required(&fe, "inputKey", &at)?;
            let input_key = d.literal_string(input_key, &format!("{at}.inputKey"))?;
            Some(ForEach {
                item_in: item_in?,
                input_key,
            })
        }
        None => None,
    };
    let inputs = f
        .get("inputs")
        .and_then(|n| d.map_template(n, &format!("{path}.inputs"), SCOPE_STEP));
    let condition = match f.get("condition") {
        Some(n) => {
            let at = format!("{path}.condition");
            let c = d.fields(n, &at, &["type", "name"])?;
            let kind_node = d.required(&c, "type", &at)?;
            let kind = d.literal_string(kind_node, &format!("{at}.type"))?;
            let pascal = kind.len() >= 2
                && kind.starts_with(|c: char| c.is_ascii_uppercase())
                && kind.chars().all(|c| c.is_ascii_alphanumeric());
            if !pascal || kind.len() > 40 {
                d.error_hint(
                    Code::InvalidValue,
                    kind_node.span,
                    format!("condition type `{kind}` must be PascalCase letters and digits, at most 40 long"),
                    "for example `DatabaseReady`",
                );
            }
            let name_node = d.required(&c, "name", &at)?;
            let name = d.literal_string(name_node, &format!("{at}.name"))?;
            if name.chars().count() > 60 {
                d.error(
                    Code::InvalidValue,
                    name_node.span,
                    format!("`{at}.name` may be at most 60 characters long"),
                );
            }
            Some(StepCondition { kind, name })
        }
        None => None,
    };
    let state = match f.get("state") {
        Some(n) => {
            let at = format!("{path}.state");
            let template = d.map_template(n, &at, SCOPE_STATE)?;
            let keys = n.as_map().map_or(0, <[_]>::len);
            if keys > MAX_STATE_KEYS {
                d.error(
                    Code::InvalidValue,
                    n.span,
                    format!("`{at}` has {keys} keys; at most {MAX_STATE_KEYS} are allowed"),
                );
            }
            Some(template)
        }
        None => None,
    };
    Some(Step {
        label,
        label_location: d.location(label_node.span),
        logic,
        skip_if,
        for_each,
        inputs,
        condition,
        state,
        location: d.location(node.span),
    })
}

fn ref_switch(d: &mut Decoder, node: &Node, path: &str) -> Option<StepLogic> {
    let f = d.fields(node, path, &["switchOn", "cases"])?;
    let switch_on = d.required(&f, "switchOn", path)?;
    let switch_on = d.expression(switch_on, &format!("{path}.switchOn"), SCOPE_SWITCH);
    let cases_node = d.required(&f, "cases", path)?;
    let items = d.seq(cases_node, &format!("{path}.cases"), MAX_SWITCH_CASES);
    if items.is_empty() && cases_node.as_seq().is_some() {
        d.error(
            Code::InvalidValue,
            cases_node.span,
            format!("`{path}.cases` needs at least one case"),
        );
    }
    let mut cases: Vec<SwitchCase> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}.cases[{i}]");
        let Some(c) = d.fields(item, &at, &["case", "default", "kind", "name"]) else {
            continue;
        };
        let Some(case_node) = d.required(&c, "case", &at) else {
            continue;
        };
        let case = match &case_node.value {
            // A case matches the switch value's text, so numbers and booleans are accepted as written.
            crate::yaml::Value::Int(i) => i.to_string(),
            _ => match d.literal_string(case_node, &format!("{at}.case")) {
                Some(s) => s,
                None => continue,
            },
        };
        if cases.iter().any(|other| other.case == case) {
            d.error(
                Code::InvalidValue,
                case_node.span,
                format!("case `{case}` appears twice in `{path}.cases`"),
            );
        }
        let default = d.opt_bool(&c, "default", &at, false);
        if default && cases.iter().any(|other| other.default) {
            d.error(
                Code::InvalidValue,
                case_node.span,
                format!("only one case in `{path}.cases` may be the default"),
            );
        }
        if let Some(logic) = logic_ref(d, &c, &at) {
            cases.push(SwitchCase {
                case,
                default,
                logic,
            });
        }
    }
    Some(StepLogic::Switch {
        switch_on: switch_on?,
        cases,
    })
}

fn function_test(d: &mut Decoder, meta: Meta, spec: &Node) -> Option<FunctionTest> {
    let f = d.fields(
        spec,
        "spec",
        &["functionRef", "inputs", "currentResource", "testCases"],
    )?;
    let r = d.required(&f, "functionRef", "spec")?;
    let r = d.fields(r, "spec.functionRef", &["kind", "name"])?;
    let kind_node = d.required(&r, "kind", "spec.functionRef")?;
    let function_kind = match d
        .literal_string(kind_node, "spec.functionRef.kind")?
        .as_str()
    {
        "ResourceFunction" => FunctionKind::ResourceFunction,
        "ValueFunction" => FunctionKind::ValueFunction,
        other => {
            d.error_hint(
                Code::WrongKind,
                kind_node.span,
                format!("a FunctionTest cannot test a `{other}`"),
                "`functionRef.kind` is `ResourceFunction` or `ValueFunction`",
            );
            return None;
        }
    };
    let name_node = d.required(&r, "name", "spec.functionRef")?;
    let function_name = d.literal_string(name_node, "spec.functionRef.name")?;
    let inputs = match f.get("inputs") {
        Some(n) => Some(literal_map(d, n, "spec.inputs")?),
        None => None,
    };
    let current_resource = match f.get("currentResource") {
        Some(n) => Some(literal_map(d, n, "spec.currentResource")?),
        None => None,
    };
    let mut test_cases = Vec::new();
    if let Some(n) = f.get("testCases") {
        for (i, item) in d
            .seq(n, "spec.testCases", MAX_TEST_CASES)
            .iter()
            .enumerate()
        {
            if let Some(case) = test_case(d, item, i, function_kind) {
                test_cases.push(case);
            }
        }
    }
    Some(FunctionTest {
        meta,
        function_kind,
        function_name,
        function_location: d.location(name_node.span),
        inputs_location: f.get("inputs").map(|n| d.location(n.span)),
        inputs,
        current_resource,
        test_cases,
    })
}

/// A WorkflowTest is checked against its schema (which is its CRD), then read as data.
fn workflow_test(d: &mut Decoder, meta: Meta, spec: &Node) -> Option<WorkflowTest> {
    let schema = crate::schema::lookup("WorkflowTest", "spec")?;
    if !d.conform(spec, schema, "spec") {
        return None;
    }
    let value = spec.to_json();
    let list =
        |key: &str, from: &Json| -> Vec<Json> { from[key].as_array().cloned().unwrap_or_default() };
    let workflow_node = spec.get("workflowRef").and_then(|r| r.get("name"))?;
    let cases = spec
        .get("testCases")
        .and_then(Node::as_seq)
        .unwrap_or_default();
    let test_cases = cases
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let case = node.to_json();
            let variant = case["variant"].as_bool().unwrap_or(false);
            let label = case["label"]
                .as_str()
                .map_or_else(|| format!("Test Case {}", i + 1), str::to_string);
            WorkflowTestCase {
                label: if variant && !label.contains("variant") {
                    format!("[variant] {label}")
                } else {
                    label
                },
                variant,
                skip: case["skip"].as_bool().unwrap_or(false),
                parent_overrides: Some(case["parentOverrides"].clone()).filter(|v| !v.is_null()),
                apply_resources: list("applyResources", &case),
                overlay_resources: list("overlayResources", &case),
                delete_resources: list("deleteResources", &case),
                expect_resources: list("expectResources", &case),
                expect_resources_exact: list("expectResourcesExact", &case),
                expect_missing: list("expectMissing", &case),
                expect_status: Some(case["expectStatus"].clone()).filter(|v| !v.is_null()),
                expect_steps: case["expectSteps"]
                    .as_object()
                    .map(|steps| {
                        steps
                            .iter()
                            .map(|(label, e)| {
                                let step = ExpectedStep {
                                    outcome: e["outcome"].as_str().unwrap_or("").to_string(),
                                    message_contains: e["messageContains"]
                                        .as_str()
                                        .map(str::to_string),
                                };
                                (label.clone(), step)
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                expect_outcome: case["expectOutcome"].as_str().map(str::to_string),
                expect_no_writes: case["expectNoWrites"].as_bool().unwrap_or(false),
                location: d.location(node.span),
            }
        })
        .collect();
    Some(WorkflowTest {
        meta,
        workflow_name: workflow_node.as_str()?.to_string(),
        workflow_location: d.location(workflow_node.span),
        parent: value["parent"].clone(),
        current_resources: list("currentResources", &value),
        test_cases,
    })
}

/// Test data is literal: an `=` string in it is data, but almost always a mistake, so say so.
fn literal_map(d: &mut Decoder, node: &Node, path: &str) -> Option<Json> {
    d.any_map(node, path)?;
    Some(node.to_json())
}

fn test_case(d: &mut Decoder, node: &Node, index: usize, kind: FunctionKind) -> Option<TestCase> {
    const EXPECTATIONS: [&str; 4] = [
        "expectResource",
        "expectDelete",
        "expectReturn",
        "expectOutcome",
    ];
    let path = format!("spec.testCases[{index}]");
    let f = d.fields(
        node,
        &path,
        &[
            "label",
            "variant",
            "skip",
            "inputOverrides",
            "currentResource",
            "overlayResource",
            "expectResource",
            "expectDelete",
            "expectReturn",
            "expectOutcome",
        ],
    )?;
    let variant = d.opt_bool(&f, "variant", &path, false);
    let label = match f.get("label") {
        Some(n) => d.string(n, &format!("{path}.label"))?,
        None => format!("Test Case {}", index + 1),
    };
    let label = if variant && !label.contains("variant") {
        format!("[variant] {label}")
    } else {
        label
    };
    let input_overrides = match f.get("inputOverrides") {
        Some(n) => Some(literal_map(d, n, &format!("{path}.inputOverrides"))?),
        None => None,
    };
    let current_resource = match f.get("currentResource") {
        Some(n) => Some(literal_map(d, n, &format!("{path}.currentResource"))?),
        None => None,
    };
    let overlay_resource = f
        .get("overlayResource")
        .and_then(|n| d.map_template(n, &format!("{path}.overlayResource"), SCOPE_TEST_OVERLAY));
    let which = d.one_of(&f, &EXPECTATIONS, &path)?;
    let expect_node = f.get(which)?;
    let at = format!("{path}.{which}");
    if matches!(which, "expectResource" | "expectDelete") && kind == FunctionKind::ValueFunction {
        d.error(
            Code::WrongKind,
            expect_node.span,
            format!("`{which}` is only valid for ResourceFunction tests"),
        );
        return None;
    }
    let expectation = match which {
        "expectDelete" => Expectation::Delete(d.bool(expect_node, &at)?),
        "expectOutcome" => Expectation::Outcome(expected_outcome(d, expect_node, &at)?),
        _ => {
            let value = literal_map(d, expect_node, &at)?;
            if value.as_object().is_some_and(serde_json::Map::is_empty) {
                d.error(
                    Code::InvalidValue,
                    expect_node.span,
                    format!("`{at}` may not be empty"),
                );
            }
            if which == "expectResource" {
                Expectation::Resource(value)
            } else {
                Expectation::Return(value)
            }
        }
    };
    Some(TestCase {
        label,
        variant,
        skip: d.opt_bool(&f, "skip", &path, false),
        input_overrides,
        current_resource,
        overlay_resource,
        expectation,
        expectation_location: d.location(expect_node.span),
        location: d.location(node.span),
    })
}

fn expected_outcome(d: &mut Decoder, node: &Node, path: &str) -> Option<ExpectedOutcome> {
    const OUTCOMES: [&str; 5] = ["ok", "skip", "depSkip", "retry", "permFail"];
    // `ok: null` is how some write "any Ok", so keep it present.
    let entries = node.as_map().unwrap_or_default();
    let ok_null = entries.len() == 1 && entries[0].0.text == "ok";
    let f = d.fields(node, path, &OUTCOMES)?;
    let which = if ok_null {
        "ok"
    } else {
        d.one_of(&f, &OUTCOMES, path)?
    };
    let at = format!("{path}.{which}");
    let message = |d: &mut Decoder, allowed: &[&str]| -> Option<(String, Fields<'_>)> {
        let body = f.get(which)?;
        let o = d.fields(body, &at, allowed)?;
        let m = d.required(&o, "message", &at)?;
        Some((d.string(m, &format!("{at}.message"))?, o))
    };
    Some(match which {
        "ok" => ExpectedOutcome::Ok,
        "retry" => {
            let (message, o) = message(d, &["message", "delay"])?;
            let delay = d
                .required(&o, "delay", &at)
                .and_then(|n| d.int(n, &format!("{at}.delay")))?;
            ExpectedOutcome::Retry { message, delay }
        }
        "skip" => ExpectedOutcome::Skip {
            message: message(d, &["message"])?.0,
        },
        "depSkip" => ExpectedOutcome::DepSkip {
            message: message(d, &["message"])?.0,
        },
        _ => ExpectedOutcome::PermFail {
            message: message(d, &["message"])?.0,
        },
    })
}
