//! Bring your own app: images pulled from a real registry (Debian's
//! `docker-registry`), put there by tools nobody here wrote (`umoci`,
//! `skopeo`) and by `wasmkube image push`, run through the real kubectl.

mod oci;
mod server;

use oci::{
    ImageSpec, Registry, build, image_of_layer, index_of, init, raw_layer, toolbox_variant,
    toolbox_wasm,
};
use server::{Server, text};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn wasmkube(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wasmkube"))
        .args(args)
        .output()
        .unwrap()
}

/// The kubelet's events about `pod`, as `REASON message` lines.
fn events(server: &Server, pod: &str) -> String {
    server
        .items(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={pod}"),
        ])
        .iter()
        .map(|e| format!("{} {}\n", text(e, "/reason"), text(e, "/message")))
        .collect()
}

fn waiting_reason(server: &Server, pod: &str) -> String {
    let pod = server.json(&["get", "pod", pod]);
    text(&pod, "/status/containerStatuses/0/state/waiting/reason").to_string()
}

/// Waits for `pod`'s first container to wait for `reason`; fails showing
/// the pod and its events.
fn wait_waiting(server: &Server, pod: &str, reason: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while waiting_reason(server, pod) != reason {
        if std::time::Instant::now() > deadline {
            panic!(
                "{pod} never waited for {reason}: {}\n{}",
                server.json(&["get", "pod", pod]),
                events(server, pod)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_succeeded(server: &Server, pod: &str) {
    server.wait_for(Duration::from_secs(60), || {
        let p = server.json(&["get", "pod", pod]);
        let phase = text(&p, "/status/phase").to_string();
        assert_ne!(
            phase,
            "Failed",
            "{pod} failed: {p}\n{}",
            events(server, pod)
        );
        phase == "Succeeded"
    });
}

/// A registry, a scratch directory, and where an OCI layout goes in it.
fn registry_and_layout(registry: Registry) -> (Registry, tempfile::TempDir, std::path::PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    (registry, work, layout)
}

/// A toolbox image whose `/bin/sh` links to the component, with a page
/// under `/usr/share/www` and a `/version` file.
fn shell_image(layout: &Path, tag: &str, version: &str, cmd: &[&str]) {
    shell_image_of(
        layout,
        tag,
        version,
        cmd,
        std::fs::read(toolbox_wasm()).unwrap(),
    );
}

/// [`shell_image`] with `toolbox` as its component.
fn shell_image_of(layout: &Path, tag: &str, version: &str, cmd: &[&str], toolbox: Vec<u8>) {
    build(
        layout,
        tag,
        &ImageSpec {
            files: vec![
                ("/bin/toolbox.wasm", toolbox),
                (
                    "/usr/share/www/index.html",
                    b"hello from the image\n".to_vec(),
                ),
                ("/version", format!("{version}\n").into_bytes()),
            ],
            symlinks: vec![
                ("/bin/sh", "/bin/toolbox.wasm"),
                ("/bin/cat", "toolbox.wasm"),
            ],
            entrypoint: vec!["/bin/sh", "-c"],
            cmd: cmd.to_vec(),
            ..ImageSpec::default()
        },
    );
}

#[test]
fn pods_run_images_pulled_from_a_registry() {
    let (registry, work, layout) = registry_and_layout(Registry::anonymous());
    shell_image(
        &layout,
        "v1",
        "one",
        &["cat /usr/share/www/index.html /version"],
    );
    let app_digest = registry.copy_in(&layout, "v1", "app:1", &[]);
    // skopeo recompresses only uncompressed layers, and reuses a gzip blob
    // it knows for the same content: the zstd image is an image of its own.
    shell_image(
        &layout,
        "z",
        "zstd",
        &["cat /usr/share/www/index.html /version"],
    );
    let plain = work.path().join("plain");
    Registry::decompressed(&layout, "z", &plain);
    registry.copy_dir_in(&plain, "app:zstd", &["--dest-compress-format=zstd"]);
    for (tag, media_type) in [("app:zstd", "tar+zstd"), ("app:1", "tar+gzip")] {
        let manifest = registry.manifest(tag);
        assert!(
            manifest.contains(media_type),
            "{tag} has a {media_type} layer: {manifest}"
        );
    }
    // An image whose config sets Env and WorkingDir.
    build(
        &layout,
        "env",
        &ImageSpec {
            files: vec![("/bin/toolbox.wasm", std::fs::read(toolbox_wasm()).unwrap())],
            symlinks: vec![("/bin/sh", "toolbox.wasm")],
            entrypoint: vec!["sh", "-c"],
            cmd: vec!["echo $GREETING; pwd"],
            env: vec!["PATH=/bin", "GREETING=from the image's env"],
            working_dir: "/bin",
            ..ImageSpec::default()
        },
    );
    registry.copy_in(&layout, "env", "env:1", &[]);
    let server = Server::start_with(&[
        "--insecure-registry",
        &registry.host,
        "--default-registry",
        &registry.host,
    ]);

    // By tag, through kubectl run: the image's files are the container's.
    let image = registry.image("app:1");
    server.kubectl_ok(&["run", "app", &format!("--image={image}"), "--restart=Never"]);
    wait_succeeded(&server, "app");
    assert_eq!(
        server.kubectl_ok(&["logs", "app"]),
        "hello from the image\none\n"
    );
    let pod = server.json(&["get", "pod", "app"]);
    assert_eq!(
        text(&pod, "/status/containerStatuses/0/imageID"),
        format!("{}@{app_digest}", registry.image("app")),
        "imageID is host/name@manifest digest"
    );
    let seen = events(&server, "app");
    assert!(
        seen.contains(&format!("Pulling Pulling image \"{image}\"")),
        "{seen}"
    );
    assert!(
        seen.contains(&format!("Pulled Successfully pulled image \"{image}\" in "))
            && seen.contains("Image size: "),
        "{seen}"
    );

    // The config's Env, WorkingDir and PATH (the entrypoint `sh` found on
    // it); a bare name goes to --default-registry.
    server.kubectl_ok(&["run", "env", "--image=env:1", "--restart=Never"]);
    wait_succeeded(&server, "env");
    assert_eq!(
        server.kubectl_ok(&["logs", "env"]),
        "from the image's env\n/bin\n"
    );
    let pod = server.json(&["get", "pod", "env"]);
    assert!(
        text(&pod, "/status/containerStatuses/0/imageID")
            .starts_with(&format!("{}@sha256:", registry.image("env"))),
        "{pod}"
    );
    // A command the image lacks fails as exec would.
    server.kubectl_ok(&[
        "run",
        "nosuch",
        "--image=env:1",
        "--restart=Never",
        "--command",
        "--",
        "/usr/bin/nosuch",
    ]);
    server.wait_for(Duration::from_secs(30), || {
        let p = server.json(&["get", "pod", "nosuch"]);
        text(&p, "/status/containerStatuses/0/state/waiting/message")
            .contains("exec: \"/usr/bin/nosuch\": executable file not found")
    });

    // By digest, and a zstd layer.
    let pinned = format!("{}@{app_digest}", registry.image("app"));
    server.kubectl_ok(&[
        "run",
        "pinned",
        &format!("--image={pinned}"),
        "--restart=Never",
    ]);
    server.kubectl_ok(&[
        "run",
        "zstd",
        &format!("--image={}", registry.image("app:zstd")),
        "--restart=Never",
    ]);
    wait_succeeded(&server, "pinned");
    wait_succeeded(&server, "zstd");
    assert!(
        server
            .kubectl_ok(&["logs", "zstd"])
            .starts_with("hello from the image")
    );

    // What one container writes stays in it: the image and the next
    // container see the image's files.
    server.kubectl_ok(&[
        "run",
        "writer",
        &format!("--image={image}"),
        "--restart=Never",
        "--command",
        "--",
        "/bin/sh",
        "-c",
        "echo changed > /usr/share/www/index.html; cat /usr/share/www/index.html",
    ]);
    wait_succeeded(&server, "writer");
    assert_eq!(server.kubectl_ok(&["logs", "writer"]), "changed\n");
    server.kubectl_ok(&[
        "run",
        "reader",
        &format!("--image={image}"),
        "--restart=Never",
    ]);
    wait_succeeded(&server, "reader");
    assert!(
        server
            .kubectl_ok(&["logs", "reader"])
            .starts_with("hello from the image")
    );
    let seen = events(&server, "reader");
    assert!(
        seen.contains(&format!(
            "Container image \"{image}\" already present on machine"
        )),
        "IfNotPresent (a tag that is not latest) does not pull again: {seen}"
    );

    // A name the registry does not have: ErrImagePull with its reason,
    // then ImagePullBackOff.
    let missing = registry.image("nothing:1");
    server.kubectl_ok(&["run", "missing", &format!("--image={missing}")]);
    wait_waiting(&server, "missing", "ImagePullBackOff");
    let seen = events(&server, "missing");
    assert!(
        seen.contains(&format!(
            "Failed Failed to pull image \"{missing}\": failed to resolve reference"
        )) && seen.contains("not found")
            && seen.contains("Failed Error: ErrImagePull")
            && seen.contains(&format!("BackOff Back-off pulling image \"{missing}\"")),
        "{seen}"
    );

    // Never with an image the node lacks.
    let manifest = server.manifest(
        "never.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: never}}\nspec:\n  containers:\n  - {{name: c, image: \"{}\", imagePullPolicy: Never}}\n",
            registry.image("app:not-pulled")
        ),
    );
    server.kubectl_ok(&["apply", "-f", &manifest]);
    wait_waiting(&server, "never", "ErrImageNeverPull");
    assert!(
        events(&server, "never").contains("is not present with pull policy of Never"),
        "{}",
        events(&server, "never")
    );
}

#[test]
fn indexes_moved_tags_and_shared_pulls() {
    let (registry, _work, layout) = registry_and_layout(Registry::anonymous());
    shell_image(&layout, "wasm", "wasm", &["cat /version"]);
    build(
        &layout,
        "linux",
        &ImageSpec {
            files: vec![("/bin/app", b"\x7fELF not wasm".to_vec())],
            entrypoint: vec!["/bin/app"],
            platform: "linux/amd64",
            ..ImageSpec::default()
        },
    );
    index_of(
        &layout,
        "multi",
        &[("linux", "linux/amd64"), ("wasm", "wasi/wasm")],
    );
    index_of(&layout, "linux-only", &[("linux", "linux/amd64")]);
    registry.copy_in(&layout, "multi", "multi:1", &["--all"]);
    registry.copy_in(&layout, "linux-only", "linux:1", &["--all"]);
    assert!(registry.manifest("multi:1").contains("\"manifests\""));
    shell_image(&layout, "one", "one", &["cat /version"]);
    shell_image(&layout, "two", "two", &["cat /version"]);
    registry.copy_in(&layout, "one", "moving:latest", &[]);
    shell_image(&layout, "fifty", "fifty", &["sleep 3600"]);
    registry.copy_in(&layout, "fifty", "fifty:1", &[]);

    let server = Server::start_with(&["--insecure-registry", &registry.host, "--max-pods", "200"]);

    // The wasi/wasm entry of an index runs; an index without one is
    // refused, saying which platforms it has.
    server.kubectl_ok(&[
        "run",
        "multi",
        &format!("--image={}", registry.image("multi:1")),
        "--restart=Never",
    ]);
    wait_succeeded(&server, "multi");
    assert_eq!(server.kubectl_ok(&["logs", "multi"]), "wasm\n");
    server.kubectl_ok(&[
        "run",
        "linux",
        &format!("--image={}", registry.image("linux:1")),
        "--restart=Never",
    ]);
    server.wait_for(Duration::from_secs(30), || {
        events(&server, "linux").contains("Error: ErrImagePull")
    });
    let seen = events(&server, "linux");
    assert!(
        seen.contains("has no WebAssembly in it (it has platforms: linux/amd64)"),
        "{seen}"
    );

    // `:latest` is pulled Always: a moved tag brings the new image.
    let moving = registry.image("moving");
    server.kubectl_ok(&[
        "run",
        "first",
        &format!("--image={moving}"),
        "--restart=Never",
    ]);
    wait_succeeded(&server, "first");
    assert_eq!(server.kubectl_ok(&["logs", "first"]), "one\n");
    let moved = registry.copy_in(&layout, "two", "moving:latest", &[]);
    server.kubectl_ok(&[
        "run",
        "second",
        &format!("--image={moving}"),
        "--restart=Never",
    ]);
    wait_succeeded(&server, "second");
    assert_eq!(server.kubectl_ok(&["logs", "second"]), "two\n");
    let second = server.json(&["get", "pod", "second"]);
    assert!(text(&second, "/status/containerStatuses/0/imageID").ends_with(&moved));
    assert!(events(&server, "second").contains("Pulling Pulling image"));

    // Fifty pods of an image the node lacks: one download of its layer.
    server.kubectl_ok(&[
        "create",
        "deployment",
        "fifty",
        &format!("--image={}", registry.image("fifty:1")),
        "--replicas=50",
    ]);
    server.kubectl_ok(&["rollout", "status", "deployment/fifty", "--timeout=120s"]);
    let manifest: serde_json::Value = serde_json::from_str(&registry.manifest("fifty:1")).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(
        registry.blob_downloads(layer),
        1,
        "50 pods of one new image share one pull: {}",
        registry
            .log()
            .lines()
            .filter(|l| l.contains("/blobs/"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn private_registries_take_pull_secrets_and_pushed_artifacts() {
    let (registry, work, layout) = registry_and_layout(Registry::private());
    shell_image(&layout, "v1", "private", &["cat /version"]);
    registry.copy_in(&layout, "v1", "secret-app:1", &[]);
    let ca = registry.ca.clone().unwrap();
    let server = Server::start_with(&["--registry-ca", ca.to_str().unwrap()]);
    let image = registry.image("secret-app:1");

    // Without credentials: the registry's 401, as ErrImagePull.
    server.kubectl_ok(&[
        "run",
        "anon",
        &format!("--image={image}"),
        "--restart=Never",
    ]);
    server.wait_for(Duration::from_secs(30), || {
        events(&server, "anon").contains("Error: ErrImagePull")
    });
    assert!(
        events(&server, "anon").contains("401 Unauthorized"),
        "{}",
        events(&server, "anon")
    );

    // With an imagePullSecret made by kubectl.
    server.kubectl_ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={}", registry.host),
        "--docker-username=tester",
        "--docker-password=s3cret",
    ]);
    let manifest = server.manifest(
        "with-secret.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: authed}}\nspec:\n  restartPolicy: Never\n  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - {{name: c, image: \"{image}\"}}\n"
        ),
    );
    server.kubectl_ok(&["apply", "-f", &manifest]);
    wait_succeeded(&server, "authed");
    assert_eq!(server.kubectl_ok(&["logs", "authed"]), "private\n");

    // `wasmkube image push` publishes a CNCF wasm artifact (and a standard
    // image with --files), with the credentials of a Docker config file.
    let config = work.path().join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            registry.host,
            base64_encode("tester:s3cret")
        ),
    )
    .unwrap();
    let flags = [
        "--registry-config",
        config.to_str().unwrap(),
        "--registry-ca",
        ca.to_str().unwrap(),
    ];
    let data = work.path().join("cli-data");
    let artifact = registry.image("tools:1");
    let mut push = vec![
        "--data-dir",
        data.to_str().unwrap(),
        "image",
        "push",
        "toolbox",
        &artifact,
    ];
    push.extend(flags);
    let out = wasmkube(&push);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pushed = registry.manifest("tools:1");
    assert!(
        pushed.contains("application/vnd.wasm.config.v0+json")
            && pushed.contains("application/wasm"),
        "{pushed}"
    );
    let site = work.path().join("site");
    std::fs::create_dir_all(site.join("usr/share/nginx/html")).unwrap();
    std::fs::write(
        site.join("usr/share/nginx/html/index.html"),
        "pushed page\n",
    )
    .unwrap();
    let files_image = registry.image("site:1");
    let mut push = vec![
        "--data-dir",
        data.to_str().unwrap(),
        "image",
        "push",
        "toolbox",
        &files_image,
        "--files",
        site.to_str().unwrap(),
    ];
    push.extend(flags);
    let out = wasmkube(&push);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(registry.manifest("site:1").contains("tar+gzip"));

    let manifest = server.manifest(
        "pushed.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: pushed}}\nspec:\n  restartPolicy: Never\n  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - {{name: artifact, image: \"{artifact}\", command: [sh, -c, 'echo from-artifact']}}\n  - {{name: files, image: \"{files_image}\", args: [cat, /usr/share/nginx/html/index.html]}}\n"
        ),
    );
    server.kubectl_ok(&["apply", "-f", &manifest]);
    wait_succeeded(&server, "pushed");
    assert_eq!(
        server.kubectl_ok(&["logs", "pushed", "-c", "artifact"]),
        "from-artifact\n"
    );
    assert_eq!(
        server.kubectl_ok(&["logs", "pushed", "-c", "files"]),
        "pushed page\n"
    );
}

#[test]
fn corrupt_blobs_and_escaping_layers_are_refused() {
    let (registry, work, layout) = registry_and_layout(Registry::anonymous());
    init(&layout);
    let outside = tempfile::tempdir().unwrap();
    let outside_path = outside
        .path()
        .to_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    let wasm = std::fs::read(toolbox_wasm()).unwrap();
    image_of_layer(
        &layout,
        "dotdot",
        &raw_layer(&[
            (b'0', "app.wasm", "", &wasm),
            (b'0', "../../escaped", "", b"x"),
        ]),
        "/app.wasm",
    );
    let link_target = format!("/{outside_path}");
    image_of_layer(
        &layout,
        "linkout",
        &raw_layer(&[
            (b'0', "app.wasm", "", &wasm),
            (b'2', "evil", &link_target, b""),
            (b'0', "evil/owned", "", b"x"),
        ]),
        "/app.wasm",
    );
    shell_image(&layout, "good", "good", &["cat /version"]);
    registry.copy_in(&layout, "dotdot", "dotdot:1", &[]);
    registry.copy_in(&layout, "linkout", "linkout:1", &[]);
    let good = registry.copy_in(&layout, "good", "corrupt:1", &[]);
    let _ = good;

    let data = work.path().join("data");
    let pull = |name: &str| {
        wasmkube(&[
            "--data-dir",
            data.to_str().unwrap(),
            "image",
            "pull",
            &registry.image(name),
            "--insecure-registry",
            &registry.host,
        ])
    };
    let out = pull("dotdot:1");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("climbs out of the image"), "{err}");
    let out = pull("linkout:1");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("written through a symlink"), "{err}");
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing was written outside the image"
    );
    assert!(!work.path().join("escaped").exists() && !Path::new("/escaped").exists());

    // A layer whose bytes on the registry's disk were changed: refused, and
    // neither the blob nor an image is left.
    let manifest: serde_json::Value =
        serde_json::from_str(&registry.manifest("corrupt:1")).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let file = registry.blob_file(layer);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let out = pull("corrupt:1");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is corrupt"), "{err}");
    let list = wasmkube(&["--data-dir", data.to_str().unwrap(), "image", "list"]);
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        !list.contains("corrupt") && !list.contains("dotdot") && !list.contains("linkout"),
        "{list}"
    );
    assert_eq!(
        std::fs::read_dir(data.join("images/tmp")).unwrap().count(),
        0,
        "no partial pull is left"
    );
    assert_eq!(
        std::fs::read_dir(data.join("images/trees"))
            .unwrap()
            .count(),
        1,
        "no image files but the built-in http-server's"
    );
}

#[test]
fn unused_images_are_collected_and_images_in_use_never() {
    let (registry, _work, layout) = registry_and_layout(Registry::anonymous());
    shell_image(&layout, "keep", "keep", &["cat /version; sleep 3600"]);
    // A component of its own, so its compiled code goes with it.
    shell_image_of(
        &layout,
        "gone",
        "gone",
        &["cat /version"],
        toolbox_variant("gone"),
    );
    registry.copy_in(&layout, "keep", "keep:1", &[]);
    registry.copy_in(&layout, "gone", "gone:1", &[]);
    // Any unused image is over a one-byte budget.
    let server = Server::start_with(&[
        "--insecure-registry",
        &registry.host,
        "--image-max-size",
        "1",
        "--image-minimum-ttl",
        "0s",
        "--image-gc-period",
        "500ms",
    ]);
    let keep = registry.image("keep:1");
    let gone = registry.image("gone:1");
    server.kubectl_ok(&["run", "keep", &format!("--image={keep}")]);
    server.kubectl_ok(&["run", "gone", &format!("--image={gone}"), "--restart=Never"]);
    wait_succeeded(&server, "gone");
    server.kubectl_ok(&["wait", "--for=condition=Ready", "pod/keep", "--timeout=60s"]);
    server.kubectl_ok(&["delete", "pod", "gone"]);
    let data = server.data_dir().to_str().unwrap().to_string();
    let list = || {
        let out = wasmkube(&["--data-dir", &data, "image", "list"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while list().contains("gone:1") {
        assert!(
            std::time::Instant::now() < deadline,
            "gone:1 was never collected: {}",
            list()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let listed = list();
    assert!(
        listed.contains("keep:1"),
        "the image in use stays: {listed}"
    );
    assert!(
        listed.contains("toolbox:latest"),
        "built-ins stay: {listed}"
    );
    // The pod using it runs on, and another pod finds it present.
    let pod = server.json(&["get", "pod", "keep"]);
    assert_eq!(text(&pod, "/status/phase"), "Running");
    server.kubectl_ok(&["run", "again", &format!("--image={keep}")]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/again",
        "--timeout=60s",
    ]);
    assert!(events(&server, "again").contains("already present on machine"));
    // What only the collected image named is gone from disk.
    let trees = std::fs::read_dir(server.data_dir().join("images/trees"))
        .unwrap()
        .count();
    assert_eq!(
        trees, 2,
        "the kept image's files and http-server's, nothing else"
    );
    // And from the server's memory: compiled code stays mapped from its
    // file, so a deleted file still mapped would hold memory and disk.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", server.pid())).unwrap();
    let kept: Vec<&str> = maps
        .lines()
        .filter(|l| l.contains(".cwasm") && l.ends_with("(deleted)"))
        .collect();
    assert!(
        kept.is_empty(),
        "deleted compiled code still mapped: {kept:?}"
    );
    assert!(
        maps.lines().any(|l| l.contains(".cwasm")),
        "the image in use runs from its mapped compiled code"
    );
}

/// The built-in `http-server` carries nginx's document root, as the guide
/// lists it with `kubectl exec … ls`, and serves its `index.html` at `/`.
#[test]
fn the_built_in_http_server_carries_its_document_root() {
    let server = Server::start();
    let manifest = server.manifest(
        "web.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: web, image: http-server, ports: [{containerPort: 80}]}\n",
    );
    server.apply_ready(&manifest, "web");
    assert_eq!(
        server.kubectl_ok(&["exec", "web", "--", "ls", "/usr/share/nginx/html"]),
        "50x.html\nindex.html\n"
    );
    let page = server.kubectl_ok(&[
        "exec",
        "web",
        "--",
        "wget",
        "-q",
        "-O-",
        "http://127.0.0.1/",
    ]);
    assert_eq!(
        page,
        include_str!("../../guest-examples/http-server/html/index.html"),
        "/ is the image's index.html"
    );
}

fn base64_encode(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
