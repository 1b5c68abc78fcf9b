//! networking.k8s.io/v1 NetworkPolicies: stored with the API server's
//! defaults (`policyTypes` from the rules given, `TCP` ports) and checks;
//! [`crate::network_policy`] enforces them in the pod network.

use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{Value, json};

use super::{name_of, plain_hooks, validate_metadata};
use crate::admission::{Errors, Invalid, is_port_name};
use crate::network_policy::Block;
use crate::registry::resources::{ALL_VERBS, Hooks, Resource};
use crate::registry::selectors::LabelSelector;

pub(super) fn network_policies() -> Resource {
    Resource {
        group: "networking.k8s.io",
        version: "v1",
        kind: "NetworkPolicy",
        plural: "networkpolicies",
        singular: "networkpolicy",
        namespaced: true,
        short_names: &["netpol"],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
        status_subresource: false,
        field_selectors: &[],
        schema: "io.k8s.api.networking.v1.NetworkPolicy",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            defaults: default_policy,
            validate: validate_policy,
            ..plain_hooks::<NetworkPolicy>()
        },
    }
}

/// The API server's defaults: a policy without `policyTypes` is about
/// ingress, and egress too when it has egress rules; a port's protocol is
/// TCP.
fn default_policy(policy: &mut Value) {
    let Some(spec) = policy.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for direction in ["ingress", "egress"] {
        let rules = spec.get_mut(direction).and_then(Value::as_array_mut);
        for rule in rules.into_iter().flatten() {
            let ports = rule.get_mut("ports").and_then(Value::as_array_mut);
            for port in ports.into_iter().flatten() {
                if let Some(port) = port.as_object_mut()
                    && port.get("protocol").is_none_or(Value::is_null)
                {
                    port.insert("protocol".into(), json!("TCP"));
                }
            }
        }
    }
    let given = spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    if !given {
        let egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        let types = if egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        spec.insert("policyTypes".into(), types);
    }
}

fn validate_policy(policy: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    validate_metadata(policy, old)?;
    let mut errors = Errors::default();
    let spec = policy.get("spec").unwrap_or(&Value::Null);
    check_selector(&mut errors, "spec.podSelector", spec.get("podSelector"));
    for (direction, peers) in [("ingress", "from"), ("egress", "to")] {
        let rules = spec.get(direction).and_then(Value::as_array);
        for (i, rule) in rules.into_iter().flatten().enumerate() {
            let at = format!("spec.{direction}[{i}]");
            let ports = rule.get("ports").and_then(Value::as_array);
            for (j, port) in ports.into_iter().flatten().enumerate() {
                check_port(&mut errors, &format!("{at}.ports[{j}]"), port);
            }
            let list = rule.get(peers).and_then(Value::as_array);
            for (j, peer) in list.into_iter().flatten().enumerate() {
                check_peer(&mut errors, &format!("{at}.{peers}[{j}]"), peer);
            }
        }
    }
    let types = spec.get("policyTypes").and_then(Value::as_array);
    match types {
        Some(types) if types.len() > 2 => {
            let listed: Vec<String> = types
                .iter()
                .map(|t| format!("{:?}", t.as_str().unwrap_or_default()))
                .collect();
            errors.push(
                "spec.policyTypes",
                format!(
                    "Invalid value: []networking.PolicyType{{{}}}: may not specify more than two policyTypes",
                    listed.join(", ")
                ),
            );
        }
        _ => {
            for (i, kind) in types.into_iter().flatten().enumerate() {
                let kind = kind.as_str().unwrap_or_default();
                if kind != "Ingress" && kind != "Egress" {
                    errors.unsupported(
                        format!("spec.policyTypes[{i}]"),
                        kind,
                        &["Ingress", "Egress"],
                    );
                }
            }
        }
    }
    errors.into_result("NetworkPolicy", name_of(policy))
}

fn check_selector(errors: &mut Errors, field: &str, selector: Option<&Value>) {
    if let Err(e) = LabelSelector::from_object(selector.filter(|s| !s.is_null())) {
        errors.push(field, format!("Invalid value: {e}"));
    }
}

/// A port: a protocol Kubernetes knows, a number in range or a port name,
/// and an `endPort` only after a numeric port, not below it.
fn check_port(errors: &mut Errors, at: &str, port: &Value) {
    let protocol = port
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("TCP");
    if !["TCP", "UDP", "SCTP"].contains(&protocol) {
        errors.unsupported(format!("{at}.protocol"), protocol, &["TCP", "UDP", "SCTP"]);
    }
    let end = port.get("endPort").and_then(Value::as_i64);
    let in_range = |n: i64| (1..=65535).contains(&n);
    match port.get("port") {
        Some(Value::Number(number)) => {
            let n = number.as_i64().unwrap_or(0);
            if !in_range(n) {
                errors.push(
                    format!("{at}.port"),
                    format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
                );
            }
            if let Some(end) = end {
                if end < n {
                    errors.push(
                        format!("{at}.endPort"),
                        format!("Invalid value: {end}: must be greater than or equal to `port`"),
                    );
                }
                if !in_range(end) {
                    errors.push(
                        format!("{at}.endPort"),
                        format!("Invalid value: {end}: must be between 1 and 65535, inclusive"),
                    );
                }
            }
        }
        Some(Value::String(name)) => {
            if let Some(end) = end {
                errors.push(
                    format!("{at}.endPort"),
                    format!(
                        "Invalid value: {end}: may not be specified when `port` is non-numeric"
                    ),
                );
            }
            if !is_port_name(name) {
                errors.invalid(
                    format!("{at}.port"),
                    name,
                    "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-), at most 15 characters, with at least one letter",
                );
            }
        }
        _ => {
            if let Some(end) = end {
                errors.push(
                    format!("{at}.endPort"),
                    format!(
                        "Invalid value: {end}: may not be specified when `port` is not specified"
                    ),
                );
            }
        }
    }
}

/// A peer: exactly one of the selectors (together) or an ipBlock whose
/// exceptions lie strictly inside its CIDR.
fn check_peer(errors: &mut Errors, at: &str, peer: &Value) {
    let present = |field: &str| peer.get(field).is_some_and(|v| !v.is_null());
    let mut count = 0;
    for field in ["podSelector", "namespaceSelector"] {
        if present(field) {
            count += 1;
            check_selector(errors, &format!("{at}.{field}"), peer.get(field));
        }
    }
    if present("ipBlock") {
        count += 1;
        check_block(errors, &format!("{at}.ipBlock"), &peer["ipBlock"]);
    }
    if count == 0 {
        errors.push(at, "Required value: must specify a peer".into());
    } else if count > 1 && present("ipBlock") {
        errors.push(
            at,
            "Forbidden: may not specify both ipBlock and another peer".into(),
        );
    }
}

const CIDR_MESSAGE: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

fn check_block(errors: &mut Errors, at: &str, block: &Value) {
    let cidr = block.get("cidr").and_then(Value::as_str).unwrap_or("");
    if cidr.is_empty() {
        errors.push(format!("{at}.cidr"), "Required value".into());
        return;
    }
    let Ok(outer) = cidr.parse::<Block>() else {
        errors.invalid(format!("{at}.cidr"), cidr, CIDR_MESSAGE);
        return;
    };
    let except = block.get("except").and_then(Value::as_array);
    for (i, inner) in except.into_iter().flatten().enumerate() {
        let field = format!("{at}.except[{i}]");
        let text = inner.as_str().unwrap_or_default();
        match text.parse::<Block>() {
            Err(_) => errors.invalid(field, text, CIDR_MESSAGE),
            Ok(inner) if !outer.strictly_contains(&inner) => {
                errors.invalid(field, text, "must be a strict subset of `cidr`")
            }
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(policy: Value) -> Vec<String> {
        match validate_policy(&policy, None) {
            Ok(()) => Vec::new(),
            Err(invalid) => invalid
                .errors
                .into_iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect(),
        }
    }

    fn policy(spec: Value) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "p", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn policy_types_and_protocols_are_defaulted() {
        let mut ingress_only =
            policy(json!({"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}));
        default_policy(&mut ingress_only);
        assert_eq!(ingress_only["spec"]["policyTypes"], json!(["Ingress"]));
        assert_eq!(
            ingress_only["spec"]["ingress"][0]["ports"][0]["protocol"],
            "TCP"
        );
        let mut both = policy(json!({"podSelector": {}, "egress": [{}]}));
        default_policy(&mut both);
        assert_eq!(both["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        let mut given =
            policy(json!({"podSelector": {}, "egress": [{}], "policyTypes": ["Egress"]}));
        default_policy(&mut given);
        assert_eq!(given["spec"]["policyTypes"], json!(["Egress"]));
    }

    #[test]
    fn bad_policies_are_refused_in_the_api_servers_words() {
        assert_eq!(
            messages(policy(
                json!({"podSelector": {}, "ingress": [{"from": [{}]}]})
            )),
            ["spec.ingress[0].from[0]: Required value: must specify a peer"]
        );
        assert_eq!(
            messages(policy(json!({"podSelector": {}, "egress": [{"to": [
                {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]}))),
            ["spec.egress[0].to[0]: Forbidden: may not specify both ipBlock and another peer"]
        );
        assert_eq!(
            messages(policy(json!({"podSelector": {}, "egress": [{"to": [
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16", "10.0.0.0/8", "x"]}}]}]}))),
            [
                "spec.egress[0].to[0].ipBlock.except[0]: Invalid value: \"11.0.0.0/16\": must be a strict subset of `cidr`",
                "spec.egress[0].to[0].ipBlock.except[1]: Invalid value: \"10.0.0.0/8\": must be a strict subset of `cidr`",
                "spec.egress[0].to[0].ipBlock.except[2]: Invalid value: \"x\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ]
        );
        assert_eq!(
            messages(policy(json!({"podSelector": {}, "ingress": [{"ports": [
                {"port": 0}, {"port": 80, "endPort": 79}, {"port": "http", "endPort": 90},
                {"endPort": 90}, {"protocol": "ICMP", "port": 1}]}]}))),
            [
                "spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ingress[0].ports[1].endPort: Invalid value: 79: must be greater than or equal to `port`",
                "spec.ingress[0].ports[2].endPort: Invalid value: 90: may not be specified when `port` is non-numeric",
                "spec.ingress[0].ports[3].endPort: Invalid value: 90: may not be specified when `port` is not specified",
                "spec.ingress[0].ports[4].protocol: Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
            ]
        );
        assert_eq!(
            messages(policy(
                json!({"podSelector": {}, "policyTypes": ["Ingress", "Sideways"]})
            )),
            [
                "spec.policyTypes[1]: Unsupported value: \"Sideways\": supported values: \"Ingress\", \"Egress\""
            ]
        );
        assert!(messages(policy(json!({"podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"role": "x"}}},
                {"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}}],
                "ports": [{"port": "http"}, {"protocol": "UDP", "port": 53, "endPort": 60}]}]})))
        .is_empty());
    }
}
