//! What the controller reports about itself: Prometheus metrics, and `/metrics`, `/healthz`
//! and `/readyz` over HTTP.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use http_body_util::Full;
use hyper::body::Bytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    reconciles: Family<Labels, Counter>,
    reconcile_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    api_requests: Family<Labels, Counter>,
    queue_depth: Gauge,
    expression_errors: Family<Labels, Counter>,
    definitions: Family<Labels, Gauge>,
    /// Set once the definitions are loaded and the watches started.
    ready: AtomicBool,
}

fn reconcile_histogram() -> Histogram {
    // 1 ms to ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("koreo");
        let reconciles = Family::<Labels, Counter>::default();
        let reconcile_seconds =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
                reconcile_histogram,
            );
        let api_requests = Family::<Labels, Counter>::default();
        let queue_depth = Gauge::default();
        let expression_errors = Family::<Labels, Counter>::default();
        let definitions = Family::<Labels, Gauge>::default();
        registry.register(
            "reconciles",
            "Reconciles of parents, by workflow and outcome",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long a reconcile of a parent took, by workflow",
            reconcile_seconds.clone(),
        );
        registry.register(
            "api_requests",
            "Requests to the Kubernetes API, by verb and HTTP status code",
            api_requests.clone(),
        );
        registry.register(
            "queue_depth",
            "Parents waiting to be reconciled",
            queue_depth.clone(),
        );
        registry.register(
            "expression_errors",
            "Expressions that failed to evaluate during reconciles, by workflow",
            expression_errors.clone(),
        );
        registry.register(
            "definitions",
            "Koreo definitions loaded, by kind and whether they are valid",
            definitions.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_seconds,
            api_requests,
            queue_depth,
            expression_errors,
            definitions,
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    pub fn reconciled(
        &self,
        workflow: &str,
        outcome: &str,
        took: Duration,
        expression_errors: u64,
    ) {
        let by_workflow = vec![("workflow", workflow.to_string())];
        self.reconciles
            .get_or_create(&vec![
                ("workflow", workflow.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
        self.reconcile_seconds
            .get_or_create(&by_workflow)
            .observe(took.as_secs_f64());
        if expression_errors > 0 {
            self.expression_errors
                .get_or_create(&by_workflow)
                .inc_by(expression_errors);
        }
    }

    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth.set(depth as i64);
    }

    /// The definitions of one load: (kind, valid) for each.
    pub fn set_definitions(&self, loaded: impl IntoIterator<Item = (String, bool)>) {
        self.definitions.clear();
        for (kind, valid) in loaded {
            self.definitions
                .get_or_create(&vec![("kind", kind), ("valid", valid.to_string())])
                .inc();
        }
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    fn api_request(&self, verb: &'static str, code: u16) {
        self.api_requests
            .get_or_create(&vec![
                ("verb", verb.to_string()),
                ("code", code.to_string()),
            ])
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// A layer for the kube client's stack that counts requests by verb and status code
/// (code 0: no response, e.g. the connection failed).
#[derive(Clone)]
pub struct CountRequests(pub Arc<Metrics>);

impl<S> tower::Layer<S> for CountRequests {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// The Kubernetes verb of a request, as RBAC names them.
fn verb<B>(request: &http::Request<B>) -> &'static str {
    let query = request.uri().query().unwrap_or("");
    match *request.method() {
        http::Method::GET
            if query
                .split('&')
                .any(|p| p == "watch=true" || p == "watch=1") =>
        {
            "watch"
        }
        http::Method::GET => "get",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "other",
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for Counted<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let verb = verb(&request);
        let metrics = self.metrics.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            let code = response.as_ref().map_or(0, |r| r.status().as_u16());
            metrics.api_request(verb, code);
            response
        })
    }
}

/// Serves `/metrics`, `/healthz` (the process answers) and `/readyz` (definitions loaded and
/// watches started; a standby replica waiting for the lease is ready too, so that a disruption
/// budget does not count it as down) on `addr`, until the future is dropped.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(listener, metrics).await
}

pub async fn serve_on(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, Infallible>(respond(request.uri().path(), &metrics)) }
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(path: &str, metrics: &Metrics) -> hyper::Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => (
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        "/healthz" => (200, "text/plain", "ok\n".to_string()),
        "/readyz" if metrics.is_ready() => (200, "text/plain", "ready\n".to_string()),
        "/readyz" => (503, "text/plain", "loading definitions\n".to_string()),
        _ => (
            404,
            "text/plain",
            "not found: try /metrics, /healthz or /readyz\n".to_string(),
        ),
    };
    hyper::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}
