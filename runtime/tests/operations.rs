//! Running koreo in a cluster: leader election, metrics and probes, Events.

use std::sync::Arc;
use std::time::Duration;

mod support;
use support::{create, documents, event, eventually, is_ready, resource, with_definitions};

use k8s_openapi::api::coordination::v1::Lease;
use koreo_runtime::controller::{Controller, Report};
use koreo_runtime::leader::{LeaseConfig, run_while_leading};
use koreo_runtime::metrics::{Metrics, serve_on};
use koreo_testkube::TestKube;
use kube::api::{Api, DynamicObject};
use serde_json::json;
use tokio::sync::mpsc;

fn hello() -> Vec<serde_json::Value> {
    [documents("hello/crd.yaml"), documents("hello/hello.koreo")].concat()
}

fn greeting(name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "example.koreo.dev/v1", "kind": "Greeting",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

/// A replica: a controller that runs only while it holds the lease, and its reports.
fn replica(
    client: &kube::Client,
    identity: &str,
) -> (tokio::task::JoinHandle<()>, mpsc::UnboundedReceiver<Report>) {
    let (reports, received) = mpsc::unbounded_channel();
    let mut lease = LeaseConfig::new("koreo", "default", identity);
    lease.duration = Duration::from_secs(3);
    lease.retry = Duration::from_millis(200);
    let client = client.clone();
    let handle = tokio::spawn(async move {
        run_while_leading(
            client.clone(),
            lease,
            || {
                Controller::new(client.clone())
                    .with_reports(reports.clone())
                    .run()
            },
            std::future::pending(),
        )
        .await
    });
    (handle, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_the_other_takes_over_when_it_dies() {
    let (_server, client) = with_definitions(&hello()).await;
    let (first, mut first_reports) = replica(&client, "replica-a");
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let holder =
        async || -> Option<String> { leases.get_opt("koreo").await.ok()??.spec?.holder_identity };
    eventually(10, "replica-a to lead", async || {
        (holder().await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    let (_second, mut second_reports) = replica(&client, "replica-b");
    create(
        &client,
        &greeting("ada", json!({"name": "Ada", "language": "en"})),
    )
    .await;
    eventually(10, "the leader to reconcile", async || {
        first_reports.try_recv().ok()
    })
    .await;
    // Several renewals later, the standby has reconciled nothing and the lease is still a's.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        second_reports.try_recv().is_err(),
        "the standby does not reconcile"
    );
    assert_eq!(holder().await.as_deref(), Some("replica-a"));

    // The leader dies without giving the lease up: b takes over once it expires.
    first.abort();
    let died = tokio::time::Instant::now();
    create(
        &client,
        &greeting("bob", json!({"name": "Bob", "language": "en"})),
    )
    .await;
    let report = eventually(10, "the standby to take over", async || {
        second_reports.try_recv().ok()
    })
    .await;
    let took = died.elapsed();
    assert!(
        report.parent.contains("Greeting default/"),
        "{}",
        report.parent
    );
    assert_eq!(holder().await.as_deref(), Some("replica-b"));
    // Lease duration (3 s) plus a retry period, a try and the reconcile itself.
    assert!(
        took < Duration::from_secs(5),
        "took over after {took:?}, lease duration 3 s"
    );
    let greetings: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &resource("example.koreo.dev/v1", "Greeting"),
    );
    eventually(10, "bob Ready under the new leader", async || {
        is_ready(&greetings.get("bob").await.ok()?).then_some(())
    })
    .await;
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of a sample line `name{labels} value` whose labels include all of `labels`.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let matches = series.starts_with(&format!("{name}{{"))
            && labels.iter().all(|l| series.contains(l))
            || series == name;
        matches.then(|| value.parse().ok()).flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_probes_describe_what_the_controller_does() {
    let (server, client) = with_definitions(&hello()).await;
    let metrics = Arc::new(Metrics::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_on(listener, metrics.clone()));
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    assert_eq!(
        http_get(addr, "/readyz").await.0,
        503,
        "not ready before the definitions are loaded"
    );

    let counted = counted_client(&server, metrics.clone()).await;
    tokio::spawn(Controller::new(counted).with_metrics(metrics.clone()).run());
    create(
        &client,
        &greeting("ada", json!({"name": "Ada", "language": "en"})),
    )
    .await;
    // No name: the step's input expression fails.
    create(&client, &greeting("nobody", json!({"language": "en"}))).await;
    let greetings: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &resource("example.koreo.dev/v1", "Greeting"),
    );
    eventually(10, "Ready", async || {
        is_ready(&greetings.get("ada").await.ok()?).then_some(())
    })
    .await;
    assert_eq!(http_get(addr, "/readyz").await.0, 200);
    let text = eventually(10, "the failed expression counted", async || {
        let (status, text) = http_get(addr, "/metrics").await;
        assert_eq!(status, 200);
        sample(
            &text,
            "koreo_expression_errors_total",
            &["workflow=\"hello\""],
        )
        .map(|_| text)
    })
    .await;
    assert!(
        sample(
            &text,
            "koreo_reconciles_total",
            &["workflow=\"hello\"", "outcome=\"Ok\""]
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "koreo_reconciles_total", &["outcome=\"PermFail\""]).unwrap() >= 1.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "koreo_reconcile_duration_seconds_count",
            &["workflow=\"hello\""]
        )
        .unwrap()
            >= 2.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "koreo_api_requests_total",
            &["verb=\"create\"", "code=\"201\""]
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "koreo_api_requests_total", &["verb=\"watch\""]).is_some(),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "koreo_definitions",
            &["kind=\"Workflow\"", "valid=\"true\""]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(sample(&text, "koreo_queue_depth", &[]).is_some(), "{text}");
    assert_eq!(http_get(addr, "/nowhere").await.0, 404);
}

async fn counted_client(server: &TestKube, metrics: Arc<Metrics>) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&server.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    koreo_runtime::kube_api::client(config, 1000, metrics).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_on_the_parent_tell_what_koreo_did() {
    let (_server, client) = with_definitions(&hello()).await;
    tokio::spawn(Controller::new(client.clone()).run());
    create(
        &client,
        &greeting("ada", json!({"name": "Ada", "language": "en"})),
    )
    .await;
    create(&client, &greeting("nobody", json!({"language": "en"}))).await;
    let about =
        async |name: &str, reason: &str| event(&client, "default", reason, Some(name)).await;
    let created = eventually(10, "a Created event", async || {
        about("ada", "Created").await
    })
    .await;
    assert_eq!(created.type_.as_deref(), Some("Normal"));
    assert_eq!(
        created.note.as_deref(),
        Some("Created ConfigMap:default:ada-greeting")
    );
    assert_eq!(created.reporting_controller.as_deref(), Some("koreo"));
    assert_eq!(created.regarding.unwrap().kind.as_deref(), Some("Greeting"));
    let failed = eventually(10, "a Failed event", async || {
        about("nobody", "Failed").await
    })
    .await;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert!(failed.note.unwrap().contains("error evaluating"));
    // The object an Event is about is its related object.
    let related = created.related.expect("the related object");
    assert_eq!(
        (related.kind.as_deref(), related.name.as_deref()),
        (Some("ConfigMap"), Some("ada-greeting"))
    );
    // A failure with another message is another Event, not a count on the first.
    let greetings: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &resource("example.koreo.dev/v1", "Greeting"),
    );
    support::merge(&greetings, "nobody", json!({"spec": {"name": ""}})).await;
    let notes = eventually(10, "a second Failed event", async || {
        let failed = support::events(&client, "default", "Failed", Some("nobody")).await;
        let notes: Vec<String> = failed.into_iter().filter_map(|e| e.note).collect();
        (notes.len() == 2).then_some(notes)
    })
    .await;
    // Events are listed by name, which is random: either order.
    assert!(
        notes.iter().any(|n| n.contains("a greeting needs a name"))
            && notes.iter().any(|n| n.contains("error evaluating")),
        "{notes:?}"
    );
    // Events expire: a repeat of one that is gone is recorded anew, not lost.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    for e in support::events(&client, "default", "Failed", Some("nobody")).await {
        let name = e.metadata.name.unwrap();
        events.delete(&name, &Default::default()).await.unwrap();
    }
    support::merge(
        &greetings,
        "nobody",
        json!({"metadata": {"labels": {"touched": "yes"}}}),
    )
    .await;
    eventually(10, "the failure recorded again", async || {
        event(&client, "default", "Failed", Some("nobody")).await
    })
    .await;

    // Deleting the parent abandons the ConfigMap (hello's delete policy), and says so.
    greetings.delete("ada", &Default::default()).await.unwrap();
    let abandoned = eventually(10, "an Abandoned event", async || {
        about("ada", "Abandoned").await
    })
    .await;
    assert_eq!(
        abandoned.note.as_deref(),
        Some("Abandoned ConfigMap:default:ada-greeting")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_shuts_down_gives_the_lease_up() {
    let (_server, client) = with_definitions(&hello()).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut lease = LeaseConfig::new("koreo", "default", "replica-a");
    lease.retry = Duration::from_millis(200);
    let leading = tokio::spawn(run_while_leading(
        client.clone(),
        lease,
        {
            let client = client.clone();
            move || Controller::new(client.clone()).run()
        },
        async {
            let _ = stopped.await;
        },
    ));
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let holder = async || -> Option<Option<String>> {
        Some(leases.get_opt("koreo").await.ok()??.spec?.holder_identity)
    };
    eventually(10, "replica-a to lead", async || {
        (holder().await? == Some("replica-a".into())).then_some(())
    })
    .await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), leading)
        .await
        .expect("it stops")
        .unwrap();
    assert_eq!(
        holder().await,
        Some(None),
        "the lease is free for a standby at once"
    );
}
