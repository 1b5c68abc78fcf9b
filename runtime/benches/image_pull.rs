//! Pulling a 5 MB component from a registry on loopback (Debian's
//! `docker-registry`), against `skopeo copy` of the same image to a local
//! directory in the same run; then the first start of what was pulled
//! (compiled, and from a warm compile cache), and restarts of the pulled
//! image against a built-in one. Also the cost of copying a 10 MB image's
//! files into a container's root (what each new container of an image
//! with files pays).
//!
//! `cargo bench -p wasmkube-runtime --bench image_pull`
//! (needs `scripts/setup-registry-tools.sh`)

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wasmkube_runtime::*;

const ROUNDS: usize = 5;
const RESTARTS: usize = 200;

struct RegistryProcess(Child);

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_registry(dir: &Path) -> (RegistryProcess, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry (scripts/setup-registry-tools.sh)");
    while std::net::TcpStream::connect(&host).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    (RegistryProcess(child), host)
}

/// The toolbox component grown to `size` bytes with a custom section.
fn padded_component(size: usize) -> Vec<u8> {
    let mut bytes = builtin::IMAGES[0].bytes();
    let name = b"padding";
    let payload = size.saturating_sub(bytes.len() + 16);
    let mut section = Vec::new();
    leb128(&mut section, name.len() as u64);
    section.extend_from_slice(name);
    // Incompressible, as code is close to: a simple xorshift stream.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    section.extend((0..payload).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    bytes.push(0);
    leb128(&mut bytes, section.len() as u64);
    bytes.extend(section);
    bytes
}

fn leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn sandbox(runtime: &Runtime, uid: &str) -> Sandbox {
    runtime
        .run_pod_sandbox(SandboxSpec {
            uid: uid.into(),
            name: uid.into(),
            hostname: None,
            namespace: "default".into(),
            volumes: vec![],
            ip: None,
            share_process_namespace: false,
        })
        .unwrap()
}

/// Starts instance `restart` of `spec` and waits for it to exit 0.
async fn run_to_exit(sandbox: &Sandbox, spec: &ContainerSpec, restart: u32) -> Duration {
    let t = Instant::now();
    let exit = sandbox
        .start_container(spec, restart)
        .await
        .unwrap()
        .wait()
        .await;
    assert!(exit.success(), "{exit:?}");
    t.elapsed()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let work = tempfile::tempdir().unwrap();
    let (_registry, host) = start_registry(work.path());
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let component = padded_component(5 << 20);
    let reference = format!("{host}/bench:1");
    let registry_config = RegistryConfig {
        insecure: vec![host.clone()],
        ..RegistryConfig::default()
    };

    // Publish it as a standard image (a gzip layer holding the component),
    // which skopeo copies like any image.
    let files = work.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let pusher_dir = work.path().join("pusher");
    let pusher = Runtime::new(RuntimeConfig {
        registry: registry_config.clone(),
        ..RuntimeConfig::new(&pusher_dir)
    })
    .unwrap();
    let config = ImageConfig {
        cmd: vec!["true".into()],
        ..ImageConfig::default()
    };
    tokio
        .block_on(pusher.registry().push(
            &component,
            &config,
            Some((&files, "/toolbox")),
            &ImageRef::parse(&reference).unwrap(),
            &Keyring::default(),
        ))
        .unwrap();

    let (mut skopeo, mut pull, mut first_cold, mut first_warm) = (vec![], vec![], vec![], vec![]);
    let warm_cache = work.path().join("warm-cache");
    for round in 0..ROUNDS {
        // skopeo: the same image to a directory.
        let dest = work.path().join(format!("skopeo-{round}"));
        let t = Instant::now();
        let status = Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .arg(format!("dir:{}", dest.display()))
            .status()
            .expect("skopeo (scripts/setup-registry-tools.sh)");
        assert!(status.success());
        skopeo.push(t.elapsed());

        for (warm, firsts) in [(false, &mut first_cold), (true, &mut first_warm)] {
            let data = work.path().join(format!("node-{round}-{warm}"));
            if warm && warm_cache.exists() {
                std::fs::create_dir_all(data.join("cache")).unwrap();
                let status = Command::new("cp")
                    .arg("-r")
                    .arg(&warm_cache)
                    .arg(data.join("cache/compiled"))
                    .status()
                    .unwrap();
                assert!(status.success());
            }
            let runtime = Runtime::new(RuntimeConfig {
                registry: registry_config.clone(),
                ..RuntimeConfig::new(&data)
            })
            .unwrap();
            tokio.block_on(async {
                let t = Instant::now();
                runtime
                    .pull_image(&reference, PullPolicy::IfNotPresent, &Keyring::default())
                    .await
                    .unwrap();
                let pulled = t.elapsed();
                if !warm {
                    pull.push(pulled);
                }
                let sandbox = sandbox(&runtime, "bench");
                let spec = ContainerSpec {
                    name: "c".into(),
                    image: reference.clone(),
                    ..Default::default()
                };
                run_to_exit(&sandbox, &spec, 0).await;
                firsts.push(t.elapsed());
            });
            if !warm && !warm_cache.exists() {
                let status = Command::new("cp")
                    .arg("-r")
                    .arg(data.join("cache/compiled"))
                    .arg(&warm_cache)
                    .status()
                    .unwrap();
                assert!(status.success());
            }
        }
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let (skopeo, pull) = (median(skopeo), median(pull));
    let (cold, warm) = (median(first_cold), median(first_warm));
    println!("5 MB component from a loopback registry (median of {ROUNDS})");
    println!("  skopeo copy to a directory        : {skopeo:>10.1?}");
    println!(
        "  wasmkube pull                     : {pull:>10.1?}  ({:.2}x skopeo)",
        ratio(pull, skopeo)
    );
    println!(
        "  pull + first start, compiling     : {cold:>10.1?}  ({:.2}x skopeo)",
        ratio(cold, skopeo)
    );
    println!(
        "  pull + first start, warm cache    : {warm:>10.1?}  ({:.2}x skopeo)",
        ratio(warm, skopeo)
    );

    // Restarts: the pulled image (its files copied into the root, reused
    // while untouched) against the built-in toolbox.
    let data = work.path().join("restarts");
    let runtime = Runtime::new(RuntimeConfig {
        registry: registry_config.clone(),
        ..RuntimeConfig::new(&data)
    })
    .unwrap();
    builtin::seed(runtime.images()).unwrap();
    tokio.block_on(async {
        runtime
            .pull_image(&reference, PullPolicy::IfNotPresent, &Keyring::default())
            .await
            .unwrap();
        let sandbox = sandbox(&runtime, "restarts");
        let pulled = ContainerSpec {
            name: "pulled".into(),
            image: reference.clone(),
            ..Default::default()
        };
        let builtin = ContainerSpec {
            name: "builtin".into(),
            image: "toolbox".into(),
            command: vec!["true".into()],
            ..Default::default()
        };
        for _ in 0..20 {
            run_to_exit(&sandbox, &pulled, 1).await;
            run_to_exit(&sandbox, &builtin, 1).await;
        }
        let (mut a, mut b) = (vec![], vec![]);
        for _ in 0..RESTARTS {
            a.push(run_to_exit(&sandbox, &pulled, 1).await);
            b.push(run_to_exit(&sandbox, &builtin, 1).await);
        }
        let (a, b) = (median(a), median(b));
        println!("start-to-exit, {RESTARTS} restarts (median)");
        println!("  built-in toolbox                  : {b:>10.1?}");
        println!(
            "  pulled image (5 MB, with files)   : {a:>10.1?}  ({:.2}x built-in)",
            ratio(a, b)
        );
    });

    // What a new container of an image with 10 MB of files pays for its
    // copy: first starts in new pods, against the built-in toolbox's.
    let tree = work.path().join("ten-mb");
    for i in 0..10 {
        let dir = tree.join(format!("d{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("blob"), padded_component(1 << 20)).unwrap();
    }
    let files_ref = format!("{host}/bench:files");
    tokio.block_on(async {
        pusher
            .registry()
            .push(
                &builtin::IMAGES[0].bytes(),
                &config,
                Some((&tree, "/toolbox")),
                &ImageRef::parse(&files_ref).unwrap(),
                &Keyring::default(),
            )
            .await
            .unwrap();
        runtime
            .pull_image(&files_ref, PullPolicy::IfNotPresent, &Keyring::default())
            .await
            .unwrap();
        let new_pod = |i: usize, kind: &str, image: &str, command: Vec<String>| {
            let sandbox = sandbox(&runtime, &format!("new-{kind}-{i}"));
            let spec = ContainerSpec {
                name: "c".into(),
                image: image.to_string(),
                command,
                ..Default::default()
            };
            async move { run_to_exit(&sandbox, &spec, 0).await }
        };
        let (mut with_files, mut plain) = (vec![], vec![]);
        for i in 0..40 {
            with_files.push(new_pod(i, "files", &files_ref, vec![]).await);
            plain.push(new_pod(i, "builtin", "toolbox", vec!["true".into()]).await);
        }
        let (f, p) = (median(with_files), median(plain));
        println!("first start in a new pod (median of 40)");
        println!("  built-in toolbox                  : {p:>10.1?}");
        println!(
            "  image with 10 MB of files         : {f:>10.1?}  (+{:.1?} for the copy)",
            f.saturating_sub(p)
        );
    });
}
