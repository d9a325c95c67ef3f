//! `kubectl get` output: the API server answers a request that accepts `as=Table` with a Table
//! (`meta.k8s.io/v1`) whose columns a CRD declares (`additionalPrinterColumns`), or Name and Age.

use serde_json::{Value as Json, json};

use crate::types::PrinterColumn;

/// Whether a request's `Accept` header asks for a Table.
pub fn wanted(accept: &str) -> bool {
    accept.contains("as=Table")
}

/// `answer` (one object or a list) as a Table with `columns` (Name and Age when none).
pub fn of(answer: &Json, columns: &[PrinterColumn], now: chrono::DateTime<chrono::Utc>) -> Json {
    let objects: Vec<&Json> = match answer["items"].as_array() {
        Some(items) => items.iter().collect(),
        None => vec![answer],
    };
    let age = PrinterColumn {
        name: "Age".into(),
        ty: "date".into(),
        json_path: ".metadata.creationTimestamp".into(),
        priority: 0,
    };
    let columns: Vec<&PrinterColumn> = if columns.is_empty() {
        vec![&age]
    } else {
        columns.iter().collect()
    };
    let mut definitions = vec![json!({"name": "Name", "type": "string", "format": "name",
        "description": "Name of the object", "priority": 0})];
    definitions.extend(columns.iter().map(|c| {
        json!({"name": c.name, "type": c.ty, "format": "", "description": "", "priority": c.priority})
    }));
    let rows: Vec<Json> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            cells.extend(columns.iter().map(|c| cell(o, c, now)));
            json!({"cells": cells, "object": {"kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": answer["metadata"]["resourceVersion"]},
        "columnDefinitions": definitions, "rows": rows})
}

fn cell(object: &Json, column: &PrinterColumn, now: chrono::DateTime<chrono::Utc>) -> Json {
    let Some(value) = json_path(object, &column.json_path) else {
        return Json::Null;
    };
    match (column.ty.as_str(), value.as_str()) {
        ("date", Some(time)) => match chrono::DateTime::parse_from_rfc3339(time) {
            Ok(then) => json!(human_age(now.signed_duration_since(then))),
            Err(_) => value.clone(),
        },
        _ => value.clone(),
    }
}

/// Ages as kubectl prints them: `45s`, `12m`, `5h`, `3d`.
fn human_age(age: chrono::Duration) -> String {
    let seconds = age.num_seconds().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The first value a kubectl JSONPath of printer columns selects: `.a.b`, `[2]`, and
/// `[?(@.key=="value")]` filters.
pub fn json_path<'a>(object: &'a Json, path: &str) -> Option<&'a Json> {
    let mut current = object;
    let mut rest = path.trim().trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            current = current.get(&after[..end])?;
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let inside = &after[..end];
            rest = &after[end + 1..];
            current = match inside
                .strip_prefix("?(@.")
                .and_then(|f| f.strip_suffix(')'))
            {
                Some(filter) => {
                    let (key, value) = filter.split_once("==")?;
                    let value = value.trim().trim_matches(['"', '\'']);
                    current
                        .as_array()?
                        .iter()
                        .find(|item| item[key.trim()].as_str() == Some(value))?
                }
                None => current.get(inside.trim().parse::<usize>().ok()?)?,
            };
        } else {
            return None;
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_column_paths_select_as_kubectl_does() {
        let object = json!({"status": {"conditions": [{"type": "Synced", "status": "False"},
            {"type": "Ready", "status": "True"}]}, "spec": {"ports": [{"port": 80}]}});
        let ready = r#".status.conditions[?(@.type=="Ready")].status"#;
        assert_eq!(json_path(&object, ready), Some(&json!("True")));
        assert_eq!(json_path(&object, ".spec.ports[0].port"), Some(&json!(80)));
        assert_eq!(json_path(&object, ".spec.missing"), None);
    }

    #[test]
    fn a_list_becomes_rows_of_cells() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:10:00Z")
            .unwrap()
            .to_utc();
        let list = json!({"metadata": {"resourceVersion": "7"}, "items": [
            {"metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"image": "x:1"}}]});
        let image = PrinterColumn {
            name: "Image".into(),
            ty: "string".into(),
            json_path: ".spec.image".into(),
            priority: 0,
        };
        let age = PrinterColumn {
            name: "Age".into(),
            ty: "date".into(),
            json_path: ".metadata.creationTimestamp".into(),
            priority: 0,
        };
        let table = of(&list, &[image, age], now);
        assert_eq!(table["rows"][0]["cells"], json!(["a", "x:1", "10m"]));
        assert_eq!(table["columnDefinitions"][1]["name"], "Image");
        assert_eq!(of(&list, &[], now)["rows"][0]["cells"], json!(["a", "10m"]));
    }
}
