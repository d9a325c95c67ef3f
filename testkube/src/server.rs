//! The HTTP side: discovery, the resource endpoints, watch streams, and fault injection.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value as Json, json};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

use crate::error::ApiError;
use crate::selector::Selector;
use crate::store::{Event, Patch, Propagation, Store, Target};
use crate::table;
use crate::types::ResourceType;

/// A failure to inject: the next `remaining` requests that match fail with `code`.
#[derive(Clone, Debug)]
struct FaultRule {
    verb: Option<String>,
    plural: Option<String>,
    remaining: u32,
    code: u16,
}

#[derive(Default)]
struct Faults {
    rules: Vec<FaultRule>,
    latency: Duration,
    chaos: Option<Chaos>,
}

/// Faults at random: a share of requests fail before they are handled, and a share of writes
/// are handled and then answered with an error, as when a response is lost.
struct Chaos {
    /// Out of 2^32.
    threshold: u64,
    /// Failures so far: before handling, and after a write landed.
    struck: (u64, u64),
    /// xorshift64: reproducible from the seed, no dependency.
    state: u64,
}

impl Chaos {
    fn strikes(&mut self) -> bool {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state >> 32) < self.threshold
    }
}

struct Shared {
    store: Mutex<Store>,
    events: broadcast::Sender<Event>,
    /// Bumped to end every open watch stream.
    drop_watches: broadcast::Sender<()>,
    faults: Mutex<Faults>,
    requests: Mutex<BTreeMap<String, u64>>,
    addr: SocketAddr,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock must not take every later request down with it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running server. Dropping it stops accepting connections.
pub struct TestKube {
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for TestKube {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl TestKube {
    /// Starts on an ephemeral port of 127.0.0.1.
    pub async fn start() -> std::io::Result<TestKube> {
        TestKube::start_on(0).await
    }

    /// Starts on the given port of 127.0.0.1 (0: any free port).
    pub async fn start_on(port: u16) -> std::io::Result<TestKube> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new()),
            events: broadcast::channel(4096).0,
            drop_watches: broadcast::channel(16).0,
            faults: Mutex::new(Faults::default()),
            requests: Mutex::new(BTreeMap::new()),
            addr,
        });
        let accepting = shared.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = accepting.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(shared, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(TestKube { shared, accept })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// A kubeconfig for this server (no authentication).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: testkube\n  cluster:\n    server: {}\ncontexts:\n- name: testkube\n  context:\n    cluster: testkube\n    user: testkube\n    namespace: default\ncurrent-context: testkube\nusers:\n- name: testkube\n  user: {{}}\n",
            self.url()
        )
    }

    /// Direct access to the state, for test setup and assertions.
    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut store = lock(&self.shared.store);
        let result = f(&mut store);
        for event in store.pending.drain(..) {
            let _ = self.shared.events.send(event);
        }
        result
    }

    /// The next `count` requests of `verb` (`get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`; `None`: any) on `plural` (`None`: any) fail with `code`.
    pub fn fail_next(&self, verb: Option<&str>, plural: Option<&str>, count: u32, code: u16) {
        lock(&self.shared.faults).rules.push(FaultRule {
            verb: verb.map(str::to_string),
            plural: plural.map(str::to_string),
            remaining: count,
            code,
        });
    }

    /// Every request waits this long before it is handled.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.faults).latency = latency;
    }

    /// Ends every open watch stream, as a restarting API server or a load balancer would.
    pub fn drop_watches(&self) {
        let _ = self.shared.drop_watches.send(());
    }

    /// Forgets the event history: watches resuming from an older version get `410 Gone`.
    pub fn expire_resource_versions(&self) {
        lock(&self.shared.store).expire_resource_versions();
    }

    /// From now on, fails `rate` (0 to 1) of the requests on resources with 500 before handling
    /// them, and answers `rate` of the writes it does handle with 500 too (the write landed, the
    /// client cannot know). Reproducible for a `seed`. Watches are not failed: cut them with
    /// [`TestKube::drop_watches`].
    pub fn fail_randomly(&self, rate: f64, seed: u64) {
        lock(&self.shared.faults).chaos = Some(Chaos {
            threshold: (rate.clamp(0.0, 1.0) * f64::from(u32::MAX)) as u64,
            struck: (0, 0),
            state: seed | 1,
        });
    }

    /// Stops the random failures of [`TestKube::fail_randomly`]; returns how many requests
    /// failed before they were handled, and how many writes landed but answered an error.
    pub fn stop_failing(&self) -> (u64, u64) {
        lock(&self.shared.faults)
            .chaos
            .take()
            .map_or((0, 0), |chaos| chaos.struck)
    }

    /// Requests served so far, by verb.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.requests).clone()
    }
}

type Reply = Response<ReplyBody>;

/// A response body: whole, or a stream of watch events.
pub enum ReplyBody {
    Full(Full<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ReplyBody::Full(full) => Pin::new(full).poll_frame(cx),
            ReplyBody::Stream(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|b| Ok(Frame::data(b)))),
        }
    }

    // Known lengths go out with Content-Length rather than chunked.
    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            ReplyBody::Full(full) => full.size_hint(),
            ReplyBody::Stream(_) => hyper::body::SizeHint::default(),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReplyBody::Full(full) => full.is_end_stream(),
            ReplyBody::Stream(_) => false,
        }
    }
}

fn json_reply(code: u16, body: &Json) -> Reply {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(ReplyBody::Full(Full::new(Bytes::from(body.to_string()))))
        .unwrap_or_else(|_| Response::new(ReplyBody::Full(Full::new(Bytes::new()))))
}

fn error_reply(e: &ApiError) -> Reply {
    json_reply(e.code, &e.status())
}

fn query(req: &Request<Incoming>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .map(|q| {
            q.split('&')
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(k), decode(v))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Percent-decoding of query parameters (`+` is a space).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a resource path names.
struct Route {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    subresource: Option<String>,
}

enum Path {
    Version,
    OpenApiV3,
    OpenApiV3Group(String),
    CoreVersions,
    Groups,
    Resources { group: String, version: String },
    Resource(Route),
    Unknown,
}

fn parse_path(path: &str) -> Path {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segments.as_slice() {
        ["version"] => return Path::Version,
        ["openapi", "v3"] => return Path::OpenApiV3,
        ["openapi", "v3", rest @ ..] => return Path::OpenApiV3Group(rest.join("/")),
        ["api"] => return Path::CoreVersions,
        ["apis"] => return Path::Groups,
        ["api", v] => {
            return Path::Resources {
                group: String::new(),
                version: v.to_string(),
            };
        }
        ["apis", g, v] => {
            return Path::Resources {
                group: g.to_string(),
                version: v.to_string(),
            };
        }
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return Path::Unknown,
    };
    let s = |i: usize| rest.get(i).map(|x| x.to_string());
    let route = match rest {
        // `/namespaces/{ns}/{plural}...`, but `/namespaces/{name}[/status]` is the namespace itself.
        ["namespaces", _, plural, ..]
            if !(group.is_empty() && matches!(*plural, "status" | "finalize")) =>
        {
            Route {
                group,
                version,
                namespace: s(1),
                plural: plural.to_string(),
                name: s(3),
                subresource: s(4),
            }
        }
        [plural, ..] => Route {
            group,
            version,
            namespace: None,
            plural: plural.to_string(),
            name: s(1),
            subresource: s(2),
        },
        [] => return Path::Unknown,
    };
    Path::Resource(route)
}

fn verb_of(method: &Method, route: &Route, query: &BTreeMap<String, String>) -> &'static str {
    let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    match *method {
        Method::GET if watching => "watch",
        Method::GET if route.name.is_none() => "list",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if route.name.is_none() => "deletecollection",
        Method::DELETE => "delete",
        _ => "unknown",
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Reply {
    let latency = lock(&shared.faults).latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let path = parse_path(req.uri().path());
    let q = query(&req);
    match path {
        Path::Version => json_reply(
            200,
            &json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-testkube", "gitCommit": "", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "none", "compiler": "rustc", "platform": "linux/amd64"}),
        ),
        // OpenAPI v3: an index of group-versions and, for each, one PATCH path per kind that
        // declares `fieldValidation`, which is what kubectl checks before it writes. No schemas:
        // the server does not validate fields.
        Path::OpenApiV3 => {
            let store = lock(&shared.store);
            let mut paths = serde_json::Map::new();
            for t in &store.types {
                for v in &t.versions {
                    let gv = if t.group.is_empty() {
                        format!("api/{v}")
                    } else {
                        format!("apis/{}/{v}", t.group)
                    };
                    paths.insert(
                        gv.clone(),
                        json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash=0")}),
                    );
                }
            }
            json_reply(200, &json!({"paths": paths}))
        }
        Path::OpenApiV3Group(gv) => json_reply(200, &openapi_v3(&lock(&shared.store).types, &gv)),
        Path::CoreVersions => json_reply(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr.to_string()}]}),
        ),
        Path::Groups => json_reply(200, &groups(&lock(&shared.store).types)),
        Path::Resources { group, version } => {
            let store = lock(&shared.store);
            let list = resources(&store.types, &group, &version);
            drop(store);
            match list {
                Some(list) => json_reply(200, &list),
                None => error_reply(&ApiError::new(
                    404,
                    "NotFound",
                    format!("the server could not find the requested resource ({group}/{version})"),
                )),
            }
        }
        Path::Resource(route) => {
            let verb = verb_of(req.method(), &route, &q);
            *lock(&shared.requests).entry(verb.to_string()).or_default() += 1;
            // Whether a random failure strikes now; `landed`: after the write was made.
            let chaos = |shared: &Shared, landed: bool| {
                let mut faults = lock(&shared.faults);
                let Some(chaos) = faults.chaos.as_mut().filter(|_| verb != "watch") else {
                    return false;
                };
                let strikes = chaos.strikes();
                if strikes {
                    *(if landed {
                        &mut chaos.struck.1
                    } else {
                        &mut chaos.struck.0
                    }) += 1;
                }
                strikes
            };
            if chaos(&shared, false) {
                return error_reply(&ApiError::new(
                    500,
                    reason_for(500),
                    format!("injected random failure for {verb} {}", route.plural),
                ));
            }
            if let Some(code) = injected_fault(&shared, verb, &route.plural) {
                return error_reply(&ApiError::new(
                    code,
                    reason_for(code),
                    format!("injected failure ({code}) for {verb} {}", route.plural),
                ));
            }
            let header = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            let (content_type, accept) = (header("content-type"), header("accept"));
            let body = match req.into_body().collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    return error_reply(&ApiError::bad_request("could not read the request body"));
                }
            };
            if verb == "watch" {
                return watch(shared, route, q).await;
            }
            match resource(&shared, &route, verb, &q, &content_type, &body) {
                Ok((code, body)) if matches!(verb, "get" | "list") && table::wanted(&accept) => {
                    let columns = {
                        let store = lock(&shared.store);
                        find_kind(&store, &route)
                            .map(|k| store.types[k].columns.clone())
                            .unwrap_or_default()
                    };
                    json_reply(code, &table::of(&body, &columns, chrono::Utc::now()))
                }
                Ok(_)
                    if matches!(verb, "create" | "update" | "patch" | "delete")
                        && chaos(&shared, true) =>
                {
                    error_reply(&ApiError::new(
                        500,
                        reason_for(500),
                        format!(
                            "injected failure after the {verb} of {} landed",
                            route.plural
                        ),
                    ))
                }
                Ok((code, body)) => json_reply(code, &body),
                Err(e) => error_reply(&e),
            }
        }
        Path::Unknown => error_reply(&ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )),
    }
}

fn openapi_v3(types: &[ResourceType], group_version: &str) -> Json {
    let mut paths = serde_json::Map::new();
    for t in types {
        for v in &t.versions {
            let gv = if t.group.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{}/{v}", t.group)
            };
            if gv != group_version {
                continue;
            }
            let path = if t.namespaced {
                format!("/{gv}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
            } else {
                format!("/{gv}/{}/{{name}}", t.plural)
            };
            paths.insert(
                path,
                json!({"patch": {
                    "x-kubernetes-group-version-kind": {"group": t.group, "version": v, "kind": t.kind},
                    "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "OK"}}
                }}),
            );
        }
    }
    json!({"openapi": "3.0.0", "info": {"title": "testkube", "version": "v1.32.0"}, "paths": paths})
}

fn reason_for(code: u16) -> &'static str {
    match code {
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

fn injected_fault(shared: &Shared, verb: &str, plural: &str) -> Option<u16> {
    let mut faults = lock(&shared.faults);
    let rule = faults.rules.iter_mut().find(|r| {
        r.remaining > 0
            && r.verb.as_deref().is_none_or(|v| v == verb)
            && r.plural.as_deref().is_none_or(|p| p == plural)
    })?;
    rule.remaining -= 1;
    let code = rule.code;
    faults.rules.retain(|r| r.remaining > 0);
    Some(code)
}

fn groups(types: &[ResourceType]) -> Json {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for t in types.iter().filter(|t| !t.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, versions)) => {
                for v in &t.versions {
                    if !versions.contains(v) {
                        versions.push(v.clone());
                    }
                }
            }
            None => groups.push((t.group.clone(), t.versions.clone())),
        }
    }
    let groups: Vec<Json> = groups
        .into_iter()
        .map(|(name, versions)| {
            let entries: Vec<Json> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                .collect();
            json!({"name": name, "versions": entries, "preferredVersion": entries[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn resources(types: &[ResourceType], group: &str, version: &str) -> Option<Json> {
    let served: Vec<&ResourceType> = types.iter().filter(|t| t.serves(group, version)).collect();
    if served.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in served {
        resources.push(json!({"name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
            "verbs": VERBS, "shortNames": t.short_names, "categories": t.categories, "storageVersionHash": ""}));
        if t.status {
            resources.push(json!({"name": format!("{}/status", t.plural), "singularName": "", "namespaced": t.namespaced,
                "kind": t.kind, "verbs": ["get", "patch", "update"]}));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

fn find_kind(store: &Store, route: &Route) -> Result<usize, ApiError> {
    store
        .types
        .iter()
        .position(|t| t.plural == route.plural && t.serves(&route.group, &route.version))
        .ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                format!(
                    "the server could not find the requested resource ({}.{})",
                    route.plural, route.group
                ),
            )
        })
}

/// A create or update body. Only JSON is served: kubectl, told 415 for protobuf, sends JSON.
fn parse_body(content_type: &str, body: &[u8]) -> Result<Json, ApiError> {
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type}): this local server reads JSON only; `kubectl create <kind> ...` sends protobuf, so write the object to a file and use `kubectl create -f` or `kubectl apply -f`"
            ),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not JSON: {e}")))
}

/// The handlers of everything but watch. Returns the status code and body.
fn resource(
    shared: &Shared,
    route: &Route,
    verb: &str,
    q: &BTreeMap<String, String>,
    content_type: &str,
    body: &[u8],
) -> Result<(u16, Json), ApiError> {
    let mut store = lock(&shared.store);
    let kind = find_kind(&store, route)?;
    let target = Target {
        kind,
        version: &route.version,
        namespace: route.namespace.as_deref(),
    };
    let status = match route.subresource.as_deref() {
        None => false,
        Some("status") if store.types[kind].status => true,
        Some(other) => {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!(
                    "the server could not find the requested resource ({}/{other})",
                    route.plural
                ),
            ));
        }
    };
    let manager = q
        .get("fieldManager")
        .cloned()
        .unwrap_or_else(|| "unknown".into());
    let name = route.name.as_deref().unwrap_or("");
    let result = match verb {
        "get" => store.get(&target, name).map(|o| (200, o)),
        "list" => {
            let selector = Selector::parse(q.get("labelSelector").map_or("", String::as_str))?;
            let fields = Selector::parse_fields(q.get("fieldSelector").map_or("", String::as_str))?;
            let t = &store.types[kind];
            let (items, rv) = store.list_matching(&target, &selector, &fields)?;
            Ok((
                200,
                json!({"kind": format!("{}List", t.kind), "apiVersion": t.api_version(&route.version),
                "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
            ))
        }
        "create" => store
            .create(&target, parse_body(content_type, body)?, &manager)
            .map(|o| (201, o)),
        "update" => store
            .replace(
                &target,
                name,
                parse_body(content_type, body)?,
                &manager,
                status,
            )
            .map(|o| (200, o)),
        "patch" => {
            let kind = match content_type.split(';').next().unwrap_or("").trim() {
                "application/merge-patch+json" => Patch::Merge,
                "application/json-patch+json" => Patch::Json,
                "application/strategic-merge-patch+json" => Patch::Strategic,
                "application/apply-patch+yaml" | "application/apply-patch+json" => Patch::Apply {
                    force: q.get("force").is_some_and(|f| f == "true"),
                },
                other => {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!("the body of the request was in an unknown format ({other})"),
                    ));
                }
            };
            // An apply that creates answers 201, as a create does.
            let creates = matches!(kind, Patch::Apply { .. }) && store.get(&target, name).is_err();
            store
                .patch(
                    &target,
                    name,
                    kind,
                    parse_body(content_type, body)?,
                    &manager,
                    status,
                )
                .map(|o| (if creates { 201 } else { 200 }, o))
        }
        "delete" => {
            let options: Json = if body.is_empty() {
                json!({})
            } else {
                parse_body(content_type, body)?
            };
            let policy = options["propagationPolicy"]
                .as_str()
                .or(q.get("propagationPolicy").map(String::as_str));
            let propagation = match policy {
                Some("Foreground") => Propagation::Foreground,
                Some("Orphan") => Propagation::Orphan,
                _ => Propagation::Background,
            };
            let uid = options["preconditions"]["uid"].as_str();
            store.delete(&target, name, propagation, uid).map(|(object, gone)| {
                if gone {
                    let t = &store.types[kind];
                    (200, json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                        "details": {"name": name, "kind": t.plural, "uid": object["metadata"]["uid"]}}))
                } else {
                    (200, object)
                }
            })
        }
        "deletecollection" => {
            let selector = Selector::parse(q.get("labelSelector").map_or("", String::as_str))?;
            let (items, _) = store.list(&target, &selector)?;
            for item in &items {
                let name = item["metadata"]["name"].as_str().unwrap_or("");
                let ns = item["metadata"]["namespace"].as_str();
                let t = Target {
                    kind,
                    version: &route.version,
                    namespace: ns,
                };
                store.delete(&t, name, Propagation::Background, None)?;
            }
            let t = &store.types[kind];
            Ok((
                200,
                json!({"kind": format!("{}List", t.kind), "apiVersion": t.api_version(&route.version), "metadata": {}, "items": items}),
            ))
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{verb} is not supported"),
        )),
    };
    for event in store.pending.drain(..) {
        let _ = shared.events.send(event);
    }
    result
}

fn event_line(kind: &str, object: &Json) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// A watch: events after `resourceVersion` (or the current objects as ADDED when it is unset
/// or "0"), then live events, bookmarks if asked for, until `timeoutSeconds` or the client leaves.
async fn watch(shared: Arc<Shared>, route: Route, q: BTreeMap<String, String>) -> Reply {
    let mut live = shared.events.subscribe();
    let mut dropped = shared.drop_watches.subscribe();
    let (initial, gone, kind_group, kind_plural, kind, api_version, since) = {
        let store = lock(&shared.store);
        let kind = match find_kind(&store, &route) {
            Ok(k) => k,
            Err(e) => return error_reply(&e),
        };
        let t = &store.types[kind];
        let target = Target {
            kind,
            version: &route.version,
            namespace: route.namespace.as_deref(),
        };
        let (selector, fields) = match (
            Selector::parse(q.get("labelSelector").map_or("", String::as_str)),
            Selector::parse_fields(q.get("fieldSelector").map_or("", String::as_str)),
        ) {
            (Ok(s), Ok(f)) => (s, f),
            (Err(e), _) | (_, Err(e)) => return error_reply(&e),
        };
        let rv = q.get("resourceVersion").map(String::as_str).unwrap_or("");
        let mut lines = Vec::new();
        let mut gone = false;
        match rv.parse::<u64>() {
            Ok(rv) if rv > 0 => {
                match store.events_since(rv, &t.group, &t.plural, route.namespace.as_deref()) {
                    Ok(events) => {
                        for e in events
                            .iter()
                            .filter(|e| selector.matches(&e.object["metadata"]["labels"]))
                        {
                            let mut o = e.object.clone();
                            o["apiVersion"] = json!(t.api_version(&route.version));
                            lines.push(event_line(e.kind.as_str(), &o));
                        }
                    }
                    Err(expired) => {
                        lines.push(event_line("ERROR", &expired.status()));
                        gone = true;
                    }
                }
            }
            _ => {
                if let Ok((items, _)) = store.list_matching(&target, &selector, &fields) {
                    lines.extend(items.iter().map(|o| event_line("ADDED", o)));
                }
            }
        }
        (
            lines,
            gone,
            t.group.clone(),
            t.plural.clone(),
            t.kind.clone(),
            t.api_version(&route.version),
            store.resource_version(),
        )
    };
    let selector =
        Selector::parse(q.get("labelSelector").map_or("", String::as_str)).unwrap_or_default();
    let fields = Selector::parse_fields(q.get("fieldSelector").map_or("", String::as_str))
        .unwrap_or_default();
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        if gone {
            return;
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut last_rv = since;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sleep => return,
                _ = dropped.recv() => return,
                _ = tick.tick(), if bookmarks => {
                    // kubectl decodes bookmarks as objects of the watched kind.
                    let mark = json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": last_rv.to_string()}});
                    if tx.send(event_line("BOOKMARK", &mark)).await.is_err() { return; }
                }
                event = live.recv() => match event {
                    Ok(e) => {
                        if e.rv <= since || e.group != kind_group || e.plural != kind_plural {
                            continue;
                        }
                        if route.namespace.as_deref().is_some_and(|ns| ns != e.namespace) {
                            continue;
                        }
                        last_rv = e.rv;
                        if !selector.matches(&e.object["metadata"]["labels"]) || !fields.matches_fields(&e.object) {
                            continue;
                        }
                        let mut o = e.object;
                        o["apiVersion"] = json!(api_version);
                        if tx.send(event_line(e.kind.as_str(), &o)).await.is_err() { return; }
                    }
                    // A watcher that fell behind is told to start over, as Kubernetes does.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(event_line("ERROR", &ApiError::gone("the watch fell behind; list again").status())).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(ReplyBody::Stream(rx))
        .unwrap_or_else(|_| Response::new(ReplyBody::Full(Full::new(Bytes::new()))))
}
