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
            .component(&image.digest, || std::fs::read(&image.path))
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
            cmd.wasi_cli_run()
                .call_run(&mut store)
                .await
                .unwrap()
                .unwrap();
            t.elapsed()
        };

        // wasmkube: a container started in a pod sandbox and waited for.
        let sandbox = runtime
            .run_pod_sandbox(SandboxSpec {
                uid: "bench".into(),
                name: "bench".into(),
                namespace: "default".into(),
                volumes: vec![],
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

        // Warm both paths, then interleave so drift hits both alike.
        for _ in 0..20 {
            bare_once().await;
            ours_once().await;
        }
        let (mut bare, mut ours) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            bare.push(bare_once().await);
            ours.push(ours_once().await);
        }
        let (bare_med, bare_p90) = summary(bare);
        let (ours_med, ours_p90) = summary(ours);
        println!("start-to-exit of `{guest}` ({ROUNDS} rounds, median / p90)");
        println!("  bare wasmtime : {bare_med:>10.1?} / {bare_p90:>10.1?}");
        println!("  wasmkube      : {ours_med:>10.1?} / {ours_p90:>10.1?}");
        println!(
            "  ratio (median): {:.2}x",
            ours_med.as_secs_f64() / bare_med.as_secs_f64()
        );
        sandbox.remove().unwrap();
    });
    tokio.shutdown_background();
}
