use serde_json::{Value, json};

use super::Structural;

/// A CRD's schema with most of what schemas use.
fn widget() -> Structural {
    Structural::new(&json!({
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["image"],
                "properties": {
                    "image": {"type": "string", "minLength": 1, "maxLength": 20,
                              "pattern": "^[a-z][a-z0-9:.-]*$"},
                    "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
                    "size": {"type": "string", "enum": ["small", "large"]},
                    "port": {"x-kubernetes-int-or-string": true},
                    "ratio": {"type": "number", "multipleOf": 0.5, "exclusiveMaximum": true, "maximum": 2},
                    "tags": {"type": "array", "maxItems": 3, "items": {"type": "string"},
                             "x-kubernetes-list-type": "set"},
                    "ports": {"type": "array", "x-kubernetes-list-type": "map",
                              "x-kubernetes-list-map-keys": ["name"],
                              "items": {"type": "object", "properties": {
                                  "name": {"type": "string"},
                                  "number": {"type": "integer", "default": 80}}}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "probe": {"type": "object", "default": {},
                              "properties": {"period": {"type": "integer", "default": 10},
                                             "path": {"type": "string", "nullable": true}}},
                    "choice": {"type": "string", "anyOf": [{"pattern": "^a"}, {"pattern": "^b"}]},
                },
            },
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
        },
    }))
    .unwrap()
}

fn errors(object: Value) -> Vec<String> {
    widget()
        .validate(&object)
        .into_iter()
        .map(|e| e.to_string())
        .collect()
}

fn with_spec(spec: Value) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": spec})
}

#[test]
fn a_valid_object_has_no_errors() {
    let object = with_spec(json!({"image": "web:1", "replicas": 3, "size": "small",
        "port": "http", "ratio": 1.5, "tags": ["a", "b"], "labels": {"a": "b"},
        "ports": [{"name": "a"}, {"name": "b"}], "choice": "beta"}));
    assert_eq!(errors(object), Vec::<String>::new());
    assert_eq!(
        errors(with_spec(json!({"image": "x", "port": 8080}))),
        Vec::<String>::new()
    );
}

#[test]
fn type_errors_are_worded_as_the_api_servers() {
    assert_eq!(
        errors(with_spec(json!({"image": "x", "replicas": "three"}))),
        [
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
        ]
    );
    assert_eq!(
        errors(with_spec(json!({"image": "x", "port": true}))),
        [
            "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\""
        ]
    );
    assert_eq!(
        errors(with_spec(json!({"image": "x", "replicas": null}))),
        [
            "spec.replicas: Invalid value: \"null\": spec.replicas in body must be of type integer: \"null\""
        ]
    );
    // A whole number written as 3.0 is an integer, as in Kubernetes.
    assert!(errors(with_spec(json!({"image": "x", "replicas": 3.0}))).is_empty());
    // Nullable fields take null.
    assert!(errors(with_spec(json!({"image": "x", "probe": {"path": null}}))).is_empty());
}

#[test]
fn value_checks_are_worded_as_the_api_servers() {
    assert_eq!(
        errors(
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
        ),
        ["spec: Required value"]
    );
    assert_eq!(
        errors(with_spec(json!({"replicas": 11}))),
        [
            "spec.image: Required value",
            "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10",
        ]
    );
    assert_eq!(
        errors(with_spec(json!({"image": "x", "replicas": -1}))),
        [
            "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"
        ]
    );
    assert_eq!(
        errors(with_spec(json!({"image": "x", "ratio": 2}))),
        ["spec.ratio: Invalid value: 2: spec.ratio in body should be less than 2"]
    );
    assert_eq!(
        errors(with_spec(json!({"image": "x", "ratio": 0.7}))),
        ["spec.ratio: Invalid value: 0.7: spec.ratio in body should be a multiple of 0.5"]
    );
    assert_eq!(
        errors(with_spec(json!({"image": "x", "size": "huge"}))),
        ["spec.size: Unsupported value: \"huge\": supported values: \"small\", \"large\""]
    );
    assert_eq!(
        errors(with_spec(json!({"image": ""}))),
        [
            "spec.image: Invalid value: \"\": spec.image in body should be at least 1 chars long",
            "spec.image: Invalid value: \"\": spec.image in body should match '^[a-z][a-z0-9:.-]*$'",
        ]
    );
    assert_eq!(
        errors(with_spec(json!({"image": "a-very-long-image-name-indeed"}))),
        ["spec.image: Too long: may not be more than 20 bytes"]
    );
    assert_eq!(
        errors(with_spec(
            json!({"image": "x", "tags": ["a", "b", "c", "d"]})
        )),
        ["spec.tags: Too many: 4: must have at most 3 items"]
    );
    assert_eq!(
        errors(with_spec(json!({"image": "x", "labels": {"a": 1}}))),
        [
            "spec.labels.a: Invalid value: \"integer\": spec.labels.a in body must be of type string: \"integer\""
        ]
    );
}

#[test]
fn list_types_refuse_duplicates() {
    assert_eq!(
        errors(with_spec(json!({"image": "x", "tags": ["a", "b", "a"]}))),
        ["spec.tags[2]: Duplicate value: \"a\""]
    );
    assert_eq!(
        errors(with_spec(
            json!({"image": "x", "ports": [{"name": "a"}, {"name": "a", "number": 1}]})
        )),
        ["spec.ports[1]: Duplicate value: {\"name\":\"a\"}"]
    );
}

#[test]
fn compositions_report_at_no_field() {
    assert_eq!(
        errors(with_spec(json!({"image": "x", "choice": "c"}))),
        [
            "<nil>: Invalid value: \"\": \"spec.choice\" must validate at least one schema (anyOf)",
            "spec.choice: Invalid value: \"c\": spec.choice in body should match '^a'",
        ]
    );
}

#[test]
fn pruning_drops_what_the_schema_does_not_name() {
    let mut object = json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "labels": {"kept": "yes"}},
        "spec": {"image": "x", "extra": 1, "labels": {"any": "key"},
                 "template": {"anything": {"goes": true}},
                 "ports": [{"name": "a", "protocol": "TCP"}]},
        "status": {"ready": true, "phase": "Running"},
        "unknown": {},
    });
    let removed = widget().prune(&mut object);
    assert_eq!(
        object,
        json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "labels": {"kept": "yes"}},
            "spec": {"image": "x", "labels": {"any": "key"},
                     "template": {"anything": {"goes": true}},
                     "ports": [{"name": "a"}]},
            "status": {"ready": true},
        })
    );
    assert_eq!(
        removed,
        [
            "spec.extra",
            "spec.ports[0].protocol",
            "status.phase",
            "unknown"
        ]
    );
}

#[test]
fn defaults_fill_absent_fields_from_the_top_down() {
    let mut object =
        with_spec(json!({"image": "x", "ports": [{"name": "a"}, {"name": "b", "number": 81}]}));
    widget().apply_defaults(&mut object);
    assert_eq!(object["spec"]["replicas"], 1);
    // The defaulted `probe: {}` gets its own field's default.
    assert_eq!(object["spec"]["probe"], json!({"period": 10}));
    assert_eq!(object["spec"]["ports"][0]["number"], 80);
    assert_eq!(object["spec"]["ports"][1]["number"], 81);
    // What is set stays.
    let mut set = with_spec(json!({"image": "x", "replicas": 0, "probe": {"period": 3}}));
    widget().apply_defaults(&mut set);
    assert_eq!(set["spec"]["replicas"], 0);
    assert_eq!(set["spec"]["probe"], json!({"period": 3}));
    // A null where null is not allowed is pruned, then defaulted.
    let mut null = with_spec(json!({"image": "x", "replicas": null}));
    widget().prune(&mut null);
    widget().apply_defaults(&mut null);
    assert_eq!(null["spec"]["replicas"], 1);
}

#[test]
fn a_bad_schema_says_where() {
    let bad = Structural::new(&json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"x": {"type": "text"}}}}}))
    .unwrap_err();
    assert_eq!(
        bad.to_string(),
        "openAPIV3Schema.properties[spec].properties[x].type: Unsupported value: \"text\": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\""
    );
    let pattern = Structural::new(&json!({"type": "object", "pattern": "("})).unwrap_err();
    assert!(pattern.field == "openAPIV3Schema.pattern", "{pattern}");
    // The structural rules: an object at the root, a type everywhere
    // (unless the node keeps unknown fields or is an int-or-string).
    let root = Structural::new(&json!({"type": "string"})).unwrap_err();
    assert_eq!(
        root.to_string(),
        "openAPIV3Schema.type: Invalid value: \"string\": must be object at the root"
    );
    let untyped =
        Structural::new(&json!({"type": "object", "properties": {"spec": {}}})).unwrap_err();
    assert_eq!(
        untyped.to_string(),
        "openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"
    );
    Structural::new(&json!({"type": "object", "properties": {
        "any": {"x-kubernetes-preserve-unknown-fields": true},
        "port": {"x-kubernetes-int-or-string": true}}}))
    .unwrap();
}
