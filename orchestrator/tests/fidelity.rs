//! Answers real clients rely on, checked against what the Kubernetes API
//! server gives: resourceVersion rules, protected namespaces, DELETE's
//! answer per kind, strategic merge on workloads, discovery details.

mod router;

use axum::http::StatusCode;
use router::api;
use serde_json::{Value, json};

const CONFIG_MAPS: &str = "/api/v1/namespaces/default/configmaps";

fn config_map(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "0"}})
}

/// A Deployment of `containers`, its pods labelled `app: <name>`.
fn deployment(name: &str, containers: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": containers}}}})
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn rv(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn updates_follow_the_resource_version_rules() {
    let api = api().await;
    let (code, created) = api
        .send("POST", CONFIG_MAPS, Some(config_map("rv")), &[])
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let uri = format!("{CONFIG_MAPS}/rv");
    let stale = rv(&created);

    // No resourceVersion, or "0": an unconditional update.
    let mut body = config_map("rv");
    body["data"]["k"] = json!("1");
    let (code, updated) = api.send("PUT", &uri, Some(body.clone()), &[]).await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    body["metadata"]["resourceVersion"] = json!("0");
    body["data"]["k"] = json!("2");
    let (code, updated) = api.send("PUT", &uri, Some(body.clone()), &[]).await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert_eq!(updated["data"]["k"], "2");

    // A stale one: 409, and nothing written.
    body["metadata"]["resourceVersion"] = json!(stale);
    body["data"]["k"] = json!("lost");
    let (code, status) = api.send("PUT", &uri, Some(body.clone()), &[]).await;
    assert_eq!(code, StatusCode::CONFLICT, "{status}");
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Operation cannot be fulfilled on configmaps \"rv\": the object has been modified; please apply your changes to the latest version and try again"
    );
    assert_eq!(status["details"]["name"], "rv");
    assert_eq!(status["details"]["kind"], "configmaps");

    // Patches carrying a stale resourceVersion conflict too, of every type.
    for (patch_type, patch) in [
        (
            "merge",
            json!({"metadata": {"resourceVersion": stale}, "data": {"k": "lost"}}),
        ),
        (
            "strategic-merge",
            json!({"metadata": {"resourceVersion": stale}, "data": {"k": "lost"}}),
        ),
        (
            "json",
            json!([
                {"op": "replace", "path": "/metadata/resourceVersion", "value": stale},
                {"op": "replace", "path": "/data/k", "value": "lost"}
            ]),
        ),
    ] {
        let (code, status) = api.patch(&uri, patch_type, patch).await;
        assert_eq!(code, StatusCode::CONFLICT, "{patch_type}: {status}");
    }
    let (_, current) = api.send("GET", &uri, None, &[]).await;
    assert_eq!(current["data"]["k"], "2");

    // With the current one it applies.
    let (code, patched) = api
        .patch(
            &uri,
            "merge",
            json!({"metadata": {"resourceVersion": rv(&current)}, "data": {"k": "3"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{patched}");
    assert_eq!(patched["data"]["k"], "3");

    // A resourceVersion on a create is refused with the API server's words.
    let mut copied = config_map("copied");
    copied["metadata"]["resourceVersion"] = json!(stale);
    let (code, status) = api.send("POST", CONFIG_MAPS, Some(copied), &[]).await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{status}");
    assert_eq!(
        status["message"],
        "resourceVersion should not be set on objects to be created"
    );
}

#[tokio::test]
async fn scale_with_a_stale_resource_version_conflicts() {
    let api = api().await;
    let web = deployment("web", json!([{"name": "c", "image": "toolbox"}]));
    let (code, created) = api.send("POST", DEPLOYMENTS, Some(web), &[]).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let uri = "/apis/apps/v1/namespaces/default/deployments/web/scale";
    let scale = |rv: &str, replicas: i64| {
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": rv},
            "spec": {"replicas": replicas}})
    };
    let (code, scaled) = api.send("PUT", uri, Some(scale("0", 2)), &[]).await;
    assert_eq!(code, StatusCode::OK, "{scaled}");
    assert_eq!(scaled["spec"]["replicas"], 2);
    let (code, status) = api
        .send("PUT", uri, Some(scale(&rv(&created), 3)), &[])
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{status}");
    assert_eq!(
        status["message"],
        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
    );
}

/// `kubectl set image deployment/two nginx=…` on a two-container
/// Deployment: the other container stays.
#[tokio::test]
async fn set_image_keeps_the_other_containers() {
    let api = api().await;
    let two = deployment(
        "two",
        json!([
            {"name": "nginx", "image": "nginx:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "perl", "image": "perl:1"}
        ]),
    );
    let (code, _) = api.send("POST", DEPLOYMENTS, Some(two), &[]).await;
    assert_eq!(code, StatusCode::CREATED);
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}, {"name": "perl"}],
        "containers": [{"image": "nginx:2", "name": "nginx",
            "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
            "env": [{"name": "B", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "b"}}}]}]
    }}}});
    let (code, patched) = api
        .patch(&format!("{DEPLOYMENTS}/two"), "strategic-merge", patch)
        .await;
    assert_eq!(code, StatusCode::OK, "{patched}");
    let containers = &patched["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["name"], "nginx");
    assert_eq!(containers[0]["image"], "nginx:2");
    assert_eq!(
        containers[0]["env"],
        json!([{"name": "A", "value": "1"},
               {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "b"}}}])
    );
    assert_eq!(containers[1]["name"], "perl");
    assert_eq!(containers[1]["image"], "perl:1");
    assert_eq!(containers.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn system_namespaces_may_not_be_deleted() {
    let api = api().await;
    for name in ["kube-system", "kube-public", "kube-node-lease", "mine"] {
        let (code, _) = api
            .send(
                "POST",
                "/api/v1/namespaces",
                Some(json!({"metadata": {"name": name}})),
                &[],
            )
            .await;
        assert_eq!(code, StatusCode::CREATED);
    }
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let (code, status) = api
            .send("DELETE", &format!("/api/v1/namespaces/{name}"), None, &[])
            .await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{status}");
        assert_eq!(status["reason"], "Forbidden");
        assert_eq!(
            status["message"],
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted")
        );
        assert_eq!(
            status["details"],
            json!({"name": name, "group": "", "kind": "namespaces"})
        );
        let (code, _) = api
            .send("GET", &format!("/api/v1/namespaces/{name}"), None, &[])
            .await;
        assert_eq!(code, StatusCode::OK);
    }
    let (code, body) = api
        .send("DELETE", "/api/v1/namespaces/mine", None, &[])
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["kind"], "Namespace");
}

/// The API server's storage answers a DELETE with the object for pods,
/// Services, volumes and namespaces, and with a success Status otherwise.
#[tokio::test]
async fn delete_answers_as_the_kind_does() {
    let api = api().await;
    let (_, created) = api
        .send("POST", CONFIG_MAPS, Some(config_map("gone")), &[])
        .await;
    let (code, status) = api
        .send("DELETE", &format!("{CONFIG_MAPS}/gone"), None, &[])
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": "gone", "group": "", "kind": "configmaps",
                "uid": created["metadata"]["uid"]}})
    );
    api.send(
        "POST",
        "/api/v1/namespaces/default/pods",
        Some(router::pod("p")),
        &[],
    )
    .await;
    let (code, pod) = api
        .send("DELETE", "/api/v1/namespaces/default/pods/p", None, &[])
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(pod["kind"], "Pod");
}

#[tokio::test]
async fn version_answers_with_and_without_the_slash() {
    let api = api().await;
    for uri in ["/version", "/version/"] {
        let (code, body) = api.send("GET", uri, None, &[]).await;
        assert_eq!(code, StatusCode::OK, "{uri}");
        assert_eq!(body["major"], "1", "{uri}");
    }
}

#[tokio::test]
async fn discovery_carries_storage_version_hashes() {
    let api = api().await;
    let (_, core) = api.send("GET", "/api/v1", None, &[]).await;
    let pods = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods")
        .unwrap();
    // The hash the API server gives pods.
    assert_eq!(pods["storageVersionHash"], "xPOwRZ+Yhw8=");
    assert_eq!(pods["categories"], json!(["all"]));
}

/// A watch with a label selector: an object relabelled out of it is
/// DELETED for that watch, one relabelled into it ADDED, whether the watch
/// resumes from a list's resourceVersion or starts with the initial state.
#[tokio::test]
async fn a_selector_watch_sees_objects_leave_and_join() {
    let api = api().await;
    let labelled = |name: &str, tier: &str| {
        let mut object = config_map(name);
        object["metadata"]["labels"] = json!({"tier": tier});
        object
    };
    for (name, tier) in [("x", "a"), ("y", "b"), ("z", "a")] {
        let (code, _) = api
            .send("POST", CONFIG_MAPS, Some(labelled(name, tier)), &[])
            .await;
        assert_eq!(code, StatusCode::CREATED);
    }
    let (_, listed) = api
        .send(
            "GET",
            &format!("{CONFIG_MAPS}?labelSelector=tier%3Da"),
            None,
            &[],
        )
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    let from = listed["metadata"]["resourceVersion"].as_str().unwrap();
    let resumed = api
        .watch(&format!(
            "{CONFIG_MAPS}?watch=true&labelSelector=tier%3Da&resourceVersion={from}&timeoutSeconds=2"
        ))
        .await;
    let fresh = api
        .watch(&format!(
            "{CONFIG_MAPS}?watch=true&labelSelector=tier%3Da&timeoutSeconds=2"
        ))
        .await;
    let relabel = |tier: &str| json!({"metadata": {"labels": {"tier": tier}}});
    let steps = [
        ("x", Some(relabel("b"))),                // leaves: DELETED
        ("y", Some(relabel("a"))),                // joins: ADDED
        ("z", Some(json!({"data": {"k": "1"}}))), // stays: MODIFIED
        ("x", Some(json!({"data": {"k": "1"}}))), // outside: nothing
        ("y", None),                              // deleted while in: DELETED
        ("x", None),                              // deleted while out: nothing
    ];
    for (name, patch) in steps {
        let uri = format!("{CONFIG_MAPS}/{name}");
        let code = match patch {
            Some(patch) => api.patch(&uri, "merge", patch).await.0,
            None => api.send("DELETE", &uri, None, &[]).await.0,
        };
        assert_eq!(code, StatusCode::OK);
    }
    let seen = |events: Vec<Value>| -> Vec<String> {
        events
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["type"].as_str().unwrap(),
                    e["object"]["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let changes = ["DELETED x", "ADDED y", "MODIFIED z", "DELETED y"];
    assert_eq!(seen(router::events(resumed).await), changes);
    let mut expected = vec!["ADDED x", "ADDED z"];
    expected.extend(changes);
    assert_eq!(seen(router::events(fresh).await), expected);
}

/// The pages of a list are one snapshot, at the first page's revision,
/// whatever is written between them, as the API server's are.
#[tokio::test]
async fn paged_lists_are_one_snapshot() {
    let api = api().await;
    for name in ["p-a", "p-b", "p-c"] {
        api.send("POST", CONFIG_MAPS, Some(config_map(name)), &[])
            .await;
    }
    let (code, first) = api
        .send("GET", &format!("{CONFIG_MAPS}?limit=1"), None, &[])
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(first["items"][0]["metadata"]["name"], "p-a");
    let revision = first["metadata"]["resourceVersion"].clone();
    // Written between the pages: a change, an addition and a deletion.
    api.patch(
        &format!("{CONFIG_MAPS}/p-b"),
        "merge",
        json!({"data": {"k": "changed"}}),
    )
    .await;
    api.send("POST", CONFIG_MAPS, Some(config_map("p-d")), &[])
        .await;
    api.send("DELETE", &format!("{CONFIG_MAPS}/p-c"), None, &[])
        .await;
    let mut token = first["metadata"]["continue"].as_str().unwrap().to_string();
    let mut seen = Vec::new();
    loop {
        let (code, page) = api
            .send(
                "GET",
                &format!("{CONFIG_MAPS}?limit=1&continue={token}"),
                None,
                &[],
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{page}");
        assert_eq!(page["metadata"]["resourceVersion"], revision);
        for item in page["items"].as_array().unwrap() {
            seen.push(format!(
                "{}={}",
                item["metadata"]["name"].as_str().unwrap(),
                item["data"]["k"].as_str().unwrap()
            ));
        }
        match page["metadata"]["continue"].as_str() {
            Some(next) if !next.is_empty() => token = next.to_string(),
            _ => break,
        }
    }
    assert_eq!(seen, ["p-b=0", "p-c=0"]);
    // A new list sees the writes.
    let (_, now) = api.send("GET", CONFIG_MAPS, None, &[]).await;
    let names: Vec<&str> = now["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["p-a", "p-b", "p-d"]);
}

#[tokio::test]
async fn resource_version_match_is_honoured() {
    let api = api().await;
    let (_, created) = api
        .send("POST", CONFIG_MAPS, Some(config_map("m")), &[])
        .await;
    let old = rv(&created);
    let (_, listed) = api.send("GET", CONFIG_MAPS, None, &[]).await;
    let current = listed["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let get = |query: String| {
        let api = &api;
        async move {
            api.send("GET", &format!("{CONFIG_MAPS}?{query}"), None, &[])
                .await
        }
    };
    let (code, exact) = get(format!(
        "resourceVersion={current}&resourceVersionMatch=Exact"
    ))
    .await;
    assert_eq!(code, StatusCode::OK, "{exact}");
    assert_eq!(exact["metadata"]["resourceVersion"], current.as_str());
    api.patch(
        &format!("{CONFIG_MAPS}/m"),
        "merge",
        json!({"data": {"k": "1"}}),
    )
    .await;
    let (code, gone) = get(format!("resourceVersion={old}&resourceVersionMatch=Exact")).await;
    assert_eq!(code, StatusCode::GONE, "{gone}");
    assert_eq!(gone["reason"], "Expired");
    let (code, newer) = get(format!(
        "resourceVersion={old}&resourceVersionMatch=NotOlderThan"
    ))
    .await;
    assert_eq!(code, StatusCode::OK, "{newer}");
    let (code, ahead) =
        get("resourceVersion=999999&resourceVersionMatch=NotOlderThan".into()).await;
    assert_eq!(code, StatusCode::GATEWAY_TIMEOUT, "{ahead}");
    assert_eq!(ahead["reason"], "Timeout");
    assert!(
        ahead["message"]
            .as_str()
            .unwrap()
            .starts_with("Too large resource version: 999999")
    );
    for (query, message) in [
        (
            "resourceVersionMatch=Exact",
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        (
            "resourceVersion=0&resourceVersionMatch=Exact",
            "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ),
    ] {
        let (code, status) = get(query.into()).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
        assert!(
            status["message"].as_str().unwrap().contains(message),
            "{status}"
        );
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .starts_with("ListOptions.meta.k8s.io \"\" is invalid"),
            "{status}"
        );
    }
}

#[tokio::test]
async fn one_priority_class_may_be_the_global_default() {
    let api = api().await;
    let uri = "/apis/scheduling.k8s.io/v1/priorityclasses";
    let class = |name: &str| {
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": 10, "globalDefault": true})
    };
    let (code, _) = api.send("POST", uri, Some(class("first")), &[]).await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, status) = api.send("POST", uri, Some(class("second")), &[]).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{status}");
    assert_eq!(
        status["message"],
        "priorityclasses.scheduling.k8s.io \"second\" is forbidden: PriorityClass first is already marked as default. Only one default can exist"
    );
    // A pod without a class gets the default's priority.
    let (code, pod) = api
        .send(
            "POST",
            "/api/v1/namespaces/default/pods",
            Some(router::pod("p")),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{pod}");
    assert_eq!(pod["spec"]["priority"], 10);
    assert_eq!(pod["spec"]["priorityClassName"], "first");
}

/// `pods/eviction` spends the pod's disruption budget, or answers 429
/// with the budget's reason, as `kubectl drain` expects.
#[tokio::test]
async fn evictions_honour_disruption_budgets() {
    let api = api().await;
    let pods = "/api/v1/namespaces/default/pods";
    let running = |name: &str| {
        let mut pod = router::pod(name);
        pod["metadata"]["labels"] = json!({"app": "guarded"});
        pod
    };
    for name in ["g1", "g2"] {
        let (code, _) = api.send("POST", pods, Some(running(name)), &[]).await;
        assert_eq!(code, StatusCode::CREATED);
        let (_, mut pod) = api.send("GET", &format!("{pods}/{name}"), None, &[]).await;
        pod["status"] = json!({"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]});
        let (code, _) = api
            .send("PUT", &format!("{pods}/{name}/status"), Some(pod), &[])
            .await;
        assert_eq!(code, StatusCode::OK);
    }
    let budgets = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";
    let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "guard"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}});
    let (code, _) = api.send("POST", budgets, Some(pdb), &[]).await;
    assert_eq!(code, StatusCode::CREATED);
    // What the disruption controller would write: one disruption allowed.
    let (_, mut guard) = api
        .send("GET", &format!("{budgets}/guard"), None, &[])
        .await;
    guard["status"] = json!({"observedGeneration": 1, "disruptionsAllowed": 1,
        "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2});
    let (code, _) = api
        .send("PUT", &format!("{budgets}/guard/status"), Some(guard), &[])
        .await;
    assert_eq!(code, StatusCode::OK);

    let evict = |name: &str| {
        json!({"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": name, "namespace": "default"}})
    };
    let (code, answer) = api
        .send(
            "POST",
            &format!("{pods}/g1/eviction"),
            Some(evict("g1")),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["status"], "Success");
    let (_, guard) = api
        .send("GET", &format!("{budgets}/guard"), None, &[])
        .await;
    assert_eq!(guard["status"]["disruptionsAllowed"], 0);
    assert!(
        guard["status"]["disruptedPods"]["g1"].is_string(),
        "{guard}"
    );

    let (code, status) = api
        .send(
            "POST",
            &format!("{pods}/g2/eviction"),
            Some(evict("g2")),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{status}");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(
        status["message"],
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(
        status["details"]["causes"][0],
        json!({"reason": "DisruptionBudget",
            "message": "The disruption budget guard needs 1 healthy pods and has 2 currently"})
    );
    let (code, _) = api.send("GET", &format!("{pods}/g2"), None, &[]).await;
    assert_eq!(code, StatusCode::OK, "g2 stays");

    let (code, status) = api
        .send(
            "POST",
            &format!("{pods}/g2/eviction"),
            Some(evict("other")),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{status}");
}

/// Without `fieldManager`, a write's manager is the User-Agent up to its
/// first `/`, as the API server names it.
#[tokio::test]
async fn the_default_field_manager_is_the_user_agent() {
    let api = api().await;
    let (code, _, created) = api
        .send_full(
            "POST",
            CONFIG_MAPS,
            Some(config_map("ua").to_string()),
            &[("user-agent", "OpenAPI-Generator/33.1.0/python")],
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(
        created["metadata"]["managedFields"][0]["manager"],
        "OpenAPI-Generator"
    );
}

/// Applies ConfigMap `owned` with `data.k: value` as `manager`.
async fn apply_as(
    api: &router::Api,
    manager: &str,
    value: &str,
    force: bool,
) -> (StatusCode, Value) {
    let uri = format!("{CONFIG_MAPS}/owned?fieldManager={manager}&force={force}");
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "owned"}, "data": {"k": value}});
    api.patch(&uri, "apply", body).await
}

/// An apply conflict is the API server's Status: 409, reason Conflict, a
/// `FieldManagerConflict` cause per field naming its manager; the patch
/// options are checked as the API server checks them.
#[tokio::test]
async fn apply_conflicts_and_patch_options_are_the_api_servers() {
    let api = api().await;
    let uri = format!("{CONFIG_MAPS}/owned");
    let (code, _) = apply_as(&api, "first", "1", false).await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, status) = apply_as(&api, "second", "2", false).await;
    assert_eq!(code, StatusCode::CONFLICT, "{status}");
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"first\": .data.k"
    );
    assert_eq!(
        status["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"first\"", "field": ".data.k"}])
    );
    let (code, forced) = apply_as(&api, "second", "2", true).await;
    assert_eq!(code, StatusCode::OK, "{forced}");
    assert_eq!(forced["data"]["k"], "2");
    let managers: Vec<&str> = forced["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["second"], "the first lost its only field");

    let (code, status) = api.patch(&uri, "apply", config_map("owned")).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        status["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let (code, status) = api
        .patch(
            &format!("{uri}?force=false"),
            "merge",
            json!({"data": {"k": "3"}}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        status["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
    );
}

/// A watch on one name, resumed from a revision after which another object
/// changed, never hears of the other (`kubectl rollout status` watches one
/// Deployment this way and fails on any DELETED it is sent).
#[tokio::test]
async fn a_watch_on_one_name_hears_nothing_of_another() {
    let api = api().await;
    for name in ["mine", "other"] {
        let (code, _) = api
            .send("POST", CONFIG_MAPS, Some(config_map(name)), &[])
            .await;
        assert_eq!(code, StatusCode::CREATED);
    }
    let (_, listed) = api
        .send(
            "GET",
            &format!("{CONFIG_MAPS}?fieldSelector=metadata.name%3Dmine"),
            None,
            &[],
        )
        .await;
    let from = listed["metadata"]["resourceVersion"].as_str().unwrap();
    // "other" changes after the list and before the watch starts, then
    // again while it runs.
    let data = |k: &str| json!({"data": {k: "1"}});
    let other = format!("{CONFIG_MAPS}/other");
    assert_eq!(
        api.patch(&other, "merge", data("a")).await.0,
        StatusCode::OK
    );
    let watch = api
        .watch(&format!(
            "{CONFIG_MAPS}?watch=true&fieldSelector=metadata.name%3Dmine&resourceVersion={from}&timeoutSeconds=2"
        ))
        .await;
    assert_eq!(
        api.patch(&other, "merge", data("b")).await.0,
        StatusCode::OK
    );
    let mine = format!("{CONFIG_MAPS}/mine");
    assert_eq!(api.patch(&mine, "merge", data("c")).await.0, StatusCode::OK);
    let seen: Vec<String> = router::events(watch)
        .await
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(seen, ["MODIFIED mine"]);
}
