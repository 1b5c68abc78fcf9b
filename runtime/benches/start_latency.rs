//! Container start-to-exit latency of a trivial guest, against bare
//! wasmtime instantiating and running the same component in the same
//! process (same engine settings, a pre-instantiated component, a WASI
//! context with nothing in it). Prints both and the ratio.
//!
//! `cargo bench -p wasmkube-runtime --bench start_latency`

use std::time::{Duration, Instant};
use wasmkube_runtime::*;
use wasmtime::Store;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

const ROUNDS: usize = 400;

struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// What the baselines measure: instantiate and run, nothing else.
async fn bare_run(engine: wasmtime::Engine, pre: CommandPre<Bare>, argv: Vec<String>) {
    let wasi = WasiCtxBuilder::new().args(&argv).build();
    let mut store = Store::new(
        &engine,
        Bare {
            wasi,
            table: ResourceTable::new(),
        },
    );
    store.set_epoch_deadline(u64::MAX / 2);
    let cmd = pre.instantiate_async(&mut store).await.unwrap();
    match cmd.wasi_cli_run().call_run(&mut store).await {
        Ok(Ok(())) => {}
        // A guest that calls exit(0) ends with this "error".
        Err(e)
            if e.downcast_ref::<wasmtime_wasi::I32Exit>()
                .is_some_and(|c| c.0 == 0) => {}
        other => panic!("the bare run failed: {other:?}"),
    }
}

fn summary(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let median = samples[samples.len() / 2];
    let p90 = samples[samples.len() * 9 / 10];
    (median, p90)
}

fn main() {
    let guest = std::env::args()
        .nth(1)
        .filter(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "stress".into());
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = RuntimeConfig::new(dir.path());
    config.guest_threads = 1;
    let runtime = Runtime::new(config).unwrap();
    builtin::seed(runtime.images()).unwrap();

    tokio.block_on(async {
        let image = runtime.prepare_image(&guest).await.unwrap();

        // Baseline: bare wasmtime, same engine, same component.
        let engine = runtime.engine().wasmtime().clone();
        let component = runtime
            .engine()
            .component(&image.digest, engine::Purpose::Command, || {
                std::fs::read(&image.path)
            })
            .unwrap();
        let mut linker: Linker<Bare> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        let pre = CommandPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
        let argv: Vec<String> = image
            .config
            .entrypoint
            .iter()
            .chain(&image.config.cmd)
            .cloned()
            .collect();
        let bare_once = || async {
            let t = Instant::now();
            bare_run(engine.clone(), pre.clone(), argv.clone()).await;
            t.elapsed()
        };

        // The same bare run, but on another tokio runtime, as wasmkube runs
        // guests on their own: isolates the cost of that hand-off.
        let guests = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let hop_once = || {
            let (engine, pre, argv) = (engine.clone(), pre.clone(), argv.clone());
            let task = guests.spawn(bare_run(engine, pre, argv));
            async move {
                let t = Instant::now();
                task.await.unwrap();
                t.elapsed()
            }
        };

        // wasmkube: a container started in a pod sandbox and waited for.
        let sandbox = runtime
            .run_pod_sandbox(SandboxSpec {
                uid: "bench".into(),
                name: "bench".into(),
                hostname: None,
                namespace: "default".into(),
                volumes: vec![],
                ip: None,
                share_process_namespace: false,
            })
            .unwrap();
        let spec = ContainerSpec {
            name: "c".into(),
            image: guest.clone(),
            ..Default::default()
        };
        let ours_once = || async {
            let t = Instant::now();
            let exit = sandbox
                .start_container(&spec, 0)
                .await
                .unwrap()
                .wait()
                .await;
            assert!(exit.success(), "{exit:?}");
            t.elapsed()
        };

        // Warm every path, then interleave so drift hits all alike.
        for _ in 0..20 {
            bare_once().await;
            hop_once().await;
            ours_once().await;
        }
        let (mut bare, mut hop, mut ours) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            bare.push(bare_once().await);
            hop.push(hop_once().await);
            ours.push(ours_once().await);
        }
        let (bare_med, bare_p90) = summary(bare);
        let (hop_med, hop_p90) = summary(hop);
        let (ours_med, ours_p90) = summary(ours);
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        println!("start-to-exit of `{guest}` ({ROUNDS} rounds, median / p90)");
        println!("  bare wasmtime                  : {bare_med:>10.1?} / {bare_p90:>10.1?}");
        println!("  bare wasmtime on other runtime : {hop_med:>10.1?} / {hop_p90:>10.1?}");
        println!("  wasmkube container             : {ours_med:>10.1?} / {ours_p90:>10.1?}");
        println!(
            "  ratio to bare (median)         : {:.2}x",
            ratio(ours_med, bare_med)
        );
        println!(
            "  ratio to bare on other runtime : {:.2}x",
            ratio(ours_med, hop_med)
        );
        sandbox.remove().unwrap();
        guests.shutdown_background();
    });
    tokio.shutdown_background();
}
