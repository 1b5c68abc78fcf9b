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

#[path = "../../examples/operator.rs"]
#[allow(dead_code)]
mod operator_example;

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
        let (mut a, mut b) = (raw_get(&local, path).await, raw_get(&remote, path).await);
        // A list's resourceVersion is the store's when it was read: the
        // cluster's own writes (a namespace's kube-root-ca.crt, a lease)
        // may come between the two reads.
        for list in [&mut a, &mut b] {
            if list["kind"].as_str().is_some_and(|k| k.ends_with("List"))
                && let Some(metadata) = list["metadata"].as_object_mut()
            {
                metadata.remove("resourceVersion");
            }
        }
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
    // The shell makes the file, then writes to it: wait for the line.
    let written = || std::fs::read_to_string(host.path().join("out")).unwrap_or_default();
    while written() != "hi\n" && std::time::Instant::now() < deadline {
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

/// Whether a TCP connection to `ip:port` is accepted.
fn answers(ip: [u8; 4], port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_secs(2))
        .is_ok()
}

/// Node ports of an embedded cluster listen on loopback unless the
/// embedder says otherwise: 127.0.0.2 (another loopback address, which a
/// listener on all interfaces answers) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ports_listen_on_loopback_unless_asked() {
    for (address, on_other) in [(None, false), (Some([0, 0, 0, 0]), true)] {
        let mut builder = wasmkube::Cluster::builder();
        if let Some(ip) = address {
            builder = builder.node_port_address(std::net::IpAddr::from(ip));
        }
        let cluster = builder.start().await.unwrap();
        let services: Api<k8s_openapi::api::core::v1::Service> =
            Api::default_namespaced(cluster.client());
        let service = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]},
        }))
        .unwrap();
        let created = services
            .create(&PostParams::default(), &service)
            .await
            .unwrap();
        let port = created.spec.unwrap().ports.unwrap()[0].node_port.unwrap() as u16;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !answers([127, 0, 0, 1], port) {
            assert!(
                std::time::Instant::now() < deadline,
                "node port {port} never listened"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            answers([127, 0, 0, 2], port),
            on_other,
            "node_port_address {address:?}: 127.0.0.2:{port}"
        );
        cluster.shutdown().await;
    }
}

/// What an embedder follows: a pod's log as a stream (lines as they are
/// written) and the cluster's events as a watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_events_stream_through_the_in_process_client() {
    use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
    use kube::runtime::WatchStreamExt;
    let cluster = wasmkube::Cluster::builder().start().await.unwrap();
    let client = cluster.client();
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::default_namespaced(client.clone());
    let mut watched = kube::runtime::watcher(events, Default::default())
        .applied_objects()
        .boxed();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "ticker"},
        "spec": {"containers": [{"name": "c", "image": "toolbox", "command": ["sh", "-c",
            "for i in 1 2 3; do echo tick $i; sleep 0.3; done; sleep 3600"]}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    // Events: scheduled, then started, as the kubelet and scheduler write them.
    let mut reasons = Vec::new();
    while !reasons.contains(&"Started".to_string()) {
        let event = tokio::time::timeout(Duration::from_secs(30), watched.try_next())
            .await
            .expect("an event within 30 s")
            .unwrap()
            .expect("the watch goes on");
        if event.involved_object.name.as_deref() == Some("ticker") {
            reasons.push(event.reason.unwrap_or_default());
        }
    }
    assert!(reasons.contains(&"Scheduled".to_string()), "{reasons:?}");
    // The log, followed: the three lines arrive while the pod runs.
    let params = kube::api::LogParams {
        follow: true,
        ..Default::default()
    };
    let mut lines = pods.log_stream("ticker", &params).await.unwrap().lines();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.try_next())
            .await
            .expect("a line within 10 s")
            .unwrap()
            .expect("the stream goes on while the pod runs");
        seen.push(line);
    }
    assert_eq!(seen, ["tick 1", "tick 2", "tick 3"]);
    drop(lines);
    cluster.shutdown().await;
}

mod operator {
    //! The operator harness: the `operator` example's kube-runtime
    //! `Controller` against an in-memory cluster in a `#[tokio::test]`, as
    //! envtest serves Go operators: its CustomResourceDefinition (derived
    //! from the Rust type) installed, a Website reconciled into a Deployment
    //! and a Service, changes and drift reconciled, deletion cascading.

    use std::time::Duration;

    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
    use serde_json::json;

    use super::operator_example::{self, Website, WebsiteSpec};

    async fn available(deployments: &Api<Deployment>, name: &str, replicas: i32) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let ready = deployments
                .get_opt(name)
                .await
                .unwrap()
                .and_then(|d| d.status)
                .and_then(|s| s.available_replicas)
                .unwrap_or(0);
            if ready == replicas {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name}: {ready} of {replicas} available after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_operator_example_runs() {
        let first = tokio::time::timeout(Duration::from_secs(90), operator_example::run())
            .await
            .expect("the example finishes within 90 s")
            .expect("the example succeeds");
        assert!(first.contains("200 OK"), "{first:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kube_runtime_controller_reconciles_a_custom_resource() {
        let cluster = wasmkube::Cluster::builder().start().await.unwrap();
        let client = cluster.client();
        let controller = operator_example::start(client.clone()).await.unwrap();
        let sites: Api<Website> = Api::default_namespaced(client.clone());
        let site = Website::new(
            "blog",
            WebsiteSpec {
                replicas: 1,
                image: "http-server".into(),
            },
        );
        sites.create(&PostParams::default(), &site).await.unwrap();
        let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
        available(&deployments, "blog", 1).await;
        let service = Api::<Service>::default_namespaced(client.clone())
            .get("blog")
            .await
            .unwrap();
        let port = service.spec.unwrap().ports.unwrap()[0].node_port.unwrap();
        // The operator reported the port in the Website's status.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let reported = sites
                .get("blog")
                .await
                .unwrap()
                .status
                .and_then(|s| s.node_port);
            if reported == Some(port) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "status: {reported:?}, not {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let page = operator_example::get(port as u16).await.unwrap();
        assert!(page.contains("200 OK"), "{page}");

        // A change of the resource is reconciled: two replicas.
        sites
            .patch(
                "blog",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 2}})),
            )
            .await
            .unwrap();
        available(&deployments, "blog", 2).await;
        // A Deployment changed behind the operator's back is put back
        // (the controller owns it, so it hears of the change).
        let changed = deployments
            .patch(
                "blog",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 5}})),
            )
            .await
            .unwrap();
        let changed_at = changed.metadata.generation.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let now = deployments.get("blog").await.unwrap();
            if now.metadata.generation.unwrap() > changed_at
                && now.spec.unwrap().replicas == Some(2)
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "replicas: 5 was not put back to 2 in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        available(&deployments, "blog", 2).await;

        // The schema derived from the Rust type is enforced.
        let wrong = sites
            .patch(
                "blog",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": "two"}})),
            )
            .await
            .unwrap_err();
        assert!(
            wrong.to_string().contains(r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#),
            "{wrong}"
        );

        // Deleting the resource deletes what it owns.
        sites
            .delete("blog", &DeleteParams::default())
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while deployments.get_opt("blog").await.unwrap().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "the owned Deployment outlived its owner by 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        controller.abort();
        cluster.shutdown().await;
    }
}

/// A cluster on a data directory keeps its objects across restarts, and
/// runs its pods again, as `wasmkube serve` does; its store's file is free
/// for the next cluster in the same process once it has shut down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_cluster_has_its_objects_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    let start = || {
        wasmkube::Cluster::builder()
            .data_dir(dir.path())
            .allow_host_path(host.path())
            .start()
    };
    let cluster = start().await.unwrap();
    let config_maps: Api<ConfigMap> = Api::default_namespaced(cluster.client());
    let body: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "kept"}, "data": {"k": "v"}})).unwrap();
    let created = config_maps
        .create(&PostParams::default(), &body)
        .await
        .unwrap();
    // Each start of the pod's container adds a line on the host.
    let pods: Api<Pod> = Api::default_namespaced(cluster.client());
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "counter"},
        "spec": {"containers": [{"name": "c", "image": "toolbox",
            "command": ["sh", "-c", "echo started >> /h/starts; sleep 3600"],
            "volumeMounts": [{"name": "h", "mountPath": "/h"}]}],
            "volumes": [{"name": "h", "hostPath": {"path": host.path()}}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let starts = host.path().join("starts");
    let started = |times: usize| {
        let starts = starts.clone();
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let text = std::fs::read_to_string(&starts).unwrap_or_default();
                if text.lines().count() >= times {
                    return text.lines().count();
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{times} starts not seen in 30 s: {text:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(started(1).await, 1);
    // Clients still held (as an embedder may) do not keep the store open.
    let _held = (config_maps, pods);
    cluster.shutdown().await;

    let cluster = start().await.unwrap();
    let config_maps: Api<ConfigMap> = Api::default_namespaced(cluster.client());
    let read = config_maps.get("kept").await.unwrap();
    assert_eq!(read.data, created.data);
    assert_eq!(read.metadata.uid, created.metadata.uid);
    assert_eq!(started(2).await, 2, "the pod runs again after the restart");
    cluster.shutdown().await;
    // The store and its key stay, private to the owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(dir.path().join("store.redb").exists());
    assert!(dir.path().join("encryption.key").exists());
}

/// An embedder shares one cluster between tasks and threads.
#[test]
fn a_cluster_and_its_builder_are_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<wasmkube::Cluster>();
    shared::<wasmkube::ClusterBuilder>();
    shared::<wasmkube::Error>();
}

mod host_interfaces {
    //! An interface of the embedder's own, linked into the guests granted
    //! it: by image, or by the pod's annotation when pods may ask.

    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, PostParams};
    use serde_json::json;
    use wasmkube::GuestState;
    use wasmkube::wasmtime::StoreContextMut;
    use wasmkube::wasmtime::component::Linker;

    const WIT: &str = "
        package example:counter;
        interface host { hit: func(n: u32); }
        world guest { import host; export wasi:cli/run@0.2.6; }
    ";
    const WASI_RUN: &str = "package wasi:cli@0.2.6; interface run { run: func() -> result; }";
    /// Calls `hit(42)`, then returns from `run` with success.
    const WAT: &str = r#"(module
        (import "example:counter/host" "hit" (func $hit (param i32)))
        (func (export "wasi:cli/run@0.2.6#run") (result i32)
            (call $hit (i32.const 42))
            (i32.const 0)))"#;

    /// A component made from the WAT, importing `example:counter/host`.
    fn component() -> Vec<u8> {
        let mut resolve = wit_parser::Resolve::default();
        resolve.push_str("run.wit", WASI_RUN).unwrap();
        let package = resolve.push_str("counter.wit", WIT).unwrap();
        let world = resolve.select_world(&[package], Some("guest")).unwrap();
        let mut module = wat::parse_str(WAT).unwrap();
        wit_component::embed_component_metadata(
            &mut module,
            &resolve,
            world,
            wit_component::StringEncoding::UTF8,
        )
        .unwrap();
        wit_component::ComponentEncoder::default()
            .module(&module)
            .unwrap()
            .validate(true)
            .encode()
            .unwrap()
    }

    async fn pod_state(pods: &Api<Pod>, name: &str) -> serde_json::Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let pod = pods.get(name).await.unwrap();
            let state = json!(
                pod.status
                    .as_ref()
                    .and_then(|s| s.container_statuses.clone())
            );
            let phase = pod.status.and_then(|s| s.phase).unwrap_or_default();
            let waiting_why = state
                .pointer("/0/state/waiting/message")
                .and_then(|m| m.as_str())
                .is_some();
            if phase == "Succeeded" || phase == "Failed" || waiting_why {
                return json!({"phase": phase, "containers": state});
            }
            assert!(std::time::Instant::now() < deadline, "{name}: {state}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn pod(name: &str, image: &str, annotation: Option<&str>) -> Pod {
        let mut pod = json!({
            "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": image}]},
        });
        if let Some(asked) = annotation {
            pod["metadata"]["annotations"] = json!({"wasmkube.io/host-interfaces": asked});
        }
        serde_json::from_value(pod).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn granted_guests_call_the_embedders_interface_and_others_cannot() {
        let hits: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
        let seen = Arc::clone(&hits);
        let counter = move |linker: &mut Linker<GuestState>| {
            let seen = Arc::clone(&seen);
            linker.instance("example:counter/host")?.func_wrap(
                "hit",
                move |store: StoreContextMut<'_, GuestState>, (n,): (u32,)| {
                    let who = format!(
                        "{}/{}/{}",
                        store.data().namespace(),
                        store.data().pod_name(),
                        store.data().container_name()
                    );
                    seen.lock().unwrap().push((who, n));
                    Ok(())
                },
            )?;
            Ok(())
        };
        let bytes = component();
        let cluster = wasmkube::Cluster::builder()
            .image("counter", bytes.clone())
            .image("plain", bytes)
            .host_interface("example:counter/host", counter)
            .grant_host_interface("counter", "example:counter/host")
            .host_interface_by_annotation("example:counter/host")
            .start()
            .await
            .unwrap();
        let pods: Api<Pod> = Api::default_namespaced(cluster.client());
        let create = |p: Pod| {
            let pods = pods.clone();
            async move { pods.create(&PostParams::default(), &p).await.unwrap() }
        };

        // Granted by its image: the guest calls the host and succeeds.
        create(pod("by-image", "counter", None)).await;
        let state = pod_state(&pods, "by-image").await;
        assert_eq!(state["phase"], "Succeeded", "{state}");
        // Granted by the pod's annotation.
        create(pod("by-annotation", "plain", Some("example:counter/host"))).await;
        let state = pod_state(&pods, "by-annotation").await;
        assert_eq!(state["phase"], "Succeeded", "{state}");
        assert_eq!(
            *hits.lock().unwrap(),
            [
                ("default/by-image/c".to_string(), 42),
                ("default/by-annotation/c".to_string(), 42)
            ]
        );

        // Not granted: the same guest does not start, and says why.
        create(pod("ungranted", "plain", None)).await;
        let state = pod_state(&pods, "ungranted").await;
        let text = state.to_string();
        assert!(text.contains("example:counter/host"), "{state}");
        assert_ne!(state["phase"], "Succeeded", "{state}");
        // Asking for an interface pods may not choose is refused by name.
        create(pod("unknown", "plain", Some("example:secret/keys"))).await;
        let state = pod_state(&pods, "unknown").await;
        assert!(
            state.to_string().contains(
                r#"host interface \"example:secret/keys\" is not one pods may ask for (they may ask for: example:counter/host)"#
            ),
            "{state}"
        );
        assert_eq!(hits.lock().unwrap().len(), 2);
        cluster.shutdown().await;
    }
}
