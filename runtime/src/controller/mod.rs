//! The controller: loads Koreo definitions from the cluster (and reloads them as they change),
//! watches the parent kind of every Workflow with a `crdRef`, and reconciles each parent with
//! the engine, one reconcile per parent at a time, requeued by outcome.

use crate::boundary::Boundary;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use backon::{BackoffBuilder, Retryable};
use futures::StreamExt;
use futures::future::BoxFuture;
use koreo_lang::Workspace;
use koreo_lang::eval::Outcome;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};
use kube::runtime::scheduler::ScheduleRequest;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Map, Value as Json, json};
use tokio::sync::{RwLock, mpsc};

use crate::kube_api::{KubeApi, as_koreo};
use crate::metrics::Metrics;
use crate::pass::{Next, Notice};
use koreo_lang::eval::ResourceId;
use tracing::Instrument;

mod definitions;
mod queue;
mod watches;

use koreo_reconcile::managed::ManagedTree;
use queue::{Turn, Turns, backoff, lock};

use crate::pass::RESYNC;

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
    events: crate::events::Events,
    /// Where workflows may read and write.
    boundary: Boundary,
}

/// Reconciles that run at once unless configured otherwise.
pub const DEFAULT_WORKERS: usize = 16;

/// A koreo.dev kind's resource.
pub fn koreo_resource(kind: &str) -> ApiResource {
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

    /// Widens where workflows may read and write beyond their own and their parent's namespace.
    pub fn with_boundary(mut self, boundary: Boundary) -> Controller {
        self.boundary = boundary;
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
        self.events = crate::events::Events::new(self.client.clone(), Some(instance));
        self
    }

    /// Reports of each reconcile go to this channel.
    pub fn with_reports(mut self, reports: mpsc::UnboundedSender<Report>) -> Controller {
        self.reports = Some(reports);
        self
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
        let failures: Arc<RwLock<HashMap<ParentKey, backon::ExponentialBackoff>>> = Arc::default();
        let workers = Arc::new(tokio::sync::Semaphore::new(this.workers));
        let waiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // One timer per parent (kube's scheduler keeps the earliest asked for), so a parent
        // that changes often does not pile up follow-up reconciles.
        let (schedule, requests) =
            futures::channel::mpsc::unbounded::<ScheduleRequest<ParentKey>>();
        let mut timers = std::pin::pin!(kube::runtime::scheduler(requests));
        loop {
            this.metrics.set_queue_depth(
                pending.len() + waiting.load(std::sync::atomic::Ordering::Relaxed),
            );
            let key = tokio::select! {
                Some(task) = spawned.recv() => {
                    tasks.spawn(task);
                    continue;
                }
                Some(key) = timers.next() => key,
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
                    Next::OnChange => {
                        failures.write().await.remove(&key);
                        None
                    }
                    Next::After(delay) => {
                        failures.write().await.remove(&key);
                        Some(delay)
                    }
                    // API failures: back off exponentially, with jitter so that many parents
                    // failing together do not come back together.
                    Next::BackOff(error) => {
                        tracing::warn!(parent = %key, %error, "reconcile failed; backing off");
                        let mut failures = failures.write().await;
                        const LONGEST: Duration = Duration::from_secs(300);
                        let waits = failures
                            .entry(key.clone())
                            .or_insert_with(|| backoff(LONGEST).build());
                        // Built without a limit on retries: never empty.
                        Some(waits.next().unwrap_or(LONGEST))
                    }
                };
                // The worker is free for others while this parent waits for its next turn.
                drop(worker);
                if let Some(delay) = delay {
                    // A Retry's delay is the author's: bounded, so a huge one cannot overflow
                    // the timer wheel.
                    let _ = schedule.unbounded_send(ScheduleRequest {
                        message: key,
                        run_at: tokio::time::Instant::now() + delay.min(RESYNC),
                    });
                }
            });
        }
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
            self.track_managed(key, &ManagedTree::default()).await;
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
}

impl std::fmt::Display for ParentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}
