//! Requests made at an old group version (`extensions/v1beta1`
//! Deployments): bodies are turned into the current version on the way in,
//! answers name the old version on the way out, with Kubernetes'
//! deprecation warning.

use std::borrow::Cow;

use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use serde_json::{Value, json};

use super::response::with_warnings;
use crate::patch::PatchKind;
use crate::registry::resources::Alias;

/// Rewrites an object written at the old version as the current one. The
/// old versions' looser forms are accepted: a missing selector means the
/// template's labels (as extensions/v1beta1 defaulted it), and a bare
/// `strategy: Recreate` means `strategy: {type: Recreate}`.
pub fn to_current(alias: &Alias, current_api_version: &str, body: &mut Value) {
    let Some(object) = body.as_object_mut() else {
        return;
    };
    if object.get("apiVersion").and_then(Value::as_str) == Some(&alias.api_version()) {
        object.insert("apiVersion".into(), json!(current_api_version));
    }
    if let Some(conversion) = alias.conversion {
        (conversion.to_current)(body);
        return;
    }
    if alias.kind != "Deployment" {
        return;
    }
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(Value::String(kind)) = spec.get("strategy") {
        let kind = kind.clone();
        spec.insert("strategy".into(), json!({"type": kind}));
    }
    if spec.get("selector").is_none_or(Value::is_null)
        && let Some(labels) = spec
            .get("template")
            .and_then(|t| t.pointer("/metadata/labels"))
    {
        let labels = labels.clone();
        spec.insert("selector".into(), json!({"matchLabels": labels}));
    }
}

/// A merge or strategic-merge patch at the old version, as a patch of
/// the current one; other patches pass as they are.
pub fn patch_to_current<'a>(
    alias: &Alias,
    current_api_version: &str,
    kind: PatchKind,
    body: &'a [u8],
) -> Cow<'a, [u8]> {
    if !matches!(kind, PatchKind::Merge | PatchKind::Strategic) {
        return Cow::Borrowed(body);
    }
    let Ok(mut patch) = serde_json::from_slice::<Value>(body) else {
        return Cow::Borrowed(body);
    };
    to_current(alias, current_api_version, &mut patch);
    Cow::Owned(serde_json::to_vec(&patch).expect("JSON values serialise"))
}

/// The answer as the old version's client expects it: objects (and list
/// items) naming the old apiVersion, and the deprecation warning.
/// A streamed answer (a watch) keeps its body as it is: the watch sends
/// its events at the alias's version itself.
pub async fn answer(
    alias: &Alias,
    current_api_version: &str,
    response: Response,
    rewrite: bool,
) -> Response {
    let json = rewrite
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
    let response = if json {
        let (parts, body) = response.into_parts();
        match axum::body::to_bytes(body, usize::MAX).await {
            Ok(bytes) => {
                let rewritten = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .map(|mut value| {
                        rename(alias, current_api_version, &mut value);
                        serde_json::to_vec(&value).expect("JSON values serialise")
                    })
                    .unwrap_or_else(|| bytes.to_vec());
                Response::from_parts(parts, Body::from(rewritten))
            }
            Err(_) => Response::from_parts(parts, Body::empty()),
        }
    } else {
        response
    };
    match alias.warning {
        "" => response,
        warning => with_warnings(response, &[warning.to_string()]),
    }
}

/// The object (or each item of a list) at the alias's version.
pub fn rename(alias: &Alias, current_api_version: &str, value: &mut Value) {
    let old = alias.api_version();
    let convert = |object: &mut Value| {
        if object.get("apiVersion").and_then(Value::as_str) == Some(current_api_version) {
            object["apiVersion"] = json!(old);
            if let Some(conversion) = alias.conversion {
                (conversion.from_current)(object);
            }
        }
    };
    if let Some(items) = value.get_mut("items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(convert);
    }
    convert(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALIAS: Alias = Alias {
        group: "extensions",
        version: "v1beta1",
        kind: "Deployment",
        current_group: "apps",
        warning: "deprecated",
        conversion: None,
    };

    #[test]
    fn the_guides_loose_deployment_becomes_apps_v1() {
        let mut body = json!({"apiVersion": "extensions/v1beta1", "kind": "Deployment",
            "spec": {"strategy": "Recreate", "template": {"metadata": {"labels": {"deploy": "example"}}}}});
        to_current(&ALIAS, "apps/v1", &mut body);
        assert_eq!(body["apiVersion"], "apps/v1");
        assert_eq!(body["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(
            body["spec"]["selector"],
            json!({"matchLabels": {"deploy": "example"}})
        );
    }
}
