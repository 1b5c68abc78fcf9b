//! Tenancy as the guide's chapters teach it, through the real kubectl:
//! ServiceAccounts so far: the kind, the default one, pods running as one.

mod server;

use std::time::Duration;

use server::Server;

/// The guide's ServiceAccount: every namespace has a `default` one (made
/// again when deleted, made with a new namespace), `kubectl create
/// serviceaccount` and the guide's manifest make others, listed with
/// kubectl's columns by every kubectl from 1.27.
#[test]
fn every_namespace_has_a_default_service_account_and_more_can_be_made() {
    let server = Server::start();
    server.wait_for(Duration::from_secs(30), || {
        server
            .kubectl(&["get", "serviceaccount", "default", "-n", "kube-system"])
            .status
            .success()
    });
    let manifest = server.manifest(
        "sa.yaml",
        "kind: ServiceAccount\napiVersion: v1\nmetadata:\n  name: my-service-account\n",
    );
    assert_eq!(
        server.kubectl_ok(&["apply", "-f", &manifest]).trim(),
        "serviceaccount/my-service-account created"
    );
    let old = server::kubectl_dir().join("kubectl.1.27");
    let created = std::process::Command::new(&old)
        .args(["create", "serviceaccount", "from-1-27"])
        .env("KUBECONFIG", server.kubeconfig())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&created.stdout).trim(),
        "serviceaccount/from-1-27 created",
        "{created:?}"
    );
    let table = server.kubectl_ok(&["get", "sa"]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "SECRETS", "AGE"]);
    let names: Vec<&str> = rows[1..].iter().map(|r| r[0]).collect();
    assert_eq!(names, ["default", "from-1-27", "my-service-account"]);
    assert!(rows[1..].iter().all(|r| r[1] == "0"), "{table}");

    // Deleted, the default one comes back; a new namespace gets its own.
    // The default ServiceAccount's uid in `ns`; empty while it is missing.
    let uid = |ns: &str| {
        let got = server.kubectl(&[
            "get",
            "sa",
            "default",
            "-n",
            ns,
            "-o",
            "jsonpath={.metadata.uid}",
        ]);
        match got.status.success() {
            true => String::from_utf8_lossy(&got.stdout).into_owned(),
            false => String::new(),
        }
    };
    let first = uid("default");
    assert!(!first.is_empty());
    server.kubectl_ok(&["delete", "sa", "default"]);
    server.wait_for(Duration::from_secs(30), || {
        let now = uid("default");
        !now.is_empty() && now != first
    });
    server.kubectl_ok(&["create", "namespace", "team"]);
    server.wait_for(Duration::from_secs(30), || !uid("team").is_empty());
    // The namespace still goes when deleted, its ServiceAccounts with it.
    server.kubectl_ok(&["delete", "namespace", "team", "--timeout=60s"]);
    assert!(
        !server
            .kubectl(&["get", "namespace", "team"])
            .status
            .success()
    );
}

const SA_POD: &str = "kind: Pod
apiVersion: v1
metadata:
  name: use-service-account-pod
spec:
  # Set the service account containers in this pod
  # use when they make requests to the API server
  serviceAccountName: my-service-account
  containers:
    - name: container-service-account
      image: toolbox
      command: ['sleep', '3600']
";

/// The guide's pod naming a ServiceAccount: refused while the account does
/// not exist, with the API server's words; run once it does, and
/// `spec.serviceAccount` names it, as the guide says to look. A pod naming
/// none runs as `default`, and an update leaving the names out keeps them.
#[test]
fn pods_run_as_the_service_account_they_name() {
    let server = Server::start();
    let file = server.manifest("pod.yaml", SA_POD);
    let refused = server.kubectl(&["apply", "-f", &file]);
    assert!(!refused.status.success());
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr).trim(),
        format!(
            "Error from server (Forbidden): error when creating \"{file}\": pods \
             \"use-service-account-pod\" is forbidden: error looking up service account \
             default/my-service-account: serviceaccount \"my-service-account\" not found"
        )
    );
    server.kubectl_ok(&["create", "serviceaccount", "my-service-account"]);
    server.kubectl_ok(&["apply", "-f", &file]);
    let pod = server.json(&["get", "pod", "use-service-account-pod"]);
    assert_eq!(pod["spec"]["serviceAccount"], "my-service-account", "{pod}");
    assert_eq!(pod["spec"]["serviceAccountName"], "my-service-account");

    server.kubectl_ok(&["run", "plain", "--image=toolbox", "--", "sleep", "3600"]);
    let pod = server.json(&["get", "pod", "plain"]);
    assert_eq!(
        (
            &pod["spec"]["serviceAccountName"],
            &pod["spec"]["serviceAccount"]
        ),
        (&serde_json::json!("default"), &serde_json::json!("default"))
    );
    // A replace without the names keeps them.
    let mut replaced = pod.clone();
    let spec = replaced["spec"].as_object_mut().unwrap();
    spec.remove("serviceAccountName");
    spec.remove("serviceAccount");
    replaced["metadata"]["labels"] = serde_json::json!({"replaced": "yes"});
    let path = server.manifest("plain.json", &replaced.to_string());
    server.kubectl_ok(&["replace", "-f", &path]);
    let pod = server.json(&["get", "pod", "plain"]);
    assert_eq!(pod["metadata"]["labels"]["replaced"], "yes");
    assert_eq!(pod["spec"]["serviceAccountName"], "default", "{pod}");
}
