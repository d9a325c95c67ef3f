//! Pure evaluation of functions and workflow steps. Nothing here talks to a cluster: a
//! ResourceFunction is evaluated in phases, and the caller (the test runner or the runtime) does
//! the reads and writes between them.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value as Json, json};

use crate::compare::{
    LAST_APPLIED_ANNOTATION, as_the_server_stores, first_difference, lists_to_replace,
    strip_directives,
};
use crate::expr::{EvalError, Scope, Template, quoted};
use crate::model::{
    ApiConfig, Condition, ConditionOutcome, OverlaySource, ResourceFunction, ResourceTemplate,
    Step, StepLogic, TargetSource, Update, ValueFunction,
};
use crate::source::Location;

/// Default delay of a `Retry` that does not say, in seconds.
pub const DEFAULT_RETRY_DELAY: i64 = 60;

/// The result of running a function, a step or a workflow.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Ok(Json),
    Skip {
        message: String,
        location: Option<Location>,
    },
    DepSkip {
        message: String,
        location: Option<Location>,
    },
    Retry {
        message: String,
        delay: i64,
        location: Option<Location>,
    },
    PermFail {
        message: String,
        location: Option<Location>,
    },
}

impl Outcome {
    pub fn perm_fail(message: impl Into<String>, location: Option<Location>) -> Outcome {
        Outcome::PermFail {
            message: message.into(),
            location,
        }
    }

    pub fn retry(message: impl Into<String>, delay: i64, location: Option<Location>) -> Outcome {
        Outcome::Retry {
            message: message.into(),
            delay,
            location,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Ok(_) => "Ok",
            Outcome::Skip { .. } => "Skip",
            Outcome::DepSkip { .. } => "DepSkip",
            Outcome::Retry { .. } => "Retry",
            Outcome::PermFail { .. } => "PermFail",
        }
    }

    pub fn message(&self) -> Option<&str> {
        match self {
            Outcome::Ok(_) => None,
            Outcome::Skip { message, .. }
            | Outcome::DepSkip { message, .. }
            | Outcome::Retry { message, .. }
            | Outcome::PermFail { message, .. } => Some(message),
        }
    }

    pub fn location(&self) -> Option<&Location> {
        match self {
            Outcome::Ok(_) => None,
            Outcome::Skip { location, .. }
            | Outcome::DepSkip { location, .. }
            | Outcome::Retry { location, .. }
            | Outcome::PermFail { location, .. } => location.as_ref(),
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok(_))
    }

    /// How outcomes rank when combined: PermFail > Retry > Ok > Skip > DepSkip.
    fn rank(&self) -> u8 {
        match self {
            Outcome::PermFail { .. } => 4,
            Outcome::Retry { .. } => 3,
            Outcome::Ok(_) => 2,
            Outcome::Skip { .. } => 1,
            Outcome::DepSkip { .. } => 0,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok(v) => write!(f, "Ok({v})"),
            Outcome::Retry { message, delay, .. } => {
                write!(f, "Retry(delay={delay}, message={message})")
            }
            other => write!(
                f,
                "{}(message={})",
                other.name(),
                other.message().unwrap_or("")
            ),
        }
    }
}

/// How the message of an outcome caused by an expression that failed to evaluate begins.
const EXPRESSION_ERROR: &str = "error evaluating `=";

impl From<EvalError> for Outcome {
    fn from(e: EvalError) -> Outcome {
        let message = format!("{EXPRESSION_ERROR}{}`: {}", e.source, e.message);
        Outcome::perm_fail(message, Some(e.location))
    }
}

impl Outcome {
    /// Whether an expression failing to evaluate caused this outcome.
    pub fn is_expression_error(&self) -> bool {
        self.message()
            .is_some_and(|m| m.starts_with(EXPRESSION_ERROR))
    }
}

/// Combines outcomes of parts run together. The highest-ranked kind wins; failures and retries
/// of the same kind join their messages (a Retry takes the longest delay); Oks give the list of
/// values; nothing at all is a Skip.
pub fn combine(outcomes: Vec<Outcome>) -> Outcome {
    let Some(top) = outcomes.iter().map(Outcome::rank).max() else {
        return Outcome::Skip {
            message: "nothing to run".into(),
            location: None,
        };
    };
    let winners: Vec<Outcome> = outcomes.into_iter().filter(|o| o.rank() == top).collect();
    match &winners[0] {
        Outcome::Ok(_) => Outcome::Ok(Json::Array(
            winners
                .into_iter()
                .map(|o| {
                    if let Outcome::Ok(v) = o {
                        v
                    } else {
                        Json::Null
                    }
                })
                .collect(),
        )),
        Outcome::Retry { location, .. } => {
            let delay = winners
                .iter()
                .filter_map(|o| {
                    if let Outcome::Retry { delay, .. } = o {
                        Some(*delay)
                    } else {
                        None
                    }
                })
                .max();
            Outcome::Retry {
                message: join_messages(&winners),
                delay: delay.unwrap_or(DEFAULT_RETRY_DELAY),
                location: location.clone(),
            }
        }
        Outcome::PermFail { location, .. } => Outcome::PermFail {
            message: join_messages(&winners),
            location: location.clone(),
        },
        first => first.clone(),
    }
}

fn join_messages(outcomes: &[Outcome]) -> String {
    outcomes
        .iter()
        .filter_map(Outcome::message)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs predicates in order. The first whose `assert` is false decides: `ok` stops checking and
/// passes, the others give their outcome. Later predicates are not evaluated, so an earlier one
/// can guard them.
pub fn check_conditions(conditions: &[Condition], scope: &Scope) -> Option<Outcome> {
    for condition in conditions {
        match condition.assert.eval_bool(scope) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => return Some(e.into()),
        }
        let location = Some(condition.assert.location.clone());
        let message = |t: &Template| -> Result<String, EvalError> {
            Ok(match t.eval(scope)? {
                Json::String(s) => s,
                other => other.to_string(),
            })
        };
        let outcome = match &condition.outcome {
            ConditionOutcome::Ok => return None,
            ConditionOutcome::Skip { message: m } => {
                message(m).map(|message| Outcome::Skip { message, location })
            }
            ConditionOutcome::DepSkip { message: m } => {
                message(m).map(|message| Outcome::DepSkip { message, location })
            }
            ConditionOutcome::Retry { message: m, delay } => {
                message(m).map(|message| Outcome::Retry {
                    message,
                    delay: *delay,
                    location,
                })
            }
            ConditionOutcome::PermFail { message: m } => {
                message(m).map(|message| Outcome::PermFail { message, location })
            }
        };
        return Some(outcome.unwrap_or_else(Outcome::from));
    }
    None
}

fn eval_locals(locals: Option<&Template>, scope: &Scope) -> Result<Json, Outcome> {
    match locals {
        None => Ok(Json::Object(Map::new())),
        Some(t) => Ok(t.eval(scope)?),
    }
}

/// Runs a ValueFunction. With a `resource`, `return` overlays onto it (how overlay functions and
/// tests with a current resource use it).
pub fn run_value_function(f: &ValueFunction, inputs: &Json, resource: Option<&Json>) -> Outcome {
    let mut base = Scope::new().with("inputs", inputs);
    if let Some(resource) = resource {
        base.bind("resource", resource);
    }
    if let Some(outcome) = check_conditions(&f.preconditions, &base) {
        return outcome;
    }
    let Some(ret) = &f.ret else {
        return Outcome::Ok(Json::Null);
    };
    let locals = match eval_locals(f.locals.as_ref(), &base) {
        Ok(l) => l,
        Err(outcome) => return outcome,
    };
    let mut scope = base.child();
    scope.bind("locals", &locals);
    let mut value = resource.cloned().unwrap_or_else(|| json!({}));
    match ret.overlay_onto(&mut value, &scope) {
        Ok(()) => Outcome::Ok(value),
        Err(e) => e.into(),
    }
}

/// What a ResourceFunction manages: the object's identity.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceId {
    pub api_version: String,
    pub kind: String,
    pub plural: Option<String>,
    pub name: String,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
}

impl fmt::Display for ResourceId {
    /// Koreo's `Kind:namespace:name` (`Kind:name` when cluster-scoped).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}:{}:{}", self.kind, ns, self.name),
            None => write!(f, "{}:{}", self.kind, self.name),
        }
    }
}

/// Looks up what a ResourceFunction refers to by name.
pub trait Definitions {
    fn resource_template(&self, name: &str) -> Option<Arc<ResourceTemplate>>;
    fn value_function(&self, name: &str) -> Option<Arc<ValueFunction>>;
}

/// A ResourceFunction after its preconditions, locals and target: ready to compare with the
/// object in the cluster.
#[derive(Debug)]
pub struct Prepared {
    pub id: ResourceId,
    pub locals: Json,
    /// What the object must look like (directives kept for comparison).
    pub target: Json,
}

/// Phase 1: preconditions, locals, the object's identity and the target.
pub fn prepare_resource(
    f: &ResourceFunction,
    inputs: &Json,
    defs: &dyn Definitions,
) -> Result<Prepared, Outcome> {
    let scope = Scope::new().with("inputs", inputs);
    if let Some(outcome) = check_conditions(&f.preconditions, &scope) {
        return Err(outcome);
    }
    let locals = eval_locals(f.locals.as_ref(), &scope)?;
    let id = {
        let mut scope = scope.child();
        scope.bind("locals", &locals);
        resource_id(&f.api_config, &scope)?
    };
    let needs_target = !f.api_config.readonly && !f.api_config.delete_if_exists;
    let target = if needs_target {
        materialize(f, &id, inputs, &locals, defs)?
    } else {
        json!({})
    };
    Ok(Prepared { id, locals, target })
}

fn string_of(t: &Template, scope: &Scope, what: &str) -> Result<String, Outcome> {
    match t.eval(scope)? {
        Json::String(s) if !s.is_empty() => Ok(s),
        other => Err(Outcome::perm_fail(
            format!(
                "`{what}` must evaluate to a non-empty string, got {}",
                quoted(&other)
            ),
            t.expressions().first().map(|e| e.location.clone()),
        )),
    }
}

fn resource_id(api: &ApiConfig, scope: &Scope) -> Result<ResourceId, Outcome> {
    let name = string_of(&api.name, scope, "spec.apiConfig.name")?;
    let namespace = match (&api.namespace, api.namespaced) {
        (Some(ns), true) => Some(string_of(ns, scope, "spec.apiConfig.namespace")?),
        _ => None,
    };
    Ok(ResourceId {
        api_version: api.api_version.clone(),
        kind: api.kind.clone(),
        plural: api.plural.clone(),
        name,
        namespace,
    })
}

/// The identity always wins over what a template or overlay says.
fn force_identity(target: &mut Json, id: &ResourceId) {
    if !target.is_object() {
        *target = json!({});
    }
    target["apiVersion"] = json!(id.api_version);
    target["kind"] = json!(id.kind);
    if !target["metadata"].is_object() {
        target["metadata"] = json!({});
    }
    target["metadata"]["name"] = json!(id.name);
    if let Some(ns) = &id.namespace {
        target["metadata"]["namespace"] = json!(ns);
    }
}

fn materialize(
    f: &ResourceFunction,
    id: &ResourceId,
    inputs: &Json,
    locals: &Json,
    defs: &dyn Definitions,
) -> Result<Json, Outcome> {
    let mut scope = Scope::new().with("inputs", inputs);
    scope.bind("locals", locals);
    let mut target = match &f.target {
        TargetSource::Inline(t) => t.eval(&scope)?,
        TargetSource::TemplateRef(name) => {
            let name = string_of(name, &scope, "spec.resourceTemplateRef.name")?;
            match defs.resource_template(&name) {
                Some(t) => t.template.clone(),
                None => {
                    return Err(Outcome::retry(
                        format!("ResourceTemplate:{name} not found."),
                        30,
                        None,
                    ));
                }
            }
        }
    };
    force_identity(&mut target, id);
    for overlay in &f.overlays {
        if let Some(skip_if) = &overlay.skip_if
            && skip_if.eval_bool(&scope)?
        {
            continue;
        }
        match &overlay.source {
            OverlaySource::Inline(t) => {
                let current = target.clone();
                let mut overlay_scope = Scope::new().with("inputs", inputs);
                overlay_scope.bind("locals", locals);
                overlay_scope.bind("resource", &current);
                t.overlay_onto(&mut target, &overlay_scope)?;
            }
            OverlaySource::ValueFunction {
                name,
                inputs: vf_inputs,
                ..
            } => {
                let Some(vf) = defs.value_function(name) else {
                    return Err(Outcome::retry(
                        format!("ValueFunction:{name} not found."),
                        30,
                        None,
                    ));
                };
                let vf_inputs = match vf_inputs {
                    Some(t) => t.eval(&scope)?,
                    None => json!({}),
                };
                match run_value_function(&vf, &vf_inputs, Some(&target)) {
                    Outcome::Ok(value) => target = value,
                    other => return Err(other),
                }
            }
        }
        force_identity(&mut target, id);
    }
    Ok(target)
}

/// What the caller must do to the cluster next.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Nothing to write: finish with this object.
    Finish(Json),
    /// Create the object (directives stripped, last-applied annotation added).
    Create {
        body: Json,
        owned: bool,
        then: Outcome,
    },
    /// Patch the object with the body, after replacing the lists it holds differently (JSON
    /// pointer and the list as the target has it; see `compare::lists_to_replace`).
    Patch {
        body: Json,
        owned: bool,
        lists: Vec<(String, Json)>,
        then: Outcome,
    },
    /// Delete the object (to recreate it, or because `deleteIfExists`).
    Delete { then: Outcome },
    /// Nothing to write, but not done: report this outcome.
    Wait(Outcome),
}

/// Phase 2: compares the target with the live object (if any) and decides what to do.
pub fn decide(
    f: &ResourceFunction,
    inputs: &Json,
    prepared: &Prepared,
    live: Option<&Json>,
) -> Result<Action, Outcome> {
    let api = &f.api_config;
    let id = &prepared.id;
    if api.delete_if_exists {
        return Ok(match live {
            Some(_) => Action::Delete {
                then: Outcome::retry(format!("Deleting {id}."), 30, None),
            },
            None => Action::Finish(json!({})),
        });
    }
    let Some(live) = live else {
        if api.readonly || !f.create.enabled {
            return Ok(Action::Wait(Outcome::retry(
                format!("{id} not found. Waiting..."),
                f.create.delay,
                None,
            )));
        }
        let mut body = prepared.target.clone();
        if let Some(create_overlay) = &f.create.overlay {
            let current = prepared.target.clone();
            let mut scope = Scope::new().with("inputs", inputs);
            scope.bind("locals", &prepared.locals);
            scope.bind("resource", &current);
            create_overlay.overlay_onto(&mut body, &scope)?;
            force_identity(&mut body, id);
        }
        return Ok(Action::Create {
            body: with_last_applied(&body),
            owned: api.owned,
            then: Outcome::retry(format!("Creating {id}."), f.create.delay, None),
        });
    };
    if api.readonly {
        return Ok(Action::Finish(live.clone()));
    }
    let last_applied = live["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
        .as_str()
        .and_then(|s| serde_json::from_str::<Json>(s).ok());
    let target = as_the_server_stores(&prepared.target);
    let Some(difference) = first_difference(&target, live, last_applied.as_ref()) else {
        return Ok(Action::Finish(live.clone()));
    };
    Ok(match f.update {
        Update::Never => Action::Finish(live.clone()),
        Update::Recreate { delay } => Action::Delete {
            then: Outcome::retry(
                format!("Deleting {id} to recreate due to {difference}."),
                delay,
                None,
            ),
        },
        Update::Patch { delay } => Action::Patch {
            body: with_last_applied(&prepared.target),
            owned: api.owned,
            lists: lists_to_replace(&target, live),
            then: Outcome::retry(format!("Patching `{id}` due to {difference}."), delay, None),
        },
    })
}

/// The object as written: directives stripped and the applied configuration recorded, for
/// `x-koreo-compare-last-applied`.
pub fn with_last_applied(target: &Json) -> Json {
    let mut body = strip_directives(target);
    let applied = without_secret_values(&body).to_string();
    if !body["metadata"]["annotations"].is_object() {
        body["metadata"]["annotations"] = json!({});
    }
    body["metadata"]["annotations"][LAST_APPLIED_ANNOTATION] = json!(applied);
    body
}

/// What the last-applied annotation records of a Secret: its keys, not their values, which
/// `kubectl describe` and anyone reading annotations would otherwise see.
fn without_secret_values(body: &Json) -> std::borrow::Cow<'_, Json> {
    use std::borrow::Cow;
    if !(body["apiVersion"] == "v1" && body["kind"] == "Secret") {
        return Cow::Borrowed(body);
    }
    let mut recorded = body.clone();
    for field in ["data", "stringData"] {
        if let Some(values) = recorded[field].as_object_mut() {
            values.values_mut().for_each(|v| *v = json!(""));
        }
    }
    Cow::Owned(recorded)
}

/// Phase 3: postconditions and `return` against the object in the cluster.
pub fn finish_resource(
    f: &ResourceFunction,
    inputs: &Json,
    prepared: &Prepared,
    resource: &Json,
) -> Outcome {
    let mut scope = Scope::new().with("inputs", inputs);
    scope.bind("locals", &prepared.locals);
    scope.bind("resource", resource);
    if let Some(outcome) = check_conditions(&f.postconditions, &scope) {
        return outcome;
    }
    match &f.ret {
        None => Outcome::Ok(Json::Null),
        Some(t) => match t.eval(&scope) {
            Ok(v) => Outcome::Ok(v),
            Err(e) => e.into(),
        },
    }
}

/// The variables a workflow step's expressions see.
pub struct StepContext<'a> {
    pub parent: &'a Json,
    /// Results of finished steps by label.
    pub steps: &'a Json,
}

impl StepContext<'_> {
    fn scope(&self) -> Scope<'_> {
        Scope::new()
            .with("parent", self.parent)
            .with("steps", self.steps)
    }
}

/// A step's inputs, its `skipIf` verdict and its `forEach` items, evaluated.
#[derive(Debug, PartialEq)]
pub enum StepPlan {
    Skip(Outcome),
    Run { inputs: Json },
    ForEach { inputs: Vec<Json> },
}

/// Evaluates a step's `skipIf`, inputs and `forEach`.
pub fn plan_step(step: &Step, ctx: &StepContext) -> Result<StepPlan, Outcome> {
    let scope = ctx.scope();
    // `skipIf` first, so that it can guard inputs that would fail to evaluate.
    if let Some(skip_if) = &step.skip_if
        && skip_if.eval_bool(&scope)?
    {
        return Ok(StepPlan::Skip(Outcome::Skip {
            message: "skipped by workflow".into(),
            location: Some(skip_if.location.clone()),
        }));
    }
    let inputs = match &step.inputs {
        Some(t) => t.eval(&scope)?,
        None => json!({}),
    };
    let Some(for_each) = &step.for_each else {
        return Ok(StepPlan::Run { inputs });
    };
    let items = match for_each.item_in.eval(&scope)? {
        Json::Array(items) => items,
        other => {
            return Err(Outcome::perm_fail(
                format!(
                    "`forEach.itemIn` must give a list, got {}",
                    crate::expr::json_type(&other)
                ),
                Some(for_each.item_in.location.clone()),
            ));
        }
    };
    let per_item = items
        .into_iter()
        .map(|item| {
            let mut inputs = inputs.clone();
            if let Json::Object(map) = &mut inputs {
                map.insert(for_each.input_key.clone(), item);
            }
            inputs
        })
        .collect();
    Ok(StepPlan::ForEach { inputs: per_item })
}

/// For a `refSwitch` step, the case to run given the step's evaluated inputs.
pub fn choose_case<'s>(
    step: &'s Step,
    inputs: &Json,
    ctx: &StepContext,
) -> Result<&'s crate::model::LogicRef, Outcome> {
    let (switch_on, cases) = match &step.logic {
        StepLogic::Ref(r) => return Ok(r),
        StepLogic::Switch { switch_on, cases } => (switch_on, cases),
    };
    let scope = ctx.scope().with("inputs", inputs);
    let value = match switch_on.eval(&scope)? {
        Json::String(s) => s,
        Json::Number(n) if n.is_i64() => n.to_string(),
        other => {
            return Err(Outcome::perm_fail(
                format!(
                    "`refSwitch.switchOn` must give a string or an integer, got {}",
                    quoted(&other)
                ),
                Some(switch_on.location.clone()),
            ));
        }
    };
    cases
        .iter()
        .find(|c| c.case == value)
        .or_else(|| cases.iter().find(|c| c.default))
        .map(|c| &c.logic)
        .ok_or_else(|| {
            Outcome::perm_fail(
                format!(
                    "`refSwitch` must match one case or a default must be provided, failed to match {}. Use a `skipIf` guard if this is expected.",
                    quoted(&Json::String(value.clone()))
                ),
                Some(switch_on.location.clone()),
            )
        })
}

/// The message a step gets when a step it reads did not finish with Ok.
pub fn dependency_skip(label: &str, dependency: &Outcome) -> Outcome {
    let why = dependency.message().unwrap_or("");
    let message = match dependency {
        Outcome::DepSkip { .. } => format!("'{label}' is waiting on dependency ({why})."),
        Outcome::Skip { .. } => format!("'{label}' was skipped ({why})."),
        Outcome::Retry { .. } => format!("'{label}' is waiting ({why})."),
        Outcome::PermFail { .. } => format!("'{label}' is in failure state ({why})."),
        Outcome::Ok(_) => format!("'{label}' is ready."),
    };
    Outcome::DepSkip {
        message,
        location: None,
    }
}

/// A step's contribution to the parent's `status.state`, evaluated with `value` = its result.
pub fn step_state(step: &Step, value: &Json) -> Result<Option<Json>, Outcome> {
    let Some(state) = &step.state else {
        return Ok(None);
    };
    let scope = Scope::new().with("value", value);
    let result = state.eval(&scope)?;
    if !result.is_object() {
        return Err(Outcome::perm_fail("`state` must give a mapping", None));
    }
    Ok(Some(result))
}

/// Merges step states in step order; later steps win key by key at the top level.
pub fn merge_states(states: impl IntoIterator<Item = Json>) -> Json {
    let mut merged = Map::new();
    for state in states {
        if let Json::Object(map) = state {
            merged.extend(map);
        }
    }
    Json::Object(merged)
}

/// A status condition for a step or the workflow, from its outcome.
pub fn condition_for(kind: &str, name: &str, outcome: &Outcome) -> Json {
    let msg = outcome.message().unwrap_or("");
    let (status, reason, message) = match outcome {
        Outcome::Ok(_) => ("True", "Ready", format!("{name} ready.")),
        Outcome::Skip { .. } if msg.is_empty() => {
            ("False", "Skip", format!("{name} management is disabled."))
        }
        Outcome::Skip { .. } => ("False", "Skip", format!("Skipping {name}: {msg}")),
        Outcome::DepSkip { .. } => (
            "False",
            "DepSkip",
            format!("{name} awaiting dependencies to be ready ({msg})"),
        ),
        Outcome::Retry { .. } => (
            "False",
            "Wait",
            format!("Awaiting {name} to be ready ({msg})."),
        ),
        Outcome::PermFail { .. } => (
            "False",
            "Failure",
            format!("Unrecoverable error reconciling {name}. ({msg})."),
        ),
    };
    json!({"type": kind, "status": status, "reason": reason, "message": message})
}
