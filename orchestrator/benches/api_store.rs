//! Durable writes through the API against raw redb, list latency with
//! 10,000 pods, and watch fan-out — each printed with its baseline from the
//! same run, because absolute times on shared machines are noise.
//!
//! `cargo bench -p wasmkube --bench api_store`

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use wasmkube::api::{ApiState, router};
use wasmkube::registry::{Registry, Resources, WriteOptions};
use wasmkube::store::{RedbStore, StoreOptions};

const TABLE: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("objects");

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "x"}},
        "spec": {"containers": [{"name": "c", "image": "toolbox", "command": ["sleep", "3600"],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}})
}

/// Raw redb: one durable commit per write of the same bytes.
fn raw_redb_writes_per_second(dir: &std::path::Path, bytes: &[u8], count: usize) -> f64 {
    let db = redb::Database::create(dir.join("raw.redb")).unwrap();
    let started = Instant::now();
    for i in 0..count {
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(TABLE).unwrap();
            table
                .insert(format!("/core/pods/default/raw-{i}").as_str(), bytes)
                .unwrap();
        }
        txn.commit().unwrap();
    }
    count as f64 / started.elapsed().as_secs_f64()
}

/// CPU time this process has used so far (user + system, all threads).
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// Wall and CPU time of one phase, printed per write.
struct Phase {
    wall: Instant,
    cpu: Duration,
}

impl Phase {
    fn start() -> Phase {
        Phase {
            wall: Instant::now(),
            cpu: cpu_time(),
        }
    }

    /// (writes per second, CPU microseconds per write, cores busy).
    fn end(&self, writes: usize) -> (f64, f64, f64) {
        let wall = self.wall.elapsed().as_secs_f64();
        let cpu = (cpu_time() - self.cpu).as_secs_f64();
        (writes as f64 / wall, cpu * 1e6 / writes as f64, cpu / wall)
    }
}

async fn post(client: &Client<HttpConnector, Body>, url: &str, body: &Value) -> u16 {
    let request = axum::http::Request::post(url)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let code = response.status().as_u16();
    let _ = response.into_body().collect().await;
    code
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("store.redb"), StoreOptions::default()).unwrap();
    let registry = Registry::new(Arc::new(store.clone()), Resources::builtin());
    let namespaces = registry.resource("", "Namespace");
    registry
        .create(
            &namespaces,
            None,
            json!({"metadata": {"name": "default"}}),
            &WriteOptions::manager("bench"),
        )
        .await
        .unwrap();
    let app = router(ApiState {
        registry: registry.clone(),
        auth: wasmkube::auth::Authenticator::with_new_key(None),
        logs: None,
        streams: None,
        metrics: Default::default(),
        api_metrics: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(wasmkube::server::serve(listener, app, None, async {
        let _ = stopped.await;
    }));
    let base = format!("http://{address}");
    let url = format!("{base}/api/v1/namespaces/default/pods");

    // --- durable writes -------------------------------------------------
    let sample = serde_json::to_vec(&pod("sample-pod-name")).unwrap();
    let raw = raw_redb_writes_per_second(dir.path(), &sample, 300);
    println!(
        "raw redb, one durable commit per write ({} bytes): {raw:.0} writes/s",
        sample.len()
    );
    // redb's own floor for what the store writes: the stored object (with
    // its managedFields, ~2 KB) into two tables, 32 writes per commit.
    {
        let stored = serde_json::to_vec(
            &registry
                .create(
                    &registry.resource("", "Pod"),
                    Some("default"),
                    pod("sample-stored-pod"),
                    &{
                        let mut o = WriteOptions::manager("bench");
                        o.dry_run = true;
                        o
                    },
                )
                .await
                .unwrap()
                .object,
        )
        .unwrap();
        let db = redb::Database::create(dir.path().join("batched.redb")).unwrap();
        let log: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("log");
        let phase = Phase::start();
        let mut revision = 0u64;
        for batch in 0..125 {
            let txn = db.begin_write().unwrap();
            {
                let mut objects = txn.open_table(TABLE).unwrap();
                let mut events = txn.open_table(log).unwrap();
                for i in 0..32 {
                    revision += 1;
                    objects
                        .insert(
                            format!("/core/pods/default/b-{batch}-{i}").as_str(),
                            stored.as_slice(),
                        )
                        .unwrap();
                    events.insert(revision, stored.as_slice()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let (rate, cpu, _) = phase.end(4000);
        println!(
            "raw redb, 32 writes of the stored object ({} bytes) into two tables per commit: {rate:.0} writes/s, {cpu:.0} us CPU per write",
            stored.len()
        );
    }
    // The registry alone (no HTTP), to attribute the cost.
    let pods = registry.resource("", "Pod");
    let mut dry = WriteOptions::manager("bench");
    dry.dry_run = true;
    let started = Instant::now();
    for i in 0..2000 {
        registry
            .create(&pods, Some("default"), pod(&format!("dry-{i}")), &dry)
            .await
            .unwrap();
    }
    println!(
        "registry create, dry run (decode, defaults, validation, managedFields; no store): {:.0} us per object",
        started.elapsed().as_secs_f64() * 1e6 / 2000.0
    );
    for clients in [1usize, 64] {
        let per_client = if clients == 1 { 300 } else { 4000 / clients };
        let commits_before = store.commits();
        let phase = Phase::start();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let registry = registry.clone();
            let pods = pods.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per_client {
                    registry
                        .create(
                            &pods,
                            Some("default"),
                            pod(&format!("r{clients}-{c}-{i}")),
                            &WriteOptions::manager("bench"),
                        )
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let writes = clients * per_client;
        let (rate, cpu, cores) = phase.end(writes);
        println!(
            "registry in-process, {clients:>2} concurrent writers: {rate:.0} durable writes/s = {:.1}x raw; {:.1} writes per commit; {cpu:.0} us CPU per write, {cores:.1} cores busy",
            rate / raw,
            writes as f64 / (store.commits() - commits_before) as f64
        );
    }
    let mut total = 0usize;
    for clients in [1usize, 16, 64] {
        let per_client = if clients == 1 { 300 } else { 4000 / clients };
        let commits_before = store.commits();
        let phase = Phase::start();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let client: Client<HttpConnector, Body> =
                    Client::builder(TokioExecutor::new()).build_http();
                for i in 0..per_client {
                    let code = post(&client, &url, &pod(&format!("w{clients}-{c}-{i}"))).await;
                    assert_eq!(code, 201);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let writes = clients * per_client;
        total += writes;
        let (rate, cpu, cores) = phase.end(writes);
        println!(
            "API, {clients:>2} concurrent clients: {rate:.0} durable writes/s = {:.1}x raw single-commit redb; {:.1} writes per commit; {cpu:.0} us CPU per write (client included), {cores:.1} cores busy",
            rate / raw,
            writes as f64 / (store.commits() - commits_before) as f64
        );
    }

    if std::env::args().any(|a| a == "writes") {
        let _ = stop.send(());
        let _ = server.await;
        store.close();
        return;
    }

    // --- list latency with 10,000 pods ----------------------------------
    let missing = 10_000usize.saturating_sub(total + 300 + 4000 / 64 * 64);
    let mut writes = Vec::new();
    for i in 0..missing {
        let registry = registry.clone();
        let pods = pods.clone();
        writes.push(tokio::spawn(async move {
            registry
                .create(
                    &pods,
                    Some("default"),
                    pod(&format!("fill-{i}")),
                    &WriteOptions::manager("bench"),
                )
                .await
                .unwrap();
        }));
    }
    for w in writes {
        w.await.unwrap();
    }
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();
    let get = |accept: &'static str| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let started = Instant::now();
            let request = axum::http::Request::get(&url)
                .header("accept", accept)
                .body(Body::empty())
                .unwrap();
            let body = client
                .request(request)
                .await
                .unwrap()
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes();
            (started.elapsed(), body.len())
        }
    };
    let (json_time, json_bytes) = get("application/json").await;
    let (table_time, _) = get("application/json;as=Table;v=v1;g=meta.k8s.io").await;
    let db_started = Instant::now();
    let page = wasmkube::store::Store::list(&store, "/core/pods/default/", None, 0).unwrap();
    let raw_scan = db_started.elapsed();
    println!(
        "list {} pods: JSON {:.0} ms ({} MB), Table {:.0} ms; the store's own scan+parse {:.0} ms ({:.1}x)",
        page.items.len(),
        json_time.as_secs_f64() * 1000.0,
        json_bytes / 1_000_000,
        table_time.as_secs_f64() * 1000.0,
        raw_scan.as_secs_f64() * 1000.0,
        json_time.as_secs_f64() / raw_scan.as_secs_f64()
    );

    // --- watch fan-out ----------------------------------------------------
    let revision = wasmkube::store::Store::revision(&store);
    let events = 200usize;
    let watchers = 100usize;
    let mut readers = Vec::new();
    let ready = Arc::new(tokio::sync::Barrier::new(watchers + 1));
    for _ in 0..watchers {
        let client = client.clone();
        let url = format!("{url}?watch=true&resourceVersion={revision}&labelSelector=app%3Dfan");
        let ready = ready.clone();
        readers.push(tokio::spawn(async move {
            let request = axum::http::Request::get(&url).body(Body::empty()).unwrap();
            let mut body = client.request(request).await.unwrap().into_body();
            ready.wait().await;
            let mut lines = 0;
            while lines < events {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            lines += data.iter().filter(|b| **b == b'\n').count();
                        }
                    }
                    _ => break,
                }
            }
            Instant::now()
        }));
    }
    ready.wait().await;
    let started = Instant::now();
    for i in 0..events {
        let mut p = pod(&format!("fan-{i}"));
        p["metadata"]["labels"]["app"] = json!("fan");
        registry
            .create(&pods, Some("default"), p, &WriteOptions::manager("bench"))
            .await
            .unwrap();
    }
    let writes_done = started.elapsed();
    let mut last = started;
    for r in readers {
        last = last.max(
            tokio::time::timeout(Duration::from_secs(60), r)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let all = last - started;
    println!(
        "watch fan-out: {events} sequential writes to {watchers} HTTP watchers: all delivered {:.0} ms after the first write; the writes alone took {:.0} ms ({:.2}x); {:.0} events/s delivered",
        all.as_secs_f64() * 1000.0,
        writes_done.as_secs_f64() * 1000.0,
        all.as_secs_f64() / writes_done.as_secs_f64(),
        (events * watchers) as f64 / all.as_secs_f64()
    );
    let _ = stop.send(());
    let _ = server.await;
    store.close();
    ownership();
}

/// Field ownership kept on each write (compare the two versions, move
/// what changed to the writer), against the baseline of what every write
/// does anyway: copy the object and encode it for the store.
fn ownership() {
    use wasmkube::registry::managed::{Managers, Operation, Scope, Shape, Writer};
    let shape = Shape::of("io.k8s.api.apps.v1.Deployment");
    let containers: Vec<Value> = (0..10)
        .map(|i| {
            json!({"name": format!("c{i}"), "image": "toolbox", "command": ["sleep", "3600"],
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "ports": [{"containerPort": 8000 + i}],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}})
        })
        .collect();
    let live = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}}});
    let mut managers = Managers::default();
    let writer = |manager| Writer {
        manager,
        operation: Operation::Update,
        api_version: "apps/v1",
        subresource: None,
    };
    managers.update(&json!({}), &live, shape, Scope::Spec, &writer("creator"));
    let mut live = live;
    managers.write_to(&mut live);
    let mut next = live.clone();
    next["spec"]["template"]["spec"]["containers"][3]["image"] = json!("toolbox:2");
    let rounds = 2_000;
    let started = Instant::now();
    for _ in 0..rounds {
        // As a write does: read the live managers, update them, store them.
        let mut managers = Managers::of(&live);
        managers.update(&live, &next, shape, Scope::Spec, &writer("kubectl-set"));
        std::hint::black_box(managers.encode());
    }
    let kept = started.elapsed() / rounds;
    let started = Instant::now();
    for _ in 0..rounds {
        let copy = next.clone();
        std::hint::black_box(serde_json::to_vec(&copy).unwrap());
    }
    let baseline = started.elapsed() / rounds;
    println!(
        "field ownership of an update to a 10-container Deployment: {:.1} us; copying and encoding the object (baseline): {:.1} us ({:.1}x)",
        kept.as_secs_f64() * 1e6,
        baseline.as_secs_f64() * 1e6,
        kept.as_secs_f64() / baseline.as_secs_f64()
    );
}
