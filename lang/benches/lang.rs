//! Benchmarks of the language core's hot paths: compiling expressions, evaluating them,
//! binding inputs into a scope, and running ValueFunctions and ResourceFunctions; and what
//! `koreo check` spends on cross-file analysis with types (the examples, the shared corpus)
//! and, once a process, on reading the bundled schemas.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use koreo_lang::Workspace;
use koreo_lang::eval::{self, Definitions, Outcome};
use koreo_lang::expr::{Expr, Scope};
use koreo_lang::model::{ResourceTemplate, ValueFunction};
use serde_json::{Value, json};

/// Loads `yaml`, failing loudly on any error so a broken fixture cannot be benchmarked.
fn workspace(yaml: &str) -> Workspace {
    let ws = Workspace::load_str("bench.koreo", yaml);
    let errors: Vec<_> = ws
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    ws
}

fn compile(text: &str) -> Expr {
    Expr::compile_str(text).unwrap_or_else(|d| panic!("{text}: {d}"))
}

fn compile_expression(c: &mut Criterion) {
    let text = r#"inputs.metadata.name + "-" + string(inputs.replicas * 2)"#;
    c.bench_function("compile_expression", |b| {
        b.iter(|| Expr::compile_str(black_box(text)).unwrap())
    });
}

fn eval_simple(c: &mut Criterion) {
    let expr = compile("inputs.a.b * 2");
    let inputs = json!({"a": {"b": 21}});
    let scope = Scope::new().with("inputs", &inputs);
    assert_eq!(expr.eval(&scope).unwrap(), json!(42));
    c.bench_function("eval_simple", |b| {
        b.iter(|| black_box(&expr).eval(black_box(&scope)).unwrap())
    });
}

fn eval_comprehension(c: &mut Criterion) {
    let expr = compile("inputs.items.filter(i, i.enabled).map(i, i.name)");
    let items: Vec<Value> = (0..20)
        .map(|n| json!({"name": format!("item-{n}"), "enabled": n % 2 == 0, "weight": n}))
        .collect();
    let inputs = json!({ "items": items });
    let scope = Scope::new().with("inputs", &inputs);
    let out = expr.eval(&scope).unwrap();
    assert_eq!(out.as_array().map(Vec::len), Some(10));
    c.bench_function("eval_comprehension", |b| {
        b.iter(|| black_box(&expr).eval(black_box(&scope)).unwrap())
    });
}

/// A Deployment-shaped object of about 2 KB of JSON.
fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "checkout-service",
            "namespace": "shop-production",
            "uid": "6f1c2d3e-4a5b-46c7-8d9e-0f1a2b3c4d5e",
            "resourceVersion": "48213377",
            "generation": 14,
            "labels": {
                "app.kubernetes.io/name": "checkout-service",
                "app.kubernetes.io/part-of": "shop",
                "app.kubernetes.io/managed-by": "koreo",
                "team": "payments"
            },
            "annotations": {
                "deployment.kubernetes.io/revision": "14",
                "koreo.dev/owner": "shop-production/checkout"
            }
        },
        "spec": {
            "replicas": 3,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "checkout-service"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}
            },
            "template": {
                "metadata": {
                    "labels": {"app.kubernetes.io/name": "checkout-service", "team": "payments"},
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}
                },
                "spec": {
                    "serviceAccountName": "checkout-service",
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{
                        "name": "app",
                        "image": "registry.example.com/shop/checkout-service:v2.14.3",
                        "imagePullPolicy": "IfNotPresent",
                        "args": ["--listen=:8080", "--metrics=:9090", "--log-format=json"],
                        "ports": [
                            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                            {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}
                        ],
                        "env": [
                            {"name": "DATABASE_HOST", "value": "checkout-db.shop-production.svc"},
                            {"name": "DATABASE_PORT", "value": "5432"},
                            {"name": "PAYMENT_GATEWAY_URL", "value": "https://payments.example.com/v3"},
                            {"name": "LOG_LEVEL", "value": "info"}
                        ],
                        "resources": {
                            "requests": {"cpu": "250m", "memory": "256Mi"},
                            "limits": {"cpu": "1", "memory": "512Mi"}
                        },
                        "readinessProbe": {
                            "httpGet": {"path": "/healthz/ready", "port": "http"},
                            "initialDelaySeconds": 5,
                            "periodSeconds": 10
                        },
                        "livenessProbe": {
                            "httpGet": {"path": "/healthz/live", "port": "http"},
                            "initialDelaySeconds": 15,
                            "periodSeconds": 20
                        }
                    }]
                }
            }
        },
        "status": {
            "observedGeneration": 14,
            "replicas": 3,
            "readyReplicas": 3,
            "updatedReplicas": 3,
            "availableReplicas": 3,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
            ]
        }
    })
}

fn build_activation_2kb(c: &mut Criterion) {
    let inputs = deployment();
    let size = serde_json::to_string(&inputs).unwrap().len();
    assert!(
        (1800..=2200).contains(&size),
        "the fixture should be about 2 KB of JSON, is {size} bytes"
    );
    c.bench_function("build_activation_2kb", |b| {
        b.iter(|| Scope::new().with("inputs", black_box(&inputs)))
    });
}

const VALUE_FUNCTION: &str = r#"
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: service-config}
spec:
  preconditions:
  - assert: =inputs.replicas > 0
    permFail:
      message: ="replicas must be positive, got " + string(inputs.replicas)
  - assert: =has(inputs.name) && inputs.name != ""
    permFail: {message: a name is required}
  locals:
    fullName: =inputs.name + "-" + inputs.env
    port: =inputs.basePort + 1
  return:
    name: =locals.fullName
    replicas: =inputs.replicas * 2
    port: =locals.port
    labels:
      app: =inputs.name
      env: =inputs.env
    ready: =inputs.replicas >= 2
"#;

fn value_function(c: &mut Criterion) {
    let ws = workspace(VALUE_FUNCTION);
    let f = ws.value_function("service-config", None).unwrap();
    let inputs = json!({"name": "checkout", "env": "prod", "replicas": 3, "basePort": 8080});
    assert_eq!(
        eval::run_value_function(f, &inputs, None),
        Outcome::Ok(json!({
            "name": "checkout-prod",
            "replicas": 6,
            "port": 8081,
            "labels": {"app": "checkout", "env": "prod"},
            "ready": true
        }))
    );
    c.bench_function("value_function", |b| {
        b.iter(|| eval::run_value_function(black_box(f), black_box(&inputs), None))
    });
}

struct NoDefinitions;

impl Definitions for NoDefinitions {
    fn resource_template(&self, _name: &str) -> Option<Arc<ResourceTemplate>> {
        None
    }
    fn value_function(&self, _name: &str) -> Option<Arc<ValueFunction>> {
        None
    }
}

const RESOURCE_FUNCTION: &str = r#"
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: service-deployment}
spec:
  locals:
    name: =inputs.name + "-svc"
  apiConfig:
    apiVersion: apps/v1
    kind: Deployment
    name: =locals.name
    namespace: =inputs.ns
  resource:
    spec:
      replicas: =inputs.replicas
      selector:
        matchLabels: {app: =inputs.name}
      template:
        metadata:
          labels: {app: =inputs.name}
        spec:
          containers:
          - name: app
            image: =inputs.image
  overlays:
  - overlay:
      metadata:
        labels:
          team: =inputs.team
          app: =inputs.name
  - overlay:
      metadata:
        annotations:
          koreo.dev/replicas: =string(resource.spec.replicas)
  - skipIf: =inputs.replicas < 2
    overlay:
      spec:
        strategy:
          type: RollingUpdate
          rollingUpdate: {maxUnavailable: 0}
"#;

fn resource_function_three_overlays(c: &mut Criterion) {
    let ws = workspace(RESOURCE_FUNCTION);
    let f = ws.resource_function("service-deployment", None).unwrap();
    let inputs = json!({
        "name": "checkout",
        "ns": "prod",
        "replicas": 3,
        "image": "registry.example.com/checkout:v2",
        "team": "payments"
    });
    let defs = NoDefinitions;
    let prepared = eval::prepare_resource(f, &inputs, &defs).unwrap();
    assert_eq!(prepared.id.to_string(), "Deployment:prod:checkout-svc");
    assert_eq!(prepared.target["metadata"]["labels"]["team"], "payments");
    assert_eq!(
        prepared.target["metadata"]["annotations"]["koreo.dev/replicas"],
        "3"
    );
    assert_eq!(prepared.target["spec"]["strategy"]["type"], "RollingUpdate");
    c.bench_function("resource_function_three_overlays", |b| {
        b.iter(|| eval::prepare_resource(black_box(f), black_box(&inputs), &defs).unwrap())
    });
}

#[path = "../../test-support/shared.rs"]
mod shared;

/// `analysis::check` (references, inputs, step graphs and every type check) over a loaded
/// workspace: all the examples, and the shared conformance corpus when it is here.
fn check_with_types(c: &mut Criterion) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let examples = Workspace::load_paths(&[root]);
    assert!(examples.definitions.len() > 40, "the examples load");
    c.bench_function("check_examples", |b| {
        b.iter(|| koreo_lang::analysis::check(black_box(&examples)))
    });
    if let Some(path) = shared::shared("conformance") {
        let corpus = Workspace::load_paths(&[path]);
        c.bench_function("check_conformance", |b| {
            b.iter(|| koreo_lang::analysis::check(black_box(&corpus)))
        });
    }
}

/// Reading the bundled schemas of built-in kinds: paid once by a process that types a
/// resource of a built-in kind.
fn parse_bundled_schemas(c: &mut Criterion) {
    let text = include_str!("../schemas/kubernetes.json");
    c.bench_function("parse_bundled_schemas", |b| {
        b.iter(|| koreo_lang::openapi::Bundle::parse(black_box(text)).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    targets =
        compile_expression,
        eval_simple,
        eval_comprehension,
        build_activation_2kb,
        value_function,
        resource_function_three_overlays,
        check_with_types,
        parse_bundled_schemas
}
criterion_main!(benches);
