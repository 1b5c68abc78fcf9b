//! The CustomResourceDefinition kind (apiextensions.k8s.io/v1): its
//! defaults and the API server's checks on it, and the resources a
//! definition serves once established.

use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};

use super::columns::PrinterColumn;
use super::structural::Structural;
use super::{CustomKind, ScalePaths, intern, intern_list};
use crate::admission::{Errors, Invalid, check_dns_1035_label, check_dns_label};
use crate::registry::kinds::{plain_hooks, status, validate_metadata};
use crate::registry::metadata::text;
use crate::registry::resources::{
    ALL_VERBS, Hooks, Resource, Subresource, Typed, admit_nothing, allocate_nothing,
};

pub const GROUP: &str = "apiextensions.k8s.io";
pub const KIND: &str = "CustomResourceDefinition";
/// The finalizer that holds a definition until its objects are deleted.
pub const CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";

const SUBRESOURCES: [Subresource; 1] = status(KIND);

/// The descriptor of the kind.
pub fn resource() -> Resource {
    Resource {
        group: GROUP,
        version: "v1",
        kind: KIND,
        plural: "customresourcedefinitions",
        singular: "customresourcedefinition",
        namespaced: false,
        short_names: &["crd", "crds"],
        categories: &["api-extensions"],
        verbs: ALL_VERBS,
        subresources: &SUBRESOURCES,
        status_subresource: true,
        field_selectors: &[],
        schema: "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
        returns_deleted: true,
        hooks: Hooks {
            defaults,
            initial_status,
            validate,
            ..plain_hooks::<CustomResourceDefinition>()
        },
        custom: None,
    }
}

/// The API server's defaults: singular and list kind from the kind, no
/// conversion.
fn defaults(crd: &mut Value) {
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !kind.is_empty() {
            let empty = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").is_empty();
            if empty(names.get("singular")) {
                names.insert("singular".into(), json!(kind.to_lowercase()));
            }
            if empty(names.get("listKind")) {
                names.insert("listKind".into(), json!(format!("{kind}List")));
            }
        }
    }
    spec.entry("conversion")
        .or_insert_with(|| json!({"strategy": "None"}));
}

/// A new definition has stored objects at its storage version only.
fn initial_status(crd: &mut Value) {
    let stored: Vec<Value> = storage_version(crd)
        .map(|v| json!(text(v, "/name")))
        .into_iter()
        .collect();
    crd["status"] = json!({
        "acceptedNames": {"kind": "", "plural": ""},
        "conditions": [],
        "storedVersions": stored,
    });
}

/// The version a definition stores its objects at.
pub fn storage_version(crd: &Value) -> Option<&Value> {
    versions(crd).find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
}

fn versions(crd: &Value) -> impl Iterator<Item = &Value> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

const SCOPES: &[&str] = &["Cluster", "Namespaced"];
const COLUMN_TYPES: &[&str] = &["boolean", "date", "integer", "number", "string"];

/// The API server's checks on a definition (and on a change to one).
fn validate(crd: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    validate_metadata(crd, old)?;
    let mut errors = Errors::default();
    let name = text(crd, "/metadata/name");
    let group = text(crd, "/spec/group");
    let plural = text(crd, "/spec/names/plural");
    if name != format!("{plural}.{group}") {
        errors.invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        );
    }
    if group.is_empty() {
        errors.required("spec.group");
    } else if !group.contains('.') {
        errors.invalid(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        );
    }
    for field in ["plural", "singular", "kind", "listKind"] {
        let value = text(crd, &format!("/spec/names/{field}"));
        let path = format!("spec.names.{field}");
        if value.is_empty() {
            errors.required(path);
        } else if matches!(field, "plural" | "singular") {
            check_dns_label(&mut errors, &path, value);
        }
    }
    let kind = text(crd, "/spec/names/kind");
    if !kind.is_empty() && kind == text(crd, "/spec/names/listKind") {
        errors.invalid(
            "spec.names.listKind",
            kind,
            "kind and listKind cannot be the same",
        );
    }
    match text(crd, "/spec/scope") {
        "" => errors.required("spec.scope"),
        scope if !SCOPES.contains(&scope) => errors.unsupported("spec.scope", scope, SCOPES),
        _ => {}
    }
    validate_versions(crd, &mut errors);
    if let Some(old) = old {
        for (pointer, field) in [("/spec/scope", "spec.scope"), ("/spec/group", "spec.group")] {
            if crd.pointer(pointer) != old.pointer(pointer) {
                errors.invalid(field, text(crd, pointer), "field is immutable");
            }
        }
    }
    errors.into_result(KIND, name)
}

fn validate_versions(crd: &Value, errors: &mut Errors) {
    let all: Vec<&Value> = versions(crd).collect();
    let storage = all
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if storage != 1 {
        errors.push(
            "spec.versions",
            format!(
                "Invalid value: {}: must have exactly one version marked as storage version",
                json!(all)
            ),
        );
    }
    let mut seen = Vec::new();
    for (i, version) in all.iter().enumerate() {
        let at = format!("spec.versions[{i}]");
        let name = text(version, "/name");
        if name.is_empty() {
            errors.required(format!("{at}.name"));
        } else {
            check_dns_1035_label(errors, &format!("{at}.name"), name);
            if seen.contains(&name) {
                errors.invalid(format!("{at}.name"), name, "must be unique");
            }
            seen.push(name);
        }
        match version.pointer("/schema/openAPIV3Schema") {
            None => errors.push(
                format!("{at}.schema.openAPIV3Schema"),
                "Required value: schemas are required".into(),
            ),
            Some(schema) => {
                if let Err(e) = Structural::new(schema) {
                    errors.push(format!("{at}.schema.{}", e.field), e.message);
                }
            }
        }
        let columns = version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for (j, column) in columns.enumerate() {
            let at = format!("{at}.additionalPrinterColumns[{j}]");
            if text(column, "/name").is_empty() {
                errors.required(format!("{at}.name"));
            }
            match text(column, "/type") {
                "" => errors.required(format!("{at}.type")),
                kind if !COLUMN_TYPES.contains(&kind) => {
                    errors.unsupported(format!("{at}.type"), kind, COLUMN_TYPES)
                }
                _ => {}
            }
            if let Err(why) = PrinterColumn::parse(column) {
                errors.invalid(format!("{at}.jsonPath"), text(column, "/jsonPath"), &why);
            }
        }
        if let Some(scale) = version.pointer("/subresources/scale") {
            let at = format!("{at}.subresources.scale");
            for (field, under) in [
                ("specReplicasPath", ".spec."),
                ("statusReplicasPath", ".status."),
            ] {
                let path = text(scale, &format!("/{field}"));
                if path.is_empty() {
                    errors.required(format!("{at}.{field}"));
                } else if !path.starts_with(under) {
                    errors.invalid(
                        format!("{at}.{field}"),
                        path,
                        &format!(
                            "should be a json path under {}",
                            under.trim_end_matches('.')
                        ),
                    );
                }
            }
        }
    }
}

/// The resources a definition serves: one per served version. A version
/// whose schema cannot be used (refused when written; kept from an older
/// server) is left out.
pub fn served(crd: &Value) -> Vec<Resource> {
    let mut served: Vec<Resource> = versions(crd)
        .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
        .filter_map(|version| at_version(crd, version))
        .collect();
    // Discovery lists versions (and clients prefer the first) in
    // Kubernetes' order: GA before beta before alpha, newest first.
    served.sort_by_key(|r| version_priority(r.version));
    served
}

/// Kubernetes' version order as a sort key: `v2`, `v1`, `v1beta2`,
/// `v1beta1`, `v1alpha1`, then other names alphabetically.
fn version_priority(version: &str) -> (u8, std::cmp::Reverse<u64>, std::cmp::Reverse<u64>, String) {
    use std::cmp::Reverse;
    let parsed = version.strip_prefix('v').and_then(|rest| {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((0, major, 0));
        }
        let (rank, number) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else {
            (2, tail.strip_prefix("alpha")?)
        };
        Some((rank, major, number.parse().ok()?))
    });
    match parsed {
        Some((rank, major, minor)) => (rank, Reverse(major), Reverse(minor), String::new()),
        None => (3, Reverse(0), Reverse(0), version.to_string()),
    }
}

/// The resource of the storage version, served or not (for deleting a
/// definition's objects: every version's live under the same keys).
pub fn stored(crd: &Value) -> Option<Resource> {
    storage_version(crd).and_then(|version| at_version(crd, version))
}

fn at_version(crd: &Value, version: &Value) -> Option<Resource> {
    let group = intern(text(crd, "/spec/group"));
    let kind = intern(text(crd, "/spec/names/kind"));
    let names = |field: &str| -> Vec<&str> {
        crd.pointer(&format!("/spec/names/{field}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    };
    let name = text(version, "/name");
    let openapi = version.pointer("/schema/openAPIV3Schema")?.clone();
    let schema = Structural::new(&openapi).ok()?;
    let mut columns = vec![];
    for column in version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        columns.push(PrinterColumn::parse(column).ok()?);
    }
    if columns.is_empty() {
        columns.push(PrinterColumn::age());
    }
    let mut shape = openapi.clone();
    if let Some(properties) = shape.get_mut("properties").and_then(Value::as_object_mut) {
        properties.insert(
            "metadata".into(),
            json!({"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}),
        );
    }
    let status_subresource = version.pointer("/subresources/status").is_some();
    let scale = version
        .pointer("/subresources/scale")
        .map(|scale| ScalePaths {
            spec_replicas: pointer(text(scale, "/specReplicasPath")),
            status_replicas: pointer(text(scale, "/statusReplicasPath")),
            label_selector: Some(text(scale, "/labelSelectorPath"))
                .filter(|p| !p.is_empty())
                .map(pointer),
        });
    let deprecation =
        (version.get("deprecated").and_then(Value::as_bool) == Some(true)).then(|| {
            match text(version, "/deprecationWarning") {
                "" => format!("{group}/{name} {kind} is deprecated"),
                warning => warning.to_string(),
            }
        });
    Some(Resource {
        group,
        version: intern(name),
        kind,
        plural: intern(text(crd, "/spec/names/plural")),
        singular: intern(text(crd, "/spec/names/singular")),
        namespaced: text(crd, "/spec/scope") == "Namespaced",
        short_names: intern_list(&names("shortNames")),
        categories: intern_list(&names("categories")),
        verbs: ALL_VERBS,
        subresources: subresources(kind, status_subresource, scale.is_some()),
        status_subresource,
        field_selectors: &[],
        schema: intern(&definition_name(group, name, kind)),
        returns_deleted: false,
        hooks: Hooks {
            defaults: |_| {},
            // Status is written through its subresource only.
            initial_status: |object| {
                if let Some(fields) = object.as_object_mut() {
                    fields.remove("status");
                }
            },
            validate: validate_metadata,
            typed: Typed::untyped(),
            allocate: allocate_nothing,
            admit: admit_nothing,
        },
        custom: Some(Arc::new(CustomKind {
            schema,
            openapi,
            columns,
            scale,
            deprecation,
            definition: text(crd, "/metadata/name").to_string(),
            shape: super::intern_schema(shape),
            storage_version: storage_version(crd)
                .map(|v| text(v, "/name").to_string())
                .unwrap_or_else(|| name.to_string()),
        })),
    })
}

/// The OpenAPI definition name of a custom kind, as the API server names
/// it: the group's domain reversed (`com.example.v1.Widget`).
pub fn definition_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.rsplit('.').collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// `.spec.replicas` as `/spec/replicas`.
fn pointer(path: &str) -> String {
    path.replace('.', "/")
}

fn subresources(kind: &'static str, status: bool, scale: bool) -> &'static [Subresource] {
    const STATUS_VERBS: &[&str] = &["get", "patch", "update"];
    let status_entry = Subresource {
        name: "status",
        kind,
        group_version: None,
        verbs: STATUS_VERBS,
    };
    let scale_entry = Subresource {
        name: "scale",
        kind: "Scale",
        group_version: Some(("autoscaling", "v1")),
        verbs: STATUS_VERBS,
    };
    let list: Vec<Subresource> = [(status, status_entry), (scale, scale_entry)]
        .into_iter()
        .filter_map(|(wanted, entry)| wanted.then_some(entry))
        .collect();
    if list.is_empty() {
        return &[];
    }
    // One copy per kind and choice, as names are interned.
    static MADE: std::sync::Mutex<Vec<&'static [Subresource]>> = std::sync::Mutex::new(Vec::new());
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    let same = |known: &&&'static [Subresource]| {
        known.len() == list.len()
            && known
                .iter()
                .zip(&list)
                .all(|(a, b)| a.name == b.name && a.kind == b.kind)
    };
    if let Some(known) = made.iter().find(same) {
        return known;
    }
    let leaked: &'static [Subresource] = Box::leak(list.into_boxed_slice());
    made.push(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_as_kubernetes_orders_them() {
        let mut versions = [
            "v1alpha1",
            "foo",
            "v1beta1",
            "v2",
            "v1",
            "v1beta2",
            "v11alpha2",
            "bar",
        ];
        versions.sort_by_key(|v| version_priority(v));
        assert_eq!(
            versions,
            [
                "v2",
                "v1",
                "v1beta2",
                "v1beta1",
                "v11alpha2",
                "v1alpha1",
                "bar",
                "foo"
            ]
        );
    }
}
