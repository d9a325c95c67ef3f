//! `koreo schemas pull`: the schemas a cluster serves, fetched once so that `koreo check
//! --schemas` types definitions offline against exactly that cluster: its
//! CustomResourceDefinitions, and its built-in kinds at its own Kubernetes version.

use koreo_lang::openapi;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::{Map, Value as Json};

/// What a cluster serves, ready to write.
#[derive(Debug, Default)]
pub struct Pulled {
    /// Each CRD without what the server keeps of it (status, managed fields, uid...).
    pub crds: Vec<Json>,
    /// The built-in kinds as a bundle's text (`kubernetes.json`), when the server has
    /// schemas in its OpenAPI v3 documents.
    pub bundle: Option<String>,
    /// The server's Kubernetes version, `1.36`.
    pub kubernetes: String,
    /// How many kinds the bundle has.
    pub kinds: usize,
    /// OpenAPI documents that could not be read (an aggregated API that is down, a server
    /// without OpenAPI v3), with why: their kinds are not in the bundle.
    pub unread: Vec<String>,
}

pub async fn pull(client: &Client) -> Result<Pulled, kube::Error> {
    let gvk = GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition");
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk));
    let mut crds = Vec::new();
    for crd in api.list(&ListParams::default()).await? {
        let mut crd = serde_json::to_value(crd).map_err(kube::Error::SerdeError)?;
        if let Some(object) = crd.as_object_mut() {
            object.remove("status");
            // A list's items come without them from a real API server.
            object.insert("apiVersion".into(), "apiextensions.k8s.io/v1".into());
            object.insert("kind".into(), "CustomResourceDefinition".into());
        }
        if let Some(meta) = crd["metadata"].as_object_mut() {
            meta.retain(|k, _| matches!(k.as_str(), "name" | "labels" | "annotations"));
            if let Some(annotations) = meta.get_mut("annotations").and_then(Json::as_object_mut) {
                annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
            }
        }
        crds.push(crd);
    }
    let version = client.apiserver_version().await?;
    let kubernetes = format!(
        "{}.{}",
        version.major,
        version
            .minor
            .trim_end_matches(|c: char| !c.is_ascii_digit())
    );
    // CRDs' groups are in the OpenAPI documents too: their schemas are the CRD files.
    let crd_groups: Vec<&str> = crds
        .iter()
        .filter_map(|c| c["spec"]["group"].as_str())
        .collect();
    let mut unread = Vec::new();
    let index = match get_json(client, "/openapi/v3").await {
        Ok(index) => index,
        Err(e) => {
            unread.push(format!("/openapi/v3: {e}"));
            Json::Null
        }
    };
    let mut kinds = Map::new();
    let mut definitions = Map::new();
    for (group_version, entry) in index["paths"].as_object().into_iter().flatten() {
        let Some(group) = group_version
            .strip_prefix("apis/")
            .map(|gv| gv.split('/').next().unwrap_or_default())
            .or_else(|| group_version.strip_prefix("api/").map(|_| ""))
        else {
            continue;
        };
        if crd_groups.contains(&group) {
            continue;
        }
        let Some(url) = entry["serverRelativeURL"].as_str() else {
            continue;
        };
        let document = match get_json(client, url).await {
            Ok(document) => document,
            Err(e) => {
                unread.push(format!("{group_version}: {e}"));
                continue;
            }
        };
        for (name, schema) in document["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
        {
            for gvk in schema["x-kubernetes-group-version-kind"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let (Some(group), Some(version), Some(kind)) = (
                    gvk["group"].as_str(),
                    gvk["version"].as_str(),
                    gvk["kind"].as_str(),
                ) else {
                    continue;
                };
                let api_version = koreo_lang::model::api_version(group, version);
                kinds.insert(format!("{api_version}/{kind}"), Json::from(name.as_str()));
            }
            definitions.insert(name.clone(), openapi::compact(schema.clone()));
        }
    }
    let bundle =
        (!kinds.is_empty()).then(|| openapi::bundle_text(&kubernetes, &kinds, &definitions));
    Ok(Pulled {
        crds,
        bundle,
        kubernetes,
        kinds: kinds.len(),
        unread,
    })
}

async fn get_json(client: &Client, path: &str) -> Result<Json, kube::Error> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(kube::Error::HttpError)?;
    let text = client.request_text(request).await?;
    serde_json::from_str(&text).map_err(kube::Error::SerdeError)
}
