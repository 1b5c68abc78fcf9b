//! Admission: the checks an object passes before it is accepted, with
//! Kubernetes' field paths and wording (`spec.containers[0].image:
//! Required value`), so a user reads the same errors as from a cluster.

pub mod metadata;
pub mod pod;
pub mod pod_security;

use std::fmt;

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `spec.containers[0].image`.
    pub field: String,
    /// `Required value`, `Invalid value: "x": ...`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found with an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name:?} is invalid: {}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
pub struct Invalid {
    /// The object's kind.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// What is wrong.
    pub errors: Vec<FieldError>,
}

/// Collects field errors while walking an object.
#[derive(Debug, Default)]
pub(crate) struct Errors(Vec<FieldError>);

impl Errors {
    pub(crate) fn required(&mut self, field: impl Into<String>) {
        self.push(field, "Required value".to_string());
    }

    pub(crate) fn invalid(&mut self, field: impl Into<String>, value: &str, why: &str) {
        self.push(field, format!("Invalid value: {value:?}: {why}"));
    }

    pub(crate) fn unsupported(
        &mut self,
        field: impl Into<String>,
        value: &str,
        supported: &[&str],
    ) {
        let list = supported
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.push(
            field,
            format!("Unsupported value: {value:?}: supported values: {list}"),
        );
    }

    pub(crate) fn duplicate(&mut self, field: impl Into<String>, value: &str) {
        self.push(field, format!("Duplicate value: {value:?}"));
    }

    pub(crate) fn not_found(&mut self, field: impl Into<String>, value: &str) {
        self.push(field, format!("Not found: {value:?}"));
    }

    pub(crate) fn push(&mut self, field: impl Into<String>, message: String) {
        self.0.push(FieldError {
            field: field.into(),
            message,
        });
    }

    pub(crate) fn into_result(self, kind: &str, name: &str) -> Result<(), Invalid> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Invalid {
                kind: kind.to_string(),
                name: name.to_string(),
                errors: self.0,
            })
        }
    }
}

const DNS_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
     and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')";
const DNS_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
     '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')";

const DNS_1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', \
     start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', \
     regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn label_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Checks an RFC 1123 label (container names, namespaces).
pub(crate) fn check_dns_label(errors: &mut Errors, field: &str, value: &str) {
    if !label_ok(value) {
        errors.invalid(field, value, DNS_LABEL_MSG);
    }
}

/// Whether `name` is an IANA service name, as container port names and
/// named target ports are: up to 15 lower case letters, digits and '-',
/// at least one letter, no leading, trailing or doubled '-'.
pub(crate) fn is_port_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// Checks an RFC 1035 label (Service names): an RFC 1123 label that
/// starts with a letter.
pub(crate) fn check_dns_1035_label(errors: &mut Errors, field: &str, value: &str) {
    if !label_ok(value) || !value.starts_with(|c: char| c.is_ascii_lowercase()) {
        errors.invalid(field, value, DNS_1035_MSG);
    }
}

/// Checks an RFC 1123 subdomain (most object names).
pub(crate) fn check_dns_subdomain(errors: &mut Errors, field: &str, value: &str) {
    if value.is_empty() || value.len() > 253 || !value.split('.').all(label_ok) {
        errors.invalid(field, value, DNS_SUBDOMAIN_MSG);
    }
}

/// Checks a name that only has to be a path segment (RBAC objects' names
/// such as `system:basic-user`), as the API server's path segment rule.
pub(crate) fn check_path_segment(errors: &mut Errors, field: &str, value: &str) {
    if value.is_empty() {
        errors.required(field);
    } else if value == "." || value == ".." {
        errors.invalid(field, value, &format!("may not be '{value}'"));
    } else if let Some(bad) = ["/", "%"].into_iter().find(|bad| value.contains(bad)) {
        errors.invalid(field, value, &format!("may not contain '{bad}'"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let mut e = Errors::default();
        check_dns_subdomain(&mut e, "metadata.name", "my-pod.v1");
        check_dns_label(&mut e, "c", "app");
        assert!(e.0.is_empty());
        check_dns_label(&mut e, "c", "App_1");
        check_dns_subdomain(&mut e, "n", "-x");
        assert_eq!(e.0.len(), 2);
        let err = e.into_result("Pod", "x").unwrap_err().to_string();
        assert!(
            err.starts_with("Pod \"x\" is invalid: c: Invalid value: \"App_1\""),
            "{err}"
        );
    }
}
