//! The API router driven in-process with `oneshot`: status codes, Status
//! bodies, negotiation, patches, dry runs, watches.

mod router;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use router::{api, pod};
use serde_json::{Value, json};
use tower::ServiceExt;
use wasmkube::api::{ApiState, router};
use wasmkube::registry::{Registry, Resources};
use wasmkube::store::{RedbStore, StoreOptions};

#[tokio::test]
async fn requests_without_the_token_are_unauthorized() {
    let api = api().await;
    let response = api
        .raw(
            Request::get("/api/v1/namespaces/default/pods")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "Unauthorized");
    let wrong = Request::get("/api")
        .header(header::AUTHORIZATION, "Bearer nope")
        .body(Body::empty())
        .unwrap();
    assert_eq!(api.raw(wrong).await.status(), StatusCode::UNAUTHORIZED);
    let version = api
        .raw(Request::get("/version").body(Body::empty()).unwrap())
        .await;
    assert_eq!(version.status(), StatusCode::OK);
}

#[tokio::test]
async fn version_reports_1_33() {
    let api = api().await;
    let (code, body) = api.send("GET", "/version", None, &[]).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        (body["major"].as_str(), body["minor"].as_str()),
        (Some("1"), Some("33"))
    );
}

#[tokio::test]
async fn discovery_is_negotiated_from_accept() {
    let api = api().await;
    let v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let (_, headers, body) = api.send_full("GET", "/api", None, &[("accept", v2)]).await;
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    assert_eq!(body["apiVersion"], "apidiscovery.k8s.io/v2");
    let resources = body["items"][0]["versions"][0]["resources"]
        .as_array()
        .unwrap();
    let pods = resources.iter().find(|r| r["resource"] == "pods").unwrap();
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(pods["categories"], json!(["all"]));
    assert!(
        pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["subresource"] == "log")
    );

    let v2beta1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let (_, headers, body) = api
        .send_full("GET", "/api", None, &[("accept", v2beta1)])
        .await;
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
    );
    assert_eq!(body["apiVersion"], "apidiscovery.k8s.io/v2beta1");

    let (_, _, body) = api
        .send_full("GET", "/api", None, &[("accept", "application/json")])
        .await;
    assert_eq!(body["kind"], "APIVersions");
    let (code, body) = api.send("GET", "/api/v1", None, &[]).await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        body["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "pods/status")
    );
}

#[tokio::test]
async fn openapi_v3_has_the_pod_path_with_field_validation_and_gvk() {
    let api = api().await;
    let (code, index) = api.send("GET", "/openapi/v3", None, &[]).await;
    assert_eq!(code, StatusCode::OK);
    let url = index["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, doc) = api.send("GET", &url, None, &[]).await;
    assert_eq!(code, StatusCode::OK);
    let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Pod");
    assert!(
        patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation")
    );
    let schema =
        &doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(schema["x-kubernetes-patch-merge-key"], "name");
}

#[tokio::test]
async fn create_get_conflict_and_not_found_answer_with_status() {
    let api = api().await;
    let (code, created) = api
        .send(
            "POST",
            "/api/v1/namespaces/default/pods",
            Some(pod("a")),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(created["metadata"]["uid"].as_str().unwrap().len() > 30);
    assert_eq!(created["status"]["phase"], "Pending");
    assert_eq!(created["spec"]["restartPolicy"], "Always");
    let (code, again) = api
        .send(
            "POST",
            "/api/v1/namespaces/default/pods",
            Some(pod("a")),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(again["reason"], "AlreadyExists");
    assert_eq!(again["message"], "pods \"a\" already exists");
    let (code, missing) = api
        .send("GET", "/api/v1/namespaces/default/pods/zzz", None, &[])
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(missing["message"], "pods \"zzz\" not found");
    assert_eq!(missing["details"]["kind"], "pods");
    let (code, no_ns) = api
        .send("POST", "/api/v1/namespaces/nope/pods", Some(pod("b")), &[])
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(no_ns["message"], "namespaces \"nope\" not found");
}

#[tokio::test]
async fn invalid_objects_are_422_with_causes() {
    let api = api().await;
    let mut bad = pod("Bad_Name");
    bad["spec"]["containers"][0]["image"] = json!("");
    let (code, status) = api
        .send("POST", "/api/v1/namespaces/default/pods", Some(bad), &[])
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(status["reason"], "Invalid");
    let causes = status["details"]["causes"].as_array().unwrap();
    assert!(
        causes.iter().any(|c| c["field"] == "metadata.name"),
        "{status}"
    );
    assert!(
        causes.iter().any(
            |c| c["field"] == "spec.containers[0].image" && c["reason"] == "FieldValueRequired"
        ),
        "{status}"
    );
}

#[tokio::test]
async fn field_validation_strict_rejects_and_warn_warns() {
    let api = api().await;
    let mut typo = pod("typo");
    typo["spec"]["containers"][0]["imagee"] = json!("x");
    let (code, status) = api
        .send(
            "POST",
            "/api/v1/namespaces/default/pods?fieldValidation=Strict",
            Some(typo.clone()),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        status["message"],
        "strict decoding error: unknown field \"spec.containers[0].imagee\""
    );
    let (code, headers, _) = api
        .send_full(
            "POST",
            "/api/v1/namespaces/default/pods?fieldValidation=Warn",
            Some(typo.to_string()),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let warning = headers[header::WARNING].to_str().unwrap();
    assert!(
        warning.starts_with("299 - ") && warning.contains("spec.containers[0].imagee"),
        "{warning}"
    );
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let api = api().await;
    let (code, body) = api
        .send(
            "POST",
            "/api/v1/namespaces/default/pods?dryRun=All",
            Some(pod("dry")),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(body["metadata"]["name"], "dry");
    let (code, _) = api
        .send("GET", "/api/v1/namespaces/default/pods/dry", None, &[])
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn patches_of_every_kind() {
    let api = api().await;
    api.send(
        "POST",
        "/api/v1/namespaces/default/pods",
        Some(pod("p")),
        &[],
    )
    .await;
    let uri = "/api/v1/namespaces/default/pods/p";
    let (code, merged) = api
        .send_full(
            "PATCH",
            uri,
            Some(r#"{"metadata":{"labels":{"x":"1"}}}"#.into()),
            &[("content-type", "application/merge-patch+json")],
        )
        .await
        .into_parts();
    assert_eq!(code, StatusCode::OK, "{merged}");
    assert_eq!(merged["metadata"]["labels"], json!({"app": "p", "x": "1"}));
    let smp = r#"{"spec":{"containers":[{"name":"c","image":"toolbox:latest"}]}}"#;
    let (code, patched) = api
        .send_full(
            "PATCH",
            uri,
            Some(smp.into()),
            &[("content-type", "application/strategic-merge-patch+json")],
        )
        .await
        .into_parts();
    assert_eq!(code, StatusCode::OK, "{patched}");
    let containers = patched["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["image"], "toolbox:latest");
    assert_eq!(containers[0]["command"], json!(["sleep", "100"]));
    assert_eq!(patched["metadata"]["generation"], 2);
    let jp = r#"[{"op":"remove","path":"/metadata/labels/x"}]"#;
    let (code, patched) = api
        .send_full(
            "PATCH",
            uri,
            Some(jp.into()),
            &[("content-type", "application/json-patch+json")],
        )
        .await
        .into_parts();
    assert_eq!(code, StatusCode::OK);
    assert_eq!(patched["metadata"]["labels"], json!({"app": "p"}));
    // A pod's command may not change.
    let forbidden = r#"{"spec":{"containers":[{"name":"c","command":["true"]}]}}"#;
    let (code, status) = api
        .send_full(
            "PATCH",
            uri,
            Some(forbidden.into()),
            &[("content-type", "application/strategic-merge-patch+json")],
        )
        .await
        .into_parts();
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("pod updates may not change fields")
    );
    let (code, status) = api
        .send_full(
            "PATCH",
            uri,
            Some("{}".into()),
            &[("content-type", "text/plain")],
        )
        .await
        .into_parts();
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{status}");
    // Server-side apply creates, then updates, with managedFields.
    let apply = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ssa\nspec:\n  containers:\n  - name: c\n    image: toolbox\n";
    let ssa = "/api/v1/namespaces/default/pods/ssa?fieldManager=kubectl&force=false";
    let (code, created) = api
        .send_full(
            "PATCH",
            ssa,
            Some(apply.into()),
            &[("content-type", "application/apply-patch+yaml")],
        )
        .await
        .into_parts();
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["metadata"]["managedFields"][0]["manager"],
        "kubectl"
    );
}

trait Parts {
    fn into_parts(self) -> (StatusCode, Value);
}

impl Parts for (StatusCode, axum::http::HeaderMap, Value) {
    fn into_parts(self) -> (StatusCode, Value) {
        (self.0, self.2)
    }
}

#[tokio::test]
async fn stale_resource_version_is_a_conflict() {
    let api = api().await;
    let (_, created) = api
        .send(
            "POST",
            "/api/v1/namespaces/default/pods",
            Some(pod("rv")),
            &[],
        )
        .await;
    let mut first = created.clone();
    first["metadata"]["labels"]["n"] = json!("1");
    let (code, _) = api
        .send(
            "PUT",
            "/api/v1/namespaces/default/pods/rv",
            Some(first),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let mut stale = created;
    stale["metadata"]["labels"]["n"] = json!("2");
    let (code, status) = api
        .send(
            "PUT",
            "/api/v1/namespaces/default/pods/rv",
            Some(stale),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified"),
        "{status}"
    );
}

#[tokio::test]
async fn lists_select_by_labels_and_fields_and_page() {
    let api = api().await;
    for name in ["a", "b", "c"] {
        api.send(
            "POST",
            "/api/v1/namespaces/default/pods",
            Some(pod(name)),
            &[],
        )
        .await;
    }
    let (_, list) = api
        .send(
            "GET",
            "/api/v1/namespaces/default/pods?labelSelector=app%20in%20(a,c)",
            None,
            &[],
        )
        .await;
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let (_, list) = api
        .send(
            "GET",
            "/api/v1/pods?fieldSelector=metadata.name%3Db",
            None,
            &[],
        )
        .await;
    assert_eq!(list["items"][0]["metadata"]["name"], "b");
    let (_, list) = api
        .send(
            "GET",
            "/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3D",
            None,
            &[],
        )
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    let (code, status) = api
        .send(
            "GET",
            "/api/v1/pods?fieldSelector=spec.bogus%3Dx",
            None,
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(status["message"], "field label not supported: spec.bogus");
    let (_, page) = api
        .send("GET", "/api/v1/namespaces/default/pods?limit=2", None, &[])
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let token = page["metadata"]["continue"].as_str().unwrap();
    let (_, rest) = api
        .send(
            "GET",
            &format!("/api/v1/namespaces/default/pods?limit=2&continue={token}"),
            None,
            &[],
        )
        .await;
    assert_eq!(rest["items"][0]["metadata"]["name"], "c");
    assert!(rest["metadata"].get("continue").is_none());
}

#[tokio::test]
async fn tables_carry_kubectl_columns_and_metadata() {
    let api = api().await;
    api.send(
        "POST",
        "/api/v1/namespaces/default/pods",
        Some(pod("t")),
        &[],
    )
    .await;
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let (_, table) = api
        .send(
            "GET",
            "/api/v1/namespaces/default/pods?limit=500",
            None,
            &[("accept", accept)],
        )
        .await;
    assert_eq!(table["kind"], "Table");
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(&names[..5], ["Name", "Ready", "Status", "Restarts", "Age"]);
    let row = &table["rows"][0];
    assert_eq!(row["cells"][0], "t");
    assert_eq!(row["cells"][1], "0/1");
    assert_eq!(row["cells"][2], "Pending");
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(row["object"]["metadata"]["labels"]["app"], "t");
}

#[tokio::test]
async fn deleting_returns_the_object_then_it_is_gone() {
    let api = api().await;
    api.send(
        "POST",
        "/api/v1/namespaces/default/pods",
        Some(pod("d")),
        &[],
    )
    .await;
    let (code, body) = api
        .send(
            "DELETE",
            "/api/v1/namespaces/default/pods/d",
            Some(json!({"propagationPolicy": "Background"})),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["metadata"]["name"], "d");
    let (code, _) = api
        .send("GET", "/api/v1/namespaces/default/pods/d", None, &[])
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, status) = api
        .send("DELETE", "/api/v1/namespaces/default/pods/d", None, &[])
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(status["reason"], "NotFound");
}

#[tokio::test]
async fn creates_see_namespace_changes_at_once() {
    let api = api().await;
    let (code, status) = api
        .send(
            "POST",
            "/api/v1/namespaces/nowhere/pods",
            Some(pod("p")),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(status["message"], "namespaces \"nowhere\" not found");
    for round in 0..3 {
        let ns = format!("fresh-{round}");
        let (code, _) = api
            .send(
                "POST",
                "/api/v1/namespaces",
                Some(json!({"metadata": {"name": ns}})),
                &[],
            )
            .await;
        assert_eq!(code, StatusCode::CREATED);
        let (code, status) = api
            .send(
                "POST",
                &format!("/api/v1/namespaces/{ns}/pods"),
                Some(pod("early")),
                &[],
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{status}");
        // Without the namespace controller the namespace stays Terminating.
        let (code, _) = api
            .send("DELETE", &format!("/api/v1/namespaces/{ns}"), None, &[])
            .await;
        assert_eq!(code, StatusCode::OK);
        let (code, status) = api
            .send(
                "POST",
                &format!("/api/v1/namespaces/{ns}/pods"),
                Some(pod("late")),
                &[],
            )
            .await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        assert_eq!(
            status["message"],
            format!(
                "pods \"late\" is forbidden: unable to create new content in namespace {ns} because it is being terminated"
            )
        );
    }
}

#[tokio::test]
async fn exec_requests_that_cannot_run_get_a_status() {
    let api = api().await;
    api.send(
        "POST",
        "/api/v1/namespaces/default/pods",
        Some(pod("p")),
        &[],
    )
    .await;
    for (query, message) in [
        (
            "container=c",
            "you must specify at least one command for the container",
        ),
        (
            "command=sh&tty=true",
            "you must specify at least 1 of stdin, stdout, stderr",
        ),
        (
            "command=ls&container=other&stdout=true",
            "container other is not valid for pod p",
        ),
        ("command=ls&stdout=true", "it is not running"),
    ] {
        let (code, status) = api
            .send(
                "GET",
                &format!("/api/v1/namespaces/default/pods/p/exec?{query}"),
                None,
                &[],
            )
            .await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(status["kind"], "Status");
        assert!(
            status["message"].as_str().unwrap().contains(message),
            "{query}: {status}"
        );
    }
    let (code, _) = api
        .send(
            "GET",
            "/api/v1/namespaces/default/pods/missing/exec?command=ls",
            None,
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_watch_streams_one_event_per_line() {
    let api = api().await;
    let (_, created) = api
        .send(
            "POST",
            "/api/v1/namespaces/default/pods",
            Some(pod("w")),
            &[],
        )
        .await;
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let response = api
        .watch(&format!(
            "/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&timeoutSeconds=2"
        ))
        .await;
    api.send(
        "PATCH",
        "/api/v1/namespaces/default/pods/w",
        Some(json!({"metadata": {"labels": {"touched": "yes"}}})),
        &[("content-type", "application/merge-patch+json")],
    )
    .await;
    api.send("DELETE", "/api/v1/namespaces/default/pods/w", None, &[])
        .await;
    let events = router::events(response).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["MODIFIED", "DELETED"]);
    assert_eq!(events[0]["object"]["metadata"]["labels"]["touched"], "yes");
}

#[tokio::test]
async fn a_compacted_resource_version_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        retained_revisions: 1,
        ..StoreOptions::default()
    };
    let store = RedbStore::open(&dir.path().join("s.redb"), options).unwrap();
    let registry = Registry::new(Arc::new(store.clone()), Resources::builtin());
    let app = router(ApiState {
        registry,
        auth: wasmkube::auth::Authenticator::with_new_key(None),
        logs: None,
        streams: None,
        metrics: Default::default(),
        api_metrics: Default::default(),
    });
    for name in ["default", "a", "b", "c"] {
        let body = json!({"metadata": {"name": name}}).to_string();
        let request = Request::post("/api/v1/namespaces")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        assert_eq!(
            app.clone().oneshot(request).await.unwrap().status(),
            StatusCode::CREATED
        );
    }
    store.compact().await.unwrap();
    let request = Request::get("/api/v1/namespaces?watch=true&resourceVersion=1")
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let bytes = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        response.into_body().collect(),
    )
    .await
    .unwrap()
    .unwrap()
    .to_bytes();
    let event: Value =
        serde_json::from_slice(bytes.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");
}

fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

const SERVICES: &str = "/api/v1/namespaces/default/services";

#[tokio::test]
async fn services_get_cluster_ips_and_node_ports_once_each() {
    let api = api().await;
    let (code, web) = api
        .send(
            "POST",
            SERVICES,
            Some(service(
                "web",
                json!({"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]}),
            )),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{web}");
    let ip: std::net::Ipv4Addr = web["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
    assert_eq!(ip.octets()[0], 10);
    assert_eq!(ip.octets()[1] & 0xf0, 96, "{ip} is in 10.96.0.0/12");
    assert_eq!(web["spec"]["clusterIPs"], json!([ip.to_string()]));
    let node_port = web["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&node_port), "{node_port}");
    assert_eq!(web["spec"]["ports"][0]["targetPort"], 80);

    // Asking for what another Service holds names the field.
    let (code, status) = api
        .send(
            "POST",
            SERVICES,
            Some(service(
                "copy",
                json!({"type": "NodePort", "clusterIP": ip.to_string(),
                    "ports": [{"port": 80, "nodePort": node_port}]}),
            )),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "spec.clusterIPs: Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "spec.ports[0].nodePort: Invalid value: {node_port}: provided port is already allocated"
        )),
        "{message}"
    );
    let (code, status) = api
        .send(
            "POST",
            SERVICES,
            Some(service(
                "outside",
                json!({"type": "NodePort", "clusterIP": "192.168.1.1", "ports": [{"port": 80, "nodePort": 80}]}),
            )),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("the provided IP (192.168.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"),
        "{message}"
    );
    assert!(
        message.contains("The range of valid ports is 30000-32767"),
        "{message}"
    );

    // A replace without the allocated fields keeps them.
    let (code, replaced) = api
        .send(
            "PUT",
            &format!("{SERVICES}/web"),
            Some(service(
                "web",
                json!({"type": "NodePort", "selector": {"app": "web2"}, "ports": [{"port": 80}]}),
            )),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["spec"]["clusterIP"], ip.to_string());
    assert_eq!(replaced["spec"]["ports"][0]["nodePort"], node_port);
    let (code, status) = api
        .send(
            "PATCH",
            &format!("{SERVICES}/web"),
            Some(json!({"spec": {"clusterIP": "10.96.0.99", "clusterIPs": ["10.96.0.99"]}})),
            &[("content-type", "application/merge-patch+json")],
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("may not change once set"),
        "{status}"
    );

    // Once deleted, its address and port may be asked for again.
    let (code, _) = api
        .send("DELETE", &format!("{SERVICES}/web"), None, &[])
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, copy) = api
        .send(
            "POST",
            SERVICES,
            Some(service(
                "copy",
                json!({"type": "NodePort", "clusterIP": ip.to_string(),
                    "ports": [{"port": 80, "nodePort": node_port}]}),
            )),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{copy}");
}

#[tokio::test]
async fn concurrent_service_creates_get_distinct_addresses() {
    let api = Arc::new(api().await);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let api = Arc::clone(&api);
        tasks.push(tokio::spawn(async move {
            let (code, svc) = api
                .send(
                    "POST",
                    SERVICES,
                    Some(service(
                        &format!("s{i}"),
                        json!({"type": "NodePort", "ports": [{"port": 80}]}),
                    )),
                    &[],
                )
                .await;
            assert_eq!(code, StatusCode::CREATED, "{svc}");
            (
                svc["spec"]["clusterIP"].as_str().unwrap().to_string(),
                svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap(),
            )
        }));
    }
    let mut ips = std::collections::HashSet::new();
    let mut ports = std::collections::HashSet::new();
    for task in tasks {
        let (ip, port) = task.await.unwrap();
        assert!(ips.insert(ip.clone()), "{ip} handed out twice");
        assert!(ports.insert(port), "{port} handed out twice");
    }
    let (code, list) = api.send("GET", SERVICES, None, &[]).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 40);
}
