//! CustomResourceDefinitions through real kubectl: a definition is served
//! once Established, its objects are pruned, defaulted and validated by its
//! schema with the API server's words, printed with its columns, scaled,
//! explained (by the newest and the oldest kubectl), kept across a restart,
//! and deleted with it.

mod server;

use std::time::Duration;

use server::{Server, kubectl_dir, text};

const WEBSITES: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: websites.extensions.example.com
spec:
  scope: Namespaced
  group: extensions.example.com
  names:
    kind: Website
    singular: website
    plural: websites
    shortNames: [ws]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - {name: URL, type: string, jsonPath: .spec.gitRepo}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [gitRepo]
            properties:
              gitRepo: {type: string, pattern: '^https?://', description: The site's repository.}
              replicas: {type: integer, minimum: 0, default: 1}
          status:
            type: object
            properties:
              replicas: {type: integer}
";

const KUBIA: &str = "apiVersion: extensions.example.com/v1
kind: Website
metadata:
  name: kubia
spec:
  gitRepo: https://github.com/luksa/kubia-website-example.git
  extra: pruned
";

fn stderr_of(server: &Server, args: &[&str]) -> String {
    let out = server.kubectl(args);
    assert!(!out.status.success(), "kubectl {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn establish(server: &Server, file: &str, name: &str) {
    server.kubectl_ok(&["apply", "-f", file]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/{name}"),
        "--timeout=30s",
    ]);
}

#[test]
fn a_crd_is_served_through_kubectl_as_on_a_cluster() {
    let mut server = Server::start();
    let crd = server.manifest("crd.yaml", WEBSITES);
    let site = server.manifest("kubia.yaml", KUBIA);
    // Before the definition, kubectl knows no such kind.
    assert!(stderr_of(&server, &["get", "websites"]).contains("websites"));
    establish(&server, &crd, "websites.extensions.example.com");
    let listed = server.kubectl_ok(&["get", "crd"]);
    assert!(
        listed.starts_with("NAME ") && listed.contains("CREATED AT"),
        "{listed}"
    );
    let definition = server.json(&["get", "crd", "websites.extensions.example.com"]);
    assert_eq!(definition["status"]["acceptedNames"]["kind"], "Website");
    assert_eq!(definition["status"]["storedVersions"][0], "v1");
    assert_eq!(
        definition["metadata"]["finalizers"][0],
        "customresourcecleanup.apiextensions.k8s.io"
    );

    // An unknown field is pruned (with a warning), a default filled.
    let out = server
        .kubectl_command(&["apply", "--validate=warn", "-f", &site])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown field \"spec.extra\""),
        "{out:?}"
    );
    let kubia = server.json(&["get", "ws", "kubia"]);
    assert_eq!(kubia["spec"]["replicas"], 1);
    assert!(kubia["spec"].get("extra").is_none(), "{kubia}");
    // Strict validation (kubectl's default) refuses it instead.
    let strict = server.manifest("strict.yaml", &KUBIA.replace("name: kubia", "name: strict"));
    let refused = stderr_of(&server, &["apply", "-f", &strict]);
    assert!(
        refused.contains("unknown field \"spec.extra\""),
        "{refused}"
    );

    // The definition's printer columns.
    let table = server.kubectl_ok(&["get", "websites"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "URL", "REPLICAS", "AGE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        row[..3],
        [
            "kubia",
            "https://github.com/luksa/kubia-website-example.git",
            "1"
        ]
    );

    // The schema's checks, in the API server's words.
    let merge_refused = |patch: &str| {
        stderr_of(
            &server,
            &["patch", "ws", "kubia", "--type=merge", "-p", patch],
        )
    };
    let negative = merge_refused(r#"{"spec":{"replicas":-1}}"#);
    assert!(
        negative.contains("The Website \"kubia\" is invalid: spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"),
        "{negative}"
    );
    let pattern = merge_refused(r#"{"spec":{"gitRepo":"ftp://x"}}"#);
    assert!(
        pattern.contains(r#"spec.gitRepo: Invalid value: "ftp://x": spec.gitRepo in body should match '^https?://'"#),
        "{pattern}"
    );
    // Custom resources have no strategic merge, as on a cluster.
    let strategic = stderr_of(
        &server,
        &["patch", "ws", "kubia", "-p", r#"{"spec":{"replicas":2}}"#],
    );
    assert!(
        strategic.contains("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"),
        "{strategic}"
    );

    // scale and status subresources.
    server.kubectl_ok(&["scale", "website", "kubia", "--replicas=3"]);
    assert_eq!(server.json(&["get", "ws", "kubia"])["spec"]["replicas"], 3);
    server.kubectl_ok(&[
        "patch",
        "ws",
        "kubia",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":5}}"#,
    ]);
    assert!(server.json(&["get", "ws", "kubia"]).get("status").is_none());
    server.kubectl_ok(&[
        "patch",
        "ws",
        "kubia",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":3}}"#,
    ]);
    assert_eq!(
        server.json(&["get", "ws", "kubia"])["status"]["replicas"],
        3
    );
    let bad_status = stderr_of(
        &server,
        &[
            "patch",
            "ws",
            "kubia",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"replicas":"three"}}"#,
        ],
    );
    assert!(
        bad_status.contains(r#"status.replicas: Invalid value: "string": status.replicas in body must be of type integer: "string""#),
        "{bad_status}"
    );

    // kubectl edit: the edited object goes back as a merge patch.
    let editor = server.manifest(
        "editor.sh",
        "#!/bin/sh\nsed -i 's|gitRepo: https://github.com|gitRepo: https://example.com|' \"$1\"\n",
    );
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let edited = server
        .kubectl_command(&["edit", "ws", "kubia"])
        .env("KUBE_EDITOR", &editor)
        .output()
        .unwrap();
    assert!(edited.status.success(), "{edited:?}");
    assert_eq!(
        text(&server.json(&["get", "ws", "kubia"]), "/spec/gitRepo"),
        "https://example.com/luksa/kubia-website-example.git"
    );

    // explain reads the schema from OpenAPI: v3 (1.33) and v2 (1.27).
    let explained = server.kubectl_ok(&["explain", "website.spec"]);
    assert!(
        explained.contains("gitRepo\t<string> -required-"),
        "{explained}"
    );
    assert!(explained.contains("The site's repository."), "{explained}");
    let old = kubectl_dir().join("kubectl.1.27");
    let explained = server.kubectl_binary_ok(&old, &["explain", "websites.spec.replicas"]);
    assert!(
        explained.contains("FIELD: replicas <integer>"),
        "{explained}"
    );
    let resources = server.kubectl_ok(&["api-resources", "--api-group=extensions.example.com"]);
    assert!(
        resources.contains("websites") && resources.contains("ws") && resources.contains("Website"),
        "{resources}"
    );

    // A custom resource owned by another is collected with it (the
    // garbage collector follows resources defined after it started).
    let uid = text(&server.json(&["get", "ws", "kubia"]), "/metadata/uid").to_string();
    let owner = format!(
        "  ownerReferences: [{{apiVersion: extensions.example.com/v1, kind: Website, name: kubia, uid: {uid}}}]\n"
    );
    let child = KUBIA
        .replace("name: kubia\n", &format!("name: child\n{owner}"))
        .replace("  extra: pruned\n", "");
    let child = server.manifest("child.yaml", &child);
    server.kubectl_ok(&["apply", "-f", &child]);
    let copy = server.manifest("copy.yaml", &KUBIA.replace("  extra: pruned\n", ""));
    server.kubectl_ok(&["delete", "ws", "kubia"]);
    server.wait_for(Duration::from_secs(20), || {
        !server.kubectl(&["get", "ws", "child"]).status.success()
    });
    server.kubectl_ok(&["apply", "-f", &copy]);

    // A restarted server serves the definition from its first request.
    server.restart(false);
    assert_eq!(
        text(&server.json(&["get", "ws", "kubia"]), "/spec/gitRepo"),
        "https://github.com/luksa/kubia-website-example.git"
    );

    // Deleting the definition deletes its objects (kubectl waits for it).
    server.kubectl_ok(&["create", "namespace", "other"]);
    let other = server.manifest("other.yaml", &KUBIA.replace("  extra: pruned\n", ""));
    server.kubectl_ok(&["apply", "-n", "other", "-f", &other]);
    server.kubectl_ok(&["delete", "crd", "websites.extensions.example.com"]);
    let gone = stderr_of(&server, &["get", "crd", "websites.extensions.example.com"]);
    assert!(gone.contains("NotFound"), "{gone}");
    establish(&server, &crd, "websites.extensions.example.com");
    server.wait_for(Duration::from_secs(10), || {
        server.kubectl(&["get", "ws", "-A"]).status.success()
    });
    let left = server.items(&["get", "websites", "-A"]);
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn definitions_the_api_server_refuses_are_refused_in_its_words() {
    let server = Server::start();
    let refused = |manifest: &str| {
        let file = server.manifest("bad.yaml", manifest);
        stderr_of(&server, &["apply", "-f", &file])
    };
    let wrong_name = refused(&WEBSITES.replace(
        "name: websites.extensions.example.com",
        "name: sites.extensions.example.com",
    ));
    assert!(
        wrong_name.contains(
            r#"metadata.name: Invalid value: "sites.extensions.example.com": must be spec.names.plural+"."+spec.group"#
        ),
        "{wrong_name}"
    );
    let no_storage = refused(&WEBSITES.replace("storage: true", "storage: false"));
    assert!(
        no_storage.contains("must have exactly one version marked as storage version"),
        "{no_storage}"
    );
    let untyped = refused(&WEBSITES.replace(
        "              replicas: {type: integer, minimum: 0, default: 1}",
        "              replicas: {minimum: 0}",
    ));
    assert!(
        untyped.contains("spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[replicas].type: Required value: must not be empty for specified object fields"),
        "{untyped}"
    );
    let scope = refused(&WEBSITES.replace("scope: Namespaced", "scope: Global"));
    assert!(
        scope.contains(
            r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#
        ),
        "{scope}"
    );

    // A second definition of the same kind in the group is stored, but
    // its names are not accepted and it is not served.
    let first = server.manifest("first.yaml", WEBSITES);
    establish(&server, &first, "websites.extensions.example.com");
    let second = server.manifest(
        "second.yaml",
        &WEBSITES
            .replace("websites", "sites")
            .replace("singular: website", "singular: site")
            .replace("[ws]", "[st]"),
    );
    server.kubectl_ok(&["apply", "-f", &second]);
    server.wait_for(Duration::from_secs(10), || {
        let crd = server.json(&["get", "crd", "sites.extensions.example.com"]);
        crd["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "NamesAccepted"))
    });
    let crd = server.json(&["get", "crd", "sites.extensions.example.com"]);
    let conditions = crd["status"]["conditions"].as_array().unwrap();
    let accepted = conditions
        .iter()
        .find(|c| c["type"] == "NamesAccepted")
        .unwrap();
    assert_eq!(accepted["status"], "False");
    assert_eq!(accepted["reason"], "KindConflict");
    assert_eq!(accepted["message"], "\"Website\" is already in use");
    let established = conditions
        .iter()
        .find(|c| c["type"] == "Established")
        .unwrap();
    assert_eq!(established["status"], "False");
}

#[test]
fn every_served_version_reads_and_writes_the_same_objects() {
    let server = Server::start();
    let two_versions = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Cluster
  names: {kind: Widget, plural: widgets}
  versions:
  - name: v1beta1
    served: true
    storage: false
    deprecated: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer, maximum: 10}}}
";
    let crd = server.manifest("widgets.yaml", two_versions);
    establish(&server, &crd, "widgets.example.com");
    let old = server.manifest(
        "old.yaml",
        "apiVersion: example.com/v1beta1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 20}\n",
    );
    let out = server.kubectl(&["apply", "-f", &old]);
    assert!(out.status.success(), "{out:?}");
    // A deprecated version warns, with the API server's default words.
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Warning: example.com/v1beta1 Widget is deprecated"),
        "{out:?}"
    );
    // The preferred version is v1 (GA before beta): the object reads as
    // v1, and each version's own schema checks writes through it.
    let widget = server.json(&["get", "widgets", "w"]);
    assert_eq!(widget["apiVersion"], "example.com/v1");
    assert_eq!(widget["spec"]["size"], 20);
    let old_view = server.json(&["get", "widgets.v1beta1.example.com", "w"]);
    assert_eq!(old_view["apiVersion"], "example.com/v1beta1");
    let too_big = stderr_of(
        &server,
        &[
            "patch",
            "widget",
            "w",
            "--type=merge",
            "-p",
            r#"{"spec":{"size":30}}"#,
        ],
    );
    assert!(
        too_big.contains(
            "spec.size: Invalid value: 30: spec.size in body should be less than or equal to 10"
        ),
        "{too_big}"
    );
    let listed = server.kubectl_ok(&["get", "widgets"]);
    let header: Vec<&str> = listed.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "AGE"]);
}

#[test]
fn server_side_apply_merges_a_custom_list_by_its_keys() {
    let server = Server::start();
    let crd = server.manifest(
        "routers.yaml",
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: routers.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Router, plural: routers}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties: {name: {type: string}, port: {type: integer}}
",
    );
    establish(&server, &crd, "routers.example.com");
    let router = |port: &str, number: u16| {
        format!(
            "apiVersion: example.com/v1\nkind: Router\nmetadata: {{name: edge}}\nspec:\n  ports:\n  - {{name: {port}, port: {number}}}\n"
        )
    };
    let first = server.manifest("a.yaml", &router("a", 1));
    let second = server.manifest("b.yaml", &router("b", 2));
    let taking = server.manifest("take.yaml", &router("a", 9));
    server.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=one",
        "-f",
        &first,
    ]);
    server.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=two",
        "-f",
        &second,
    ]);
    // Each manager owns its own item of the keyed list: both are kept.
    let ports = server.json(&["get", "router", "edge"])["spec"]["ports"].clone();
    assert_eq!(
        ports,
        serde_json::json!([{"name": "a", "port": 1}, {"name": "b", "port": 2}])
    );
    // Changing the other manager's item is a conflict, named by key.
    let conflict = stderr_of(
        &server,
        &[
            "apply",
            "--server-side",
            "--field-manager=two",
            "-f",
            &taking,
        ],
    );
    assert!(
        conflict.contains(r#"conflict with "one""#)
            && conflict.contains(r#".spec.ports[name="a"].port"#),
        "{conflict}"
    );
}
