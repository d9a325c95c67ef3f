//! The web view (`koreo dev --ui`, `koreo run --ui`): a read-only page of definitions and
//! their validity, each Workflow as a graph, each parent with its conditions, step outcomes,
//! managed objects and recent Events. The page is one embedded file (no build step); it
//! fetches `/api/overview` and fetches it again whenever the server's watches see a change
//! (`/api/changes`, server-sent events). No object's data is served: only names, conditions,
//! outcomes and Events.

use std::convert::Infallible;
use std::net::SocketAddr;

use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use koreo_runtime::controller::koreo_resource;
use koreo_runtime::engine::ResourceApi;
use koreo_runtime::kube_api::KubeApi;
use koreo_runtime::managed::{Managed, ManagedObject, ManagedTree};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value as Json, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

const PAGE: &str = include_str!("ui/index.html");

/// How many of the latest Events the page shows.
const EVENTS_SHOWN: usize = 30;

/// Serves the web view on `addr`, a loopback address (it has no authentication of its own:
/// reach it from elsewhere through `kubectl port-forward` or SSH); returns where it listens.
pub async fn serve(addr: SocketAddr, client: Client) -> std::io::Result<SocketAddr> {
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::other(
            "the web view has no authentication: give a loopback address such as 127.0.0.1:8081",
        ));
    }
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let (changed, _) = watch::channel(0u64);
    watch_for_changes(client.clone(), changed.clone());
    let view = std::sync::Arc::new(View {
        client,
        port: bound.port(),
        overview: tokio::sync::Mutex::new(None),
    });
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                // Out of file descriptors, say: wait rather than spin.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (view, changes) = (view.clone(), changed.subscribe());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let (view, changes) = (view.clone(), changes.clone());
                    async move { Ok::<_, Infallible>(route(req, &view, changes).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(bound)
}

type Body = BoxBody<Bytes, Infallible>;

/// What the server keeps: the cluster it reads, its port, and the overview of the last
/// generation of changes (tabs that refresh together share one read of the cluster).
struct View {
    client: Client,
    port: u16,
    overview: tokio::sync::Mutex<Option<(u64, Bytes)>>,
}

/// Whether a request names this server by a loopback name: a page elsewhere that points a
/// name of its own at 127.0.0.1 (DNS rebinding) gets nothing.
fn is_local(req: &Request<hyper::body::Incoming>, port: u16) -> bool {
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .any(|name| host == format!("{name}:{port}"))
}

async fn route(
    req: Request<hyper::body::Incoming>,
    view: &View,
    mut changes: watch::Receiver<u64>,
) -> Response<Body> {
    if !is_local(&req, view.port) {
        return reply(
            403,
            "text/plain",
            "the web view answers to 127.0.0.1 and localhost only".into(),
        );
    }
    match req.uri().path() {
        "/" => reply(200, "text/html; charset=utf-8", PAGE.to_string()),
        "/api/object" => {
            let query = req.uri().query().unwrap_or("");
            match object_summary(&view.client, query).await {
                Ok(found) => reply(200, "application/json", found.to_string()),
                Err(e) => reply(404, "text/plain", e),
            }
        }
        "/api/overview" => {
            let generation = *changes.borrow();
            let mut cached = view.overview.lock().await;
            let body = match cached.as_ref() {
                Some((at, body)) if *at == generation => body.clone(),
                _ => {
                    let body = Bytes::from(overview(&view.client).await.to_string());
                    *cached = Some((generation, body.clone()));
                    body
                }
            };
            reply_bytes(200, "application/json", body)
        }
        "/api/changes" => {
            // One event at once: a page that (re)connects fetches what it may have missed.
            changes.mark_changed();
            let stream = futures::stream::unfold(changes, |mut rx| async move {
                rx.changed().await.ok()?;
                let generation = *rx.borrow_and_update();
                let frame = Frame::data(Bytes::from(format!("data: {generation}\n\n")));
                Some((Ok::<_, Infallible>(frame), rx))
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .unwrap_or_else(|_| reply(500, "text/plain", String::new()))
        }
        _ => reply(404, "text/plain", "not found".into()),
    }
}

fn reply(status: u16, content_type: &str, text: String) -> Response<Body> {
    reply_bytes(status, content_type, Bytes::from(text))
}

fn reply_bytes(status: u16, content_type: &str, body: Bytes) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-content-type-options", "nosniff")
        .body(Full::new(body).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

fn koreo_api(client: &Client, kind: &str) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &koreo_resource(kind))
}

/// Bumps `changed` whenever Workflows, parents or Events change (watches back off on errors,
/// which bump nothing). A Workflow's change may bring a parent kind to watch.
fn watch_for_changes(client: Client, changed: watch::Sender<u64>) {
    fn watch_all(
        api: Api<DynamicObject>,
        changed: watch::Sender<u64>,
        also: impl Fn() + Send + 'static,
    ) {
        tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = events.next().await {
                if event.is_ok() {
                    changed.send_modify(|g| *g += 1);
                    also();
                }
            }
        });
    }
    watch_all(
        Api::all_with(client.clone(), &event_resource()),
        changed.clone(),
        || {},
    );
    let (kinds_changed, mut kinds_seen) = watch::channel(());
    watch_all(koreo_api(&client, "Workflow"), changed.clone(), move || {
        kinds_changed.send_replace(());
    });
    tokio::spawn(async move {
        let mut watched: Vec<(String, String)> = Vec::new();
        while kinds_seen.changed().await.is_ok() {
            for resource in parent_kinds(&client).await {
                let key = (resource.api_version.clone(), resource.kind.clone());
                if !watched.contains(&key) {
                    watched.push(key);
                    watch_all(
                        Api::all_with(client.clone(), &resource),
                        changed.clone(),
                        || {},
                    );
                }
            }
        }
    });
}

/// The kinds the cluster's Workflows are triggered by, as served, each with whether it is
/// namespaced.
pub async fn parent_kinds(client: &Client) -> Vec<ApiResource> {
    parent_kinds_scoped(client)
        .await
        .into_iter()
        .map(|(resource, _)| resource)
        .collect()
}

/// As [`parent_kinds`], with whether each kind is namespaced.
pub async fn parent_kinds_scoped(client: &Client) -> Vec<(ApiResource, bool)> {
    let Ok(workflows) = koreo_api(client, "Workflow")
        .list(&ListParams::default())
        .await
    else {
        return Vec::new();
    };
    let mut out: Vec<(ApiResource, bool)> = Vec::new();
    for w in &workflows.items {
        let crd = &w.data["spec"]["crdRef"];
        let text = |k: &str| crd[k].as_str().unwrap_or("");
        let api_version = koreo_lang::model::api_version(text("apiGroup"), text("version"));
        let seen = out
            .iter()
            .any(|(r, _)| r.kind == text("kind") && r.api_version == api_version);
        if text("kind").is_empty() || seen {
            continue;
        }
        let gvk = GroupVersionKind::gvk(text("apiGroup"), text("version"), text("kind"));
        if let Ok((resource, caps)) = kube::discovery::pinned_kind(client, &gvk).await {
            out.push((resource, caps.scope == kube::discovery::Scope::Namespaced));
        }
    }
    out
}

/// Everything the page shows, read from the cluster now.
async fn overview(client: &Client) -> Json {
    let mut definitions = Vec::new();
    let mut workflows = Vec::new();
    for kind in koreo_lang::model::KINDS {
        let Ok(list) = koreo_api(client, kind).list(&ListParams::default()).await else {
            continue;
        };
        for object in list.items {
            let value = serde_json::to_value(&object).unwrap_or(Json::Null);
            let ready = value["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned())
                .unwrap_or(Json::Null);
            definitions.push(json!({
                "kind": kind,
                "namespace": object.metadata.namespace,
                "name": object.metadata.name,
                "valid": ready["status"],
                "message": ready["message"],
            }));
            if kind == "Workflow" {
                workflows.push(value);
            }
        }
    }
    let mut ws = koreo_lang::Workspace::default();
    for w in &workflows {
        let name = w["metadata"]["name"].as_str().unwrap_or("");
        ws.add_object(
            std::path::Path::new(&format!("Workflow/{name}")),
            koreo_lang::yaml::Node::from_json(w),
        );
    }
    ws.finish();
    let graphs: Vec<Json> = ws
        .definitions
        .iter()
        .filter_map(|d| match d {
            koreo_lang::model::Definition::Workflow(w) => Some(json!({
                "name": w.meta.name,
                "namespace": w.meta.namespace,
                "trigger": w.crd_ref.as_ref().map(|c| format!("{} {}", c.api_version(), c.kind)),
                "svg": koreo::graph::svg(&koreo::graph::build(&ws, w)),
            })),
            _ => None,
        })
        .collect();
    let mut instances = Vec::new();
    let kinds = parent_kinds(client).await;
    for resource in &kinds {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
        let Ok(list) = api.list(&ListParams::default()).await else {
            continue;
        };
        for parent in list.items {
            let value = serde_json::to_value(&parent).unwrap_or(Json::Null);
            let outcomes = koreo_runtime::pass::read_step_outcomes(&value);
            // Only well-formed conditions: a parent's status is anyone's to write.
            let conditions: Vec<&Json> = value["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c.is_object())
                .collect();
            let mut managed = Vec::new();
            flatten_tree(&ManagedTree::of_parent(&value), "", &mut managed);
            instances.push(json!({
                "kind": resource.kind,
                "namespace": parent.metadata.namespace,
                "name": parent.metadata.name,
                "conditions": conditions,
                "outcomes": outcomes,
                "managed": managed,
            }));
        }
    }
    json!({
        "definitions": definitions,
        "workflows": graphs,
        "instances": instances,
        "events": recent_events(client, &kinds).await,
    })
}

/// One managed object's names, labels, owners and status: never its spec, data or
/// annotations (last-applied annotations hold whole bodies, a Secret's values among them).
/// Only objects some parent's managed tree names are served.
async fn object_summary(client: &Client, query: &str) -> Result<Json, String> {
    let params: std::collections::HashMap<String, String> =
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let object = managed_object(client, |o| {
        (
            o.id.api_version.as_str(),
            o.id.kind.as_str(),
            o.id.name.as_str(),
        ) == (get("apiVersion"), get("kind"), get("name"))
            && o.id.namespace.as_deref().unwrap_or("") == get("namespace")
    })
    .await
    .ok_or("no parent manages such an object")?;
    let found = KubeApi::new(client.clone())
        .get(&object.id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("not found")?;
    let meta = &found["metadata"];
    let metadata: serde_json::Map<String, Json> = [
        "name",
        "namespace",
        "uid",
        "labels",
        "ownerReferences",
        "creationTimestamp",
        "generation",
    ]
    .into_iter()
    .filter_map(|k| Some((k.to_string(), meta.get(k)?.clone())))
    .collect();
    Ok(json!({
        "apiVersion": get("apiVersion"),
        "kind": get("kind"),
        "metadata": metadata,
        "status": found["status"],
    }))
}

/// The object some parent's managed tree names that `wanted` picks.
async fn managed_object(
    client: &Client,
    wanted: impl Fn(&ManagedObject) -> bool,
) -> Option<ManagedObject> {
    for resource in parent_kinds(client).await {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let Ok(list) = api.list(&ListParams::default()).await else {
            continue;
        };
        for parent in &list.items {
            let value = serde_json::to_value(parent).unwrap_or(Json::Null);
            let tree = ManagedTree::of_parent(&value);
            if let Some(found) = tree.objects().into_iter().find(|o| wanted(o)) {
                return Some(found.clone());
            }
        }
    }
    None
}

/// Each managed object as a row: the step path that manages it and its id.
fn flatten_tree(tree: &ManagedTree, prefix: &str, out: &mut Vec<Json>) {
    for (label, managed) in &tree.steps {
        flatten_managed(managed, &format!("{prefix}{label}"), out);
    }
}

fn flatten_managed(managed: &Managed, step: &str, out: &mut Vec<Json>) {
    match managed {
        Managed::Nothing => {}
        Managed::Object(object) => out.push(json!({
            "step": step,
            "apiVersion": object.id.api_version,
            "kind": object.id.kind,
            "namespace": object.id.namespace,
            "name": object.id.name,
            "readonly": object.readonly,
        })),
        Managed::Each(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten_managed(item, &format!("{step}[{i}]"), out);
            }
        }
        Managed::Workflow(tree) => flatten_tree(tree, &format!("{step} / "), out),
    }
}

/// Events as koreo writes them.
fn event_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("events.k8s.io", "v1", "Event"))
}

/// The latest Events about parents, newest first.
async fn recent_events(client: &Client, kinds: &[ApiResource]) -> Vec<Json> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &event_resource());
    let Ok(list) = api.list(&ListParams::default()).await else {
        return Vec::new();
    };
    let mut events: Vec<Json> = list
        .items
        .iter()
        .map(|e| &e.data)
        .filter(|e| {
            kinds
                .iter()
                .any(|k| e["regarding"]["kind"] == k.kind.as_str())
        })
        .map(|e| {
            let when = e["series"]["lastObservedTime"]
                .as_str()
                .or(e["eventTime"].as_str())
                .unwrap_or("");
            let regarding = &e["regarding"];
            json!({
                "time": when,
                "object": format!("{} {}", regarding["kind"].as_str().unwrap_or(""),
                    regarding["name"].as_str().unwrap_or("")),
                "reason": e["reason"],
                "message": e["note"],
            })
        })
        .collect();
    events.sort_by(|a, b| b["time"].as_str().cmp(&a["time"].as_str()));
    events.truncate(EVENTS_SHOWN);
    events
}
