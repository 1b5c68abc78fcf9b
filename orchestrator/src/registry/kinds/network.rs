//! networking.k8s.io/v1 Ingresses and IngressClasses: stored with the API
//! server's checks, a new Ingress without a class taking the default
//! IngressClass. No ingress controller runs: as on a cluster without one,
//! an Ingress has no address.

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde_json::{Value, json};

use super::{name_of, plain_hooks, status, validate_metadata};
use crate::admission::{Errors, Invalid, check_dns_label, check_dns_subdomain};
use crate::registry::metadata::text;
use crate::registry::resources::{ALL_VERBS, Hooks, Resource, Subresource};
use crate::registry::{ListOptions, Registry, Result};

const INGRESS_SUBRESOURCES: [Subresource; 1] = status("Ingress");

/// The annotation that makes an IngressClass the default.
pub const DEFAULT_CLASS: &str = "ingressclass.kubernetes.io/is-default-class";

pub(super) fn ingresses() -> Resource {
    Resource {
        group: "networking.k8s.io",
        version: "v1",
        kind: "Ingress",
        plural: "ingresses",
        singular: "ingress",
        namespaced: true,
        short_names: &["ing"],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &INGRESS_SUBRESOURCES,
        status_subresource: true,
        field_selectors: &[],
        schema: "io.k8s.api.networking.v1.Ingress",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            initial_status: |ingress| {
                ingress["status"] = json!({"loadBalancer": {}});
            },
            validate: validate_ingress,
            admit: admit_ingress,
            ..plain_hooks::<Ingress>()
        },
    }
}

pub(super) fn ingress_classes() -> Resource {
    Resource {
        group: "networking.k8s.io",
        version: "v1",
        kind: "IngressClass",
        plural: "ingressclasses",
        singular: "ingressclass",
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
        status_subresource: false,
        field_selectors: &[],
        schema: "io.k8s.api.networking.v1.IngressClass",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            validate: validate_class,
            ..plain_hooks::<IngressClass>()
        },
    }
}

/// Kubernetes' DefaultIngressClass admission: a new Ingress naming no
/// class (by field or by the old annotation) gets the default class, the
/// newest if several are marked.
fn admit_ingress(registry: &Registry, ingress: &mut Value, old: Option<&Value>) -> Result<()> {
    let named = !text(ingress, "/spec/ingressClassName").is_empty()
        || ingress
            .pointer("/metadata/annotations")
            .and_then(|a| a.get("kubernetes.io/ingress.class"))
            .is_some();
    if old.is_some() || named {
        return Ok(());
    }
    let classes = registry.resource("networking.k8s.io", "IngressClass");
    let default = registry
        .list(&classes, None, &ListOptions::default())?
        .items
        .into_iter()
        .filter(|c| {
            c.pointer("/metadata/annotations")
                .and_then(|a| a.get(DEFAULT_CLASS))
                .and_then(Value::as_str)
                == Some("true")
        })
        .max_by(|a, b| {
            text(a, "/metadata/creationTimestamp").cmp(text(b, "/metadata/creationTimestamp"))
        });
    if let (Some(class), Some(spec)) = (
        default,
        ingress.get_mut("spec").and_then(Value::as_object_mut),
    ) {
        spec.insert(
            "ingressClassName".into(),
            json!(text(&class, "/metadata/name")),
        );
    }
    Ok(())
}

fn validate_class(class: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    validate_metadata(class, old)?;
    let mut errors = Errors::default();
    let controller = text(class, "/spec/controller");
    if controller.len() > 250 {
        errors.push(
            "spec.controller",
            "Too long: may not be more than 250 bytes".into(),
        );
    }
    if let Some(old) = old
        && text(old, "/spec/controller") != controller
    {
        errors.push(
            "spec.controller",
            format!("Invalid value: {controller:?}: field is immutable"),
        );
    }
    errors.into_result("IngressClass", name_of(class))
}

fn validate_ingress(ingress: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    validate_metadata(ingress, old)?;
    let mut errors = Errors::default();
    let spec = ingress.get("spec").unwrap_or(&Value::Null);
    let rules = spec.get("rules").and_then(Value::as_array);
    let backend = spec.get("defaultBackend").filter(|b| !b.is_null());
    if rules.is_none_or(Vec::is_empty) && backend.is_none() {
        errors.push(
            "spec",
            "Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified".into(),
        );
    }
    if let Some(backend) = backend {
        check_backend(&mut errors, "spec.defaultBackend", backend);
    }
    let class = text(ingress, "/spec/ingressClassName");
    if !class.is_empty() {
        check_dns_subdomain(&mut errors, "spec.ingressClassName", class);
    }
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        let path = format!("spec.rules[{i}]");
        let host = text(rule, "/host");
        if !host.is_empty() {
            check_host(&mut errors, &format!("{path}.host"), host);
        }
        let Some(http) = rule.get("http").filter(|h| !h.is_null()) else {
            continue;
        };
        let paths = http.get("paths").and_then(Value::as_array);
        if paths.is_none_or(Vec::is_empty) {
            errors.push(format!("{path}.http.paths"), "Required value".into());
        }
        for (j, entry) in paths.into_iter().flatten().enumerate() {
            let at = format!("{path}.http.paths[{j}]");
            let value = text(entry, "/path");
            match text(entry, "/pathType") {
                "" => errors.push(
                    format!("{at}.pathType"),
                    "Required value: pathType must be specified".into(),
                ),
                "Exact" | "Prefix" => {
                    if !value.starts_with('/') {
                        errors.push(
                            format!("{at}.path"),
                            format!("Invalid value: {value:?}: must be an absolute path"),
                        );
                    }
                }
                "ImplementationSpecific" => {
                    if !value.is_empty() && !value.starts_with('/') {
                        errors.push(
                            format!("{at}.path"),
                            format!("Invalid value: {value:?}: must be an absolute path"),
                        );
                    }
                }
                other => errors.push(
                    format!("{at}.pathType"),
                    format!(
                        "Unsupported value: {other:?}: supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\""
                    ),
                ),
            }
            match entry.get("backend") {
                Some(backend) => check_backend(&mut errors, &format!("{at}.backend"), backend),
                None => errors.push(format!("{at}.backend"), "Required value".into()),
            }
        }
    }
    for (i, tls) in spec
        .get("tls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (j, host) in tls
            .get("hosts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            check_host(
                &mut errors,
                &format!("spec.tls[{i}].hosts[{j}]"),
                host.as_str().unwrap_or(""),
            );
        }
    }
    errors.into_result("Ingress", name_of(ingress))
}

/// A rule's host: a DNS name, `*.` allowed in front, never an IP address.
fn check_host(errors: &mut Errors, field: &str, host: &str) {
    if host.parse::<std::net::IpAddr>().is_ok() {
        errors.push(
            field,
            format!("Invalid value: {host:?}: must be a DNS name, not an IP address"),
        );
        return;
    }
    check_dns_subdomain(errors, field, host.strip_prefix("*.").unwrap_or(host));
}

/// A backend: a Service (by name, and port by name or number) or a
/// resource, not both.
fn check_backend(errors: &mut Errors, field: &str, backend: &Value) {
    let service = backend.get("service").filter(|s| !s.is_null());
    let resource = backend.get("resource").filter(|r| !r.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => errors.push(
            field,
            "Invalid value: \"\": cannot set both resource and service backends".into(),
        ),
        (None, None) => errors.push(
            field,
            "Invalid value: \"\": resource or service must be specified".into(),
        ),
        (None, Some(_)) => {}
        (Some(service), None) => {
            let name = text(service, "/name");
            if name.is_empty() {
                errors.push(format!("{field}.service.name"), "Required value".into());
            } else {
                check_dns_label(errors, &format!("{field}.service.name"), name);
            }
            let port = service.get("port").unwrap_or(&Value::Null);
            let number = port
                .get("number")
                .and_then(Value::as_i64)
                .filter(|n| *n != 0);
            let port_name = text(port, "/name");
            match (number, port_name.is_empty()) {
                (Some(_), false) => errors.push(
                    format!("{field}.service.port"),
                    "Invalid value: \"\": cannot set both port name & port number".into(),
                ),
                (None, true) => errors.push(
                    format!("{field}.service.port"),
                    "Invalid value: \"\": port name or number is required".into(),
                ),
                (Some(n), true) if !(1..=65535).contains(&n) => errors.push(
                    format!("{field}.service.port.number"),
                    format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
                ),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress(spec: Value) -> Value {
        json!({"metadata": {"name": "web"}, "spec": spec})
    }

    fn messages(result: Result<(), Invalid>) -> Vec<String> {
        result
            .err()
            .map(|i| i.errors.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    }

    #[test]
    fn an_ingress_needs_rules_or_a_default_backend_and_valid_paths() {
        assert_eq!(
            messages(validate_ingress(&ingress(json!({})), None)),
            [
                "spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"
            ]
        );
        let good = ingress(
            json!({"rules": [{"host": "*.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}),
        );
        assert!(validate_ingress(&good, None).is_ok());
        let bad = ingress(json!({"rules": [{"host": "10.0.0.1", "http": {"paths": [
            {"path": "api", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"number": 80, "name": "http"}}}},
            {"path": "/", "backend": {"service": {"name": "web", "port": {}}}}]}}]}));
        assert_eq!(
            messages(validate_ingress(&bad, None)),
            [
                "spec.rules[0].host: Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address",
                "spec.rules[0].http.paths[0].path: Invalid value: \"api\": must be an absolute path",
                "spec.rules[0].http.paths[0].backend.service.port: Invalid value: \"\": cannot set both port name & port number",
                "spec.rules[0].http.paths[1].pathType: Required value: pathType must be specified",
                "spec.rules[0].http.paths[1].backend.service.port: Invalid value: \"\": port name or number is required",
            ]
        );
    }
}
