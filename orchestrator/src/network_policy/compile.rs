//! NetworkPolicies and pods as the table judges them: selectors parsed,
//! ports and CIDRs read once, when the table is rebuilt.

use std::net::IpAddr;

use serde_json::Value;
use wasmkube_runtime::net::Protocol;

use crate::registry::metadata::text;
use crate::registry::selectors::LabelSelector;

/// Who a pod is to policies: its namespace, its labels and its named
/// container ports.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Identity {
    pub namespace: String,
    /// `(key, value)` in key order: every pod on the node has one identity
    /// (two copies), and its labels as a JSON object were 2 KB of maps.
    pub labels: Vec<(String, String)>,
    /// `(name, protocol, number)` of each named container port.
    pub ports: Vec<(String, Protocol, u16)>,
}

impl Identity {
    pub fn of_pod(pod: &Value) -> Identity {
        let mut labels: Vec<(String, String)> = pod
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        labels.sort_unstable();
        let mut ports = Vec::new();
        for list in ["/spec/initContainers", "/spec/containers"] {
            let containers = pod.pointer(list).and_then(Value::as_array);
            for container in containers.into_iter().flatten() {
                let declared = container.get("ports").and_then(Value::as_array);
                for port in declared.into_iter().flatten() {
                    let name = text(port, "/name");
                    let number = port.get("containerPort").and_then(Value::as_u64);
                    let protocol = protocol_of(port);
                    if let (false, Some(number), Some(protocol)) =
                        (name.is_empty(), number, protocol)
                    {
                        ports.push((name.to_string(), protocol, number as u16));
                    }
                }
            }
        }
        Identity {
            namespace: text(pod, "/metadata/namespace").to_string(),
            labels,
            ports,
        }
    }

    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        let at = self
            .labels
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()?;
        Some(&self.labels[at].1)
    }

    /// Whether `selector` selects the pod.
    pub fn selected_by(&self, selector: &LabelSelector) -> bool {
        selector.matches_labels(|key| self.label(key))
    }
}

/// A port's protocol; `None` for one the pod network does not carry
/// (SCTP), which nothing matches.
fn protocol_of(port: &Value) -> Option<Protocol> {
    match port
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("TCP")
    {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        _ => None,
    }
}

/// One NetworkPolicy.
#[derive(Debug)]
pub(super) struct Policy {
    pub namespace: String,
    /// The pods it applies to, in its namespace.
    pub selector: LabelSelector,
    /// Whether it isolates its pods for ingress (egress).
    pub ingress_isolates: bool,
    pub egress_isolates: bool,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
}

/// One ingress or egress rule: traffic with any of its peers (any peer
/// when none are listed) on any of its ports (any port when none are).
#[derive(Debug)]
pub(super) struct Rule {
    pub peers: Vec<Peer>,
    pub ports: Vec<PortMatch>,
}

#[derive(Debug)]
pub(super) enum Peer {
    /// Pods: in the policy's `namespace` unless `namespaces` selects
    /// others, all of them unless `pods` selects some. Which pods those are
    /// is kept in the table's member set `slot`.
    Pods {
        slot: usize,
        namespace: String,
        namespaces: Option<LabelSelector>,
        pods: Option<LabelSelector>,
    },
    /// Addresses in a CIDR, but not in its exceptions.
    Block(BlockPeer),
}

#[derive(Debug)]
pub(super) struct BlockPeer {
    cidr: Block,
    except: Vec<Block>,
}

impl BlockPeer {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.cidr.contains(ip) && !self.except.iter().any(|e| e.contains(ip))
    }
}

#[derive(Debug)]
pub(super) struct PortMatch {
    /// `None`: a protocol nothing here carries.
    pub protocol: Option<Protocol>,
    pub port: PortSpec,
}

#[derive(Debug)]
pub(super) enum PortSpec {
    Any,
    /// `port` to `endPort`, inclusive.
    Range(u16, u16),
    /// A named port of the destination pod.
    Named(String),
}

impl Policy {
    /// The policy `object` says; `None` when its pod selector does not
    /// parse (validation refuses such policies). Its pod peers take member
    /// sets from `slots` on.
    pub fn compile(object: &Value, slots: &mut usize) -> Option<Policy> {
        let namespace = text(object, "/metadata/namespace").to_string();
        let spec = object.get("spec").unwrap_or(&Value::Null);
        let selector =
            LabelSelector::from_object(spec.get("podSelector").filter(|v| !v.is_null())).ok()?;
        let types: Vec<&str> = spec
            .get("policyTypes")
            .and_then(Value::as_array)
            .map(|t| t.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut rules = |direction: &str, peers: &str| -> Vec<Rule> {
            let list = spec.get(direction).and_then(Value::as_array);
            list.into_iter()
                .flatten()
                .map(|rule| Rule::compile(rule, peers, &namespace, slots))
                .collect()
        };
        let ingress = rules("ingress", "from");
        let egress = rules("egress", "to");
        Some(Policy {
            ingress_isolates: types.contains(&"Ingress"),
            egress_isolates: types.contains(&"Egress"),
            ingress,
            egress,
            selector,
            namespace,
        })
    }
}

impl Rule {
    fn compile(rule: &Value, peers: &str, namespace: &str, slots: &mut usize) -> Rule {
        let listed = rule.get(peers).and_then(Value::as_array);
        let peers = listed
            .into_iter()
            .flatten()
            .map(|peer| Peer::compile(peer, namespace, slots))
            .collect();
        let ports = rule.get("ports").and_then(Value::as_array);
        let ports = ports
            .into_iter()
            .flatten()
            .map(|port| PortMatch {
                protocol: protocol_of(port),
                port: match port.get("port") {
                    Some(Value::Number(n)) => {
                        let first = n.as_u64().unwrap_or(0) as u16;
                        let last = port
                            .get("endPort")
                            .and_then(Value::as_u64)
                            .map_or(first, |e| e as u16);
                        PortSpec::Range(first, last)
                    }
                    Some(Value::String(name)) => PortSpec::Named(name.clone()),
                    _ => PortSpec::Any,
                },
            })
            .collect();
        Rule { peers, ports }
    }
}

/// A selector of a peer; one that does not parse selects nothing.
fn peer_selector(value: Option<&Value>) -> Option<Option<LabelSelector>> {
    match value.filter(|v| !v.is_null()) {
        None => Some(None),
        Some(selector) => LabelSelector::from_object(Some(selector)).ok().map(Some),
    }
}

impl Peer {
    fn compile(peer: &Value, namespace: &str, slots: &mut usize) -> Peer {
        // What validation refuses matches nothing: an empty CIDR block.
        let nothing = || {
            Peer::Block(BlockPeer {
                cidr: Block::NOTHING,
                except: Vec::new(),
            })
        };
        if let Some(block) = peer.get("ipBlock").filter(|b| !b.is_null()) {
            let Ok(cidr) = text(block, "/cidr").parse::<Block>() else {
                return nothing();
            };
            let except = block.get("except").and_then(Value::as_array);
            let except = except
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str()?.parse().ok())
                .collect();
            return Peer::Block(BlockPeer { cidr, except });
        }
        let (Some(namespaces), Some(pods)) = (
            peer_selector(peer.get("namespaceSelector")),
            peer_selector(peer.get("podSelector")),
        ) else {
            return nothing();
        };
        *slots += 1;
        Peer::Pods {
            slot: *slots - 1,
            namespace: namespace.to_string(),
            namespaces,
            pods,
        }
    }

    /// Whether a pod of `identity`, in a namespace labelled
    /// `namespace_labels`, is among these pods.
    pub fn selects(&self, identity: &Identity, namespace_labels: Option<&Value>) -> bool {
        let Peer::Pods {
            namespace,
            namespaces,
            pods,
            ..
        } = self
        else {
            return false;
        };
        let namespace_ok = match namespaces {
            None => identity.namespace == *namespace,
            Some(selector) => namespace_labels.is_some_and(|labels| selector.matches(labels)),
        };
        namespace_ok && pods.as_ref().is_none_or(|s| identity.selected_by(s))
    }
}

/// An IPv4 or IPv6 CIDR (`10.0.0.0/8`, `2001:db8::/64`); host bits after
/// the prefix are ignored, as Kubernetes' legacy parsing does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    network: IpAddr,
    prefix: u8,
    /// Set only on [`Block::NOTHING`].
    empty: bool,
}

impl Block {
    /// A block no address is in.
    const NOTHING: Block = Block {
        network: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        prefix: 0,
        empty: true,
    };

    /// The address's bits under a `prefix`-bit mask, as a 128-bit number
    /// (IPv4 in the low 32 bits), and the family's width.
    fn bits(ip: IpAddr) -> (u128, u8) {
        match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        }
    }

    fn masked(ip: IpAddr, prefix: u8) -> u128 {
        let (bits, width) = Block::bits(ip);
        let host = u32::from(width - prefix);
        if host >= 128 { 0 } else { bits >> host << host }
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        !self.empty
            && ip.is_ipv4() == self.network.is_ipv4()
            && Block::masked(ip, self.prefix) == Block::masked(self.network, self.prefix)
    }

    /// Whether `inner` is inside and smaller.
    pub fn strictly_contains(&self, inner: &Block) -> bool {
        inner.prefix > self.prefix && self.contains(inner.network)
    }
}

impl std::str::FromStr for Block {
    type Err = ();

    fn from_str(text: &str) -> Result<Block, ()> {
        let (address, prefix) = text.split_once('/').ok_or(())?;
        let network: IpAddr = address.parse().map_err(|_| ())?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        let prefix: u8 = prefix.parse().map_err(|_| ())?;
        if prefix > Block::bits(network).1 {
            return Err(());
        }
        Ok(Block {
            network,
            prefix,
            empty: false,
        })
    }
}
