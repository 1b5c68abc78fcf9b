//! The built-in kinds: their descriptors and hooks.

mod access;
mod apps;
pub mod autoscaling;
mod batch;
mod config;
pub mod metrics;
mod network;
mod network_policy;
mod pod;
mod policy;
mod quota;
mod rbac;
mod reviews;
mod scheduling;
mod service;
mod sets;
mod storage;

use k8s_openapi::api::core::v1::{Event, Namespace, Node};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::resources::{
    ALL_VERBS, Alias, Conversion, Hooks, Resource, Subresource, Typed, admit_nothing,
    allocate_nothing,
};
use crate::admission::{Errors, Invalid, check_dns_label, check_dns_subdomain};

pub use access::DEFAULT_SERVICE_ACCOUNT;
pub use apps::scaled_value;
pub use batch::{COMPLETION_INDEX, CONTROLLER_UID, JOB_NAME};
pub use config::is_config_key;
pub use pod::qos_class;
pub use rbac::GROUP as RBAC_GROUP;
pub use reviews::{AUTHENTICATION, AUTHORIZATION};
pub use scheduling::{HIGHEST_USER_PRIORITY, SYSTEM_PRIORITY_CLASSES};
pub use storage::{PV_PROTECTION, PVC_PROTECTION, is_default_class};

pub(crate) fn all() -> Vec<Resource> {
    let mut all = vec![
        namespaces(),
        pod::resource(),
        nodes(),
        events(),
        config::config_maps(),
        config::secrets(),
        access::service_accounts(),
        reviews::token_reviews(),
        reviews::self_subject_reviews(),
        storage::persistent_volumes(),
        storage::persistent_volume_claims(),
        storage::storage_classes(),
        service::services(),
        service::endpoints(),
        service::endpoint_slices(),
        apps::deployments(),
        apps::replica_sets(),
        apps::replication_controllers(),
        sets::daemon_sets(),
        sets::stateful_sets(),
        sets::controller_revisions(),
        scheduling::pod_templates(),
        scheduling::priority_classes(),
        scheduling::leases(),
        policy::pod_disruption_budgets(),
        quota::resource_quotas(),
        quota::limit_ranges(),
        network::ingresses(),
        network::ingress_classes(),
        network_policy::network_policies(),
        rbac::roles(),
        rbac::cluster_roles(),
        rbac::role_bindings(),
        rbac::cluster_role_bindings(),
        batch::jobs(),
        batch::cron_jobs(),
        autoscaling::horizontal_pod_autoscalers(),
        metrics::pod_metrics(),
        metrics::node_metrics(),
        crate::custom::definition::resource(),
    ];
    all.extend(reviews::subject_access_reviews());
    all
}

/// Old group versions still served, as the guide's manifests use them.
pub(crate) fn aliases() -> Vec<Alias> {
    let deployment = |group, version, warning| Alias {
        group,
        version,
        kind: "Deployment",
        current_group: "apps",
        warning,
        conversion: None,
    };
    let cron_job = Alias {
        group: "batch",
        version: "v1beta1",
        kind: "CronJob",
        current_group: "batch",
        warning: "batch/v1beta1 CronJob is deprecated in v1.21+, unavailable in v1.25+; use batch/v1 CronJob",
        conversion: None,
    };
    let hpa_v1 = Alias {
        group: autoscaling::GROUP,
        version: "v1",
        kind: "HorizontalPodAutoscaler",
        current_group: autoscaling::GROUP,
        warning: "",
        conversion: Some(Conversion {
            to_current: autoscaling::to_v2,
            from_current: autoscaling::to_v1,
        }),
    };
    vec![
        cron_job,
        hpa_v1,
        reviews::self_subject_review_beta(),
        deployment(
            "apps",
            "v1beta2",
            "apps/v1beta2 Deployment is deprecated in v1.9+, unavailable in v1.16+; use apps/v1 Deployment",
        ),
        deployment(
            "apps",
            "v1beta1",
            "apps/v1beta1 Deployment is deprecated in v1.9+, unavailable in v1.16+; use apps/v1 Deployment",
        ),
        deployment(
            "extensions",
            "v1beta1",
            "extensions/v1beta1 Deployment is deprecated in v1.9+, unavailable in v1.16+; use apps/v1 Deployment",
        ),
    ]
}

/// Each field error of a validation, as `field: message` (for tests).
#[cfg(test)]
fn messages(result: Result<(), Invalid>) -> Vec<String> {
    result
        .err()
        .map(|i| i.errors.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}

/// The one `status` subresource of a kind.
pub(crate) const fn status(kind: &'static str) -> [Subresource; 1] {
    [Subresource {
        name: "status",
        kind,
        group_version: None,
        verbs: &["get", "patch", "update"],
    }]
}

/// Hooks that accept anything the typed decode accepts.
pub(crate) fn plain_hooks<T: DeserializeOwned + crate::schema::Described>() -> Hooks {
    Hooks {
        defaults: |_| {},
        initial_status: |_| {},
        validate: validate_metadata,
        typed: Typed::of::<T>(),
        allocate: allocate_nothing,
        admit: admit_nothing,
    }
}

/// Decodes `value` as `T`; a type error (with its field path) is `Err`,
/// unknown fields are listed in `Ok`.
pub(crate) fn decode<T: DeserializeOwned>(value: &Value) -> Result<Vec<String>, String> {
    let mut unknown = Vec::new();
    let mut track = |path: serde_ignored::Path<'_>| unknown.push(field_path(&path));
    // One tracker type for every `T`: the decoding of a type reached from
    // many kinds (a PodSpec from nine) is then compiled once, not once per
    // kind (a closure in a generic function is a new type for each `T`).
    let mut track: &mut dyn FnMut(serde_ignored::Path<'_>) = &mut track;
    let ignored = serde_ignored::Deserializer::new(value, &mut track);
    if T::deserialize(ignored).is_ok() {
        return Ok(unknown);
    }
    // Only a failed decode pays for tracking the path, to name the field.
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(_) => Ok(unknown),
        Err(e) => {
            let path = e.path().to_string();
            let path = path.replace(".[", "[");
            Err(format!(
                "{}: {}",
                path.trim_start_matches('.'),
                e.into_inner()
            ))
        }
    }
}

/// `spec.containers[0].imagee` from serde_ignored's path.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => {
            let p = field_path(parent);
            if p.is_empty() {
                key.to_string()
            } else {
                format!("{p}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn kind_of(object: &Value) -> &str {
    object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("Object")
}

/// Name checks every object gets: a DNS subdomain.
pub(crate) fn validate_metadata(object: &Value, _old: Option<&Value>) -> Result<(), Invalid> {
    let mut errors = Errors::default();
    check_dns_subdomain(&mut errors, "metadata.name", name_of(object));
    errors.into_result(kind_of(object), name_of(object))
}

fn namespaces() -> Resource {
    Resource {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        verbs: &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        subresources: &[
            Subresource {
                name: "status",
                kind: "Namespace",
                group_version: None,
                verbs: &["get", "patch", "update"],
            },
            Subresource {
                name: "finalize",
                kind: "Namespace",
                group_version: None,
                verbs: &["update"],
            },
        ],
        status_subresource: true,
        field_selectors: &["status.phase"],
        schema: "io.k8s.api.core.v1.Namespace",
        returns_deleted: true,
        custom: None,
        hooks: Hooks {
            defaults: |ns| {
                let name = name_of(ns).to_string();
                let labels = ns
                    .pointer_mut("/metadata")
                    .and_then(Value::as_object_mut)
                    .map(|m| m.entry("labels").or_insert_with(|| json!({})));
                if let Some(Value::Object(labels)) = labels {
                    labels.insert("kubernetes.io/metadata.name".into(), Value::String(name));
                }
                if let Some(object) = ns.as_object_mut() {
                    let spec = object.entry("spec").or_insert_with(|| json!({}));
                    if spec.get("finalizers").is_none() {
                        spec["finalizers"] = json!(["kubernetes"]);
                    }
                }
            },
            initial_status: |ns| ns["status"] = json!({"phase": "Active"}),
            validate: |ns, _| {
                let mut errors = Errors::default();
                check_dns_label(&mut errors, "metadata.name", name_of(ns));
                let labels = ns.pointer("/metadata/labels");
                for (field, message) in crate::admission::pod_security::check_labels(labels) {
                    errors.push(field, message);
                }
                errors.into_result("Namespace", name_of(ns))
            },
            typed: Typed::of::<Namespace>(),
            allocate: allocate_nothing,
            admit: admit_nothing,
        },
    }
}

fn nodes() -> Resource {
    Resource {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[Subresource {
            name: "status",
            kind: "Node",
            group_version: None,
            verbs: &["get", "patch", "update"],
        }],
        status_subresource: true,
        field_selectors: &["spec.unschedulable"],
        schema: "io.k8s.api.core.v1.Node",
        returns_deleted: false,
        custom: None,
        hooks: plain_hooks::<Node>(),
    }
}

fn events() -> Resource {
    Resource {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
        status_subresource: false,
        field_selectors: &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        schema: "io.k8s.api.core.v1.Event",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            validate: |event, _| {
                let mut errors = Errors::default();
                check_dns_subdomain(&mut errors, "metadata.name", name_of(event));
                if event.get("involvedObject").is_none() {
                    errors.required("involvedObject");
                }
                errors.into_result("Event", name_of(event))
            },
            ..plain_hooks::<Event>()
        },
    }
}
