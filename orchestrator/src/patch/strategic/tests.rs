//! Cases from Kubernetes' strategic merge patch documentation and the
//! patches kubectl apply sends.

use serde_json::{Value, json};

use super::strategic_merge;

fn pod_patch(original: Value, patch: Value) -> Value {
    let schema = crate::schema::named("io.k8s.api.core.v1.Pod");
    strategic_merge(&original, &patch, schema).unwrap()
}

#[test]
fn containers_merge_by_name() {
    let result = pod_patch(
        json!({"spec": {"containers": [{"name": "nginx", "image": "nginx-1.0"}]}}),
        json!({"spec": {"containers": [{"name": "log-tailer", "image": "log-tailer-1.0"}]}}),
    );
    assert_eq!(
        result,
        json!({"spec": {"containers": [
            {"name": "nginx", "image": "nginx-1.0"},
            {"name": "log-tailer", "image": "log-tailer-1.0"}
        ]}})
    );
}

#[test]
fn a_matching_element_is_merged_not_replaced() {
    let result = pod_patch(
        json!({"spec": {"containers": [{"name": "c", "image": "a", "command": ["sh"]}]}}),
        json!({"spec": {"containers": [{"name": "c", "image": "b"}]}}),
    );
    assert_eq!(
        result["spec"]["containers"],
        json!([{"name": "c", "image": "b", "command": ["sh"]}])
    );
}

#[test]
fn lists_without_a_strategy_are_replaced() {
    let result = pod_patch(
        json!({"spec": {"containers": [{"name": "c", "args": ["a", "b"]}]}}),
        json!({"spec": {"containers": [{"name": "c", "args": ["z"]}]}}),
    );
    assert_eq!(result["spec"]["containers"][0]["args"], json!(["z"]));
}

#[test]
fn patch_delete_removes_an_element() {
    let result = pod_patch(
        json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
        json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
    );
    assert_eq!(result["spec"]["containers"], json!([{"name": "b"}]));
}

#[test]
fn patch_replace_in_a_list_replaces_the_list() {
    let result = pod_patch(
        json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}}),
        json!({"spec": {"containers": [{"name": "c"}, {"$patch": "replace"}]}}),
    );
    assert_eq!(result["spec"]["containers"], json!([{"name": "c"}]));
}

#[test]
fn patch_replace_on_a_map_replaces_the_map() {
    let result = pod_patch(
        json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
        json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
    );
    assert_eq!(result["metadata"]["labels"], json!({"c": "3"}));
}

#[test]
fn patch_delete_on_a_map_removes_it() {
    let result = pod_patch(
        json!({"metadata": {"labels": {"a": "1"}, "name": "p"}}),
        json!({"metadata": {"labels": {"$patch": "delete"}}}),
    );
    assert_eq!(result, json!({"metadata": {"name": "p"}}));
}

#[test]
fn null_deletes_a_field() {
    let result = pod_patch(
        json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
        json!({"metadata": {"labels": {"a": null}}}),
    );
    assert_eq!(result["metadata"]["labels"], json!({"b": "2"}));
}

#[test]
fn primitive_sets_union_and_delete_from_primitive_list() {
    let result = pod_patch(
        json!({"metadata": {"finalizers": ["a", "b"]}}),
        json!({"metadata": {"finalizers": ["c", "a"]}}),
    );
    assert_eq!(result["metadata"]["finalizers"], json!(["a", "b", "c"]));
    let result = pod_patch(
        json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
    );
    assert_eq!(result["metadata"]["finalizers"], json!(["a", "c"]));
}

#[test]
fn set_element_order_orders_the_merged_list() {
    let result = pod_patch(
        json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "c"}, {"name": "a"}],
            "containers": [{"name": "c"}]
        }}),
    );
    assert_eq!(
        result["spec"]["containers"],
        json!([{"name": "b"}, {"name": "c"}, {"name": "a"}])
    );
    let result = pod_patch(
        json!({"metadata": {"finalizers": ["x", "y"]}}),
        json!({"metadata": {"$setElementOrder/finalizers": ["y", "z", "x"], "finalizers": ["z"]}}),
    );
    assert_eq!(result["metadata"]["finalizers"], json!(["y", "z", "x"]));
}

#[test]
fn retain_keys_drops_the_other_volume_source() {
    let result = pod_patch(
        json!({"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/tmp"}}]}}),
        json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}, "$retainKeys": ["emptyDir", "name"]}]}}),
    );
    assert_eq!(
        result["spec"]["volumes"],
        json!([{"name": "v", "emptyDir": {}}])
    );
}

#[test]
fn nested_lists_merge_by_their_own_keys() {
    let result = pod_patch(
        json!({"spec": {"containers": [{"name": "c",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "ports": [{"containerPort": 80, "name": "http"}]}]}}),
        json!({"spec": {"containers": [{"name": "c",
            "env": [{"name": "B", "value": "3"}],
            "ports": [{"containerPort": 443}]}]}}),
    );
    let c = &result["spec"]["containers"][0];
    assert_eq!(
        c["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}])
    );
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 80, "name": "http"}, {"containerPort": 443}])
    );
}

#[test]
fn status_conditions_merge_by_type() {
    let result = pod_patch(
        json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}}),
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    assert_eq!(
        result["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}])
    );
}

#[test]
fn a_new_element_has_its_directives_resolved() {
    let result = pod_patch(
        json!({"spec": {}}),
        json!({"spec": {"containers": [{"name": "c", "$setElementOrder/env": [{"name": "A"}], "env": [{"name": "A", "value": "1"}]}]}}),
    );
    assert_eq!(
        result["spec"]["containers"],
        json!([{"name": "c", "env": [{"name": "A", "value": "1"}]}])
    );
}

#[test]
fn errors_are_reported() {
    let schema = crate::schema::named("io.k8s.api.core.v1.Pod");
    let missing_key = json!({"spec": {"containers": [{"image": "x"}]}});
    let err = strategic_merge(&json!({}), &missing_key, schema).unwrap_err();
    assert!(
        err.contains("does not contain declared merge key: name"),
        "{err}"
    );
    let unknown = json!({"metadata": {"$patch": "explode"}});
    let err = strategic_merge(&json!({}), &unknown, schema).unwrap_err();
    assert!(err.contains("Unknown patch type: explode"), "{err}");
}

#[test]
fn without_a_schema_lists_are_replaced() {
    let result = strategic_merge(
        &json!({"spec": {"list": [1, 2]}}),
        &json!({"spec": {"list": [3]}}),
        None,
    )
    .unwrap();
    assert_eq!(result["spec"]["list"], json!([3]));
}

/// `kubectl set image` on a two-container workload sends only the changed
/// container, with the order of both: the other must stay.
#[test]
fn workload_templates_merge_containers_by_name() {
    let spec = json!({"containers": [
        {"name": "nginx", "image": "nginx:1", "env": [{"name": "A", "value": "1"}]},
        {"name": "perl", "image": "perl:1"}
    ]});
    let patch_spec = json!({
        "$setElementOrder/containers": [{"name": "nginx"}, {"name": "perl"}],
        "containers": [{
            "name": "nginx", "image": "nginx:2",
            "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
            "env": [{"name": "B", "value": "2"}]
        }]
    });
    let wrap = |pointer: &[&str], leaf: Value| {
        pointer
            .iter()
            .rev()
            .fold(leaf, |inner, key| json!({ *key: inner }))
    };
    let kinds: [(&str, &[&str]); 4] = [
        (
            "io.k8s.api.apps.v1.Deployment",
            &["spec", "template", "spec"],
        ),
        (
            "io.k8s.api.apps.v1.ReplicaSet",
            &["spec", "template", "spec"],
        ),
        ("io.k8s.api.batch.v1.Job", &["spec", "template", "spec"]),
        (
            "io.k8s.api.batch.v1.CronJob",
            &["spec", "jobTemplate", "spec", "template", "spec"],
        ),
    ];
    for (schema, path) in kinds {
        let original = wrap(path, spec.clone());
        let patch = wrap(path, patch_spec.clone());
        let result = strategic_merge(&original, &patch, crate::schema::named(schema)).unwrap();
        let pointer = format!("/{}/containers", path.join("/"));
        assert_eq!(
            result.pointer(&pointer).unwrap(),
            &json!([
                {"name": "nginx", "image": "nginx:2",
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "perl", "image": "perl:1"}
            ]),
            "{schema}"
        );
    }
}
