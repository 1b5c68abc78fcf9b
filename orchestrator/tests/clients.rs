//! Client libraries driving every served kind, as their users do: each
//! call's answer must decode into the library's typed models and be what
//! the Kubernetes API server would answer.

mod server;

use server::Server;

#[test]
fn the_python_client_drives_every_kind() {
    let server = Server::start();
    let report = server::run_python("python_client.py", &server, &[]);
    let calls = report["calls"].as_u64().unwrap();
    let differences = report["differences"].as_array().unwrap();
    println!(
        "python client: {calls} calls, {} answers differ from the API server's",
        differences.len()
    );
    assert!(calls > 250, "{report}");
    assert!(
        differences.is_empty(),
        "{}",
        serde_json::to_string_pretty(differences).unwrap()
    );
}

mod kube_rs {
    //! kube-rs driving every served kind through its typed `Api<K>`.

    use std::fmt::Debug;

    use futures::TryStreamExt;
    use k8s_openapi::api::apps::v1::{
        ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
    };
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{
        ConfigMap, Endpoints, Event, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
        PodTemplate, ReplicationController, Secret, Service,
    };
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use k8s_openapi::api::scheduling::v1::PriorityClass;
    use k8s_openapi::api::storage::v1::StorageClass;
    use kube::api::{
        Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
    };
    use kube::{Client, Resource, ResourceExt};
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    pub const NS: &str = "kube-rs";

    /// Calls made and what differed from the API server's answers.
    #[derive(Default)]
    pub struct Report {
        pub calls: usize,
        pub differences: Vec<String>,
    }

    impl Report {
        fn check<T, E: Debug>(&mut self, what: &str, result: Result<T, E>) -> Option<T> {
            self.calls += 1;
            match result {
                Ok(value) => Some(value),
                Err(e) => {
                    self.differences.push(format!("{what}: {e:?}"));
                    None
                }
            }
        }

        fn expect(&mut self, what: &str, holds: bool, detail: impl FnOnce() -> String) {
            if !holds {
                self.differences.push(format!("{what}: {}", detail()));
            }
        }
    }

    /// Everything one kind gets: create, get, paged list, each patch type,
    /// replace (fresh and stale), watch from the list, delete.
    pub async fn drive<K>(report: &mut Report, api: Api<K>, body: Value, returns_object: bool)
    where
        K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
    {
        let kind = K::kind(&()).to_string();
        let what = |verb: &str| format!("{verb} {kind}");
        let stem = kind.to_lowercase();
        let names: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|s| format!("{stem}-{s}"))
            .collect();
        for name in &names {
            let mut body = body.clone();
            body["metadata"]["name"] = json!(name);
            let object: K = serde_json::from_value(body).expect("a valid object");
            let created = report.check(
                &what("create"),
                api.create(&PostParams::default(), &object).await,
            );
            if let Some(created) = created {
                report.expect(
                    &what("create"),
                    created.resource_version().is_some(),
                    || "no resourceVersion".into(),
                );
            }
        }
        let name = names[0].clone();
        exercise(report, &api, &name).await;
        let deleted = report.check(
            &what("delete"),
            api.delete(&name, &DeleteParams::default()).await,
        );
        if let Some(deleted) = deleted {
            let (object, status) = (deleted.clone().left(), deleted.right());
            let shape = format!(
                "object {:?}, status {:?}",
                object.as_ref().map(|o| o.name_any()),
                status
            );
            let right = if returns_object {
                object.is_some()
            } else {
                status
                    .as_ref()
                    .and_then(|s| s.details.as_ref())
                    .is_some_and(|d| d.name == name)
            };
            report.expect(&what("delete"), right, || shape);
        }
    }

    /// An object the server makes itself (the node): everything but create
    /// and delete, on the first one listed.
    pub async fn drive_existing<K>(report: &mut Report, api: Api<K>)
    where
        K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
    {
        let what = format!("list {}", K::kind(&()));
        let listed = report.check(&what, api.list(&ListParams::default()).await);
        match listed.and_then(|l| l.items.first().map(|o| o.name_any())) {
            Some(name) => exercise(report, &api, &name).await,
            None => report.differences.push(format!("{what}: none to drive")),
        }
    }

    /// Get, paged list, each patch type, replace (fresh and stale) and
    /// watch from the list, on the object `name`.
    async fn exercise<K>(report: &mut Report, api: &Api<K>, name: &str)
    where
        K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
    {
        let kind = K::kind(&()).to_string();
        let what = |verb: &str| format!("{verb} {kind}");
        let name = name.to_string();
        let got = report.check(&what("get"), api.get(&name).await);

        let whole = report.check(&what("list"), api.list(&ListParams::default()).await);
        let mut paged = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..20 {
            let mut params = ListParams::default().limit(1);
            if let Some(t) = &token {
                params = params.continue_token(t);
            }
            let Some(page) = report.check(&what("list page"), api.list(&params).await) else {
                break;
            };
            report.expect(&what("list page"), page.items.len() <= 1, || {
                format!("{} items", page.items.len())
            });
            paged.extend(page.items.iter().map(|i| i.name_any()));
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        let start = whole
            .as_ref()
            .and_then(|l| l.metadata.resource_version.clone());
        if let Some(whole) = &whole {
            let all: Vec<String> = whole.items.iter().map(|i| i.name_any()).collect();
            report.expect(&what("list pages"), paged == all, || {
                format!("{paged:?} != {all:?}")
            });
        }

        let params = PatchParams::default();
        let labelled =
            |r: &Option<K>, key: &str| r.as_ref().is_some_and(|o| o.labels().contains_key(key));
        let merged = report.check(
            &what("patch merge"),
            api.patch(
                &name,
                &params,
                &Patch::Merge(json!({"metadata": {"labels": {"merge": "1"}}})),
            )
            .await,
        );
        report.expect(&what("patch merge"), labelled(&merged, "merge"), || {
            "label not set".into()
        });
        let strategic = report.check(
            &what("patch strategic"),
            api.patch(
                &name,
                &params,
                &Patch::Strategic(json!({"metadata": {"labels": {"smp": "1"}}})),
            )
            .await,
        );
        report.expect(
            &what("patch strategic"),
            labelled(&strategic, "smp"),
            || "label not set".into(),
        );
        // Typed as kube's own json-patch version wants.
        let operations = serde_json::from_value(json!([
            {"op": "add", "path": "/metadata/annotations", "value": {"jp": "1"}}
        ]))
        .unwrap();
        let patched = report.check(
            &what("patch json"),
            api.patch(&name, &params, &Patch::Json::<()>(operations))
                .await,
        );
        report.expect(
            &what("patch json"),
            patched
                .as_ref()
                .is_some_and(|o| o.annotations().contains_key("jp")),
            || "annotation not set".into(),
        );
        let applied = json!({"apiVersion": K::api_version(&()), "kind": kind, "metadata": {"name": name, "labels": {"applied": "1"}}});
        let applied = report.check(
            &what("patch apply"),
            api.patch(
                &name,
                &PatchParams::apply("kube-rs").force(),
                &Patch::Apply(applied),
            )
            .await,
        );
        report.expect(&what("patch apply"), labelled(&applied, "applied"), || {
            "label not set".into()
        });

        // Replace what was read back (again after a controller's write);
        // a stale copy conflicts.
        for attempt in 0..3 {
            let Some(mut current) = report.check(&what("get"), api.get(&name).await) else {
                break;
            };
            current.labels_mut().insert("replaced".into(), "1".into());
            report.calls += 1;
            match api.replace(&name, &PostParams::default(), &current).await {
                Ok(replaced) => {
                    report.expect(
                        &what("replace"),
                        replaced.labels().contains_key("replaced"),
                        || "label not set".into(),
                    );
                    break;
                }
                Err(kube::Error::Api(status)) if status.code == 409 && attempt < 2 => {}
                Err(e) => {
                    report
                        .differences
                        .push(format!("{}: {e:?}", what("replace")));
                    break;
                }
            }
        }
        if let Some(stale) = got {
            report.calls += 1;
            match api.replace(&name, &PostParams::default(), &stale).await {
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                other => report
                    .differences
                    .push(format!("{}: {other:?}", what("replace stale"))),
            }
        }

        if let Some(start) = start {
            let stream = report.check(
                &what("watch"),
                api.watch(&WatchParams::default().timeout(1), &start).await,
            );
            if let Some(stream) = stream {
                let events: Vec<WatchEvent<K>> = match stream.try_collect().await {
                    Ok(events) => events,
                    Err(e) => {
                        report.differences.push(format!("{}: {e:?}", what("watch")));
                        Vec::new()
                    }
                };
                let mine: Vec<&'static str> = events
                    .iter()
                    .filter_map(|e| match e {
                        WatchEvent::Modified(o) if o.name_any() == name => Some("MODIFIED"),
                        WatchEvent::Added(o) | WatchEvent::Deleted(o) if o.name_any() == name => {
                            Some("OTHER")
                        }
                        WatchEvent::Error(_) => Some("ERROR"),
                        _ => None,
                    })
                    .collect();
                report.expect(
                    &what("watch"),
                    !mine.is_empty() && mine.iter().all(|t| *t == "MODIFIED"),
                    || format!("{mine:?}"),
                );
            }
        }
    }

    /// Every served kind, as the Python suite drives them.
    pub async fn every_kind(client: Client, report: &mut Report) {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
        report.check(
            "create Namespace",
            namespaces.create(&PostParams::default(), &namespace).await,
        );
        let pod_spec = json!({"containers": [{"name": "c", "image": "toolbox", "command": ["sleep", "3600"]}]});
        let template = json!({"metadata": {"labels": {"app": "kube-rs"}}, "spec": pod_spec});
        let job_template = json!({"metadata": {"labels": {"job": "kube-rs"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "toolbox", "command": ["true"]}]}});
        let meta = |extra: Value| {
            let mut body = json!({"metadata": {"labels": {"suite": "kube-rs"}}});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            body
        };
        drive::<Namespace>(report, Api::all(client.clone()), meta(json!({})), true).await;
        drive_existing::<Node>(report, Api::all(client.clone())).await;
        drive::<Pod>(
            report,
            Api::namespaced(client.clone(), NS),
            meta(json!({"spec": pod_spec})),
            true,
        )
        .await;
        drive::<ConfigMap>(
            report,
            Api::namespaced(client.clone(), NS),
            meta(json!({"data": {"k": "v"}})),
            false,
        )
        .await;
        drive::<Secret>(
            report,
            Api::namespaced(client.clone(), NS),
            meta(json!({"stringData": {"k": "v"}})),
            false,
        )
        .await;
        drive::<Service>(
            report,
            Api::namespaced(client.clone(), NS),
            meta(json!({"spec": {"selector": {"app": "kube-rs"}, "ports": [{"port": 80}]}})),
            true,
        )
        .await;
        drive::<Endpoints>(report, Api::namespaced(client.clone(), NS), meta(json!({"subsets": [{"addresses": [{"ip": "10.244.0.7"}], "ports": [{"port": 80}]}]})), false).await;
        drive::<Event>(report, Api::namespaced(client.clone(), NS), meta(json!({"involvedObject": {"kind": "Pod", "name": "x", "namespace": NS}, "reason": "Tested", "message": "by kube-rs", "type": "Normal"})), false).await;
        drive::<PersistentVolume>(report, Api::all(client.clone()), meta(json!({"spec": {"capacity": {"storage": "1Mi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "kube-rs-none", "hostPath": {"path": "/tmp/wasmkube-kube-rs-pv"}}})), true).await;
        drive::<PersistentVolumeClaim>(report, Api::namespaced(client.clone(), NS), meta(json!({"spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "kube-rs-none", "resources": {"requests": {"storage": "1Mi"}}}})), true).await;
        drive::<StorageClass>(
            report,
            Api::all(client.clone()),
            meta(json!({"provisioner": "example.com/none"})),
            true,
        )
        .await;
        drive::<EndpointSlice>(report, Api::namespaced(client.clone(), NS), meta(json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.244.0.7"]}], "ports": [{"port": 80}]})), false).await;
        drive::<Deployment>(report, Api::namespaced(client.clone(), NS), meta(json!({"spec": {"replicas": 0, "selector": {"matchLabels": {"app": "kube-rs"}}, "template": template}})), false).await;
        drive::<ReplicaSet>(report, Api::namespaced(client.clone(), NS), meta(json!({"spec": {"replicas": 0, "selector": {"matchLabels": {"app": "kube-rs"}}, "template": template}})), false).await;
        drive::<ReplicationController>(report, Api::namespaced(client.clone(), NS), meta(json!({"spec": {"replicas": 0, "selector": {"app": "kube-rs"}, "template": template}})), false).await;
        // A daemon whose node selector no node has: stored, never run.
        let mut nowhere = template.clone();
        nowhere["spec"]["nodeSelector"] = json!({"kube-rs": "nowhere"});
        drive::<DaemonSet>(report, Api::namespaced(client.clone(), NS), meta(json!({"spec": {"selector": {"matchLabels": {"app": "kube-rs"}}, "template": nowhere}})), false).await;
        drive::<StatefulSet>(report, Api::namespaced(client.clone(), NS), meta(json!({"spec": {"replicas": 0, "serviceName": "kube-rs", "selector": {"matchLabels": {"app": "kube-rs"}}, "template": template}})), false).await;
        drive::<ControllerRevision>(
            report,
            Api::namespaced(client.clone(), NS),
            meta(json!({"data": {"spec": {"template": {"$patch": "replace"}}}, "revision": 1})),
            false,
        )
        .await;
        drive::<PodTemplate>(
            report,
            Api::namespaced(client.clone(), NS),
            meta(json!({"template": template})),
            true,
        )
        .await;
        drive::<PriorityClass>(
            report,
            Api::all(client.clone()),
            meta(json!({"value": 100})),
            false,
        )
        .await;
        drive::<Lease>(
            report,
            Api::namespaced(client.clone(), NS),
            meta(json!({"spec": {"holderIdentity": "kube-rs", "leaseDurationSeconds": 15}})),
            false,
        )
        .await;
        drive::<PodDisruptionBudget>(
            report,
            Api::namespaced(client.clone(), NS),
            meta(json!({"spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "kube-rs"}}}})),
            false,
        )
        .await;
        drive::<Ingress>(
            report,
            Api::namespaced(client.clone(), NS),
            meta(
                json!({"spec": {"rules": [{"host": "kube-rs.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "kube-rs", "port": {"number": 80}}}}]}}]}}),
            ),
            false,
        )
        .await;
        drive::<IngressClass>(
            report,
            Api::all(client.clone()),
            meta(json!({"spec": {"controller": "example.com/kube-rs"}})),
            false,
        )
        .await;
        drive::<Job>(
            report,
            Api::namespaced(client.clone(), NS),
            meta(json!({"spec": {"suspend": true, "template": job_template}})),
            false,
        )
        .await;
        drive::<CronJob>(report, Api::namespaced(client.clone(), NS), meta(json!({"spec": {"schedule": "*/5 * * * *", "suspend": true, "jobTemplate": {"spec": {"template": job_template}}}})), false).await;
        let version = report.check("get version", client.apiserver_version().await);
        if let Some(version) = version {
            report.expect("get version", version.major == "1", || {
                version.major.clone()
            });
        }
    }
}

#[test]
fn kube_rs_drives_every_kind() {
    let server = Server::start();
    let kubeconfig = server.kubeconfig();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let report = runtime.block_on(async move {
        let config = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let mut report = kube_rs::Report::default();
        kube_rs::every_kind(client, &mut report).await;
        report
    });
    println!(
        "kube-rs: {} calls, {} answers differ from the API server's",
        report.calls,
        report.differences.len()
    );
    assert!(report.calls > 300, "{} calls", report.calls);
    assert!(report.differences.is_empty(), "{:#?}", report.differences);
}

/// The same suite through `Cluster::client()`: the in-process client gets
/// the answers the HTTPS one gets (and the API server would give).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_in_process_drives_every_kind() {
    let cluster = wasmkube::Cluster::builder().start().await.unwrap();
    let mut report = kube_rs::Report::default();
    kube_rs::every_kind(cluster.client(), &mut report).await;
    println!(
        "kube-rs in-process: {} calls, {} answers differ from the API server's",
        report.calls,
        report.differences.len()
    );
    assert!(report.calls > 300, "{} calls", report.calls);
    assert!(report.differences.is_empty(), "{:#?}", report.differences);
    cluster.shutdown().await;
}
