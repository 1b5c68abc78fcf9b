//! Reviews a client creates to ask a question, answered and never stored:
//! authentication.k8s.io (who a token or the caller is) and
//! authorization.k8s.io (whether someone may do something, and what).

use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenReview};
use k8s_openapi::api::authorization::v1::{
    LocalSubjectAccessReview, SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview,
};

use super::plain_hooks;
use crate::registry::resources::{Alias, Resource, Subresource};

/// The ServiceAccount subresource a token is requested from.
pub(super) const TOKEN: Subresource = Subresource {
    name: "token",
    kind: "TokenRequest",
    group_version: Some(("authentication.k8s.io", "v1")),
    verbs: &["create"],
};

/// A resource one can only create, in authentication.k8s.io/v1.
fn review(kind: &'static str, plural: &'static str, schema: &'static str) -> Resource {
    Resource {
        group: AUTHENTICATION,
        version: "v1",
        kind,
        plural,
        singular: plural.strip_suffix('s').unwrap_or(plural),
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: &["create"],
        subresources: &[],
        status_subresource: false,
        field_selectors: &[],
        schema,
        returns_deleted: false,
        custom: None,
        hooks: plain_hooks::<TokenReview>(),
    }
}

pub const AUTHENTICATION: &str = "authentication.k8s.io";
pub const AUTHORIZATION: &str = "authorization.k8s.io";

/// A review in authorization.k8s.io/v1.
fn access_review(
    kind: &'static str,
    plural: &'static str,
    schema: &'static str,
    namespaced: bool,
    hooks: crate::registry::resources::Hooks,
) -> Resource {
    Resource {
        group: AUTHORIZATION,
        namespaced,
        hooks,
        ..review(kind, plural, schema)
    }
}

pub(super) fn subject_access_reviews() -> Vec<Resource> {
    vec![
        access_review(
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            "io.k8s.api.authorization.v1.SelfSubjectAccessReview",
            false,
            plain_hooks::<SelfSubjectAccessReview>(),
        ),
        access_review(
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
            "io.k8s.api.authorization.v1.SelfSubjectRulesReview",
            false,
            plain_hooks::<SelfSubjectRulesReview>(),
        ),
        access_review(
            "SubjectAccessReview",
            "subjectaccessreviews",
            "io.k8s.api.authorization.v1.SubjectAccessReview",
            false,
            plain_hooks::<SubjectAccessReview>(),
        ),
        access_review(
            "LocalSubjectAccessReview",
            "localsubjectaccessreviews",
            "io.k8s.api.authorization.v1.LocalSubjectAccessReview",
            true,
            plain_hooks::<LocalSubjectAccessReview>(),
        ),
    ]
}

pub(super) fn token_reviews() -> Resource {
    review(
        "TokenReview",
        "tokenreviews",
        "io.k8s.api.authentication.v1.TokenReview",
    )
}

pub(super) fn self_subject_reviews() -> Resource {
    Resource {
        hooks: plain_hooks::<SelfSubjectReview>(),
        ..review(
            "SelfSubjectReview",
            "selfsubjectreviews",
            "io.k8s.api.authentication.v1.SelfSubjectReview",
        )
    }
}

/// kubectl 1.27 asks `auth whoami` at v1beta1.
pub(super) fn self_subject_review_beta() -> Alias {
    Alias {
        group: "authentication.k8s.io",
        version: "v1beta1",
        kind: "SelfSubjectReview",
        current_group: "authentication.k8s.io",
        warning: "authentication.k8s.io/v1beta1 SelfSubjectReview is deprecated in v1.30+, unavailable in v1.33+; use authentication.k8s.io/v1 SelfSubjectReview",
        conversion: None,
    }
}
