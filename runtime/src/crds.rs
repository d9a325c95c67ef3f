//! CRDs for the Koreo kinds, as `koreo dev` and the tests install them: the validating CRDs
//! generated from `koreo_lang::schema` (the same as `crds/`).

use serde_json::Value as Json;

/// The CRD of a koreo.dev kind. Panics if `kind` is not one (see `koreo_lang::schema::KINDS`).
pub fn koreo_crd(kind: &str) -> Json {
    koreo_lang::schema::crd(kind)
}
