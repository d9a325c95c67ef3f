//! Watches: one per parent kind and per managed kind, started when a definition first names
//! the kind; events on managed objects lead back to their parents through the managed index.

use super::*;

impl Controller {
    /// One API per watched namespace, or one for all namespaces (and for cluster-scoped kinds).
    pub(super) fn apis(&self, resource: &ApiResource, namespaced: bool) -> Vec<Api<DynamicObject>> {
        scoped_apis(&self.client, &self.namespaces, resource, namespaced)
    }

    /// Events of a kind across the watched namespaces, as one stream.
    pub(super) fn watch(
        &self,
        resource: &ApiResource,
        namespaced: bool,
    ) -> impl futures::Stream<Item = watcher::Result<watcher::Event<DynamicObject>>> + Send + use<>
    {
        watch_all(self.apis(resource, namespaced))
    }

    /// Starts a watch for each parent kind not watched yet, and queues every parent; the
    /// parents of kinds no workflow runs for any more too, to let go of them.
    pub(super) async fn watch_parents(
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

    /// Remembers what a parent manages, and watches those kinds: a change to a managed object
    /// (created, drifted, status updated, deleted) requeues its parent at once.
    pub(super) async fn track_managed(&self, parent: &ParentKey, resources: &ManagedTree) {
        let found: Vec<ManagedKey> = resources
            .objects()
            .into_iter()
            .map(|o| {
                let id = &o.id;
                (
                    id.api_version.clone(),
                    id.kind.clone(),
                    id.namespace.clone(),
                    id.name.clone(),
                )
            })
            .collect();
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
    loop {
        // The backoff never gives up, so this answers once discovery does.
        let found = (|| kube::discovery::pinned_kind(client, &gvk))
            .retry(backoff(Duration::from_secs(60)))
            .notify(|error, wait| {
                tracing::warn!(%api_version, %kind, %error, ?wait, "cannot discover the kind; trying again");
            })
            .await;
        if let Ok(found) = found {
            return found;
        }
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
