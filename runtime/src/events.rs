//! Events on parents (`events.k8s.io/v1`). One Event per distinct parent, type, reason, action,
//! related object and note; the same again within [`REPEAT_WINDOW`] raises that Event's count
//! (one patch) instead of making another. kube's `Recorder` keys by everything but the note, so
//! a changed failure message would only raise the count of an Event showing the old one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use koreo_lang::eval::ResourceId;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value as Json, json};
use tokio::sync::Mutex;

use crate::pass::Notice;

/// How long a repeat counts on the Event before it instead of making a new one.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(6 * 60);

/// Parent uid, type, reason, action, related object, note.
type Key = (String, bool, String, &'static str, Option<String>, String);

struct Seen {
    namespace: String,
    name: String,
    count: i32,
    last: Instant,
}

pub struct Events {
    client: Client,
    instance: Option<String>,
    seen: Mutex<HashMap<Key, Seen>>,
}

impl Events {
    pub fn new(client: Client, instance: Option<String>) -> Events {
        Events {
            client,
            instance,
            seen: Mutex::default(),
        }
    }

    /// Records `notice` on `parent`.
    pub async fn publish(&self, parent: &Json, notice: &Notice) -> Result<(), kube::Error> {
        let meta = &parent["metadata"];
        let text = |v: &Json| v.as_str().map(str::to_string);
        // Events of cluster-scoped parents go to `default`, as Kubernetes' own do.
        let namespace = text(&meta["namespace"]).unwrap_or_else(|| "default".into());
        let key: Key = (
            text(&meta["uid"]).unwrap_or_default(),
            notice.normal,
            notice.reason.clone(),
            notice.action,
            notice.about.as_ref().map(ToString::to_string),
            notice.note.clone(),
        );
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let now = Instant::now();
        let repeat = {
            let mut seen = self.seen.lock().await;
            seen.retain(|_, s| now.duration_since(s.last) < REPEAT_WINDOW);
            seen.get_mut(&key).map(|s| {
                s.count += 1;
                s.last = now;
                (s.namespace.clone(), s.name.clone(), s.count)
            })
        };
        if let Some((namespace, name, count)) = repeat {
            let series = json!({"series": EventSeries {
                count,
                last_observed_time: MicroTime(Timestamp::now()),
            }});
            let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(series))
                .await
            {
                Ok(_) => return Ok(()),
                // Gone (Events expire) or refused: forget it, and record a new one.
                Err(_) => {
                    self.seen.lock().await.remove(&key);
                }
            }
        }
        let regarding = ObjectReference {
            api_version: text(&parent["apiVersion"]),
            kind: text(&parent["kind"]),
            name: text(&meta["name"]),
            namespace: text(&meta["namespace"]),
            uid: text(&meta["uid"]),
            ..ObjectReference::default()
        };
        let event = Event {
            metadata: ObjectMeta {
                // `<parent>.<random hex>`, as Kubernetes names Events (a `generateName` ending in
                // `.` is refused: a name must end with a letter or digit).
                name: Some(event_name(regarding.name.as_deref().unwrap_or("event"))),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(Timestamp::now())),
            action: Some(notice.action.to_string()),
            reason: Some(notice.reason.clone()),
            note: Some(notice.note.clone()),
            type_: Some(if notice.normal { "Normal" } else { "Warning" }.into()),
            regarding: Some(regarding),
            related: notice.about.as_ref().map(reference),
            reporting_controller: Some("koreo".into()),
            reporting_instance: Some(self.instance.clone().unwrap_or_else(|| "koreo".into())),
            ..Event::default()
        };
        let created = api.create(&PostParams::default(), &event).await?;
        if let Some(name) = created.metadata.name {
            self.seen.lock().await.insert(
                key,
                Seen {
                    namespace,
                    name,
                    count: 1,
                    last: now,
                },
            );
        }
        Ok(())
    }
}

fn event_name(parent: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let prefix: String = parent.chars().take(253 - 17).collect();
    format!("{prefix}.{:016x}", hasher.finish())
}

fn reference(id: &ResourceId) -> ObjectReference {
    ObjectReference {
        api_version: Some(id.api_version.clone()),
        kind: Some(id.kind.clone()),
        name: Some(id.name.clone()),
        namespace: id.namespace.clone(),
        ..ObjectReference::default()
    }
}
