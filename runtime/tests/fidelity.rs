//! Fidelity of the local API server (testkube): the same scripted requests against it and a
//! real kube-apiserver (`KOREO_E2E_KUBECONFIG`), their answers compared: status codes, and the
//! fields of each answer that koreo or its users read (merge results, managedFields, what the
//! server rewrites, errors). A difference is a bug in testkube, unless docs/testkube.md lists
//! it (the `KNOWN` table below, with why it is left). Without a real cluster this says so and
//! passes.

use koreo_testkube::TestKube;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value as Json, json};

/// One request, and the parts of its answer to compare (JSON pointers into the body).
struct Step {
    what: &'static str,
    method: &'static str,
    /// Under `/api/v1/namespaces/{ns}` or `/apis/.../namespaces/{ns}`: `{ns}` is replaced.
    path: &'static str,
    content_type: &'static str,
    body: Json,
    compare: &'static [&'static str],
}

/// Differences known and left, as `what` of the step and the pointer (see docs/testkube.md).
const KNOWN: &[(&str, &str)] = &[
    // The API server writes quantities in canonical form; testkube keeps them as written.
    // koreo compares quantities by value, so nothing it does depends on the form.
    (QUANTITIES, "/spec/template/spec/containers/0/resources"),
    // testkube's server-side apply owns a list as one field (as for a custom resource's list
    // without list-map keys); a real server merges a built-in kind's list by its keys. So the
    // forced apply replaces the other entry (no duplicate name to refuse), and the unforced
    // one finds no other owner of the entry. koreo replaces the lists it holds differently
    // before applying, so it depends on neither; the e2e suite proves that on a real server.
    (FORCED, "status"),
    (FORCED, "/code"),
    (FORCED, "/reason"),
    (UNFORCED, "status"),
    (UNFORCED, "/code"),
    (UNFORCED, "/reason"),
    // A strategic merge puts the entries it adds to a keyed list first; testkube appends them.
    (STRATEGIC, "/spec/template/spec/containers/0/env"),
];
const QUANTITIES: &str = "quantities are stored in canonical form";
const FORCED: &str = "a forced apply cannot remove the other manager's port: two named http";
const UNFORCED: &str = "an apply without force that conflicts";
const STRATEGIC: &str = "a strategic merge adds an env entry by name";

fn steps() -> Vec<Step> {
    let cm = "/api/v1/namespaces/{ns}/configmaps";
    vec![
        Step {
            what: "create",
            method: "POST",
            path: cm,
            content_type: "application/json",
            body: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}),
            compare: &["/data", "/metadata/name"],
        },
        Step {
            what: "create again",
            method: "POST",
            path: cm,
            content_type: "application/json",
            body: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
            compare: &["/reason", "/code"],
        },
        Step {
            what: "get a missing object",
            method: "GET",
            path: "/api/v1/namespaces/{ns}/configmaps/missing",
            content_type: "application/json",
            body: Json::Null,
            compare: &["/reason", "/code"],
        },
        Step {
            what: "a merge patch with a stale resourceVersion",
            method: "PATCH",
            path: "/api/v1/namespaces/{ns}/configmaps/a",
            content_type: "application/merge-patch+json",
            body: json!({"metadata": {"resourceVersion": "1"}, "data": {"k": "w"}}),
            compare: &["/reason", "/code"],
        },
        Step {
            what: "a JSON patch that sets a stale resourceVersion",
            method: "PATCH",
            path: "/api/v1/namespaces/{ns}/configmaps/a",
            content_type: "application/json-patch+json",
            body: json!([{"op": "replace", "path": "/metadata/resourceVersion", "value": "1"},
                {"op": "replace", "path": "/data/k", "value": "w"}]),
            compare: &["/reason", "/code"],
        },
        Step {
            what: "server-side apply creates",
            method: "PATCH",
            path: "/api/v1/namespaces/{ns}/services/web?fieldManager=koreo",
            content_type: "application/apply-patch+yaml",
            body: json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
            compare: &[
                "/spec/ports",
                "/spec/selector",
                "/spec/type",
                "/spec/sessionAffinity",
            ],
        },
        Step {
            what: "the applier owns its fields in one Apply entry",
            method: "GET",
            path: "/api/v1/namespaces/{ns}/services/web",
            content_type: "application/json",
            body: Json::Null,
            compare: &[
                "/metadata/managedFields/0/manager",
                "/metadata/managedFields/0/operation",
            ],
        },
        Step {
            what: "another manager replaces the ports by a merge patch",
            method: "PATCH",
            path: "/api/v1/namespaces/{ns}/services/web?fieldManager=someone",
            content_type: "application/merge-patch+json",
            body: json!({"spec": {"ports": [{"name": "http", "port": 9999}]}}),
            compare: &["/spec/ports"],
        },
        Step {
            what: FORCED,
            method: "PATCH",
            path: "/api/v1/namespaces/{ns}/services/web?fieldManager=koreo&force=true",
            content_type: "application/apply-patch+yaml",
            body: json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
            compare: &["/code", "/reason"],
        },
        Step {
            what: UNFORCED,
            method: "PATCH",
            path: "/api/v1/namespaces/{ns}/services/web?fieldManager=koreo",
            content_type: "application/apply-patch+yaml",
            body: json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                "spec": {"ports": [{"name": "http", "port": 9999, "targetPort": 1}]}}),
            compare: &["/code", "/reason"],
        },
        Step {
            what: "a Secret's stringData is folded into data",
            method: "POST",
            path: "/api/v1/namespaces/{ns}/secrets",
            content_type: "application/json",
            body: json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                "stringData": {"password": "hunter2"}, "data": {"user": "YWRh"}}),
            compare: &["/data", "/stringData", "/type"],
        },
        Step {
            what: QUANTITIES,
            method: "PATCH",
            path: "/apis/apps/v1/namespaces/{ns}/deployments/d?fieldManager=koreo",
            content_type: "application/apply-patch+yaml",
            body: json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {"metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "app", "image": "x", "env": [{"name": "A", "value": "1"}],
                "resources": {"limits": {"cpu": 1, "memory": "1024Mi"}, "requests": {"cpu": "0.5"}}}]}}}}),
            compare: &[
                "/spec/template/spec/containers/0/resources",
                "/spec/replicas",
            ],
        },
        Step {
            what: STRATEGIC,
            method: "PATCH",
            path: "/apis/apps/v1/namespaces/{ns}/deployments/d?fieldManager=someone",
            content_type: "application/strategic-merge-patch+json",
            body: json!({"spec": {"template": {"spec": {"containers": [{"name": "app",
                "env": [{"name": "B", "value": "2"}]}]}}}}),
            compare: &["/spec/template/spec/containers/0/env"],
        },
        Step {
            what: "delete with a finalizer marks the object",
            method: "POST",
            path: cm,
            content_type: "application/json",
            body: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
            compare: &["/metadata/finalizers"],
        },
        Step {
            what: "the held object is only marked deleted",
            method: "DELETE",
            path: "/api/v1/namespaces/{ns}/configmaps/held",
            content_type: "application/json",
            body: Json::Null,
            compare: &[
                "/metadata/finalizers",
                "/metadata/deletionGracePeriodSeconds",
            ],
        },
        Step {
            what: "its last finalizer removed, it is gone",
            method: "PATCH",
            path: "/api/v1/namespaces/{ns}/configmaps/held",
            content_type: "application/merge-patch+json",
            body: json!({"metadata": {"finalizers": null}}),
            compare: &["/metadata/name"],
        },
        Step {
            what: "and reads as not found",
            method: "GET",
            path: "/api/v1/namespaces/{ns}/configmaps/held",
            content_type: "application/json",
            body: Json::Null,
            compare: &["/code", "/reason"],
        },
    ]
}

/// Status code and the compared parts of each answer, for one server.
async fn run(client: &Client, namespace: &str) -> Vec<(u16, Vec<Json>)> {
    let ns_body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
    send(
        client,
        "POST",
        "/api/v1/namespaces",
        "application/json",
        &ns_body,
    )
    .await;
    let mut answers = Vec::new();
    for step in steps() {
        let path = step.path.replace("{ns}", namespace);
        let (code, body) = send(client, step.method, &path, step.content_type, &step.body).await;
        let parts = step
            .compare
            .iter()
            .map(|p| body.pointer(p).cloned().unwrap_or(Json::Null))
            .collect();
        answers.push((code, parts));
    }
    let _ = send(
        client,
        "DELETE",
        &format!("/api/v1/namespaces/{namespace}"),
        "application/json",
        &Json::Null,
    )
    .await;
    answers
}

async fn send(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &Json,
) -> (u16, Json) {
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body)
        .unwrap();
    let response = client.send(request.map(Into::into)).await.unwrap();
    let code = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (code, serde_json::from_slice(&bytes).unwrap_or(Json::Null))
}

async fn client_of(kubeconfig: Kubeconfig) -> Client {
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_server_answers_as_a_real_one() {
    let Ok(path) = std::env::var("KOREO_E2E_KUBECONFIG") else {
        eprintln!(
            "fidelity: KOREO_E2E_KUBECONFIG is not set: no real server to compare with, skipped"
        );
        return;
    };
    let real = client_of(Kubeconfig::read_from(&path).unwrap()).await;
    let local_server = TestKube::start().await.unwrap();
    let local = client_of(Kubeconfig::from_yaml(&local_server.kubeconfig()).unwrap()).await;
    let namespace = format!("koreo-fidelity-{}", std::process::id());
    let (want, got) = (run(&real, &namespace).await, run(&local, &namespace).await);
    let mut differences = Vec::new();
    for (step, ((real_code, real_parts), (local_code, local_parts))) in
        steps().iter().zip(want.iter().zip(&got))
    {
        if real_code != local_code && !KNOWN.contains(&(step.what, "status")) {
            differences.push(format!(
                "{}: status {real_code} on the real server, {local_code} on testkube",
                step.what
            ));
        }
        for ((pointer, r), l) in step.compare.iter().zip(real_parts).zip(local_parts) {
            if r != l && !KNOWN.contains(&(step.what, pointer)) {
                differences.push(format!(
                    "{}: {pointer} is {r} on the real server, {l} on testkube",
                    step.what
                ));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "testkube differs from a real API server:\n{}",
        differences.join("\n")
    );
}
