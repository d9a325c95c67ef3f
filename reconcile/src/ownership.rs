//! Who an object belongs to: what marks an object as made by koreo for a parent (its uid
//! annotation, the owner reference), what a person does to hand one over (`koreo.dev/adopt`),
//! and what abandoning one and taking it back write. The engine decides with these before any
//! write; the pass when it releases objects.

use koreo_lang::eval::ResourceId;
use koreo_lang::model::ResourceFunction;
use serde_json::{Value as Json, json};

/// Annotation on everything koreo creates for a parent: the parent's uid. Koreo changes and
/// deletes only objects that carry it (or the parent's owner reference).
pub const PARENT_UID: &str = "koreo.dev/parent-uid";

/// Whether `object` was created by koreo for the parent with this uid.
pub fn made_for(object: &Json, parent_uid: &str) -> bool {
    object["metadata"]["annotations"][PARENT_UID].as_str() == Some(parent_uid)
        || has_owner_reference(object, parent_uid)
}

/// The owner of what a reconcile creates: the parent.
#[derive(Clone, Debug, PartialEq)]
pub struct Owner {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub namespace: Option<String>,
}

impl Owner {
    pub fn of(parent: &Json) -> Option<Owner> {
        let meta = &parent["metadata"];
        Some(Owner {
            api_version: parent["apiVersion"].as_str()?.to_string(),
            kind: parent["kind"].as_str()?.to_string(),
            name: meta["name"].as_str()?.to_string(),
            uid: meta["uid"].as_str()?.to_string(),
            namespace: meta["namespace"].as_str().map(str::to_string),
        })
    }

    /// Marks `body` as made for this parent and, where the parent `owns` it, adds the owner
    /// reference.
    pub fn mark(&self, mut body: Json, owns: bool) -> Json {
        body["metadata"]["annotations"][PARENT_UID] = json!(self.uid);
        if owns && !has_owner_reference(&body, &self.uid) {
            let mut refs = body["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            refs.push(self.reference());
            body["metadata"]["ownerReferences"] = Json::Array(refs);
        }
        body
    }

    fn reference(&self) -> Json {
        json!({"apiVersion": self.api_version, "kind": self.kind, "name": self.name, "uid": self.uid,
            "blockOwnerDeletion": true, "controller": false})
    }
}

/// Set on objects a parent left behind (delete policy `abandon`).
pub const ABANDONED_LABEL: &str = "koreo.dev/abandoned";
/// Annotation a person puts on an object to let koreo manage it: one an earlier parent of the
/// same name abandoned, or one someone else made at the name a function creates.
pub const ADOPT: &str = "koreo.dev/adopt";

pub fn to_adopt(object: &Json) -> bool {
    object["metadata"]["annotations"][ADOPT] == "true"
}

/// A function that cannot create (`create.enabled: false`) decorates an object someone else
/// made: it applies its own fields, never forced, never owns nor deletes the object, and on
/// release removes only its fields.
pub fn decorates(f: &ResourceFunction) -> bool {
    !f.create.enabled
}

/// Why koreo leaves an object at a name it wants alone, and what a person can do.
pub fn not_ours(id: &ResourceId, owner: &Owner, live: &Json) -> String {
    let adopt = format!(
        "to let it manage the object, annotate it: kubectl annotate {} {} {ADOPT}=true{}",
        id.kind.to_lowercase(),
        id.name,
        id.namespace
            .as_ref()
            .map(|ns| format!(" -n {ns}"))
            .unwrap_or_default()
    );
    if is_abandoned(live) {
        format!(
            "{id} was made by koreo for an earlier parent and abandoned when it went; koreo does not give it to {} {} on its own: {adopt}",
            owner.kind, owner.name
        )
    } else {
        format!(
            "{id} exists and koreo did not create it for {} {}: koreo leaves it as it is; delete or rename it, or {adopt}",
            owner.kind, owner.name
        )
    }
}

/// Whether `object` carries `uid` among its owner references.
pub fn has_owner_reference(object: &Json, uid: &str) -> bool {
    object["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid)))
}

/// Whether a parent left `object` behind (delete policy `abandon`).
pub fn is_abandoned(object: &Json) -> bool {
    object["metadata"]["labels"][ABANDONED_LABEL].is_string()
}

/// The merge patch that abandons `object`: the parent's owner reference goes (the key too when
/// no owner is left, not an empty list) and the abandoned label comes.
pub fn abandon_patch(object: &Json, parent_uid: &str) -> Json {
    let rest: Vec<Json> = object["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .filter(|r| r["uid"].as_str() != Some(parent_uid))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let owners = if rest.is_empty() {
        Json::Null
    } else {
        json!(rest)
    };
    json!({"metadata": {"ownerReferences": owners, "labels": {ABANDONED_LABEL: "true"}}})
}

/// The merge patch that takes `live` back (abandoned earlier, or marked for adoption): the
/// label and the annotation go; `Owner::mark` adds the owner reference.
pub fn take_back_patch(live: &Json) -> Json {
    json!({"metadata": {"labels": {ABANDONED_LABEL: null}, "annotations": {ADOPT: null},
        "ownerReferences": live["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default()}})
}

/// Whether koreo takes `live` back for this parent before it applies: it abandoned the object
/// earlier, or a person marked it for adoption.
pub fn to_take_back(live: &Json, parent_uid: &str) -> bool {
    (is_abandoned(live) && made_for(live, parent_uid)) || to_adopt(live)
}
