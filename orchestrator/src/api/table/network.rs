//! Columns of Services, Endpoints, EndpointSlices, Ingresses and
//! NetworkPolicies, as kubectl's printers show them.

use serde_json::{Value, json};

use super::{age_cell, column, s};
use crate::registry::selectors::format_selector;

pub(super) fn columns(kind: &str, name: Value, age: Value) -> Option<Vec<Value>> {
    Some(match kind {
        "Service" => vec![
            name,
            column(
                "Type",
                "string",
                0,
                "type determines how the Service is exposed.",
            ),
            column(
                "Cluster-IP",
                "string",
                0,
                "clusterIP is the IP address of the service and is usually assigned randomly.",
            ),
            column(
                "External-IP",
                "string",
                0,
                "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            ),
            column(
                "Port(s)",
                "string",
                0,
                "The list of ports that are exposed by this service.",
            ),
            age,
            column(
                "Selector",
                "string",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        "Endpoints" => vec![
            name,
            column("Endpoints", "string", 0, "Endpoints of the service"),
            age,
        ],
        "EndpointSlice" => vec![
            name,
            column(
                "AddressType",
                "string",
                0,
                "addressType specifies the type of address carried by this EndpointSlice.",
            ),
            column(
                "Ports",
                "string",
                0,
                "ports specifies the list of network ports exposed by each endpoint in this slice.",
            ),
            column(
                "Endpoints",
                "string",
                0,
                "endpoints is a list of unique endpoints in this slice.",
            ),
            age,
        ],
        "Ingress" => vec![
            name,
            column(
                "Class",
                "string",
                0,
                "The name of the IngressClass resource that should be used for ingress class",
            ),
            column(
                "Hosts",
                "string",
                0,
                "Hosts that incoming requests are matched against before the ingress rule",
            ),
            column(
                "Address",
                "string",
                0,
                "Address is a list containing ingress points for the load-balancer",
            ),
            column(
                "Ports",
                "string",
                0,
                "Ports of TLS configurations that open",
            ),
            age,
        ],
        "IngressClass" => vec![
            name,
            column(
                "Controller",
                "string",
                0,
                "Controller that is responsible for handling this class",
            ),
            column(
                "Parameters",
                "string",
                0,
                "A reference to a resource with additional parameters",
            ),
            age,
        ],
        "NetworkPolicy" => vec![
            name,
            column(
                "Pod-Selector",
                "string",
                0,
                "podSelector selects the pods to which this NetworkPolicy object applies. An empty selector matches all pods in the policy's namespace.",
            ),
            age,
        ],
        _ => return None,
    })
}

pub(super) fn cells(kind: &str, object: &Value) -> Option<Vec<Value>> {
    Some(match kind {
        "Service" => service_cells(object),
        "Endpoints" => vec![
            json!(s(object, "/metadata/name")),
            json!(endpoints_column(object)),
            age_cell(object),
        ],
        "EndpointSlice" => slice_cells(object),
        "Ingress" => ingress_cells(object),
        "NetworkPolicy" => vec![
            json!(s(object, "/metadata/name")),
            json!(format_selector(
                object.pointer("/spec/podSelector"),
                "<none>"
            )),
            age_cell(object),
        ],
        "IngressClass" => {
            let parameters = match object.pointer("/spec/parameters") {
                Some(p) if p.is_object() => {
                    let group = s(p, "/apiGroup");
                    let kind = if group.is_empty() {
                        s(p, "/kind").to_string()
                    } else {
                        format!("{}.{group}", s(p, "/kind"))
                    };
                    format!("{kind}/{}", s(p, "/name"))
                }
                _ => "<none>".into(),
            };
            vec![
                json!(s(object, "/metadata/name")),
                json!(s(object, "/spec/controller")),
                json!(parameters),
                age_cell(object),
            ]
        }
        _ => return None,
    })
}

/// An Ingress's row: its class, up to three hosts (`*` for none), the
/// load balancer's addresses, and 80 (with 443 when it has TLS).
fn ingress_cells(object: &Value) -> Vec<Value> {
    let class = match s(object, "/spec/ingressClassName") {
        "" => "<none>",
        class => class,
    };
    let rules = array(object, "/spec/rules");
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        more |= hosts.len() == 3;
        if !more && !s(rule, "/host").is_empty() {
            hosts.push(s(rule, "/host"));
        }
    }
    let hosts = match (hosts.is_empty(), more) {
        (true, _) => "*".to_string(),
        (false, true) => format!("{} + {} more...", hosts.join(","), rules.len() - 3),
        (false, false) => hosts.join(","),
    };
    let mut address: Vec<&str> = Vec::new();
    for point in array(object, "/status/loadBalancer/ingress") {
        address.extend(
            [s(point, "/ip"), s(point, "/hostname")]
                .into_iter()
                .filter(|a| !a.is_empty()),
        );
    }
    let mut address = address.join(",");
    if address.len() > 16 {
        address.truncate(13);
        address.push_str("...");
    }
    let ports = if array(object, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        json!(s(object, "/metadata/name")),
        json!(class),
        json!(hosts),
        json!(address),
        json!(ports),
        age_cell(object),
    ]
}

fn array<'a>(object: &'a Value, pointer: &str) -> &'a [Value] {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `a, b, c` then `+ N more...` after three, as kubectl shortens lists.
fn first_three(items: &[String]) -> String {
    if items.is_empty() {
        return "<none>".into();
    }
    let shown = items.iter().take(3).cloned().collect::<Vec<_>>().join(",");
    if items.len() > 3 {
        format!("{shown} + {} more...", items.len() - 3)
    } else {
        shown
    }
}

fn service_cells(service: &Value) -> Vec<Value> {
    let kind = s(service, "/spec/type");
    let kind = if kind.is_empty() { "ClusterIP" } else { kind };
    let cluster_ip = match s(service, "/spec/clusterIP") {
        "" => "<none>",
        ip => ip,
    };
    let mut external: Vec<String> = array(service, "/spec/externalIPs")
        .iter()
        .filter_map(|ip| Some(ip.as_str()?.to_string()))
        .collect();
    let external = match kind {
        "LoadBalancer" => {
            let ingress: Vec<String> = array(service, "/status/loadBalancer/ingress")
                .iter()
                .filter_map(|i| {
                    let ip = s(i, "/ip");
                    let host = s(i, "/hostname");
                    Some(if ip.is_empty() { host } else { ip })
                        .filter(|a| !a.is_empty())
                        .map(str::to_string)
                })
                .collect();
            external.extend(ingress);
            if external.is_empty() {
                "<pending>".to_string()
            } else {
                external.join(",")
            }
        }
        "ExternalName" => s(service, "/spec/externalName").to_string(),
        _ if external.is_empty() => "<none>".to_string(),
        _ => external.join(","),
    };
    let ports: Vec<String> = array(service, "/spec/ports")
        .iter()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let protocol = match s(p, "/protocol") {
                "" => "TCP",
                protocol => protocol,
            };
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(node) if node != 0 => format!("{port}:{node}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    vec![
        json!(s(service, "/metadata/name")),
        json!(kind),
        json!(cluster_ip),
        json!(external),
        json!(ports),
        age_cell(service),
        json!(selector(service)),
    ]
}

/// `app=web,tier=front`, keys sorted; `<none>` without a selector.
fn selector(service: &Value) -> String {
    let Some(selector) = service
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
    else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = selector
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    pairs.join(",")
}

fn endpoints_column(endpoints: &Value) -> String {
    let mut items = Vec::new();
    for subset in array(endpoints, "/subsets") {
        let ports = array(subset, "/ports");
        for address in array(subset, "/addresses") {
            let ip = s(address, "/ip");
            if ports.is_empty() {
                items.push(ip.to_string());
            }
            for port in ports {
                let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
                items.push(format!("{ip}:{number}"));
            }
        }
    }
    first_three(&items)
}

fn slice_cells(slice: &Value) -> Vec<Value> {
    let ports: Vec<String> = array(slice, "/ports")
        .iter()
        .map(|p| match p.get("port").and_then(Value::as_i64) {
            Some(port) => port.to_string(),
            None => "<unset>".to_string(),
        })
        .collect();
    let ports = if ports.is_empty() {
        "<unset>".to_string()
    } else {
        ports.join(",")
    };
    let addresses: Vec<String> = array(slice, "/endpoints")
        .iter()
        .flat_map(|e| array(e, "/addresses"))
        .filter_map(|a| Some(a.as_str()?.to_string()))
        .collect();
    vec![
        json!(s(slice, "/metadata/name")),
        json!(s(slice, "/addressType")),
        json!(ports),
        json!(if addresses.is_empty() {
            "<unset>".to_string()
        } else {
            first_three(&addresses)
        }),
        age_cell(slice),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_cells_follow_kubectl() {
        let svc = json!({
            "metadata": {"name": "web"},
            "spec": {
                "type": "NodePort", "clusterIP": "10.96.12.34",
                "selector": {"tier": "front", "app": "web"},
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
            },
        });
        let cells = service_cells(&svc);
        assert_eq!(cells[1], "NodePort");
        assert_eq!(cells[2], "10.96.12.34");
        assert_eq!(cells[3], "<none>");
        assert_eq!(cells[4], "80:30080/TCP,53/UDP");
        assert_eq!(cells[6], "app=web,tier=front");
        let lb = json!({"spec": {"type": "LoadBalancer", "clusterIP": "None", "ports": []}});
        let cells = service_cells(&lb);
        assert_eq!(cells[2], "None");
        assert_eq!(cells[3], "<pending>");
        assert_eq!(cells[4], "<none>");
    }

    #[test]
    fn endpoints_shorten_after_three() {
        let ep = json!({"subsets": [{
            "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}],
            "ports": [{"port": 8080}],
        }]});
        assert_eq!(
            endpoints_column(&ep),
            "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 1 more..."
        );
        assert_eq!(endpoints_column(&json!({})), "<none>");
    }
}
