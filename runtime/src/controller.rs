//! The controller: loads Koreo definitions from the cluster (and reloads them as they change),
//! watches the parent kind of every Workflow with a `crdRef`, and reconciles each parent with
//! the engine, one reconcile per parent at a time, requeued by outcome.

use crate::boundary::Boundary;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use koreo_lang::Workspace;
use koreo_lang::eval::Outcome;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Map, Value as Json, json};
use tokio::sync::{RwLock, mpsc};

use crate::kube_api::{KubeApi, as_koreo};
use crate::metrics::Metrics;
use crate::pass::{Next, Notice};
use koreo_lang::eval::ResourceId;
use tracing::Instrument;

pub use crate::pass::{ABANDONED_LABEL, FINALIZER, MANAGED_RESOURCES, RESYNC};

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

/// Parents being reconciled, and those changed meanwhile (reconciled again right after).
#[derive(Default)]
struct Turns {
    busy: HashSet<ParentKey>,
    again: HashSet<ParentKey>,
}

/// One parent's turn: when it ends, the parent is free, and reconciled again if it changed.
struct Turn {
    turns: Arc<Mutex<Turns>>,
    key: ParentKey,
    queue: mpsc::UnboundedSender<ParentKey>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut turns = lock(&self.turns);
        turns.busy.remove(&self.key);
        if turns.again.remove(&self.key) {
            let _ = self.queue.send(self.key.clone());
        }
    }
}

fn lock(turns: &Mutex<Turns>) -> std::sync::MutexGuard<'_, Turns> {
    turns.lock().unwrap_or_else(|e| e.into_inner())
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
    events: crate::events::Events,
    /// Where workflows may read and write.
    boundary: Boundary,
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
            events: crate::events::Events::new(client.clone(), None),
            boundary: Boundary::default(),
        }
    }

    /// Watch only these namespaces (none: all of them).
    pub fn in_namespaces(mut self, namespaces: Vec<String>) -> Controller {
        self.namespaces = namespaces;
        self
    }

    /// How many reconciles may run at once (at least 1).
    /// Widens where workflows may read and write beyond their own and their parent's namespace.
    pub fn with_boundary(mut self, boundary: Boundary) -> Controller {
        self.boundary = boundary;
        self
    }

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
        self.events = crate::events::Events::new(self.client.clone(), Some(instance));
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
                let Some(list) = list_until_answered(&api, kind).await else {
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
                    ws.add_source(&path, text.clone());
                    statuses.push((koreo_resource(kind), path, object, text));
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
        self.metrics
            .set_definitions(statuses.iter().map(|(resource, path, _, _)| {
                (resource.kind.clone(), !invalid.contains(path.as_path()))
            }));
        tracing::info!(
            definitions = statuses.len(),
            invalid = invalid.len(),
            "definitions loaded"
        );
        for (resource, path, object, text) in statuses {
            let namespace = object.metadata.namespace.clone().unwrap_or_default();
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &namespace, &resource);
            // A definition read from the cluster has no file a person wrote: errors say where
            // by field path (`spec.steps[2].inputs.name`).
            let errors: Vec<&koreo_lang::source::Diagnostic> = diagnostics
                .iter()
                .filter(|d| d.is_error() && d.location.path() == path)
                .collect();
            let root = Some(())
                .filter(|_| !errors.is_empty())
                .and_then(|_| koreo_lang::yaml::parse_documents(&text).ok())
                .and_then(|docs| docs.into_iter().next())
                .map(|d| d.root);
            let problems: Vec<String> = errors
                .iter()
                .map(|d| {
                    let field = root.as_ref().map(|r| r.path_at(d.location.span.start));
                    match field.filter(|f| !f.is_empty()) {
                        Some(field) => format!("{} (at {field})", d.message),
                        None => d.message.clone(),
                    }
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
        // every parent reconciled with the new definitions. One task reloads, so a slow load
        // never overwrites a newer one; changes that arrive meanwhile make one more reload.
        let (reload, mut reloads) = mpsc::unbounded_channel::<()>();
        {
            let (this, workspace, queue, watched) = (
                this.clone(),
                workspace.clone(),
                queue.clone(),
                watched.clone(),
            );
            this.clone().spawn(async move {
                while reloads.recv().await.is_some() {
                    while reloads.try_recv().is_ok() {}
                    let fresh = Arc::new(this.load_definitions().await);
                    *workspace.write().await = fresh.clone();
                    this.watch_parents(&fresh, &watched, &queue).await;
                }
            });
        }
        for kind in koreo_lang::model::KINDS {
            let this = this.clone();
            let reload = reload.clone();
            this.clone().spawn(async move {
                let resource = koreo_resource(kind);
                // The first listing of each namespace was loaded before the watches started;
                // a later one (after 410 Gone, or a reconnect) may hide changes and deletions
                // made while no watch was open, so it reloads.
                let startup_listings = this.apis(&resource, true).len();
                let mut listings = 0;
                let mut events = this.watch(&resource, true).boxed();
                let mut generations: HashMap<(Option<String>, String), Option<i64>> =
                    HashMap::new();
                while let Some(event) = events.next().await {
                    // A change of status only (ours) changes no definition.
                    let changed = match &event {
                        Ok(watcher::Event::InitApply(o)) => {
                            generations.insert(
                                (
                                    o.metadata.namespace.clone(),
                                    o.metadata.name.clone().unwrap_or_default(),
                                ),
                                o.metadata.generation,
                            );
                            false
                        }
                        Ok(watcher::Event::InitDone) => {
                            listings += 1;
                            listings > startup_listings
                        }
                        Ok(watcher::Event::Apply(o)) => {
                            let id = (
                                o.metadata.namespace.clone(),
                                o.metadata.name.clone().unwrap_or_default(),
                            );
                            generations.insert(id, o.metadata.generation)
                                != Some(o.metadata.generation)
                        }
                        Ok(watcher::Event::Delete(o)) => {
                            generations.remove(&(
                                o.metadata.namespace.clone(),
                                o.metadata.name.clone().unwrap_or_default(),
                            ));
                            true
                        }
                        _ => false,
                    };
                    if changed {
                        let _ = reload.send(());
                    }
                }
            });
        }
        let initial = workspace.read().await.clone();
        this.watch_parents(&initial, &watched, &queue).await;
        this.metrics.set_ready();

        // Reconciles: one at a time per parent, requeued after their outcome's delay.
        let turns: Arc<Mutex<Turns>> = Arc::default();
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
            {
                // One lock for both sets: a change that arrives while the parent is busy is
                // never lost between the check and the reconcile finishing.
                let mut turns = lock(&turns);
                if !turns.busy.insert(key.clone()) {
                    turns.again.insert(key);
                    continue;
                }
            }
            let schedule = schedule.clone();
            let turn = Turn {
                turns: turns.clone(),
                key: key.clone(),
                queue: queue.clone(),
            };
            let (this, workspace, failures) = (this.clone(), workspace.clone(), failures.clone());
            let workers = workers.clone();
            let waiting = waiting.clone();
            waiting.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tasks.spawn(async move {
                let worker = workers.acquire_owned().await;
                waiting.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                let Ok(worker) = worker else {
                    return;
                };
                // Ends the turn however the reconcile ends (even a panic), so the parent is not
                // stuck as busy.
                let _turn = turn;
                let ws = workspace.read().await.clone();
                let delay = match this.reconcile(&ws, &key).await {
                    next @ (Next::OnChange | Next::After(_)) => {
                        failures.write().await.remove(&key);
                        match next {
                            Next::After(delay) => Some(delay),
                            _ => None,
                        }
                    }
                    // API failures: back off exponentially, with jitter so that many parents
                    // failing together do not come back together.
                    Next::BackOff(error) => {
                        tracing::warn!(parent = %key, %error, "reconcile failed; backing off");
                        let mut failures = failures.write().await;
                        let n = failures.entry(key.clone()).or_insert(0);
                        *n += 1;
                        Some(backoff(*n))
                    }
                };
                // The worker is free for others while this parent waits for its next turn.
                drop(worker);
                if let Some(delay) = delay {
                    // A Retry's delay is the author's: bounded, so a huge one cannot overflow
                    // the timer wheel.
                    let _ = schedule.send((key, delay.min(RESYNC)));
                }
            });
        }
    }

    /// Starts a watch for each parent kind not watched yet, and queues every parent; the
    /// parents of kinds no workflow runs for any more too, to let go of them.
    async fn watch_parents(
        self: &Arc<Self>,
        ws: &Workspace,
        watched: &RwLock<HashSet<(String, String)>>,
        queue: &mpsc::UnboundedSender<ParentKey>,
    ) {
        let orphaned: Vec<(String, String)> = watched
            .read()
            .await
            .iter()
            .filter(|(api_version, kind)| ws.workflows_for(api_version, kind).is_empty())
            .cloned()
            .collect();
        for gvk in &orphaned {
            let _ = self.requeue_all(gvk, queue).await;
        }
        for (crd, _) in ws.triggers() {
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
                let (resource, caps) = discover(&this.client, &gvk.0, &gvk.1).await;
                let namespaced = caps.scope == Scope::Namespaced;
                let mut events = this.watch(&resource, namespaced).boxed();
                let mut seen: HashMap<(Option<String>, String), Json> = HashMap::new();
                while let Some(event) = events.next().await {
                    let (o, deleted) = match event {
                        Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => (o, false),
                        Ok(watcher::Event::Delete(o)) => (o, true),
                        _ => continue,
                    };
                    {
                        // Our own status and annotation writes change nothing a reconcile
                        // reads: they do not start another one.
                        let id = (
                            o.metadata.namespace.clone(),
                            o.metadata.name.clone().unwrap_or_default(),
                        );
                        let print = fingerprint(&serde_json::to_value(&o).unwrap_or(Json::Null));
                        // A parent gone is forgotten (memory stays bounded by the live ones).
                        if deleted {
                            seen.remove(&id);
                        } else if seen.insert(id, print.clone()).as_ref() == Some(&print) {
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

    /// One reconcile of one parent, and what to do with it next.
    async fn reconcile(&self, ws: &Workspace, key: &ParentKey) -> Next {
        let span =
            tracing::info_span!("reconcile", parent = %key, workflow = tracing::field::Empty);
        self.reconcile_parent(ws, key).instrument(span).await
    }

    async fn reconcile_parent(&self, ws: &Workspace, key: &ParentKey) -> Next {
        let started = std::time::Instant::now();
        let id = ResourceId {
            api_version: key.api_version.clone(),
            kind: key.kind.clone(),
            plural: None,
            name: key.name.clone(),
            namespace: key.namespace.clone(),
        };
        let pass = crate::pass::reconcile(ws, &self.kube_api, &id, &self.boundary).await;
        if let Some(parent) = &pass.parent {
            for notice in &crate::pass::combined(&pass.notices) {
                self.event(parent, notice).await;
            }
        }
        if pass.parent.is_none() {
            // Gone: what it managed no longer leads back to it.
            self.track_managed(key, &Json::Null).await;
        }
        let (Some(workflow), Some(run)) = (&pass.workflow, &pass.run) else {
            return pass.next;
        };
        self.track_managed(key, &run.resources).await;
        let expression_errors = run
            .steps
            .values()
            .filter(|o| o.is_expression_error())
            .count()
            + run.state_errors.len();
        self.metrics.reconciled(
            workflow,
            run.outcome.name(),
            started.elapsed(),
            expression_errors as u64,
        );
        tracing::info!(
            outcome = run.outcome.name(),
            writes = run.writes,
            took_ms = started.elapsed().as_millis() as u64,
            "reconciled"
        );
        if let Some(reports) = &self.reports {
            let _ = reports.send(Report {
                parent: key.to_string(),
                workflow: workflow.clone(),
                outcome: run.outcome.clone(),
                steps: run
                    .steps
                    .iter()
                    .filter(|(_, o)| !o.is_ok())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                conditions: pass.conditions.clone(),
            });
        }
        pass.next
    }

    /// An Event on the parent. Failing to record one changes nothing else.
    async fn event(&self, parent: &Json, notice: &Notice) {
        if let Err(error) = self.events.publish(parent, notice).await {
            tracing::debug!(%error, "could not record an event");
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
                let (resource, caps) = discover(&client, &api_version, &kind).await;
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

/// A kind as discovery finds it, asked again with backoff until it answers: a CRD applied with
/// its workflow may not be served yet, and a watch never started would miss every change.
async fn discover(
    client: &Client,
    api_version: &str,
    kind: &str,
) -> (ApiResource, kube::discovery::ApiCapabilities) {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let mut failures = 0;
    loop {
        match kube::discovery::pinned_kind(client, &gvk).await {
            Ok(found) => return found,
            Err(error) => {
                failures += 1;
                tracing::warn!(%api_version, %kind, %error, "cannot discover the kind; trying again");
                tokio::time::sleep(backoff(failures).min(Duration::from_secs(60))).await;
            }
        }
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
        // A parent deleted and created again with the same spec is another parent.
        "uid": parent["metadata"]["uid"],
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
    let condition = json!({"type": "Ready", "status": status, "reason": reason, "message": message, "lastTransitionTime": crate::pass::now()});
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
/// The objects of one Koreo kind, asked again (with backoff, at most 30 s apart) until the API
/// server answers: a definition is never reported missing because a request failed. `None`
/// when the kind is not served (its CRD is not installed).
async fn list_until_answered(
    api: &Api<DynamicObject>,
    kind: &str,
) -> Option<kube::core::ObjectList<DynamicObject>> {
    let mut failures = 0;
    loop {
        match api.list(&Default::default()).await {
            Ok(list) => return Some(list),
            Err(kube::Error::Api(status)) if status.code == 404 => return None,
            Err(error) => {
                failures += 1;
                let wait = backoff(failures).min(Duration::from_secs(30));
                tracing::warn!(%kind, %error, ?wait, "listing definitions failed; trying again");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

fn backoff(n: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let base = Duration::from_secs(1) * 2u32.saturating_pow(n.saturating_sub(1)).min(300);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(n);
    let jitter = 0.8 + 0.4 * (hasher.finish() % 1000) as f64 / 1000.0;
    base.mul_f64(jitter).min(Duration::from_secs(300))
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
