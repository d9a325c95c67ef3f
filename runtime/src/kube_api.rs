//! [`ResourceApi`] over `kube::Client`: kinds found by discovery (no `plural` needed), writes by
//! server-side apply as field manager `koreo`.

use std::collections::HashMap;

use koreo_lang::eval::ResourceId;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};
use serde_json::Value as Json;
use tokio::sync::Mutex;

use crate::engine::{RequestError, ResourceApi};

pub use koreo_reconcile::FIELD_MANAGER;

/// A client for the cluster of `config` that sends at most `qps` requests in any one-second
/// window (watches count when they start), so that a burst of reconciles cannot flood the API
/// server (requests over the limit wait their turn), and counts requests in `metrics`.
pub fn client(
    config: kube::Config,
    qps: u32,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) -> Result<Client, kube::Error> {
    let limit =
        tower::limit::RateLimitLayer::new(qps.max(1).into(), std::time::Duration::from_secs(1));
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&crate::metrics::CountRequests(metrics))
        .with_layer(&limit)
        .build())
}

/// A kind as discovery found it: its resource, whether it is namespaced, whether it has a
/// status subresource.
type Discovered = (ApiResource, bool, bool);

pub struct KubeApi {
    client: Client,
    kinds: Mutex<HashMap<(String, String), Discovered>>,
}

impl KubeApi {
    pub fn new(client: Client) -> KubeApi {
        KubeApi {
            client,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// The API for an object's kind, discovered once per kind.
    async fn api(&self, id: &ResourceId) -> Result<Api<DynamicObject>, String> {
        Ok(self.api_and_status(id).await?.0)
    }

    /// The API, and whether the kind has a status subresource.
    async fn api_and_status(&self, id: &ResourceId) -> Result<(Api<DynamicObject>, bool), String> {
        let (resource, namespaced, has_status) = self.discovered(id).await?;
        let api = match (namespaced, &id.namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &resource),
            (true, None) => {
                return Err(format!(
                    "{} is namespaced: the function must set a namespace",
                    id.kind
                ));
            }
            (false, _) => Api::all_with(self.client.clone(), &resource),
        };
        Ok((api, has_status))
    }

    /// The object's kind as discovery found it, once per kind.
    async fn discovered(&self, id: &ResourceId) -> Result<Discovered, String> {
        let key = (id.api_version.clone(), id.kind.clone());
        if let Some(known) = self.kinds.lock().await.get(&key).cloned() {
            return Ok(known);
        }
        let (group, version) = id
            .api_version
            .split_once('/')
            .unwrap_or(("", &id.api_version));
        let gvk = GroupVersionKind::gvk(group, version, &id.kind);
        let (resource, caps) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|e| {
                format!(
                    "the cluster does not serve {} {}: {e}",
                    id.api_version, id.kind
                )
            })?;
        let has_status = caps.subresources.iter().any(|(r, _)| r.plural == "status");
        let found = (resource, caps.scope == Scope::Namespaced, has_status);
        self.kinds.lock().await.insert(key, found.clone());
        Ok(found)
    }
}

/// Writes show as koreo's in `managedFields`.
pub fn as_koreo() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

fn to_json(object: &DynamicObject) -> Json {
    serde_json::to_value(object).unwrap_or(Json::Null)
}

fn request_error(e: kube::Error) -> RequestError {
    match e {
        kube::Error::Api(status) => RequestError::from_status(status.code, status.message),
        other => RequestError::Transient(other.to_string()),
    }
}

impl ResourceApi for KubeApi {
    async fn get(&self, id: &ResourceId) -> Result<Option<Json>, RequestError> {
        let api = self.api(id).await.map_err(RequestError::Transient)?;
        api.get_opt(&id.name)
            .await
            .map(|o| o.as_ref().map(to_json))
            .map_err(request_error)
    }

    async fn apply(&self, id: &ResourceId, body: &Json, force: bool) -> Result<Json, RequestError> {
        let api = self.api(id).await.map_err(RequestError::Transient)?;
        let mut params = PatchParams::apply(FIELD_MANAGER);
        params.force = force;
        api.patch(&id.name, &params, &Patch::Apply(body))
            .await
            .map(|o| to_json(&o))
            .map_err(request_error)
    }

    async fn plural(&self, id: &ResourceId) -> Option<String> {
        Some(self.discovered(id).await.ok()?.0.plural)
    }

    async fn json_patch(&self, id: &ResourceId, operations: &Json) -> Result<Json, RequestError> {
        let api = self.api(id).await.map_err(RequestError::Transient)?;
        let operations: json_patch::Patch = serde_json::from_value(operations.clone())
            .map_err(|e| RequestError::Refused(format!("not a JSON patch: {e}")))?;
        api.patch(&id.name, &as_koreo(), &Patch::<()>::Json(operations))
            .await
            .map(|o| to_json(&o))
            .map_err(request_error)
    }

    async fn merge_patch(&self, id: &ResourceId, patch: &Json) -> Result<Json, RequestError> {
        let api = self.api(id).await.map_err(RequestError::Transient)?;
        api.patch(&id.name, &as_koreo(), &Patch::Merge(patch))
            .await
            .map(|o| to_json(&o))
            .map_err(request_error)
    }

    async fn patch_status(&self, id: &ResourceId, patch: &Json) -> Result<Json, RequestError> {
        let (api, has_status) = self
            .api_and_status(id)
            .await
            .map_err(RequestError::Transient)?;
        let written = if has_status {
            api.patch_status(&id.name, &as_koreo(), &Patch::Merge(patch))
                .await
        } else {
            api.patch(&id.name, &as_koreo(), &Patch::Merge(patch)).await
        };
        written.map(|o| to_json(&o)).map_err(request_error)
    }

    async fn delete(&self, id: &ResourceId) -> Result<(), RequestError> {
        let api = self.api(id).await.map_err(RequestError::Transient)?;
        match api.delete(&id.name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(request_error(e)),
        }
    }
}
