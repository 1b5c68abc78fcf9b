//! ServiceAccounts: the identities pods run as. Every namespace has a
//! `default` one (kept by `controllers::namespace`).

use k8s_openapi::api::core::v1::ServiceAccount;

use super::plain_hooks;
use crate::registry::resources::{ALL_VERBS, Resource};

/// The ServiceAccount each namespace has and pods run as unless they name
/// another.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

pub(super) fn service_accounts() -> Resource {
    Resource {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[super::reviews::TOKEN],
        status_subresource: false,
        field_selectors: &[],
        schema: "io.k8s.api.core.v1.ServiceAccount",
        returns_deleted: false,
        custom: None,
        hooks: plain_hooks::<ServiceAccount>(),
    }
}
