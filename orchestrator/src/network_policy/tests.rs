use super::*;

const DNS: &str = "10.96.0.10";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn to(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn pod(uid: &str, namespace: &str, labels: Value) -> Value {
    json!({"metadata": {"uid": uid, "name": uid, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "c", "ports": [
            {"name": "http", "containerPort": 8080},
            {"name": "dns", "containerPort": 5353, "protocol": "UDP"}]}]}})
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"metadata": {"name": name, "labels": labels}})
}

fn policy(namespace: &str, name: &str, spec: Value) -> Value {
    let mut object = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec});
    // As stored: the API server's defaults applied.
    let types = if object["spec"].get("policyTypes").is_some() {
        object["spec"]["policyTypes"].clone()
    } else if object["spec"].get("egress").is_some() {
        json!(["Ingress", "Egress"])
    } else {
        json!(["Ingress"])
    };
    object["spec"]["policyTypes"] = types;
    object
}

/// Pods: web (app=web) and client (role=client) in `shop`, other
/// (role=client) in `lab`, with `policies` in force.
fn table(policies: Vec<Value>) -> Table {
    let table = Table::new(ip(DNS));
    let pods = [
        ("10.244.0.2", pod("web", "shop", json!({"app": "web"}))),
        (
            "10.244.0.3",
            pod("client", "shop", json!({"role": "client"})),
        ),
        ("10.244.0.4", pod("other", "lab", json!({"role": "client"}))),
    ];
    for (address, pod) in &pods {
        table.started(ip(address), pod);
    }
    let namespaces = vec![
        namespace("shop", json!({"kubernetes.io/metadata.name": "shop"})),
        namespace(
            "lab",
            json!({"kubernetes.io/metadata.name": "lab", "team": "lab"}),
        ),
        namespace(
            "kube-system",
            json!({"kubernetes.io/metadata.name": "kube-system"}),
        ),
    ];
    let by_uid: HashMap<&str, &Value> = pods
        .iter()
        .map(|(_, p)| (text(p, "/metadata/uid"), p))
        .collect();
    table.rebuild(&mut lock(&table.leases), policies, namespaces, &by_uid);
    table
}

const WEB: &str = "10.244.0.2:8080";
const CLIENT: &str = "10.244.0.3";
const OTHER: &str = "10.244.0.4";

#[test]
fn nothing_is_isolated_without_policies() {
    let table = table(Vec::new());
    assert!(table.allows(ip(CLIENT), to(WEB), Protocol::Tcp));
    assert!(table.allows(ip(OTHER), to("10.244.0.3:1"), Protocol::Udp));
    assert!(table.allows(ip(CLIENT), to("192.0.2.1:443"), Protocol::Tcp));
    assert!(table.allows_lookup(ip(CLIENT)));
}

#[test]
fn deny_all_ingress_isolates_every_pod_of_its_namespace_only() {
    let table = table(vec![policy("shop", "deny", json!({"podSelector": {}}))]);
    assert!(!table.allows(ip(CLIENT), to(WEB), Protocol::Tcp));
    assert!(!table.allows(ip(OTHER), to(WEB), Protocol::Tcp));
    assert!(!table.allows(ip("192.0.2.1"), to(WEB), Protocol::Tcp));
    // Egress is not isolated; `lab` is not either.
    assert!(table.allows(ip(CLIENT), to("10.244.0.4:80"), Protocol::Tcp));
    assert!(table.allows(ip(CLIENT), to("192.0.2.1:443"), Protocol::Tcp));
}

#[test]
fn allow_from_a_label_and_a_port() {
    let table = table(vec![policy(
        "shop",
        "web",
        json!({"podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                "ports": [{"protocol": "TCP", "port": 8080}]}]}),
    )]);
    assert!(table.allows(ip(CLIENT), to(WEB), Protocol::Tcp));
    // Another port, another protocol, the same label in another namespace.
    assert!(!table.allows(ip(CLIENT), to("10.244.0.2:9090"), Protocol::Tcp));
    assert!(!table.allows(ip(CLIENT), to(WEB), Protocol::Udp));
    assert!(!table.allows(ip(OTHER), to(WEB), Protocol::Tcp));
    // The client itself is not selected, so not isolated.
    assert!(table.allows(ip(OTHER), to("10.244.0.3:80"), Protocol::Tcp));
}

#[test]
fn a_relabelled_pod_is_judged_by_its_new_labels_and_others_stay() {
    let table = table(vec![policy(
        "shop",
        "web",
        json!({"podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]}),
    )]);
    assert!(table.allows(ip(CLIENT), to(WEB), Protocol::Tcp));
    // `kubectl label pod client role=intruder --overwrite`.
    table.relabel(&pod("client", "shop", json!({"role": "intruder"})));
    assert!(!table.allows(ip(CLIENT), to(WEB), Protocol::Tcp));
    // The other way round: the pod in the other namespace is still no peer,
    // and a pod not running here changes nothing.
    table.relabel(&pod("elsewhere", "shop", json!({"role": "client"})));
    assert!(!table.allows(ip(OTHER), to(WEB), Protocol::Tcp));
    table.relabel(&pod("client", "shop", json!({"role": "client"})));
    assert!(table.allows(ip(CLIENT), to(WEB), Protocol::Tcp));
    // The web pod loses its label: no policy selects it, nothing isolates it.
    table.relabel(&pod("web", "shop", json!({})));
    assert!(table.allows(ip(OTHER), to(WEB), Protocol::Tcp));
}

#[test]
fn allow_from_a_namespace_and_both_selectors_together() {
    let from_lab = policy(
        "shop",
        "lab",
        json!({"podSelector": {}, "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"team": "lab"}}}]}]}),
    );
    let table = table(vec![from_lab]);
    assert!(table.allows(ip(OTHER), to(WEB), Protocol::Tcp));
    assert!(!table.allows(ip(CLIENT), to(WEB), Protocol::Tcp));

    let both = policy(
        "shop",
        "both",
        json!({"podSelector": {}, "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"team": "lab"}},
             "podSelector": {"matchLabels": {"role": "nobody"}}}]}]}),
    );
    let table = self::table(vec![both]);
    assert!(!table.allows(ip(OTHER), to(WEB), Protocol::Tcp));
}

#[test]
fn named_ports_and_ranges_are_the_destinations() {
    let table = table(vec![policy(
        "shop",
        "named",
        json!({"podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"ports": [{"protocol": "TCP", "port": "http"},
                {"protocol": "TCP", "port": 9000, "endPort": 9010}]}]}),
    )]);
    assert!(table.allows(ip(OTHER), to(WEB), Protocol::Tcp));
    assert!(table.allows(ip(OTHER), to("10.244.0.2:9005"), Protocol::Tcp));
    assert!(!table.allows(ip(OTHER), to("10.244.0.2:9011"), Protocol::Tcp));
    assert!(!table.allows(ip(OTHER), to("10.244.0.2:5353"), Protocol::Udp));
}

#[test]
fn deny_egress_except_dns() {
    let table = table(vec![policy(
        "shop",
        "dns-only",
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}),
    )]);
    assert!(table.allows_lookup(ip(CLIENT)));
    assert!(!table.allows(ip(CLIENT), to(WEB), Protocol::Tcp));
    assert!(!table.allows(ip(CLIENT), to("192.0.2.1:443"), Protocol::Tcp));
    // Ingress is not isolated by an Egress-only policy.
    assert!(table.allows(ip(OTHER), to(WEB), Protocol::Tcp));
    assert!(table.allows_lookup(ip(OTHER)));

    let all = policy(
        "shop",
        "deny",
        json!({"podSelector": {}, "policyTypes": ["Egress"]}),
    );
    let table = self::table(vec![all]);
    assert!(!table.allows_lookup(ip(CLIENT)));
}

#[test]
fn ip_blocks_with_exceptions() {
    let table = table(vec![policy(
        "shop",
        "block",
        json!({"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "192.0.2.0/24", "except": ["192.0.2.128/25"]}}]}]}),
    )]);
    assert!(table.allows(ip(CLIENT), to("192.0.2.1:443"), Protocol::Tcp));
    assert!(!table.allows(ip(CLIENT), to("192.0.2.200:443"), Protocol::Tcp));
    assert!(!table.allows(ip(CLIENT), to("198.51.100.1:443"), Protocol::Tcp));
    assert!(!table.allows(ip(CLIENT), to(WEB), Protocol::Tcp));
}

#[test]
fn policies_add_up_and_a_stopped_pod_is_no_ones() {
    let deny = policy("shop", "deny", json!({"podSelector": {}}));
    let allow = policy(
        "shop",
        "allow",
        json!({"podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"from": [{"namespaceSelector": {}}]}]}),
    );
    let table = table(vec![deny, allow]);
    assert!(table.allows(ip(OTHER), to(WEB), Protocol::Tcp));
    assert!(!table.allows(ip(OTHER), to("10.244.0.3:80"), Protocol::Tcp));
    // Once the client stops, its address matches no pod selector.
    table.stopped(ip(OTHER));
    assert!(!table.allows(ip(OTHER), to(WEB), Protocol::Tcp));
    // A pod started later is judged by its labels at once.
    table.started(ip(OTHER), &pod("late", "lab", json!({})));
    assert!(table.allows(ip(OTHER), to(WEB), Protocol::Tcp));
}

#[test]
fn blocks_parse_and_contain() {
    let block: Block = "10.0.0.1/8".parse().unwrap();
    assert!(block.contains(ip("10.255.0.1")));
    assert!(!block.contains(ip("11.0.0.1")));
    assert!(!block.contains(ip("::1")));
    assert!(
        "0.0.0.0/0"
            .parse::<Block>()
            .unwrap()
            .contains(ip("203.0.113.5"))
    );
    let v6: Block = "2001:db8::/32".parse().unwrap();
    assert!(v6.contains(ip("2001:db8:1::1")));
    assert!(v6.strictly_contains(&"2001:db8:1::/48".parse().unwrap()));
    assert!(!v6.strictly_contains(&"2001:db8::/32".parse().unwrap()));
    for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0.0/x", "x/8", "10.0.0.0/"] {
        assert!(bad.parse::<Block>().is_err(), "{bad}");
    }
}
