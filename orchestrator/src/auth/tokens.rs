//! ServiceAccount tokens: JSON Web Tokens (ES256) the server signs for a
//! ServiceAccount, with audiences and an expiry, optionally bound to a pod,
//! Secret or node, and checked on every use: the signature, the time, the
//! audience, and that the account and the bound object still exist as they
//! were when the token was made.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use sha2::Digest;

use super::{AUTHENTICATED, User};
use crate::admission::{FieldError, Invalid};
use crate::registry::metadata::timestamp;
use crate::registry::{Error, Registry};

/// The audience the API server accepts tokens for, and their issuer.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";
/// How long a token lasts when the request does not say (an hour).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest a token may last (ten minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest a token may be asked to last (2^32 seconds).
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// Why a key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write {path}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the ServiceAccount signing key is not a P-256 key")]
    Key,
}

/// Signs and checks ServiceAccount tokens with the cluster's key.
pub struct Signer {
    key: EcdsaKeyPair,
    /// The key's id in token headers: SHA-256 of its public key.
    kid: String,
    random: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish()
    }
}

/// What a valid token says.
#[derive(Debug, Clone)]
pub struct Reviewed {
    pub user: User,
    /// The audiences both the token and the reviewer accept.
    pub audiences: Vec<String>,
}

impl Signer {
    /// A new key, held in memory only, with its PEM (PKCS #8).
    pub fn generate() -> Result<(Signer, String), KeyError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|_| KeyError::Key)?;
        let pem = key.serialize_pem();
        Ok((Signer::from_pkcs8(&key.serialize_der())?, pem))
    }

    /// The key of `pem` (PKCS #8, P-256).
    pub fn from_pem(pem: &str) -> Result<Signer, KeyError> {
        let key = rcgen::KeyPair::from_pem(pem).map_err(|_| KeyError::Key)?;
        Signer::from_pkcs8(&key.serialize_der())
    }

    /// The key kept at `path` (made at first start, readable by the owner
    /// only).
    pub fn load_or_create(path: &Path) -> Result<Signer, KeyError> {
        let io = |source| KeyError::Io {
            path: path.into(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(pem) => Signer::from_pem(&pem),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let (signer, pem) = Signer::generate()?;
                crate::server::write_file(path, &pem, 0o600).map_err(io)?;
                Ok(signer)
            }
            Err(e) => Err(io(e)),
        }
    }

    fn from_pkcs8(der: &[u8]) -> Result<Signer, KeyError> {
        let random = SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &random)
                .map_err(|_| KeyError::Key)?;
        let kid = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(key.public_key().as_ref()));
        Ok(Signer { key, kid, random })
    }

    /// The public key as a JSON Web Key Set (`/openid/v1/jwks`), for those
    /// who check the cluster's tokens themselves.
    pub fn jwks(&self) -> Value {
        // An uncompressed P-256 point: 0x04, then x and y.
        let point = self.key.public_key().as_ref();
        let (x, y) = point[1..].split_at(32);
        json!({"keys": [{
            "use": "sig",
            "kty": "EC",
            "kid": self.kid,
            "crv": "P-256",
            "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
        }]})
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&self.random, signing_input.as_bytes())
            .expect("signing with a valid key does not fail");
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }

    /// The claims of a token this key signed; `Err` says why not.
    fn verified_claims(&self, token: &str) -> Result<Value, String> {
        let not_ours = || "invalid bearer token".to_string();
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(not_ours());
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| not_ours());
        let header: Value = serde_json::from_slice(&decode(header)?).map_err(|_| not_ours())?;
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return Err(not_ours());
        }
        let signing_input = &token[..token.len() - signature.len() - 1];
        signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref(),
        )
        .verify(signing_input.as_bytes(), &decode(signature)?)
        .map_err(|_| not_ours())?;
        serde_json::from_slice(&decode(claims)?).map_err(|_| not_ours())
    }

    /// Answers a TokenRequest (`serviceaccounts/token`) for the account
    /// `namespace/name`: the request as the API server returns it, with
    /// `status.token` and `status.expirationTimestamp`.
    pub fn issue(
        &self,
        registry: &Registry,
        namespace: &str,
        name: &str,
        request: &Value,
    ) -> Result<Value, Error> {
        let account = registry.get(
            &registry.resource("", "ServiceAccount"),
            Some(namespace),
            name,
        )?;
        let spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
        let expiration = spec
            .get("expirationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
        let too = |why: &str| {
            Error::Invalid(
                Invalid {
                    kind: "TokenRequest".into(),
                    name: name.into(),
                    errors: vec![FieldError {
                        field: "spec.expirationSeconds".into(),
                        message: format!("Invalid value: {expiration}: {why}"),
                    }],
                },
                "authentication.k8s.io".into(),
            )
        };
        if expiration < MIN_EXPIRATION_SECONDS {
            return Err(too("may not specify a duration less than 10 minutes"));
        }
        if expiration > MAX_EXPIRATION_SECONDS {
            return Err(too("may not specify a duration larger than 2^32 seconds"));
        }
        let audiences = audiences_of(&spec);
        let mut private = json!({
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": uid_of(&account)},
        });
        let bound = spec.get("boundObjectRef").filter(|r| !r.is_null());
        if let Some(reference) = bound {
            let (key, object) = bound_object(registry, namespace, reference)?;
            private[key] = json!({"name": object_name(&object), "uid": uid_of(&object)});
            if key == "pod"
                && let Some(node) = object.pointer("/spec/nodeName").and_then(Value::as_str)
            {
                // A pod-bound token also names the pod's node, as the API
                // server's does.
                let nodes = registry.resource("", "Node");
                if let Some(node) = registry.find(&nodes, None, node)? {
                    private["node"] = json!({"name": object_name(&node), "uid": uid_of(&node)});
                }
            }
        }
        let now = jiff::Timestamp::now().as_second();
        let expires = now + expiration;
        let claims = json!({
            "aud": audiences,
            "exp": expires,
            "iat": now,
            "iss": API_AUDIENCE,
            "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": private,
            "nbf": now,
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
        });
        let mut spec = json!({"audiences": audiences, "expirationSeconds": expiration});
        spec["boundObjectRef"] = bound.cloned().unwrap_or(Value::Null);
        Ok(json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": timestamp(jiff::Timestamp::now()),
            },
            "spec": spec,
            "status": {
                "token": self.sign(&claims),
                "expirationTimestamp": timestamp(
                    jiff::Timestamp::from_second(expires).expect("an expiry within 2^32 s of now")
                ),
            },
        }))
    }

    /// Checks `token` for a reviewer accepting `audiences`: who it is, or
    /// why it is not valid (worded as the API server's TokenReview errors).
    pub fn review(
        &self,
        registry: &Registry,
        token: &str,
        audiences: &[String],
    ) -> Result<Reviewed, String> {
        let claims = self.verified_claims(token)?;
        if claims.get("iss").and_then(Value::as_str) != Some(API_AUDIENCE) {
            return Err("invalid bearer token".into());
        }
        let now = jiff::Timestamp::now().as_second();
        let at = |claim: &str| claims.get(claim).and_then(Value::as_i64);
        if at("exp").is_none_or(|exp| exp <= now) {
            return Err("service account token has expired".into());
        }
        if at("nbf").is_some_and(|nbf| nbf > now + NOT_BEFORE_LEEWAY_SECONDS) {
            return Err("service account token is not valid yet".into());
        }
        let token_audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let accepted: Vec<String> = audiences
            .iter()
            .filter(|a| token_audiences.contains(&a.as_str()))
            .cloned()
            .collect();
        if accepted.is_empty() {
            return Err("token audiences is invalid".into());
        }
        let private = claims.get("kubernetes.io").cloned().unwrap_or_default();
        let text = |pointer: &str| {
            private
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let namespace = text("/namespace");
        let name = text("/serviceaccount/name");
        let account_uid = text("/serviceaccount/uid");
        let lookup = |kind: &str, namespace: Option<&str>, name: &str| {
            registry
                .find(&registry.resource("", kind), namespace, name)
                .map_err(|e| format!("cannot check the token: {e}"))
        };
        match lookup("ServiceAccount", Some(namespace), name)? {
            Some(account) if uid_of(&account) == account_uid && !is_deleted(&account) => {}
            Some(_) => {
                return Err(format!(
                    "service account UID ({account_uid}) does not match claim"
                ));
            }
            None => return Err(format!("serviceaccounts \"{name}\" not found")),
        }
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, kind, namespaced) in [
            ("pod", "Pod", true),
            ("secret", "Secret", true),
            ("node", "Node", false),
        ] {
            let Some(bound) = private.get(key) else {
                continue;
            };
            let bound_name = bound
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let bound_uid = bound.get("uid").and_then(Value::as_str).unwrap_or_default();
            let found = lookup(kind, namespaced.then_some(namespace), bound_name)?;
            match found {
                Some(object) if uid_of(&object) == bound_uid && !is_deleted(&object) => {}
                Some(object) if uid_of(&object) == bound_uid => {
                    return Err(format!(
                        "{} \"{bound_name}\" is being deleted",
                        plural(kind)
                    ));
                }
                Some(object) => {
                    return Err(format!(
                        "{} \"{bound_name}\" UID ({}) does not match the token's ({bound_uid})",
                        plural(kind),
                        uid_of(&object)
                    ));
                }
                None => return Err(format!("{} \"{bound_name}\" not found", plural(kind))),
            }
            if key != "secret" {
                extra.insert(
                    format!("authentication.kubernetes.io/{key}-name"),
                    vec![bound_name.to_string()],
                );
                extra.insert(
                    format!("authentication.kubernetes.io/{key}-uid"),
                    vec![bound_uid.to_string()],
                );
            }
        }
        if let Some(jti) = claims.get("jti").and_then(Value::as_str) {
            extra.insert(
                "authentication.kubernetes.io/credential-id".into(),
                vec![format!("JTI={jti}")],
            );
        }
        Ok(Reviewed {
            user: User {
                name: format!("system:serviceaccount:{namespace}:{name}"),
                uid: account_uid.to_string(),
                groups: vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{namespace}"),
                    AUTHENTICATED.into(),
                ],
                extra,
            },
            audiences: accepted,
        })
    }
}

/// The `audiences` a TokenRequest's or TokenReview's `spec` names, the
/// API's when it names none.
pub fn audiences_of(spec: &Value) -> Vec<String> {
    let named: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if named.is_empty() {
        vec![API_AUDIENCE.into()]
    } else {
        named
    }
}

/// How far in the future a token's `nbf` may be (clock skew).
const NOT_BEFORE_LEEWAY_SECONDS: i64 = 60;

/// The object a TokenRequest binds its token to, with its claim key.
fn bound_object(
    registry: &Registry,
    namespace: &str,
    reference: &Value,
) -> Result<(&'static str, Value), Error> {
    let kind = reference.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = reference.get("name").and_then(Value::as_str).unwrap_or("");
    let (key, namespace) = match kind {
        "Pod" => ("pod", Some(namespace)),
        "Secret" => ("secret", Some(namespace)),
        "Node" => ("node", None),
        other => {
            return Err(Error::BadRequest(format!(
                "cannot bind token for serviceaccount to object of type {other}"
            )));
        }
    };
    let object = registry.get(&registry.resource("", kind), namespace, name)?;
    if let Some(uid) = reference.get("uid").and_then(Value::as_str)
        && !uid.is_empty()
        && uid != uid_of(&object)
    {
        return Err(Error::Conflict {
            resource: plural(kind).into(),
            group: String::new(),
            name: name.into(),
            why: format!(
                "the UID in the bound object reference ({uid}) does not match the UID in record. \
                 The object might have been deleted and then recreated"
            ),
        });
    }
    Ok((key, object))
}

fn plural(kind: &str) -> &'static str {
    match kind {
        "Pod" => "pods",
        "Secret" => "secrets",
        "Node" => "nodes",
        _ => "serviceaccounts",
    }
}

fn uid_of(object: &Value) -> &str {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn object_name(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Whether an object's deletion has come due (its grace period over).
fn is_deleted(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .is_some_and(|t| t <= jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_verifies_and_a_changed_one_does_not() {
        let (signer, pem) = Signer::generate().unwrap();
        let claims = json!({"sub": "x", "iss": API_AUDIENCE});
        let token = signer.sign(&claims);
        assert_eq!(signer.verified_claims(&token).unwrap(), claims);
        // The same key from its PEM checks what the first signed.
        let again = Signer::from_pem(&pem).unwrap();
        assert_eq!(again.verified_claims(&token).unwrap(), claims);
        let (other, _) = Signer::generate().unwrap();
        assert!(other.verified_claims(&token).is_err());
        let forged = format!(
            "{}.{}.{}",
            token.split('.').next().unwrap(),
            URL_SAFE_NO_PAD.encode(json!({"sub": "admin", "iss": API_AUDIENCE}).to_string()),
            token.split('.').nth(2).unwrap()
        );
        assert!(signer.verified_claims(&forged).is_err());
        assert!(signer.verified_claims("a.b").is_err());
    }
}
