use wasmkube_runtime::*;
#[tokio::test(flavor = "multi_thread")]
async fn probe() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::new(RuntimeConfig::new(dir.path())).unwrap();
    builtin::seed(rt.images()).unwrap();
    let sb = rt.run_pod_sandbox(SandboxSpec { uid: "u1".into(), name: "p".into(), namespace: "default".into(), volumes: vec![] }).unwrap();
    for args in [vec!["--exit", "42"], vec!["--trap"], vec!["--print", "hi"]] {
        let spec = ContainerSpec { name: "c".into(), image: "stress".into(), args: args.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        let t = std::time::Instant::now();
        let r = sb.start_container(&spec, 0).await.unwrap();
        let exit = r.wait().await;
        println!("{args:?} -> {exit:?} in {:?}", t.elapsed());
    }
}
