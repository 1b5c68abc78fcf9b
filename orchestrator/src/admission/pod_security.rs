//! Pod Security admission: a namespace's `pod-security.kubernetes.io/`
//! labels choose a level (`privileged`, `baseline`, `restricted`) to
//! enforce, warn about and audit; a pod is held to the Pod Security
//! Standards' checks at that level, and refused or warned about in the
//! API server's words (`violates PodSecurity "baseline:latest": hostPath
//! volumes (volume "data")`).
//!
//! The checks are those that concern what wasmkube runs: host namespaces,
//! hostPath volumes and restricted volume types, host ports, privileged
//! containers, capabilities, privilege escalation, running as root,
//! `/proc` mount types and seccomp profiles. AppArmor, SELinux, sysctls
//! and Windows host processes are not checked.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::registry::metadata::text;

/// The label prefix of the three modes.
const PREFIX: &str = "pod-security.kubernetes.io/";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(text: &str) -> Option<Level> {
        match text {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// The level and version one mode of a namespace asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub level: Level,
    pub version: String,
}

impl Policy {
    /// What `namespace`'s labels ask of `mode` (`enforce`, `warn` or
    /// `audit`); privileged when unlabelled.
    pub fn of(namespace: &Value, mode: &str) -> Policy {
        let label = |suffix: &str| {
            namespace
                .pointer("/metadata/labels")
                .and_then(|labels| labels.get(format!("{PREFIX}{suffix}")))
                .and_then(Value::as_str)
        };
        Policy {
            level: label(mode)
                .and_then(Level::parse)
                .unwrap_or(Level::Privileged),
            version: label(&format!("{mode}-version"))
                .unwrap_or("latest")
                .to_string(),
        }
    }

    /// `baseline:latest`, as messages name a policy.
    pub fn label(&self) -> String {
        format!("{}:{}", self.level.name(), self.version)
    }
}

/// Why a label value is not a level, in the API server's words.
pub fn check_labels(labels: Option<&Value>) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    for (key, value) in labels.and_then(Value::as_object).into_iter().flatten() {
        let Some(mode) = key.strip_prefix(PREFIX) else {
            continue;
        };
        let value = value.as_str().unwrap_or_default();
        let fine = match mode {
            "enforce" | "warn" | "audit" => Level::parse(value).is_some(),
            "enforce-version" | "warn-version" | "audit-version" => {
                value == "latest"
                    || value
                        .strip_prefix("v1.")
                        .is_some_and(|minor| minor.parse::<u32>().is_ok())
            }
            _ => true,
        };
        if !fine {
            let why = if mode.ends_with("-version") {
                "must be \"latest\" or \"v1.x\"".to_string()
            } else {
                "must be one of privileged, baseline, restricted".to_string()
            };
            errors.push((
                format!("metadata.labels[{key}]"),
                format!("Invalid value: {value:?}: {why}"),
            ));
        }
    }
    errors
}

/// The pod (metadata and spec) inside an object of `kind`: a pod itself,
/// or a workload's template.
pub fn pod_of<'a>(kind: &str, object: &'a Value) -> Option<&'a Value> {
    match kind {
        "Pod" => Some(object),
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => object.pointer("/spec/template"),
        "PodTemplate" => object.get("template"),
        "CronJob" => object.pointer("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// What `pod` does that `level` forbids, as (reason, detail) in the order
/// of the checks' ids.
pub fn violations(level: Level, pod: &Value) -> Vec<(String, String)> {
    if level == Level::Privileged {
        return Vec::new();
    }
    let restricted = level == Level::Restricted;
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let containers = containers(spec);
    let mut found = Vec::new();
    let mut check = |result: Option<(&str, String)>| {
        if let Some((reason, detail)) = result {
            found.push((reason.to_string(), detail));
        }
    };
    if restricted {
        check(allow_privilege_escalation(&containers));
        check(capabilities_restricted(&containers));
    } else {
        check(capabilities_baseline(&containers));
    }
    check(host_namespaces(spec));
    if !restricted {
        check(host_path_volumes(spec));
    }
    check(host_ports(&containers));
    check(privileged(&containers));
    check(proc_mount(&containers));
    if restricted {
        check(restricted_volumes(spec));
        check(run_as_non_root(spec, &containers));
        check(run_as_user(spec, &containers));
        check(seccomp_restricted(spec, &containers));
    } else {
        check(seccomp_baseline(spec, &containers));
    }
    found
}

/// The violations as a message lists them: `reason (detail), reason`.
pub fn detail(violations: &[(String, String)]) -> String {
    violations
        .iter()
        .map(|(reason, detail)| match detail.as_str() {
            "" => reason.clone(),
            detail => format!("{reason} ({detail})"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Init containers, containers and ephemeral containers, in that order.
fn containers(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|field| {
            spec.get(*field)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .collect()
}

fn pluralize<'a>(one: &'a str, many: &'a str, n: usize) -> &'a str {
    if n == 1 { one } else { many }
}

fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|item| format!("{:?}", item.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn names(containers: &[&Value]) -> Vec<String> {
    containers
        .iter()
        .map(|c| text(c, "/name").to_string())
        .collect()
}

/// `container "a"` or `containers "a", "b"`.
fn these(containers: &[String]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", containers.len()),
        join_quote(containers)
    )
}

fn context<'a>(container: &'a Value, field: &str) -> Option<&'a Value> {
    container
        .get("securityContext")
        .and_then(|c| c.get(field))
        .filter(|v| !v.is_null())
}

fn allow_privilege_escalation(containers: &[&Value]) -> Option<(&'static str, String)> {
    let bad: Vec<&Value> = containers
        .iter()
        .copied()
        .filter(|c| context(c, "allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false))
        .collect();
    (!bad.is_empty()).then(|| {
        (
            "allowPrivilegeEscalation != false",
            format!(
                "{} must set securityContext.allowPrivilegeEscalation=false",
                these(&names(&bad))
            ),
        )
    })
}

/// Capabilities a container adds (`securityContext.capabilities.add`).
fn added(container: &Value) -> Vec<String> {
    context(container, "capabilities")
        .and_then(|c| c.get("add"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

const DEFAULT_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn capabilities_baseline(containers: &[&Value]) -> Option<(&'static str, String)> {
    let mut bad = Vec::new();
    let mut extra = BTreeSet::new();
    for container in containers {
        let beyond: Vec<String> = added(container)
            .into_iter()
            .filter(|c| !DEFAULT_CAPABILITIES.contains(&c.as_str()))
            .collect();
        if !beyond.is_empty() {
            bad.push(text(container, "/name").to_string());
            extra.extend(beyond);
        }
    }
    (!bad.is_empty()).then(|| {
        let extra: Vec<String> = extra.into_iter().collect();
        (
            "non-default capabilities",
            format!(
                "{} must not include {} in securityContext.capabilities.add",
                these(&bad),
                join_quote(&extra)
            ),
        )
    })
}

fn capabilities_restricted(containers: &[&Value]) -> Option<(&'static str, String)> {
    let mut keep_all = Vec::new();
    let mut adding = Vec::new();
    let mut forbidden = BTreeSet::new();
    for container in containers {
        let name = text(container, "/name").to_string();
        let dropped_all = context(container, "capabilities")
            .and_then(|c| c.get("drop"))
            .and_then(Value::as_array)
            .is_some_and(|drop| drop.iter().any(|c| c.as_str() == Some("ALL")));
        if !dropped_all {
            keep_all.push(name.clone());
        }
        let beyond: Vec<String> = added(container)
            .into_iter()
            .filter(|c| c != "NET_BIND_SERVICE")
            .collect();
        if !beyond.is_empty() {
            adding.push(name);
            forbidden.extend(beyond);
        }
    }
    let mut details = Vec::new();
    if !keep_all.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            these(&keep_all)
        ));
    }
    if !adding.is_empty() {
        let forbidden: Vec<String> = forbidden.into_iter().collect();
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            these(&adding),
            join_quote(&forbidden)
        ));
    }
    (!details.is_empty()).then(|| ("unrestricted capabilities", details.join("; ")))
}

fn host_namespaces(spec: &Value) -> Option<(&'static str, String)> {
    let used: Vec<&str> = ["hostIPC", "hostNetwork", "hostPID"]
        .into_iter()
        .filter(|field| spec.get(*field).and_then(Value::as_bool) == Some(true))
        .collect();
    (!used.is_empty()).then(|| ("host namespaces", used.join(", ")))
}

fn volumes(spec: &Value) -> Vec<&Value> {
    spec.get("volumes")
        .and_then(Value::as_array)
        .map(|list| list.iter().collect())
        .unwrap_or_default()
}

fn host_path_volumes(spec: &Value) -> Option<(&'static str, String)> {
    let host: Vec<String> = volumes(spec)
        .into_iter()
        .filter(|v| v.get("hostPath").is_some_and(|h| !h.is_null()))
        .map(|v| text(v, "/name").to_string())
        .collect();
    (!host.is_empty()).then(|| {
        (
            "hostPath volumes",
            format!(
                "{} {}",
                pluralize("volume", "volumes", host.len()),
                join_quote(&host)
            ),
        )
    })
}

fn host_ports(containers: &[&Value]) -> Option<(&'static str, String)> {
    let mut bad = Vec::new();
    let mut ports = BTreeSet::new();
    for container in containers {
        let used: Vec<String> = container
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("hostPort").and_then(Value::as_i64))
            .filter(|port| *port != 0)
            .map(|port| port.to_string())
            .collect();
        if !used.is_empty() {
            bad.push(text(container, "/name").to_string());
            ports.extend(used);
        }
    }
    (!bad.is_empty()).then(|| {
        let ports: Vec<String> = ports.into_iter().collect();
        (
            "hostPort",
            format!(
                "{} {} {} {}",
                these(&bad),
                pluralize("uses", "use", bad.len()),
                pluralize("hostPort", "hostPorts", ports.len()),
                ports.join(", ")
            ),
        )
    })
}

fn privileged(containers: &[&Value]) -> Option<(&'static str, String)> {
    let bad: Vec<&Value> = containers
        .iter()
        .copied()
        .filter(|c| context(c, "privileged").and_then(Value::as_bool) == Some(true))
        .collect();
    (!bad.is_empty()).then(|| {
        (
            "privileged",
            format!(
                "{} must not set securityContext.privileged=true",
                these(&names(&bad))
            ),
        )
    })
}

fn proc_mount(containers: &[&Value]) -> Option<(&'static str, String)> {
    let mut bad = Vec::new();
    let mut kinds = BTreeSet::new();
    for container in containers {
        match context(container, "procMount").and_then(Value::as_str) {
            None | Some("Default") => {}
            Some(kind) => {
                bad.push(text(container, "/name").to_string());
                kinds.insert(kind.to_string());
            }
        }
    }
    (!bad.is_empty()).then(|| {
        let kinds: Vec<String> = kinds.into_iter().collect();
        (
            "procMount",
            format!(
                "{} must not set securityContext.procMount to {}",
                these(&bad),
                join_quote(&kinds)
            ),
        )
    })
}

/// The volume types restricted pods may use.
const ALLOWED_VOLUMES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn restricted_volumes(spec: &Value) -> Option<(&'static str, String)> {
    let mut bad = Vec::new();
    let mut kinds = BTreeSet::new();
    for volume in volumes(spec) {
        let Some(fields) = volume.as_object() else {
            continue;
        };
        let kind = fields
            .iter()
            .find(|(field, value)| *field != "name" && !value.is_null())
            .map(|(field, _)| field.as_str());
        match kind {
            Some(kind) if ALLOWED_VOLUMES.contains(&kind) => {}
            kind => {
                bad.push(text(volume, "/name").to_string());
                kinds.insert(kind.unwrap_or("unknown").to_string());
            }
        }
    }
    (!bad.is_empty()).then(|| {
        let kinds: Vec<String> = kinds.into_iter().collect();
        (
            "restricted volume types",
            format!(
                "{} {} {} {} {}",
                pluralize("volume", "volumes", bad.len()),
                join_quote(&bad),
                pluralize("uses", "use", bad.len()),
                pluralize(
                    "restricted volume type",
                    "restricted volume types",
                    kinds.len()
                ),
                join_quote(&kinds)
            ),
        )
    })
}

/// The setters (`pod`, `container "a"`) whose `field` is set to a value
/// `bad` rejects, and the containers that leave it to a pod that has not
/// set it well.
fn setters(
    spec: &Value,
    containers: &[&Value],
    field: &str,
    bad: impl Fn(&Value) -> bool,
) -> (Vec<String>, Vec<String>) {
    let pod_value = spec
        .get("securityContext")
        .and_then(|c| c.get(field))
        .filter(|v| !v.is_null());
    let mut setters = Vec::new();
    let pod_good = match pod_value {
        Some(value) if bad(value) => {
            setters.push("pod".to_string());
            false
        }
        Some(_) => true,
        None => false,
    };
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for container in containers {
        match context(container, field) {
            Some(value) if bad(value) => explicit.push(text(container, "/name").to_string()),
            Some(_) => {}
            None if !pod_good => implicit.push(text(container, "/name").to_string()),
            None => {}
        }
    }
    if !explicit.is_empty() {
        setters.push(these(&explicit));
    }
    (setters, implicit)
}

fn run_as_non_root(spec: &Value, containers: &[&Value]) -> Option<(&'static str, String)> {
    let (setters, implicit) = setters(spec, containers, "runAsNonRoot", |v| {
        v.as_bool() != Some(true)
    });
    if !setters.is_empty() {
        return Some((
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        ));
    }
    (!implicit.is_empty()).then(|| {
        (
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                these(&implicit)
            ),
        )
    })
}

fn run_as_user(spec: &Value, containers: &[&Value]) -> Option<(&'static str, String)> {
    let (setters, _) = setters(spec, containers, "runAsUser", |v| v.as_i64() == Some(0));
    (!setters.is_empty()).then(|| {
        (
            "runAsUser=0",
            format!("{} must not set runAsUser=0", setters.join(" and ")),
        )
    })
}

fn seccomp_type(profile: &Value) -> &str {
    profile.get("type").and_then(Value::as_str).unwrap_or("")
}

fn seccomp_restricted(spec: &Value, containers: &[&Value]) -> Option<(&'static str, String)> {
    let valid = |profile: &Value| matches!(seccomp_type(profile), "RuntimeDefault" | "Localhost");
    let (setters, implicit) = setters(spec, containers, "seccompProfile", |p| !valid(p));
    if !setters.is_empty() {
        let mut kinds: Vec<String> = std::iter::once(spec)
            .filter_map(|s| s.pointer("/securityContext/seccompProfile"))
            .chain(
                containers
                    .iter()
                    .filter_map(|c| context(c, "seccompProfile")),
            )
            .filter(|p| !valid(p))
            .map(|p| seccomp_type(p).to_string())
            .collect();
        kinds.sort();
        kinds.dedup();
        return Some((
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                join_quote(&kinds)
            ),
        ));
    }
    (!implicit.is_empty()).then(|| {
        (
            "seccompProfile",
            format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                these(&implicit)
            ),
        )
    })
}

fn seccomp_baseline(spec: &Value, containers: &[&Value]) -> Option<(&'static str, String)> {
    let (setters, _) = setters(spec, containers, "seccompProfile", |p| {
        seccomp_type(p) == "Unconfined"
    });
    (!setters.is_empty()).then(|| {
        (
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to \"Unconfined\"",
                setters.join(" and ")
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_plain_pod_is_baseline_but_not_restricted() {
        let pod = json!({"spec": {"containers": [{"name": "nginx", "image": "x"}]}});
        assert!(violations(Level::Baseline, &pod).is_empty());
        assert_eq!(
            detail(&violations(Level::Restricted, &pod)),
            "allowPrivilegeEscalation != false (container \"nginx\" must set securityContext.allowPrivilegeEscalation=false), \
             unrestricted capabilities (container \"nginx\" must set securityContext.capabilities.drop=[\"ALL\"]), \
             runAsNonRoot != true (pod or container \"nginx\" must set securityContext.runAsNonRoot=true), \
             seccompProfile (pod or container \"nginx\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
    }

    #[test]
    fn the_host_is_baseline_forbidden() {
        let pod = json!({"spec": {
            "hostNetwork": true,
            "volumes": [{"name": "data", "hostPath": {"path": "/srv"}}],
            "containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}],
                "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}}}]}});
        assert_eq!(
            detail(&violations(Level::Baseline, &pod)),
            "non-default capabilities (container \"a\" must not include \"NET_ADMIN\" in securityContext.capabilities.add), \
             host namespaces (hostNetwork), hostPath volumes (volume \"data\"), \
             hostPort (container \"a\" uses hostPort 8080), \
             privileged (container \"a\" must not set securityContext.privileged=true)"
        );
        let restricted = detail(&violations(Level::Restricted, &pod));
        assert!(
            restricted.contains(
                "restricted volume types (volume \"data\" uses restricted volume type \"hostPath\")"
            ),
            "{restricted}"
        );
        assert!(!restricted.contains("hostPath volumes"), "{restricted}");
    }

    #[test]
    fn a_hardened_pod_is_restricted() {
        let pod = json!({"spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "cfg", "configMap": {"name": "c"}}],
            "containers": [{"name": "a", "securityContext": {"allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]}});
        assert!(violations(Level::Restricted, &pod).is_empty());
        let mut root = pod.clone();
        root["spec"]["containers"][0]["securityContext"]["runAsUser"] = json!(0);
        assert_eq!(
            detail(&violations(Level::Restricted, &root)),
            "runAsUser=0 (container \"a\" must not set runAsUser=0)"
        );
    }

    #[test]
    fn namespaces_name_their_policies() {
        let ns = json!({"metadata": {"labels": {
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/warn-version": "v1.33"}}});
        assert_eq!(Policy::of(&ns, "enforce").label(), "baseline:latest");
        assert_eq!(Policy::of(&ns, "warn").label(), "restricted:v1.33");
        assert_eq!(Policy::of(&ns, "audit").level, Level::Privileged);
        assert_eq!(
            check_labels(Some(
                &json!({"pod-security.kubernetes.io/enforce": "strict"})
            )),
            [(
                "metadata.labels[pod-security.kubernetes.io/enforce]".to_string(),
                "Invalid value: \"strict\": must be one of privileged, baseline, restricted"
                    .to_string()
            )]
        );
    }
}
