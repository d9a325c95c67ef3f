//! `koreo inspect KIND NAME`: one parent as koreo sees it, in the terminal: its conditions,
//! each step's last outcome, and the objects each step manages (following sub-workflows and
//! `forEach` items), each with whether it is there and ready.

use std::path::Path;
use std::process::ExitCode;

use koreo_runtime::engine::ResourceApi;
use koreo_runtime::kube_api::KubeApi;
use koreo_runtime::managed::{Managed, ManagedObject, ManagedTree};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use serde_json::Value as Json;

pub fn run(kind: &str, name: &str, namespace: &str, kubeconfig: Option<&Path>) -> ExitCode {
    let Some(runtime) = crate::dev::async_runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(inspect(kind, name, namespace, kubeconfig)) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn inspect(
    kind: &str,
    name: &str,
    namespace: &str,
    kubeconfig: Option<&Path>,
) -> Result<String, String> {
    let config = crate::run::kube_config(kubeconfig).await?;
    let client = Client::try_from(config).map_err(|e| e.to_string())?;
    let (resource, namespaced) = parent_resource(&client, kind).await?;
    let (api, place): (Api<DynamicObject>, String) = if namespaced {
        let api = Api::namespaced_with(client.clone(), namespace, &resource);
        (api, format!("{namespace}/{name}"))
    } else {
        (Api::all_with(client.clone(), &resource), name.to_string())
    };
    let parent = api
        .get_opt(name)
        .await
        .map_err(|e| format!("cannot read {kind} {place}: {e}"))?
        .ok_or(format!("no {kind} `{place}`"))?;
    let parent = serde_json::to_value(&parent).map_err(|e| e.to_string())?;
    let objects = KubeApi::new(client);
    let mut out = format!("{} {place}\n", resource.kind);
    for condition in parent["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let text = |k: &str| condition[k].as_str().unwrap_or("");
        out.push_str(&format!(
            "  {} {}: {}{}\n",
            text("type"),
            text("status"),
            text("reason"),
            match text("message") {
                "" => String::new(),
                message => format!(": {message}"),
            }
        ));
    }
    let outcomes = Json::Object(koreo_runtime::pass::read_step_outcomes(&parent));
    let tree = ManagedTree::of_parent(&parent);
    if tree.steps.is_empty() {
        out.push_str("  (koreo has not reconciled it yet: no steps recorded)\n");
    }
    write_tree(&tree, &outcomes, "", &objects, &mut out).await;
    Ok(out)
}

/// The kind of parent, found among the kinds the cluster's Workflows are triggered by, and
/// whether it is namespaced.
async fn parent_resource(client: &Client, kind: &str) -> Result<(ApiResource, bool), String> {
    let kinds = crate::ui::parent_kinds_scoped(client).await;
    if let Some(found) = kinds
        .iter()
        .find(|(r, _)| r.kind.eq_ignore_ascii_case(kind))
    {
        return Ok(found.clone());
    }
    let mut known: Vec<&str> = kinds.iter().map(|(r, _)| r.kind.as_str()).collect();
    known.sort();
    known.dedup();
    Err(format!(
        "no Workflow is triggered by `{kind}`; these kinds are: {}",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    ))
}

/// Whether a managed object is there, and its Ready condition when it has one (read as the
/// controller reads it: one discovery per kind).
async fn state(objects: &KubeApi, object: &ManagedObject) -> String {
    match objects.get(&object.id).await {
        Ok(None) => "missing".into(),
        Err(e) => format!("cannot read: {e}"),
        Ok(Some(found)) => {
            let ready = found["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned());
            match ready {
                Some(c) => format!("present, Ready {}", c["status"].as_str().unwrap_or("?")),
                None => "present".into(),
            }
        }
    }
}

/// One workflow's steps, each with its outcome (top level only: sub-workflows' steps record
/// none) and what it manages.
async fn write_tree(
    tree: &ManagedTree,
    outcomes: &Json,
    pad: &str,
    objects: &KubeApi,
    out: &mut String,
) {
    for (i, (label, managed)) in tree.steps.iter().enumerate() {
        let last = i + 1 == tree.steps.len();
        let outcome = &outcomes[label.as_str()];
        let said = match (outcome["outcome"].as_str(), outcome["message"].as_str()) {
            (Some(o), Some(m)) => format!(": {o}: {m}"),
            (Some(o), None) => format!(": {o}"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{pad}{} {label}{said}\n",
            if last { "└─" } else { "├─" }
        ));
        let inner = format!("{pad}{}", if last { "   " } else { "│  " });
        Box::pin(write_managed(managed, &inner, objects, out)).await;
    }
}

async fn write_managed(managed: &Managed, pad: &str, objects: &KubeApi, out: &mut String) {
    match managed {
        Managed::Nothing => {}
        Managed::Object(object) => {
            let id = &object.id;
            let place = match &id.namespace {
                Some(ns) => format!("{ns}/{}", id.name),
                None => id.name.clone(),
            };
            let readonly = if object.readonly { ", read only" } else { "" };
            let state = state(objects, object).await;
            out.push_str(&format!("{pad}  {} {place} ({state}{readonly})\n", id.kind));
        }
        Managed::Each(items) => {
            for (i, item) in items.iter().enumerate() {
                out.push_str(&format!("{pad}  [{i}]\n"));
                Box::pin(write_managed(item, &format!("{pad}  "), objects, out)).await;
            }
        }
        Managed::Workflow(tree) => {
            out.push_str(&format!("{pad}  Workflow {}\n", tree.workflow));
            Box::pin(write_tree(
                tree,
                &Json::Null,
                &format!("{pad}  "),
                objects,
                out,
            ))
            .await;
        }
    }
}
