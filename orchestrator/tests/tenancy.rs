//! Tenancy as the guide's chapters teach it, through the real kubectl:
//! ServiceAccounts (the kind, the default one, pods running as one), their
//! tokens, users by client certificate, RBAC, in-cluster clients in
//! guests and Pod Security admission.

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

/// A pod's credentials, as the API server's admission and the kubelet give
/// them: a `kube-api-access-…` volume mounted read-only at the token path
/// of each container, holding a token bound to the pod (a TokenReview names
/// the pod), the API's CA (the `kube-root-ca.crt` ConfigMap every
/// namespace gets) and the namespace; nothing with
/// `automountServiceAccountToken: false` on the pod or on its account,
/// unless the pod asks for it.
#[test]
fn pods_get_their_service_accounts_credentials() {
    let server = Server::start();
    run_ready(&server, "reader");
    let pod = server.json(&["get", "pod", "reader"]);
    let volume = &pod["spec"]["volumes"][0];
    let name = volume["name"].as_str().unwrap();
    assert!(name.starts_with("kube-api-access-"), "{pod}");
    assert_eq!(
        volume["projected"]["sources"][0]["serviceAccountToken"],
        serde_json::json!({"expirationSeconds": 3607, "path": "token"})
    );
    assert_eq!(
        pod["spec"]["containers"][0]["volumeMounts"],
        serde_json::json!([{"name": name, "readOnly": true,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}])
    );
    let read = |file: &str| {
        server.kubectl_ok(&[
            "exec",
            "reader",
            "--",
            "cat",
            &format!("/var/run/secrets/kubernetes.io/serviceaccount/{file}"),
        ])
    };
    assert_eq!(read("namespace"), "default");
    let ca = server.kubectl_ok(&[
        "config",
        "view",
        "--raw",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.certificate-authority-data}",
    ]);
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(ca.trim())
        .unwrap();
    assert_eq!(read("ca.crt").trim(), String::from_utf8(ca).unwrap().trim());
    let token = read("token");
    let review = token_review(&server, &token, &[]);
    assert_eq!(
        review["status"]["user"]["username"], "system:serviceaccount:default:default",
        "{review}"
    );
    assert_eq!(
        review["status"]["user"]["extra"]["authentication.kubernetes.io/pod-name"],
        serde_json::json!(["reader"])
    );
    // The same token on every read until it is due for renewal.
    assert_eq!(read("token"), token);

    // Every namespace has the CA, new ones too.
    server.kubectl_ok(&["create", "namespace", "fresh"]);
    server.wait_for(Duration::from_secs(30), || {
        server
            .kubectl(&["get", "configmap", "kube-root-ca.crt", "-n", "fresh"])
            .status
            .success()
    });

    // Opting out: on the pod, or on the account unless the pod opts in.
    let opted = |name: &str, account: &str, automount: &str| {
        let file = server.manifest(
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  serviceAccountName: {account}\n{automount}  containers:\n  - {{name: c, image: toolbox, command: [sleep, '3600']}}\n"
            ),
        );
        server.kubectl_ok(&["create", "-f", &file]);
        let pod = server.json(&["get", "pod", name]);
        pod["spec"]
            .get("volumes")
            .and_then(|v| v.as_array())
            .map_or(0, Vec::len)
    };
    assert_eq!(
        opted(
            "no-pod",
            "default",
            "  automountServiceAccountToken: false\n"
        ),
        0
    );
    let account = server.manifest(
        "quiet.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: quiet}\nautomountServiceAccountToken: false\n",
    );
    server.kubectl_ok(&["create", "-f", &account]);
    assert_eq!(opted("no-account", "quiet", ""), 0);
    assert_eq!(
        opted("yes-pod", "quiet", "  automountServiceAccountToken: true\n"),
        1
    );
}

/// Grants the `default` ServiceAccount of `default` the `view` role there.
fn bind_default_view(server: &Server) {
    server.kubectl_ok(&[
        "create",
        "rolebinding",
        "default-view",
        "--clusterrole=view",
        "--serviceaccount=default:default",
    ]);
}

/// `kubectl run NAME --image=toolbox -- sleep 3600`, then waits (up to a
/// minute) for it to be Ready.
fn run_ready(server: &Server, name: &str) {
    server.kubectl_ok(&["run", name, "--image=toolbox", "--", "sleep", "3600"]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("pod/{name}"),
        "--timeout=60s",
    ]);
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

    // The issuer's discovery and keys, which every ServiceAccount may read:
    // the token's signature checks out against the published key.
    let raw = |path: &str| -> serde_json::Value {
        serde_json::from_str(&server.kubectl_ok(&["--token", &token, "get", "--raw", path]))
            .unwrap()
    };
    let discovery = raw("/.well-known/openid-configuration");
    assert_eq!(
        discovery["issuer"],
        "https://kubernetes.default.svc.cluster.local"
    );
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    let keys = raw("/openid/v1/jwks");
    let key = &keys["keys"][0];
    assert_eq!(key["kid"], jwt_part(&token, 0)["kid"]);
    let coordinate = |name: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(key[name].as_str().unwrap())
            .unwrap()
    };
    let point = [vec![4u8], coordinate("x"), coordinate("y")].concat();
    let (signed, signature) = token.trim().rsplit_once('.').unwrap();
    let signature = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap()
    };
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &point)
        .verify(signed.as_bytes(), &signature)
        .expect("the token is signed by the published key");

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
    jwt_part(token, 1)
}

/// Part `n` of a JWT (0: the header, 1: the claims), decoded.
fn jwt_part(token: &str, n: usize) -> serde_json::Value {
    use base64::Engine;
    let part = token.trim().split('.').nth(n).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A kubeconfig for `user` in `groups`, made by `wasmkube kubeconfig`.
fn user_kubeconfig(server: &Server, user: &str, groups: &[&str]) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wasmkube"));
    command
        .arg("--data-dir")
        .arg(server.data_dir())
        .args(["kubeconfig", "--user", user]);
    for group in groups {
        command.args(["--group", group]);
    }
    let made = command.output().unwrap();
    assert!(made.status.success(), "{made:?}");
    server.manifest(
        &format!("{user}.kubeconfig"),
        &String::from_utf8(made.stdout).unwrap(),
    )
}

/// What `kubectl --kubeconfig KUBECONFIG ARGS` by the kubectl at `binary`
/// printed and how it exited.
fn kubectl_as_output(
    server: &Server,
    binary: &str,
    kubeconfig: &str,
    args: &[&str],
) -> std::process::Output {
    let mut all = vec!["--kubeconfig", kubeconfig];
    all.extend(args);
    server
        .kubectl_binary_command(&server::kubectl_dir().join(binary), &all)
        .output()
        .unwrap()
}

/// `kubectl --kubeconfig KUBECONFIG ARGS` by the kubectl at `binary`:
/// stdout when it succeeds, stderr (or stdout, as `auth can-i`'s "no")
/// when it fails.
fn kubectl_as(
    server: &Server,
    binary: &str,
    kubeconfig: &str,
    args: &[&str],
) -> Result<String, String> {
    let out = kubectl_as_output(server, binary, kubeconfig, args);
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    match (out.status.success(), stderr.is_empty()) {
        (true, _) => Ok(stdout),
        (false, true) => Err(stdout),
        (false, false) => Err(stderr),
    }
}

/// `kubectl auth can-i ARGS` as `kubeconfig`: its answer (stdout), "yes"
/// or "no" (warnings go to stderr).
fn can_i(server: &Server, binary: &str, kubeconfig: &str, args: &[&str]) -> String {
    let mut all = vec!["auth", "can-i"];
    all.extend(args);
    let out = kubectl_as_output(server, binary, kubeconfig, &all);
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(out.status.success(), answer == "yes", "{out:?}");
    answer
}

const POD_READER: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  namespace: default
  name: pod-reader
rules:
- apiGroups: [\"\"]
  resources: [\"pods\", \"pods/log\"]
  verbs: [\"get\", \"watch\", \"list\"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: read-pods
  namespace: default
subjects:
- kind: User
  name: alice
roleRef:
  kind: Role
  name: pod-reader
  apiGroup: rbac.authorization.k8s.io
";

/// `alice`, with her certificate kubeconfig and the pod-reader Role bound
/// to her in `default`: each verb allowed or forbidden as the Role says,
/// with the API server's words, watches and subresources included, and
/// `kubectl auth can-i` (1.33 and 1.27, and `--as` from the admin)
/// agreeing; she cannot act as someone else.
#[test]
fn alice_may_do_what_her_role_says() {
    let server = Server::start();
    let alice = user_kubeconfig(&server, "alice", &["dev"]);
    let forbidden_list = "Error from server (Forbidden): pods is forbidden: User \"alice\" cannot \
                          list resource \"pods\" in API group \"\" in the namespace \"default\"";
    assert_eq!(
        kubectl_as(&server, "kubectl.1.33", &alice, &["get", "pods"]),
        Err(forbidden_list.into())
    );
    let file = server.manifest("rbac.yaml", POD_READER);
    assert_eq!(
        server.kubectl_ok(&["apply", "-f", &file]).trim(),
        "role.rbac.authorization.k8s.io/pod-reader created\n\
         rolebinding.rbac.authorization.k8s.io/read-pods created"
    );
    let binding = server.kubectl_ok(&["get", "rolebinding", "read-pods", "-o", "wide"]);
    let row: Vec<&str> = binding.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        (row[0], row[1], row[3]),
        ("read-pods", "Role/pod-reader", "alice")
    );
    server.kubectl_ok(&["run", "web", "--image=toolbox", "--", "sleep", "3600"]);

    for binary in ["kubectl.1.33", "kubectl.1.27"] {
        let names = kubectl_as(&server, binary, &alice, &["get", "pods", "-o", "name"]);
        assert_eq!(names, Ok("pod/web".into()), "{binary}");
        assert!(kubectl_as(&server, binary, &alice, &["get", "pod", "web"]).is_ok());
        assert_eq!(
            kubectl_as(&server, binary, &alice, &["delete", "pod", "web"]),
            Err(
                "Error from server (Forbidden): pods \"web\" is forbidden: User \"alice\" cannot \
                 delete resource \"pods\" in API group \"\" in the namespace \"default\""
                    .into()
            ),
            "{binary}"
        );
    }
    let cases: &[(&[&str], Result<&str, &str>)] = &[
        (
            &["get", "pods", "-n", "kube-system"],
            Err(
                "Error from server (Forbidden): pods is forbidden: User \"alice\" cannot list \
                 resource \"pods\" in API group \"\" in the namespace \"kube-system\"",
            ),
        ),
        (
            &["get", "deployments"],
            Err(
                "Error from server (Forbidden): deployments.apps is forbidden: User \"alice\" \
                 cannot list resource \"deployments\" in API group \"apps\" in the namespace \"default\"",
            ),
        ),
        (
            &["get", "nodes"],
            Err(
                "Error from server (Forbidden): nodes is forbidden: User \"alice\" cannot list \
                 resource \"nodes\" in API group \"\" at the cluster scope",
            ),
        ),
        (
            &["create", "configmap", "c", "--from-literal=a=b"],
            Err(
                "error: failed to create configmap: configmaps is forbidden: User \"alice\" cannot \
                 create resource \"configmaps\" in API group \"\" in the namespace \"default\"",
            ),
        ),
        (
            &["exec", "web", "--", "true"],
            Err(
                "Error from server (Forbidden): pods \"web\" is forbidden: User \"alice\" cannot \
                 create resource \"pods/exec\" in API group \"\" in the namespace \"default\"",
            ),
        ),
        (
            &["label", "pod", "web", "a=b"],
            Err(
                "Error from server (Forbidden): pods \"web\" is forbidden: User \"alice\" cannot \
                 patch resource \"pods\" in API group \"\" in the namespace \"default\"",
            ),
        ),
        (
            &["get", "pods", "--as", "bob"],
            Err(
                "Error from server (Forbidden): users \"bob\" is forbidden: User \"alice\" cannot \
                 impersonate resource \"users\" in API group \"\" at the cluster scope",
            ),
        ),
    ];
    for (args, expected) in cases {
        let got = kubectl_as(&server, "kubectl.1.33", &alice, args);
        let expected = expected.map(str::to_string).map_err(str::to_string);
        assert_eq!(got, expected, "{args:?}");
    }
    // `auth can-i` agrees, by her and for her (the admin impersonating).
    let can_i_cases: &[(&[&str], &str)] = &[
        (&["list", "pods"], "yes"),
        (&["watch", "pods"], "yes"),
        (&["get", "pods/log"], "yes"),
        (&["delete", "pods"], "no"),
        (&["create", "pods/exec"], "no"),
        (&["list", "pods", "-n", "kube-system"], "no"),
        (&["list", "nodes"], "no"),
    ];
    for (args, expected) in can_i_cases {
        for binary in ["kubectl.1.33", "kubectl.1.27"] {
            assert_eq!(
                can_i(&server, binary, &alice, args),
                *expected,
                "{binary} {args:?}"
            );
        }
    }
    // The admin asks for her (impersonating), and gets her answers.
    for (verb, expected) in [("list", "yes"), ("delete", "no")] {
        let out = server.kubectl(&["auth", "can-i", verb, "pods", "--as", "alice"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);
    }
    // A watch is a verb of its own, checked like the rest.
    let watched = kubectl_as(
        &server,
        "kubectl.1.33",
        &alice,
        &[
            "get",
            "pods",
            "-n",
            "kube-system",
            "--watch",
            "--request-timeout=5s",
        ],
    );
    assert!(watched.unwrap_err().contains("cannot list resource"));
    // `can-i --list` names what the Role gives.
    let listed = kubectl_as(
        &server,
        "kubectl.1.33",
        &alice,
        &["auth", "can-i", "--list"],
    )
    .unwrap();
    let pods_row = listed
        .lines()
        .find(|line| line.starts_with("pods "))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(pods_row.ends_with("[get watch list]"), "{pods_row}");
}

/// What a namespace admin may grant: only what she holds. Roles with more,
/// or bindings to roles with more, are refused with the API server's
/// words; a binding to a role she holds (`view`) is allowed. The built-in
/// aggregated roles take in a ClusterRole labelled to join them.
#[test]
fn nobody_grants_what_they_do_not_hold() {
    let server = Server::start();
    server.kubectl_ok(&["create", "namespace", "team"]);
    server.kubectl_ok(&[
        "create",
        "rolebinding",
        "alice-admin",
        "--clusterrole=admin",
        "--user=alice",
        "-n",
        "team",
    ]);
    let alice = user_kubeconfig(&server, "alice", &[]);
    let run = |args: &[&str]| {
        let mut all = vec!["-n", "team"];
        all.extend(args);
        kubectl_as(&server, "kubectl.1.33", &alice, &all)
    };
    assert_eq!(
        run(&["create", "role", "reader", "--verb=get", "--resource=pods"]),
        Ok("role.rbac.authorization.k8s.io/reader created".into())
    );
    assert_eq!(
        run(&["create", "role", "nodes", "--verb=get", "--resource=nodes"]),
        Err("Error from server (Forbidden): roles.rbac.authorization.k8s.io \"nodes\" is forbidden: \
             user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC \
             permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}"
            .into())
    );
    let escalated = run(&[
        "create",
        "rolebinding",
        "root",
        "--clusterrole=cluster-admin",
        "--user=alice",
    ]);
    assert!(
        escalated.as_ref().unwrap_err().contains(
            "rolebindings.rbac.authorization.k8s.io \"root\" is forbidden: user \"alice\""
        ),
        "{escalated:?}"
    );
    assert_eq!(
        run(&[
            "create",
            "rolebinding",
            "bob-views",
            "--clusterrole=view",
            "--user=bob"
        ]),
        Ok("rolebinding.rbac.authorization.k8s.io/bob-views created".into())
    );
    // Outside her namespace she is nobody.
    assert!(run(&["get", "pods", "-n", "default"]).is_err());
    assert_eq!(
        run(&["auth", "can-i", "create", "deployments.apps"]),
        Ok("yes".into())
    );

    // A ClusterRole labelled to join `view` adds its rules to it.
    let crontabs = server.manifest(
        "aggregate.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: crontab-reader
  labels:
    rbac.authorization.k8s.io/aggregate-to-view: \"true\"
rules:
- apiGroups: [\"stable.example.com\"]
  resources: [\"crontabs\"]
  verbs: [\"get\", \"list\", \"watch\"]
",
    );
    server.kubectl_ok(&["apply", "-f", &crontabs]);
    for role in ["view", "edit", "admin"] {
        server.wait_for(Duration::from_secs(30), || {
            server
                .kubectl_ok(&[
                    "get",
                    "clusterrole",
                    role,
                    "-o",
                    "jsonpath={.rules[*].resources}",
                ])
                .contains("crontabs")
        });
    }
    // Asked with its group (kubectl would name a resource the server does
    // not serve yet without one), the review says she may. (kubectl checks
    // a kind with no PATCH, as reviews are, against the CRDs, which she may
    // not list: its validation is off.)
    let review = server.manifest(
        "review.yaml",
        "apiVersion: authorization.k8s.io/v1
kind: SelfSubjectAccessReview
spec:
  resourceAttributes:
    namespace: team
    verb: list
    group: stable.example.com
    resource: crontabs
",
    );
    assert_eq!(
        run(&[
            "create",
            "--validate=false",
            "-f",
            &review,
            "-o",
            "jsonpath={.status.allowed} {.status.reason}"
        ]),
        Ok("true RBAC: allowed by RoleBinding \"alice-admin/team\" of ClusterRole \"admin\" to User \"alice\"".into())
    );
}

/// A ServiceAccount's token is forbidden until a binding names the
/// account, then allowed what the binding's role gives.
#[test]
fn service_accounts_have_what_their_bindings_give() {
    let server = Server::start();
    server.wait_for(Duration::from_secs(30), || {
        server.kubectl(&["get", "sa", "default"]).status.success()
    });
    let token = server.kubectl_ok(&["create", "token", "default"]);
    let list = |token: &str| {
        let out = server.kubectl(&["--token", token, "get", "pods", "-o", "name"]);
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
            false => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        }
    };
    assert_eq!(
        list(&token),
        Err("Error from server (Forbidden): pods is forbidden: User \
             \"system:serviceaccount:default:default\" cannot list resource \"pods\" in API \
             group \"\" in the namespace \"default\""
            .into())
    );
    bind_default_view(&server);
    assert_eq!(list(&token), Ok(String::new()));
    // `view` reads no Secrets.
    let secrets = server.kubectl(&["--token", &token, "get", "secrets"]);
    assert!(!secrets.status.success());
}

/// An in-cluster client in a guest, as Kubernetes' docs write one: it
/// reaches the API at `https://kubernetes.default.svc` (and at
/// `$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`), verifies the server
/// with the mounted `ca.crt` and sends the mounted token. Its account may
/// list nothing until a binding grants `view`; a client that trusts no CA
/// is refused by its own TLS.
#[test]
fn a_guest_lists_pods_with_its_service_account_token() {
    let server = Server::start();
    run_ready(&server, "client");
    let in_pod = |script: &str| {
        let out = server.kubectl(&["exec", "client", "--", "sh", "-c", script]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let curl = "SERVICEACCOUNT=/var/run/secrets/kubernetes.io/serviceaccount
        NAMESPACE=$(cat ${SERVICEACCOUNT}/namespace)
        TOKEN=$(cat ${SERVICEACCOUNT}/token)
        curl -s --cacert ${SERVICEACCOUNT}/ca.crt --header \"Authorization: Bearer ${TOKEN}\" \
          -X GET https://kubernetes.default.svc/api/v1/namespaces/${NAMESPACE}/pods";
    let (code, out, err) = in_pod(curl);
    assert_eq!(code, Some(0), "{out}{err}");
    let status: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["code"], 403, "{status}");
    assert_eq!(status["reason"], "Forbidden", "{status}");
    assert_eq!(
        status["message"],
        "pods is forbidden: User \"system:serviceaccount:default:default\" cannot list \
         resource \"pods\" in API group \"\" in the namespace \"default\""
    );

    bind_default_view(&server);
    let (code, out, err) = in_pod(curl);
    assert_eq!(code, Some(0), "{out}{err}");
    let list: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(list["kind"], "PodList", "{list}");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["client"]);

    // By the Service's address from the environment, with wget.
    let (code, out, err) = in_pod(
        "D=/var/run/secrets/kubernetes.io/serviceaccount
         wget -q -O - --ca-certificate=$D/ca.crt \
           --header \"Authorization: Bearer $(cat $D/token)\" \
           https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/default/pods/client",
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let pod: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(pod["metadata"]["name"], "client");

    // Trusting no CA, the client refuses the server; `-k` skips the check
    // and, sending no token, meets the API's refusal of an unknown caller.
    let (code, out, err) = in_pod("curl -sS https://kubernetes.default.svc/api");
    assert_eq!(code, Some(60), "{out}{err}");
    assert_eq!(
        err.lines().next(),
        Some("curl: (60) SSL certificate problem: unable to get local issuer certificate")
    );
    let (code, out, err) =
        in_pod("curl -sk https://kubernetes.default.svc/api/v1/namespaces/default/pods");
    assert_eq!(code, Some(0), "{out}{err}");
    let status: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        (&status["code"], &status["reason"]),
        (&serde_json::json!(401), &serde_json::json!("Unauthorized")),
        "{status}"
    );
}

/// Pod Security admission as a namespace's labels ask: the enforced level
/// refuses a pod that mounts the host, in the API server's words; the
/// warned level lets a plain pod in with kubectl's `Warning:`; a
/// Deployment whose template breaks the enforced level is only warned
/// about; a label that names no level is refused.
#[test]
fn pod_security_labels_guard_a_namespace() {
    let server = Server::start();
    server.kubectl_ok(&["create", "namespace", "locked"]);
    server.kubectl_ok(&[
        "label",
        "namespace",
        "locked",
        "pod-security.kubernetes.io/enforce=baseline",
        "pod-security.kubernetes.io/warn=restricted",
    ]);
    let host = server.manifest(
        "host.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: host, namespace: locked}\nspec:\n  volumes: [{name: data, hostPath: {path: /srv}}]\n  containers:\n  - {name: c, image: toolbox, volumeMounts: [{name: data, mountPath: /data}]}\n",
    );
    let refused = server.kubectl(&["create", "-f", &host]);
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr).trim(),
        format!(
            "Error from server (Forbidden): error when creating \"{host}\": pods \"host\" is forbidden: \
             violates PodSecurity \"baseline:latest\": hostPath volumes (volume \"data\")"
        )
    );

    let plain = server.kubectl(&[
        "run",
        "plain",
        "-n",
        "locked",
        "--image=toolbox",
        "--",
        "sleep",
        "100",
    ]);
    assert!(plain.status.success(), "{plain:?}");
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout).trim(),
        "pod/plain created"
    );
    assert_eq!(
        String::from_utf8_lossy(&plain.stderr).trim(),
        "Warning: would violate PodSecurity \"restricted:latest\": \
         allowPrivilegeEscalation != false (container \"plain\" must set securityContext.allowPrivilegeEscalation=false), \
         unrestricted capabilities (container \"plain\" must set securityContext.capabilities.drop=[\"ALL\"]), \
         runAsNonRoot != true (pod or container \"plain\" must set securityContext.runAsNonRoot=true), \
         seccompProfile (pod or container \"plain\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
    );

    let deployment = server.manifest(
        "hosted.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: hosted, namespace: locked}\nspec:\n  selector: {matchLabels: {app: hosted}}\n  template:\n    metadata: {labels: {app: hosted}}\n    spec:\n      volumes: [{name: data, hostPath: {path: /srv}}]\n      containers:\n      - {name: c, image: toolbox}\n",
    );
    let warned = server.kubectl(&["create", "-f", &deployment]);
    assert!(warned.status.success(), "{warned:?}");
    let warnings = String::from_utf8_lossy(&warned.stderr);
    assert!(
        warnings.contains(
            "Warning: would violate PodSecurity \"baseline:latest\": hostPath volumes (volume \"data\")"
        ),
        "{warnings}"
    );

    let wrong = server.kubectl(&[
        "label",
        "--overwrite",
        "namespace",
        "locked",
        "pod-security.kubernetes.io/enforce=strict",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&wrong.stderr).trim(),
        "The Namespace \"locked\" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: \
         Invalid value: \"strict\": must be one of privileged, baseline, restricted"
    );
}
