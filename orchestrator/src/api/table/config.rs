//! Columns of ConfigMaps, Secrets, ServiceAccounts, PersistentVolumes,
//! PersistentVolumeClaims and StorageClasses, as kubectl's printers show
//! them.

use serde_json::{Value, json};

use super::{age_cell, column, s};
use crate::registry::kinds::is_default_class;

pub(super) fn columns(kind: &str, name: Value, age: Value) -> Option<Vec<Value>> {
    let text = |title: &str, priority: u8, description: &str| {
        column(title, "string", priority, description)
    };
    Some(match kind {
        "ConfigMap" => vec![
            name,
            text("Data", 0, "Data contains the configuration data."),
            age,
        ],
        "ServiceAccount" => vec![
            name,
            text(
                "Secrets",
                0,
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            age,
        ],
        "Secret" => vec![
            name,
            text(
                "Type",
                0,
                "Used to facilitate programmatic handling of secret data.",
            ),
            text("Data", 0, "Data contains the secret data."),
            age,
        ],
        "PersistentVolume" => vec![
            name,
            text(
                "Capacity",
                0,
                "capacity is the description of the persistent volume's resources and capacity.",
            ),
            text(
                "Access Modes",
                0,
                "accessModes contains all ways the volume can be mounted.",
            ),
            text(
                "Reclaim Policy",
                0,
                "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.",
            ),
            text(
                "Status",
                0,
                "phase indicates if a volume is available, bound to a claim, or released by a claim.",
            ),
            text(
                "Claim",
                0,
                "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.",
            ),
            text(
                "StorageClass",
                0,
                "storageClassName is the name of StorageClass to which this persistent volume belongs.",
            ),
            text(
                "VolumeAttributesClass",
                0,
                "Name of VolumeAttributesClass to which this persistent volume belongs.",
            ),
            text(
                "Reason",
                0,
                "reason is a brief CamelCase string that describes any failure.",
            ),
            age,
            text(
                "VolumeMode",
                1,
                "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.",
            ),
        ],
        "PersistentVolumeClaim" => vec![
            name,
            text(
                "Status",
                0,
                "phase represents the current phase of PersistentVolumeClaim.",
            ),
            text(
                "Volume",
                0,
                "volumeName is the binding reference to the PersistentVolume backing this claim.",
            ),
            text(
                "Capacity",
                0,
                "capacity represents the actual resources of the underlying volume.",
            ),
            text(
                "Access Modes",
                0,
                "accessModes contains the desired access modes the volume should have.",
            ),
            text(
                "StorageClass",
                0,
                "storageClassName is the name of the StorageClass required by the claim.",
            ),
            text(
                "VolumeAttributesClass",
                0,
                "volumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim.",
            ),
            age,
            text(
                "VolumeMode",
                1,
                "volumeMode defines what type of volume is required by the claim.",
            ),
        ],
        "StorageClass" => vec![
            name,
            text(
                "Provisioner",
                0,
                "provisioner indicates the type of the provisioner.",
            ),
            text(
                "ReclaimPolicy",
                0,
                "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class.",
            ),
            text(
                "VolumeBindingMode",
                0,
                "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.",
            ),
            text(
                "AllowVolumeExpansion",
                0,
                "allowVolumeExpansion shows whether the storage class allow volume expand.",
            ),
            age,
        ],
        _ => return None,
    })
}

fn entries(object: &Value, field: &str) -> usize {
    object
        .get(field)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

/// `RWO,ROX`: kubectl's short access modes.
fn access_modes(list: Option<&Value>) -> String {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn unset(text: &str) -> String {
    if text.is_empty() {
        "<unset>".into()
    } else {
        text.into()
    }
}

pub(super) fn cells(kind: &str, object: &Value) -> Option<Vec<Value>> {
    let name = json!(s(object, "/metadata/name"));
    Some(match kind {
        "ConfigMap" => vec![
            name,
            json!(entries(object, "data") + entries(object, "binaryData")),
            age_cell(object),
        ],
        "ServiceAccount" => vec![
            name,
            json!(object["secrets"].as_array().map_or(0, Vec::len)),
            age_cell(object),
        ],
        "Secret" => vec![
            name,
            json!(s(object, "/type")),
            json!(entries(object, "data")),
            age_cell(object),
        ],
        "PersistentVolume" => {
            let claim = match (
                s(object, "/spec/claimRef/namespace"),
                s(object, "/spec/claimRef/name"),
            ) {
                (_, "") => String::new(),
                (ns, n) => format!("{ns}/{n}"),
            };
            vec![
                name,
                json!(s(object, "/spec/capacity/storage")),
                json!(access_modes(object.pointer("/spec/accessModes"))),
                json!(s(object, "/spec/persistentVolumeReclaimPolicy")),
                json!(s(object, "/status/phase")),
                json!(claim),
                json!(s(object, "/spec/storageClassName")),
                json!(unset(s(object, "/spec/volumeAttributesClassName"))),
                json!(s(object, "/status/reason")),
                age_cell(object),
                json!(s(object, "/spec/volumeMode")),
            ]
        }
        "PersistentVolumeClaim" => {
            let phase = if object.pointer("/metadata/deletionTimestamp").is_some() {
                "Terminating"
            } else {
                s(object, "/status/phase")
            };
            let bound = s(object, "/status/phase") == "Bound";
            vec![
                name,
                json!(phase),
                json!(s(object, "/spec/volumeName")),
                json!(if bound {
                    s(object, "/status/capacity/storage")
                } else {
                    ""
                }),
                json!(if bound {
                    access_modes(object.pointer("/status/accessModes"))
                } else {
                    String::new()
                }),
                json!(s(object, "/spec/storageClassName")),
                json!(unset(s(object, "/spec/volumeAttributesClassName"))),
                age_cell(object),
                json!(s(object, "/spec/volumeMode")),
            ]
        }
        "StorageClass" => {
            let mut title = s(object, "/metadata/name").to_string();
            if is_default_class(object) {
                title.push_str(" (default)");
            }
            vec![
                json!(title),
                json!(s(object, "/provisioner")),
                json!(match s(object, "/reclaimPolicy") {
                    "" => "Delete",
                    p => p,
                }),
                json!(match s(object, "/volumeBindingMode") {
                    "" => "Immediate",
                    m => m,
                }),
                json!(
                    object
                        .get("allowVolumeExpansion")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                ),
                age_cell(object),
            ]
        }
        _ => return None,
    })
}
