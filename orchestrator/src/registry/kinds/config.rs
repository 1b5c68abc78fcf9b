//! ConfigMaps and Secrets: Kubernetes' checks on their keys, sizes and
//! (for Secrets) types, and `stringData` folded into `data` on every write,
//! as the API server does.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::{Map, Value, json};

use super::name_of;
use crate::admission::{Errors, Invalid, check_dns_subdomain};
use crate::registry::resources::{
    ALL_VERBS, Hooks, Resource, Typed, admit_nothing, allocate_nothing,
};

/// Most bytes of data one ConfigMap or Secret may hold.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

const KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// The Secret types Kubernetes knows and the keys each requires.
pub const OPAQUE: &str = "Opaque";
const SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";
const DOCKERCFG: &str = "kubernetes.io/dockercfg";
const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
const BASIC_AUTH: &str = "kubernetes.io/basic-auth";
const SSH_AUTH: &str = "kubernetes.io/ssh-auth";
const TLS: &str = "kubernetes.io/tls";
const BOOTSTRAP_TOKEN: &str = "bootstrap.kubernetes.io/token";

pub(super) fn config_maps() -> Resource {
    Resource {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
        status_subresource: false,
        field_selectors: &[],
        schema: "io.k8s.api.core.v1.ConfigMap",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            defaults: |_| {},
            initial_status: |_| {},
            validate: validate_config_map,
            typed: Typed::of::<ConfigMap>(),
            allocate: allocate_nothing,
            admit: admit_nothing,
        },
    }
}

pub(super) fn secrets() -> Resource {
    Resource {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
        status_subresource: false,
        field_selectors: &["type"],
        schema: "io.k8s.api.core.v1.Secret",
        returns_deleted: false,
        custom: None,
        hooks: Hooks {
            defaults: secret_defaults,
            initial_status: |_| {},
            validate: validate_secret,
            typed: Typed::of::<Secret>(),
            allocate: allocate_nothing,
            admit: admit_nothing,
        },
    }
}

/// Whether `key` may name an entry of a ConfigMap or Secret (and so a file
/// in its volume): `[-._a-zA-Z0-9]+`, at most 253 long, never `.`, `..` or
/// starting with `..`.
pub fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && key != "."
        && !key.starts_with("..")
}

/// Each of Kubernetes' complaints about a key, as separate errors.
fn check_key(errors: &mut Errors, field: &str, key: &str) {
    let path = format!("{field}[{key}]");
    if key.len() > 253 {
        errors.push(&path, "Too long: must have at most 253 bytes".into());
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        errors.invalid(&path, key, KEY_MSG);
    }
    match key {
        "." => errors.invalid(&path, key, "must not be '.'"),
        ".." => errors.invalid(&path, key, "must not be '..'"),
        k if k.starts_with("..") => errors.invalid(&path, key, "must not start with '..'"),
        _ => {}
    }
}

fn entries<'a>(object: &'a Value, field: &str) -> impl Iterator<Item = (&'a String, &'a Value)> {
    object
        .get(field)
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(Map::iter)
}

/// `immutable: true` objects keep their data (and stay immutable).
fn check_immutable(errors: &mut Errors, object: &Value, old: Option<&Value>, fields: &[&str]) {
    let Some(old) = old else { return };
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if fields.iter().any(|f| object.get(*f) != old.get(*f)) {
        errors.push(
            "data",
            "Forbidden: field is immutable when `immutable` is set".into(),
        );
    }
    if object.get("immutable").and_then(Value::as_bool) != Some(true) {
        errors.push(
            "immutable",
            "Forbidden: field is immutable when `immutable` is set".into(),
        );
    }
}

fn validate_config_map(cm: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    let mut errors = Errors::default();
    check_dns_subdomain(&mut errors, "metadata.name", name_of(cm));
    let mut size = 0;
    for (key, value) in entries(cm, "data") {
        check_key(&mut errors, "data", key);
        size += value.as_str().map_or(0, str::len);
    }
    for (key, value) in entries(cm, "binaryData") {
        check_key(&mut errors, "binaryData", key);
        if cm.pointer(&format!("/data/{}", escape(key))).is_some() {
            errors.invalid(
                format!("data[{key}]"),
                key,
                "duplicate of key present in binaryData",
            );
        }
        size += value
            .as_str()
            .and_then(|b| STANDARD.decode(b).ok())
            .map_or(0, |b| b.len());
    }
    if size > MAX_DATA_BYTES {
        errors.push(
            "[]",
            format!("Too long: must have at most {MAX_DATA_BYTES} bytes"),
        );
    }
    check_immutable(&mut errors, cm, old, &["data", "binaryData"]);
    errors.into_result("ConfigMap", name_of(cm))
}

/// JSON-pointer escaping of one path segment.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// `type` defaults to Opaque; `stringData` entries overwrite `data`
/// entries (base64-encoded) and are not kept.
fn secret_defaults(secret: &mut Value) {
    let Some(object) = secret.as_object_mut() else {
        return;
    };
    if object
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        object.insert("type".into(), json!(OPAQUE));
    }
    let Some(Value::Object(plain)) = object.remove("stringData") else {
        return;
    };
    if plain.is_empty() {
        return;
    }
    let data = object.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    for (key, value) in plain {
        let text = value.as_str().unwrap_or_default();
        data[key.as_str()] = json!(STANDARD.encode(text));
    }
}

/// The decoded bytes of a Secret's entry.
fn secret_value(secret: &Value, key: &str) -> Option<Vec<u8>> {
    secret
        .get("data")?
        .get(key)?
        .as_str()
        .and_then(|b| STANDARD.decode(b).ok())
}

fn validate_secret(secret: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    let mut errors = Errors::default();
    check_dns_subdomain(&mut errors, "metadata.name", name_of(secret));
    let mut size = 0;
    for (key, _) in entries(secret, "data") {
        check_key(&mut errors, "data", key);
        size += secret_value(secret, key).map_or(0, |v| v.len());
    }
    if size > MAX_DATA_BYTES {
        errors.push(
            "data",
            format!("Too long: must have at most {MAX_DATA_BYTES} bytes"),
        );
    }
    let kind = secret.get("type").and_then(Value::as_str).unwrap_or(OPAQUE);
    let has = |key: &str| secret.pointer(&format!("/data/{}", escape(key))).is_some();
    let required = |errors: &mut Errors, key: &str| {
        if !has(key) {
            errors.required(format!("data[{key}]"));
        }
    };
    match kind {
        SERVICE_ACCOUNT_TOKEN
            if secret
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty) =>
        {
            errors.required("metadata.annotations[kubernetes.io/service-account.name]");
        }
        DOCKERCFG | DOCKER_CONFIG_JSON => {
            let key = if kind == DOCKERCFG {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match secret_value(secret, key) {
                None => errors.required(format!("data[{key}]")),
                Some(bytes) => {
                    if let Err(e) = serde_json::from_slice::<Value>(&bytes) {
                        errors.invalid(
                            format!("data[{key}]"),
                            "<secret contents redacted>",
                            &e.to_string(),
                        );
                    }
                }
            }
        }
        BASIC_AUTH if !has("username") && !has("password") => {
            required(&mut errors, "username");
            required(&mut errors, "password");
        }
        SSH_AUTH if secret_value(secret, "ssh-privatekey").is_none_or(|v| v.is_empty()) => {
            errors.required("data[ssh-privatekey]");
        }
        TLS => {
            required(&mut errors, "tls.crt");
            required(&mut errors, "tls.key");
        }
        BOOTSTRAP_TOKEN => {
            required(&mut errors, "token-id");
            required(&mut errors, "token-secret");
        }
        // Any other type is the user's own, as in Kubernetes.
        _ => {}
    }
    if let Some(old) = old {
        let before = old.get("type").and_then(Value::as_str).unwrap_or(OPAQUE);
        if before != kind {
            errors.invalid("type", kind, "field is immutable");
        }
    }
    check_immutable(&mut errors, secret, old, &["data"]);
    errors.into_result("Secret", name_of(secret))
}

#[cfg(test)]
mod tests {
    use super::super::messages;
    use super::*;

    #[test]
    fn config_keys_are_file_names_that_cannot_escape() {
        for good in ["a", "key.name", "KEY_NAME", "key-name", ".hidden", "a..b"] {
            assert!(is_config_key(good), "{good}");
        }
        for bad in ["", ".", "..", "../x", "..data", "a/b", "a b", "ü"] {
            assert!(!is_config_key(bad), "{bad}");
        }
        let cm = json!({"metadata": {"name": "c"}, "data": {"../x": "1", "ok": "2", "..": "3"}});
        let errors = messages(validate_config_map(&cm, None));
        assert_eq!(errors.len(), 3, "{errors:?}");
        let has = |text: &str| errors.iter().any(|e| e.starts_with(text));
        assert!(
            has("data[../x]: Invalid value: \"../x\": a valid config key"),
            "{errors:?}"
        );
        assert!(has(
            "data[../x]: Invalid value: \"../x\": must not start with '..'"
        ));
        assert!(has("data[..]: Invalid value: \"..\": must not be '..'"));
    }

    #[test]
    fn a_key_in_data_and_binary_data_is_a_duplicate() {
        let cm =
            json!({"metadata": {"name": "c"}, "data": {"k": "1"}, "binaryData": {"k": "MQ=="}});
        let errors = messages(validate_config_map(&cm, None));
        assert_eq!(
            errors,
            ["data[k]: Invalid value: \"k\": duplicate of key present in binaryData"]
        );
    }

    #[test]
    fn string_data_is_folded_into_data() {
        let mut secret = json!({"metadata": {"name": "s"},
            "data": {"a": "b2xk", "keep": "eA=="}, "stringData": {"a": "new", "b": "two"}});
        secret_defaults(&mut secret);
        assert_eq!(secret["type"], "Opaque");
        assert!(secret.get("stringData").is_none());
        assert_eq!(
            secret["data"],
            json!({"a": "bmV3", "b": "dHdv", "keep": "eA=="})
        );
    }

    #[test]
    fn secret_types_require_their_keys() {
        let tls = json!({"metadata": {"name": "s"}, "type": TLS, "data": {"tls.crt": "eA=="}});
        assert_eq!(
            messages(validate_secret(&tls, None)),
            ["data[tls.key]: Required value"]
        );
        let auth = json!({"metadata": {"name": "s"}, "type": BASIC_AUTH, "data": {}});
        assert_eq!(messages(validate_secret(&auth, None)).len(), 2);
        let docker = json!({"metadata": {"name": "s"}, "type": DOCKER_CONFIG_JSON,
            "data": {".dockerconfigjson": STANDARD.encode("not json")}});
        let errors = messages(validate_secret(&docker, None));
        assert!(
            errors[0].starts_with("data[.dockerconfigjson]: Invalid value"),
            "{errors:?}"
        );
        let opaque = json!({"metadata": {"name": "s"}, "type": OPAQUE, "data": {}});
        let retyped = json!({"metadata": {"name": "s"}, "type": TLS,
            "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(
            messages(validate_secret(&retyped, Some(&opaque))),
            ["type: Invalid value: \"kubernetes.io/tls\": field is immutable"]
        );
    }

    #[test]
    fn immutable_objects_keep_their_data() {
        let old = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"k": "1"}});
        let changed = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"k": "2"}});
        assert_eq!(
            messages(validate_config_map(&changed, Some(&old))),
            ["data: Forbidden: field is immutable when `immutable` is set"]
        );
        let relabelled = json!({"metadata": {"name": "c", "labels": {"a": "b"}},
            "immutable": true, "data": {"k": "1"}});
        assert!(validate_config_map(&relabelled, Some(&old)).is_ok());
    }
}
