//! API errors as Kubernetes `Status` objects.

use serde_json::{Value as Json, json};

#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details.name` and `details.kind`, when the error is about one object.
    pub name: Option<String>,
    pub kind: Option<String>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            name: None,
            kind: None,
        }
    }

    pub fn about(mut self, kind: &str, name: &str) -> ApiError {
        self.kind = Some(kind.to_string());
        self.name = Some(name.to_string());
        self
    }

    pub fn not_found(plural: &str, name: &str) -> ApiError {
        ApiError::new(404, "NotFound", format!("{plural} \"{name}\" not found")).about(plural, name)
    }

    pub fn already_exists(plural: &str, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{plural} \"{name}\" already exists"),
        )
        .about(plural, name)
    }

    pub fn conflict(plural: &str, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {plural} \"{name}\": {why}"),
        )
        .about(plural, name)
    }

    pub fn invalid(plural: &str, name: &str, why: impl Into<String>) -> ApiError {
        let why = why.into();
        ApiError::new(
            422,
            "Invalid",
            format!("{plural} \"{name}\" is invalid: {why}"),
        )
        .about(plural, name)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn gone(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    /// The `Status` body Kubernetes sends with an error.
    pub fn status(&self) -> Json {
        let mut details = json!({});
        if let Some(name) = &self.name {
            details["name"] = json!(name);
        }
        if let Some(kind) = &self.kind {
            details["kind"] = json!(kind);
        }
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": details,
            "code": self.code,
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}
