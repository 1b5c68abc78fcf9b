//! A cluster embedded in a Rust program, as its users drive it: the
//! `embed` example, the in-process `kube::Client` against the HTTPS one on
//! the same cluster, kubectl on the kubeconfig it gives, and the locked-down
//! defaults.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

#[path = "../../examples/embed.rs"]
#[allow(dead_code)]
mod embed_example;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embed_example_runs() {
    let log = tokio::time::timeout(Duration::from_secs(60), embed_example::run())
        .await
        .expect("the example finishes within a minute")
        .expect("the example succeeds");
    assert!(log.starts_with("hello from hello-"), "{log:?}");
}

/// A `kube::Client` onto the HTTPS listener, from the cluster's kubeconfig.
async fn https_client(cluster: &wasmkube::Cluster) -> Client {
    let yaml = cluster.kubeconfig().expect("a listening cluster has one");
    let kubeconfig = kube::config::Kubeconfig::from_yaml(yaml).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// The answer to `GET path` as JSON, whatever its status.
async fn raw_get(client: &Client, path: &str) -> Value {
    let request = http::Request::get(path).body(Vec::new()).unwrap();
    let text = match client.request_text(request).await {
        Ok(text) => text,
        Err(kube::Error::Api(status)) => return serde_json::to_value(&*status).unwrap(),
        Err(e) => panic!("GET {path}: {e}"),
    };
    serde_json::from_str(&text).unwrap_or_else(|_| json!(text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_and_https_clients_give_the_same_answers() {
    let cluster = wasmkube::Cluster::builder()
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .start()
        .await
        .unwrap();
    let url = cluster.api_url().unwrap().to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let local = cluster.client();
    let remote = https_client(&cluster).await;

    // A write through one is read through the other, field for field.
    let config_maps: Api<ConfigMap> = Api::default_namespaced(local.clone());
    let body: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "shared", "labels": {"from": "in-process"}}, "data": {"k": "v"}}),
    )
    .unwrap();
    let created = config_maps
        .create(&PostParams::default(), &body)
        .await
        .unwrap();
    let read: ConfigMap = Api::default_namespaced(remote.clone())
        .get("shared")
        .await
        .unwrap();
    assert_eq!(created, read);

    // The same requests, the same answers: objects, lists, discovery,
    // OpenAPI, and errors as Status.
    for path in [
        "/api/v1/namespaces/default/configmaps/shared",
        "/api/v1/namespaces/default/configmaps",
        "/api/v1/nodes",
        "/api/v1/namespaces?labelSelector=kubernetes.io%2Fmetadata.name%3Ddefault",
        "/api",
        "/apis",
        "/apis/apps/v1",
        "/version",
        "/openapi/v3",
        "/api/v1/namespaces/default/configmaps/missing",
        "/api/v1/namespaces/default/pods?labelSelector=a%20in%20(",
        "/apis/example.com/v1/widgets",
    ] {
        let (a, b) = (raw_get(&local, path).await, raw_get(&remote, path).await);
        assert_eq!(a, b, "GET {path}");
    }
    let missing = raw_get(&local, "/api/v1/namespaces/default/configmaps/missing").await;
    assert_eq!(missing["reason"], "NotFound", "{missing}");
    assert_eq!(missing["code"], 404, "{missing}");

    // A watch through the HTTPS client sees a write made in-process.
    let watched: Api<ConfigMap> = Api::default_namespaced(remote.clone());
    let version = created.resource_version().unwrap();
    let mut events = watched
        .watch(
            &WatchParams::default().fields("metadata.name=shared"),
            &version,
        )
        .await
        .unwrap()
        .boxed();
    let mut changed = created.clone();
    changed
        .data
        .get_or_insert_default()
        .insert("k".into(), "w".into());
    config_maps
        .replace("shared", &PostParams::default(), &changed)
        .await
        .unwrap();
    use futures::StreamExt;
    let event = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
        .unwrap()
        .unwrap();
    match event {
        WatchEvent::Modified(cm) => assert_eq!(cm.data.unwrap()["k"], "w"),
        other => panic!("{other:?}"),
    }

    // kubectl on the kubeconfig the cluster gives.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let out = Command::new("kubectl")
        .args(["get", "configmap", "shared", "-o", "jsonpath={.data.k}"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "w");

    drop((local, remote));
    cluster.shutdown().await;
    // The listener went with it.
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_cluster_is_locked_down_by_default() {
    let host = tempfile::tempdir().unwrap();
    let cluster = wasmkube::Cluster::builder()
        .node_name("edge-1")
        .max_pods(7)
        .start()
        .await
        .unwrap();
    let client = cluster.client();
    let node = Api::<Node>::all(client.clone())
        .get("edge-1")
        .await
        .unwrap();
    let capacity = node.status.unwrap().capacity.unwrap();
    assert_eq!(capacity["pods"].0, "7");
    assert!(
        Api::<Namespace>::all(client.clone())
            .get("kube-system")
            .await
            .is_ok()
    );
    // No API listener: nothing to connect to, no kubeconfig.
    assert!(cluster.api_url().is_none() && cluster.kubeconfig().is_none());
    // hostPath volumes are refused until a directory is allowed.
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "host"},
        "spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "toolbox", "command": ["true"],
                "volumeMounts": [{"name": "h", "mountPath": "/h"}]}],
            "volumes": [{"name": "h", "hostPath": {"path": host.path()}}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let mut message = String::new();
    for _ in 0..600 {
        let status = pods.get("host").await.unwrap().status.unwrap_or_default();
        let waiting = status
            .container_statuses
            .unwrap_or_default()
            .into_iter()
            .find_map(|c| c.state?.waiting?.message);
        if let Some(waiting) = waiting {
            message = waiting;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        message.contains("is not allowed: this server lets pods use no host paths"),
        "{message:?}"
    );
    cluster.shutdown().await;

    // Allowed, the same pod runs and writes there.
    let cluster = wasmkube::Cluster::builder()
        .allow_host_path(host.path())
        .start()
        .await
        .unwrap();
    let pods: Api<Pod> = Api::default_namespaced(cluster.client());
    let mut pod = pod;
    pod.spec.as_mut().unwrap().containers[0].command =
        Some(vec!["sh".into(), "-c".into(), "echo hi > /h/out".into()]);
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let done = kube::runtime::wait::await_condition(
        pods.clone(),
        "host",
        kube::runtime::wait::conditions::is_pod_running(),
    );
    let _ = tokio::time::timeout(Duration::from_secs(30), done).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !host.path().join("out").exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        std::fs::read_to_string(host.path().join("out")).unwrap(),
        "hi\n"
    );
    let listed = pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    cluster.shutdown().await;
}
