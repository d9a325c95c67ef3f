//! The cluster's state: objects, resource versions, the event log that watches read, field
//! ownership, finalizers and owner-reference garbage collection. No I/O: the HTTP layer drives it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::{Value as Json, json};

use crate::error::ApiError;
use crate::fields::{self, Managed, Path};
use crate::selector::Selector;
use crate::types::{self, ResourceType};

/// How many events watches can resume from before a `410 Gone`.
const EVENT_LOG: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: EventType,
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub object: Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Patch {
    Merge,
    Json,
    /// Strategic merge: as a merge patch (exact for custom resources; lists replace).
    Strategic,
    Apply {
        force: bool,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

/// What a request addresses.
#[derive(Clone, Debug)]
pub struct Target<'a> {
    pub kind: usize,
    pub version: &'a str,
    pub namespace: Option<&'a str>,
}

type Key = (String, String, String, String); // group, plural, namespace, name

/// Cloning gives a snapshot (a WorkflowTest `variant` case runs on one).
#[derive(Clone)]
pub struct Store {
    pub types: Vec<ResourceType>,
    objects: BTreeMap<Key, Json>,
    rv: u64,
    uid: u64,
    log: VecDeque<Event>,
    /// Resource versions at or below this are gone from the log.
    pub compacted: u64,
    /// Events made by the last operation, for the HTTP layer to publish.
    pub pending: Vec<Event>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn key(t: &ResourceType, namespace: &str, name: &str) -> Key {
    (
        t.group.clone(),
        t.plural.clone(),
        namespace.to_string(),
        name.to_string(),
    )
}

/// Everything but metadata and status: what `generation` counts changes of.
fn spec_of(object: &Json) -> Json {
    let mut o = object.clone();
    if let Some(map) = o.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    o
}

/// Kubernetes treats a JSON-patch `test` of a missing path against `null` as passing (clients
/// use it to check that `metadata.finalizers` is unset); the `json-patch` crate does not.
fn without_null_tests_of_missing_paths(patch: Json, current: &Json) -> Json {
    let Json::Array(ops) = patch else {
        return patch;
    };
    Json::Array(
        ops.into_iter()
            .filter(|op| {
                let is_null_test = op["op"] == "test" && op.get("value").is_some_and(Json::is_null);
                let missing = op["path"]
                    .as_str()
                    .is_none_or(|p| current.pointer(p).is_none());
                !(is_null_test && missing)
            })
            .collect(),
    )
}

/// Optimistic concurrency: a write that names a resourceVersion must name the current one.
fn check_version(
    t: &ResourceType,
    name: &str,
    current: &Json,
    expected: Option<&str>,
) -> Result<(), ApiError> {
    match expected {
        Some(rv) if current["metadata"]["resourceVersion"].as_str() != Some(rv) => {
            Err(ApiError::conflict(
                &t.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ))
        }
        _ => Ok(()),
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    pub fn new() -> Store {
        let mut store = Store {
            types: types::builtins(),
            objects: BTreeMap::new(),
            rv: 0,
            uid: 0,
            log: VecDeque::new(),
            compacted: 0,
            pending: Vec::new(),
        };
        for ns in ["default", "kube-system"] {
            let t = store.kind_index("", "namespaces").expect("built in");
            let target = Target {
                kind: t,
                version: "v1",
                namespace: None,
            };
            let _ = store.create(&target, json!({"metadata": {"name": ns}}), "testkube");
        }
        store.pending.clear();
        store
    }

    /// Every object stored, in no particular order.
    pub fn objects(&self) -> impl Iterator<Item = &Json> {
        self.objects.values()
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The kind an object's `apiVersion` and `kind` name, with the version to serve it at.
    pub fn kind_of(&self, api_version: &str, kind: &str) -> Option<(usize, String)> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        self.types
            .iter()
            .position(|t| t.kind == kind && t.serves(group, version))
            .map(|i| (i, version.to_string()))
    }

    pub fn kind_index(&self, group: &str, plural: &str) -> Option<usize> {
        self.types
            .iter()
            .position(|t| t.group == group && t.plural == plural)
    }

    fn namespace_of<'a>(&self, t: &ResourceType, target: &Target<'a>) -> Result<&'a str, ApiError> {
        match (t.namespaced, target.namespace) {
            (true, Some(ns)) => Ok(ns),
            (true, None) => Err(ApiError::bad_request(format!(
                "{} is namespaced: the request needs a namespace",
                t.plural
            ))),
            (false, _) => Ok(""),
        }
    }

    fn commit(
        &mut self,
        t: &ResourceType,
        namespace: &str,
        name: &str,
        mut object: Json,
        kind: EventType,
    ) -> Json {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let k = key(t, namespace, name);
        if kind == EventType::Deleted {
            self.objects.remove(&k);
        } else {
            self.objects.insert(k, object.clone());
        }
        let event = Event {
            rv: self.rv,
            kind,
            group: t.group.clone(),
            plural: t.plural.clone(),
            namespace: namespace.to_string(),
            object: object.clone(),
        };
        self.log.push_back(event.clone());
        while self.log.len() > EVENT_LOG {
            if let Some(old) = self.log.pop_front() {
                self.compacted = old.rv;
            }
        }
        self.pending.push(event);
        object
    }

    /// Events after `rv` for a kind (and namespace), or `410 Gone` if they were compacted.
    pub fn events_since(
        &self,
        rv: u64,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<Event>, ApiError> {
        if rv < self.compacted {
            return Err(ApiError::gone(format!(
                "too old resource version: {rv} ({})",
                self.compacted + 1
            )));
        }
        Ok(self
            .log
            .iter()
            .filter(|e| e.rv > rv && e.group == group && e.plural == plural)
            .filter(|e| namespace.is_none_or(|ns| e.namespace == ns))
            .cloned()
            .collect())
    }

    /// Drops the event log up to now: watches from older versions get `410 Gone`.
    pub fn expire_resource_versions(&mut self) {
        self.log.clear();
        self.compacted = self.rv;
    }

    pub fn get(&self, target: &Target, name: &str) -> Result<Json, ApiError> {
        let t = &self.types[target.kind];
        let ns = self.namespace_of(t, target)?;
        self.objects
            .get(&key(t, ns, name))
            .map(|o| self.at_version(t, target.version, o))
            .ok_or_else(|| ApiError::not_found(&t.plural, name))
    }

    /// The object as the requested version presents it.
    fn at_version(&self, t: &ResourceType, version: &str, object: &Json) -> Json {
        let mut o = object.clone();
        o["apiVersion"] = json!(t.api_version(version));
        o
    }

    pub fn list(&self, target: &Target, selector: &Selector) -> Result<(Vec<Json>, u64), ApiError> {
        self.list_matching(target, selector, &Selector::default())
    }

    /// Objects matching a label selector and a field selector.
    pub fn list_matching(
        &self,
        target: &Target,
        selector: &Selector,
        fields: &Selector,
    ) -> Result<(Vec<Json>, u64), ApiError> {
        let t = &self.types[target.kind];
        // Events are one kind served by two groups: core `v1` lists `events.k8s.io` ones too.
        let core_events = t.group.is_empty() && t.plural == "events";
        let items = self
            .objects
            .iter()
            .filter(|((g, p, ns, _), _)| {
                let same = *g == t.group && *p == t.plural;
                let modern = core_events && g == "events.k8s.io" && p == "events";
                (same || modern) && target.namespace.is_none_or(|want| ns == want)
            })
            .map(|((g, _, _, _), o)| match g.as_str() {
                "events.k8s.io" if core_events => core_event(o),
                _ => self.at_version(t, target.version, o),
            })
            .filter(|o| selector.matches(&o["metadata"]["labels"]) && fields.matches_fields(o))
            .collect();
        Ok((items, self.rv))
    }

    /// A namespaced object is made only in a namespace that exists and is not terminating.
    fn check_namespace_exists(&self, t: &ResourceType, ns: &str) -> Result<(), ApiError> {
        if !t.namespaced {
            return Ok(());
        }
        let namespace_key = (String::new(), "namespaces".into(), String::new(), ns.into());
        match self.objects.get(&namespace_key) {
            None => Err(ApiError::not_found("namespaces", ns)),
            Some(n) if n["metadata"]["deletionTimestamp"].is_string() => Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    pub fn create(
        &mut self,
        target: &Target,
        mut body: Json,
        manager: &str,
    ) -> Result<Json, ApiError> {
        let t = self.types[target.kind].clone();
        let ns = self.namespace_of(&t, target)?;
        if !body.is_object() {
            return Err(ApiError::bad_request("the body must be an object"));
        }
        let generate = body["metadata"]["generateName"]
            .as_str()
            .map(str::to_string);
        let name = match body["metadata"]["name"].as_str() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match generate {
                // As the API server does: the prefix (but a trailing `-`) must itself be a name.
                Some(prefix) if !is_dns_subdomain(prefix.trim_end_matches('-')) => {
                    return Err(ApiError::invalid(
                        &t.plural,
                        "",
                        format!(
                            "metadata.generateName: Invalid value: \"{prefix}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                        ),
                    ));
                }
                Some(prefix) => format!("{prefix}{:05x}", self.uid + 1),
                None => {
                    return Err(ApiError::invalid(
                        &t.plural,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            },
        };
        if let Some(body_ns) = body["metadata"]["namespace"].as_str()
            && t.namespaced
            && body_ns != ns
        {
            return Err(ApiError::bad_request(format!(
                "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({ns})"
            )));
        }
        self.check_namespace_exists(&t, ns)?;
        if self.objects.contains_key(&key(&t, ns, &name)) {
            return Err(ApiError::already_exists(&t.plural, &name));
        }
        if t.crd.is_none() && t.plural == "customresourcedefinitions" {
            let declared =
                types::from_crd(&body).map_err(|why| ApiError::invalid(&t.plural, &name, why))?;
            if self
                .types
                .iter()
                .any(|x| x.group == declared.group && x.plural == declared.plural)
            {
                return Err(ApiError::already_exists(&t.plural, &name));
            }
            self.types.push(declared);
        }
        self.uid += 1;
        body["apiVersion"] = json!(t.api_version(target.version));
        body["kind"] = json!(t.kind);
        let meta = &mut body["metadata"];
        meta["name"] = json!(name);
        if t.namespaced {
            meta["namespace"] = json!(ns);
        } else if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        meta["uid"] = json!(format!("00000000-0000-4000-8000-{:012x}", self.uid));
        meta["creationTimestamp"] = json!(now());
        meta["generation"] = json!(1);
        if let Some(m) = meta.as_object_mut() {
            m.remove("resourceVersion");
            m.remove("deletionTimestamp");
            m.remove("managedFields");
        }
        if t.status && t.crd.is_some() {
            // Status of a custom resource with a status subresource is written only there.
            if let Some(m) = body.as_object_mut() {
                m.remove("status");
            }
        }
        fold_string_data(&t, &mut body);
        builtin_defaults(&t, &mut body);
        validate_builtin(&t, &name, &body)?;
        let owned = fields::leaves(&body);
        let managed = vec![Managed {
            manager: manager.to_string(),
            operation: "Update".into(),
            api_version: t.api_version(target.version),
            time: now(),
            fields: owned,
        }];
        fields::write(&mut body, &managed);
        Ok(self.commit(&t, ns, &name, body, EventType::Added))
    }

    /// PUT: replaces the object (or its status), with optimistic concurrency on
    /// `metadata.resourceVersion` when the body sets it.
    pub fn replace(
        &mut self,
        target: &Target,
        name: &str,
        body: Json,
        manager: &str,
        status: bool,
    ) -> Result<Json, ApiError> {
        let t = self.types[target.kind].clone();
        let ns = self.namespace_of(&t, target)?;
        let current = self
            .objects
            .get(&key(&t, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&t.plural, name))?;
        check_version(
            &t,
            name,
            &current,
            body["metadata"]["resourceVersion"].as_str(),
        )?;
        self.update(
            &t,
            ns,
            name,
            current,
            body,
            manager,
            "Update",
            status,
            target.version,
        )
    }

    pub fn patch(
        &mut self,
        target: &Target,
        name: &str,
        kind: Patch,
        patch: Json,
        manager: &str,
        status: bool,
    ) -> Result<Json, ApiError> {
        let t = self.types[target.kind].clone();
        let ns = self.namespace_of(&t, target)?;
        let current = self.objects.get(&key(&t, ns, name)).cloned();
        match kind {
            Patch::Apply { force } => {
                self.apply(target, &t, ns, name, current, patch, manager, force, status)
            }
            _ => {
                let current = current.ok_or_else(|| ApiError::not_found(&t.plural, name))?;
                let mut patched = current.clone();
                match kind {
                    Patch::Json => {
                        let patch = without_null_tests_of_missing_paths(patch, &current);
                        let ops: json_patch::Patch =
                            serde_json::from_value(patch).map_err(|e| {
                                ApiError::bad_request(format!("invalid JSON patch: {e}"))
                            })?;
                        json_patch::patch(&mut patched, &ops).map_err(|e| {
                            ApiError::invalid(
                                &t.plural,
                                name,
                                format!("the JSON patch could not be applied: {e}"),
                            )
                        })?;
                    }
                    // Custom resources have no merge keys: a strategic patch is a merge patch.
                    Patch::Strategic if t.crd.is_none() => {
                        crate::strategic::apply(&mut patched, &patch, &t.kind)
                    }
                    _ => json_patch::merge(&mut patched, &patch),
                }
                // A patch that sets the resourceVersion (a merge patch's field, a JSON patch's
                // op alike) is a compare-and-swap, as on a real API server.
                let expected_rv = patched["metadata"]["resourceVersion"].as_str();
                check_version(&t, name, &current, expected_rv)?;
                self.update(
                    &t,
                    ns,
                    name,
                    current,
                    patched,
                    manager,
                    "Update",
                    status,
                    target.version,
                )
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        target: &Target,
        t: &ResourceType,
        ns: &str,
        name: &str,
        current: Option<Json>,
        body: Json,
        manager: &str,
        force: bool,
        status: bool,
    ) -> Result<Json, ApiError> {
        if manager.is_empty() {
            return Err(ApiError::bad_request(
                "fieldManager is required for apply patch",
            ));
        }
        let Some(current) = current else {
            let created = self.create(target, body.clone(), manager)?;
            // An apply that creates makes its fields the applier's, as an Apply.
            let mut created = created;
            let mut managed = fields::read(&created);
            for m in &mut managed {
                if m.manager == manager {
                    m.operation = "Apply".into();
                }
            }
            fields::write(&mut created, &managed);
            let k = key(t, ns, name);
            if let Some(stored) = self.objects.get_mut(&k) {
                stored["metadata"]["managedFields"] = created["metadata"]["managedFields"].clone();
            }
            return Ok(created);
        };
        let mut body = body;
        if t.status
            && !status
            && let Some(m) = body.as_object_mut()
        {
            m.remove("status");
        }
        let applied: BTreeSet<Path> = fields::leaves(&body)
            .into_iter()
            .filter(|p| !t.status || status == (p.first().map(String::as_str) == Some("status")))
            .collect();
        let mut managed = fields::read(&current);
        // Conflicts: fields another manager set to a different value.
        let mut conflicts = Vec::new();
        for path in &applied {
            let differs = fields::get(&current, path) != fields::get(&body, path);
            for other in managed.iter().filter(|m| m.manager != manager) {
                if differs && other.fields.iter().any(|f| fields::overlaps(f, path)) {
                    conflicts.push(format!(
                        "conflict with \"{}\": .{}",
                        other.manager,
                        path.join(".")
                    ));
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return Err(ApiError::conflict(
                &t.plural,
                name,
                &format!(
                    "Apply failed with {} conflicts: {}",
                    conflicts.len(),
                    conflicts.join(", ")
                ),
            ));
        }
        let previous: BTreeSet<Path> = managed
            .iter()
            .filter(|m| m.manager == manager && m.operation == "Apply")
            .flat_map(|m| m.fields.iter().cloned())
            .collect();
        let mut object = fields::apply(&current, &body, &applied, &previous, |path| {
            managed
                .iter()
                .any(|m| m.manager != manager && m.fields.contains(path))
        });
        // Ownership: the applier owns what it applied; others keep only what it did not change.
        for other in managed.iter_mut().filter(|m| m.manager != manager) {
            other.fields.retain(|f| {
                !applied.iter().any(|p| {
                    fields::overlaps(f, p) && fields::get(&current, p) != fields::get(&body, p)
                })
            });
        }
        managed.retain(|m| !(m.manager == manager && m.operation == "Apply"));
        managed.push(Managed {
            manager: manager.to_string(),
            operation: "Apply".into(),
            api_version: t.api_version(target.version),
            time: now(),
            fields: applied,
        });
        fields::write(&mut object, &managed);
        self.store_update(t, ns, name, &current, object, status, target.version)
    }

    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        current: Json,
        proposed: Json,
        manager: &str,
        operation: &str,
        status: bool,
        version: &str,
    ) -> Result<Json, ApiError> {
        let mut proposed = proposed;
        if !proposed.is_object() {
            return Err(ApiError::bad_request("the body must be an object"));
        }
        let before = fields::leaves(&current);
        let after = fields::leaves(&proposed);
        let changed: BTreeSet<Path> = after
            .iter()
            .filter(|p| fields::get(&current, p) != fields::get(&proposed, p))
            .chain(before.difference(&after))
            .cloned()
            .collect();
        let mut managed = fields::read(&current);
        for m in &mut managed {
            m.fields
                .retain(|f| !changed.iter().any(|c| fields::overlaps(f, c)));
        }
        let set_now: BTreeSet<Path> = changed.intersection(&after).cloned().collect();
        match managed
            .iter_mut()
            .find(|m| m.manager == manager && m.operation == operation)
        {
            Some(m) => {
                m.fields.extend(set_now);
                m.time = now();
            }
            None => managed.push(Managed {
                manager: manager.to_string(),
                operation: operation.to_string(),
                api_version: t.api_version(version),
                time: now(),
                fields: set_now,
            }),
        }
        fields::write(&mut proposed, &managed);
        self.store_update(t, ns, name, &current, proposed, status, version)
    }

    /// Keeps what the endpoint may not change, bumps `generation`, and completes a pending
    /// deletion once the last finalizer is gone.
    #[allow(clippy::too_many_arguments)]
    fn store_update(
        &mut self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        current: &Json,
        proposed: Json,
        status: bool,
        version: &str,
    ) -> Result<Json, ApiError> {
        let mut next = if t.status && status {
            // The status endpoint changes only status.
            let mut o = current.clone();
            o["status"] = proposed["status"].clone();
            o["metadata"]["managedFields"] = proposed["metadata"]["managedFields"].clone();
            o
        } else {
            let mut o = proposed;
            if t.status {
                match current.get("status") {
                    Some(s) => o["status"] = s.clone(),
                    None => {
                        if let Some(m) = o.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            o
        };
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "namespace",
            "name",
        ] {
            match current["metadata"].get(field) {
                Some(v) => next["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = next["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        next["apiVersion"] = json!(t.api_version(version));
        next["kind"] = json!(t.kind);
        fold_string_data(t, &mut next);
        builtin_defaults(t, &mut next);
        validate_builtin(t, name, &next)?;
        let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
        let bumped = if spec_of(current) != spec_of(&next) {
            generation + 1
        } else {
            generation
        };
        next["metadata"]["generation"] = json!(bumped);
        let mut stored = next.clone();
        stored["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        if &stored == current {
            // Kubernetes does not write (nor bump the version) when nothing changed.
            return Ok(self.at_version(t, version, current));
        }
        if next["metadata"]["finalizers"]
            .as_array()
            .is_some_and(Vec::is_empty)
            && let Some(m) = next["metadata"].as_object_mut()
        {
            m.remove("finalizers");
        }
        let deleting = next["metadata"]["deletionTimestamp"].is_string();
        let finalizers_left = next["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if deleting && !finalizers_left {
            let gone = self.commit(t, ns, name, next, EventType::Deleted);
            self.collect_garbage(&gone, Propagation::Background);
            self.finish_namespace(ns);
            return Ok(gone);
        }
        Ok(self.commit(t, ns, name, next, EventType::Modified))
    }

    /// DELETE. With finalizers the object only gets a deletion timestamp. Returns the object as it
    /// was deleted (or is now, while finalizers remain) and whether it is gone.
    pub fn delete(
        &mut self,
        target: &Target,
        name: &str,
        propagation: Propagation,
        uid: Option<&str>,
    ) -> Result<(Json, bool), ApiError> {
        let t = self.types[target.kind].clone();
        let ns = self.namespace_of(&t, target)?;
        let current = self
            .objects
            .get(&key(&t, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&t.plural, name))?;
        if let Some(uid) = uid
            && current["metadata"]["uid"].as_str() != Some(uid)
        {
            return Err(ApiError::conflict(
                &t.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    current["metadata"]["uid"].as_str().unwrap_or("")
                ),
            ));
        }
        if t.plural == "namespaces" && t.group.is_empty() {
            return Ok(self.terminate_namespace(&t, target.version, current));
        }
        let finalizers = current["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if finalizers || propagation == Propagation::Foreground {
            if propagation == Propagation::Foreground {
                self.collect_garbage(&current, propagation);
            }
            if finalizers {
                if current["metadata"]["deletionTimestamp"].is_string() {
                    return Ok((self.at_version(&t, target.version, &current), false));
                }
                let mut marked = current.clone();
                marked["metadata"]["deletionTimestamp"] = json!(now());
                marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                return Ok((
                    self.commit(&t, ns, name, marked, EventType::Modified),
                    false,
                ));
            }
        }
        let gone = self.commit(&t, ns, name, current, EventType::Deleted);
        if t.plural == "customresourcedefinitions" && t.crd.is_none() {
            self.drop_crd(name);
        }
        if propagation != Propagation::Foreground {
            self.collect_garbage(&gone, propagation);
        }
        self.finish_namespace(ns);
        Ok((self.at_version(&t, target.version, &gone), true))
    }

    /// Dependents of a deleted owner: orphaned (owner reference removed) or deleted once no
    /// owner is left.
    fn collect_garbage(&mut self, owner: &Json, propagation: Propagation) {
        let Some(uid) = owner["metadata"]["uid"].as_str().map(str::to_string) else {
            return;
        };
        let dependents: Vec<(Key, Json)> = self
            .objects
            .iter()
            .filter(|(_, o)| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(&uid)))
            })
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        for ((group, plural, ns, name), object) in dependents {
            let Some(kind) = self.kind_index(&group, &plural) else {
                continue;
            };
            let t = self.types[kind].clone();
            let version = t.versions[0].clone();
            let remaining: Vec<Json> = object["metadata"]["ownerReferences"]
                .as_array()
                .map(|refs| {
                    refs.iter()
                        .filter(|r| r["uid"].as_str() != Some(&uid))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let target = Target {
                kind,
                version: &version,
                namespace: t.namespaced.then_some(ns.as_str()),
            };
            if propagation == Propagation::Orphan || !remaining.is_empty() {
                let mut o = object.clone();
                o["metadata"]["ownerReferences"] = Json::Array(remaining);
                let _ = self.store_update(&t, &ns, &name, &object, o, false, &version);
            } else {
                let _ = self.delete(&target, &name, propagation, None);
            }
        }
    }

    fn drop_crd(&mut self, name: &str) {
        let Some(i) = self
            .types
            .iter()
            .position(|t| t.crd.as_deref() == Some(name))
        else {
            return;
        };
        let t = self.types.remove(i);
        let keys: Vec<Key> = self
            .objects
            .keys()
            .filter(|(g, p, _, _)| *g == t.group && *p == t.plural)
            .cloned()
            .collect();
        for (_, _, ns, n) in keys {
            if let Some(o) = self.objects.get(&key(&t, &ns, &n)).cloned() {
                self.commit(&t, &ns, &n, o, EventType::Deleted);
            }
        }
    }

    /// A namespace deleted, as a real API server and its namespace controller do it: the
    /// namespace is Terminating, everything in it is deleted (objects with finalizers wait for
    /// them), and the namespace goes when it is empty. Returns the namespace and whether it is
    /// gone.
    fn terminate_namespace(
        &mut self,
        t: &ResourceType,
        version: &str,
        namespace: Json,
    ) -> (Json, bool) {
        let name = namespace["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !namespace["metadata"]["deletionTimestamp"].is_string() {
            let mut marked = namespace;
            marked["metadata"]["deletionTimestamp"] = json!(now());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            marked["status"]["phase"] = json!("Terminating");
            self.commit(t, "", &name, marked, EventType::Modified);
        }
        let keys: Vec<Key> = self
            .objects
            .keys()
            .filter(|(_, _, ns, _)| *ns == name)
            .cloned()
            .collect();
        for (g, p, ns, n) in keys {
            let Some(kind) = self.kind_index(&g, &p) else {
                continue;
            };
            let kt = self.types[kind].clone();
            let Some(mut o) = self.objects.get(&key(&kt, &ns, &n)).cloned() else {
                continue;
            };
            let finalizers = o["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            if !finalizers {
                let gone = self.commit(&kt, &ns, &n, o, EventType::Deleted);
                self.collect_garbage(&gone, Propagation::Background);
            } else if !o["metadata"]["deletionTimestamp"].is_string() {
                o["metadata"]["deletionTimestamp"] = json!(now());
                o["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                self.commit(&kt, &ns, &n, o, EventType::Modified);
            }
        }
        let gone = self.finish_namespace(&name);
        let now = self
            .objects
            .get(&key(t, "", &name))
            .cloned()
            .unwrap_or_else(
                || json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            );
        (self.at_version(t, version, &now), gone)
    }

    /// Removes a Terminating namespace once nothing is left in it. True if it is gone.
    fn finish_namespace(&mut self, namespace: &str) -> bool {
        let Some(kind) = self.kind_of("v1", "Namespace").map(|(i, _)| i) else {
            return false;
        };
        let t = self.types[kind].clone();
        let Some(ns) = self.objects.get(&key(&t, "", namespace)).cloned() else {
            return !namespace.is_empty();
        };
        let terminating = ns["metadata"]["deletionTimestamp"].is_string();
        if !terminating || self.objects.keys().any(|(_, _, n, _)| n == namespace) {
            return false;
        }
        self.commit(&t, "", namespace, ns, EventType::Deleted);
        true
    }
}

/// A Secret's `stringData` is write-only: the API server merges it into `data`, base64-encoded.
fn fold_string_data(t: &ResourceType, object: &mut Json) {
    use base64::Engine;
    if !(t.group.is_empty() && t.plural == "secrets") {
        return;
    }
    let Some(Json::Object(string_data)) =
        object.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if !object["data"].is_object() {
        object["data"] = json!({});
    }
    for (key, value) in string_data {
        let text = value.as_str().unwrap_or_default().to_string();
        object["data"][key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// The defaults a real API server gives the built-in kinds koreo's examples and tests use most
/// (docs/testkube.md lists what is left out).
fn builtin_defaults(t: &ResourceType, object: &mut Json) {
    if t.crd.is_some() {
        return;
    }
    let default = |value: &mut Json, key: &str, to: Json| {
        if let Some(map) = value.as_object_mut() {
            map.entry(key).or_insert(to);
        }
    };
    match (t.group.as_str(), t.plural.as_str()) {
        ("", "services") => {
            let spec = &mut object["spec"];
            default(spec, "type", json!("ClusterIP"));
            default(spec, "sessionAffinity", json!("None"));
            for port in spec["ports"].as_array_mut().into_iter().flatten() {
                let number = port["port"].clone();
                default(port, "protocol", json!("TCP"));
                default(port, "targetPort", number);
            }
        }
        ("", "secrets") => default(object, "type", json!("Opaque")),
        ("apps", "deployments") => default(&mut object["spec"], "replicas", json!(1)),
        _ => {}
    }
}

/// The validation of built-in kinds that koreo's writes can run into.
fn validate_builtin(t: &ResourceType, name: &str, object: &Json) -> Result<(), ApiError> {
    if t.crd.is_some() || !(t.group.is_empty() && t.plural == "services") {
        return Ok(());
    }
    let mut seen = BTreeSet::new();
    for (i, port) in object["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(port_name) = port["name"].as_str()
            && !seen.insert(port_name)
        {
            return Err(ApiError::invalid(
                &t.plural,
                name,
                format!("spec.ports[{i}].name: Duplicate value: \"{port_name}\""),
            ));
        }
    }
    Ok(())
}

/// An `events.k8s.io/v1` Event as core `v1` shows it (what `kubectl get events` reads).
fn core_event(event: &Json) -> Json {
    let count = event["series"]["count"].as_i64().unwrap_or(1);
    let last = event["series"]["lastObservedTime"]
        .as_str()
        .or(event["eventTime"].as_str());
    json!({
        "apiVersion": "v1", "kind": "Event", "metadata": event["metadata"],
        "involvedObject": event["regarding"], "related": event["related"],
        "reason": event["reason"], "message": event["note"], "type": event["type"],
        "action": event["action"], "count": count, "eventTime": event["eventTime"],
        "firstTimestamp": event["eventTime"], "lastTimestamp": last,
        "reportingComponent": event["reportingController"],
        "reportingInstance": event["reportingInstance"],
        "source": {"component": event["reportingController"]},
    })
}

fn is_dns_subdomain(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    name.len() <= 253
        && name.split('.').all(|part| {
            edge(part.chars().next())
                && edge(part.chars().last())
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}
