use wasmkube_runtime::*;
#[tokio::test(flavor = "multi_thread")]
async fn probe() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::new(RuntimeConfig::new(dir.path())).unwrap();
    builtin::seed(rt.images()).unwrap();
    let sb = rt
        .run_pod_sandbox(SandboxSpec {
            uid: "u1".into(),
            name: "mypod".into(),
            namespace: "default".into(),
            volumes: vec![VolumeSpec {
                name: "v".into(),
                source: VolumeSource::EmptyDir,
            }],
        })
        .unwrap();
    let script = std::env::var("SCRIPT").unwrap();
    let spec = ContainerSpec {
        name: "c".into(),
        image: "toolbox".into(),
        command: vec!["/bin/sh".into(), "-c".into(), script],
        mounts: vec![Mount {
            volume: "v".into(),
            mount_path: "/var/log".into(),
            read_only: false,
            sub_path: None,
        }],
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let r = sb.start_container(&spec, 0).await.unwrap();
    let log = r.log_path().to_path_buf();
    let exit = r.wait().await;
    println!("{exit:?} in {:?}", t.elapsed());
    for rec in logs::read_log(&log).unwrap() {
        println!("{:?}: {}", rec.stream, rec.content);
    }
}
