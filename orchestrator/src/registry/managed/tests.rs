use super::*;

fn deployment() -> Shape {
    Shape::of("io.k8s.api.apps.v1.Deployment")
}

fn kubectl() -> Writer<'static> {
    Writer {
        manager: "kubectl",
        operation: Operation::Apply,
        api_version: "apps/v1",
        subresource: None,
    }
}

fn updater(manager: &'static str) -> Writer<'static> {
    Writer {
        manager,
        operation: Operation::Update,
        api_version: "apps/v1",
        subresource: None,
    }
}

fn web(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}]},
            },
        },
    })
}

/// `manager`'s update of the Deployment from `live` to `next`.
fn update(managers: &mut Managers, live: &Value, next: &Value, manager: &'static str) {
    managers.update(live, next, deployment(), Scope::Spec, &updater(manager));
}

/// Applies `config` over `live` as the API server's apply does, the merge
/// being strategic merge.
fn apply(
    managers: &mut Managers,
    live: &Value,
    config: &Value,
    writer: &Writer,
    force: bool,
) -> Result<Value, Conflicts> {
    let merged = crate::patch::strategic_merge(
        live,
        config,
        crate::schema::named("io.k8s.api.apps.v1.Deployment"),
    )
    .unwrap();
    managers.apply(
        live,
        merged,
        config,
        deployment(),
        Scope::Spec,
        writer,
        force,
        || None,
    )
}

#[test]
fn fields_v1_reads_back_as_written() {
    let v1 = json!({
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}}}, "f:replicas": {}},
    });
    let set = FieldSet::from_fields_v1(&v1);
    assert_eq!(set.to_fields_v1(), v1);
    assert!(set.has(&["f:metadata", "f:labels"]));
    assert!(!set.has(&["f:metadata"]));
    assert!(set.has(&["f:spec", "f:containers", "k:{\"name\":\"c\"}"]));
}

#[test]
fn an_applied_configuration_owns_its_values_keyed_by_the_schema() {
    let set = fields_of(&web(3, "nginx"), deployment(), Scope::Spec);
    assert_eq!(
        set.to_fields_v1(),
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                // A label selector is one value.
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                        ".": {},
                        "f:name": {},
                        "f:image": {},
                        // Ports are keyed by port and protocol, TCP by default.
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}},
                    }}},
                },
            },
        })
    );
}

#[test]
fn comparison_marks_new_maps_and_leaves() {
    let old = web(3, "nginx");
    let mut new = web(5, "nginx");
    new["metadata"]["annotations"] = json!({"a": "b"});
    new["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("ports");
    let c = compare(&old, &new, deployment(), Scope::Spec);
    assert_eq!(c.modified.paths(), vec![".spec.replicas"]);
    assert_eq!(
        c.added.paths(),
        vec![".metadata.annotations", ".metadata.annotations.a"]
    );
    assert_eq!(
        c.removed.paths(),
        vec![
            ".spec.template.spec.containers[name=\"web\"].ports",
            ".spec.template.spec.containers[name=\"web\"].ports[containerPort=80,protocol=\"TCP\"]",
            ".spec.template.spec.containers[name=\"web\"].ports[containerPort=80,protocol=\"TCP\"].containerPort",
        ]
    );
}

#[test]
fn an_update_takes_over_the_fields_it_changes() {
    let live = web(3, "nginx");
    let mut managers = Managers::default();
    update(&mut managers, &json!({}), &live, "creator");
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    update(&mut managers, &live, &scaled, "scaler");
    let entries = managers.encode().unwrap();
    let by = |name: &str| {
        FieldSet::from_fields_v1(
            &entries
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["manager"] == name)
                .unwrap()["fieldsV1"],
        )
    };
    assert!(by("scaler").has(&["f:spec", "f:replicas"]));
    assert!(!by("creator").has(&["f:spec", "f:replicas"]));
    assert!(by("creator").has(&["f:spec", "f:selector"]));
    // Created maps are members of the creator's set, the object's own
    // structs are not.
    assert!(by("creator").has(&["f:metadata", "f:labels"]));
    assert!(!by("creator").has(&["f:spec"]));
}

#[test]
fn an_apply_conflicts_with_a_field_another_manager_changed() {
    let mut managers = Managers::default();
    let live = apply(
        &mut managers,
        &json!({}),
        &web(3, "nginx"),
        &kubectl(),
        false,
    )
    .unwrap();
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    update(&mut managers, &live, &scaled, "kubectl-scale");
    managers.write_to(&mut scaled);

    // Applying the old count again would change what kubectl-scale set.
    let mut managers = Managers::of(&scaled);
    let err = apply(&mut managers, &scaled, &web(3, "nginx"), &kubectl(), false).unwrap_err();
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"kubectl-scale\" using apps/v1: .spec.replicas"
    );
    assert_eq!(
        err.fields,
        vec![(
            "\"kubectl-scale\" using apps/v1".to_string(),
            ".spec.replicas".to_string()
        )]
    );

    // Applying the value it holds is no conflict: both hold it.
    let mut managers = Managers::of(&scaled);
    apply(&mut managers, &scaled, &web(5, "nginx"), &kubectl(), false).unwrap();
    let mut both = scaled.clone();
    managers.write_to(&mut both);
    let holders = both["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| FieldSet::from_fields_v1(&e["fieldsV1"]).has(&["f:spec", "f:replicas"]))
        .count();
    assert_eq!(holders, 2);

    // Forced, the applier takes the field.
    let mut managers = Managers::of(&scaled);
    let forced = apply(&mut managers, &scaled, &web(3, "nginx"), &kubectl(), true).unwrap();
    assert_eq!(forced["spec"]["replicas"], 3);
    let mut out = forced.clone();
    managers.write_to(&mut out);
    let entries = out["metadata"]["managedFields"].as_array().unwrap();
    assert!(entries.iter().all(|e| e["manager"] == "kubectl"
        || !FieldSet::from_fields_v1(&e["fieldsV1"]).has(&["f:spec", "f:replicas"])));
}

#[test]
fn conflicts_with_several_fields_are_listed_by_manager() {
    let mut managers = Managers::default();
    let live = web(3, "nginx");
    update(&mut managers, &json!({}), &live, "other");
    let err = apply(&mut managers, &live, &web(4, "httpd"), &kubectl(), false).unwrap_err();
    assert_eq!(
        err.message,
        "Apply failed with 2 conflicts: conflicts with \"other\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"web\"].image"
    );
}

#[test]
fn fields_an_applier_stops_applying_are_removed_unless_held() {
    let mut managers = Managers::default();
    let mut config = web(3, "nginx");
    config["metadata"]["labels"]["tier"] = json!("front");
    config["spec"]["minReadySeconds"] = json!(5);
    let live = apply(&mut managers, &json!({}), &config, &kubectl(), false).unwrap();
    let mut live = live;
    managers.write_to(&mut live);

    // Another manager sets an annotation and takes the ready seconds.
    let mut edited = live.clone();
    edited["metadata"]["annotations"] = json!({"note": "x"});
    edited["spec"]["minReadySeconds"] = json!(7);
    let mut managers = Managers::of(&live);
    update(&mut managers, &live, &edited, "editor");
    managers.write_to(&mut edited);

    // The applier drops the label, the ready seconds and its port.
    let mut managers = Managers::of(&edited);
    let mut config = web(3, "nginx");
    config["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("ports");
    let out = apply(&mut managers, &edited, &config, &kubectl(), false).unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(out["metadata"]["annotations"], json!({"note": "x"}));
    // Held by the editor, it stays.
    assert_eq!(out["spec"]["minReadySeconds"], 7);
    assert!(
        out["spec"]["template"]["spec"]["containers"][0]
            .get("ports")
            .is_none()
    );
    assert_eq!(out["metadata"]["name"], "web");
}

#[test]
fn a_container_no_longer_applied_goes_and_one_still_applied_stays() {
    let mut managers = Managers::default();
    let mut two = web(1, "nginx");
    two["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "toolbox"}));
    let mut live = apply(&mut managers, &json!({}), &two, &kubectl(), false).unwrap();
    managers.write_to(&mut live);
    let mut managers = Managers::of(&live);
    let out = apply(&mut managers, &live, &web(1, "nginx"), &kubectl(), false).unwrap();
    let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["web"]);
}

#[test]
fn an_unchanged_apply_keeps_its_time_and_a_new_manager_is_recorded() {
    let mut managers = Managers::default();
    let mut live = apply(
        &mut managers,
        &json!({}),
        &web(3, "nginx"),
        &kubectl(),
        false,
    )
    .unwrap();
    managers.write_to(&mut live);
    let before = live["metadata"]["managedFields"].clone();
    let mut managers = Managers::of(&live);
    apply(&mut managers, &live, &web(3, "nginx"), &kubectl(), false).unwrap();
    assert_eq!(managers.encode().unwrap(), before);

    let other = Writer {
        manager: "other",
        ..kubectl()
    };
    apply(&mut managers, &live, &web(3, "nginx"), &other, false).unwrap();
    assert_eq!(managers.encode().unwrap().as_array().unwrap().len(), 2);
}

#[test]
fn an_update_may_set_or_clear_the_managers() {
    let live = json!({"metadata": {"managedFields": [
        {"manager": "a", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}},
    ]}});
    let kept = json!({"metadata": {}});
    assert_eq!(Managers::for_update(&live, &kept, None).0.len(), 1);
    let cleared = json!({"metadata": {"managedFields": [{}]}});
    assert!(Managers::for_update(&live, &cleared, None).0.is_empty());
    let cleared = json!({"metadata": {"managedFields": []}});
    assert!(Managers::for_update(&live, &cleared, None).0.is_empty());
    let moved = json!({"metadata": {"managedFields": [
        {"manager": "b", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}},
    ]}});
    assert_eq!(Managers::for_update(&live, &moved, None).0[0].manager, "b");
    assert_eq!(
        Managers::for_update(&live, &moved, Some("status")).0[0].manager,
        "a"
    );
}

#[test]
fn kubectl_may_take_over_what_client_side_apply_set_and_still_holds() {
    let mut live = web(3, "nginx");
    let last = web(3, "nginx");
    live["metadata"]["annotations"] = json!({LAST_APPLIED: last.to_string()});
    live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("httpd");
    let allowed = applied_by_kubectl(&live, deployment()).unwrap();
    assert!(allowed.has(&["f:spec", "f:replicas"]));
    // Changed since by someone else: not kubectl's to take.
    assert!(!allowed.has(&[
        "f:spec",
        "f:template",
        "f:spec",
        "f:containers",
        "k:{\"name\":\"web\"}",
        "f:image"
    ]));
}

#[test]
fn update_managers_beyond_ten_become_ancient_changes() {
    let mut managers = Managers::default();
    let mut live = json!({"metadata": {"name": "c"}, "data": {}});
    for i in 0..12 {
        let mut next = live.clone();
        next["data"][format!("k{i}")] = json!("v");
        let name: &'static str = Box::leak(format!("m{i}").into_boxed_str());
        managers.update(
            &live,
            &next,
            Shape::of("io.k8s.api.core.v1.ConfigMap"),
            Scope::Object,
            &Writer {
                manager: name,
                operation: Operation::Update,
                api_version: "v1",
                subresource: None,
            },
        );
        live = next;
    }
    assert_eq!(managers.0.len(), 10);
    assert!(managers.0.iter().any(|e| e.manager == "ancient-changes"));
}
