//! Tenancy as the guide's chapters teach it, through the real kubectl:
//! ServiceAccounts (the kind, the default one, pods running as one), their
//! tokens, and users by client certificate.

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

/// `kubectl auth whoami` as `kubeconfig`, by the kubectl at `binary`: the
/// rows of its table as (attribute, value).
fn whoami(server: &Server, binary: &str, extra: &[&str]) -> Vec<(String, String)> {
    let mut args = vec!["auth", "whoami"];
    args.extend(extra);
    let out = server.kubectl_binary_ok(&server::kubectl_dir().join(binary), &args);
    out.lines()
        .skip(1)
        .map(|line| {
            let (attribute, value) = line.split_once("   ").unwrap_or((line, ""));
            (attribute.trim().to_string(), value.trim().to_string())
        })
        .collect()
}

fn row(rows: &[(String, String)], attribute: &str) -> String {
    rows.iter()
        .find(|(a, _)| a == attribute)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {attribute} in {rows:?}"))
}

/// Who `kubectl --token TOKEN` is to the server: the username, or the
/// error kubectl prints.
fn token_user(server: &Server, token: &str) -> Result<String, String> {
    let out = server.kubectl(&[
        "--token",
        token,
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    }
}

/// A TokenReview of `token` for `audiences` (the API's when empty), as the
/// server answers it.
fn token_review(server: &Server, token: &str, audiences: &[&str]) -> serde_json::Value {
    let review = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": audiences},
    });
    let file = server.manifest("review.json", &review.to_string());
    server.json(&["create", "-f", &file])
}

/// Users: the admin, and `alice` with the certificate kubeconfig `wasmkube
/// kubeconfig` signs, are who they say to `kubectl auth whoami` (1.33, and
/// 1.27 at v1beta1); a certificate another CA signed gets nowhere.
#[test]
fn users_are_who_their_certificates_say() {
    let server = Server::start();
    let admin = whoami(&server, "kubectl.1.33", &[]);
    assert_eq!(row(&admin, "Username"), "system:admin");
    assert_eq!(
        row(&admin, "Groups"),
        "[system:masters system:authenticated]"
    );

    let made = std::process::Command::new(env!("CARGO_BIN_EXE_wasmkube"))
        .arg("--data-dir")
        .arg(server.data_dir())
        .args([
            "kubeconfig",
            "--user",
            "alice",
            "--group",
            "dev",
            "--group",
            "ops",
            "--namespace",
            "team",
        ])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let alice = server.manifest("alice.kubeconfig", &String::from_utf8(made.stdout).unwrap());
    for binary in ["kubectl.1.33", "kubectl.1.27"] {
        let rows = whoami(&server, binary, &["--kubeconfig", &alice]);
        assert_eq!(row(&rows, "Username"), "alice", "{binary}");
        assert_eq!(
            row(&rows, "Groups"),
            "[dev ops system:authenticated]",
            "{binary}"
        );
    }
    let namespace = server.kubectl_ok(&[
        "--kubeconfig",
        &alice,
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.contexts[0].context.namespace}",
    ]);
    assert_eq!(namespace, "team");

    // The same user signed by a CA the server does not know.
    let stranger = wasmkube::server::pki::generate(&["localhost".into()]).unwrap();
    let (certificate, key) = wasmkube::auth::x509::issue(
        &stranger.ca_pem,
        &stranger.ca_key_pem,
        "alice",
        &["system:masters".into()],
        1,
    )
    .unwrap();
    let (address, ca, _) = server.client_config();
    let forged = wasmkube::server::kubeconfig::render(
        &format!("https://{address}"),
        Some(&ca),
        "alice",
        wasmkube::server::kubeconfig::Credentials::Certificate {
            certificate: &certificate,
            key: &key,
        },
        "default",
    );
    let forged = server.manifest("forged.kubeconfig", &forged);
    let refused = server.kubectl(&["--kubeconfig", &forged, "get", "pods"]);
    assert!(!refused.status.success());
    // The handshake fails (its signature is not the cluster CA's): kubectl
    // reads the alert, or finds the connection closed first.
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Unable to connect to the server: "),
        "{refused:?}"
    );
}

/// ServiceAccount tokens: `kubectl create token` with its duration and
/// audience, the token a user the API knows, TokenReview agreeing; a
/// pod-bound token invalid once its pod is gone; the key survives a
/// restart.
#[test]
fn service_account_tokens_are_bound_checked_and_reviewed() {
    let mut server = Server::start();
    server.wait_for(Duration::from_secs(30), || {
        server.kubectl(&["get", "sa", "default"]).status.success()
    });
    let token = server.kubectl_ok(&["create", "token", "default"]);
    assert_eq!(
        token_user(&server, &token),
        Ok("system:serviceaccount:default:default".into())
    );
    let reviewed = token_review(&server, &token, &[]);
    assert_eq!(reviewed["status"]["authenticated"], true, "{reviewed}");
    let uid = server.kubectl_ok(&["get", "sa", "default", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(reviewed["status"]["user"]["uid"], uid.as_str());
    assert_eq!(
        reviewed["status"]["user"]["groups"],
        serde_json::json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    // The claims say what the request asked: an hour by default.
    let claims = claims_of(&token);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    assert_eq!(claims["sub"], "system:serviceaccount:default:default");

    let short = server.kubectl(&["create", "token", "default", "--duration", "5m"]);
    assert_eq!(
        String::from_utf8_lossy(&short.stderr).trim(),
        "error: failed to create token: TokenRequest.authentication.k8s.io \"default\" is invalid: \
         spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes"
    );
    let day = server.kubectl_ok(&["create", "token", "default", "--duration", "24h"]);
    let claims = claims_of(&day);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        86400
    );
    let missing = server.kubectl(&["create", "token", "nobody"]);
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr).trim(),
        "error: failed to create token: serviceaccounts \"nobody\" not found"
    );

    // A token for another audience is not the API's.
    let vault = server.kubectl_ok(&["create", "token", "default", "--audience", "vault"]);
    let unauthorized = "error: You must be logged in to the server (Unauthorized)";
    assert_eq!(token_user(&server, &vault), Err(unauthorized.into()));
    assert_eq!(
        token_review(&server, &vault, &[])["status"]["authenticated"],
        false
    );
    let review = token_review(&server, &vault, &["vault"]);
    assert_eq!(review["status"]["authenticated"], true);
    assert_eq!(review["status"]["audiences"], serde_json::json!(["vault"]));
    assert_eq!(token_user(&server, "not-a-token"), Err(unauthorized.into()));

    // Bound to a pod: valid while the pod is, not after.
    server.kubectl_ok(&["run", "holder", "--image=toolbox", "--", "sleep", "3600"]);
    let bound = server.kubectl_ok(&[
        "create",
        "token",
        "default",
        "--bound-object-kind",
        "Pod",
        "--bound-object-name",
        "holder",
    ]);
    let rows = whoami(&server, "kubectl.1.33", &["--token", &bound]);
    assert_eq!(
        row(&rows, "Extra: authentication.kubernetes.io/pod-name"),
        "[holder]"
    );
    let unbindable = server.kubectl(&[
        "create",
        "token",
        "default",
        "--bound-object-kind",
        "Pod",
        "--bound-object-name",
        "nowhere",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&unbindable.stderr).trim(),
        "error: failed to create token: pods \"nowhere\" not found"
    );
    server.kubectl_ok(&["delete", "pod", "holder", "--grace-period=0", "--force"]);
    server.wait_for(Duration::from_secs(30), || {
        !server.kubectl(&["get", "pod", "holder"]).status.success()
    });
    assert_eq!(token_user(&server, &bound), Err(unauthorized.into()));
    let review = token_review(&server, &bound, &[]);
    assert_eq!(review["status"]["authenticated"], false);
    assert_eq!(
        review["status"]["error"],
        "[invalid bearer token, pods \"holder\" not found]"
    );

    // The signing key is kept: a token outlives a restart.
    server.restart(false);
    assert_eq!(
        token_user(&server, &day),
        Ok("system:serviceaccount:default:default".into())
    );
}

/// The claims of a JWT, unchecked (what a client decoding it reads).
fn claims_of(token: &str) -> serde_json::Value {
    use base64::Engine;
    let part = token.trim().split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
