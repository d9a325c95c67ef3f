//! One reconcile of a workflow for a parent: the step DAG run with independent steps (and
//! `forEach` items) concurrently, functions evaluated by `koreo_lang::eval`, and the cluster
//! reached through a [`ResourceApi`], so the same engine runs against a cluster or in memory.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::stream::{FuturesUnordered, StreamExt};
use koreo_lang::Workspace;
use koreo_lang::analysis::StepGraph;
use koreo_lang::cost::Budget;
use koreo_lang::eval::{self, Action, Outcome, ResourceId, StepContext, StepPlan};
use koreo_lang::expr::hiding_values;
use koreo_lang::load::NamespaceView;
use koreo_lang::model::{LogicKind, LogicRef, ResourceFunction, Step, Workflow};
use serde_json::{Map, Value as Json, json};
use tokio::runtime::RuntimeFlavor;
use tracing::Instrument;

use crate::boundary::{Boundary, Principal};
use crate::managed::{Managed, ManagedObject, ManagedTree};
use crate::ownership::{
    Owner, decorates, has_owner_reference, is_abandoned, made_for, not_ours, take_back_patch,
    to_adopt, to_take_back,
};

/// Why a request to the API server failed, as far as the engine and the controller need to
/// know.
#[derive(Clone, Debug, PartialEq)]
pub enum RequestError {
    /// Someone else created or changed it first (409).
    Conflict(String),
    /// The API server refused it for good (400, 403, 422, ...): retrying the same will not help.
    Refused(String),
    /// The API server or the network failed (5xx, 429, timeouts): retry later.
    Transient(String),
}

impl RequestError {
    /// The error for an API server's answer: 409 a conflict, 429 and 5xx worth retrying,
    /// anything else refused. The one mapping both clusters (real and in memory) use.
    pub fn from_status(code: u16, message: String) -> RequestError {
        match code {
            409 => RequestError::Conflict(message),
            429 | 500.. => RequestError::Transient(format!("{message} ({code})")),
            _ => RequestError::Refused(format!("{message} ({code})")),
        }
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Conflict(m) | RequestError::Refused(m) | RequestError::Transient(m) => {
                f.write_str(m)
            }
        }
    }
}

/// The cluster as the engine sees it: objects by identity.
pub trait ResourceApi: Sync {
    fn get(
        &self,
        id: &ResourceId,
    ) -> impl Future<Output = Result<Option<Json>, RequestError>> + Send;
    /// Server-side apply as koreo's field manager, which creates the object if it is missing.
    /// `force` takes over fields another manager set; without it, changing one is a conflict.
    fn apply(
        &self,
        id: &ResourceId,
        body: &Json,
        force: bool,
    ) -> impl Future<Output = Result<Json, RequestError>> + Send;
    /// The kind's plural (resource name), as the cluster serves it.
    fn plural(&self, id: &ResourceId) -> impl Future<Output = Option<String>> + Send;
    /// A JSON patch (RFC 6902), as koreo's field manager: lists replaced whole.
    fn json_patch(
        &self,
        id: &ResourceId,
        operations: &Json,
    ) -> impl Future<Output = Result<Json, RequestError>> + Send;
    /// A JSON merge patch (the finalizer and annotation of a parent; abandoning an object).
    fn merge_patch(
        &self,
        id: &ResourceId,
        patch: &Json,
    ) -> impl Future<Output = Result<Json, RequestError>> + Send;
    /// A JSON merge patch of the status: through the status subresource when the kind has one.
    fn patch_status(
        &self,
        id: &ResourceId,
        patch: &Json,
    ) -> impl Future<Output = Result<Json, RequestError>> + Send;
    fn delete(&self, id: &ResourceId) -> impl Future<Output = Result<(), RequestError>> + Send;
}

/// What one reconcile of a workflow produced.
#[derive(Debug)]
pub struct WorkflowRun {
    /// The workflow's outcome: the combination of its steps'.
    pub outcome: Outcome,
    /// Each step's outcome, by label.
    pub steps: BTreeMap<String, Outcome>,
    /// `status.state`: the steps' `state` merged in step order.
    pub state: Json,
    /// A condition per step that declares one, then `Ready`.
    pub conditions: Vec<Json>,
    /// Errors evaluating steps' `state`, by label.
    pub state_errors: BTreeMap<String, String>,
    /// The objects each step manages.
    pub resources: ManagedTree,
    /// Creates, patches and deletes this reconcile made.
    pub writes: usize,
    /// Requests to the API that failed for a reason that may pass (the controller backs off).
    pub api_errors: usize,
    /// The writes, in the order they were made, and how each went.
    pub changes: Vec<Change>,
    /// Steps that are done with their objects: Ok, Skip, or DepSkip only because a step they
    /// depend on was skipped. What they no longer produce can be pruned; what others (waiting,
    /// failing) produced before is kept.
    pub settled: std::collections::BTreeSet<String>,
}

/// One write to the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// `Create`, `Patch` or `Delete`.
    pub verb: &'static str,
    /// `Kind:namespace:name`.
    pub object: String,
    /// The object written.
    pub id: ResourceId,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

type StepFuture<'a> = Pin<Box<dyn Future<Output = (usize, Outcome, Managed)> + Send + 'a>>;

pub struct Engine<'a, A: ResourceApi> {
    pub workspace: &'a Workspace,
    pub api: &'a A,
    pub owner: Option<Owner>,
    writes: AtomicUsize,
    api_errors: AtomicUsize,
    changes: std::sync::Mutex<Vec<Change>>,
    /// What this reconcile's expressions may still spend.
    budget: Arc<Budget>,
    /// Where this reconcile may read and write; `None`: anywhere (the engine's own tests).
    reach: Option<(&'a Boundary, Principal)>,
}

impl<'a, A: ResourceApi> Engine<'a, A> {
    pub fn new(workspace: &'a Workspace, api: &'a A, owner: Option<Owner>) -> Engine<'a, A> {
        Engine {
            workspace,
            api,
            owner,
            writes: AtomicUsize::new(0),
            api_errors: AtomicUsize::new(0),
            changes: std::sync::Mutex::default(),
            budget: Budget::for_reconcile(),
            reach: None,
        }
    }

    /// Keeps this reconcile within `boundary` for `principal`: an object out of reach is
    /// neither read nor written, and its step fails for good saying how to allow it.
    pub fn within(mut self, boundary: &'a Boundary, principal: Principal) -> Engine<'a, A> {
        self.reach = Some((boundary, principal));
        self
    }

    /// Runs `work`, which evaluates expressions, paid from this reconcile's budget and off the
    /// async worker: the runtime hands the worker's other tasks to another thread meanwhile, so
    /// a costly expression never stalls other reconciles or `/healthz`. Its messages name
    /// values by type only: they end up in status, Events and logs, and data may be a Secret's.
    fn evaluate<T>(&self, work: impl FnOnce() -> T) -> T {
        let paid = || hiding_values(|| self.budget.pay_for(work));
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(paid)
            }
            _ => paid(),
        }
    }

    /// Runs a workflow with `parent` as its `parent` variable.
    pub fn run_workflow<'r>(
        &'r self,
        workflow: &'r Workflow,
        parent: &'r Json,
    ) -> Pin<Box<dyn Future<Output = WorkflowRun> + Send + 'r>>
    where
        'a: 'r,
    {
        Box::pin(async move {
            let graph: &StepGraph = &workflow.graph;
            let namespace = workflow.meta.namespace.as_deref();
            let mut outcomes: Vec<Option<Outcome>> = vec![None; workflow.steps.len()];
            let mut resources: Vec<Managed> = vec![Managed::Nothing; workflow.steps.len()];
            let mut values = Map::new();
            let mut running: FuturesUnordered<StepFuture<'r>> = FuturesUnordered::new();
            let mut started = vec![false; workflow.steps.len()];
            // Steps skipped, or not run because of a skip upstream.
            let mut skipped = vec![false; workflow.steps.len()];
            loop {
                // Start every step whose dependencies are done.
                for (i, step) in workflow.steps.iter().enumerate() {
                    if started[i] || !graph.dependencies[i].iter().all(|d| outcomes[*d].is_some()) {
                        continue;
                    }
                    started[i] = true;
                    let blocked = graph.dependencies[i]
                        .iter()
                        .find_map(|d| match &outcomes[*d] {
                            Some(Outcome::Ok(_)) | None => None,
                            Some(other) => {
                                skipped[i] = skipped[*d];
                                Some(eval::dependency_skip(&workflow.steps[*d].label, other))
                            }
                        });
                    let steps_json = Json::Object(values.clone());
                    running.push(Box::pin(async move {
                        if let Some(skip) = blocked {
                            return (i, skip, Managed::Nothing);
                        }
                        let span = tracing::info_span!("step", step = %step.label);
                        let (outcome, managed) = self
                            .run_step(step, parent, &steps_json, namespace)
                            .instrument(span)
                            .await;
                        (i, outcome, managed)
                    }));
                }
                let Some((i, outcome, managed)) = running.next().await else {
                    break;
                };
                if let Outcome::Ok(value) = &outcome {
                    values.insert(workflow.steps[i].label.clone(), value.clone());
                }
                resources[i] = managed;
                skipped[i] |= matches!(outcome, Outcome::Skip { .. });
                outcomes[i] = Some(outcome);
            }
            let mut run = self.finish(workflow, outcomes, resources);
            for (step, skipped) in workflow.steps.iter().zip(skipped) {
                if skipped {
                    run.settled.insert(step.label.clone());
                }
            }
            run
        })
    }

    fn finish(
        &self,
        workflow: &Workflow,
        outcomes: Vec<Option<Outcome>>,
        resources: Vec<Managed>,
    ) -> WorkflowRun {
        let outcomes: Vec<Outcome> = outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::retry("the step did not run", 30, None)))
            .collect();
        let mut states = Vec::new();
        let mut state_errors = BTreeMap::new();
        let mut conditions = Vec::new();
        let mut steps = BTreeMap::new();
        let mut managed = Vec::new();
        let mut settled = std::collections::BTreeSet::new();
        for ((step, outcome), resource) in workflow.steps.iter().zip(&outcomes).zip(resources) {
            if let Outcome::Ok(value) = outcome {
                match self.evaluate(|| eval::step_state(step, value)) {
                    Ok(Some(state)) => states.push(state),
                    Ok(None) => {}
                    Err(e) => {
                        state_errors
                            .insert(step.label.clone(), e.message().unwrap_or("").to_string());
                    }
                }
            }
            if let Some(c) = &step.condition {
                conditions.push(eval::condition_for(&c.kind, &c.name, outcome));
            }
            managed.push((step.label.clone(), resource));
            if outcome.is_ok() {
                settled.insert(step.label.clone());
            }
            steps.insert(step.label.clone(), outcome.clone());
        }
        let outcome = match eval::combine(outcomes) {
            Outcome::Ok(_) => Outcome::Ok(Json::Null),
            other => other,
        };
        conditions.push(eval::condition_for(
            "Ready",
            &format!("Workflow {}", workflow.meta.name),
            &outcome,
        ));
        WorkflowRun {
            outcome,
            steps,
            state: eval::merge_states(states),
            conditions,
            state_errors,
            resources: ManagedTree {
                workflow: workflow.meta.name.clone(),
                steps: managed,
            },
            writes: self.writes.load(Ordering::Relaxed),
            api_errors: self.api_errors.load(Ordering::Relaxed),
            changes: self.changes.lock().map(|c| c.clone()).unwrap_or_default(),
            settled,
        }
    }

    async fn run_step(
        &self,
        step: &Step,
        parent: &Json,
        steps: &Json,
        namespace: Option<&str>,
    ) -> (Outcome, Managed) {
        let ctx = StepContext { parent, steps };
        let plan = match self.evaluate(|| eval::plan_step(step, &ctx)) {
            Ok(plan) => plan,
            Err(outcome) => return (outcome, Managed::Nothing),
        };
        match plan {
            StepPlan::Skip(outcome) => (outcome, Managed::Nothing),
            StepPlan::Run { inputs } => self.run_logic(step, &inputs, &ctx, namespace).await,
            StepPlan::ForEach { inputs } => {
                let runs = futures::future::join_all(
                    inputs
                        .iter()
                        .map(|i| self.run_logic(step, i, &ctx, namespace)),
                )
                .await;
                let failed: Vec<Outcome> = runs
                    .iter()
                    .map(|(o, _)| o.clone())
                    .filter(|o| matches!(o, Outcome::Retry { .. } | Outcome::PermFail { .. }))
                    .collect();
                let managed = Managed::Each(runs.iter().map(|(_, m)| m.clone()).collect());
                if !failed.is_empty() {
                    return (eval::combine(failed), managed);
                }
                // Items that were skipped leave a null in the list, keeping positions.
                let values = runs
                    .into_iter()
                    .map(|(o, _)| {
                        if let Outcome::Ok(v) = o {
                            v
                        } else {
                            Json::Null
                        }
                    })
                    .collect();
                (Outcome::Ok(Json::Array(values)), managed)
            }
        }
    }

    async fn run_logic(
        &self,
        step: &Step,
        inputs: &Json,
        ctx: &StepContext<'_>,
        namespace: Option<&str>,
    ) -> (Outcome, Managed) {
        let logic: &LogicRef = match self.evaluate(|| eval::choose_case(step, inputs, ctx)) {
            Ok(l) => l,
            Err(outcome) => return (outcome, Managed::Nothing),
        };
        let missing = || {
            Outcome::retry(
                format!(
                    "'{}:{}' is not loaded or not valid; will retry.",
                    logic.kind.as_str(),
                    logic.name
                ),
                15,
                None,
            )
        };
        match logic.kind {
            LogicKind::ValueFunction => match self.workspace.value_function(&logic.name, namespace)
            {
                Some(f) => (
                    self.evaluate(|| eval::run_value_function(f, inputs, None)),
                    Managed::Nothing,
                ),
                None => (missing(), Managed::Nothing),
            },
            LogicKind::ResourceFunction => {
                match self.workspace.resource_function(&logic.name, namespace) {
                    Some(f) => self.run_resource(f, inputs, namespace).await,
                    None => (missing(), Managed::Nothing),
                }
            }
            LogicKind::Workflow => match self.workspace.workflow(&logic.name, namespace) {
                Some(w) => {
                    let run = self.run_workflow(w, inputs).await;
                    // A sub-workflow's value is its merged state.
                    let outcome = match run.outcome {
                        Outcome::Ok(_) => Outcome::Ok(run.state),
                        other => other,
                    };
                    (outcome, Managed::Workflow(run.resources))
                }
                None => (missing(), Managed::Nothing),
            },
        }
    }

    /// A ResourceFunction: prepare the target, read the object, write what differs, then
    /// postconditions and `return`.
    async fn run_resource(
        &self,
        f: &ResourceFunction,
        inputs: &Json,
        namespace: Option<&str>,
    ) -> (Outcome, Managed) {
        let view = NamespaceView {
            workspace: self.workspace,
            namespace,
        };
        let prepared = match self.evaluate(|| eval::prepare_resource(f, inputs, &view)) {
            Ok(p) => p,
            Err(outcome) => return (outcome, Managed::Nothing),
        };
        let id = &prepared.id;
        if let Some((boundary, principal)) = &self.reach
            && !boundary.permits(principal, id)
        {
            return (
                Outcome::perm_fail(boundary.refusal(principal, id), None),
                Managed::Nothing,
            );
        }
        let plural = match &id.plural {
            Some(plural) => Some(plural.clone()),
            None => self.api.plural(id).await,
        };
        let managed = Managed::Object(ManagedObject {
            id: ResourceId {
                plural,
                ..id.clone()
            },
            readonly: f.api_config.readonly,
            function: f.meta.name.clone(),
        });
        let live = match self.api.get(id).await {
            Ok(live) => live,
            Err(e) => {
                self.api_errors.fetch_add(1, Ordering::Relaxed);
                return (
                    Outcome::retry(format!("ServerError loading {id}: {e}"), 30, None),
                    managed,
                );
            }
        };
        let action = match self.evaluate(|| eval::decide(f, inputs, &prepared, live.as_ref())) {
            Ok(a) => a,
            Err(outcome) => return (outcome, managed),
        };
        let action = self.with_owner_reference(action, f, &prepared, live.as_ref());
        let decorates = decorates(f);
        // An object koreo did not create for this parent is never deleted, and changed only by
        // a function that decorates what others made (its own fields, never forced) or once
        // someone marks it for adoption.
        if let (Some(owner), Some(live)) = (&self.owner, &live) {
            let changes = match action {
                Action::Patch { .. } => !decorates,
                Action::Delete { .. } => true,
                _ => false,
            };
            if changes && !made_for(live, &owner.uid) && !to_adopt(live) {
                return (Outcome::retry(not_ours(id, owner, live), 60, None), managed);
            }
        }
        // An object this parent abandoned earlier (its step was pruned, then came back), or one
        // marked for adoption, is taken back: the label goes, the owner reference returns. A
        // difference check would not see this: neither is part of the resource the function
        // describes.
        if let (Some(owner), Some(live)) = (&self.owner, &live)
            && !matches!(action, Action::Delete { .. })
            && !decorates
            && to_take_back(live, &owner.uid)
        {
            let patch = self.owned(take_back_patch(live), f, id);
            let result = self.api.merge_patch(id, &patch).await;
            self.record("Patch", id, &result);
            if let Err(e) = result {
                return (self.write_failed("taking back", id, e), managed);
            }
        }
        let outcome = match action {
            Action::Finish(object) => {
                self.evaluate(|| eval::finish_resource(f, inputs, &prepared, &object))
            }
            Action::Wait(outcome) => outcome,
            Action::Create { body, then, .. } => {
                // Not forced: an object someone made meanwhile is theirs, not taken over.
                let result = self.api.apply(id, &self.owned(body, f, id), false).await;
                self.record("Create", id, &result);
                match result {
                    Ok(_) => then,
                    Err(RequestError::Conflict(_)) => {
                        Outcome::retry(format!("Waiting on competing creation of {id}."), 30, None)
                    }
                    Err(e) => self.write_failed("creating", id, e),
                }
            }
            Action::Patch {
                body, lists, then, ..
            } => {
                // A server-side apply cannot remove list entries another manager owns (an
                // entry someone added, or changed the key of): such lists are replaced first,
                // as of the version read, so nothing written since is lost. Not by a decorator:
                // the lists are someone else's.
                if let (false, false, Some(live)) = (lists.is_empty(), decorates, &live) {
                    let result = self.api.json_patch(id, &replace_lists(live, &lists)).await;
                    self.record("Patch", id, &result);
                    if let Err(e) = result {
                        return (self.write_failed("patching", id, e), managed);
                    }
                }
                let result = self
                    .api
                    .apply(id, &self.owned(body, f, id), !decorates)
                    .await;
                self.record("Patch", id, &result);
                match result {
                    Ok(_) => then,
                    Err(RequestError::Conflict(why)) if decorates => Outcome::perm_fail(
                        format!(
                            "{id}: another field manager set fields this function decorates, and koreo does not take them over: {why}. Remove them from that manager's writes, or from this function"
                        ),
                        None,
                    ),
                    Err(e) => self.write_failed("patching", id, e),
                }
            }
            Action::Delete { then } => {
                let result = self.api.delete(id).await;
                self.record("Delete", id, &result);
                match result {
                    Ok(()) => then,
                    Err(e) => self.write_failed("deleting", id, e),
                }
            }
        };
        (outcome, managed)
    }

    fn record<T>(&self, verb: &'static str, id: &ResourceId, result: &Result<T, RequestError>) {
        let change = Change {
            verb,
            object: id.to_string(),
            id: id.clone(),
            error: result.as_ref().err().map(ToString::to_string),
        };
        // Only writes that landed count: a refused one changes nothing to look at again.
        if change.error.is_none() {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        match &change.error {
            None => tracing::info!(object = %change.object, "{}", verb.to_lowercase()),
            Some(error) => {
                tracing::warn!(object = %change.object, %error, "{} failed", verb.to_lowercase())
            }
        }
        if let Ok(mut changes) = self.changes.lock() {
            changes.push(change);
        }
    }

    /// A refused write is a permanent failure of the step; any other is retried, with backoff.
    fn write_failed(&self, doing: &str, id: &ResourceId, error: RequestError) -> Outcome {
        match error {
            RequestError::Refused(e) => {
                Outcome::perm_fail(format!("Error {doing} {id}: {e}"), None)
            }
            other => {
                self.api_errors.fetch_add(1, Ordering::Relaxed);
                Outcome::retry(format!("Error {doing} {id}: {other}"), 30, None)
            }
        }
    }

    /// The parent, when objects of this function at `id` carry it as owner: the function owns
    /// what it creates and both share a namespace (Kubernetes ignores cross-namespace owners).
    /// A decorator's object is someone else's: never owned.
    fn owning(&self, f: &ResourceFunction, id: &ResourceId) -> Option<&Owner> {
        self.owner.as_ref().filter(|o| {
            f.api_config.owned
                && !decorates(f)
                && o.namespace.is_some()
                && o.namespace == id.namespace
        })
    }

    /// An object that lost the parent's owner reference (removed by hand) is patched to get it
    /// back, as Koreo does: no difference check sees it, since the function does not describe
    /// it.
    fn with_owner_reference(
        &self,
        action: Action,
        f: &ResourceFunction,
        prepared: &eval::Prepared,
        live: Option<&Json>,
    ) -> Action {
        let (Action::Finish(_), Some(live), false) = (&action, live, f.api_config.readonly) else {
            return action;
        };
        let Some(owner) = self.owning(f, &prepared.id) else {
            return action;
        };
        // An abandoned object gets its reference back when it is taken back.
        if has_owner_reference(live, &owner.uid)
            || is_abandoned(live)
            || matches!(f.update, koreo_lang::model::Update::Never)
        {
            return action;
        }
        Action::Patch {
            body: eval::with_last_applied(&prepared.target),
            owned: f.api_config.owned,
            lists: Vec::new(),
            then: Outcome::retry(
                format!("Restoring the owner reference of `{}`.", prepared.id),
                0,
                None,
            ),
        }
    }

    /// Marks the body as made for the parent, and adds the parent as owner where it owns it.
    /// A decorator's body is neither: the object stays its maker's.
    fn owned(&self, body: Json, f: &ResourceFunction, id: &ResourceId) -> Json {
        match self.owner.as_ref().filter(|_| !decorates(f)) {
            Some(owner) => owner.mark(body, self.owning(f, id).is_some()),
            None => body,
        }
    }
}

/// The JSON patch that replaces `lists` (pointer, list) in `live`, as a compare-and-swap on the
/// version read: the patch fails with a conflict if the object changed since.
fn replace_lists(live: &Json, lists: &[(String, Json)]) -> Json {
    let version = json!({"op": "replace", "path": "/metadata/resourceVersion",
        "value": live["metadata"]["resourceVersion"]});
    let replaces = lists
        .iter()
        .map(|(path, list)| json!({"op": "replace", "path": path, "value": list}));
    Json::Array(std::iter::once(version).chain(replaces).collect())
}

#[cfg(test)]
mod write_errors {
    use super::RequestError;

    #[test]
    fn answers_map_to_what_the_engine_does_next() {
        let kind = |code| match RequestError::from_status(code, "m".into()) {
            RequestError::Conflict(_) => "conflict",
            RequestError::Transient(_) => "retry",
            RequestError::Refused(_) => "refused",
        };
        assert_eq!(kind(409), "conflict");
        for code in [429, 500, 503, 504] {
            assert_eq!(kind(code), "retry", "{code}");
        }
        for code in [400, 403, 404, 422] {
            assert_eq!(kind(code), "refused", "{code}");
        }
    }
}
