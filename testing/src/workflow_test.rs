//! Runs WorkflowTests: each case is one reconcile pass of the runtime's own pass
//! ([`koreo_reconcile::pass::reconcile`]) against an in-memory cluster (the local API server's
//! store, with its server-side apply, finalizers and garbage collection), so that what passes
//! here behaves the same in a cluster.

use koreo_reconcile::boundary::Boundary;
use std::sync::Mutex;

use koreo_lang::Workspace;
use koreo_lang::eval::ResourceId;
use koreo_lang::model::{Definition, WorkflowTest, WorkflowTestCase};
use koreo_lang::source::Location;
use koreo_reconcile::FIELD_MANAGER;
use koreo_reconcile::engine::{RequestError, ResourceApi};
use koreo_reconcile::pass::{self, Next, Pass};
use koreo_testkube::error::ApiError;
use koreo_testkube::store::{Patch, Propagation, Store, Target};
use serde_json::{Map, Value as Json, json};

use crate::runner::{CaseResult, CaseStatus, TestReport};
use koreo_lang::compare::{Difference, Kind, Step, differences};

/// Passes run after the last case to check that the workflow settles.
const SETTLING_PASSES: usize = 3;

/// The cluster a WorkflowTest runs against.
struct MemoryCluster {
    store: Mutex<Store>,
}

fn request_error(e: ApiError) -> RequestError {
    RequestError::from_status(e.code, e.message)
}

impl MemoryCluster {
    /// Runs `f` with the store and the target of an object's kind and namespace.
    fn with<R>(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        f: impl FnOnce(&mut Store, &Target) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let Some((index, version)) = store.kind_of(api_version, kind) else {
            return Err(ApiError {
                code: 404,
                reason: "NotFound",
                message: format!("the cluster does not serve {api_version} {kind}"),
                name: None,
                kind: None,
            });
        };
        let namespaced = store.types[index].namespaced;
        let target = Target {
            kind: index,
            version: &version,
            namespace: if namespaced {
                Some(namespace.unwrap_or("default"))
            } else {
                None
            },
        };
        let result = f(&mut store, &target);
        // Nobody watches: the events for the HTTP layer are dropped.
        store.pending.clear();
        result
    }

    fn object_with<R>(
        &self,
        id: &ResourceId,
        f: impl FnOnce(&mut Store, &Target) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        self.with(&id.api_version, &id.kind, id.namespace.as_deref(), f)
    }

    fn status_subresource(&self, id: &ResourceId) -> bool {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        store
            .kind_of(&id.api_version, &id.kind)
            .is_some_and(|(i, _)| store.types[i].status)
    }

    fn get_object(&self, object: &Json) -> Option<Json> {
        self.get_sync(&id_of(object)).ok().flatten()
    }

    fn get_sync(&self, id: &ResourceId) -> Result<Option<Json>, RequestError> {
        match self.object_with(id, |store, t| store.get(t, &id.name)) {
            Ok(o) => Ok(Some(o)),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(request_error(e)),
        }
    }

    /// Creates the object, or replaces it when it exists (as another controller would).
    fn put(&self, object: &Json) -> Result<(), String> {
        let id = id_of(object);
        self.object_with(&id, |store, t| {
            let mut body = object.clone();
            if let Some(ns) = t.namespace {
                body["metadata"]["namespace"] = json!(ns);
                ensure_namespace(store, ns)?;
            }
            match store.get(t, &id.name) {
                Ok(_) => store.replace(t, &id.name, body, "test", false),
                Err(_) => store.create(t, body, "test"),
            }
            .map(|_| ())
        })
        .map_err(|e| format!("{}: {e}", id))
    }

    /// A namespaced object without a namespace lands in the test's; a cluster-scoped one has
    /// none.
    fn placed(&self, object: &Json, namespace: Option<&str>) -> Json {
        let mut object = object.clone();
        let id = id_of(&object);
        let namespaced = {
            let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
            store
                .kind_of(&id.api_version, &id.kind)
                .is_none_or(|(i, _)| store.types[i].namespaced)
        };
        let Some(meta) = object["metadata"].as_object_mut() else {
            // An object reference (deleteResources, expectMissing) names its namespace flat.
            if namespaced && object["namespace"].is_null() {
                object["namespace"] = json!(namespace.unwrap_or("default"));
            }
            return object;
        };
        if !namespaced {
            meta.remove("namespace");
        } else if meta.get("namespace").is_none_or(Json::is_null) {
            meta.insert("namespace".into(), json!(namespace.unwrap_or("default")));
        }
        object
    }

    fn snapshot(&self) -> Store {
        self.store.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn restore(&self, store: Store) {
        *self.store.lock().unwrap_or_else(|e| e.into_inner()) = store;
    }

    fn resource_version(&self) -> u64 {
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .resource_version()
    }
}

fn ensure_namespace(store: &mut Store, namespace: &str) -> Result<(), ApiError> {
    let Some((index, _)) = store.kind_of("v1", "Namespace") else {
        return Ok(());
    };
    let t = Target {
        kind: index,
        version: "v1",
        namespace: None,
    };
    if store.get(&t, namespace).is_err() {
        store.create(&t, json!({"metadata": {"name": namespace}}), "test")?;
    }
    Ok(())
}

impl ResourceApi for MemoryCluster {
    async fn get(&self, id: &ResourceId) -> Result<Option<Json>, RequestError> {
        self.get_sync(id)
    }

    async fn apply(&self, id: &ResourceId, body: &Json, force: bool) -> Result<Json, RequestError> {
        self.object_with(id, |store, t| {
            let apply = Patch::Apply { force };
            store.patch(t, &id.name, apply, body.clone(), FIELD_MANAGER, false)
        })
        .map_err(request_error)
    }

    async fn plural(&self, id: &ResourceId) -> Option<String> {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let (index, _) = store.kind_of(&id.api_version, &id.kind)?;
        Some(store.types[index].plural.clone())
    }

    async fn json_patch(&self, id: &ResourceId, operations: &Json) -> Result<Json, RequestError> {
        self.object_with(id, |store, t| {
            let patch = Patch::Json;
            store.patch(t, &id.name, patch, operations.clone(), FIELD_MANAGER, false)
        })
        .map_err(request_error)
    }

    async fn merge_patch(&self, id: &ResourceId, patch: &Json) -> Result<Json, RequestError> {
        self.object_with(id, |store, t| {
            store.patch(
                t,
                &id.name,
                Patch::Merge,
                patch.clone(),
                FIELD_MANAGER,
                false,
            )
        })
        .map_err(request_error)
    }

    async fn patch_status(&self, id: &ResourceId, patch: &Json) -> Result<Json, RequestError> {
        let status = self.status_subresource(id);
        self.object_with(id, |store, t| {
            store.patch(
                t,
                &id.name,
                Patch::Merge,
                patch.clone(),
                FIELD_MANAGER,
                status,
            )
        })
        .map_err(request_error)
    }

    async fn delete(&self, id: &ResourceId) -> Result<(), RequestError> {
        match self.object_with(id, |store, t| {
            store.delete(t, &id.name, Propagation::Background, None)
        }) {
            // Already gone is what a delete wants, as for the runtime's client.
            Err(e) if e.code == 404 => Ok(()),
            other => other.map(|_| ()).map_err(request_error),
        }
    }
}

/// An object's identity: apiVersion, kind, `metadata.name` (or `name`) and namespace.
fn id_of(object: &Json) -> ResourceId {
    let text = |v: &Json| v.as_str().unwrap_or("").to_string();
    let name = object["metadata"]["name"]
        .as_str()
        .or(object["name"].as_str())
        .unwrap_or("");
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .or(object["namespace"].as_str());
    ResourceId {
        api_version: text(&object["apiVersion"]),
        kind: text(&object["kind"]),
        plural: None,
        name: name.to_string(),
        namespace: namespace.map(str::to_string),
    }
}

/// A CRD that serves a kind with any content and a status subresource, for kinds the test's
/// files do not define.
fn permissive_crd(api_version: &str, kind: &str, namespaced: bool) -> Json {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = format!("{}s", kind.to_lowercase());
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {"group": group, "scope": if namespaced { "Namespaced" } else { "Cluster" },
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
            "versions": [{"name": version, "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    })
}

/// The cluster for a test: the CRDs in the workspace's files, and a permissive CRD for any
/// other kind the workflows use that the server does not know.
fn cluster_for(ws: &Workspace, parent_kind: (&str, &str)) -> Result<MemoryCluster, String> {
    let cluster = MemoryCluster {
        store: Mutex::new(Store::new()),
    };
    for object in ws
        .objects
        .iter()
        .filter(|o| o.kind() == "CustomResourceDefinition")
    {
        cluster.put(&object.value)?;
    }
    let mut kinds = vec![(parent_kind.0.to_string(), parent_kind.1.to_string(), true)];
    for definition in &ws.definitions {
        if let Definition::ResourceFunction(f) = definition {
            let c = &f.api_config;
            kinds.push((c.api_version.clone(), c.kind.clone(), c.namespaced));
        }
    }
    for (api_version, kind, namespaced) in kinds {
        let known = cluster
            .store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .kind_of(&api_version, &kind)
            .is_some();
        if !known && api_version.contains('/') {
            cluster.put(&permissive_crd(&api_version, &kind, namespaced))?;
        }
    }
    Ok(cluster)
}

/// Runs every case of one WorkflowTest.
pub fn run_workflow_test(ws: &Workspace, test: &WorkflowTest) -> TestReport {
    let mut report = TestReport {
        name: test.meta.name.clone(),
        function: format!("Workflow {}", test.workflow_name),
        location: test.meta.name_location.clone(),
        cases: Vec::new(),
        error: None,
        warnings: Vec::new(),
    };
    match run_cases(ws, test) {
        Ok(cases) => report.cases = cases,
        Err(error) => report.error = Some(error),
    }
    report
}

fn run_cases(ws: &Workspace, test: &WorkflowTest) -> Result<Vec<CaseResult>, String> {
    let namespace = test.meta.namespace.as_deref();
    let rejected = ws
        .rejected
        .iter()
        .any(|r| r.is("Workflow", &test.workflow_name));
    let workflow = ws.workflow(&test.workflow_name, namespace).ok_or_else(|| {
        if rejected {
            format!(
                "Workflow `{}` is not valid (see its errors above), so it cannot be tested",
                test.workflow_name
            )
        } else {
            format!(
                "there is no Workflow named `{}` in namespace `{}`",
                test.workflow_name,
                namespace.unwrap_or("default")
            )
        }
    })?;
    let definition = Definition::Workflow(workflow.clone());
    let errors: Vec<String> = koreo_lang::analysis::check_definition(ws, &definition)
        .into_iter()
        .chain(ws.diagnostics.iter().cloned())
        .filter(|d| d.is_error() && within(&d.location, &workflow.meta.location))
        .map(|d| format!("{}: {}", d.location, d.message))
        .collect();
    if !errors.is_empty() {
        return Err(format!(
            "Workflow `{}` is not valid, so it cannot be tested:\n{}",
            test.workflow_name,
            errors.join("\n")
        ));
    }
    let crd = workflow.crd_ref.as_ref().ok_or_else(|| {
        format!(
            "Workflow `{}` has no `crdRef`: a WorkflowTest needs the kind of parent that triggers it",
            test.workflow_name
        )
    })?;
    let api_version = crd.api_version();
    let cluster = cluster_for(ws, (&api_version, &crd.kind))?;
    for object in &test.current_resources {
        cluster.put(&cluster.placed(object, namespace))?;
    }
    let mut parent = json!({"apiVersion": api_version, "kind": crd.kind,
        "metadata": test.parent["metadata"]});
    if let Some(spec) = test.parent.get("spec").filter(|s| !s.is_null()) {
        parent["spec"] = spec.clone();
    }
    let parent = cluster.placed(&parent, namespace);
    cluster.put(&parent)?;
    let parent_id = id_of(&parent);

    let mut results = Vec::new();
    let mut failed_before: Option<String> = None;
    for case in &test.test_cases {
        let status = if case.skip {
            CaseStatus::Skipped {
                reason: "skip: true".into(),
            }
        } else if let Some(earlier) = &failed_before {
            CaseStatus::Skipped {
                reason: format!("case `{earlier}` failed and later cases depend on its state"),
            }
        } else {
            let before = case.variant.then(|| cluster.snapshot());
            let status = run_case(ws, &cluster, &parent_id, case, namespace);
            if let Some(before) = before {
                cluster.restore(before);
            } else if matches!(status, CaseStatus::Failed { .. }) {
                failed_before = Some(case.label.clone());
            }
            status
        };
        results.push(CaseResult {
            label: case.label.clone(),
            status,
            location: case.location.clone(),
        });
    }
    if failed_before.is_none() {
        results.push(CaseResult {
            label: "[settles] no writes once nothing changes".into(),
            status: settles(ws, &cluster, &parent_id),
            location: test.meta.name_location.clone(),
        });
    }
    Ok(results)
}

fn within(inner: &Location, outer: &Location) -> bool {
    inner.file.path == outer.file.path
        && inner.span.start >= outer.span.start
        && inner.span.end <= outer.span.end
}

fn reconcile(ws: &Workspace, cluster: &MemoryCluster, parent: &ResourceId) -> Pass {
    // The controller's default boundary: a test that passes here is not refused in a cluster.
    futures::executor::block_on(pass::reconcile(ws, cluster, parent, &Boundary::default()))
}

fn failed(message: impl Into<String>, differences: Vec<Difference>) -> CaseStatus {
    CaseStatus::Failed {
        message: message.into(),
        differences,
    }
}

fn run_case(
    ws: &Workspace,
    cluster: &MemoryCluster,
    parent: &ResourceId,
    case: &WorkflowTestCase,
    namespace: Option<&str>,
) -> CaseStatus {
    if let Err(e) = prepare(cluster, parent, case, namespace) {
        return failed(format!("could not set the case up: {e}"), Vec::new());
    }
    let objects_before = all_objects(cluster);
    let version_before = cluster.resource_version();
    let pass = reconcile(ws, cluster, parent);
    let mut problems = Vec::new();
    let mut diffs = Vec::new();
    if let Next::BackOff(e) = &pass.next {
        problems.push(format!("the pass hit an API error: {e}"));
    }
    check_objects(cluster, case, namespace, &mut problems, &mut diffs);
    check_parent(cluster, parent, case, &pass, &mut problems, &mut diffs);
    if case.expect_no_writes && cluster.resource_version() != version_before {
        problems.push(format!(
            "expected no writes, but {}",
            describe_writes(&pass, &objects_before, &all_objects(cluster))
        ));
    }
    if problems.is_empty() {
        CaseStatus::Passed
    } else {
        failed(problems.join("\n"), diffs)
    }
}

/// The case's changes to the cluster, as others would make them, before its pass.
fn prepare(
    cluster: &MemoryCluster,
    parent: &ResourceId,
    case: &WorkflowTestCase,
    namespace: Option<&str>,
) -> Result<(), String> {
    use futures::executor::block_on as block;
    if let Some(overrides) = &case.parent_overrides {
        block(cluster.merge_patch(parent, overrides)).map_err(|e| e.to_string())?;
    }
    for object in &case.apply_resources {
        cluster.put(&cluster.placed(object, namespace))?;
    }
    for overlay in &case.overlay_resources {
        let overlay = cluster.placed(overlay, namespace);
        let id = id_of(&overlay);
        let mut patch = overlay.clone();
        if let Some(map) = patch.as_object_mut() {
            map.remove("apiVersion");
            map.remove("kind");
        }
        // The overlay plays another controller: a status goes through the status subresource.
        let status = patch.get("status").cloned();
        if let Some(map) = patch.as_object_mut() {
            map.remove("status");
        }
        block(cluster.merge_patch(&id, &patch)).map_err(|e| format!("{id}: {e}"))?;
        if let Some(status) = status {
            block(cluster.patch_status(&id, &json!({ "status": status })))
                .map_err(|e| format!("{id}: {e}"))?;
        }
    }
    for object in &case.delete_resources {
        let id = id_of(&cluster.placed(object, namespace));
        block(cluster.delete(&id)).map_err(|e| format!("{id}: {e}"))?;
    }
    Ok(())
}

fn check_objects(
    cluster: &MemoryCluster,
    case: &WorkflowTestCase,
    namespace: Option<&str>,
    problems: &mut Vec<String>,
    diffs: &mut Vec<Difference>,
) {
    for expected in &case.expect_resources {
        let expected = cluster.placed(expected, namespace);
        let id = id_of(&expected);
        match cluster.get_object(&expected) {
            None => problems.push(format!("{id} does not exist")),
            Some(actual) => {
                let found = differences(&expected, &project(&actual, &expected));
                if !found.is_empty() {
                    problems.push(format!("{id} differs"));
                    diffs.extend(prefixed(&id, found));
                }
            }
        }
    }
    for expected in &case.expect_resources_exact {
        let expected = cluster.placed(expected, namespace);
        let id = id_of(&expected);
        match cluster.get_object(&expected) {
            None => problems.push(format!("{id} does not exist")),
            Some(actual) => {
                let found = differences(&expected, &without_server_fields(&actual));
                if !found.is_empty() {
                    problems.push(format!("{id} differs"));
                    diffs.extend(prefixed(&id, found));
                }
            }
        }
    }
    for missing in &case.expect_missing {
        let missing = cluster.placed(missing, namespace);
        if cluster.get_object(&missing).is_some() {
            problems.push(format!("{} exists, but should not", id_of(&missing)));
        }
    }
}

fn check_parent(
    cluster: &MemoryCluster,
    parent: &ResourceId,
    case: &WorkflowTestCase,
    pass: &Pass,
    problems: &mut Vec<String>,
    diffs: &mut Vec<Difference>,
) {
    let run = pass.run.as_ref();
    let expects_a_run = case.expect_outcome.is_some() || !case.expect_steps.is_empty();
    if run.is_none() && expects_a_run {
        let why: Vec<&str> = pass.notices.iter().map(|n| n.note.as_str()).collect();
        problems.push(if why.is_empty() {
            "the workflow did not run".to_string()
        } else {
            format!("the workflow did not run: {}", why.join("; "))
        });
        return;
    }
    if let Some(expected) = &case.expect_outcome {
        match run.map(|r| &r.outcome) {
            Some(outcome) if outcome.name() == expected => {}
            Some(outcome) => problems.push(format!(
                "expected the workflow to be {expected}, it is {outcome}"
            )),
            None => problems.push(format!("expected {expected}, but the workflow did not run")),
        }
    }
    for (label, expected) in &case.expect_steps {
        match run.and_then(|r| r.steps.get(label)) {
            None => problems.push(format!("the workflow has no step `{label}`")),
            Some(outcome) => {
                let message = outcome.message().unwrap_or("");
                if outcome.name() != expected.outcome {
                    problems.push(format!(
                        "step `{label}`: expected {}, it is {outcome}",
                        expected.outcome
                    ));
                } else if let Some(text) = &expected.message_contains
                    && !message.contains(text.as_str())
                {
                    problems.push(format!(
                        "step `{label}`: the message does not contain \"{text}\": \"{message}\""
                    ));
                }
            }
        }
    }
    let Some(expected) = &case.expect_status else {
        return;
    };
    let status = cluster
        .get_sync(parent)
        .ok()
        .flatten()
        .map(|p| p["status"].clone())
        .unwrap_or(Json::Null);
    for condition in expected["conditions"].as_array().into_iter().flatten() {
        let kind = condition["type"].as_str().unwrap_or("");
        let actual = status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == kind));
        let Some(actual) = actual else {
            problems.push(format!("the parent has no `{kind}` condition"));
            continue;
        };
        for key in ["status", "reason"] {
            if !condition[key].is_null() && condition[key] != actual[key] {
                diffs.push(Difference {
                    path: vec![
                        Step::Within(format!("status.conditions[{kind}]")),
                        Step::Key(key.to_string()),
                    ],
                    kind: Kind::Value,
                    expected: Some(condition[key].clone()),
                    actual: Some(actual[key].clone()),
                });
                problems.push(format!("condition `{kind}` differs"));
            }
        }
        if let Some(text) = condition["messageContains"].as_str() {
            let message = actual["message"].as_str().unwrap_or("");
            if !message.contains(text) {
                problems.push(format!(
                    "condition `{kind}`: the message does not contain \"{text}\": \"{message}\""
                ));
            }
        }
    }
    if let Some(state) = expected.get("state") {
        let found = differences(state, &status["state"]);
        if !found.is_empty() {
            problems.push("status.state differs".into());
            diffs.extend(found.into_iter().map(|d| inside_object("status.state", d)));
        }
    }
}

fn inside_object(object: &str, mut difference: Difference) -> Difference {
    difference.path.insert(0, Step::Within(object.to_string()));
    difference
}

fn prefixed(id: &ResourceId, found: Vec<Difference>) -> Vec<Difference> {
    found
        .into_iter()
        .map(|d| inside_object(&id.to_string(), d))
        .collect()
}

/// `actual` restricted to what `expected` mentions: objects by key; in a list of the same
/// length, each expected item paired with an actual item that contains it wherever it is (a
/// list read as a set or map need not keep its order), else with the item at its position.
fn project(actual: &Json, expected: &Json) -> Json {
    match (actual, expected) {
        (Json::Object(a), Json::Object(e)) => Json::Object(
            e.keys()
                .filter_map(|k| a.get(k).map(|v| (k.clone(), project(v, &e[k]))))
                .collect(),
        ),
        (Json::Array(a), Json::Array(e)) if a.len() == e.len() => {
            let mut unused: Vec<&Json> = a.iter().collect();
            let items = e.iter().enumerate().map(|(i, e)| {
                let found = unused.iter().position(|a| project(a, e) == *e);
                match found {
                    Some(at) => project(unused.remove(at), e),
                    None => project(&a[i], e),
                }
            });
            Json::Array(items.collect())
        }
        _ => actual.clone(),
    }
}

/// What the server and koreo set on every object, left out of an exact comparison.
fn without_server_fields(object: &Json) -> Json {
    let mut object = object.clone();
    if let Some(meta) = object["metadata"].as_object_mut() {
        for key in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "ownerReferences",
        ] {
            meta.remove(key);
        }
        if let Some(annotations) = meta.get_mut("annotations").and_then(Json::as_object_mut) {
            annotations.retain(|k, _| !k.starts_with("koreo.dev/"));
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    object
}

/// Every object, by identity, without the fields every write changes.
fn all_objects(cluster: &MemoryCluster) -> Map<String, Json> {
    let store = cluster.store.lock().unwrap_or_else(|e| e.into_inner());
    store
        .objects()
        .map(|o| {
            let mut o = o.clone();
            if let Some(meta) = o["metadata"].as_object_mut() {
                for key in ["resourceVersion", "managedFields", "generation"] {
                    meta.remove(key);
                }
            }
            (id_of(&o).to_string(), o)
        })
        .collect()
}

/// What a pass wrote, for the person whose workflow should have written nothing: the writes
/// the workflow made and the fields that differ afterwards, or that it wrote the same content
/// again (two steps or functions fighting over one object).
fn describe_writes(pass: &Pass, before: &Map<String, Json>, after: &Map<String, Json>) -> String {
    let mut lines = Vec::new();
    if let Some(run) = &pass.run {
        let writes: Vec<String> = run
            .changes
            .iter()
            .map(|c| format!("{} {}", c.verb.to_lowercase(), c.object))
            .collect();
        if !writes.is_empty() {
            lines.push(format!("the workflow wrote: {}", writes.join(", ")));
        }
    }
    for (id, now) in after {
        match before.get(id) {
            None => lines.push(format!("{id} was created")),
            Some(old) if old != now => {
                let fields: Vec<String> = differences(old, now)
                    .iter()
                    .map(Difference::dotted_path)
                    .collect();
                lines.push(format!("{id} changed: {}", fields.join(", ")));
            }
            Some(_) => {}
        }
    }
    for id in before.keys().filter(|id| !after.contains_key(*id)) {
        lines.push(format!("{id} was deleted"));
    }
    let mut written: Vec<&str> = pass
        .run
        .iter()
        .flat_map(|r| r.changes.iter().map(|c| c.object.as_str()))
        .collect();
    written.dedup();
    for id in written {
        if before.get(id).is_some_and(|old| after.get(id) == Some(old)) {
            lines.push(format!(
                "{id} was written but is as it was before: something writes it back and forth \
                 (two functions managing the same fields?)"
            ));
        }
    }
    lines.join("\n")
}

/// After the last case, with nothing changing, a few more passes must stop writing: a workflow
/// that keeps writing would fight itself (or others) in a cluster forever.
fn settles(ws: &Workspace, cluster: &MemoryCluster, parent: &ResourceId) -> CaseStatus {
    let mut last = String::new();
    for _ in 0..SETTLING_PASSES {
        let before = all_objects(cluster);
        let version = cluster.resource_version();
        let pass = reconcile(ws, cluster, parent);
        if cluster.resource_version() == version {
            return CaseStatus::Passed;
        }
        last = describe_writes(&pass, &before, &all_objects(cluster));
    }
    failed(
        format!(
            "the workflow keeps writing although nothing else changes ({SETTLING_PASSES} more passes); in the last one\n{last}"
        ),
        Vec::new(),
    )
}
