//! The API router's limits and checks on what clients send: bodies and
//! patches of bounded size and work, media types, metadata the API server
//! validates, requests that would rename what they patch. Each answer is a
//! Status a person can act on.

mod router;

use axum::http::StatusCode;
use router::{TOKEN, api, pod};
use serde_json::{Value, json};

const CONFIG_MAPS: &str = "/api/v1/namespaces/default/configmaps";

fn config_map(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

fn assert_status(body: &Value, code: u16, reason: &str, message_part: &str) {
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(message_part),
        "{message:?} lacks {message_part:?}"
    );
    assert!(
        body["details"].is_object(),
        "a Status carries details: {body}"
    );
}

/// Regression: 40 `copy` operations, each doubling the object, took the
/// server to 23.5 GB and the OOM killer.
#[tokio::test]
async fn a_copy_bomb_patch_is_refused_and_changes_nothing() {
    let api = api().await;
    let (code, created) = api
        .send(
            "POST",
            CONFIG_MAPS,
            Some(config_map("pt", json!({"a": "b"}))),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let bomb: Vec<Value> = (0..40)
        .map(|i| json!({"op": "copy", "from": "/metadata", "path": format!("/metadata/x{i}")}))
        .collect();
    let (code, body) = api
        .send(
            "PATCH",
            &format!("{CONFIG_MAPS}/pt"),
            Some(json!(bomb)),
            &[("content-type", "application/json-patch+json")],
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_status(&body, 422, "Invalid", "copy more than 3145728 bytes");
    let (_, stored) = api
        .send("GET", &format!("{CONFIG_MAPS}/pt"), None, &[])
        .await;
    assert_eq!(stored["metadata"].get("x0"), None);
    assert_eq!(
        stored["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
}

#[tokio::test]
async fn a_patch_of_too_many_operations_is_413() {
    let api = api().await;
    api.send(
        "POST",
        CONFIG_MAPS,
        Some(config_map("ops", json!({"a": "b"}))),
        &[],
    )
    .await;
    let tests: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "/data/a", "value": "b"}))
        .collect();
    let (code, body) = api
        .send(
            "PATCH",
            &format!("{CONFIG_MAPS}/ops"),
            Some(json!(tests)),
            &[("content-type", "application/json-patch+json")],
        )
        .await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    assert_status(
        &body,
        413,
        "RequestEntityTooLarge",
        "The allowed maximum operations in a JSON patch is 10000, got 10001",
    );
}

/// Regression: an oversized body was answered without a Status.
#[tokio::test]
async fn a_body_over_3_mib_is_413_with_a_status() {
    let api = api().await;
    let mut big = pod("big");
    big["metadata"]["annotations"] = json!({"x": "y".repeat(3 * 1024 * 1024)});
    let (code, body) = api
        .send("POST", "/api/v1/namespaces/default/pods", Some(big), &[])
        .await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    assert_status(
        &body,
        413,
        "RequestEntityTooLarge",
        "Request entity too large: limit is 3145728",
    );
}

#[tokio::test]
async fn an_object_over_the_store_limit_is_413() {
    let api = api().await;
    // 2 MiB of environment: under the body limit, over the object limit.
    let mut big = pod("big-env");
    big["spec"]["containers"][0]["env"] = json!([{"name": "BLOB", "value": "z".repeat(2 << 20)}]);
    let (code, body) = api
        .send("POST", "/api/v1/namespaces/default/pods", Some(big), &[])
        .await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_status(
        &body,
        413,
        "RequestEntityTooLarge",
        "more than its limit of 1572864 bytes",
    );
    let (code, _) = api
        .send("GET", "/api/v1/namespaces/default/pods/big-env", None, &[])
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_yaml_alias_bomb_is_413() {
    let api = api().await;
    let mut yaml = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: laughs\n  annotations:\n    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for i in 1..9 {
        let p = i - 1;
        yaml.push_str(&format!(
            "    a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let (code, _, body) = api
        .send_full(
            "POST",
            CONFIG_MAPS,
            Some(yaml),
            &[("content-type", "application/yaml")],
        )
        .await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_status(&body, 413, "RequestEntityTooLarge", "expands to more than");
}

#[tokio::test]
async fn a_text_body_is_415() {
    let api = api().await;
    let (code, _, body) = api
        .send_full(
            "POST",
            CONFIG_MAPS,
            Some(config_map("t", json!({})).to_string()),
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_status(
        &body,
        415,
        "UnsupportedMediaType",
        "accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf",
    );
}

#[tokio::test]
async fn labels_and_annotations_are_validated() {
    let api = api().await;
    let mut bad = config_map("labels", json!({}));
    bad["metadata"]["labels"] = json!({"a b": "ok", "key": "bad value"});
    let (code, body) = api.send("POST", CONFIG_MAPS, Some(bad), &[]).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_status(
        &body,
        422,
        "Invalid",
        "metadata.labels: Invalid value: \"a b\"",
    );
    let causes = body["details"]["causes"].as_array().unwrap();
    assert_eq!(causes.len(), 2, "{causes:?}");
    assert!(causes.iter().all(|c| c["field"] == "metadata.labels"));

    let mut long = config_map("long", json!({}));
    long["metadata"]["labels"] = json!({"k": "v".repeat(64)});
    let (code, body) = api.send("POST", CONFIG_MAPS, Some(long), &[]).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_status(&body, 422, "Invalid", "must be no more than 63 characters");

    let mut heavy = config_map("heavy", json!({}));
    heavy["metadata"]["annotations"] =
        json!({"a": "x".repeat(200 * 1024), "b": "y".repeat(100 * 1024)});
    let (code, body) = api.send("POST", CONFIG_MAPS, Some(heavy), &[]).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_status(
        &body,
        422,
        "Invalid",
        "metadata.annotations: Too long: must have at most 262144 bytes",
    );

    // A label patched in later is checked too.
    api.send(
        "POST",
        CONFIG_MAPS,
        Some(config_map("later", json!({}))),
        &[],
    )
    .await;
    let (code, _) = api
        .send(
            "PATCH",
            &format!("{CONFIG_MAPS}/later"),
            Some(json!({"metadata": {"labels": {"-bad": "x"}}})),
            &[("content-type", "application/merge-patch+json")],
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_config_map_holds_at_most_1_mib_over_all_keys() {
    let api = api().await;
    let half = "x".repeat(600 * 1024);
    let (code, body) = api
        .send(
            "POST",
            CONFIG_MAPS,
            Some(config_map("big", json!({"a": half, "b": half}))),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_status(
        &body,
        422,
        "Invalid",
        "Too long: must have at most 1048576 bytes",
    );
}

#[tokio::test]
async fn a_list_at_a_resource_version_that_is_not_one_is_400() {
    let api = api().await;
    let (code, body) = api
        .send(
            "GET",
            &format!("{CONFIG_MAPS}?resourceVersion=abc"),
            None,
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_status(
        &body,
        400,
        "BadRequest",
        "resourceVersion: Invalid value: \"abc\"",
    );
    let (code, _) = api
        .send(
            "GET",
            &format!("{CONFIG_MAPS}?resourceVersion=0"),
            None,
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::OK);
}

/// Regression: a JSON patch that renamed the object or removed its
/// metadata was applied with the change silently undone.
#[tokio::test]
async fn a_patch_may_not_rename_or_strip_what_it_patches() {
    let api = api().await;
    api.send(
        "POST",
        CONFIG_MAPS,
        Some(config_map("named", json!({"a": "b"}))),
        &[],
    )
    .await;
    let json_patch = [("content-type", "application/json-patch+json")];
    let uri = format!("{CONFIG_MAPS}/named");
    let (code, body) = api
        .send(
            "PATCH",
            &uri,
            Some(json!([{"op": "replace", "path": "/metadata/name", "value": "other"}])),
            &json_patch,
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_status(
        &body,
        400,
        "BadRequest",
        "the name of the object (other) does not match the name on the URL (named)",
    );
    let (code, body) = api
        .send(
            "PATCH",
            &uri,
            Some(json!([{"op": "remove", "path": "/metadata"}])),
            &json_patch,
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_status(
        &body,
        400,
        "BadRequest",
        "the name of the object () does not match",
    );
    let (code, body) = api
        .send(
            "PATCH",
            &uri,
            Some(json!([{"op": "replace", "path": "/metadata/namespace", "value": "kube-system"}])),
            &json_patch,
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_status(
        &body,
        400,
        "BadRequest",
        "the namespace of the object (kube-system)",
    );
    let (_, stored) = api.send("GET", &uri, None, &[]).await;
    assert_eq!(stored["data"], json!({"a": "b"}));
    assert_eq!(stored["metadata"]["namespace"], "default");
}

#[tokio::test]
async fn the_bearer_scheme_is_read_in_any_case() {
    let api = api().await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let (code, _, _) = api
            .send_full(
                "GET",
                CONFIG_MAPS,
                None,
                &[("authorization", &format!("{scheme} {TOKEN}"))],
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{scheme}");
    }
    let (code, _, _) = api
        .send_full(
            "GET",
            CONFIG_MAPS,
            None,
            &[("authorization", "Basic dGVzdA==")],
        )
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
}
