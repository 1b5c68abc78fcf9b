//! API errors: each becomes a Kubernetes `Status` with the reason, code and
//! wording a Kubernetes client expects.

use serde_json::{Value, json};

use crate::admission::Invalid;
use crate::store;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an API operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{} {name:?} not found", qualified(resource, group))]
    NotFound {
        resource: String,
        group: String,
        name: String,
    },
    #[error("{} {name:?} already exists", qualified(resource, group))]
    AlreadyExists {
        resource: String,
        group: String,
        name: String,
    },
    #[error(
        "Operation cannot be fulfilled on {} {name:?}: {why}",
        qualified(resource, group)
    )]
    Conflict {
        resource: String,
        group: String,
        name: String,
        why: String,
    },
    /// A server-side apply that would change fields other managers own:
    /// `(manager, path)` for each.
    #[error("{message}")]
    ApplyConflict {
        message: String,
        fields: Vec<(String, String)>,
    },
    /// An invalid object of a kind in a group, named as the API server
    /// names it: `Deployment.apps "web" is invalid: …`.
    #[error("{} {:?} is invalid: {}", qualified(&.0.kind, .1), .0.name, .0.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Invalid(Invalid, String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    /// Forbidden, with the reason the API server gives: for one object,
    /// for a resource (`name` empty) or for a path (`resource` empty too).
    #[error("{}", forbidden_message(resource, group, name, why))]
    Refused {
        resource: String,
        group: String,
        name: String,
        why: String,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotAcceptable(String),
    /// Kubernetes' RequestEntityTooLarge: a body, patch or object over a
    /// limit.
    #[error("Request entity too large: {0}")]
    TooLarge(String),
    /// A request that cannot be processed as asked (a JSON patch that
    /// does not apply): 422 without field causes, as the API server
    /// answers a failed patch.
    #[error("{0}")]
    Unprocessable(String),
    /// A request the server could not read at all (414 URI too long, 431
    /// headers too large).
    #[error("{1}")]
    Unreadable(u16, String),
    #[error("{0}")]
    Gone(String),
    /// 429: try later (an eviction a disruption budget does not allow
    /// now), with the `(reason, message)` causes.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        causes: Vec<(String, String)>,
    },
    /// A page whose list's snapshot is gone; `inconsistent` goes on from
    /// where it stopped, at the latest revision.
    #[error(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."
    )]
    ContinueExpired { inconsistent: String },
    /// A list asked to be newer than the store is.
    #[error("Too large resource version: {wanted}, current: {current}")]
    TooLargeResourceVersion { wanted: u64, current: u64 },
    #[error("the server could not find the requested resource")]
    NoRoute,
    #[error("{0}")]
    Timeout(String),
    #[error("Internal error occurred: {0}")]
    Internal(String),
    /// The server is stopping or stopped (its store closed).
    #[error("{0}")]
    Unavailable(String),
    /// A failure the API server passes on as it is: 500 with no reason.
    #[error("{0}")]
    Unclassified(String),
}

/// A Forbidden Status's message, as the API server words it.
fn forbidden_message(resource: &str, group: &str, name: &str, why: &str) -> String {
    match (resource, name) {
        ("", _) => format!("forbidden: {why}"),
        (_, "") => format!("{} is forbidden: {why}", qualified(resource, group)),
        _ => format!(
            "{} {name:?} is forbidden: {why}",
            qualified(resource, group)
        ),
    }
}

impl Error {
    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            Error::NotFound { .. } | Error::NoRoute => 404,
            Error::AlreadyExists { .. } | Error::Conflict { .. } | Error::ApplyConflict { .. } => {
                409
            }
            Error::Invalid(..) | Error::Unprocessable(_) => 422,
            Error::BadRequest(_) => 400,
            Error::Unreadable(code, _) => *code,
            Error::Forbidden(_) | Error::Refused { .. } => 403,
            Error::Unauthorized(_) => 401,
            Error::MethodNotAllowed(_) => 405,
            Error::UnsupportedMediaType(_) => 415,
            Error::NotAcceptable(_) => 406,
            Error::TooLarge(_) => 413,
            Error::Gone(_) | Error::ContinueExpired { .. } => 410,
            Error::TooManyRequests { .. } => 429,
            Error::TooLargeResourceVersion { .. } => 504,
            Error::Timeout(_) => 504,
            Error::Internal(_) | Error::Unclassified(_) => 500,
            Error::Unavailable(_) => 503,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Error::NotFound { .. } | Error::NoRoute => "NotFound",
            Error::AlreadyExists { .. } => "AlreadyExists",
            Error::Conflict { .. } | Error::ApplyConflict { .. } => "Conflict",
            Error::Invalid(..) | Error::Unprocessable(_) => "Invalid",
            Error::BadRequest(_) | Error::Unreadable(..) => "BadRequest",
            Error::Forbidden(_) | Error::Refused { .. } => "Forbidden",
            Error::Unauthorized(_) => "Unauthorized",
            Error::MethodNotAllowed(_) => "MethodNotAllowed",
            Error::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Error::NotAcceptable(_) => "NotAcceptable",
            Error::TooLarge(_) => "RequestEntityTooLarge",
            Error::Gone(_) | Error::ContinueExpired { .. } => "Expired",
            Error::TooManyRequests { .. } => "TooManyRequests",
            Error::TooLargeResourceVersion { .. } => "Timeout",
            Error::Timeout(_) => "Timeout",
            Error::Internal(_) => "InternalError",
            Error::Unavailable(_) => "ServiceUnavailable",
            Error::Unclassified(_) => "",
        }
    }

    /// The `Status` object clients read.
    pub fn status(&self) -> Value {
        let details = match self {
            Error::NotFound {
                resource,
                group,
                name,
            }
            | Error::AlreadyExists {
                resource,
                group,
                name,
            }
            | Error::Conflict {
                resource,
                group,
                name,
                ..
            }
            | Error::Refused {
                resource,
                group,
                name,
                ..
            } => json!({"name": name, "group": group, "kind": resource}),
            Error::Invalid(invalid, group) => json!({
                "name": invalid.name,
                "group": group,
                "kind": invalid.kind,
                "causes": invalid.errors.iter().map(|e| json!({
                    "reason": cause_reason(&e.message),
                    "message": e.message,
                    "field": e.field,
                })).collect::<Vec<_>>(),
            }),
            Error::Internal(message) => json!({"causes": [{"message": message}]}),
            Error::ApplyConflict { fields, .. } => json!({
                "causes": fields.iter().map(|(manager, path)| json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {manager}"),
                    "field": path,
                })).collect::<Vec<_>>(),
            }),
            Error::TooManyRequests { causes, .. } => json!({
                "causes": causes.iter().map(|(reason, message)| json!({"reason": reason, "message": message})).collect::<Vec<_>>(),
            }),
            Error::TooLargeResourceVersion { .. } => json!({
                "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                "retryAfterSeconds": 1,
            }),
            // Every Status the API server sends carries details, if empty.
            _ => json!({}),
        };
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
            "details": details,
        });
        if let Error::ContinueExpired { inconsistent } = self {
            status["metadata"] = json!({"continue": inconsistent});
        }
        if self.reason().is_empty() {
            // The API server's unknown reason is empty, and left out.
            status.as_object_mut().map(|s| s.remove("reason"));
        }
        status
    }

    /// Maps a store failure on `name` of `resource`.
    pub(crate) fn from_store(
        error: store::Error,
        resource: &str,
        group: &str,
        name: &str,
    ) -> Error {
        let (resource, group, name) = (resource.to_string(), group.to_string(), name.to_string());
        match error {
            store::Error::AlreadyExists { .. } => Error::AlreadyExists {
                resource,
                group,
                name,
            },
            store::Error::NotFound { .. } => Error::NotFound {
                resource,
                group,
                name,
            },
            store::Error::Conflict { .. } => Error::Conflict {
                resource,
                group,
                name,
                why: "the object has been modified; please apply your changes to the latest version and try again".into(),
            },
            other => Error::from(other),
        }
    }
}

impl From<crate::patch::Error> for Error {
    fn from(error: crate::patch::Error) -> Self {
        use crate::patch::Error as Patch;
        match error {
            Patch::Decode(message) => Error::BadRequest(message),
            Patch::TooManyOperations(_) => Error::TooLarge(error.to_string()),
            Patch::CopyLimit { .. } | Patch::Apply(_) => Error::Unprocessable(error.to_string()),
        }
    }
}

impl From<store::Error> for Error {
    fn from(error: store::Error) -> Self {
        match error {
            store::Error::Gone { requested, oldest } => {
                Error::Gone(format!("too old resource version: {requested} ({oldest})"))
            }
            store::Error::TooLarge { size, limit, .. } => Error::TooLarge(format!(
                "the object would take {size} bytes in the store, more than its limit of {limit} bytes"
            )),
            store::Error::Closed => {
                Error::Unavailable("the cluster has been shut down (its store is closed)".into())
            }
            other => Error::Internal(other.to_string()),
        }
    }
}

fn cause_reason(message: &str) -> &'static str {
    if message.starts_with("Required value") {
        "FieldValueRequired"
    } else if message.starts_with("Unsupported value") {
        "FieldValueNotSupported"
    } else if message.starts_with("Duplicate value") {
        "FieldValueDuplicate"
    } else if message.starts_with("Forbidden") {
        "FieldValueForbidden"
    } else if message.starts_with("Not found") {
        "FieldValueNotFound"
    } else {
        "FieldValueInvalid"
    }
}

/// A resource as the API server names it in messages: `pods`,
/// `deployments.apps`.
fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}
