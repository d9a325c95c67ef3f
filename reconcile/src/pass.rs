//! One reconcile pass of one parent, over any [`ResourceApi`]: what the controller runs against
//! a cluster, and what a WorkflowTest runs against an in-memory one. Everything a pass does to
//! the cluster goes through the API given; what it wants told (Events) it returns as notices.

use crate::boundary::{Boundary, Principal};
use std::time::Duration;

use koreo_lang::Workspace;
use koreo_lang::eval::{Outcome, ResourceId};
use koreo_lang::model::{DeletePolicy, Workflow};
use serde_json::{Map, Value as Json, json};
use tokio::sync::OnceCell;

use crate::engine::{Engine, RequestError, ResourceApi, WorkflowRun};
use crate::managed::{MANAGED_RESOURCES, ManagedObject, ManagedTree};
use crate::ownership::{Owner, abandon_patch, decorates, made_for};

/// Keeps a deleted parent until what it manages is handled by its delete policy.
pub const FINALIZER: &str = "koreo.dev/cleanup";
/// How often a parent that is Ok is reconciled again, to catch what no event reports.
pub const RESYNC: Duration = Duration::from_secs(20 * 60);

/// Something worth an Event on the parent.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub reason: String,
    pub action: &'static str,
    pub note: String,
    /// Normal, or a Warning.
    pub normal: bool,
    /// The object it is about (the Event's related object), if one.
    pub about: Option<ResourceId>,
}

impl Notice {
    fn new(reason: impl Into<String>, action: &'static str, note: String, normal: bool) -> Notice {
        Notice {
            reason: reason.into(),
            action,
            note,
            normal,
            about: None,
        }
    }

    fn about(mut self, id: &ResourceId) -> Notice {
        self.about = Some(id.clone());
        self
    }
}

/// Longest Event note the API server accepts.
const MAX_NOTE: usize = 1024;

/// The notices of one pass with the same reason, action and type as one: a pass that creates
/// two objects records one Event naming both, not an Event and then a second write to count it.
pub fn combined(notices: &[Notice]) -> Vec<Notice> {
    let mut out: Vec<Notice> = Vec::new();
    for notice in notices {
        let same = |n: &&mut Notice| {
            n.reason == notice.reason && n.action == notice.action && n.normal == notice.normal
        };
        match out.iter_mut().find(same) {
            Some(n) => {
                n.note.push_str("; ");
                n.note.push_str(&notice.note);
                if n.about != notice.about {
                    n.about = None; // about several objects: the note names them
                }
            }
            None => out.push(notice.clone()),
        }
    }
    for n in &mut out {
        if n.note.len() > MAX_NOTE {
            let mut end = MAX_NOTE - 3;
            while !n.note.is_char_boundary(end) {
                end -= 1;
            }
            n.note.truncate(end);
            n.note.push_str("...");
        }
    }
    out
}

/// What one pass did.
pub struct Pass {
    /// The workflow that ran (or would have).
    pub workflow: Option<String>,
    /// The parent as the pass read it.
    pub parent: Option<Json>,
    /// The workflow's run, when it ran.
    pub run: Option<WorkflowRun>,
    /// The parent's conditions, when they were written.
    pub conditions: Option<Vec<Json>>,
    pub notices: Vec<Notice>,
    pub next: Next,
}

/// What the controller does with a parent after a pass.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// Nothing until the parent or something it manages changes.
    OnChange,
    /// Look again after this long (a Retry's delay, a write to check, the resync).
    After(Duration),
    /// The pass could not finish: back off, then try again.
    BackOff(Unfinished),
}

/// Why a pass did not finish. Each is worth trying again: nothing was lost, the next pass
/// picks up where this one stopped.
#[derive(Clone, Debug, PartialEq)]
pub enum Unfinished {
    /// Reading the parent failed.
    Read(RequestError),
    /// Requests the steps made failed (the steps wait and say so).
    Requests(usize),
    /// koreo's finalizer could not be added to the parent, or removed from it.
    Finalizer,
    /// A deleted parent's objects are not all released yet.
    Cleanup,
    /// Objects the workflow no longer produces are not all released yet.
    Pruning,
}

impl From<RequestError> for Unfinished {
    fn from(error: RequestError) -> Unfinished {
        Unfinished::Read(error)
    }
}

impl std::fmt::Display for Unfinished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfinished::Read(e) => write!(f, "reading the parent failed: {e}"),
            Unfinished::Requests(n) => write!(f, "{n} request(s) to the API failed"),
            Unfinished::Finalizer => f.write_str("koreo's finalizer could not be added or removed"),
            Unfinished::Cleanup => f.write_str("cleanup of a deleted parent is not finished"),
            Unfinished::Pruning => {
                f.write_str("pruning what the workflow no longer produces is not finished")
            }
        }
    }
}

impl From<Result<Option<Duration>, Unfinished>> for Next {
    fn from(result: Result<Option<Duration>, Unfinished>) -> Next {
        match result {
            Ok(None) => Next::OnChange,
            Ok(Some(delay)) => Next::After(delay),
            Err(why) => Next::BackOff(why),
        }
    }
}

impl Default for Pass {
    fn default() -> Pass {
        Pass {
            workflow: None,
            parent: None,
            run: None,
            conditions: None,
            notices: Vec::new(),
            next: Next::OnChange,
        }
    }
}

/// Reconciles the parent `parent_id` once with the workflow its kind triggers, reading and
/// writing only within `boundary`.
pub async fn reconcile<A: ResourceApi>(
    ws: &Workspace,
    api: &A,
    parent_id: &ResourceId,
    boundary: &Boundary,
) -> Pass {
    let mut pass = Pass::default();
    // `run` answers as a Result so that `?` reads as "the API failed: back off".
    pass.next = run(ws, api, parent_id, boundary, &mut pass).await.into();
    pass
}

async fn run<A: ResourceApi>(
    ws: &Workspace,
    api: &A,
    parent_id: &ResourceId,
    boundary: &Boundary,
    pass: &mut Pass,
) -> Result<Option<Duration>, Unfinished> {
    let workflows = ws.workflows_for(&parent_id.api_version, &parent_id.kind);
    // No workflow for this kind (any more): nothing to do until one appears. A deleted parent
    // has nothing to run its cleanup either, so koreo's finalizer goes (left, it would keep the
    // parent, and a namespace deleted with it, forever); what it owns goes by garbage
    // collection. Not while some Workflow failed to load: it may be this kind's, being edited.
    let Some(workflow) = workflows.first().map(|w| std::sync::Arc::clone(w)) else {
        let unsure = ws.rejected.iter().any(|r| r.kind == "Workflow");
        if !unsure
            && let Some(parent) = api.get(parent_id).await?
            && parent["metadata"]["deletionTimestamp"].is_string()
            && has_finalizer(&parent)
            && !remove_finalizer(api, parent_id, &parent).await
        {
            return Err(Unfinished::Finalizer);
        }
        return Ok(None);
    };
    pass.workflow = Some(workflow.meta.name.clone());
    tracing::Span::current().record("workflow", workflow.meta.name.as_str());
    let Some(mut parent) = api.get(parent_id).await? else {
        return Ok(None);
    };
    // What the API returns may lack its type; events and the engine need it.
    parent["apiVersion"] = json!(parent_id.api_version);
    parent["kind"] = json!(parent_id.kind);
    pass.parent = Some(parent.clone());
    let previous = ManagedTree::of_parent(&parent);
    let mut entries = previous.objects();

    if parent["metadata"]["deletionTimestamp"].is_string() {
        // Deleted: handle what it manages by each function's delete policy, last step first,
        // then let it go.
        entries.reverse();
        let cleaned = release(ws, &workflow, api, &parent, &entries, &mut pass.notices).await;
        if cleaned && remove_finalizer(api, parent_id, &parent).await {
            return Ok(None);
        }
        return Err(Unfinished::Cleanup);
    }
    if workflows.len() > 1 {
        let names: Vec<&str> = workflows.iter().map(|w| w.meta.name.as_str()).collect();
        let message = format!(
            "workflows {} are all triggered by {} {}: koreo runs none of them until only one is",
            names.join(", "),
            parent_id.api_version,
            parent_id.kind
        );
        tracing::warn!("{message}");
        pass.notices.push(Notice::new(
            "MultipleWorkflows",
            "Reconcile",
            message,
            false,
        ));
        return Ok(None);
    }
    // A parent that already manages objects needs the finalizer; one that does not gets it
    // before its first write (a parent a workflow skips is left without it).
    let finalized = OnceCell::new();
    if !entries.is_empty() {
        if !ensure_finalizer(api, parent_id, &parent).await {
            return Err(Unfinished::Finalizer);
        }
        // Done: asking again with the parent as read would be refused as out of date.
        let _ = finalized.set(true);
    }
    let input = json!({
        "apiVersion": parent_id.api_version, "kind": parent_id.kind,
        "metadata": parent["metadata"], "spec": parent["spec"],
        "state": parent["status"]["state"],
    });
    let cluster = ForParent {
        api,
        parent_id,
        parent: &parent,
        finalized,
    };
    let principal = Principal {
        workflow_namespace: workflow.meta.namespace.clone(),
        parent: parent_id.clone(),
    };
    let engine = Engine::new(ws, &cluster, Owner::of(&input)).within(boundary, principal);
    let mut run = engine.run_workflow(&workflow, &input).await;
    run.resources.keep_unsettled(&previous, |label| {
        run.steps.contains_key(label) && !run.settled.contains(label)
    });
    let gone = run.resources.no_longer_produced(&previous);
    for change in &run.changes {
        pass.notices.push(change_notice(change));
    }
    if let Outcome::PermFail { message, .. } = &run.outcome {
        pass.notices
            .push(Notice::new("Failed", "Reconcile", message.clone(), false));
    }
    // Until they are released, what is gone stays in the annotation, to be tried again.
    if !gone.is_empty() && !release(ws, &workflow, api, &parent, &gone, &mut pass.notices).await {
        pass.run = Some(run);
        return Err(Unfinished::Pruning);
    }
    // A parent the workflow skips and never managed is left untouched, status included: a
    // decorator does not write into every Namespace it does not apply to.
    let untouched = matches!(run.outcome, Outcome::Skip { .. })
        && entries.is_empty()
        && parent["status"]["conditions"].is_null();
    let status_failed = if untouched {
        false
    } else {
        match write_status(api, parent_id, &parent, &run).await {
            Ok(conditions) => {
                pass.conditions = conditions;
                false
            }
            Err(_) => true,
        }
    };
    for (label, outcome) in run.steps.iter().filter(|(_, o)| !o.is_ok()) {
        tracing::info!(step = %label, outcome = outcome.name(), detail = outcome.message().unwrap_or(""), "step not done");
    }
    let next = next_look(&run, status_failed);
    pass.run = Some(run);
    next
}

/// When to reconcile again after a run.
fn next_look(run: &WorkflowRun, status_failed: bool) -> Result<Option<Duration>, Unfinished> {
    if run.api_errors > 0 || status_failed {
        return Err(Unfinished::Requests(
            run.api_errors + usize::from(status_failed),
        ));
    }
    // After writing, look again soon: writes are checked as soon as they land, whatever delay
    // the function asked for (watches usually get there first).
    if run.writes > 0 {
        return Ok(Some(Duration::from_secs(1)));
    }
    Ok(match &run.outcome {
        Outcome::Retry { delay, .. } => Some(Duration::from_secs((*delay).max(1) as u64)),
        Outcome::PermFail { .. } => None,
        _ => Some(RESYNC),
    })
}

fn change_notice(change: &crate::engine::Change) -> Notice {
    let done = match change.verb {
        "Create" => "Created",
        "Patch" => "Patched",
        _ => "Deleted",
    };
    match &change.error {
        None => Notice::new(done, change.verb, format!("{done} {}", change.object), true),
        Some(error) => Notice::new(
            format!("{}Failed", change.verb),
            change.verb,
            format!("{} {} failed: {error}", change.verb, change.object),
            false,
        ),
    }
    .about(&change.id)
}

fn has_finalizer(parent: &Json) -> bool {
    parent["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

/// Adds koreo's finalizer, so a deleted parent waits for its cleanup. False if that failed.
async fn ensure_finalizer<A: ResourceApi>(api: &A, id: &ResourceId, parent: &Json) -> bool {
    if has_finalizer(parent) {
        return true;
    }
    let finalizers: Vec<Json> = parent["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut all = finalizers;
    all.push(json!(FINALIZER));
    // The resourceVersion makes this a compare-and-swap: others' finalizers are not lost.
    let patch = json!({"metadata": {"finalizers": all, "resourceVersion": parent["metadata"]["resourceVersion"]}});
    api.merge_patch(id, &patch).await.is_ok()
}

async fn remove_finalizer<A: ResourceApi>(api: &A, id: &ResourceId, parent: &Json) -> bool {
    let rest: Vec<Json> = parent["metadata"]["finalizers"]
        .as_array()
        .map(|f| f.iter().filter(|f| *f != FINALIZER).cloned().collect())
        .unwrap_or_default();
    let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": parent["metadata"]["resourceVersion"]}});
    api.merge_patch(id, &patch).await.is_ok()
}

/// Applies each object's delete policy: `destroy` deletes it, `abandon` leaves it without the
/// parent's owner reference and with a label saying so. Only objects koreo made for this parent
/// are touched; read-only ones never. True when all went well.
async fn release<A: ResourceApi>(
    ws: &Workspace,
    workflow: &Workflow,
    api: &A,
    parent: &Json,
    entries: &[&ManagedObject],
    notices: &mut Vec<Notice>,
) -> bool {
    let parent_uid = parent["metadata"]["uid"].as_str().unwrap_or("");
    let mut all_done = true;
    for entry in entries.iter().filter(|e| !e.readonly) {
        let id = &entry.id;
        let object = match api.get(id).await {
            Ok(Some(o)) => o,
            Ok(None) => continue,
            Err(_) => {
                all_done = false;
                continue;
            }
        };
        // Functions are found where the workflow is, as when it ran them.
        let function = ws.resource_function(&entry.function, workflow.meta.namespace.as_deref());
        if let Some(f) = function.filter(|f| decorates(f)) {
            // A decorated object is its maker's: only koreo's fields go (an apply of nothing
            // but its identity drops every field koreo applied that no one else set).
            let mut identity = json!({"apiVersion": id.api_version, "kind": id.kind, "metadata": {"name": id.name}});
            if let Some(namespace) = &id.namespace {
                identity["metadata"]["namespace"] = json!(namespace);
            }
            let done = api.apply(id, &identity, false).await.is_ok();
            tracing::info!(object = %id, function = %f.meta.name, done, "decoration removed");
            notices.push(
                if done {
                    Notice::new(
                        "Undecorated",
                        "Patch",
                        format!("Removed koreo's fields from {id}"),
                        true,
                    )
                } else {
                    Notice::new(
                        "UndecorateFailed",
                        "Patch",
                        format!("Could not remove koreo's fields from {id}; will retry"),
                        false,
                    )
                }
                .about(id),
            );
            all_done &= done;
            continue;
        }
        if !made_for(&object, parent_uid) {
            continue;
        }
        let policy = function.map(|f| f.delete).unwrap_or_default();
        let done = match policy {
            DeletePolicy::Destroy => api.delete(id).await.is_ok(),
            DeletePolicy::Abandon => api
                .merge_patch(id, &abandon_patch(&object, parent_uid))
                .await
                .is_ok(),
        };
        let (reason, verb) = match policy {
            DeletePolicy::Destroy => ("Deleted", "Delete"),
            DeletePolicy::Abandon => ("Abandoned", "Abandon"),
        };
        tracing::info!(object = %id, policy = reason, done, "released");
        notices.push(
            if done {
                Notice::new(reason, verb, format!("{reason} {id}"), true)
            } else {
                Notice::new(
                    format!("{verb}Failed"),
                    verb,
                    format!("Could not {} {id}; will retry", verb.to_lowercase()),
                    false,
                )
            }
            .about(id),
        );
        all_done &= done;
    }
    all_done
}

/// Each step's last outcome, on the parent, for `koreo inspect` and the web view: a JSON map
/// of label to `{"outcome": "Retry", "message": "..."}` (no message for Ok).
pub const STEP_OUTCOMES: &str = "koreo.dev/step-outcomes";

/// How much of a step's message the annotation keeps: enough to read, small on the parent.
const MAX_OUTCOME_MESSAGE: usize = 200;

/// The step-outcomes annotation of a run.
pub fn step_outcomes(run: &WorkflowRun) -> String {
    let steps: serde_json::Map<String, Json> = run
        .steps
        .iter()
        .map(|(label, outcome)| {
            let mut entry = json!({"outcome": outcome.name()});
            if let Some(message) = outcome.message() {
                let cut: String = message.chars().take(MAX_OUTCOME_MESSAGE).collect();
                entry["message"] = json!(cut);
            }
            (label.clone(), entry)
        })
        .collect();
    Json::Object(steps).to_string()
}

/// A parent's step outcomes as written by [`step_outcomes`]: an object of objects (anything
/// else in the annotation is left out).
pub fn read_step_outcomes(parent: &Json) -> serde_json::Map<String, Json> {
    parent["metadata"]["annotations"][STEP_OUTCOMES]
        .as_str()
        .and_then(|text| serde_json::from_str::<Json>(text).ok())
        .and_then(|value| value.as_object().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, entry)| entry["outcome"].is_string())
        .collect()
}

/// Writes conditions, state and errors to the parent's status, and the managed-resources and
/// step-outcomes annotations, only when they differ from what is there. Returns the
/// conditions if written.
async fn write_status<A: ResourceApi>(
    api: &A,
    id: &ResourceId,
    parent: &Json,
    run: &WorkflowRun,
) -> Result<Option<Vec<Json>>, RequestError> {
    let mut changed = serde_json::Map::new();
    for (key, value) in [
        (MANAGED_RESOURCES, run.resources.annotation()),
        (STEP_OUTCOMES, step_outcomes(run)),
    ] {
        if parent["metadata"]["annotations"][key].as_str() != Some(value.as_str()) {
            changed.insert(key.into(), json!(value));
        }
    }
    if !changed.is_empty() {
        let patch = json!({"metadata": {"annotations": changed}});
        api.merge_patch(id, &patch).await?;
    }
    let generation = parent["metadata"]["generation"].as_i64();
    let Some((status, conditions)) = status_update(&parent["status"], run, generation, &now())
    else {
        return Ok(None);
    };
    api.patch_status(id, &json!({ "status": status })).await?;
    Ok(Some(conditions))
}

/// The status patch for a run given the status there is (`None`: nothing to change), and the
/// conditions in it. `lastTransitionTime` changes only with a condition's status; `state` is
/// replaced as a whole (keys gone are written as null, which removes them), except that while
/// the workflow waits or fails (Retry, PermFail) the last good values of keys it did not
/// produce stay.
/// `observedGeneration` (top level and in each condition) is the parent's generation the run
/// saw, so `kubectl wait`, Flux and Argo CD can tell a Ready that reflects the latest spec.
pub fn status_update(
    old: &Json,
    run: &WorkflowRun,
    generation: Option<i64>,
    now: &str,
) -> Option<(Json, Vec<Json>)> {
    let conditions: Vec<Json> = run
        .conditions
        .iter()
        .map(|c| {
            let previous = old["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|p| p["type"] == c["type"]));
            let mut c = c.clone();
            c["lastTransitionTime"] = match previous {
                Some(p) if p["status"] == c["status"] => p["lastTransitionTime"].clone(),
                _ => json!(now),
            };
            c["observedGeneration"] = json!(generation);
            c
        })
        .collect();
    // Waiting or failing: keep. Ok or skipped: what the steps produced is all there is.
    let keep_old = matches!(
        run.outcome,
        Outcome::Retry { .. } | Outcome::PermFail { .. }
    );
    let mut state = run.state.clone();
    if let (Some(old_state), Some(new_state)) = (old["state"].as_object(), state.as_object_mut()) {
        for (key, value) in old_state {
            let kept = if keep_old { value.clone() } else { Json::Null };
            new_state.entry(key.clone()).or_insert(kept);
        }
    }
    // What the merge patch leaves: nulls remove their keys at every depth.
    let effective = without_nulls(&state);
    let errors = match &run.outcome {
        Outcome::Retry { message, .. } | Outcome::PermFail { message, .. } => json!(message),
        _ => Json::Null,
    };
    let same_conditions = strip_times(&old["conditions"]) == strip_times(&json!(conditions))
        && old["conditions"].as_array().map(Vec::len) == Some(conditions.len());
    let same_state =
        old["state"] == effective || (old["state"].is_null() && effective == json!({}));
    let same_errors = old["koreo"]["errors"] == errors;
    let same_generation = old["observedGeneration"] == json!(generation);
    if same_conditions && same_state && same_errors && same_generation {
        return None;
    }
    Some((
        json!({"observedGeneration": generation, "conditions": conditions, "state": state,
            "koreo": {"errors": errors}}),
        conditions,
    ))
}

/// The cluster as one parent's reconcile sees it: before the first write for a parent, koreo's
/// finalizer is added to it, so that nothing made for it can outlive it unhandled.
struct ForParent<'a, A: ResourceApi> {
    api: &'a A,
    parent_id: &'a ResourceId,
    parent: &'a Json,
    finalized: OnceCell<bool>,
}

impl<A: ResourceApi> ForParent<'_, A> {
    async fn finalize(&self) -> Result<(), RequestError> {
        let done = *self
            .finalized
            .get_or_init(|| ensure_finalizer(self.api, self.parent_id, self.parent))
            .await;
        if done {
            Ok(())
        } else {
            Err(RequestError::Transient(
                "could not add koreo's finalizer to the parent first".into(),
            ))
        }
    }
}

impl<A: ResourceApi> ResourceApi for ForParent<'_, A> {
    async fn get(&self, id: &ResourceId) -> Result<Option<Json>, RequestError> {
        self.api.get(id).await
    }

    async fn apply(&self, id: &ResourceId, body: &Json, force: bool) -> Result<Json, RequestError> {
        self.finalize().await?;
        self.api.apply(id, body, force).await
    }

    async fn plural(&self, id: &ResourceId) -> Option<String> {
        self.api.plural(id).await
    }

    async fn json_patch(&self, id: &ResourceId, operations: &Json) -> Result<Json, RequestError> {
        self.finalize().await?;
        self.api.json_patch(id, operations).await
    }

    async fn merge_patch(&self, id: &ResourceId, patch: &Json) -> Result<Json, RequestError> {
        self.finalize().await?;
        self.api.merge_patch(id, patch).await
    }

    async fn patch_status(&self, id: &ResourceId, patch: &Json) -> Result<Json, RequestError> {
        self.api.patch_status(id, patch).await
    }

    async fn delete(&self, id: &ResourceId) -> Result<(), RequestError> {
        self.finalize().await?;
        self.api.delete(id).await
    }
}

fn without_nulls(value: &Json) -> Json {
    match value {
        Json::Object(map) => Json::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn strip_times(conditions: &Json) -> Json {
    let Some(list) = conditions.as_array() else {
        return Json::Null;
    };
    Json::Array(
        list.iter()
            .map(|c| {
                let mut c: Map<String, Json> = c.as_object().cloned().unwrap_or_default();
                c.remove("lastTransitionTime");
                Json::Object(c)
            })
            .collect(),
    )
}

/// Now, as Kubernetes writes times.
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn empty_run() -> WorkflowRun {
        WorkflowRun {
            outcome: Outcome::Ok(Json::Null),
            steps: BTreeMap::new(),
            state: json!({}),
            conditions: Vec::new(),
            state_errors: BTreeMap::new(),
            resources: ManagedTree::default(),
            writes: 0,
            api_errors: 0,
            changes: Vec::new(),
            settled: BTreeSet::new(),
        }
    }

    #[test]
    fn notices_of_one_kind_make_one_event_within_the_size_limit() {
        let created =
            |name: &str| Notice::new("Created", "Create", format!("Created {name}"), true);
        let failed = Notice::new("CreateFailed", "Create", "Create x failed".into(), false);
        let notices = [created("a"), failed.clone(), created("b")];
        let events = combined(&notices);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].note, "Created a; Created b");
        assert_eq!(events[1], failed);
        let many: Vec<Notice> = (0..200).map(|i| created(&format!("object-{i}"))).collect();
        let long = &combined(&many)[0].note;
        assert!(
            long.len() <= MAX_NOTE && long.ends_with("..."),
            "{}",
            long.len()
        );
    }

    #[test]
    fn failed_requests_back_off_and_say_how_many() {
        let mut run = empty_run();
        run.api_errors = 2;
        let next = Next::from(next_look(&run, true));
        assert_eq!(next, Next::BackOff(Unfinished::Requests(3)));
        let Next::BackOff(why) = next else {
            unreachable!()
        };
        assert_eq!(why.to_string(), "3 request(s) to the API failed");
        run.api_errors = 0;
        run.writes = 1;
        assert_eq!(
            Next::from(next_look(&run, false)),
            Next::After(Duration::from_secs(1))
        );
    }

    #[test]
    fn the_status_says_which_generation_it_reflects() {
        let mut run = empty_run();
        run.conditions = vec![json!({"type": "Ready", "status": "True"})];
        let (status, _) = status_update(&json!({}), &run, Some(3), "now").unwrap();
        assert_eq!(status["observedGeneration"], 3);
        assert_eq!(status["conditions"][0]["observedGeneration"], 3);
        // The same run for a newer spec is written again, to say so.
        assert!(status_update(&status, &run, Some(3), "later").is_none());
        assert!(status_update(&status, &run, Some(4), "later").is_some());
    }

    #[test]
    fn nested_nulls_in_state_are_what_the_status_already_says() {
        let mut run = empty_run();
        run.state = json!({"a": {"x": 1, "gone": null}});
        let old = json!({"conditions": [], "state": {"a": {"x": 1}}, "koreo": {"errors": null}});
        assert!(
            status_update(&old, &run, None, "now").is_none(),
            "nothing to write"
        );
    }
}
