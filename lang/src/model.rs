//! The six Koreo kinds as typed values, read from documents that `Decoder::conform` checked
//! against their schema (`schema.rs`, which their CRDs are generated from).

use std::sync::Arc;

use serde_json::Value as Json;

use crate::codes::Code;
use crate::decode::{Decoder, Path};
use crate::expr::{Expr, ExprCache, Template};
use crate::source::{Diagnostic, FileRef, Location};
use crate::yaml::Node;

pub use crate::schema::KINDS;
pub const API_VERSION: &str = "koreo.dev/v1beta1";

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
        api_version(&self.api_group, &self.version)
    }
}

/// `group/version`, or just `version` for the core group.
pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// The group and version of an `apiVersion` (`apps/v1`; the core group's `v1` has none).
pub fn group_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
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

impl FunctionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionKind::ResourceFunction => "ResourceFunction",
            FunctionKind::ValueFunction => "ValueFunction",
        }
    }
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

/// Decodes one document of a Koreo kind: checked against its schema (which is its CRD; every
/// structural error is reported there), then read, forgivingly (a value of the wrong shape is
/// skipped: `conform` reported it). Returns `None` when it has errors (all
/// reported).
pub fn decode(
    kind: &str,
    root: &Node,
    file: &FileRef,
    diags: &mut Vec<Diagnostic>,
    cache: &ExprCache,
) -> Option<Definition> {
    let errors_before = diags.iter().filter(|d| d.is_error()).count();
    let mut d = Decoder {
        kind,
        file,
        diags,
        cache,
    };
    // Read on after structural errors, so that expression errors show up at the same time; a
    // definition with any error is dropped below.
    d.conform(root, crate::schema::kind(kind)?, &Path::Root);
    let meta = decode_meta(&mut d, root)?;
    let spec = at(root, "spec")?;
    let definition = match kind {
        "ValueFunction" => Definition::ValueFunction(Arc::new(value_function(&mut d, meta, spec)?)),
        "ResourceFunction" => {
            Definition::ResourceFunction(Arc::new(resource_function(&mut d, meta, spec)?))
        }
        "ResourceTemplate" => Definition::ResourceTemplate(Arc::new(ResourceTemplate {
            meta,
            template: at(spec, "template")?.to_json(),
            context: at(spec, "context").map(Node::to_json),
        })),
        "Workflow" => Definition::Workflow(Arc::new(workflow(&mut d, meta, spec)?)),
        "FunctionTest" => Definition::FunctionTest(Arc::new(function_test(&mut d, meta, spec)?)),
        "WorkflowTest" => Definition::WorkflowTest(Arc::new(workflow_test(&mut d, meta, spec)?)),
        _ => return None,
    };
    let errors_after = d.diags.iter().filter(|d| d.is_error()).count();
    (errors_after == errors_before).then_some(definition)
}

// Reading a document that conforms to its schema: the shapes are known, only values are read.

/// The value at `key`, unless absent or `null` (which the API server prunes).
fn at<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    node.get(key)
        .filter(|n| n.value != crate::yaml::Value::Null)
}

fn text(node: &Node, key: &str) -> Option<String> {
    at(node, key).and_then(Node::as_str).map(str::to_string)
}

fn flag(node: &Node, key: &str, default: bool) -> bool {
    match at(node, key).map(|n| &n.value) {
        Some(crate::yaml::Value::Bool(b)) => *b,
        _ => default,
    }
}

fn number(node: &Node, key: &str, default: i64) -> i64 {
    match at(node, key).map(|n| &n.value) {
        Some(crate::yaml::Value::Int(i)) => *i,
        _ => default,
    }
}

fn items<'n>(node: &'n Node, key: &str) -> &'n [Node] {
    at(node, key).and_then(Node::as_seq).unwrap_or_default()
}

/// Which of `keys` is present (the schema made sure exactly one is).
fn which<'k>(node: &Node, keys: &[&'k str]) -> Option<&'k str> {
    keys.iter().copied().find(|k| at(node, k).is_some())
}

fn decode_meta(d: &mut Decoder, root: &Node) -> Option<Meta> {
    let metadata = at(root, "metadata")?;
    let name_node = at(metadata, "name")?;
    let name = name_node.as_str()?.to_string();
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
    let namespace = text(metadata, "namespace");
    if let (Some(namespace), Some(n)) = (&namespace, at(metadata, "namespace"))
        && !is_dns_label(namespace)
    {
        d.error(
            Code::InvalidValue,
            n.span,
            format!("`metadata.namespace` `{namespace}` is not a namespace name: at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit"),
        );
    }
    Some(Meta {
        name,
        namespace,
        location: d.location(root.span),
        name_location: d.location(name_node.span),
        labels: at(metadata, "labels").map_or(Json::Null, Node::to_json),
        annotations: at(metadata, "annotations").map_or(Json::Null, Node::to_json),
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
    Some(ValueFunction {
        meta,
        preconditions: conditions(d, spec, "spec.preconditions", SCOPE_VF_INPUTS)?,
        locals: at(spec, "locals").map(|n| d.template(n, "spec.locals", SCOPE_VF_INPUTS)),
        ret: at(spec, "return").map(|n| d.template(n, "spec.return", SCOPE_VF_RETURN)),
    })
}

/// `preconditions` or `postconditions` of `spec` (the key is the last part of `path`).
fn conditions(d: &mut Decoder, spec: &Node, path: &str, scope: &[&str]) -> Option<Vec<Condition>> {
    let key = path.rsplit('.').next().unwrap_or(path);
    let mut out = Vec::new();
    for (i, node) in items(spec, key).iter().enumerate() {
        let path = format!("{path}[{i}]");
        let assert = d.condition(at(node, "assert")?, &format!("{path}.assert"), scope);
        let kind = which(node, &["ok", "skip", "depSkip", "retry", "permFail"])?;
        let body = node.get(kind)?;
        let message = |d: &mut Decoder| {
            at(body, "message").map(|m| d.template(m, &format!("{path}.{kind}.message"), scope))
        };
        let outcome = match kind {
            "ok" => ConditionOutcome::Ok,
            "retry" => ConditionOutcome::Retry {
                message: message(d)?,
                delay: number(body, "delay", 0),
            },
            "skip" => ConditionOutcome::Skip {
                message: message(d)?,
            },
            "depSkip" => ConditionOutcome::DepSkip {
                message: message(d)?,
            },
            _ => ConditionOutcome::PermFail {
                message: message(d)?,
            },
        };
        out.push(Condition {
            assert: assert?,
            outcome,
        });
    }
    Some(out)
}

fn resource_function(d: &mut Decoder, meta: Meta, spec: &Node) -> Option<ResourceFunction> {
    let preconditions = conditions(d, spec, "spec.preconditions", SCOPE_INPUTS);
    let locals = at(spec, "locals").map(|n| d.template(n, "spec.locals", SCOPE_INPUTS));
    let api_config = api_config(d, at(spec, "apiConfig")?);
    let target = match (at(spec, "resource"), at(spec, "resourceTemplateRef")) {
        (Some(n), _) => TargetSource::Inline(d.template(n, "spec.resource", SCOPE_INPUTS_LOCALS)),
        (None, Some(r)) => TargetSource::TemplateRef(d.template(
            at(r, "name")?,
            "spec.resourceTemplateRef.name",
            SCOPE_INPUTS_LOCALS,
        )),
        (None, None) => return None,
    };
    let overlays = items(spec, "overlays")
        .iter()
        .enumerate()
        .map(|(i, n)| overlay(d, n, &format!("spec.overlays[{i}]")))
        .collect::<Option<Vec<_>>>();
    let create = at(spec, "create");
    let create = Create {
        enabled: create.is_none_or(|c| flag(c, "enabled", true)),
        delay: create.map_or(30, |c| number(c, "delay", 30)),
        overlay: create
            .and_then(|c| at(c, "overlay"))
            .map(|n| d.template(n, "spec.create.overlay", SCOPE_WITH_RESOURCE)),
    };
    let update = match at(spec, "update") {
        Some(u) => match which(u, &["patch", "recreate", "never"])? {
            "patch" => Update::Patch {
                delay: number(u.get("patch")?, "delay", 30),
            },
            "recreate" => Update::Recreate {
                delay: number(u.get("recreate")?, "delay", 30),
            },
            _ => Update::Never,
        },
        None => Update::Patch { delay: 30 },
    };
    let delete = match at(spec, "delete").and_then(|n| which(n, &["abandon", "destroy"])) {
        Some("destroy") => DeletePolicy::Destroy,
        _ => DeletePolicy::Abandon,
    };
    let postconditions = conditions(d, spec, "spec.postconditions", SCOPE_WITH_RESOURCE);
    let ret = at(spec, "return").map(|n| d.template(n, "spec.return", SCOPE_WITH_RESOURCE));
    Some(ResourceFunction {
        meta,
        preconditions: preconditions?,
        locals,
        api_config: api_config?,
        target,
        overlays: overlays?,
        create,
        update,
        delete,
        postconditions: postconditions?,
        ret,
    })
}

fn api_config(d: &mut Decoder, node: &Node) -> Option<ApiConfig> {
    let path = "spec.apiConfig";
    Some(ApiConfig {
        api_version: text(node, "apiVersion")?,
        kind: text(node, "kind")?,
        plural: text(node, "plural"),
        namespaced: flag(node, "namespaced", true),
        owned: flag(node, "owned", true),
        readonly: flag(node, "readonly", false),
        delete_if_exists: flag(node, "deleteIfExists", false),
        name: d.template(
            at(node, "name")?,
            &format!("{path}.name"),
            SCOPE_INPUTS_LOCALS,
        ),
        namespace: at(node, "namespace")
            .map(|n| d.template(n, &format!("{path}.namespace"), SCOPE_INPUTS_LOCALS)),
    })
}

fn overlay(d: &mut Decoder, node: &Node, path: &str) -> Option<Overlay> {
    let skip_if = match at(node, "skipIf") {
        Some(n) => Some(d.condition(n, &format!("{path}.skipIf"), SCOPE_INPUTS_LOCALS)?),
        None => None,
    };
    let source = match (at(node, "overlay"), at(node, "overlayRef")) {
        (Some(n), _) => {
            OverlaySource::Inline(d.template(n, &format!("{path}.overlay"), SCOPE_WITH_RESOURCE))
        }
        (None, Some(r)) => {
            let name_node = at(r, "name")?;
            OverlaySource::ValueFunction {
                name: name_node.as_str()?.to_string(),
                name_location: d.location(name_node.span),
                inputs: at(node, "inputs")
                    .map(|n| d.template(n, &format!("{path}.inputs"), SCOPE_INPUTS_LOCALS)),
            }
        }
        (None, None) => return None,
    };
    Some(Overlay { source, skip_if })
}

fn workflow(d: &mut Decoder, meta: Meta, spec: &Node) -> Option<Workflow> {
    let crd_ref = match at(spec, "crdRef") {
        Some(c) => Some(CrdRef {
            api_group: text(c, "apiGroup")?,
            version: text(c, "version")?,
            kind: text(c, "kind")?,
        }),
        None => None,
    };
    let steps = items(spec, "steps")
        .iter()
        .enumerate()
        .map(|(i, n)| step(d, n, &format!("spec.steps[{i}]")))
        .collect::<Vec<_>>();
    let mut workflow = Workflow {
        meta,
        crd_ref,
        steps: steps.into_iter().collect::<Option<_>>()?,
        graph: Default::default(),
    };
    let mut problems = Vec::new();
    workflow.graph = crate::analysis::step_graph(&workflow, &mut problems);
    workflow.graph.problems = problems;
    Some(workflow)
}

fn logic_ref(d: &mut Decoder, node: &Node) -> Option<LogicRef> {
    let name_node = at(node, "name")?;
    Some(LogicRef {
        kind: LogicKind::parse(&text(node, "kind")?)?,
        name: name_node.as_str()?.to_string(),
        location: d.location(name_node.span),
    })
}

fn step(d: &mut Decoder, node: &Node, path: &str) -> Option<Step> {
    let label_node = at(node, "label")?;
    let logic = match (at(node, "ref"), at(node, "refSwitch")) {
        (Some(r), _) => StepLogic::Ref(logic_ref(d, r)?),
        (None, Some(s)) => {
            let at_switch = format!("{path}.refSwitch");
            let switch_on = d.expression(
                at(s, "switchOn")?,
                &format!("{at_switch}.switchOn"),
                SCOPE_SWITCH,
            );
            let cases = items(s, "cases")
                .iter()
                .map(|c| {
                    let case = at(c, "case")?;
                    Some(SwitchCase {
                        // A case matches the switch value's text, so numbers are read as written.
                        case: match &case.value {
                            crate::yaml::Value::Int(i) => i.to_string(),
                            _ => case.as_str()?.to_string(),
                        },
                        default: flag(c, "default", false),
                        logic: logic_ref(d, c)?,
                    })
                })
                .collect::<Option<Vec<_>>>();
            StepLogic::Switch {
                switch_on: switch_on?,
                cases: cases?,
            }
        }
        (None, None) => return None,
    };
    let skip_if = match at(node, "skipIf") {
        Some(n) => Some(d.condition(n, &format!("{path}.skipIf"), SCOPE_STEP)?),
        None => None,
    };
    let for_each = match at(node, "forEach") {
        Some(f) => Some(ForEach {
            item_in: d.expression(
                at(f, "itemIn")?,
                &format!("{path}.forEach.itemIn"),
                SCOPE_STEP,
            )?,
            input_key: text(f, "inputKey")?,
        }),
        None => None,
    };
    Some(Step {
        label: label_node.as_str()?.to_string(),
        label_location: d.location(label_node.span),
        logic,
        skip_if,
        for_each,
        inputs: at(node, "inputs").map(|n| d.template(n, &format!("{path}.inputs"), SCOPE_STEP)),
        condition: at(node, "condition").and_then(|c| {
            Some(StepCondition {
                kind: text(c, "type")?,
                name: text(c, "name")?,
            })
        }),
        state: at(node, "state").map(|n| d.template(n, &format!("{path}.state"), SCOPE_STATE)),
        location: d.location(node.span),
    })
}

fn function_test(d: &mut Decoder, meta: Meta, spec: &Node) -> Option<FunctionTest> {
    let function_ref = at(spec, "functionRef")?;
    let function_kind = match text(function_ref, "kind")?.as_str() {
        "ResourceFunction" => FunctionKind::ResourceFunction,
        _ => FunctionKind::ValueFunction,
    };
    let name_node = at(function_ref, "name")?;
    let test_cases = items(spec, "testCases")
        .iter()
        .enumerate()
        .map(|(i, n)| test_case(d, n, i, function_kind))
        .collect::<Vec<_>>();
    Some(FunctionTest {
        meta,
        function_kind,
        function_name: name_node.as_str()?.to_string(),
        function_location: d.location(name_node.span),
        inputs_location: at(spec, "inputs").map(|n| d.location(n.span)),
        inputs: at(spec, "inputs").map(Node::to_json),
        current_resource: at(spec, "currentResource").map(Node::to_json),
        test_cases: test_cases.into_iter().collect::<Option<_>>()?,
    })
}

fn test_case(d: &mut Decoder, node: &Node, index: usize, kind: FunctionKind) -> Option<TestCase> {
    let path = format!("spec.testCases[{index}]");
    let variant = flag(node, "variant", false);
    let label = text(node, "label").unwrap_or_else(|| format!("Test Case {}", index + 1));
    let expected = which(
        node,
        &[
            "expectResource",
            "expectDelete",
            "expectReturn",
            "expectOutcome",
        ],
    )?;
    let expect_node = node.get(expected)?;
    if matches!(expected, "expectResource" | "expectDelete") && kind == FunctionKind::ValueFunction
    {
        d.error(
            Code::WrongKind,
            expect_node.span,
            format!("`{expected}` is only valid for ResourceFunction tests"),
        );
        return None;
    }
    let expectation = match expected {
        "expectDelete" => Expectation::Delete(flag(node, "expectDelete", false)),
        "expectOutcome" => Expectation::Outcome(expected_outcome(expect_node)?),
        "expectResource" => Expectation::Resource(expect_node.to_json()),
        _ => Expectation::Return(expect_node.to_json()),
    };
    Some(TestCase {
        label: if variant && !label.contains("variant") {
            format!("[variant] {label}")
        } else {
            label
        },
        variant,
        skip: flag(node, "skip", false),
        input_overrides: at(node, "inputOverrides").map(Node::to_json),
        current_resource: at(node, "currentResource").map(Node::to_json),
        overlay_resource: at(node, "overlayResource")
            .map(|n| d.template(n, &format!("{path}.overlayResource"), SCOPE_TEST_OVERLAY)),
        expectation,
        expectation_location: d.location(expect_node.span),
        location: d.location(node.span),
    })
}

fn expected_outcome(node: &Node) -> Option<ExpectedOutcome> {
    // `ok: null` is how some write "any Ok": present, even as null.
    if node.get("ok").is_some() {
        return Some(ExpectedOutcome::Ok);
    }
    let kind = which(node, &["skip", "depSkip", "retry", "permFail"])?;
    let body = node.get(kind)?;
    let message = || text(body, "message").unwrap_or_default();
    Some(match kind {
        "retry" => ExpectedOutcome::Retry {
            message: message(),
            delay: number(body, "delay", 0),
        },
        "skip" => ExpectedOutcome::Skip { message: message() },
        "depSkip" => ExpectedOutcome::DepSkip { message: message() },
        _ => ExpectedOutcome::PermFail { message: message() },
    })
}

/// A WorkflowTest is read as data.
fn workflow_test(d: &mut Decoder, meta: Meta, spec: &Node) -> Option<WorkflowTest> {
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
