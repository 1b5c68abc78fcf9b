//! Controllers: level-triggered loops that converge the cluster toward what
//! its objects ask for.

pub mod endpoints;
pub mod namespace;
