//! PersistentVolumes, PersistentVolumeClaims and StorageClasses:
//! Kubernetes' defaults and checks. Binding and provisioning are the
//! volume controller's ([`crate::controllers::volumes`]).

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::{Map, Value, json};

use super::pod::set_default;
use super::{name_of, status, validate_metadata};
use crate::admission::{Errors, Invalid, check_dns_subdomain};
use crate::quantity::Quantity;
use crate::registry::resources::{
    ALL_VERBS, Hooks, Resource, Subresource, Typed, admit_nothing, allocate_nothing,
};

/// Kept on a claim while a pod uses it.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// Kept on a volume while a claim is bound to it.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const RECLAIM_POLICIES: &[&str] = &["Delete", "Recycle", "Retain"];
const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];
const BINDING_MODES: &[&str] = &["Immediate", "WaitForFirstConsumer"];

const PV_STATUS: [Subresource; 1] = status("PersistentVolume");
const PVC_STATUS: [Subresource; 1] = status("PersistentVolumeClaim");

pub(super) fn persistent_volumes() -> Resource {
    Resource {
        group: "",
        version: "v1",
        kind: "PersistentVolume",
        plural: "persistentvolumes",
        singular: "persistentvolume",
        namespaced: false,
        short_names: &["pv"],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &PV_STATUS,
        status_subresource: true,
        field_selectors: &[],
        schema: "io.k8s.api.core.v1.PersistentVolume",
        returns_deleted: true,
        custom: None,
        hooks: Hooks {
            defaults: pv_defaults,
            // A new volume is Pending until the controller sees it, and
            // protected while bound (Kubernetes' admission adds the
            // finalizer at creation).
            initial_status: |pv| {
                pv["status"] = json!({"phase": "Pending"});
                add_finalizer(pv, PV_PROTECTION);
            },
            validate: validate_pv,
            typed: Typed::of::<PersistentVolume>(),
            allocate: allocate_nothing,
            admit: admit_nothing,
        },
    }
}

pub(super) fn persistent_volume_claims() -> Resource {
    Resource {
        group: "",
        version: "v1",
        kind: "PersistentVolumeClaim",
        plural: "persistentvolumeclaims",
        singular: "persistentvolumeclaim",
        namespaced: true,
        short_names: &["pvc"],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &PVC_STATUS,
        status_subresource: true,
        field_selectors: &[],
        schema: "io.k8s.api.core.v1.PersistentVolumeClaim",
        returns_deleted: true,
        custom: None,
        hooks: Hooks {
            defaults: pvc_defaults,
            initial_status: |pvc| {
                pvc["status"] = json!({"phase": "Pending"});
                add_finalizer(pvc, PVC_PROTECTION);
            },
            validate: validate_pvc,
            typed: Typed::of::<PersistentVolumeClaim>(),
            allocate: allocate_nothing,
            admit: admit_nothing,
        },
    }
}

pub(super) fn storage_classes() -> Resource {
    Resource {
        group: "storage.k8s.io",
        version: "v1",
        kind: "StorageClass",
        plural: "storageclasses",
        singular: "storageclass",
        namespaced: false,
        short_names: &["sc"],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
        status_subresource: false,
        field_selectors: &[],
        schema: "io.k8s.api.storage.v1.StorageClass",
        returns_deleted: true,
        custom: None,
        hooks: Hooks {
            defaults: |sc| {
                if let Some(object) = sc.as_object_mut() {
                    set_default(object, "reclaimPolicy", json!("Delete"));
                    set_default(object, "volumeBindingMode", json!("Immediate"));
                }
            },
            initial_status: |_| {},
            validate: validate_storage_class,
            typed: Typed::of::<StorageClass>(),
            allocate: allocate_nothing,
            admit: admit_nothing,
        },
    }
}

/// Whether a StorageClass is the cluster's default.
pub fn is_default_class(sc: &Value) -> bool {
    let annotation = |key: &str| {
        sc.pointer(&format!("/metadata/annotations/{}", key.replace('/', "~1")))
            .and_then(Value::as_str)
            == Some("true")
    };
    annotation("storageclass.kubernetes.io/is-default-class")
        || annotation("storageclass.beta.kubernetes.io/is-default-class")
}

fn add_finalizer(object: &mut Value, finalizer: &str) {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut()
        && !list.iter().any(|f| f == finalizer)
    {
        list.push(json!(finalizer));
    }
}

fn spec_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    object.get_mut("spec").and_then(Value::as_object_mut)
}

fn pv_defaults(pv: &mut Value) {
    let Some(spec) = spec_mut(pv) else { return };
    set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
    set_default(spec, "volumeMode", json!("Filesystem"));
    if let Some(host) = spec.get_mut("hostPath").and_then(Value::as_object_mut) {
        set_default(host, "type", json!(""));
    }
}

pub(super) fn pvc_defaults(pvc: &mut Value) {
    let Some(spec) = spec_mut(pvc) else { return };
    set_default(spec, "volumeMode", json!("Filesystem"));
}

/// A storage quantity: present, well formed, not negative.
fn check_storage(errors: &mut Errors, field: &str, value: Option<&Value>) {
    match value {
        None => errors.required(field),
        Some(v) => {
            let text = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            match Quantity::parse(&text) {
                Err(e) => errors.invalid(field, &text, &e.to_string()),
                Ok(q) if q.is_negative() => {
                    errors.invalid(field, &text, "must be greater than or equal to 0")
                }
                Ok(_) => {}
            }
        }
    }
}

fn check_access_modes(errors: &mut Errors, field: &str, spec: &Value) {
    let modes = spec
        .get("accessModes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if modes.is_empty() {
        errors.required(field);
    }
    for mode in &modes {
        let mode = mode.as_str().unwrap_or_default();
        if !ACCESS_MODES.contains(&mode) {
            errors.unsupported(field, mode, ACCESS_MODES);
        }
    }
    if modes.iter().any(|m| m == "ReadWriteOncePod") && modes.len() > 1 {
        errors.push(
            field,
            "Forbidden: may not use ReadWriteOncePod with other access modes".into(),
        );
    }
}

fn check_volume_mode(errors: &mut Errors, spec: &Value) {
    if let Some(mode) = spec.get("volumeMode").and_then(Value::as_str)
        && !VOLUME_MODES.contains(&mode)
    {
        errors.unsupported("spec.volumeMode", mode, VOLUME_MODES);
    }
}

/// The volume sources a PersistentVolume may carry.
const PV_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

fn validate_pv(pv: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    let mut errors = Errors::default();
    check_dns_subdomain(&mut errors, "metadata.name", name_of(pv));
    let empty = json!({});
    let spec = pv.get("spec").unwrap_or(&empty);
    match spec.get("capacity").and_then(Value::as_object) {
        None => errors.required("spec.capacity"),
        Some(capacity) => {
            check_storage(
                &mut errors,
                "spec.capacity[storage]",
                capacity.get("storage"),
            );
            for key in capacity.keys().filter(|k| *k != "storage") {
                errors.unsupported("spec.capacity", key, &["storage"]);
            }
        }
    }
    check_access_modes(&mut errors, "spec.accessModes", spec);
    check_volume_mode(&mut errors, spec);
    let sources: Vec<&str> = PV_SOURCES
        .iter()
        .copied()
        .filter(|s| spec.get(*s).is_some())
        .collect();
    match sources.len() {
        0 => errors.push("spec", "Required value: must specify a volume type".into()),
        1 => {}
        _ => errors.push(
            format!("spec.{}", sources[1]),
            "Forbidden: may not specify more than 1 volume type".into(),
        ),
    }
    for source in ["hostPath", "local"] {
        if let Some(path) = spec
            .pointer(&format!("/{source}/path"))
            .and_then(Value::as_str)
        {
            let field = format!("spec.{source}.path");
            if !path.starts_with('/') {
                errors.invalid(&field, path, "must be an absolute path");
            } else if path.split('/').any(|p| p == "..") {
                errors.invalid(&field, path, "must not contain '..'");
            }
        }
    }
    if let Some(policy) = spec
        .get("persistentVolumeReclaimPolicy")
        .and_then(Value::as_str)
        && !RECLAIM_POLICIES.contains(&policy)
    {
        errors.unsupported(
            "spec.persistentVolumeReclaimPolicy",
            policy,
            RECLAIM_POLICIES,
        );
    }
    if let Some(old) = old {
        for (field, what) in [("volumeMode", "spec.volumeMode")] {
            if old.pointer(&format!("/spec/{field}")) != spec.get(field) {
                errors.push(what, "Invalid value: field is immutable".into());
            }
        }
    }
    errors.into_result("PersistentVolume", name_of(pv))
}

fn validate_pvc(pvc: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    let mut errors = Errors::default();
    check_dns_subdomain(&mut errors, "metadata.name", name_of(pvc));
    let empty = json!({});
    let spec = pvc.get("spec").unwrap_or(&empty);
    check_access_modes(&mut errors, "spec.accessModes", spec);
    check_volume_mode(&mut errors, spec);
    check_storage(
        &mut errors,
        "spec.resources[storage]",
        spec.pointer("/resources/requests/storage"),
    );
    if let Some(limit) = spec.pointer("/resources/limits/storage") {
        check_storage(&mut errors, "spec.resources.limits[storage]", Some(limit));
    }
    if let Some(old) = old {
        // Everything but the requested size is fixed once made; the
        // controller fills volumeName and the default class once.
        let fixed = |spec: &Value, old_spec: &Value| {
            let mut s = spec.clone();
            if let Some(o) = s.as_object_mut() {
                o.remove("resources");
                if old_spec
                    .get("volumeName")
                    .is_none_or(|v| v.as_str() == Some(""))
                {
                    o.remove("volumeName");
                }
                if old_spec.get("storageClassName").is_none_or(Value::is_null) {
                    o.remove("storageClassName");
                }
            }
            s
        };
        let old_spec = old.get("spec").unwrap_or(&empty);
        if fixed(spec, old_spec) != fixed(old_spec, old_spec) {
            errors.push(
                "spec",
                "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims".into(),
            );
        }
    }
    errors.into_result("PersistentVolumeClaim", name_of(pvc))
}

fn validate_storage_class(sc: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    let mut errors = Errors::default();
    validate_metadata(sc, old)?;
    match sc.get("provisioner").and_then(Value::as_str) {
        None | Some("") => errors.required("provisioner"),
        Some(p) => {
            for why in crate::admission::metadata::qualified_name(p) {
                errors.invalid("provisioner", p, &why);
            }
        }
    }
    if let Some(policy) = sc.get("reclaimPolicy").and_then(Value::as_str)
        && !["Delete", "Retain"].contains(&policy)
    {
        errors.unsupported("reclaimPolicy", policy, &["Delete", "Retain"]);
    }
    if let Some(mode) = sc.get("volumeBindingMode").and_then(Value::as_str)
        && !BINDING_MODES.contains(&mode)
    {
        errors.unsupported("volumeBindingMode", mode, BINDING_MODES);
    }
    if let Some(old) = old {
        for field in [
            "provisioner",
            "reclaimPolicy",
            "volumeBindingMode",
            "parameters",
        ] {
            if old.get(field) != sc.get(field) {
                errors.push(
                    field,
                    "Forbidden: updates to ".to_string() + field + " are forbidden.",
                );
            }
        }
    }
    errors.into_result("StorageClass", name_of(sc))
}

#[cfg(test)]
mod tests {
    use super::super::messages;
    use super::*;

    #[test]
    fn the_guides_volume_and_claim_are_valid() {
        let mut pv = json!({"metadata": {"name": "my-persistent-volume"}, "spec": {
            "capacity": {"storage": "128M"}, "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/data/my-persistent-volume/"}}});
        pv_defaults(&mut pv);
        assert_eq!(messages(validate_pv(&pv, None)), Vec::<String>::new());
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        let pvc = json!({"metadata": {"name": "my-small-pvc"}, "spec": {
            "resources": {"requests": {"storage": "64M"}}, "accessModes": ["ReadWriteOnce"]}});
        assert!(validate_pvc(&pvc, None).is_ok());
    }

    #[test]
    fn malformed_quantities_and_modes_are_named() {
        let pvc = json!({"metadata": {"name": "c"}, "spec": {
            "resources": {"requests": {"storage": "64MM"}}, "accessModes": ["ReadWriteSometimes"]}});
        let errors = messages(validate_pvc(&pvc, None));
        assert!(
            errors.iter().any(|e| e.starts_with(
                "spec.resources[storage]: Invalid value: \"64MM\": quantities must match the regular expression"
            )),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e
                    .starts_with("spec.accessModes: Unsupported value: \"ReadWriteSometimes\"")),
            "{errors:?}"
        );
        let pv = json!({"metadata": {"name": "v"}, "spec": {"capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"]}});
        assert_eq!(
            messages(validate_pv(&pv, None)),
            ["spec: Required value: must specify a volume type"]
        );
    }

    #[test]
    fn a_claims_spec_is_fixed_but_its_size() {
        let old = json!({"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}});
        let bound = json!({"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "storageClassName": "local-path", "volumeName": "pvc-1",
            "resources": {"requests": {"storage": "2Gi"}}}});
        assert!(validate_pvc(&bound, Some(&old)).is_ok());
        let changed = json!({"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": "1Gi"}}}});
        assert_eq!(messages(validate_pvc(&changed, Some(&old))).len(), 1);
    }
}
