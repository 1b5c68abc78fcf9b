//! The kubelet's ServiceAccount tokens for projected volumes: one per pod,
//! audience and lifetime, bound to the pod, issued as a TokenRequest would
//! issue it and kept until 80% of its life (at most a day) has passed, so
//! the file a guest reads is renewed well before it expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use crate::auth::Signer;
use crate::registry::Registry;

/// How long a token is kept at most before a fresh one replaces it.
const MAX_AGE_SECONDS: i64 = 24 * 60 * 60;

struct Issued {
    token: String,
    issued: i64,
    expires: i64,
}

impl Issued {
    /// Whether it is time for a fresh one.
    fn stale(&self, now: i64) -> bool {
        let life = self.expires - self.issued;
        now >= self.issued + life * 4 / 5 || now >= self.issued + MAX_AGE_SECONDS
    }
}

/// Tokens by (pod uid, audience, lifetime).
pub struct Tokens {
    signer: Arc<Signer>,
    issued: Mutex<HashMap<(String, String, i64), Issued>>,
}

impl Tokens {
    pub fn new(signer: Arc<Signer>) -> Tokens {
        Tokens {
            signer,
            issued: Mutex::default(),
        }
    }

    /// The token `pod`'s projected volume shows now for `audience` (empty:
    /// the API's) and `expiration` seconds.
    pub fn token(
        &self,
        registry: &Registry,
        pod: &Pod,
        audience: &str,
        expiration: i64,
    ) -> Result<String, String> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = (uid.clone(), audience.to_string(), expiration);
        let now = jiff::Timestamp::now().as_second();
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        // Tokens of pods long gone are dropped as they expire.
        issued.retain(|_, token| token.expires > now);
        if let Some(token) = issued.get(&key).filter(|token| !token.stale(now)) {
            return Ok(token.token.clone());
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref())
            .unwrap_or(crate::registry::kinds::DEFAULT_SERVICE_ACCOUNT);
        let mut spec = json!({
            "expirationSeconds": expiration,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                "name": pod.metadata.name.clone().unwrap_or_default(), "uid": uid},
        });
        if !audience.is_empty() {
            spec["audiences"] = json!([audience]);
        }
        let answer = self
            .signer
            .issue(registry, namespace, account, &json!({"spec": spec}))
            .map_err(|e| format!("failed to fetch token: {e}"))?;
        let token = answer
            .pointer("/status/token")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_string();
        issued.insert(
            key,
            Issued {
                token: token.clone(),
                issued: now,
                expires: now + expiration,
            },
        );
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_renewed_at_four_fifths_of_its_life() {
        let token = Issued {
            token: String::new(),
            issued: 1000,
            expires: 1000 + 3600,
        };
        assert!(!token.stale(1000 + 2879));
        assert!(token.stale(1000 + 2880));
        let long = Issued {
            token: String::new(),
            issued: 0,
            expires: 10 * MAX_AGE_SECONDS,
        };
        assert!(long.stale(MAX_AGE_SECONDS));
    }
}
