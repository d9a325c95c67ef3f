//! The controller: loads Koreo definitions from the cluster (and reloads them as they change),
//! watches the parent kind of every Workflow with a `crdRef`, and reconciles each parent with
//! the engine, one reconcile per parent at a time, requeued by outcome.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use koreo_lang::Workspace;
use koreo_lang::eval::Outcome;
use koreo_lang::model::{DeletePolicy, Workflow};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Map, Value as Json, json};
use tokio::sync::{RwLock, mpsc};

use crate::engine::{Engine, Owner, ResourceApi, WorkflowRun, WriteError, made_for};
use crate::kube_api::{FIELD_MANAGER, KubeApi};
use crate::metrics::Metrics;
use k8s_openapi::api::core::v1::ObjectReference;
use koreo_lang::eval::ResourceId;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::Instrument;

pub const MANAGED_RESOURCES: &str = "koreo.dev/managed-resources";
/// Keeps a deleted parent until what it manages is handled by its delete policy.
pub const FINALIZER: &str = "koreo.dev/cleanup";
/// Set on objects a parent left behind (delete policy `abandon`).
pub const ABANDONED_LABEL: &str = "koreo.dev/abandoned";
/// How often a parent that is Ok is reconciled again, to catch what no event reports.
pub const RESYNC: Duration = Duration::from_secs(20 * 60);

/// What a reconcile did, for whoever is watching (`koreo dev` prints it).
#[derive(Clone, Debug)]
pub struct Report {
    /// `Kind namespace/name` of the parent.
    pub parent: String,
    pub workflow: String,
    pub outcome: Outcome,
    /// Step outcomes other than Ok, by label (what is happening right now).
    pub steps: BTreeMap<String, Outcome>,
    /// The parent's conditions, when they changed.
    pub conditions: Option<Vec<Json>>,
}

/// A parent to reconcile.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ParentKey {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    name: String,
}

/// A managed object: apiVersion, kind, namespace, name.
type ManagedKey = (String, String, Option<String>, String);
type ManagedIndex = Arc<RwLock<HashMap<ManagedKey, HashSet<ParentKey>>>>;

pub struct Controller {
    client: Client,
    /// The namespaces to watch for definitions, parents and managed objects; empty: all.
    namespaces: Vec<String>,
    reports: Option<mpsc::UnboundedSender<Report>>,
    queue: OnceLock<mpsc::UnboundedSender<ParentKey>>,
    /// Which parents manage each object, from their last reconcile.
    managed: ManagedIndex,
    /// Kinds of managed objects already watched.
    managed_kinds: RwLock<HashSet<(String, String)>>,
    /// The cluster as reconciles see it, with the kinds it has discovered.
    kube_api: KubeApi,
    /// How many reconciles run at once.
    workers: usize,
    /// Hands background tasks to `run`, which owns them: when `run` stops, they all stop.
    tasks: OnceLock<mpsc::UnboundedSender<BoxFuture<'static, ()>>>,
    metrics: Arc<Metrics>,
    /// Kubernetes Events on parents for what koreo does to their resources.
    events: Recorder,
}

/// Reconciles that run at once unless configured otherwise.
pub const DEFAULT_WORKERS: usize = 16;

fn koreo_resource(kind: &str) -> ApiResource {
    ApiResource {
        group: "koreo.dev".into(),
        version: "v1beta1".into(),
        api_version: "koreo.dev/v1beta1".into(),
        kind: kind.into(),
        plural: format!("{}s", kind.to_lowercase()),
    }
}

impl Controller {
    /// A controller for every namespace; see [`Controller::in_namespaces`].
    pub fn new(client: Client) -> Controller {
        Controller {
            kube_api: KubeApi::new(client.clone()),
            client: client.clone(),
            namespaces: Vec::new(),
            reports: None,
            queue: OnceLock::new(),
            managed: ManagedIndex::default(),
            managed_kinds: RwLock::default(),
            workers: DEFAULT_WORKERS,
            tasks: OnceLock::new(),
            metrics: Arc::default(),
            events: Recorder::new(client.clone(), reporter(None)),
        }
    }

    /// Watch only these namespaces (none: all of them).
    pub fn in_namespaces(mut self, namespaces: Vec<String>) -> Controller {
        self.namespaces = namespaces;
        self
    }

    /// How many reconciles may run at once (at least 1).
    pub fn with_workers(mut self, workers: usize) -> Controller {
        self.workers = workers.max(1);
        self
    }

    /// Record metrics here (to serve them, see [`crate::metrics::serve`]).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Controller {
        self.metrics = metrics;
        self
    }

    /// Name this replica in the Events it reports (e.g. its pod name).
    pub fn with_instance(mut self, instance: String) -> Controller {
        self.events = Recorder::new(self.client.clone(), reporter(Some(instance)));
        self
    }

    /// Reports of each reconcile go to this channel.
    pub fn with_reports(mut self, reports: mpsc::UnboundedSender<Report>) -> Controller {
        self.reports = Some(reports);
        self
    }

    /// One API per watched namespace, or one for all namespaces (and for cluster-scoped kinds).
    fn apis(&self, resource: &ApiResource, namespaced: bool) -> Vec<Api<DynamicObject>> {
        scoped_apis(&self.client, &self.namespaces, resource, namespaced)
    }

    /// Events of a kind across the watched namespaces, as one stream.
    fn watch(
        &self,
        resource: &ApiResource,
        namespaced: bool,
    ) -> impl futures::Stream<Item = watcher::Result<watcher::Event<DynamicObject>>> + Send + use<>
    {
        watch_all(self.apis(resource, namespaced))
    }

    /// Every Koreo definition in the watched namespaces, as one workspace.
    async fn load_definitions(&self) -> Workspace {
        let mut ws = Workspace::default();
        let mut statuses = Vec::new();
        for kind in koreo_lang::model::KINDS {
            for api in self.apis(&koreo_resource(kind), true) {
                let Ok(list) = api.list(&Default::default()).await else {
                    continue;
                };
                for object in list.items {
                    let name = object.metadata.name.clone().unwrap_or_default();
                    let ns = object.metadata.namespace.clone().unwrap_or_default();
                    let mut value = serde_json::to_value(&object).unwrap_or(Json::Null);
                    if let Some(meta) = value["metadata"].as_object_mut() {
                        meta.remove("managedFields");
                    }
                    value["apiVersion"] = json!("koreo.dev/v1beta1");
                    value["kind"] = json!(kind);
                    // JSON is YAML: the definition loads as if it were a file named after it.
                    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
                    let path = PathBuf::from(format!("{kind}/{ns}/{name}"));
                    ws.add_source(&path, text);
                    statuses.push((koreo_resource(kind), path, object));
                }
            }
        }
        ws.finish();
        let mut diagnostics = ws.diagnostics.clone();
        diagnostics.extend(koreo_lang::analysis::check(&ws));
        let invalid: HashSet<&std::path::Path> = diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.location.path())
            .collect();
        self.metrics.set_definitions(
            statuses.iter().map(|(resource, path, _)| {
                (resource.kind.clone(), !invalid.contains(path.as_path()))
            }),
        );
        tracing::info!(
            definitions = statuses.len(),
            invalid = invalid.len(),
            "definitions loaded"
        );
        for (resource, path, object) in statuses {
            let namespace = object.metadata.namespace.clone().unwrap_or_default();
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &namespace, &resource);
            let problems: Vec<String> = diagnostics
                .iter()
                .filter(|d| d.is_error() && d.location.path() == path)
                .map(|d| {
                    let at = d.location.span.start;
                    format!(
                        "{} (line {}, column {} of the definition as JSON)",
                        d.message, at.line, at.col
                    )
                })
                .collect();
            write_definition_status(&api, &object, &problems).await;
        }
        ws
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        if let Some(tasks) = self.tasks.get() {
            let _ = tasks.send(Box::pin(task));
        }
    }

    /// Runs until the future is dropped, which stops every watch and reconcile it started (a
    /// reconcile cut short is finished by the next one: each starts from what the cluster says).
    pub async fn run(self) {
        let (spawner, mut spawned) = mpsc::unbounded_channel();
        let _ = self.tasks.set(spawner);
        let mut tasks = tokio::task::JoinSet::new();
        let this = Arc::new(self);
        let workspace = Arc::new(RwLock::new(Arc::new(this.load_definitions().await)));
        let (queue, mut pending) = mpsc::unbounded_channel::<ParentKey>();
        let _ = this.queue.set(queue.clone());
        let watched: Arc<RwLock<HashSet<(String, String)>>> = Arc::default();

        // Definitions: reload on any change, then make sure every parent kind is watched and
        // every parent reconciled with the new definitions.
        for kind in koreo_lang::model::KINDS {
            let this = this.clone();
            let workspace = workspace.clone();
            let queue = queue.clone();
            let watched = watched.clone();
            this.clone().spawn(async move {
                let mut events = this.watch(&koreo_resource(kind), true).boxed();
                let mut generations: HashMap<(Option<String>, String), Option<i64>> =
                    HashMap::new();
                while let Some(event) = events.next().await {
                    // The initial listing was loaded before the watches started; a change of
                    // status only (ours) changes no definition.
                    match &event {
                        Ok(watcher::Event::InitApply(o)) => {
                            generations.insert(
                                (
                                    o.metadata.namespace.clone(),
                                    o.metadata.name.clone().unwrap_or_default(),
                                ),
                                o.metadata.generation,
                            );
                            continue;
                        }
                        Ok(watcher::Event::Apply(o)) => {
                            let id = (
                                o.metadata.namespace.clone(),
                                o.metadata.name.clone().unwrap_or_default(),
                            );
                            if generations.insert(id, o.metadata.generation)
                                == Some(o.metadata.generation)
                            {
                                continue;
                            }
                        }
                        Ok(watcher::Event::Delete(o)) => {
                            generations.remove(&(
                                o.metadata.namespace.clone(),
                                o.metadata.name.clone().unwrap_or_default(),
                            ));
                        }
                        _ => continue,
                    }
                    let fresh = Arc::new(this.load_definitions().await);
                    *workspace.write().await = fresh.clone();
                    this.watch_parents(&fresh, &watched, &queue).await;
                }
            });
        }
        let initial = workspace.read().await.clone();
        this.watch_parents(&initial, &watched, &queue).await;
        this.metrics.set_ready();

        // Reconciles: one at a time per parent, requeued after their outcome's delay.
        let busy: Arc<RwLock<HashSet<ParentKey>>> = Arc::default();
        let again: Arc<RwLock<HashSet<ParentKey>>> = Arc::default();
        let failures: Arc<RwLock<HashMap<ParentKey, u32>>> = Arc::default();
        let workers = Arc::new(tokio::sync::Semaphore::new(this.workers));
        let waiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // One timer per parent: the latest reconcile's delay replaces any earlier one, so a
        // parent that changes often does not pile up follow-up reconciles.
        let (schedule, mut scheduled) = mpsc::unbounded_channel::<(ParentKey, Duration)>();
        let mut timers = tokio_util::time::DelayQueue::<ParentKey>::new();
        let mut timer_of: HashMap<ParentKey, tokio_util::time::delay_queue::Key> = HashMap::new();
        loop {
            this.metrics.set_queue_depth(
                pending.len() + waiting.load(std::sync::atomic::Ordering::Relaxed),
            );
            let key = tokio::select! {
                Some(task) = spawned.recv() => {
                    tasks.spawn(task);
                    continue;
                }
                Some((key, delay)) = scheduled.recv() => {
                    match timer_of.get(&key) {
                        Some(timer) => timers.reset(timer, delay),
                        None => {
                            let timer = timers.insert(key.clone(), delay);
                            timer_of.insert(key, timer);
                        }
                    }
                    continue;
                }
                Some(due) = timers.next(), if !timers.is_empty() => {
                    let key = due.into_inner();
                    timer_of.remove(&key);
                    key
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                key = pending.recv() => match key {
                    Some(key) => key,
                    None => return,
                },
            };
            if !busy.write().await.insert(key.clone()) {
                again.write().await.insert(key);
                continue;
            }
            let schedule = schedule.clone();
            let (this, workspace, queue, busy, again, failures) = (
                this.clone(),
                workspace.clone(),
                queue.clone(),
                busy.clone(),
                again.clone(),
                failures.clone(),
            );
            let workers = workers.clone();
            let waiting = waiting.clone();
            waiting.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tasks.spawn(async move {
                let worker = workers.acquire_owned().await;
                waiting.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                let Ok(worker) = worker else {
                    return;
                };
                let ws = workspace.read().await.clone();
                let delay = match this.reconcile(&ws, &key).await {
                    Ok(delay) => {
                        failures.write().await.remove(&key);
                        delay
                    }
                    // API failures: back off exponentially, with jitter so that many parents
                    // failing together do not come back together.
                    Err(error) => {
                        tracing::warn!(parent = %key, %error, "reconcile failed; backing off");
                        let mut failures = failures.write().await;
                        let n = failures.entry(key.clone()).or_insert(0);
                        *n += 1;
                        Some(backoff(*n))
                    }
                };
                // The worker is free for others while this parent waits for its next turn.
                drop(worker);
                busy.write().await.remove(&key);
                if again.write().await.remove(&key) {
                    let _ = queue.send(key.clone());
                }
                if let Some(delay) = delay {
                    let _ = schedule.send((key, delay));
                }
            });
        }
    }

    /// Starts a watch for each parent kind not watched yet, and queues every parent.
    async fn watch_parents(
        self: &Arc<Self>,
        ws: &Workspace,
        watched: &RwLock<HashSet<(String, String)>>,
        queue: &mpsc::UnboundedSender<ParentKey>,
    ) {
        for def in &ws.definitions {
            let koreo_lang::model::Definition::Workflow(w) = def else {
                continue;
            };
            let Some(crd) = &w.crd_ref else { continue };
            let api_version = crd.api_version();
            let gvk = (api_version.clone(), crd.kind.clone());
            if !watched.write().await.insert(gvk.clone()) {
                // Already watched: requeue its parents so they see the new definitions.
                let _ = self.requeue_all(&gvk, queue).await;
                continue;
            }
            let this = self.clone();
            let queue = queue.clone();
            self.spawn(async move {
                let Some((resource, namespaced, _)) = this.parent_kind(&gvk.0, &gvk.1).await else {
                    return;
                };
                let mut events = this.watch(&resource, namespaced).boxed();
                let mut seen: HashMap<(Option<String>, String), Json> = HashMap::new();
                while let Some(event) = events.next().await {
                    let objects = match event {
                        Ok(
                            watcher::Event::Apply(o)
                            | watcher::Event::InitApply(o)
                            | watcher::Event::Delete(o),
                        ) => vec![o],
                        _ => continue,
                    };
                    for o in objects {
                        // Our own status and annotation writes change nothing a reconcile
                        // reads: they do not start another one.
                        let id = (
                            o.metadata.namespace.clone(),
                            o.metadata.name.clone().unwrap_or_default(),
                        );
                        let print = fingerprint(&serde_json::to_value(&o).unwrap_or(Json::Null));
                        if seen.insert(id, print.clone()).as_ref() == Some(&print) {
                            continue;
                        }
                        let _ = queue.send(ParentKey {
                            api_version: gvk.0.clone(),
                            kind: gvk.1.clone(),
                            namespace: o.metadata.namespace.clone(),
                            name: o.metadata.name.clone().unwrap_or_default(),
                        });
                    }
                }
            });
        }
    }

    async fn requeue_all(
        &self,
        gvk: &(String, String),
        queue: &mpsc::UnboundedSender<ParentKey>,
    ) -> Option<()> {
        let (resource, namespaced, _) = self.parent_kind(&gvk.0, &gvk.1).await?;
        for api in self.apis(&resource, namespaced) {
            for o in api.list(&Default::default()).await.ok()?.items {
                let _ = queue.send(ParentKey {
                    api_version: gvk.0.clone(),
                    kind: gvk.1.clone(),
                    namespace: o.metadata.namespace.clone(),
                    name: o.metadata.name.clone().unwrap_or_default(),
                });
            }
        }
        Some(())
    }

    /// A parent kind's resource, whether it is namespaced, and whether it has a status
    /// subresource.
    async fn parent_kind(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Option<(ApiResource, bool, bool)> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .ok()?;
        Some((
            resource,
            caps.scope == Scope::Namespaced,
            caps.subresources.iter().any(|(r, _)| r.plural == "status"),
        ))
    }

    /// One reconcile of one parent. Returns when to reconcile it again.
    /// One reconcile of one parent: when to look again (`None`: only on a change), or why the
    /// API failed (the caller backs off).
    async fn reconcile(&self, ws: &Workspace, key: &ParentKey) -> Result<Option<Duration>, String> {
        let span =
            tracing::info_span!("reconcile", parent = %key, workflow = tracing::field::Empty);
        self.reconcile_parent(ws, key).instrument(span).await
    }

    async fn reconcile_parent(
        &self,
        ws: &Workspace,
        key: &ParentKey,
    ) -> Result<Option<Duration>, String> {
        let started = std::time::Instant::now();
        let unreachable = || format!("cannot reach the API for {} {}", key.api_version, key.kind);
        let workflows: Vec<&Arc<Workflow>> = ws
            .definitions
            .iter()
            .filter_map(|d| match d {
                koreo_lang::model::Definition::Workflow(w)
                    if w.crd_ref.as_ref().is_some_and(|c| {
                        c.api_version() == key.api_version && c.kind == key.kind
                    }) =>
                {
                    Some(w)
                }
                _ => None,
            })
            .collect();
        // No workflow for this kind (any more): nothing to do until one appears.
        let Some(workflow) = workflows.first().map(|w| Arc::clone(w)) else {
            return Ok(None);
        };
        tracing::Span::current().record("workflow", workflow.meta.name.as_str());
        let (resource, _, has_status) = self
            .parent_kind(&key.api_version, &key.kind)
            .await
            .ok_or_else(unreachable)?;
        let api = match &key.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        let Some(object) = api.get_opt(&key.name).await.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let parent_json = serde_json::to_value(&object).map_err(|e| e.to_string())?;
        let previous: Json = parent_json["metadata"]["annotations"][MANAGED_RESOURCES]
            .as_str()
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or(Json::Null);
        if parent_json["metadata"]["deletionTimestamp"].is_string() {
            // Deleted: handle what it manages by each function's delete policy, last step first,
            // then let it go.
            let mut entries = Vec::new();
            collect_entries(&previous, &mut entries);
            entries.reverse();
            let cleaned = self.release(ws, &parent_json, &entries).await;
            if cleaned && self.remove_finalizer(&api, &parent_json).await {
                return Ok(None);
            }
            return Err("cleanup of a deleted parent is not finished".into());
        }
        if workflows.len() > 1 {
            let names: Vec<&str> = workflows.iter().map(|w| w.meta.name.as_str()).collect();
            let message = format!(
                "workflows {} are all triggered by {} {}: koreo runs none of them until only one is",
                names.join(", "),
                key.api_version,
                key.kind
            );
            tracing::warn!("{message}");
            self.event(
                &parent_json,
                "MultipleWorkflows",
                "Reconcile",
                message,
                false,
            )
            .await;
            return Ok(None);
        }
        // A parent that already manages objects needs the finalizer; one that does not gets it
        // before its first write (a parent a workflow skips is left without it).
        let mut entries = Vec::new();
        collect_entries(&previous, &mut entries);
        if !entries.is_empty() && !self.ensure_finalizer(&api, &parent_json).await {
            return Err("could not add the finalizer".into());
        }
        let parent = json!({
            "apiVersion": key.api_version, "kind": key.kind,
            "metadata": parent_json["metadata"], "spec": parent_json["spec"],
            "state": parent_json["status"]["state"],
        });

        let cluster = ForParent {
            controller: self,
            parent_api: &api,
            parent: &parent_json,
            finalized: tokio::sync::OnceCell::new(),
        };
        let engine = Engine::new(ws, &cluster, Owner::of(&parent));
        let mut run = engine.run_workflow(&workflow, &parent).await;
        keep_unsettled(&previous, &mut run);
        self.track_managed(key, &run.resources).await;
        let gone = no_longer_produced(&previous, &run);
        // Until they are released, what is gone stays in the annotation, to be tried again.
        if !gone.is_empty() && !self.release(ws, &parent_json, &gone).await {
            return Err("pruning what the workflow no longer produces is not finished".into());
        }
        // A parent the workflow skips and never managed is left untouched, status included:
        // a decorator does not write into every Namespace it does not apply to.
        let untouched = matches!(run.outcome, Outcome::Skip { .. })
            && entries.is_empty()
            && parent_json["status"]["conditions"].is_null();
        let conditions = if untouched {
            None
        } else {
            self.write_status(&api, has_status, &parent_json, &run)
                .await
        };
        let expression_errors = run
            .steps
            .values()
            .filter(|o| o.is_expression_error())
            .count()
            + run.state_errors.len();
        self.metrics.reconciled(
            &workflow.meta.name,
            run.outcome.name(),
            started.elapsed(),
            expression_errors as u64,
        );
        for (label, outcome) in run.steps.iter().filter(|(_, o)| !o.is_ok()) {
            tracing::info!(step = %label, outcome = outcome.name(), message = outcome.message().unwrap_or(""), "step not done");
        }
        tracing::info!(
            outcome = run.outcome.name(),
            writes = run.writes,
            took_ms = started.elapsed().as_millis() as u64,
            "reconciled"
        );
        self.publish_events(&parent_json, &run).await;
        if let Some(reports) = &self.reports {
            let _ = reports.send(Report {
                parent: key.to_string(),
                workflow: workflow.meta.name.clone(),
                outcome: run.outcome.clone(),
                steps: run
                    .steps
                    .iter()
                    .filter(|(_, o)| !o.is_ok())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                conditions,
            });
        }
        // After writing, look again soon: writes are checked as soon as they land, whatever
        // delay the function asked for (watches usually get there first).
        if run.api_errors > 0 {
            return Err(format!("{} request(s) to the API failed", run.api_errors));
        }
        if run.writes > 0 {
            return Ok(Some(Duration::from_secs(1)));
        }
        Ok(match &run.outcome {
            Outcome::Retry { delay, .. } => Some(Duration::from_secs((*delay).max(1) as u64)),
            Outcome::PermFail { .. } => None,
            _ => Some(RESYNC),
        })
    }

    /// Adds koreo's finalizer, so a deleted parent waits for its cleanup. False if that failed.
    async fn ensure_finalizer(&self, api: &Api<DynamicObject>, parent: &Json) -> bool {
        let finalizers: Vec<Json> = parent["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if finalizers.iter().any(|f| f == FINALIZER) {
            return true;
        }
        let name = parent["metadata"]["name"].as_str().unwrap_or("");
        let mut all = finalizers;
        all.push(json!(FINALIZER));
        // The resourceVersion makes this a compare-and-swap: others' finalizers are not lost.
        let patch = json!({"metadata": {"finalizers": all, "resourceVersion": parent["metadata"]["resourceVersion"]}});
        api.patch(name, &as_koreo(), &Patch::Merge(patch))
            .await
            .is_ok()
    }

    async fn remove_finalizer(&self, api: &Api<DynamicObject>, parent: &Json) -> bool {
        let name = parent["metadata"]["name"].as_str().unwrap_or("");
        let rest: Vec<Json> = parent["metadata"]["finalizers"]
            .as_array()
            .map(|f| f.iter().filter(|f| *f != FINALIZER).cloned().collect())
            .unwrap_or_default();
        let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": parent["metadata"]["resourceVersion"]}});
        api.patch(name, &as_koreo(), &Patch::Merge(patch))
            .await
            .is_ok()
    }

    /// Applies each object's delete policy: `destroy` deletes it, `abandon` leaves it without
    /// the parent's owner reference and with a label saying so. Only objects this parent owns
    /// (by owner reference) are touched; read-only ones never. True when all went well.
    async fn release(&self, ws: &Workspace, parent: &Json, entries: &[Json]) -> bool {
        let parent_uid = parent["metadata"]["uid"].as_str().unwrap_or("");
        let mut all_done = true;
        for entry in entries {
            if entry["readonly"].as_bool() == Some(true) {
                continue;
            }
            let (Some(api_version), Some(kind), Some(name)) = (
                entry["apiVersion"].as_str(),
                entry["kind"].as_str(),
                entry["name"].as_str(),
            ) else {
                continue;
            };
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let Ok((resource, caps)) = kube::discovery::pinned_kind(
                &self.client,
                &GroupVersionKind::gvk(group, version, kind),
            )
            .await
            else {
                all_done = false;
                continue;
            };
            let api: Api<DynamicObject> =
                match (entry["namespace"].as_str(), caps.scope == Scope::Namespaced) {
                    (Some(ns), true) => Api::namespaced_with(self.client.clone(), ns, &resource),
                    _ => Api::all_with(self.client.clone(), &resource),
                };
            let object = match api.get_opt(name).await {
                Ok(Some(o)) => o,
                Ok(None) => continue,
                Err(_) => {
                    all_done = false;
                    continue;
                }
            };
            let refs = object.metadata.owner_references.clone().unwrap_or_default();
            if !made_for(
                &serde_json::to_value(&object).unwrap_or(Json::Null),
                parent_uid,
            ) {
                continue;
            }
            let namespace = entry["namespace"].as_str();
            let policy = entry["resourceFunction"]
                .as_str()
                .and_then(|f| ws.resource_function(f, namespace))
                .map(|f| f.delete)
                .unwrap_or_default();
            let done = match policy {
                DeletePolicy::Destroy => {
                    api.delete(name, &DeleteParams::background()).await.is_ok()
                }
                DeletePolicy::Abandon => {
                    let rest: Vec<Json> = refs
                        .iter()
                        .filter(|r| r.uid != parent_uid)
                        .map(|r| serde_json::to_value(r).unwrap_or(Json::Null))
                        .collect();
                    let patch = json!({"metadata": {"ownerReferences": rest, "labels": {ABANDONED_LABEL: "true"}}});
                    api.patch(name, &as_koreo(), &Patch::Merge(patch))
                        .await
                        .is_ok()
                }
            };
            let (reason, verb) = match policy {
                DeletePolicy::Destroy => ("Deleted", "Delete"),
                DeletePolicy::Abandon => ("Abandoned", "Abandon"),
            };
            let object = format!("{kind}:{}:{name}", namespace.unwrap_or(""));
            tracing::info!(%object, policy = reason, done, "released");
            let (reason, note) = if done {
                (reason.to_string(), format!("{reason} {object}"))
            } else {
                (
                    format!("{verb}Failed"),
                    format!("Could not {} {object}; will retry", verb.to_lowercase()),
                )
            };
            self.event(parent, &reason, verb, note, done).await;
            all_done &= done;
        }
        all_done
    }

    /// An Event on the parent. Failing to record one changes nothing else.
    async fn event(&self, parent: &Json, reason: &str, action: &str, note: String, normal: bool) {
        let regarding = ObjectReference {
            api_version: parent["apiVersion"].as_str().map(str::to_string),
            kind: parent["kind"].as_str().map(str::to_string),
            name: parent["metadata"]["name"].as_str().map(str::to_string),
            namespace: parent["metadata"]["namespace"].as_str().map(str::to_string),
            uid: parent["metadata"]["uid"].as_str().map(str::to_string),
            ..ObjectReference::default()
        };
        let event = Event {
            type_: if normal {
                EventType::Normal
            } else {
                EventType::Warning
            },
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(error) = self.events.publish(&event, &regarding).await {
            tracing::debug!(%error, "could not record an event");
        }
    }

    /// Events for the writes a reconcile made, and for a workflow that failed for good.
    async fn publish_events(&self, parent: &Json, run: &WorkflowRun) {
        for change in &run.changes {
            let done = match change.verb {
                "Create" => "Created",
                "Patch" => "Patched",
                _ => "Deleted",
            };
            let (reason, note) = match &change.error {
                None => (done.to_string(), format!("{done} {}", change.object)),
                Some(error) => (
                    format!("{}Failed", change.verb),
                    format!("{} {} failed: {error}", change.verb, change.object),
                ),
            };
            self.event(parent, &reason, change.verb, note, change.error.is_none())
                .await;
        }
        if let Outcome::PermFail { message, .. } = &run.outcome {
            self.event(parent, "Failed", "Reconcile", message.clone(), false)
                .await;
        }
    }

    /// Remembers what a parent manages, and watches those kinds: a change to a managed object
    /// (created, drifted, status updated, deleted) requeues its parent at once.
    async fn track_managed(&self, parent: &ParentKey, resources: &Json) {
        let mut found = Vec::new();
        collect_managed(resources, &mut found);
        {
            let mut managed = self.managed.write().await;
            for parents in managed.values_mut() {
                parents.remove(parent);
            }
            managed.retain(|_, parents| !parents.is_empty());
            for key in &found {
                managed
                    .entry(key.clone())
                    .or_default()
                    .insert(parent.clone());
            }
        }
        for (api_version, kind, _, _) in found {
            if !self
                .managed_kinds
                .write()
                .await
                .insert((api_version.clone(), kind.clone()))
            {
                continue;
            }
            let Some(queue) = self.queue.get().cloned() else {
                continue;
            };
            let (client, namespaces, managed) = (
                self.client.clone(),
                self.namespaces.clone(),
                self.managed.clone(),
            );
            self.spawn(async move {
                let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
                let gvk = GroupVersionKind::gvk(group, version, &kind);
                let Ok((resource, caps)) = kube::discovery::pinned_kind(&client, &gvk).await else {
                    return;
                };
                let apis = scoped_apis(
                    &client,
                    &namespaces,
                    &resource,
                    caps.scope == Scope::Namespaced,
                );
                let mut events = watch_all(apis).boxed();
                while let Some(event) = events.next().await {
                    let o = match event {
                        // The initial listing counts too: the object may have changed before the
                        // watch began (it is often the one the reconcile just created).
                        Ok(
                            watcher::Event::Apply(o)
                            | watcher::Event::InitApply(o)
                            | watcher::Event::Delete(o),
                        ) => o,
                        _ => continue,
                    };
                    let key = (
                        api_version.clone(),
                        kind.clone(),
                        o.metadata.namespace.clone(),
                        o.metadata.name.clone().unwrap_or_default(),
                    );
                    let parents: Vec<ParentKey> = managed
                        .read()
                        .await
                        .get(&key)
                        .map(|p| p.iter().cloned().collect())
                        .unwrap_or_default();
                    for p in parents {
                        let _ = queue.send(p);
                    }
                }
            });
        }
    }

    /// Writes conditions, state and errors to the parent's status, and the managed-resources
    /// annotation, only when they differ from what is there. Returns the conditions if written.
    async fn write_status(
        &self,
        api: &Api<DynamicObject>,
        has_status: bool,
        parent: &Json,
        run: &WorkflowRun,
    ) -> Option<Vec<Json>> {
        let name = parent["metadata"]["name"].as_str()?;
        let old = &parent["status"];
        let now = chrono_now();
        let conditions: Vec<Json> = run
            .conditions
            .iter()
            .map(|c| {
                let previous = old["conditions"]
                    .as_array()
                    .and_then(|cs| cs.iter().find(|p| p["type"] == c["type"]));
                let mut c = c.clone();
                // lastTransitionTime changes only when the status does.
                let since = match previous {
                    Some(p) if p["status"] == c["status"] => p["lastTransitionTime"].clone(),
                    _ => json!(now),
                };
                c["lastTransitionTime"] = since;
                c
            })
            .collect();
        // `state` is replaced as a whole: keys that are gone are written as null, which removes them.
        // While the workflow is not Ok, the last good values of keys it did not produce stay.
        let keep_old = !run.outcome.is_ok();
        let mut state = run.state.clone();
        if let (Some(old_state), Some(new_state)) =
            (old["state"].as_object(), state.as_object_mut())
        {
            for (key, value) in old_state {
                let kept = if keep_old { value.clone() } else { Json::Null };
                new_state.entry(key.clone()).or_insert(kept);
            }
        }
        let mut effective = state.clone();
        if let Some(map) = effective.as_object_mut() {
            map.retain(|_, v| !v.is_null());
        }
        let errors = match &run.outcome {
            Outcome::Retry { message, .. } | Outcome::PermFail { message, .. } => json!(message),
            _ => Json::Null,
        };
        let status = json!({"conditions": conditions, "state": state, "koreo": {"errors": errors}});
        let annotation = run.resources.to_string();
        let same_conditions = strip_times(&old["conditions"]) == strip_times(&json!(conditions))
            && old["conditions"].as_array().map(Vec::len) == Some(conditions.len());
        let same_state =
            old["state"] == effective || (old["state"].is_null() && effective == json!({}));
        let same_errors = old["koreo"]["errors"] == errors;
        let same_annotation = parent["metadata"]["annotations"][MANAGED_RESOURCES].as_str()
            == Some(annotation.as_str());
        if !same_annotation {
            let patch = json!({"metadata": {"annotations": {MANAGED_RESOURCES: annotation}}});
            let _ = api.patch(name, &as_koreo(), &Patch::Merge(patch)).await;
        }
        if same_conditions && same_state && same_errors {
            return None;
        }
        let patch = json!({"status": status});
        let params = as_koreo();
        if has_status {
            let _ = api.patch_status(name, &params, &Patch::Merge(patch)).await;
        } else {
            let _ = api.patch(name, &params, &Patch::Merge(patch)).await;
        }
        Some(conditions)
    }
}

fn scoped_apis(
    client: &Client,
    namespaces: &[String],
    resource: &ApiResource,
    namespaced: bool,
) -> Vec<Api<DynamicObject>> {
    if !namespaced || namespaces.is_empty() {
        return vec![Api::all_with(client.clone(), resource)];
    }
    namespaces
        .iter()
        .map(|ns| Api::namespaced_with(client.clone(), ns, resource))
        .collect()
}

fn watch_all(
    apis: Vec<Api<DynamicObject>>,
) -> impl futures::Stream<Item = watcher::Result<watcher::Event<DynamicObject>>> + Send {
    // Backoff: a kind that is missing or forbidden is retried calmly, not in a tight loop.
    futures::stream::select_all(apis.into_iter().map(|api| {
        watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed()
    }))
}

/// The cluster as one parent's reconcile sees it: before the first write for a parent, koreo's
/// finalizer is added to it, so that nothing made for it can outlive it unhandled.
struct ForParent<'a> {
    controller: &'a Controller,
    parent_api: &'a Api<DynamicObject>,
    parent: &'a Json,
    finalized: tokio::sync::OnceCell<bool>,
}

impl ForParent<'_> {
    async fn finalize(&self) -> Result<(), WriteError> {
        let done = *self
            .finalized
            .get_or_init(|| {
                self.controller
                    .ensure_finalizer(self.parent_api, self.parent)
            })
            .await;
        if done {
            Ok(())
        } else {
            Err(WriteError::Transient(
                "could not add koreo's finalizer to the parent first".into(),
            ))
        }
    }
}

impl ResourceApi for ForParent<'_> {
    async fn get(&self, id: &ResourceId) -> Result<Option<Json>, String> {
        self.controller.kube_api.get(id).await
    }

    async fn create(&self, id: &ResourceId, body: &Json) -> Result<Json, WriteError> {
        self.finalize().await?;
        self.controller.kube_api.create(id, body).await
    }

    async fn apply(&self, id: &ResourceId, body: &Json) -> Result<Json, WriteError> {
        self.finalize().await?;
        self.controller.kube_api.apply(id, body).await
    }

    async fn delete(&self, id: &ResourceId) -> Result<(), WriteError> {
        self.finalize().await?;
        self.controller.kube_api.delete(id).await
    }
}

fn reporter(instance: Option<String>) -> Reporter {
    Reporter {
        controller: "koreo".into(),
        instance,
    }
}

impl std::fmt::Display for ParentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// The managed-object entries of a tree, in step order.
fn collect_entries(tree: &Json, out: &mut Vec<Json>) {
    match tree {
        Json::Object(map) if map.contains_key("kind") && map.contains_key("name") => {
            out.push(tree.clone())
        }
        Json::Object(map) => map.values().for_each(|v| collect_entries(v, out)),
        Json::Array(items) => items.iter().for_each(|v| collect_entries(v, out)),
        _ => {}
    }
}

/// Steps that are waiting or failing did not say what they manage this time: they keep what they
/// managed before, so that it is neither forgotten nor left to garbage collection.
fn keep_unsettled(previous: &Json, run: &mut WorkflowRun) {
    let Some(old_steps) = previous["resources"].as_object() else {
        return;
    };
    for (label, old) in old_steps {
        let now = &mut run.resources["resources"][label];
        if run.steps.contains_key(label) && !run.settled.contains(label) && now.is_null() {
            *now = old.clone();
        }
    }
}

/// Objects the last reconcile managed that this one no longer produces: the step is gone, or it
/// settled (Ok, or skipped) without them (a `forEach` item gone, a skipped step). Steps still
/// waiting or failing keep theirs.
fn no_longer_produced(previous: &Json, run: &WorkflowRun) -> Vec<Json> {
    let Some(old_steps) = previous["resources"].as_object() else {
        return Vec::new();
    };
    let mut gone = Vec::new();
    for (label, old) in old_steps {
        let settled = !run.steps.contains_key(label) || run.settled.contains(label);
        if !settled {
            continue;
        }
        let mut before = Vec::new();
        collect_entries(old, &mut before);
        let mut now = Vec::new();
        collect_entries(&run.resources["resources"][label], &mut now);
        let same = |a: &Json, b: &Json| {
            ["apiVersion", "kind", "namespace", "name"]
                .iter()
                .all(|k| a[k] == b[k])
        };
        gone.extend(
            before
                .into_iter()
                .filter(|b| !now.iter().any(|n| same(b, n))),
        );
    }
    gone.reverse();
    gone
}

/// The objects in a managed-resources tree (`{"workflow", "resources": {label: id | [id] | tree}}`).
fn collect_managed(tree: &Json, out: &mut Vec<ManagedKey>) {
    match tree {
        Json::Object(map) if map.contains_key("kind") && map.contains_key("name") => {
            if let (Some(api_version), Some(kind), Some(name)) = (
                map.get("apiVersion").and_then(Json::as_str),
                map.get("kind").and_then(Json::as_str),
                map.get("name").and_then(Json::as_str),
            ) {
                let namespace = map
                    .get("namespace")
                    .and_then(Json::as_str)
                    .map(str::to_string);
                out.push((
                    api_version.to_string(),
                    kind.to_string(),
                    namespace,
                    name.to_string(),
                ));
            }
        }
        Json::Object(map) => map.values().for_each(|v| collect_managed(v, out)),
        Json::Array(items) => items.iter().for_each(|v| collect_managed(v, out)),
        _ => {}
    }
}

/// What a reconcile reads of a parent: spec, labels, annotations other than koreo's and
/// kubectl's, and whether it is being deleted. Status is not part of it.
fn fingerprint(parent: &Json) -> Json {
    let annotations: Map<String, Json> = parent["metadata"]["annotations"]
        .as_object()
        .map(|a| {
            a.iter()
                .filter(|(k, _)| {
                    !k.starts_with("koreo.dev/") && !k.starts_with("kubectl.kubernetes.io/")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "spec": parent["spec"],
        "labels": parent["metadata"]["labels"],
        "annotations": annotations,
        "deleting": parent["metadata"]["deletionTimestamp"].is_string(),
    })
}

/// A definition's `Ready` condition: whether it is valid, and if not, why. Written only when
/// it changes.
async fn write_definition_status(
    api: &Api<DynamicObject>,
    object: &DynamicObject,
    problems: &[String],
) {
    let (status, reason, message) = if problems.is_empty() {
        ("True", "Valid", "The definition is valid.".to_string())
    } else {
        ("False", "Invalid", problems.join("; "))
    };
    let current = &object.data["status"]["conditions"];
    let same = current
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .is_some_and(|c| c["status"] == status && c["message"] == message.as_str());
    if same {
        return;
    }
    let Some(name) = object.metadata.name.as_deref() else {
        return;
    };
    let condition = json!({"type": "Ready", "status": status, "reason": reason, "message": message, "lastTransitionTime": chrono_now()});
    let params = as_koreo();
    let _ = api
        .patch_status(
            name,
            &params,
            &Patch::Merge(json!({"status": {"conditions": [condition]}})),
        )
        .await;
}

/// The wait after the `n`th failure in a row: 1 s doubling to at most 5 min, with ±20% jitter.
fn backoff(n: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let base = Duration::from_secs(1) * 2u32.saturating_pow(n.saturating_sub(1)).min(300);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(n);
    let jitter = 0.8 + 0.4 * (hasher.finish() % 1000) as f64 / 1000.0;
    base.mul_f64(jitter).min(Duration::from_secs(300))
}

/// Writes show as koreo's in `managedFields`.
fn as_koreo() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
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

fn chrono_now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_five_minutes() {
        for (n, base) in [(1u32, 1.0), (2, 2.0), (5, 16.0)] {
            let d = backoff(n).as_secs_f64();
            assert!(d >= base * 0.8 && d <= base * 1.2, "failure {n}: {d}");
        }
        assert!(backoff(30) <= Duration::from_secs(300));
        let spread: HashSet<u128> = (0..20).map(|_| backoff(4).as_millis()).collect();
        assert!(spread.len() > 1, "jitter varies the waits");
    }
}
