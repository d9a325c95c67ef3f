//! What a workflow manages, step by step: the tree the engine builds, the pass keeps and prunes
//! by, and the controller indexes, written on the parent as Koreo's `koreo.dev/managed-resources`
//! annotation (`{"workflow": name, "resources": {label: object | [object | null] | tree | null}}`).

use koreo_lang::eval::ResourceId;
use serde_json::{Map, Value as Json, json};

/// The annotation on a parent that holds its tree.
pub const MANAGED_RESOURCES: &str = "koreo.dev/managed-resources";

/// One workflow's tree: what each step manages, in step order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ManagedTree {
    pub workflow: String,
    pub steps: Vec<(String, Managed)>,
}

/// What one step (or one `forEach` item) manages.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Managed {
    /// Nothing: a ValueFunction, a skipped step, or one that failed before reading an object.
    #[default]
    Nothing,
    Object(ManagedObject),
    /// A `forEach` step: one entry per item, in item order.
    Each(Vec<Managed>),
    /// A sub-workflow step.
    Workflow(ManagedTree),
}

/// An object a ResourceFunction reads or writes for the parent.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedObject {
    pub id: ResourceId,
    pub readonly: bool,
    /// The ResourceFunction that manages it (its delete policy applies on release).
    pub function: String,
}

impl ManagedObject {
    /// The same object, whichever step or function manages it.
    fn same_object(&self, other: &ManagedObject) -> bool {
        let (a, b) = (&self.id, &other.id);
        (&a.api_version, &a.kind, &a.namespace, &a.name)
            == (&b.api_version, &b.kind, &b.namespace, &b.name)
    }

    fn to_json(&self) -> Json {
        // Koreo's shape, which tools read: a cluster-scoped object has no `namespace` key.
        let id = &self.id;
        let mut entry = json!({"apiVersion": id.api_version, "kind": id.kind, "plural": id.plural,
            "name": id.name, "readonly": self.readonly, "resourceFunction": self.function});
        if let Some(namespace) = &id.namespace {
            entry["namespace"] = json!(namespace);
        }
        entry
    }

    fn from_json(entry: &Map<String, Json>) -> Option<ManagedObject> {
        let text = |key: &str| entry.get(key).and_then(Json::as_str).map(str::to_string);
        Some(ManagedObject {
            id: ResourceId {
                api_version: text("apiVersion")?,
                kind: text("kind")?,
                plural: text("plural"),
                name: text("name")?,
                namespace: text("namespace"),
            },
            readonly: entry.get("readonly").and_then(Json::as_bool) == Some(true),
            function: text("resourceFunction").unwrap_or_default(),
        })
    }
}

impl ManagedTree {
    /// The tree an annotation holds. What is not a tree (absent, not JSON, written by hand)
    /// reads as an empty one, and entries it cannot read as nothing.
    pub fn read(annotation: Option<&str>) -> ManagedTree {
        annotation
            .and_then(|text| serde_json::from_str::<Json>(text).ok())
            .and_then(|tree| ManagedTree::from_json(&tree))
            .unwrap_or_default()
    }

    /// The tree of a parent, from its annotation.
    pub fn of_parent(parent: &Json) -> ManagedTree {
        ManagedTree::read(parent["metadata"]["annotations"][MANAGED_RESOURCES].as_str())
    }

    fn from_json(tree: &Json) -> Option<ManagedTree> {
        let steps = tree.get("resources")?.as_object()?;
        Some(ManagedTree {
            workflow: tree["workflow"].as_str().unwrap_or_default().to_string(),
            steps: steps
                .iter()
                .map(|(label, managed)| (label.clone(), Managed::from_json(managed)))
                .collect(),
        })
    }

    pub fn to_json(&self) -> Json {
        let steps: Map<String, Json> = self
            .steps
            .iter()
            .map(|(label, managed)| (label.clone(), managed.to_json()))
            .collect();
        json!({"workflow": self.workflow, "resources": steps})
    }

    /// The annotation's text.
    pub fn annotation(&self) -> String {
        self.to_json().to_string()
    }

    /// Every object in the tree, in step order.
    pub fn objects(&self) -> Vec<&ManagedObject> {
        let mut out = Vec::new();
        for (_, managed) in &self.steps {
            managed.collect(&mut out);
        }
        out
    }

    pub fn step(&self, label: &str) -> Option<&Managed> {
        self.steps.iter().find(|(l, _)| l == label).map(|(_, m)| m)
    }

    /// Steps that are waiting or failing did not say what they manage this time (`unsettled`
    /// is asked per label): they keep what they managed before, at every depth (a `forEach`
    /// item or sub-workflow step that failed keeps its object), so that it is neither forgotten
    /// nor left to garbage collection.
    pub fn keep_unsettled(&mut self, previous: &ManagedTree, unsettled: impl Fn(&str) -> bool) {
        for (label, now) in &mut self.steps {
            if let Some(old) = previous.step(label).filter(|_| unsettled(label)) {
                now.fill_in(old);
            }
        }
    }

    /// Objects of `previous` this tree no longer has anywhere (a step renamed, or an object
    /// moved to another step or into a sub-workflow, is still produced), last first: the
    /// order they are released in.
    pub fn no_longer_produced<'p>(&self, previous: &'p ManagedTree) -> Vec<&'p ManagedObject> {
        let now = self.objects();
        let mut gone: Vec<&ManagedObject> = previous
            .objects()
            .into_iter()
            .filter(|old| !now.iter().any(|n| n.same_object(old)))
            .collect();
        gone.reverse();
        gone
    }
}

impl Managed {
    fn from_json(value: &Json) -> Managed {
        match value {
            Json::Object(entry) if entry.contains_key("kind") => {
                ManagedObject::from_json(entry).map_or(Managed::Nothing, Managed::Object)
            }
            Json::Object(_) => {
                ManagedTree::from_json(value).map_or(Managed::Nothing, Managed::Workflow)
            }
            Json::Array(items) => Managed::Each(items.iter().map(Managed::from_json).collect()),
            _ => Managed::Nothing,
        }
    }

    fn to_json(&self) -> Json {
        match self {
            Managed::Nothing => Json::Null,
            Managed::Object(object) => object.to_json(),
            Managed::Each(items) => Json::Array(items.iter().map(Managed::to_json).collect()),
            Managed::Workflow(tree) => tree.to_json(),
        }
    }

    fn collect<'t>(&'t self, out: &mut Vec<&'t ManagedObject>) {
        match self {
            Managed::Nothing => {}
            Managed::Object(object) => out.push(object),
            Managed::Each(items) => items.iter().for_each(|m| m.collect(out)),
            Managed::Workflow(tree) => tree.steps.iter().for_each(|(_, m)| m.collect(out)),
        }
    }

    /// What this lacks, taken from `old`: nothing becomes what was there; items and
    /// sub-workflow steps are filled in one by one.
    fn fill_in(&mut self, old: &Managed) {
        match (self, old) {
            (now @ Managed::Nothing, old) => *now = old.clone(),
            (Managed::Each(now), Managed::Each(old)) => {
                for (n, o) in now.iter_mut().zip(old) {
                    n.fill_in(o);
                }
                if old.len() > now.len() {
                    now.extend(old[now.len()..].iter().cloned());
                }
            }
            (Managed::Workflow(now), Managed::Workflow(old)) => {
                for (label, o) in &old.steps {
                    match now.steps.iter_mut().find(|(l, _)| l == label) {
                        Some((_, n)) => n.fill_in(o),
                        None => now.steps.push((label.clone(), o.clone())),
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str) -> Managed {
        Managed::Object(ManagedObject {
            id: ResourceId {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                plural: Some("configmaps".into()),
                name: name.into(),
                namespace: Some("default".into()),
            },
            readonly: false,
            function: "f".into(),
        })
    }

    fn tree(steps: Vec<(&str, Managed)>) -> ManagedTree {
        ManagedTree {
            workflow: "w".into(),
            steps: steps.into_iter().map(|(l, m)| (l.to_string(), m)).collect(),
        }
    }

    #[test]
    fn the_annotation_keeps_koreos_shape_and_reads_back() {
        let cluster_scoped = Managed::Object(ManagedObject {
            id: ResourceId {
                api_version: "v1".into(),
                kind: "Namespace".into(),
                plural: None,
                name: "team".into(),
                namespace: None,
            },
            readonly: true,
            function: "ns".into(),
        });
        let nested = Managed::Workflow(tree(vec![("inner", object("c"))]));
        let t = tree(vec![
            ("a", object("a")),
            ("each", Managed::Each(vec![object("b"), Managed::Nothing])),
            ("ns", cluster_scoped),
            ("sub", nested),
            ("value", Managed::Nothing),
        ]);
        let text = t.annotation();
        assert!(text.starts_with(r#"{"workflow":"w","resources":{"a":{"apiVersion":"v1","kind":"ConfigMap","plural":"configmaps","name":"a","readonly":false,"resourceFunction":"f","namespace":"default"}"#), "{text}");
        assert!(text.contains(r#""ns":{"apiVersion":"v1","kind":"Namespace","plural":null,"name":"team","readonly":true,"resourceFunction":"ns"}"#), "{text}");
        assert_eq!(ManagedTree::read(Some(&text)), t);
        let names: Vec<&str> = t.objects().iter().map(|o| o.id.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "team", "c"]);
    }

    #[test]
    fn what_is_not_a_tree_reads_as_empty() {
        for text in [
            None,
            Some("not json"),
            Some("[]"),
            Some(r#"{"workflow": "w"}"#),
        ] {
            assert_eq!(ManagedTree::read(text).objects().len(), 0, "{text:?}");
        }
        let odd = ManagedTree::read(Some(
            r#"{"workflow":"w","resources":{"x":{"kind":"A"},"y":7}}"#,
        ));
        assert_eq!(
            odd.steps,
            [
                ("x".into(), Managed::Nothing),
                ("y".into(), Managed::Nothing)
            ]
        );
    }

    #[test]
    fn an_object_that_moved_to_another_step_is_still_produced() {
        let previous = tree(vec![
            ("old_name", object("config")),
            ("other", object("gone")),
        ]);
        let now = tree(vec![("new_name", object("config"))]);
        let gone: Vec<&str> = now
            .no_longer_produced(&previous)
            .iter()
            .map(|o| o.id.name.as_str())
            .collect();
        assert_eq!(gone, ["gone"]);
    }

    #[test]
    fn unsettled_steps_keep_what_they_had_at_every_depth() {
        let previous = tree(vec![
            ("waiting", object("kept")),
            (
                "each",
                Managed::Each(vec![object("x0"), object("x1"), object("x2")]),
            ),
            (
                "sub",
                Managed::Workflow(tree(vec![("x", object("x")), ("y", object("y"))])),
            ),
            ("done", object("pruned")),
        ]);
        let mut now = tree(vec![
            ("waiting", Managed::Nothing),
            (
                "each",
                Managed::Each(vec![Managed::Nothing, object("x1-new")]),
            ),
            (
                "sub",
                Managed::Workflow(tree(vec![("x", Managed::Nothing), ("y", object("y2"))])),
            ),
            ("done", Managed::Nothing),
        ]);
        now.keep_unsettled(&previous, |label| label != "done");
        let names: Vec<&str> = now.objects().iter().map(|o| o.id.name.as_str()).collect();
        assert_eq!(names, ["kept", "x0", "x1-new", "x2", "x", "y2"]);
        let gone: Vec<&str> = now
            .no_longer_produced(&previous)
            .iter()
            .map(|o| o.id.name.as_str())
            .collect();
        assert_eq!(gone, ["pruned", "y", "x1"]);
    }
}
