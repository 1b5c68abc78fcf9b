//! Pods: defaults, validation (including what an update may change) and
//! the status a new pod starts with.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::name_of;
use crate::admission::{FieldError, Invalid};
use crate::registry::resources::{
    ALL_VERBS, Hooks, Resource, Subresource, Typed, allocate_nothing,
};

pub(super) fn resource() -> Resource {
    Resource {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        verbs: ALL_VERBS,
        subresources: &[
            Subresource {
                name: "status",
                kind: "Pod",
                group_version: None,
                verbs: &["get", "patch", "update"],
            },
            Subresource {
                name: "log",
                kind: "Pod",
                group_version: None,
                verbs: &["get"],
            },
            Subresource {
                name: "exec",
                kind: "PodExecOptions",
                group_version: None,
                verbs: &["create", "get"],
            },
            Subresource {
                name: "ephemeralcontainers",
                kind: "Pod",
                group_version: None,
                verbs: &["get", "patch", "update"],
            },
            Subresource {
                name: "attach",
                kind: "PodAttachOptions",
                group_version: None,
                verbs: &["create", "get"],
            },
            Subresource {
                name: "portforward",
                kind: "PodPortForwardOptions",
                group_version: None,
                verbs: &["create", "get"],
            },
            Subresource {
                name: "eviction",
                kind: "Eviction",
                group_version: Some(("policy", "v1")),
                verbs: &["create"],
            },
        ],
        status_subresource: true,
        field_selectors: &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        schema: "io.k8s.api.core.v1.Pod",
        returns_deleted: true,
        custom: None,
        hooks: Hooks {
            defaults,
            initial_status: |pod| {
                let qos = qos_class(pod);
                pod["status"] = json!({"phase": "Pending", "qosClass": qos});
            },
            validate,
            typed: Typed::of::<Pod>(),
            allocate: allocate_nothing,
            admit,
        },
    }
}

/// The pod admission steps, as the API server's plugins: tolerations of
/// not-ready and unreachable nodes, the ServiceAccount, then the priority.
fn admit(
    registry: &crate::registry::Registry,
    pod: &mut Value,
    old: Option<&Value>,
) -> crate::registry::Result<()> {
    default_tolerations(pod);
    match old {
        None => {
            registry.admit_limit_ranges(pod)?;
            registry.admit_service_account(pod)?;
        }
        // The ServiceAccount's names may not change: an update leaving
        // them out keeps them.
        Some(old) => {
            crate::registry::priority::keep_spec_fields(
                pod,
                old,
                &["serviceAccountName", "serviceAccount"],
            );
            crate::registry::service_accounts::keep_credentials(pod, old);
        }
    }
    crate::registry::priority::admit_pod(registry, pod, old)
}

/// Kubernetes' DefaultTolerationSeconds: a pod that does not tolerate
/// not-ready or unreachable nodes tolerates each for 300 seconds.
fn default_tolerations(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(tolerations) = spec
        .entry("tolerations")
        .or_insert_with(|| json!([]))
        .as_array_mut()
    else {
        return;
    };
    for taint in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerated = tolerations.iter().any(|t| {
            let field = |name: &str| t.get(name).and_then(Value::as_str).unwrap_or("");
            (field("key") == taint || (field("key").is_empty() && field("operator") == "Exists"))
                && matches!(field("effect"), "" | "NoExecute")
        });
        if !tolerated {
            tolerations.push(json!({
                "key": taint,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }));
        }
    }
}

/// Sets `field` unless it has a value. An empty string counts as unset:
/// string fields are plain Go strings in Kubernetes, and protobuf clients
/// (`kubectl create deployment`) send them empty.
pub(super) fn set_default(object: &mut serde_json::Map<String, Value>, field: &str, value: Value) {
    let unset = match object.get(field) {
        None | Some(Value::Null) => true,
        Some(Value::String(text)) => text.is_empty(),
        Some(_) => false,
    };
    if unset {
        object.insert(field.to_string(), value);
    }
}

/// Kubernetes' pod defaults, the ones a user sees in `get -o yaml`.
pub(super) fn defaults(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "enableServiceLinks", json!(true));
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        for volume in volumes.iter_mut().filter_map(Value::as_object_mut) {
            volume_defaults(volume);
        }
    }
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            let image = container.get("image").and_then(Value::as_str).unwrap_or("");
            let pull = if image_tag_is_latest(image) {
                "Always"
            } else {
                "IfNotPresent"
            };
            set_default(container, "imagePullPolicy", json!(pull));
            set_default(
                container,
                "terminationMessagePath",
                json!("/dev/termination-log"),
            );
            set_default(container, "terminationMessagePolicy", json!("File"));
            set_default(container, "resources", json!({}));
            for env in container
                .get_mut("env")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(field_ref) = env
                    .pointer_mut("/valueFrom/fieldRef")
                    .and_then(Value::as_object_mut)
                {
                    set_default(field_ref, "apiVersion", json!("v1"));
                }
            }
            for kind in ["livenessProbe", "readinessProbe", "startupProbe"] {
                if let Some(probe) = container.get_mut(kind).and_then(Value::as_object_mut) {
                    probe_defaults(probe);
                }
            }
            if let Some(ports) = container.get_mut("ports").and_then(Value::as_array_mut) {
                for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                    set_default(port, "protocol", json!("TCP"));
                }
            }
            // Requests default to limits, as Kubernetes does.
            if let Some(resources) = container
                .get_mut("resources")
                .and_then(Value::as_object_mut)
                && let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned()
            {
                let requests = resources
                    .entry("requests")
                    .or_insert_with(|| json!({}))
                    .as_object_mut();
                if let Some(requests) = requests {
                    for (name, quantity) in limits {
                        requests.entry(name).or_insert(quantity);
                    }
                }
            }
        }
    }
}

/// Kubernetes' volume defaults: a volume naming no source is an
/// `emptyDir`; file modes of projected files default to 0644; a downward
/// API `fieldRef` to `v1`; a hostPath's type to "".
fn volume_defaults(volume: &mut serde_json::Map<String, Value>) {
    const SOURCES: &[&str] = &[
        "hostPath",
        "emptyDir",
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "gitRepo",
        "secret",
        "nfs",
        "iscsi",
        "glusterfs",
        "persistentVolumeClaim",
        "rbd",
        "flexVolume",
        "cinder",
        "cephfs",
        "flocker",
        "downwardAPI",
        "fc",
        "azureFile",
        "configMap",
        "vsphereVolume",
        "quobyte",
        "azureDisk",
        "photonPersistentDisk",
        "projected",
        "portworxVolume",
        "scaleIO",
        "storageos",
        "csi",
        "ephemeral",
        "image",
    ];
    if !SOURCES
        .iter()
        .any(|s| volume.get(*s).is_some_and(|v| !v.is_null()))
    {
        volume.insert("emptyDir".into(), json!({}));
    }
    for source in ["configMap", "secret", "downwardAPI", "projected"] {
        if let Some(source) = volume.get_mut(source).and_then(Value::as_object_mut) {
            set_default(source, "defaultMode", json!(0o644));
        }
    }
    if let Some(host_path) = volume.get_mut("hostPath").and_then(Value::as_object_mut) {
        set_default(host_path, "type", json!(""));
    }
    if let Some(items) = volume
        .get_mut("downwardAPI")
        .and_then(|d| d.get_mut("items"))
    {
        field_ref_defaults(items);
    }
    let projected = volume
        .get_mut("projected")
        .and_then(|p| p.get_mut("sources"))
        .and_then(Value::as_array_mut);
    for source in projected.into_iter().flatten() {
        if let Some(items) = source.pointer_mut("/downwardAPI/items") {
            field_ref_defaults(items);
        }
    }
}

/// A downward API item list's `fieldRef`s default to `v1`.
fn field_ref_defaults(items: &mut Value) {
    for item in items.as_array_mut().into_iter().flatten() {
        if let Some(field_ref) = item.get_mut("fieldRef").and_then(Value::as_object_mut) {
            set_default(field_ref, "apiVersion", json!("v1"));
        }
    }
}

/// Kubernetes' probe defaults, as `describe` shows them (`timeout=1s
/// period=10s #success=1 #failure=3`).
fn probe_defaults(probe: &mut serde_json::Map<String, Value>) {
    set_default(probe, "timeoutSeconds", json!(1));
    set_default(probe, "periodSeconds", json!(10));
    set_default(probe, "successThreshold", json!(1));
    set_default(probe, "failureThreshold", json!(3));
    if let Some(get) = probe.get_mut("httpGet").and_then(Value::as_object_mut) {
        set_default(get, "scheme", json!("HTTP"));
    }
}

/// `image` has no tag, or the tag `latest` (and no digest).
fn image_tag_is_latest(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

/// The pod's quality-of-service class, from its containers' resources.
pub fn qos_class(pod: &Value) -> &'static str {
    let empty = Vec::new();
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut any = false;
    let mut guaranteed = true;
    for container in containers {
        let requests = container.pointer("/resources/requests");
        let limits = container.pointer("/resources/limits");
        let has = |v: Option<&Value>| v.and_then(Value::as_object).is_some_and(|m| !m.is_empty());
        any |= has(requests) || has(limits);
        for resource in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(resource));
            let request = requests.and_then(|r| r.get(resource)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn validate(pod: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    use serde::Deserialize;
    let typed = Pod::deserialize(pod).map_err(|e| Invalid {
        kind: "Pod".into(),
        name: name_of(pod).into(),
        errors: vec![FieldError {
            field: "spec".into(),
            message: e.to_string(),
        }],
    })?;
    crate::admission::pod::validate(&typed)?;
    match old {
        Some(old) => validate_update(pod, old)?,
        None if pod
            .pointer("/spec/ephemeralContainers")
            .and_then(Value::as_array)
            .is_some_and(|l| !l.is_empty()) =>
        {
            return Err(invalid_field(
                pod,
                "spec.ephemeralContainers",
                "Forbidden: cannot be set on create",
            ));
        }
        None => {}
    }
    Ok(())
}

fn invalid_field(pod: &Value, field: &str, message: &str) -> Invalid {
    Invalid {
        kind: "Pod".into(),
        name: name_of(pod).into(),
        errors: vec![FieldError {
            field: field.into(),
            message: message.into(),
        }],
    }
}

/// Fields an ephemeral container may not set: it gets no ports, probes,
/// resources or lifecycle, and is never restarted.
const EPHEMERAL_FORBIDDEN: &[&str] = &[
    "ports",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "resources",
    "resizePolicy",
    "restartPolicy",
];

/// Ephemeral containers are only added (through the subresource, which
/// keeps the rest of the spec): those there stay as they are, new ones
/// carry a unique name, an image and a target that exists.
fn validate_ephemeral(pod: &Value, old: &Value) -> Result<(), Invalid> {
    let list = |p: &Value| {
        p.pointer("/spec/ephemeralContainers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (now, before) = (list(pod), list(old));
    for (i, existing) in before.iter().enumerate() {
        if now.get(i) != Some(existing) {
            return Err(invalid_field(
                pod,
                &format!("spec.ephemeralContainers[{i}]"),
                "Forbidden: existing ephemeral containers may not be changed or removed",
            ));
        }
    }
    let names: Vec<&str> = ["containers", "initContainers"]
        .iter()
        .filter_map(|l| pod["spec"][l].as_array())
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for (i, added) in now.iter().enumerate().skip(before.len()) {
        let field = format!("spec.ephemeralContainers[{i}]");
        let name = added["name"].as_str().unwrap_or_default();
        let taken =
            names.contains(&name) || now[..i].iter().any(|c| c["name"].as_str() == Some(name));
        if taken {
            return Err(invalid_field(
                pod,
                &format!("{field}.name"),
                &format!("Duplicate value: {name:?}"),
            ));
        }
        if added["image"].as_str().unwrap_or_default().is_empty() {
            return Err(invalid_field(
                pod,
                &format!("{field}.image"),
                "Required value",
            ));
        }
        let set = |field: &str| match added.get(field) {
            None | Some(Value::Null) => false,
            Some(Value::Object(o)) => !o.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        if let Some(forbidden) = EPHEMERAL_FORBIDDEN.iter().find(|f| set(f)) {
            return Err(invalid_field(
                pod,
                &format!("{field}.{forbidden}"),
                "Forbidden: cannot be set for an Ephemeral Container",
            ));
        }
        if let Some(target) = added["targetContainerName"].as_str()
            && !names.contains(&target)
        {
            return Err(invalid_field(
                pod,
                &format!("{field}.targetContainerName"),
                &format!("Not found: {target:?}"),
            ));
        }
    }
    Ok(())
}

const UPDATE_FORBIDDEN: &str = "Forbidden: pod updates may not change fields other than \
`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,\
`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` \
(allow it to be set to 1 if it was previously negative)";

/// A pod's spec is immutable but for images, the deadline and additions to
/// tolerations.
fn validate_update(pod: &Value, old: &Value) -> Result<(), Invalid> {
    let mutable_cleared = |pod: &Value| {
        let mut spec = pod.get("spec").cloned().unwrap_or(Value::Null);
        for list in ["containers", "initContainers"] {
            if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for container in containers.iter_mut().filter_map(Value::as_object_mut) {
                    container.remove("image");
                }
            }
        }
        if let Some(spec) = spec.as_object_mut() {
            spec.remove("activeDeadlineSeconds");
            spec.remove("tolerations");
            // Changed only through `pods/ephemeralcontainers`, checked below.
            spec.remove("ephemeralContainers");
        }
        spec
    };
    if mutable_cleared(pod) != mutable_cleared(old) {
        return Err(Invalid {
            kind: "Pod".into(),
            name: name_of(pod).into(),
            errors: vec![FieldError {
                field: "spec".into(),
                message: UPDATE_FORBIDDEN.into(),
            }],
        });
    }
    validate_ephemeral(pod, old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_classes() {
        let pod = |resources: Value| json!({"spec": {"containers": [{"name": "c", "resources": resources}]}});
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&pod(json!({"requests": {"cpu": "1"}}))),
            "Burstable"
        );
    }

    #[test]
    fn defaults_follow_kubernetes() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "a", "image": "toolbox", "ports": [{"containerPort": 80}], "resources": {"limits": {"cpu": "1"}}},
            {"name": "b", "image": "echo-hostname:1.0.1"}
        ]}});
        defaults(&mut pod);
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            pod["spec"]["containers"][1]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(
            pod["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "1"
        );
    }

    #[test]
    fn new_pods_tolerate_unready_and_unreachable_nodes_for_five_minutes() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "toolbox"}],
            "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}]}});
        default_tolerations(&mut pod);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists"},
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
        // Tolerating everything tolerates both.
        let mut pod = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        default_tolerations(&mut pod);
        assert_eq!(pod["spec"]["tolerations"], json!([{"operator": "Exists"}]));
    }

    #[test]
    fn volume_and_field_ref_defaults() {
        let mut pod = json!({"spec": {
            "containers": [{"name": "a", "image": "toolbox",
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}],
            "volumes": [
                {"name": "scratch"},
                {"name": "cfg", "configMap": {"name": "c"}},
                {"name": "info", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                {"name": "host", "hostPath": {"path": "/tmp"}}
            ]
        }});
        defaults(&mut pod);
        let volumes = &pod["spec"]["volumes"];
        assert_eq!(volumes[0], json!({"name": "scratch", "emptyDir": {}}));
        assert_eq!(volumes[1]["configMap"]["defaultMode"], 420);
        assert_eq!(
            volumes[2]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"],
            "v1"
        );
        assert_eq!(volumes[3]["hostPath"]["type"], "");
        assert_eq!(
            pod["spec"]["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["apiVersion"],
            "v1"
        );
    }

    #[test]
    fn updates_may_change_images_only() {
        let pod = |image: &str, cmd: &str| json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": image, "command": [cmd]}]}});
        assert!(validate_update(&pod("b", "x"), &pod("a", "x")).is_ok());
        let err = validate_update(&pod("a", "y"), &pod("a", "x")).unwrap_err();
        assert!(
            err.to_string()
                .contains("pod updates may not change fields"),
            "{err}"
        );
    }
}
