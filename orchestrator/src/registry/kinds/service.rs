//! Services, Endpoints and EndpointSlices: Kubernetes' defaults and checks
//! for Services; their cluster IPs and node ports come from
//! [`crate::registry::allocator`].

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::{name_of, plain_hooks, validate_metadata};
use crate::admission::{Errors, Invalid, check_dns_1035_label, check_dns_label, is_port_name};
use crate::registry::metadata::text;
use crate::registry::resources::{ALL_VERBS, Hooks, Resource, Subresource, Typed, admit_nothing};

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

pub(super) fn services() -> Resource {
    Resource {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        verbs: ALL_VERBS,
        subresources: &[Subresource {
            name: "status",
            kind: "Service",
            group_version: None,
            verbs: &["get", "patch", "update"],
        }],
        status_subresource: true,
        field_selectors: &["spec.clusterIP", "spec.type"],
        schema: "io.k8s.api.core.v1.Service",
        returns_deleted: true,
        custom: None,
        hooks: Hooks {
            defaults,
            initial_status: |service| service["status"] = json!({"loadBalancer": {}}),
            validate,
            typed: Typed::of::<Service>(),
            allocate: |allocators, service, old| allocators.services.allocate(service, old),
            admit: admit_nothing,
        },
    }
}

pub(super) fn endpoints() -> Resource {
    Resource {
        group: "",
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        singular: "endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
        status_subresource: false,
        field_selectors: &[],
        schema: "io.k8s.api.core.v1.Endpoints",
        returns_deleted: false,
        custom: None,
        hooks: plain_hooks::<Endpoints>(),
    }
}

pub(super) fn endpoint_slices() -> Resource {
    Resource {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        singular: "endpointslice",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
        status_subresource: false,
        field_selectors: &["addressType"],
        schema: "io.k8s.api.discovery.v1.EndpointSlice",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            validate: |slice, old| {
                validate_metadata(slice, old)?;
                let mut errors = Errors::default();
                match slice.get("addressType").and_then(Value::as_str) {
                    None => errors.required("addressType"),
                    Some(t) if !["IPv4", "IPv6", "FQDN"].contains(&t) => {
                        errors.unsupported("addressType", t, &["FQDN", "IPv4", "IPv6"])
                    }
                    Some(_) => {}
                }
                errors.into_result("EndpointSlice", name_of(slice))
            },
            ..plain_hooks::<EndpointSlice>()
        },
    }
}

/// Kubernetes' Service defaults: type ClusterIP, session affinity None,
/// TCP ports whose target is the port itself, single-stack IPv4 and the
/// Cluster traffic policies.
///
/// Kubernetes defaults zero values as if absent (its fields are Go
/// values), and clients that send protobuf send every zero value, so empty
/// strings and zero ports are dropped first.
fn defaults(service: &mut Value) {
    let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let zero = |v: &Value| v.as_str() == Some("") || v.as_i64() == Some(0) || v.is_null();
    spec.retain(|key, value| {
        !(zero(value)
            && [
                "type",
                "clusterIP",
                "sessionAffinity",
                "externalName",
                "externalTrafficPolicy",
                "internalTrafficPolicy",
                "ipFamilyPolicy",
                "loadBalancerIP",
                "loadBalancerClass",
                "healthCheckNodePort",
            ]
            .contains(&key.as_str()))
    });
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            port.retain(|key, value| {
                !(zero(value)
                    && ["name", "nodePort", "appProtocol", "targetPort"].contains(&key.as_str()))
            });
        }
    }
    let kind = spec
        .entry("type")
        .or_insert_with(|| json!("ClusterIP"))
        .as_str()
        .unwrap_or("")
        .to_string();
    spec.entry("sessionAffinity")
        .or_insert_with(|| json!("None"));
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            port.entry("protocol").or_insert_with(|| json!("TCP"));
            if let Some(number) = port.get("port").cloned() {
                port.entry("targetPort").or_insert(number);
            }
        }
    }
    if kind == "ExternalName" {
        return;
    }
    spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
    spec.entry("ipFamilyPolicy")
        .or_insert_with(|| json!("SingleStack"));
    spec.entry("internalTrafficPolicy")
        .or_insert_with(|| json!("Cluster"));
    if let Some(ip) = spec.get("clusterIP").cloned()
        && ip.as_str().is_some_and(|ip| !ip.is_empty())
    {
        spec.entry("clusterIPs").or_insert_with(|| json!([ip]));
    }
    if kind == "NodePort" || kind == "LoadBalancer" {
        spec.entry("externalTrafficPolicy")
            .or_insert_with(|| json!("Cluster"));
    }
    if kind == "LoadBalancer" {
        spec.entry("allocateLoadBalancerNodePorts")
            .or_insert_with(|| json!(true));
    }
}

/// The parts of Kubernetes' Service validation a user meets: names,
/// ports, type, selector and what an update may not change.
fn validate(service: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    let name = name_of(service);
    let mut errors = Errors::default();
    check_dns_1035_label(&mut errors, "metadata.name", name);
    let kind = text(service, "/spec/type");
    if !TYPES.contains(&kind) {
        errors.unsupported("spec.type", kind, TYPES);
    }
    let cluster_ip = text(service, "/spec/clusterIP");
    let headless = cluster_ip == "None";
    if !cluster_ip.is_empty() && !headless && cluster_ip.parse::<std::net::Ipv4Addr>().is_err() {
        errors.invalid(
            "spec.clusterIPs[0]",
            cluster_ip,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        );
    }
    if kind == "ExternalName" {
        if text(service, "/spec/externalName").is_empty() {
            errors.required("spec.externalName");
        }
        if !cluster_ip.is_empty() && !headless {
            errors.push(
                "spec.clusterIPs",
                "Invalid value: must be empty for ExternalName services".into(),
            );
        }
    }
    if headless && (kind == "NodePort" || kind == "LoadBalancer") {
        errors.invalid(
            "spec.clusterIPs[0]",
            cluster_ip,
            &format!("may not be set to 'None' for {kind} services"),
        );
    }
    let ports = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if ports.is_empty() && kind != "ExternalName" && !headless {
        errors.required("spec.ports");
    }
    let mut names = Vec::new();
    let mut seen = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let field = |f: &str| format!("spec.ports[{i}].{f}");
        let port_name = port.get("name").and_then(Value::as_str).unwrap_or("");
        if ports.len() > 1 && port_name.is_empty() {
            errors.required(field("name"));
        } else if !port_name.is_empty() {
            check_dns_label(&mut errors, &field("name"), port_name);
            if names.contains(&port_name) {
                errors.duplicate(field("name"), port_name);
            }
            names.push(port_name);
        }
        let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&number) {
            errors.push(
                field("port"),
                format!("Invalid value: {number}: must be between 1 and 65535, inclusive"),
            );
        }
        let protocol = port
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP");
        if !PROTOCOLS.contains(&protocol) {
            errors.unsupported(field("protocol"), protocol, PROTOCOLS);
        }
        if seen.contains(&(number, protocol)) {
            errors.push(
                format!("spec.ports[{i}]"),
                format!("Duplicate value: port {number}/{protocol} is listed twice"),
            );
        }
        seen.push((number, protocol));
        match port.get("targetPort") {
            Some(Value::Number(n)) => {
                let n = n.as_i64().unwrap_or(0);
                if !(1..=65535).contains(&n) {
                    errors.push(
                        field("targetPort"),
                        format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
                    );
                }
            }
            Some(Value::String(s)) => check_port_name(&mut errors, &field("targetPort"), s),
            _ => {}
        }
        let node_port = port.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if node_port != 0 && kind != "NodePort" && kind != "LoadBalancer" {
            errors.push(
                field("nodePort"),
                format!("Forbidden: may not be used when `type` is '{kind}'"),
            );
        }
    }
    if let Some(selector) = service.pointer("/spec/selector").and_then(Value::as_object) {
        for (key, value) in selector {
            if key.is_empty() || value.as_str().is_none() {
                errors.invalid(
                    "spec.selector",
                    key,
                    "selector keys must be label names with string values",
                );
            }
        }
    }
    if let Some(old) = old {
        let before = text(old, "/spec/clusterIP");
        let changed = !cluster_ip.is_empty() && !before.is_empty() && cluster_ip != before;
        let retyped = text(old, "/spec/type") == "ExternalName" || kind == "ExternalName";
        if changed && !retyped {
            errors.push(
                "spec.clusterIPs[0]",
                format!("Invalid value: []string{{{cluster_ip:?}}}: may not change once set"),
            );
        }
    }
    errors.into_result("Service", name)
}

/// A named target port must be an IANA service name.
fn check_port_name(errors: &mut Errors, field: &str, value: &str) {
    if !is_port_name(value) {
        errors.invalid(
            field,
            value,
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-), at most 15 characters, with at least one letter",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(spec: Value) -> Value {
        let mut s = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec});
        defaults(&mut s);
        s
    }

    #[test]
    fn zero_values_are_defaulted_as_if_absent() {
        let s = service(json!({
            "type": "NodePort", "sessionAffinity": "", "externalTrafficPolicy": "",
            "externalName": "", "healthCheckNodePort": 0,
            "ports": [{"port": 80, "nodePort": 0, "targetPort": 0, "name": ""}],
        }));
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert_eq!(s["spec"]["externalTrafficPolicy"], "Cluster");
        assert!(s["spec"].get("externalName").is_none());
        assert!(s["spec"].get("healthCheckNodePort").is_none());
        assert_eq!(
            s["spec"]["ports"][0],
            json!({"port": 80, "targetPort": 80, "protocol": "TCP"})
        );
    }

    #[test]
    fn defaults_follow_kubernetes() {
        let s = service(json!({"ports": [{"port": 80}], "type": "NodePort"}));
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert_eq!(s["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
        let s = service(json!({"ports": [{"port": 80, "targetPort": "http"}]}));
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], "http");
        assert!(s["spec"].get("externalTrafficPolicy").is_none());
    }

    #[test]
    fn validation_names_the_field() {
        let message = |spec: Value| {
            let s = service(spec);
            validate(&s, None).unwrap_err().to_string()
        };
        let m = message(json!({}));
        assert!(m.contains("spec.ports: Required value"), "{m}");
        let m = message(json!({"ports": [{"port": 80}, {"port": 81}]}));
        assert!(m.contains("spec.ports[0].name: Required value"), "{m}");
        let m = message(json!({"ports": [{"port": 70000}]}));
        assert!(
            m.contains("spec.ports[0].port: Invalid value: 70000"),
            "{m}"
        );
        let m = message(json!({"ports": [{"port": 80, "nodePort": 30080}]}));
        assert!(
            m.contains(
                "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
            ),
            "{m}"
        );
        let m = message(json!({"type": "Magic", "ports": [{"port": 80}]}));
        assert!(m.contains("spec.type: Unsupported value: \"Magic\""), "{m}");
        let m = message(json!({"ports": [{"port": 80, "targetPort": "Not_A_Name"}]}));
        assert!(m.contains("spec.ports[0].targetPort"), "{m}");
        let m = message(json!({"clusterIP": "ten", "ports": [{"port": 80}]}));
        assert!(
            m.contains("spec.clusterIPs[0]: Invalid value: \"ten\""),
            "{m}"
        );
        let headless = service(json!({"clusterIP": "None", "selector": {"app": "x"}}));
        assert!(validate(&headless, None).is_ok());
        let mut bad_name = service(json!({"ports": [{"port": 80}]}));
        bad_name["metadata"]["name"] = json!("1web");
        let m = validate(&bad_name, None).unwrap_err().to_string();
        assert!(m.contains("a DNS-1035 label"), "{m}");
    }

    #[test]
    fn a_cluster_ip_may_not_change() {
        let old = service(json!({"clusterIP": "10.96.0.20", "ports": [{"port": 80}]}));
        let new = service(json!({"clusterIP": "10.96.0.21", "ports": [{"port": 80}]}));
        let m = validate(&new, Some(&old)).unwrap_err().to_string();
        assert!(m.contains("may not change once set"), "{m}");
        let unset = service(json!({"ports": [{"port": 80}]}));
        assert!(validate(&unset, Some(&old)).is_ok());
    }
}
