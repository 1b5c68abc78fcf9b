//! Controllers: level-triggered loops that converge the cluster toward what
//! its objects ask for.

pub mod deployment;
pub mod driver;
pub mod endpoints;
pub mod garbage;
pub mod namespace;
pub mod owners;
pub mod replicaset;
