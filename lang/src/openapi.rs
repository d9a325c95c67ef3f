//! The schemas of Kubernetes kinds (OpenAPI v3, as the API server has them), for typing what
//! definitions read and write: a Workflow's parent, a ResourceFunction's resource.
//!
//! Built-in kinds come bundled: `lang/schemas/kubernetes.json`, written by the
//! `koreo-kube-schemas` crate from `k8s-openapi` at the Kubernetes version it pins. CRDs come
//! from the workspace (any loaded CustomResourceDefinition, and `koreo check --schemas DIR`);
//! a bundle in such a folder (`koreo schemas pull` writes one from a cluster) replaces the
//! built-in one. Where no schema is known nothing is typed, so nothing is reported.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::value::RawValue;
use serde_json::{Map, Value as Json};

use crate::types::Type;

/// The file name of a bundle in a schema folder.
pub const BUNDLE_FILE: &str = "kubernetes.json";

/// Schemas of built-in kinds: `apiVersion/kind` to a definition, definitions that refer to each
/// other by name (`{"$ref": "io.k8s.api.core.v1.PodSpec"}`). The bundled one is read the first
/// time a built-in kind is asked for (a workspace whose kinds are all CRDs never reads it), and
/// each definition is parsed the first time it is read: a check reads a few dozen of hundreds.
#[derive(Debug)]
pub struct Bundle {
    /// The text still to read (the bundled one), or nothing.
    source: &'static str,
    index: OnceLock<Index>,
}

#[derive(Debug, Default)]
struct Index {
    kubernetes: String,
    kinds: HashMap<String, String>,
    definitions: HashMap<String, Lazy>,
}

#[derive(Debug)]
struct Lazy {
    text: Box<RawValue>,
    parsed: OnceLock<Json>,
}

/// The definition every object's `metadata` has.
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

impl Default for Bundle {
    /// No built-in kinds at all.
    fn default() -> Bundle {
        Bundle::read(Index::default())
    }
}

impl Index {
    fn parse(text: &str) -> Result<Index, String> {
        let mut parts: HashMap<String, Box<RawValue>> =
            serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut part = |key: &str| parts.remove(key).ok_or(format!("no `{key}`"));
        let kubernetes: String = serde_json::from_str(part("kubernetes")?.get())
            .map_err(|_| "no `kubernetes` version")?;
        let kinds: HashMap<String, String> =
            serde_json::from_str(part("kinds")?.get()).map_err(|e| format!("`kinds`: {e}"))?;
        let definitions: HashMap<String, Box<RawValue>> =
            serde_json::from_str(part("definitions")?.get())
                .map_err(|e| format!("`definitions`: {e}"))?;
        Ok(Index {
            kubernetes,
            kinds,
            definitions: definitions
                .into_iter()
                .map(|(name, text)| {
                    let parsed = OnceLock::new();
                    (name, Lazy { text, parsed })
                })
                .collect(),
        })
    }
}

impl Bundle {
    /// A bundle's text (a schema folder's `kubernetes.json`), checked now.
    pub fn parse(text: &str) -> Result<Bundle, String> {
        Index::parse(text).map(Bundle::read)
    }

    fn read(index: Index) -> Bundle {
        Bundle {
            source: "",
            index: OnceLock::from(index),
        }
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| {
            Index::parse(self.source)
                .expect("the bundled schemas are checked by koreo-kube-schemas' tests")
        })
    }

    /// The Kubernetes version the schemas are of.
    pub fn kubernetes(&self) -> &str {
        &self.index().kubernetes
    }

    /// A definition by name, parsed on first use (one that does not parse is not typed).
    fn definition_json(&self, name: &str) -> Option<&Json> {
        let lazy = self.index().definitions.get(name)?;
        Some(
            lazy.parsed
                .get_or_init(|| serde_json::from_str(lazy.text.get()).unwrap_or(Json::Null)),
        )
    }

    /// The bundle koreo is built with.
    pub fn builtin() -> &'static Bundle {
        static BUILTIN: Bundle = Bundle {
            source: include_str!("../schemas/kubernetes.json"),
            index: OnceLock::new(),
        };
        &BUILTIN
    }

    /// The schema of a kind, as `apps/v1` and `Deployment`.
    pub fn kind(&self, api_version: &str, kind: &str) -> Option<Schema<'_>> {
        let name = self.index().kinds.get(&format!("{api_version}/{kind}"))?;
        self.definition(name)
    }

    fn definition(&self, name: &str) -> Option<Schema<'_>> {
        Some(Schema {
            node: self.definition_json(name)?,
            bundle: Some(self),
        })
    }

    /// The schema of `metadata`, that every object has whatever its kind.
    pub fn object_meta(&self) -> Option<Schema<'_>> {
        self.definition(OBJECT_META)
    }
}

/// A node of a schema, with the bundle its references are resolved in.
#[derive(Clone, Copy, Debug)]
pub struct Schema<'a> {
    node: &'a Json,
    bundle: Option<&'a Bundle>,
}

/// What a schema says of one field of an object.
#[derive(Debug)]
pub enum Field<'a> {
    Declared(Schema<'a>),
    /// The object has only these fields.
    Undeclared(Vec<&'a str>),
    /// Anything may be there (a map, preserved unknown fields, a union, no schema).
    Open,
}

/// How deep `$ref`s are followed: a bundle that refers in a circle stays finite.
const MAX_REFS: usize = 8;

impl<'a> Schema<'a> {
    /// A schema written out in full, as a CRD's `openAPIV3Schema`.
    pub fn inline(node: &'a Json) -> Schema<'a> {
        Schema { node, bundle: None }
    }

    /// The node itself, `$ref`s followed (a description beside a `$ref` is the field's).
    fn resolved(self) -> Schema<'a> {
        let mut node = self.node;
        for _ in 0..MAX_REFS {
            let Some(name) = node.get("$ref").and_then(Json::as_str) else {
                break;
            };
            match self.bundle.and_then(|b| b.definition_json(name)) {
                Some(next) => node = next,
                None => return Schema::inline(&Json::Null),
            }
        }
        Schema { node, ..self }
    }

    /// Whether anything may be there: preserved unknown fields, a union, or an object that
    /// declares neither fields nor values (Kubernetes' `JSON` and `RawExtension` hold any
    /// value).
    fn is_open(self) -> bool {
        let node = self.node;
        node["x-kubernetes-preserve-unknown-fields"] == true
            || ["anyOf", "oneOf", "allOf", "not"]
                .iter()
                .any(|k| node.get(k).is_some())
            || (node["type"] == "object"
                && node.get("properties").is_none()
                && node.get("additionalProperties").is_none())
    }

    /// A field of an object of this schema.
    pub fn field(self, name: &str) -> Field<'a> {
        let schema = self.resolved();
        if schema.is_open() || schema.node["type"] != "object" {
            return Field::Open;
        }
        // An embedded object: the API server keeps its type and metadata whatever is declared.
        let embedded = schema.node["x-kubernetes-embedded-resource"] == true;
        if embedded && matches!(name, "apiVersion" | "kind" | "metadata") {
            return Field::Open;
        }
        let within = |node: &'a Json| Schema { node, ..schema };
        match schema.node["properties"].as_object() {
            Some(properties) => match properties.get(name) {
                Some(inner) => Field::Declared(within(inner)),
                None if schema.node.get("additionalProperties").is_some() => Field::Open,
                None => Field::Undeclared(properties.keys().map(String::as_str).collect()),
            },
            None => match schema.node.get("additionalProperties") {
                Some(values) if values.is_object() => Field::Declared(within(values)),
                _ => Field::Open,
            },
        }
    }

    /// The schema of a list's items.
    pub fn items(self) -> Option<Schema<'a>> {
        let schema = self.resolved();
        let items = schema.node.get("items").filter(|i| i.is_object())?;
        Some(Schema {
            node: items,
            ..schema
        })
    }

    /// The declared fields of an object, for completion.
    pub fn properties(self) -> Vec<(&'a str, Schema<'a>)> {
        let schema = self.resolved();
        schema.node["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), Schema { node: v, ..schema }))
            .collect()
    }

    /// Whether `name` must be there (in the object's `required`).
    pub fn requires(self, name: &str) -> bool {
        let schema = self.resolved();
        schema.node["required"]
            .as_array()
            .is_some_and(|r| r.iter().any(|n| n == name))
    }

    /// Whether `name` is a declared field that may be left out: not required, and not given
    /// a default by the API server. (A map's keys are not declared fields.) Only a CRD's
    /// schema says: built-in kinds get defaults from the server's code, not their schema.
    pub fn may_lack(self, name: &str) -> bool {
        if self.bundle.is_some() {
            return false;
        }
        let schema = self.resolved();
        match schema.node["properties"].get(name) {
            Some(field) => !self.requires(name) && field.get("default").is_none(),
            None => false,
        }
    }

    /// What the field is, in a sentence: its own description, or its type's.
    pub fn description(self) -> Option<&'a str> {
        self.node["description"]
            .as_str()
            .or_else(|| self.resolved().node["description"].as_str())
    }

    /// The JSON type, as the schema names it (`integer`, `string`, ...); `int-or-string`
    /// for both; `None` when any value fits.
    pub fn type_name(self) -> Option<&'a str> {
        let schema = self.resolved();
        if schema.node["x-kubernetes-int-or-string"] == true
            || schema.node["format"] == "int-or-string"
        {
            return Some("int-or-string");
        }
        if schema.is_open() {
            return None;
        }
        schema.node["type"].as_str()
    }

    /// Whether a value of CEL type `ty` can be written here. Only clear mismatches are false:
    /// anything unknown fits, as does `null` (an unset optional field).
    pub fn accepts(self, ty: Type) -> bool {
        let Some(expected) = self.type_name() else {
            return true;
        };
        match ty {
            Type::Dyn | Type::Null => true,
            // Sent as strings, so they fit a string or quantity.
            Type::Bytes | Type::Duration | Type::Timestamp => {
                matches!(expected, "string" | "int-or-string")
            }
            Type::String => matches!(expected, "string" | "int-or-string"),
            // A double into an integer fails only when it has a fraction: not known here.
            Type::Int | Type::Uint | Type::Double => {
                matches!(expected, "integer" | "number" | "int-or-string")
            }
            Type::Bool => expected == "boolean",
            Type::List => expected == "array",
            Type::Map => expected == "object",
        }
    }
}

/// A schema as a bundle keeps it: what types a value and the first paragraph of each
/// description; `$ref`s by definition name (OpenAPI's `allOf: [{$ref}]` wrapping undone).
pub fn compact(schema: Json) -> Json {
    let Json::Object(map) = schema else {
        return schema;
    };
    let mut out = Map::new();
    for (key, value) in map {
        let kept = match key.as_str() {
            "$ref" => value
                .as_str()
                .and_then(|r| r.rsplit('/').next())
                .map(Json::from),
            "allOf" => match value.as_array().map(Vec::as_slice) {
                Some([only])
                    if only.get("$ref").is_some()
                        && only.as_object().is_some_and(|o| o.len() == 1) =>
                {
                    out.insert("$ref".into(), compact(only.clone())["$ref"].take());
                    None
                }
                // Only that there is a union is read: anything may be there.
                _ => Some(Json::Bool(true)),
            },
            "properties" => Some(Json::Object(
                value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, s)| (name.clone(), compact(s.clone())))
                    .collect(),
            )),
            "items" | "additionalProperties" => Some(compact(value)),
            "description" => value
                .as_str()
                .map(|text| Json::from(text.split("\n\n").next().unwrap_or_default())),
            "anyOf" | "oneOf" | "not" => Some(Json::Bool(true)),
            "format" => (value == "int-or-string").then_some(value),
            "type"
            | "required"
            | "x-kubernetes-int-or-string"
            | "x-kubernetes-embedded-resource"
            | "x-kubernetes-preserve-unknown-fields" => Some(value),
            _ => None,
        };
        if let Some(kept) = kept {
            out.insert(key, kept);
        }
    }
    Json::Object(out)
}

/// A bundle's text: `kinds` maps `apiVersion/kind` to a definition's name; one definition a
/// line, so that a version bump diffs well.
pub fn bundle_text(
    kubernetes: &str,
    kinds: &Map<String, Json>,
    definitions: &Map<String, Json>,
) -> String {
    let entries: Vec<String> = definitions
        .iter()
        .map(|(name, schema)| format!("{}:{}", Json::from(name.as_str()), schema))
        .collect();
    format!(
        "{{\"kubernetes\":{},\n\"kinds\":{},\n\"definitions\":{{\n{}\n}}}}\n",
        Json::from(kubernetes),
        Json::Object(kinds.clone()),
        entries.join(",\n")
    )
}

/// How a schema type is said to a person.
pub fn type_phrase(type_name: &str) -> &str {
    match type_name {
        "integer" => "an integer",
        "number" => "a number",
        "string" => "a string",
        "boolean" => "a boolean",
        "array" => "a list",
        "object" => "an object",
        "int-or-string" => "an integer or a string",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Schema<'static> {
        Bundle::builtin().kind("apps/v1", "Deployment").unwrap()
    }

    fn declared<'a>(schema: Schema<'a>, name: &str) -> Schema<'a> {
        match schema.field(name) {
            Field::Declared(s) => s,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn fields_resolve_through_references() {
        let spec = declared(deployment(), "spec");
        assert_eq!(declared(spec, "replicas").type_name(), Some("integer"));
        let containers = declared(declared(declared(spec, "template"), "spec"), "containers");
        let container = containers.items().unwrap();
        assert_eq!(declared(container, "image").type_name(), Some("string"));
        match container.field("imagee") {
            Field::Undeclared(names) => assert!(names.contains(&"image")),
            other => panic!("{other:?}"),
        }
        assert!(
            declared(spec, "replicas")
                .description()
                .unwrap()
                .starts_with("Number of desired pods")
        );
    }

    #[test]
    fn maps_quantities_and_int_or_strings_are_typed_as_kubernetes_accepts_them() {
        let meta = Bundle::builtin().object_meta().unwrap();
        let labels = declared(meta, "labels");
        assert_eq!(declared(labels, "any-key").type_name(), Some("string"));
        let resources = Bundle::builtin()
            .kind("v1", "Pod")
            .map(|p| declared(declared(p, "spec"), "overhead"))
            .unwrap();
        let cpu = declared(resources, "cpu");
        assert!(cpu.accepts(Type::String) && cpu.accepts(Type::Int) && cpu.accepts(Type::Double));
        assert!(!cpu.accepts(Type::Map));
        let port = Bundle::builtin().kind("v1", "Service").unwrap();
        let target = declared(
            declared(declared(port, "spec"), "ports").items().unwrap(),
            "targetPort",
        );
        assert!(target.accepts(Type::Int) && target.accepts(Type::String));
        assert!(!target.accepts(Type::Bool));
        assert!(!declared(declared(deployment(), "spec"), "replicas").accepts(Type::String));
    }

    #[test]
    fn a_crd_schema_is_open_where_it_preserves_unknown_fields() {
        let crd = serde_json::json!({
            "type": "object",
            "properties": {
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "tags": {"type": "object", "additionalProperties": {"type": "string"}},
            }
        });
        let schema = Schema::inline(&crd);
        assert!(matches!(declared(schema, "free").field("x"), Field::Open));
        assert_eq!(
            declared(declared(schema, "tags"), "x").type_name(),
            Some("string")
        );
        assert!(matches!(schema.field("nope"), Field::Undeclared(_)));
    }
}
