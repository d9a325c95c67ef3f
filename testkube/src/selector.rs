//! Label selectors as in `?labelSelector=`: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`,
//! `a`, `!a`, joined by commas.

use serde_json::Value as Json;

use crate::error::ApiError;

#[derive(Clone, Debug, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selector(Vec<Requirement>);

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn set(values: &str) -> Result<Vec<String>, ApiError> {
    let inner = values
        .trim()
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "unable to parse requirement: expected a set in parentheses, got `{values}`"
            ))
        })?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, ApiError> {
        let mut requirements = Vec::new();
        for part in split_top(text)
            .into_iter()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let requirement = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), set(v)?)
            } else if let Some((k, v)) = part.split_once(" in ") {
                Requirement::In(k.trim().into(), set(v)?)
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::NotExists(k.trim().into())
            } else if part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                Requirement::Exists(part.into())
            } else {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement: `{part}`"
                )));
            };
            requirements.push(requirement);
        }
        Ok(Selector(requirements))
    }

    /// A field selector (`?fieldSelector=metadata.name=x`): `=`, `==` and `!=` on dotted paths.
    pub fn parse_fields(text: &str) -> Result<Selector, ApiError> {
        let selector = Selector::parse(text)?;
        for r in &selector.0 {
            if !matches!(r, Requirement::Equals(..) | Requirement::NotEquals(..)) {
                return Err(ApiError::bad_request(format!(
                    "field selectors support =, == and != only: `{text}`"
                )));
            }
        }
        Ok(selector)
    }

    /// Whether an object's fields match a field selector.
    pub fn matches_fields(&self, object: &Json) -> bool {
        let get = |path: &str| {
            path.split('.')
                .try_fold(object, |v, k| v.get(k))
                .and_then(Json::as_str)
        };
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k).unwrap_or("") == v,
            Requirement::NotEquals(k, v) => get(k).unwrap_or("") != v,
            _ => true,
        })
    }

    pub fn matches(&self, labels: &Json) -> bool {
        let get = |k: &str| labels.get(k).and_then(Json::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_match_as_kubernetes_does() {
        let labels = json!({"app": "web", "tier": "front"});
        for (text, want) in [
            ("app=web", true),
            ("app==web,tier=front", true),
            ("app!=web", false),
            ("app in (api, web)", true),
            ("tier notin (front)", false),
            ("app", true),
            ("!missing", true),
            ("!app", false),
            ("", true),
        ] {
            assert_eq!(
                Selector::parse(text).unwrap().matches(&labels),
                want,
                "{text}"
            );
        }
        assert!(Selector::parse("app in web").is_err());
    }

    #[test]
    fn field_selectors_match_paths() {
        let object = json!({"metadata": {"name": "a", "namespace": "default"}});
        assert!(
            Selector::parse_fields("metadata.name=a,metadata.namespace==default")
                .unwrap()
                .matches_fields(&object)
        );
        assert!(
            !Selector::parse_fields("metadata.name!=a")
                .unwrap()
                .matches_fields(&object)
        );
        assert!(Selector::parse_fields("metadata.name in (a)").is_err());
    }
}
