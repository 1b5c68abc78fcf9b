//! Who a request is: the API server's authenticators. A client certificate
//! signed by the cluster's CA names a user (CN) and groups (O); a bearer
//! token is the admin token or a ServiceAccount token the server signed.
//! The identity rides on the request as a [`User`] extension.

pub mod attributes;
pub mod defaults;
pub mod impersonation;
pub mod rbac;
pub mod tokens;
pub mod x509;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use crate::registry::{Error, Registry};

pub use tokens::Signer;

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of the cluster's administrators (every permission).
pub const MASTERS: &str = "system:masters";
/// The admin token's user, as the API server's own admin is named.
pub const ADMIN: &str = "system:admin";
/// Who a request without credentials is (only health and version answer
/// it).
pub const ANONYMOUS: &str = "system:anonymous";

/// An authenticated identity, as `user.Info` in the API server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// Whether the user is in `system:masters`, allowed everything.
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }

    /// The administrator: the admin token and in-process clients.
    pub fn admin() -> User {
        User {
            name: ADMIN.into(),
            groups: vec![MASTERS.into(), AUTHENTICATED.into()],
            ..User::default()
        }
    }

    /// A request without credentials.
    pub fn anonymous() -> User {
        User {
            name: ANONYMOUS.into(),
            groups: vec!["system:unauthenticated".into()],
            ..User::default()
        }
    }

    /// A user with `groups`, and `system:authenticated` as every
    /// authenticated user has.
    pub fn with_groups(name: &str, groups: impl IntoIterator<Item = String>) -> User {
        let mut groups: Vec<String> = groups.into_iter().collect();
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.into());
        }
        User {
            name: name.into(),
            groups,
            ..User::default()
        }
    }

    /// The `UserInfo` of authentication.k8s.io (reviews' answers).
    pub fn to_json(&self) -> Value {
        let mut info = json!({"username": self.name, "groups": self.groups});
        if !self.uid.is_empty() {
            info["uid"] = json!(self.uid);
        }
        if !self.extra.is_empty() {
            info["extra"] = json!(self.extra);
        }
        info
    }
}

/// The user a connection's verified client certificate names (a request
/// extension the server sets).
#[derive(Debug, Clone)]
pub struct CertificateUser(pub Arc<User>);

/// Decides who each request is.
pub struct Authenticator {
    /// The admin bearer token; `None` makes a request without credentials
    /// the admin (in-process clients and router tests).
    admin_token: Option<Arc<str>>,
    signer: Arc<Signer>,
    authorizer: rbac::Authorizer,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(admin_token: Option<Arc<str>>, signer: Arc<Signer>) -> Authenticator {
        Authenticator {
            admin_token,
            signer,
            authorizer: rbac::Authorizer::default(),
        }
    }

    /// An authenticator with a new ServiceAccount key of its own (router
    /// tests and benchmarks).
    pub fn with_new_key(admin_token: Option<&str>) -> Arc<Authenticator> {
        let (signer, _) = Signer::generate().expect("a P-256 key can be made");
        Arc::new(Authenticator::new(
            admin_token.map(Into::into),
            Arc::new(signer),
        ))
    }

    /// What requests are judged by (RBAC).
    pub fn authorizer(&self) -> &rbac::Authorizer {
        &self.authorizer
    }

    /// The signer of ServiceAccount tokens.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Who a request is, from its certificate user (if the connection
    /// presented one) and its headers: a certificate first, then a bearer
    /// token, as the API server's union of authenticators. `Ok(None)`: no
    /// credentials at all.
    pub fn authenticate(
        &self,
        registry: &Registry,
        certificate: Option<&CertificateUser>,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<User>>, Error> {
        if let Some(CertificateUser(user)) = certificate {
            return Ok(Some(Arc::clone(user)));
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        let Some(token) = presented else {
            return Ok(self.admin_token.is_none().then(|| Arc::new(User::admin())));
        };
        match self.review_token(registry, token, &[tokens::API_AUDIENCE.to_string()]) {
            Ok((user, _)) => Ok(Some(Arc::new(user))),
            Err(why) => {
                tracing::debug!("a bearer token was refused: {why}");
                Err(Error::Unauthorized("Unauthorized".into()))
            }
        }
    }

    /// Who a bearer token is, for a reviewer accepting `audiences` (a
    /// TokenReview, or the API itself), with the audiences both accept;
    /// `Err` says why it is not valid.
    pub fn review_token(
        &self,
        registry: &Registry,
        token: &str,
        audiences: &[String],
    ) -> Result<(User, Vec<String>), String> {
        if let Some(admin) = &self.admin_token
            && constant_time_eq(token.as_bytes(), admin.as_bytes())
        {
            return Ok((User::admin(), audiences.to_vec()));
        }
        let reviewed = self.signer.review(registry, token, audiences)?;
        Ok((reviewed.user, reviewed.audiences))
    }
}

/// The token of an `Authorization: Bearer <token>` header, read as the API
/// server reads it: the scheme in any case, surrounding space ignored.
fn bearer_token(header: &str) -> Option<&str> {
    let mut words = header.trim().splitn(3, ' ');
    let scheme = words.next()?;
    let token = words.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_read_as_the_api_server_reads_them() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("  bearer abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }

    #[test]
    fn users_are_authenticated_once() {
        let user = User::with_groups("alice", ["dev".to_string(), AUTHENTICATED.to_string()]);
        assert_eq!(user.groups, ["dev", AUTHENTICATED]);
        let user = User::with_groups("bob", []);
        assert_eq!(user.groups, [AUTHENTICATED]);
    }
}
